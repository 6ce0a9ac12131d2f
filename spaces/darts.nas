# DARTS (Liu et al., ICLR 2019): the CIFAR-10 convolutional cell search space, as the IS-DARTS
# reference code (AAAI 2024) builds its search supernet: bare 3x3 pooling candidates, a BN-ReLU
# before global pooling in the head, and the reference's candidate order (which decides exact
# ties when shrinking). The standalone network that `nasc train` builds from a found genotype is
# DARTS' evaluation network, whose head is global pooling and a linear layer.
# `spaces/darts_original.nas` is the supernet of the DARTS paper's own search code.
# A normal and a reduction cell type, each with 2 inputs, 4 intermediate nodes, 14 edges and
# 8 candidate ops; all candidates on all edges into a node compete and two survive. The network
# stacks `layers` cells with reduction cells at 1/3 and 2/3 of the depth.

preset darts

ops darts = {none, skip_connect, sep_conv_3x3, sep_conv_5x5,
             dil_conv_3x3, dil_conv_5x5, avg_pool_3x3, max_pool_3x3}

cell normal(c_k2:preprocess, c_k1:preprocess) {
    n0 = c_k2:darts + c_k1:darts
    n1 = c_k2:darts + c_k1:darts + n0:darts
    n2 = c_k2:darts + c_k1:darts + n0:darts + n1:darts
    n3 = c_k2:darts + c_k1:darts + n0:darts + n1:darts + n2:darts
    keep 2 per node
    out concat(n0, n1, n2, n3)
}

cell reduce(c_k2:preprocess, c_k1:preprocess) with reduction {
    n0 = c_k2:darts + c_k1:darts
    n1 = c_k2:darts + c_k1:darts + n0:darts
    n2 = c_k2:darts + c_k1:darts + n0:darts + n1:darts
    n3 = c_k2:darts + c_k1:darts + n0:darts + n1:darts + n2:darts
    keep 2 per node
    out concat(n0, n1, n2, n3)
}

network darts(C = 16, layers = 8, classes = 10, stem_multiplier = 3, channels = 3, size = 32) {
    input(channels, size)
    stem conv3x3_bn(stem_multiplier * C)
    repeat layers // 3 normal @ C
    reduce @ 2C
    repeat 2 * layers // 3 - layers // 3 - 1 normal @ 2C
    reduce @ 4C
    aux darts_aux_cifar(classes)
    repeat layers - 2 * layers // 3 - 1 normal @ 4C
    search head bn_relu_pool_linear(classes)
    train head pool_linear(classes)
}
