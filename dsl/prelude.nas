# The standard op library of nasc, written in its own language. Every space can use these ops;
# `docs/language.md` explains the primitives they are built from. The comment right above an op
# is its one-line documentation (`nasc show --ops`).
#
# Inside a body, `C_in`, `C_out` and `stride` are the op's input channels, output channels and
# stride where it is placed, and `affine` is 1 in a trained network and 0 in a search supernet
# (whose BNs have no affine parameters).

# --- NAS-Bench-201 (D-X-Y/AutoDL-Projects, cell_operations.py) ------------------------------------

# Zero: the edge contributes nothing (never computed).
op none = zero

# Identity; FactorizedReduce when it strides or changes channels.
op skip_connect = if stride == 1 and C_in == C_out then identity
    else factorized_reduce(stride = stride)

# ReLU-Conv1x1-BN (NAS-Bench-201).
op nor_conv_1x1 = relu -> conv(1, stride = stride, bias = 1 - affine) -> bn

# ReLU-Conv3x3-BN (NAS-Bench-201).
op nor_conv_3x3 = relu -> conv(3, stride = stride, bias = 1 - affine) -> bn

# ReLU-Conv7x7-BN (NAS-Bench-201).
op nor_conv_7x7 = relu -> conv(7, stride = stride, bias = 1 - affine) -> bn

# 3x3 avg pooling without counting padding.
op avg_pool_3x3 = if C_in == C_out then (pool: avgpool(3, stride = stride))
    else (preprocess: (relu -> conv(1, bias = 1 - affine) -> bn)
        -> pool: avgpool(3, stride = stride))

# 3x3 max pooling.
op max_pool_3x3 = if C_in == C_out then (pool: maxpool(3, stride = stride))
    else (preprocess: (relu -> conv(1, bias = 1 - affine) -> bn)
        -> pool: maxpool(3, stride = stride))

# Two ReLU-Conv3x3-BN and a shortcut: NAS-Bench-201's residual (reduction) block.
op resblock = residual(
    conv_a: (relu -> conv(3, stride = stride, bias = 1 - affine) -> bn)
        -> conv_b: (relu -> conv(3, bias = 1 - affine) -> bn),
    downsample: if stride == 2
            then (avgpool(2, stride = 2, pad = 0, ceil = 1, count_pad = 1) -> conv(1))
        else if C_in != C_out then (relu -> conv(1, bias = 1 - affine) -> bn)
        else identity
)

# --- DARTS (quark0/darts, operations.py) ----------------------------------------------------------

# Separable 3x3 conv, two ReLU-dw-pw-BN blocks (DARTS).
op sep_conv_3x3 = (relu -> dwconv(3, stride = stride) -> pwconv(C_in) -> bn)
    -> (relu -> dwconv(3) -> pwconv -> bn)

# Separable 5x5 conv, two ReLU-dw-pw-BN blocks (DARTS).
op sep_conv_5x5 = (relu -> dwconv(5, stride = stride) -> pwconv(C_in) -> bn)
    -> (relu -> dwconv(5) -> pwconv -> bn)

# Separable 7x7 conv, two ReLU-dw-pw-BN blocks (DARTS).
op sep_conv_7x7 = (relu -> dwconv(7, stride = stride) -> pwconv(C_in) -> bn)
    -> (relu -> dwconv(7) -> pwconv -> bn)

# Dilated 3x3 conv (dilation 2), ReLU-dw-pw-BN (DARTS).
op dil_conv_3x3 = relu -> dwconv(3, stride = stride, dilation = 2) -> pwconv -> bn

# Dilated 5x5 conv (dilation 2), ReLU-dw-pw-BN (DARTS).
op dil_conv_5x5 = relu -> dwconv(5, stride = stride, dilation = 2) -> pwconv -> bn

# ReLU, 1x7 then 7x1 conv, BN (DARTS).
op conv_7x1_1x7 = relu -> conv(7, out = C_in, kh = 1, sh = 1, sw = stride)
    -> conv(7, kw = 1, sh = stride, sw = 1) -> bn

# DARTS cell input: ReLU-Conv1x1-BN, or FactorizedReduce from twice the resolution.
op preprocess = if stride == 2 then factorized_reduce(stride = 2) else (relu -> conv(1) -> bn)

# --- dense prediction (docs/language.md, dense networks) -------------------------------------------

# A cell input from any power-of-two multiple of the cell's resolution, at the cell's width (DCNAS'
# fusion path): downsampled by a strided 3x3 Conv-BN, upsampled bilinearly then a 1x1 Conv-BN.
op resample with resampling = if up > 1 then (bilinear(up) -> relu -> conv(1) -> bn)
    else if stride > 1 then (relu -> conv(3, stride = stride) -> bn)
    else (relu -> conv(1) -> bn)

# --- stems and heads ------------------------------------------------------------------------------

# 3x3 conv and BN: the CIFAR stem of NAS-Bench-201 and DARTS.
op conv3x3_bn = conv(3, stride = stride) -> bn

# DARTS ImageNet stem 0: two stride-2 3x3 convs (C/2 then C wide) with BN and ReLU.
op darts_imagenet_stem0 with stride 4 = conv(3, out = C_out // 2, stride = 2) -> bn -> relu
    -> conv(3, stride = 2) -> bn

# DARTS ImageNet stem 1: ReLU, stride-2 3x3 conv, BN.
op darts_imagenet_stem1 with stride 2 = relu -> conv(3, stride = 2) -> bn

# BN, ReLU, global average pooling, linear: NAS-Bench-201's head.
op bn_relu_pool_linear with head =
    lastact: (bn -> relu) -> global_pooling: gap -> classifier: linear

# Global average pooling and linear: DARTS' head.
op pool_linear with head = global_pooling: gap -> classifier: linear
