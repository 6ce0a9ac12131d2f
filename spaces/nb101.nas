# A NAS-Bench-101-style space (Ying et al., ICML 2019): a cell is a small DAG of vertices, each
# a conv-BN-ReLU or a max pooling applied to the sum of its inputs, and which edges exist is
# searched. NAS-Bench-101 caps a cell at 9 edges; here a cell of 3 vertices has its 3 chain
# edges fixed and keeps 3 of its 6 other edges (each `none` or a plain skip). The cells, the
# chain and the downsampling between stages follow NAS-Bench-101 at a smaller scale.

preset nb201

# Conv 3x3, BN, ReLU: NAS-Bench-101's conv3x3-bn-relu vertex.
op conv3x3_bn_relu = conv(3, stride = stride) -> bn -> relu

# Conv 1x1, BN, ReLU: NAS-Bench-101's conv1x1-bn-relu vertex.
op conv1x1_bn_relu = conv(1, stride = stride) -> bn -> relu

ops vertex = {conv3x3_bn_relu, conv1x1_bn_relu, max_pool_3x3}
ops link = {none, skip_connect}

cell nb101(x) {
    v1 = x:vertex
    a2 = v1:skip_connect + x:link
    v2 = a2:vertex
    a3 = v2:skip_connect + x:link + v1:link
    v3 = a3:vertex
    o = v3:skip_connect + x:link + v1:link + v2:link
    keep 3 of {x->a2, x->a3, v1->a3, x->o, v1->o, v2->o}
    keep 1 per edge
    out o
}

network nb101(C = 16, N = 2, classes = 10, channels = 3, size = 32) {
    input(channels, size)
    stem conv3x3_bn_relu(C)
    repeat N nb101 @ C
    conv3x3_bn_relu(2C, stride = 2)
    repeat N nb101 @ 2C
    conv3x3_bn_relu(4C, stride = 2)
    repeat N nb101 @ 4C
    head pool_linear(classes)
}
