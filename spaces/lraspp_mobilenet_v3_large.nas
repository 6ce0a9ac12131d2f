# LR-ASPP with a MobileNetV3-Large backbone (Howard et al., 2019) as torchvision builds it:
# `torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None,
# weights_backbone=None, num_classes=21)`. A fixed network, no choices. The backbone's last stage
# trades its stride for dilation (`dilated=True`), so its features stay at 1/16 of the input; the
# head reads them and the features at 1/8, and its map of class scores is resized bilinearly to
# the input's size. tests/compiler/test_torchvision.py checks that it has torchvision's parameter
# count and, with torchvision's weights copied in, its outputs.
#
# The head upsamples the 1/16 features by 2 where torchvision resizes them to the 1/8 features'
# size: the same computation when the input's size is a multiple of 16. Otherwise the 1/8 map may
# be odd (72 gives 9x9 and 5x5), which no doubling reaches, and `nasc check` refuses the size.

# Convolution, BN (torchvision's MobileNetV3 uses eps 0.001) and hard swish or ReLU (hs = 1 or 0):
# torchvision's Conv2dNormActivation.
op conv_bn_act(k, hs) = conv(k, stride = stride) -> bn(eps = 0.001)
    -> (if hs == 1 then hardswish else relu)

# The inverted residual block of MobileNetV3 with expansion to e channels, a k x k depthwise
# convolution dilated by d, hard swish or ReLU (hs), and squeeze-and-excitation to sq channels
# (none when sq = 0; torchvision's _make_divisible(e // 4, 8)): the input times a gate computed
# from its global mean (1x1 conv with bias, ReLU, 1x1 conv with bias, hard sigmoid). The input
# is added when the block keeps the shape (stride 1, C_in = C_out).
op bneck(e, k, sq, hs, d) = residual(
    (if e == C_in then identity
        else (conv(1, out = e) -> bn(eps = 0.001) -> (if hs == 1 then hardswish else relu)))
    -> dwconv(k, stride = stride, dilation = d) -> bn(eps = 0.001)
    -> (if hs == 1 then hardswish else relu)
    -> (if sq == 0 then identity
        else product(global_pool -> conv(1, out = sq, bias = 1) -> relu
            -> conv(1, out = e, bias = 1) -> hardsigmoid))
    -> conv(1) -> bn(eps = 0.001)
)

# The LR-ASPP gate on the 1/16 features: a 1x1 Conv-BN-ReLU (`cbr`) times a per-channel gate
# from their global mean, a 1x1 convolution and a sigmoid (`scale`).
op lraspp_gate = product(
    cbr: (conv(1) -> bn -> relu),
    scale: (global_pool -> conv(1) -> sigmoid)
)

# The classifier of the 1/8 features: a 1x1 convolution with bias to the class scores.
op low_classifier = conv(1, bias = 1)

# The classifier of the gated features, read from half the resolution: bilinear upsampling by
# `up` (2), then a 1x1 convolution with bias to the class scores.
op high_classifier with resampling = bilinear(up) -> conv(1, bias = 1)

# The sum of the two classifiers' scores is the head's map; the network resizes it to the input.
op scores with per_pixel = identity

# LR-ASPP's head as a cell: each input's adapter is its classifier, and the cell sums them.
cell lraspp(low:low_classifier, high:high_classifier) {
    n1 = low:skip_connect + high:skip_connect
    out n1
}

# The blocks follow torchvision's table: bneck(C_out, e, k, sq, hs, d).
network lraspp_mobilenet_v3_large(classes = 21, size = 512) {
    input(3, size)
    stem conv_bn_act(16, 3, 1, stride = 2)
    bneck(16, 16, 3, 0, 0, 1)
    bneck(24, 64, 3, 0, 0, 1, stride = 2)
    bneck(24, 72, 3, 0, 0, 1)
    # The features at 1/8 that the head reads (torchvision's `low`: the block that strides to 1/8)
    low = bneck(40, 72, 5, 24, 0, 1, stride = 2)
    bneck(40, 120, 5, 32, 0, 1)
    bneck(40, 120, 5, 32, 0, 1)
    bneck(80, 240, 3, 0, 1, 1, stride = 2)
    bneck(80, 200, 3, 0, 1, 1)
    bneck(80, 184, 3, 0, 1, 1)
    bneck(80, 184, 3, 0, 1, 1)
    bneck(112, 480, 3, 120, 1, 1)
    bneck(112, 672, 3, 168, 1, 1)
    # The last stage: dilation 2 in place of stride 2
    bneck(160, 672, 5, 168, 1, 2)
    bneck(160, 960, 5, 240, 1, 2)
    bneck(160, 960, 5, 240, 1, 2)
    # torchvision's `high`: the last 1x1 Conv-BN-hard swish, 960 channels at 1/16
    conv_bn_act(960, 1, 1)
    gated = lraspp_gate(128)
    lraspp @ classes at 8 from low, gated
    head scores(classes)
}
