# MobileNetV2 (Sandler et al., 2018) at width 1.0, as torchvision builds it
# (`torchvision.models.mobilenet_v2()`): a fixed network, no choices. Its classifier's dropout
# does nothing in evaluation and holds no parameters, so it is left out.
# tests/compiler/test_torchvision.py checks the parameter count and, with torchvision's weights
# copied in, the outputs.

# Convolution, BN and ReLU6 (torchvision's Conv2dNormActivation).
op conv_bn_relu6(k) = conv(k, stride = stride) -> bn -> relu6

# The inverted residual block with expansion t: a 1x1 expansion to t * C_in channels (none when
# t = 1), a 3x3 depthwise convolution, a linear 1x1 projection; the input is added when the
# block keeps the shape (stride 1, C_in = C_out).
op invres(t) = residual(
    (if t == 1 then identity else (conv(1, out = t * C_in) -> bn -> relu6))
    -> dwconv(3, stride = stride) -> bn -> relu6
    -> conv(1) -> bn
)

network mobilenet_v2(classes = 1000, size = 224) {
    input(3, size)
    stem conv_bn_relu6(32, 3, stride = 2)
    # (t, c, n, s) = (1, 16, 1, 1)
    invres(16, 1)
    # (6, 24, 2, 2)
    invres(24, 6, stride = 2)
    invres(24, 6)
    # (6, 32, 3, 2)
    invres(32, 6, stride = 2)
    invres(32, 6)
    invres(32, 6)
    # (6, 64, 4, 2)
    invres(64, 6, stride = 2)
    invres(64, 6)
    invres(64, 6)
    invres(64, 6)
    # (6, 96, 3, 1)
    invres(96, 6)
    invres(96, 6)
    invres(96, 6)
    # (6, 160, 3, 2)
    invres(160, 6, stride = 2)
    invres(160, 6)
    invres(160, 6)
    # (6, 320, 1, 1)
    invres(320, 6)
    conv_bn_relu6(1280, 1)
    head pool_linear(classes)
}
