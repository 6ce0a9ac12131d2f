# DARTS' ImageNet network (the mobile setting): the DARTS search space with the macro that the
# DARTS paper trains on ImageNet. Two stride-2 stems take 224x224 images to 28x28; `layers` cells
# with reductions at 1/3 and 2/3 of the depth; the auxiliary head reads the 7x7 features after the
# second reduction. `nasc train ARCH.nas --preset darts-imagenet` puts a found architecture's
# cells into this network.

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

network darts_imagenet(C = 48, layers = 14, classes = 1000, channels = 3, size = 224) {
    input(channels, size)
    stem darts_imagenet_stem0(C)
    stem darts_imagenet_stem1(C)
    repeat layers // 3 normal @ C
    reduce @ 2C
    repeat 2 * layers // 3 - layers // 3 - 1 normal @ 2C
    reduce @ 4C
    aux darts_aux_imagenet(classes)
    repeat layers - 2 * layers // 3 - 1 normal @ 4C
    head pool_linear(classes)
}
