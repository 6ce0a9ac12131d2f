# DARTS (Liu et al., ICLR 2019): the CIFAR-10 convolutional cell search space, with the search
# supernet of the DARTS paper's own code: a non-affine BN after every pooling candidate
# (`with pool_bn`), global pooling and a linear layer as the head, and DARTS' candidate order.
# Use it to reproduce the DARTS family on the supernet those papers searched. `spaces/darts.nas`
# is the same space as the IS-DARTS reference code builds it, and the one `nasc search` uses.
# A normal and a reduction cell type, each with 2 inputs, 4 intermediate nodes, 14 edges and
# 8 candidate ops; all candidates on all edges into a node compete and two survive. The network
# stacks `layers` cells with reduction cells at 1/3 and 2/3 of the depth.

preset darts

ops darts = {none, max_pool_3x3, avg_pool_3x3, skip_connect,
             sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5}

cell normal(c_k2:preprocess, c_k1:preprocess) with pool_bn {
    n0 = c_k2:darts + c_k1:darts
    n1 = c_k2:darts + c_k1:darts + n0:darts
    n2 = c_k2:darts + c_k1:darts + n0:darts + n1:darts
    n3 = c_k2:darts + c_k1:darts + n0:darts + n1:darts + n2:darts
    keep 2 per node
    out concat(n0, n1, n2, n3)
}

cell reduce(c_k2:preprocess, c_k1:preprocess) with reduction, pool_bn {
    n0 = c_k2:darts + c_k1:darts
    n1 = c_k2:darts + c_k1:darts + n0:darts
    n2 = c_k2:darts + c_k1:darts + n0:darts + n1:darts
    n3 = c_k2:darts + c_k1:darts + n0:darts + n1:darts + n2:darts
    keep 2 per node
    out concat(n0, n1, n2, n3)
}

network darts_original(C = 16, layers = 8, classes = 10, stem_multiplier = 3, channels = 3, size = 32) {
    input(channels, size)
    stem conv3x3_bn(stem_multiplier * C)
    repeat layers // 3 normal @ C
    reduce @ 2C
    repeat 2 * layers // 3 - layers // 3 - 1 normal @ 2C
    reduce @ 4C
    aux darts_aux_cifar(classes)
    repeat layers - 2 * layers // 3 - 1 normal @ 4C
    head pool_linear(classes)
}
