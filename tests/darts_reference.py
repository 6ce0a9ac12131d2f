"""The IS-DARTS reference code's DARTS candidate list, in its order (it breaks exact ties when
shrinking), written out once for the tests that compare nasc with it."""

REFERENCE_DARTS_ORDER = (
    "none",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "avg_pool_3x3",
    "max_pool_3x3",
)


def reference_search_weights(C: int, N: int, classes: int = 10, biases: bool = True) -> int:
    """The weight count of the IS-DARTS reference's DARTS-space search network, counted from its
    structure (xautodl's NASNetworkISDarts with affine=False: N normal cells per stage, a
    reduction cell between stages, stem 3C with an affine BN, a BN-ReLU-pool-linear head).

    Its search-time convolutions in front of a non-affine BN keep a bias (`bias=not affine`);
    `biases=False` counts without them, as nasc builds them.
    """

    def conv(c_in, c_out, k=1, groups=1, bias=False):
        return c_in // groups * c_out * k * k + (c_out if bias and biases else 0)

    def sep(c, k):  # ReLU, depthwise k x k, pointwise 1x1 (with bias), BN
        return conv(c, c, k, groups=c) + conv(c, c, bias=True)

    def factorized(c_in, c_out):  # two strided 1x1 convs, each with a bias
        return conv(c_in, c_out // 2, bias=True) + conv(c_in, c_out - c_out // 2, bias=True)

    def edge(c, stride):
        # none, skip_connect, sep 3x3 and 5x5 (two stacked), dil 3x3 and 5x5 (one), 2 poolings
        skip = factorized(c, c) if stride == 2 else 0
        return skip + 2 * sep(c, 3) + 2 * sep(c, 5) + sep(c, 3) + sep(c, 5)

    total = conv(3, 3 * C, 3) + 2 * 3 * C  # stem conv and its affine BN
    widths = [C] * N + [2 * C] * (N + 1) + [4 * C] * (N + 1)
    reductions = [False] * N + [True] + [False] * N + [True] + [False] * N
    prev_prev, prev, reduced_before = 3 * C, 3 * C, False
    for width, reduction in zip(widths, reductions):
        total += (
            factorized(prev_prev, width) if reduced_before else conv(prev_prev, width, bias=True)
        )
        total += conv(prev, width, bias=True)
        for node in range(4):
            for source in range(2 + node):
                total += edge(width, 2 if reduction and source < 2 else 1)
        prev_prev, prev, reduced_before = prev, 4 * width, reduction
    return total + 2 * prev + prev * classes + classes  # head: affine BN, linear
