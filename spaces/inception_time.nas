# An InceptionTime-like space (Ismail Fawaz et al., 2020): each module reduces its input with a
# 1x1 bottleneck, runs three convolutions of searched kernel length side by side, adds a max
# pooling branch, and concatenates the four. The language has no 1-D input yet, so a series is a
# row of the feature map and every kernel is 1 x k: each row is convolved along its length only
# (the pooling branch's 3x3 window also spans rows, which on a one-row map is the 1-D pooling).
# InceptionTime's kernels 10, 20 and 40 suit series of hundreds of steps; these suit short rows.

preset nb201

# A 1 x k convolution, BN and ReLU: one branch of an Inception module.
op tconv(k) = conv(k, kh = 1, sw = stride, sh = 1) -> bn -> relu

# The bottleneck: a 1x1 convolution to the module's width, no activation (as InceptionTime).
op bottleneck = conv(1, stride = stride)

# Max pooling, then a 1x1 convolution, BN and ReLU: the fourth branch.
op pool_branch = maxpool(3, stride = stride) -> conv(1) -> bn -> relu

ops kernels = {tconv(3), tconv(5), tconv(7)}

cell inception(x) {
    b = x:bottleneck
    k1 = b:kernels
    k2 = b:kernels
    k3 = b:kernels
    p = x:pool_branch
    keep 1 per edge
    out concat(k1, k2, k3, p)
}

network inception_time(C = 8, N = 3, classes = 10, channels = 3, size = 32) {
    input(channels, size)
    stem tconv(C, 3)
    repeat N inception @ C
    head bn_relu_pool_linear(classes)
}
