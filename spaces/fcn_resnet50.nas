# FCN with a ResNet-50 backbone (Long et al., 2015) as torchvision builds it:
# `torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None,
# num_classes=21, aux_loss=False)`. A fixed network, no choices. The backbone's last two stages
# trade their stride for dilation (`replace_stride_with_dilation=[False, True, True]`), so the
# features stay at 1/8 of the input; the head's map of class scores is resized bilinearly to the
# input's size. tests/compiler/test_torchvision.py checks that it has torchvision's parameter
# count and, with torchvision's weights copied in, its outputs.

# The ImageNet stem: a 7x7 stride-2 convolution, BN, ReLU and a 3x3 stride-2 max pooling.
op resnet_stem with stride 4 = conv(7, stride = 2) -> bn -> relu -> maxpool(3, stride = 2)

# The bottleneck block with dilation d: 1x1 Conv-BN-ReLU to C_out / 4 channels, 3x3 Conv-BN-ReLU
# (strided, dilated by d), 1x1 Conv-BN back to C_out, plus the input (through a strided 1x1
# Conv-BN where the shape changes), then a ReLU.
op bottleneck(d) = residual(
    conv(1, out = C_out // 4) -> bn -> relu
    -> conv(3, out = C_out // 4, stride = stride, dilation = d) -> bn -> relu
    -> conv(1) -> bn,
    if stride == 1 and C_in == C_out then identity else (conv(1, stride = stride) -> bn)
) -> relu

# torchvision's FCNHead: 3x3 Conv-BN-ReLU to C_in / 4 channels (its dropout does nothing in
# evaluation and holds no weights, so it is left out), then a 1x1 convolution with bias to the
# class scores.
op fcn_head with per_pixel = conv(3, out = C_in // 4) -> bn -> relu -> conv(1, bias = 1)

# W is the width of the first stage's 3x3 convolutions (64 in torchvision); a bottleneck's
# width is four times that of its 3x3 convolutions. A dilated stage's first block keeps the
# dilation of the stage before it, as torchvision's `_make_layer` does.
network fcn_resnet50(W = 64, classes = 21, size = 520) {
    input(3, size)
    stem resnet_stem(W)
    # layer1: 3 blocks at 1/4
    repeat 3 bottleneck(4W, 1)
    # layer2: 4 blocks, to 1/8
    bottleneck(8W, 1, stride = 2)
    repeat 3 bottleneck(8W, 1)
    # layer3: 6 blocks, dilation 2 in place of stride 2
    bottleneck(16W, 1)
    repeat 5 bottleneck(16W, 2)
    # layer4: 3 blocks, dilation 4 in place of stride 2
    bottleneck(32W, 2)
    repeat 2 bottleneck(32W, 4)
    head fcn_head(classes)
}
