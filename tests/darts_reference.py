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
