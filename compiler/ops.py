"""The op library: a registry of primitive ops, each built from `(C_in, C_out, stride, affine)`.

Semantics follow the reference implementations so that exported networks reproduce published
sizes: the NAS-Bench-201 cell ops (D-X-Y/AutoDL-Projects, `cell_operations.py`: ReLU-Conv-BN
with a conv bias exactly when the BN is not affine, average pooling that does not count padding)
and the DARTS ops (quark0/darts, `operations.py`: separable convs as two stacked
ReLU-depthwise-pointwise-BN, dilated convs, FactorizedReduce). Stems, the NB201 residual block and
the heads live here too, so that a `.nas` macro can name them.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from torch import nn

from nasc.dsl import NascUsageError, OpInfo


@attrs.frozen(kw_only=True)
class OpEntry:
    """A registered op: its builder and what the language and compiler need to know of it.

    Attributes:
        pooling: a parameter-free pooling op; a `pool_bn` cell follows it with a non-affine BN
            in the supernet (DARTS' MixedOp).
        zero: the op's output is zero (`none`); it is never run.
        identity: the op returns its input unchanged at stride 1 with equal channels.
        sizes: the input resolutions the op works at, when it cannot take others (the DARTS
            auxiliary heads end in a fixed-size linear layer); None for any.
    """

    name: str
    build: Callable[..., nn.Module]
    role: str = "op"
    stride: int | None = None
    pooling: bool = False
    zero: bool = False
    identity: bool = False
    sizes: tuple[int, ...] | None = None
    doc: str = ""


OPS: dict[str, OpEntry] = {}


def register_op(
    name: str,
    *,
    role: str = "op",
    stride: int | None = None,
    pooling: bool = False,
    zero: bool = False,
    identity: bool = False,
    sizes: tuple[int, ...] | None = None,
):
    """Register an op builder `(C_in, C_out, stride, affine) -> nn.Module` under `name`.

    Args:
        role: `op` for feature map to feature map, `head` for feature map to class scores.
        stride: a fixed stride for ops that choose their own (an ImageNet stem).
    """

    def decorate(build):
        doc = (build.__doc__ or "").strip().splitlines()[0] if build.__doc__ else ""
        OPS[name] = OpEntry(
            name=name,
            build=build,
            role=role,
            stride=stride,
            pooling=pooling,
            zero=zero,
            identity=identity,
            sizes=sizes,
            doc=doc,
        )
        return build

    return decorate


def get_op(name: str) -> OpEntry:
    """The registered op `name`.

    Raises:
        NascUsageError: for an unknown name, listing the known ones.
    """
    try:
        return OPS[name]
    except KeyError:
        raise NascUsageError(
            f"unknown op `{name}`", hint=f"known ops: {', '.join(sorted(OPS))}"
        ) from None


def catalog() -> dict[str, OpInfo]:
    """What the language checks names against: every registered op's role and fixed stride."""
    return {name: OpInfo(role=e.role, stride=e.stride, doc=e.doc) for name, e in OPS.items()}


# --- building blocks -----------------------------------------------------------------------------


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution, BatchNorm."""

    def __init__(
        self, C_in, C_out, kernel, stride, padding, dilation, affine, bias, track_running_stats=True
    ):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                C_in, C_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias
            ),
            nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise (dilated) convolution, pointwise convolution, BatchNorm (DARTS)."""

    def __init__(
        self, C_in, C_out, kernel, stride, padding, dilation, affine, track_running_stats=True
    ):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                C_in,
                C_in,
                kernel,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=C_in,
                bias=False,
            ),
            nn.Conv2d(C_in, C_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
        )


class SepConv(nn.Sequential):
    """Two stacked DilConv blocks without dilation; only the first strides (DARTS)."""

    def __init__(self, C_in, C_out, kernel, stride, padding, affine, track_running_stats=True):
        super().__init__(
            DilConv(C_in, C_in, kernel, stride, padding, 1, affine, track_running_stats),
            DilConv(C_in, C_out, kernel, 1, padding, 1, affine, track_running_stats),
        )


class Identity(nn.Module):
    """The input, unchanged."""

    def forward(self, x):
        return x


class Zero(nn.Module):
    """A zero output of the op's shape; the compiler never runs it, but it is a real op."""

    def __init__(self, C_out: int, stride: int):
        super().__init__()
        self.C_out = C_out
        self.stride = stride

    def forward(self, x):
        height = (x.shape[2] + self.stride - 1) // self.stride
        width = (x.shape[3] + self.stride - 1) // self.stride
        return x.new_zeros((x.shape[0], self.C_out, height, width))


def plain_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The strides of a contiguous NCHW tensor of this shape."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


class FactorizedReduce(nn.Module):
    """ReLU, two stride-2 1x1 convs on offset pixel grids, concatenated, BatchNorm.

    The second conv reads the input shifted by one pixel, padded so odd sizes work; on even sizes
    this equals DARTS' `x[:, :, 1:, 1:]`. At stride 1 it is a 1x1 conv and BN (NAS-Bench-201).
    """

    def __init__(self, C_in, C_out, stride, affine, track_running_stats=True):
        super().__init__()
        self.stride = stride
        self.relu = nn.ReLU(inplace=False)
        if stride == 2:
            self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
            self.conv_2 = nn.Conv2d(C_in, C_out - C_out // 2, 1, stride=2, padding=0, bias=False)
        else:
            self.conv = nn.Conv2d(C_in, C_out, 1, stride=1, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats)

    def forward(self, x):
        if self.stride == 1:
            return self.bn(self.conv(x))
        # This PyTorch's oneDNN backward of a strided 1x1 conv on channels-last input corrupts
        # the heap when the input has few channels (seen with 1 to 6): run it on plain NCHW.
        x = self.relu(x)
        layout = plain_strides(x.shape)
        channels_last = x.stride() != layout
        if channels_last:  # with one channel, both layouts count as contiguous: compare strides
            x = x.clone(memory_format=torch.contiguous_format)
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:].contiguous()
        output = self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))
        return output.contiguous(memory_format=torch.channels_last) if channels_last else output


class Pooling(nn.Module):
    """3x3 pooling; a ReLU-Conv1x1-BN first when the channels change (NAS-Bench-201's POOLING)."""

    def __init__(self, C_in, C_out, stride, mode, affine, track_running_stats=True):
        super().__init__()
        self.preprocess = (
            None
            if C_in == C_out
            else ReLUConvBN(C_in, C_out, 1, 1, 0, 1, affine, not affine, track_running_stats)
        )
        if mode == "avg":
            self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        else:
            self.pool = nn.MaxPool2d(3, stride=stride, padding=1)

    def forward(self, x):
        if self.preprocess is not None:
            x = self.preprocess(x)
        return self.pool(x)


# --- cell ops -------------------------------------------------------------------------------------
# Builders take `track_running_stats` as a keyword so searches can use batch statistics in BN
# (the IS-DARTS reference does), while evaluation networks keep running statistics.


@register_op("none", zero=True)
def _none(C_in, C_out, stride, affine, track_running_stats=True):
    """Zero: the edge contributes nothing (never computed)."""
    return Zero(C_out, stride)


@register_op("skip_connect", identity=True)
def _skip_connect(C_in, C_out, stride, affine, track_running_stats=True):
    """Identity; FactorizedReduce when it strides or changes channels."""
    if stride == 1 and C_in == C_out:
        return Identity()
    return FactorizedReduce(C_in, C_out, stride, affine, track_running_stats)


def _nor_conv(kernel):
    def build(C_in, C_out, stride, affine, track_running_stats=True):
        return ReLUConvBN(
            C_in, C_out, kernel, stride, kernel // 2, 1, affine, not affine, track_running_stats
        )

    build.__doc__ = f"ReLU-Conv{kernel}x{kernel}-BN (NAS-Bench-201)."
    return build


register_op("nor_conv_1x1")(_nor_conv(1))
register_op("nor_conv_3x3")(_nor_conv(3))
register_op("nor_conv_7x7")(_nor_conv(7))


def _pool(mode):
    def build(C_in, C_out, stride, affine, track_running_stats=True):
        return Pooling(C_in, C_out, stride, mode, affine, track_running_stats)

    build.__doc__ = f"3x3 {mode} pooling" + (" without counting padding." if mode == "avg" else ".")
    return build


register_op("avg_pool_3x3", pooling=True)(_pool("avg"))
register_op("max_pool_3x3", pooling=True)(_pool("max"))


def _sep_conv(kernel):
    def build(C_in, C_out, stride, affine, track_running_stats=True):
        return SepConv(C_in, C_out, kernel, stride, kernel // 2, affine, track_running_stats)

    build.__doc__ = f"Separable {kernel}x{kernel} conv, two ReLU-dw-pw-BN blocks (DARTS)."
    return build


register_op("sep_conv_3x3")(_sep_conv(3))
register_op("sep_conv_5x5")(_sep_conv(5))
register_op("sep_conv_7x7")(_sep_conv(7))


def _dil_conv(kernel):
    def build(C_in, C_out, stride, affine, track_running_stats=True):
        return DilConv(
            C_in, C_out, kernel, stride, 2 * (kernel // 2), 2, affine, track_running_stats
        )

    build.__doc__ = f"Dilated {kernel}x{kernel} conv (dilation 2), ReLU-dw-pw-BN (DARTS)."
    return build


register_op("dil_conv_3x3")(_dil_conv(3))
register_op("dil_conv_5x5")(_dil_conv(5))


@register_op("conv_7x1_1x7")
def _conv_7x1_1x7(C_in, C_out, stride, affine, track_running_stats=True):
    """ReLU, 1x7 then 7x1 conv, BN (DARTS)."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(C_in, C_in, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
        nn.Conv2d(C_in, C_out, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
        nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
    )


@register_op("preprocess")
def _preprocess(C_in, C_out, stride, affine, track_running_stats=True):
    """DARTS cell input: ReLU-Conv1x1-BN, or FactorizedReduce from twice the resolution."""
    if stride == 2:
        return FactorizedReduce(C_in, C_out, 2, affine, track_running_stats)
    return ReLUConvBN(C_in, C_out, 1, 1, 0, 1, affine, False, track_running_stats)


# --- stems and blocks -----------------------------------------------------------------------------


@register_op("conv3x3_bn")
def _conv3x3_bn(C_in, C_out, stride, affine, track_running_stats=True):
    """3x3 conv and BN: the CIFAR stem of NAS-Bench-201 and DARTS."""
    return nn.Sequential(
        nn.Conv2d(C_in, C_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
    )


@register_op("darts_imagenet_stem0", stride=4)
def _darts_imagenet_stem0(C_in, C_out, stride, affine, track_running_stats=True):
    """DARTS ImageNet stem 0: two stride-2 3x3 convs (C/2 then C wide) with BN and ReLU."""
    return nn.Sequential(
        nn.Conv2d(C_in, C_out // 2, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C_out // 2, affine=affine, track_running_stats=track_running_stats),
        nn.ReLU(inplace=False),
        nn.Conv2d(C_out // 2, C_out, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
    )


@register_op("darts_imagenet_stem1", stride=2)
def _darts_imagenet_stem1(C_in, C_out, stride, affine, track_running_stats=True):
    """DARTS ImageNet stem 1: ReLU, stride-2 3x3 conv, BN."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(C_in, C_out, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
    )


class ResNetBasicBlock(nn.Module):
    """Two ReLU-Conv3x3-BN and a shortcut: NAS-Bench-201's residual (reduction) block."""

    def __init__(self, C_in, C_out, stride, affine, track_running_stats=True):
        super().__init__()
        self.conv_a = ReLUConvBN(
            C_in, C_out, 3, stride, 1, 1, affine, not affine, track_running_stats
        )
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1, 1, affine, not affine, track_running_stats)
        if stride == 2:
            # ceil_mode: odd sizes halve to ceil(size / 2), as the strided convs and the plan do.
            self.downsample = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=True),
                nn.Conv2d(C_in, C_out, 1, stride=1, padding=0, bias=False),
            )
        elif C_in != C_out:
            self.downsample = ReLUConvBN(
                C_in, C_out, 1, 1, 0, 1, affine, not affine, track_running_stats
            )
        else:
            self.downsample = None

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


register_op("resblock")(ResNetBasicBlock)


# --- heads ---------------------------------------------------------------------------------------


class Classifier(nn.Module):
    """Optional BN-ReLU, global average pooling, linear layer."""

    def __init__(self, C_in, classes, pre_activation, affine=True, track_running_stats=True):
        super().__init__()
        self.lastact = (
            nn.Sequential(
                nn.BatchNorm2d(C_in, affine=affine, track_running_stats=track_running_stats),
                nn.ReLU(inplace=False),
            )
            if pre_activation
            else None
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_in, classes)

    def forward(self, x):
        if self.lastact is not None:
            x = self.lastact(x)
        return self.classifier(torch.flatten(self.global_pooling(x), 1))


@register_op("bn_relu_pool_linear", role="head")
def _bn_relu_pool_linear(C_in, classes, stride, affine, track_running_stats=True):
    """BN, ReLU, global average pooling, linear: NAS-Bench-201's head."""
    return Classifier(C_in, classes, True, affine, track_running_stats)


@register_op("pool_linear", role="head")
def _pool_linear(C_in, classes, stride, affine, track_running_stats=True):
    """Global average pooling and linear: DARTS' head."""
    return Classifier(C_in, classes, False)


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier: ReLU, 5x5 average pooling, 1x1 and 2x2 convs, linear."""

    def __init__(self, C_in, classes, pool_stride, final_bn, affine=True, track_running_stats=True):
        super().__init__()
        layers = [
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False),
            nn.Conv2d(C_in, 128, 1, bias=False),
            nn.BatchNorm2d(128, affine=affine, track_running_stats=track_running_stats),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        if final_bn:
            layers.append(
                nn.BatchNorm2d(768, affine=affine, track_running_stats=track_running_stats)
            )
        layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


@register_op("darts_aux_cifar", role="head", sizes=(8, 9, 10))
def _darts_aux_cifar(C_in, classes, stride, affine, track_running_stats=True):
    """DARTS' CIFAR auxiliary head (expects 8x8 features)."""
    return AuxiliaryHead(C_in, classes, 3, True)


@register_op("darts_aux_imagenet", role="head", sizes=(7, 8))
def _darts_aux_imagenet(C_in, classes, stride, affine, track_running_stats=True):
    """DARTS' ImageNet auxiliary head (expects 7x7 features; no BN after the 2x2 conv)."""
    return AuxiliaryHead(C_in, classes, 2, False)
