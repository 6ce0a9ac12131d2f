# NAS-Bench-201 (Dong & Yang, ICLR 2020): the cell-based topology search space.
# 4 nodes, 6 edges, 5 candidate ops per edge: 5^6 = 15,625 cells. Three stages of N cells at
# widths C, 2C and 4C are joined by residual reduction blocks; every cell shares one decision.

preset nb201

ops nb201 = {none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3}

cell nb201_cell(x) {
    n1 = x:nb201
    n2 = x:nb201 + n1:nb201
    n3 = x:nb201 + n1:nb201 + n2:nb201
    keep 1 per edge
    out n3
}

network nb201(C = 16, N = 5, classes = 10, channels = 3, size = 32) {
    input(channels, size)
    stem conv3x3_bn(C)
    repeat N nb201_cell @ C
    resblock(2C, stride = 2)
    repeat N nb201_cell @ 2C
    resblock(4C, stride = 2)
    repeat N nb201_cell @ 4C
    head bn_relu_pool_linear(classes)
}
