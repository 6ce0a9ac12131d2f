# macro_choice: a space of whole networks rather than cells, in the manner of ProxylessNAS
# (Cai et al., ICLR 2019) and FBNet (Wu et al., CVPR 2019): every layer chooses its block, and
# `skip_connect` among the candidates makes the depth of each stage searchable (a layer that
# keeps it is the identity and costs nothing). Each layer of the first two stages decides for
# itself; the last stage's layers share one decision.

preset nb201

ops layer = {resblock, nor_conv_3x3, sep_conv_3x3, skip_connect}

network macro_choice(C = 16, N = 3, classes = 10, channels = 3, size = 32) {
    input(channels, size)
    stem conv3x3_bn(C)
    repeat N choose stage1 = layer @ C
    choose down1 = {resblock, nor_conv_3x3, sep_conv_3x3} @ 2C, stride = 2
    repeat N choose stage2 = layer @ 2C
    choose down2 = {resblock, nor_conv_3x3, sep_conv_3x3} @ 4C, stride = 2
    repeat N choose shared stage3 = layer @ 4C
    head bn_relu_pool_linear(classes)
}
