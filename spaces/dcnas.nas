# A DCNAS-like densely connected segmentation space (Zhang et al., "DCNAS: Densely Connected Neural
# Architecture Search for Semantic Image Segmentation", CVPR 2021), small enough to search on a CPU:
# a stem down to 1/4 of the input's resolution, then cells at 1/4, 1/8, 1/16 and back up, each
# receiving the outputs of all earlier stages, resampled to its resolution and width and summed
# (DCNAS' fusion module), with DARTS' candidate ops inside the cells, and a per-pixel head.
# `spaces/dcnas_short.nas` is the variant with short connections only.

preset darts

# Two stride-2 3x3 Conv-BN-ReLU: the stem reduces to 1/4.
op dcnas_stem with stride 4 = conv(3, out = C_out // 2, stride = 2) -> bn -> relu
    -> conv(3, stride = 2) -> bn -> relu

# A 3x3 Conv-BN-ReLU, then a 1x1 convolution (with bias) to one score per class and pixel.
op seg_head with per_pixel = conv(3, out = C_in) -> bn -> relu -> conv(1, bias = 1)

ops dcnas = {none, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5,
    max_pool_3x3, avg_pool_3x3}

# One input: the sum of every earlier output, each through its own `resample`.
cell dense(x:resample) with pool_bn {
    n1 = x:dcnas
    n2 = x:dcnas + n1:dcnas
    n3 = x:dcnas + n1:dcnas + n2:dcnas
    keep 2 per node
    out concat(n1, n2, n3)
}

network dcnas(C = 8, classes = 5, size = 32, channels = 3) {
    input(channels, size)
    stem dcnas_stem(4C)
    dense @ C at 4 from all
    dense @ 2C at 8 from all
    dense @ 4C at 16 from all
    dense @ 2C at 8 from all
    dense @ C at 4 from all
    head seg_head(classes)
}
