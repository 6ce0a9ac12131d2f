"""The module classes that ops are built from where torch has none: identity, zero, DARTS'
FactorizedReduce and auxiliary head, the residual, product, global pooling, squeeze-excite and
pooled sequences that op definitions in the language build, and the fusion of a cell input that
reads `from all`."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


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
        if x.dim() < 4:  # a vector (B, F) or a sequence (B, L, F): features on the last axis
            return x.new_zeros((*x.shape[:-1], self.C_out))
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


class Residual(nn.Module):
    """The body's output plus the shortcut's (the input itself when there is no shortcut).

    The body's steps are children of this module, named by their labels (or numbered), and the
    shortcut is the child named by its label (`shortcut` unless labelled); an identity shortcut
    is None.
    """

    def __init__(self, steps: OrderedDict, shortcut_name: str, shortcut: nn.Module | None):
        super().__init__()
        self._order = list(steps)
        for name, module in steps.items():
            self.add_module(name, module)
        self._shortcut = shortcut_name
        setattr(self, shortcut_name, shortcut)

    def forward(self, x):
        residual = getattr(self, self._shortcut)
        residual = x if residual is None else residual(x)
        for name in self._order:
            x = self._modules[name](x)
        return residual + x


class Product(Residual):
    """The body's output times the other factor's (the input itself when there is none); a factor
    pooled to (N, C, 1, 1) broadcasts over the other's pixels.

    Its children are named as a residual's: the body's steps by their labels (or numbered), the
    other factor by its label (`other` unless labelled); an identity factor is None.
    """

    def forward(self, x):
        other = getattr(self, self._shortcut)
        other = x if other is None else other(x)
        for name in self._order:
            x = self._modules[name](x)
        return x * other


class GlobalPool(nn.Module):
    """Global average pooling kept a map, (N, C, H, W) to (N, C, 1, 1): a gate's first step
    (torch's `AdaptiveAvgPool2d(1)`, which a pooled sequence would flatten)."""

    def forward(self, x):
        return nn.functional.adaptive_avg_pool2d(x, 1)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: the input times a per-channel gate computed from its global mean
    (1x1 conv to `mid`, ReLU, 1x1 conv back, sigmoid), as in torchvision's `SqueezeExcitation`."""

    def __init__(self, channels: int, mid: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, mid, 1)
        self.fc2 = nn.Conv2d(mid, channels, 1)

    def forward(self, x):
        scale = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * scale


class Pooled(nn.Sequential):
    """A sequence with a global pooling step, whose output it flattens (so a head's modules are
    torch's own: `AdaptiveAvgPool2d`, then `Linear`)."""

    def forward(self, x):
        for module in self:
            x = module(x)
            if isinstance(module, nn.AdaptiveAvgPool2d) or (
                isinstance(module, Pooled) and x.dim() == 4
            ):
                x = torch.flatten(x, 1)
        return x


class Fuse(nn.ModuleList):
    """A cell input that reads `from all`: each earlier output through its own adapter (brought
    to the cell's width and resolution), summed, as DCNAS' fusion module."""

    def forward(self, outputs):
        total = self[0](outputs[0])
        for adapter, output in zip(self[1:], outputs[1:], strict=True):
            total = total + adapter(output)
        return total


# --- sequences (docs/language.md, section 25) ----------------------------------------------------


class Neg(nn.Module):
    """The input negated: with a sum node or a residual, a difference."""

    def forward(self, x):
        return -x


class FeatureNorm(nn.BatchNorm1d):
    """BatchNorm over the features on the last axis: of vectors (B, F) or of every time step of
    a sequence (B, L, F)."""

    def forward(self, x):
        if x.dim() == 3:
            return super().forward(x.transpose(1, 2)).transpose(1, 2)
        if x.dim() != 2:
            raise RuntimeError(f"bn1d reads vectors or sequences, not a {x.dim()}-d tensor")
        return super().forward(x)


class TimeConv(nn.Module):
    """A 1-D convolution over the time axis of a sequence (B, L, F), padded to keep L at
    stride 1 (odd kernels)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, dilation: int, bias: bool):
        super().__init__()
        pad = dilation * (k - 1) // 2
        self.conv = nn.Conv1d(c_in, c_out, k, stride, pad, dilation, bias=bias)

    def forward(self, x):
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


class TimePool(nn.Module):
    """Max or average pooling over the time axis of a sequence (B, L, F), padded by k // 2."""

    def __init__(self, kind: str, k: int, stride: int):
        super().__init__()
        if kind == "max":
            self.pool = nn.MaxPool1d(k, stride, k // 2)
        else:
            self.pool = nn.AvgPool1d(k, stride, k // 2, count_include_pad=False)

    def forward(self, x):
        return self.pool(x.transpose(1, 2)).transpose(1, 2)
