"""The op library: a registry of ops, each built from `(C_in, C_out, stride, affine)`.

The built-in ops are defined in the language, in the prelude `nasc/dsl/prelude.nas` (built by
`oplang`); their semantics follow the reference implementations so that exported networks
reproduce published sizes: the NAS-Bench-201 cell ops (D-X-Y/AutoDL-Projects,
`cell_operations.py`: ReLU-Conv-BN with a conv bias exactly when the BN is not affine, average
pooling that does not count padding) and the DARTS ops (quark0/darts, `operations.py`: separable
convs as two stacked ReLU-depthwise-pointwise-BN, dilated convs, FactorizedReduce). This module
holds the registry, the modules primitives need that torch lacks, and the ops that stay Python.
A plugin registers more with `register_op` (`nasc ... --ops MODULE`).
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


def get_op(name: str, defs: tuple = ()) -> OpEntry:
    """The registered op `name`, or an op defined in the language by its canonical name
    (`mbconv(6,5)`), from a space's own definitions `defs` or the prelude.

    Raises:
        NascUsageError: for an unknown name, listing the known ones.
    """
    entry = OPS.get(name)
    if entry is not None:
        return entry
    from .oplang import defined_entry

    entry = defined_entry(name, tuple(defs))
    if entry is None:
        raise NascUsageError(f"unknown op `{name}`", hint=f"known ops: {', '.join(sorted(OPS))}")
    return entry


def catalog() -> dict[str, OpInfo]:
    """What the language checks names against: every registered op's role and fixed stride,
    and the prelude's parametric ops with their parameters."""
    from nasc.dsl.opdefs import prelude_catalog

    found = {name: OpInfo(role=e.role, stride=e.stride, doc=e.doc) for name, e in OPS.items()}
    for name, info in prelude_catalog().items():
        if info.params:
            found.setdefault(name, info)
    return found


# --- building blocks -----------------------------------------------------------------------------


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
        # Told from the strides alone, which stay plain ints under tracing (the shape does not):
        # channels-last steps C elements per pixel; with one channel, it is the layout whose
        # channel stride is 1 while an image holds more than one pixel.
        channels_last = x.stride(3) != 1 or x.stride(1) == 1 < x.stride(0)
        if channels_last:
            # Copied before the ReLU, so the backward keeps one tensor (the ReLU's output, which
            # conv_1 reads) rather than the ReLU's channels-last output and its NCHW copy.
            x = x.clone(memory_format=torch.contiguous_format)
        x = self.relu(x)
        if channels_last:
            # A 1x1 conv of stride 2 reads only every other pixel: conv_2 runs at stride 1 on
            # those pixels of the shifted grid, so its backward keeps a quarter of the input,
            # not a shifted copy of all of it (the same sums).
            odd = nn.functional.pad(x[:, :, 1::2, 1::2], (0, x.shape[3] % 2, 0, x.shape[2] % 2))
            second = nn.functional.conv2d(odd.contiguous(), self.conv_2.weight, self.conv_2.bias)
        else:
            shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:].contiguous()
            second = self.conv_2(shifted)
        output = self.bn(torch.cat([self.conv_1(x), second], dim=1))
        return output.contiguous(memory_format=torch.channels_last) if channels_last else output


# --- ops that stay in Python ---------------------------------------------------------------------
# Every other built-in op is defined in the prelude (`nasc/dsl/prelude.nas`). DARTS' auxiliary
# heads stay here: each works only at the input resolutions it was designed for (its 5x5 pooling
# and 2x2 convolution assume 8x8 or 7x7 features, `sizes`), which an op definition cannot state.


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


# The prelude's ops join the registry once the Python ones are in (the builder reads the classes
# above).
from .oplang import register_prelude  # noqa: E402

register_prelude()
BUILTIN = frozenset(OPS)  # what ships with nasc; anything else a plugin registered
