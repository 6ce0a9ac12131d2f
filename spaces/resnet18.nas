# ResNet-18 (He et al., 2016) as torchvision builds it (`torchvision.models.resnet18()`): a fixed
# network, no choices. tests/compiler/test_torchvision.py checks that it has torchvision's
# parameter count and, with torchvision's weights copied in, its outputs.

# The ImageNet stem: a 7x7 stride-2 convolution, BN, ReLU and a 3x3 stride-2 max pooling.
op resnet_stem with stride 4 = conv(7, stride = 2) -> bn -> relu -> maxpool(3, stride = 2)

# The basic block: two 3x3 Conv-BN with a ReLU between, plus the input (through a strided 1x1
# Conv-BN where the shape changes), then a ReLU.
op basic = residual(
    conv(3, stride = stride) -> bn -> relu -> conv(3) -> bn,
    if stride == 1 and C_in == C_out then identity else (conv(1, stride = stride) -> bn)
) -> relu

# W is the width of the first stage (64 in torchvision); each later stage doubles it.
network resnet18(W = 64, classes = 1000, size = 224) {
    input(3, size)
    stem resnet_stem(W)
    basic(W)
    basic(W)
    basic(2W, stride = 2)
    basic(2W)
    basic(4W, stride = 2)
    basic(4W)
    basic(8W, stride = 2)
    basic(8W)
    head pool_linear(classes)
}
