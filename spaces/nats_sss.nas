# NATS-Bench's size search space (Dong, Liu, Musial & Gabrys, TPAMI 2021): the NAS-Bench-201
# skeleton with one cell per stage, the best NAS-Bench-201 CIFAR-10 cell fixed in every cell,
# and the channels of 5 layers searched, each among {8, 16, ..., 64}: 8^5 = 32,768 networks.
#
# The layout follows xautodl's DynamicShapeTinyNet (models/shape_infers/InferTinyCellNet.py)
# for a channel list C1:C2:C3:C4:C5 with N = 1:
#   C1  the stem (conv3x3 + BN) and the first cell, which reads the stem at its own width;
#   C2  the first residual reduction block (stride 2), reading C1 channels;
#   C3  the second cell, reading C2 channels (its edges from the input map C2 to C3);
#   C4  the second residual reduction block, reading C3 channels;
#   C5  the third cell, reading C4 channels; the head (BN, ReLU, pooling, linear) reads C5.
# The widths are entangled: every candidate slices one set of weights built at 64 channels.
# With no `preset` line, `nasc search` uses the default (NAS-Bench-201's) settings.

# The cell's skip from its input in the second and third cells, whose input width is another
# choice: a 1x1 convolution and a BN (xautodl's FactorizedReduce at stride 1, without ReLU).
# xautodl uses the identity when the two widths happen to agree (1 pair in 8); here the
# projection stays, so that one entangled projection serves every pair of widths.
op nats_skip = conv(1, bias = 1 - affine) -> bn

# |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|
# The first cell reads the stem at its own width, so its skip is the identity.
cell nats_cell(x) {
    n1 = x:nor_conv_3x3
    n2 = x:nor_conv_3x3 + n1:nor_conv_3x3
    n3 = x:skip_connect + n1:nor_conv_3x3 + n2:nor_conv_3x3
    out n3
}

# The same cell where the input width is another choice than the cell's.
cell nats_cell_proj(x) {
    n1 = x:nor_conv_3x3
    n2 = x:nor_conv_3x3 + n1:nor_conv_3x3
    n3 = x:nats_skip + n1:nor_conv_3x3 + n2:nor_conv_3x3
    out n3
}

network nats_sss(
    C1 = {8, 16, 24, 32, 40, 48, 56, 64},
    C2 = {8, 16, 24, 32, 40, 48, 56, 64},
    C3 = {8, 16, 24, 32, 40, 48, 56, 64},
    C4 = {8, 16, 24, 32, 40, 48, 56, 64},
    C5 = {8, 16, 24, 32, 40, 48, 56, 64},
    classes = 10,
    channels = 3,
    size = 32,
) {
    input(channels, size)
    stem conv3x3_bn(C1)
    nats_cell @ C1
    resblock(C2, stride = 2)
    nats_cell_proj @ C3
    resblock(C4, stride = 2)
    nats_cell_proj @ C5
    head bn_relu_pool_linear(classes)
}
