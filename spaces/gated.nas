# gated: a cell with a multiplicative gate, in the manner of the GRU and LSTM (and of the gated
# linear units of Dauphin et al., 2017): a searched transform of the input is multiplied, channel
# by channel and pixel by pixel, by a gate in (0, 1) computed from the input itself, so the cell
# learns where to let its transform through. The gate is a fixed op; the transforms around it
# and the shortcuts that join the gated state are searched.

preset nb201

# The gate: a 1x1 convolution and BN, squashed into (0, 1) by a sigmoid.
op gate = conv(1, stride = stride) -> bn -> sigmoid

ops cand = {nor_conv_3x3, sep_conv_3x3, dil_conv_3x3, skip_connect}
ops light = {none, skip_connect, nor_conv_1x1}

cell gru(x) {
    a = x:cand              # a searched transform of the input
    h = a:cand * x:gate     # another, gated by sigmoid(BN(conv1x1(x))): a product node
    o = h:skip_connect + a:light + x:light
    keep 1 per edge
    out o
}

network gated(C = 8, N = 1, classes = 10, channels = 3, size = 32) {
    input(channels, size)
    stem conv3x3_bn(C)
    repeat N gru @ C
    resblock(2C, stride = 2)
    repeat N gru @ 2C
    resblock(4C, stride = 2)
    repeat N gru @ 4C
    head bn_relu_pool_linear(classes)
}
