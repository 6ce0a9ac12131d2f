# proxyless: a MobileNetV2-shaped space in the manner of ProxylessNAS (Cai et al., ICLR 2019) and
# FBNet (Wu et al., CVPR 2019). Stem, first block, stage widths and strides, and head are those of
# MobileNetV2 (Sandler et al., 2018); every later layer chooses its inverted-residual block among
# six (expansion 3 or 6, kernel 3, 5 or 7). A layer that keeps its shape may also choose
# `skip_connect`, the identity, which makes the depth of each stage searchable; the first layer of
# a stage strides or widens, so it has no skip (as in ProxylessNAS).
#
# C is the stem's width: 32 is MobileNetV2 at width 1.0, the default 8 is width 0.25. D is the
# number of searchable layers after the first one of each stage (ProxylessNAS: 3).

preset nb201

# The inverted residual block (MBConv): a 1x1 expansion to e * C_in channels (none when e = 1),
# a k x k depthwise convolution that strides, a linear 1x1 projection; the input is added when
# the block keeps the shape (stride 1, C_in = C_out).
op mbconv(e, k) = residual(
    (if e == 1 then identity else (conv(1, out = e * C_in) -> bn -> relu6))
    -> dwconv(k, stride = stride) -> bn -> relu6
    -> conv(1) -> bn
)

# Convolution, BN and ReLU6: MobileNetV2's stem and last convolution.
op conv_bn_relu6(k) = conv(k, stride = stride) -> bn -> relu6

# The blocks of a layer that strides or widens, and of one that keeps its shape.
ops mb = {mbconv(3, 3), mbconv(3, 5), mbconv(3, 7), mbconv(6, 3), mbconv(6, 5), mbconv(6, 7)}
ops mb_or_skip = {
    mbconv(3, 3), mbconv(3, 5), mbconv(3, 7), mbconv(6, 3), mbconv(6, 5), mbconv(6, 7),
    skip_connect,
}

network proxyless(C = 8, D = 1, classes = 10, channels = 3, size = 32) {
    input(channels, size)
    stem conv_bn_relu6(C, 3, stride = 2)
    mbconv(C // 2, 1, 3)
    # MobileNetV2's widths 24, 32, 64, 96, 160, 320 at stem width 32, with strides 2, 2, 2, 1, 2, 1.
    choose stage1_in = mb @ 3C // 4, stride = 2
    repeat D choose stage1 = mb_or_skip @ 3C // 4
    choose stage2_in = mb @ C, stride = 2
    repeat D choose stage2 = mb_or_skip @ C
    choose stage3_in = mb @ 2C, stride = 2
    repeat D choose stage3 = mb_or_skip @ 2C
    choose stage4_in = mb @ 3C
    repeat D choose stage4 = mb_or_skip @ 3C
    choose stage5_in = mb @ 5C, stride = 2
    repeat D choose stage5 = mb_or_skip @ 5C
    choose stage6_in = mb @ 10C
    conv_bn_relu6(40C, 1)
    head pool_linear(classes)
}
