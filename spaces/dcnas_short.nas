# The DCNAS-like segmentation space of `spaces/dcnas.nas` with short connections only, the
# variant DCNAS and the single-stage searching protocol's paper compare against: each cell reads
# the outputs of the two stages before it (oldest first), resampled to its resolution and width,
# rather than the outputs of all earlier stages.

preset darts

# Two stride-2 3x3 Conv-BN-ReLU: the stem reduces to 1/4.
op dcnas_stem with stride 4 = conv(3, out = C_out // 2, stride = 2) -> bn -> relu
    -> conv(3, stride = 2) -> bn -> relu

# A 3x3 Conv-BN-ReLU, then a 1x1 convolution (with bias) to one score per class and pixel.
op seg_head with per_pixel = conv(3, out = C_in) -> bn -> relu -> conv(1, bias = 1)

ops dcnas = {none, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5,
    max_pool_3x3, avg_pool_3x3}

# Two inputs: the outputs of the two stages before the cell, each through its own `resample`.
cell short(prev2:resample, prev1:resample) with pool_bn {
    n1 = prev2:dcnas + prev1:dcnas
    n2 = prev2:dcnas + prev1:dcnas + n1:dcnas
    n3 = prev2:dcnas + prev1:dcnas + n1:dcnas + n2:dcnas
    keep 2 per node
    out concat(n1, n2, n3)
}

network dcnas_short(C = 8, classes = 5, size = 32, channels = 3) {
    input(channels, size)
    stem dcnas_stem(4C)
    short @ C at 4
    short @ 2C at 8
    short @ 4C at 16
    short @ 2C at 8
    short @ C at 4
    head seg_head(classes)
}
