# tricell: a small space neither paper has. A 3-node cell mixes NB201 and DARTS convolutions,
# keeps a fixed skip edge, and makes two edges from different nodes compete in an explicit
# subset (two of their eight candidates survive, on either edge or both). Each cell concatenates
# two nodes, so a cell placed at width W outputs 2W channels.

preset nb201

ops convs = {nor_conv_1x1, nor_conv_3x3, sep_conv_3x3, dil_conv_3x3}
ops light = {none, skip_connect, avg_pool_3x3, max_pool_3x3}

cell tri(x) {
    a = x:convs
    b = a:convs + x:light
    c = a:light + b:convs + x:skip_connect
    keep 2 of {x->a, a->b}
    keep 1 per edge
    out concat(b, c)
}

network tricell(C = 16, N = 2, classes = 10, channels = 3, size = 32) {
    input(channels, size)
    stem conv3x3_bn(C)
    repeat N tri @ C
    nor_conv_3x3(4C, stride = 2)
    repeat N tri @ 2C
    head bn_relu_pool_linear(classes)
}
