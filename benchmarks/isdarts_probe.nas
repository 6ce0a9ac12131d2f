# The probe of docs/isdarts.md: four otherwise equal 3x3 convolutions that end in a ReLU, a
# sigmoid, a BN, and the NAS-Bench-201 op (ReLU-conv-BN), on two edges of two cells.
# python benchmarks/isdarts_information.py benchmarks/isdarts_probe.nas

op conv_relu = conv(3, stride = stride) -> relu
op conv_sigmoid = conv(3, stride = stride) -> sigmoid
op conv_bn = conv(3, stride = stride) -> bn
ops probe = {none, conv_relu, conv_sigmoid, conv_bn, nor_conv_3x3}

cell c(x) {
    a = x:probe
    b = x:probe + a:probe
    keep 1 per edge
    out b
}

network probe(C = 8, classes = 10, channels = 1, size = 8) {
    input(channels, size)
    stem conv3x3_bn(C)
    repeat 2 c @ C
    head bn_relu_pool_linear(classes)
}
