"""The names, roles and fixed strides of the registered ops, without importing PyTorch, so that
`nasc check` and `nasc show` stay quick; a test keeps this table equal to the op registry."""

from __future__ import annotations

from nasc.dsl import OpInfo

# name: (role, fixed stride, one-line doc); tests/runtime/test_cli.py compares it with the ops.
OP_TABLE: dict[str, tuple[str, int | None, str]] = {
    "none": ("op", None, "Zero: the edge contributes nothing (never computed)."),
    "skip_connect": ("op", None, "Identity; FactorizedReduce when it strides or changes channels."),
    "nor_conv_1x1": ("op", None, "ReLU-Conv1x1-BN (NAS-Bench-201)."),
    "nor_conv_3x3": ("op", None, "ReLU-Conv3x3-BN (NAS-Bench-201)."),
    "nor_conv_7x7": ("op", None, "ReLU-Conv7x7-BN (NAS-Bench-201)."),
    "avg_pool_3x3": ("op", None, "3x3 avg pooling without counting padding."),
    "max_pool_3x3": ("op", None, "3x3 max pooling."),
    "sep_conv_3x3": ("op", None, "Separable 3x3 conv, two ReLU-dw-pw-BN blocks (DARTS)."),
    "sep_conv_5x5": ("op", None, "Separable 5x5 conv, two ReLU-dw-pw-BN blocks (DARTS)."),
    "sep_conv_7x7": ("op", None, "Separable 7x7 conv, two ReLU-dw-pw-BN blocks (DARTS)."),
    "dil_conv_3x3": ("op", None, "Dilated 3x3 conv (dilation 2), ReLU-dw-pw-BN (DARTS)."),
    "dil_conv_5x5": ("op", None, "Dilated 5x5 conv (dilation 2), ReLU-dw-pw-BN (DARTS)."),
    "conv_7x1_1x7": ("op", None, "ReLU, 1x7 then 7x1 conv, BN (DARTS)."),
    "preprocess": (
        "op",
        None,
        "DARTS cell input: ReLU-Conv1x1-BN, or FactorizedReduce from twice the resolution.",
    ),
    "conv3x3_bn": ("op", None, "3x3 conv and BN: the CIFAR stem of NAS-Bench-201 and DARTS."),
    "darts_imagenet_stem0": (
        "op",
        4,
        "DARTS ImageNet stem 0: two stride-2 3x3 convs (C/2 then C wide) with BN and ReLU.",
    ),
    "darts_imagenet_stem1": ("op", 2, "DARTS ImageNet stem 1: ReLU, stride-2 3x3 conv, BN."),
    "resblock": (
        "op",
        None,
        "Two ReLU-Conv3x3-BN and a shortcut: NAS-Bench-201's residual (reduction) block.",
    ),
    "bn_relu_pool_linear": (
        "head",
        None,
        "BN, ReLU, global average pooling, linear: NAS-Bench-201's head.",
    ),
    "pool_linear": ("head", None, "Global average pooling and linear: DARTS' head."),
    "darts_aux_cifar": ("head", None, "DARTS' CIFAR auxiliary head (expects 8x8 features)."),
    "darts_aux_imagenet": (
        "head",
        None,
        "DARTS' ImageNet auxiliary head (expects 7x7 features; no BN after the 2x2 conv).",
    ),
}


def language_catalog() -> dict[str, OpInfo]:
    """What `nasc.compiler.catalog()` gives the language, read from the table above."""
    return {
        name: OpInfo(role=role, stride=stride, doc=doc)
        for name, (role, stride, doc) in OP_TABLE.items()
    }
