"""The functions generated forward code calls besides the modules: zero feature maps, drop path,
PC-DARTS' partial channels, the resizing of a per-pixel head's map to the image, and the fused
and lean kernels of the optimisation passes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional


def zeros(like: torch.Tensor, channels: int, stride: int) -> torch.Tensor:
    """A zero feature map for a node whose every edge is `none` or masked out."""
    if like.dim() == 2:  # one time step of a sequence: (batch, features)
        return like.new_zeros((like.shape[0], channels))
    height = (like.shape[2] + stride - 1) // stride
    width = (like.shape[3] + stride - 1) // stride
    return like.new_zeros((like.shape[0], channels, height, width))


def to_input(scores: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """A per-pixel head's map of class scores resized bilinearly to the image's height and width
    (align_corners=False), as torchvision's FCN and LRASPP models end."""
    return functional.interpolate(
        scores, size=image.shape[-2:], mode="bilinear", align_corners=False
    )


def drop_path(x: torch.Tensor, probability: float, training: bool) -> torch.Tensor:
    """Zero whole samples with the given probability, rescaling the rest (DARTS' drop path)."""
    if not training or probability <= 0.0:
        return x
    keep = 1.0 - probability
    # One draw per sample, whatever the sample's shape (a map, or a step's vector).
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask


def partial_channels(
    x: torch.Tensor,
    mixed: torch.Tensor | None,
    groups: int,
    stride: int,
    bypass_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """A PC-DARTS edge (Xu et al., ICLR 2020): the edge's mixed ops ran on the first 1/groups of
    `x`'s channels (`mixed`, None when only `none` is live); the other channels bypass them,
    max-pooled 2x2 when the edge strides, as the reference code does. The two are concatenated
    and the channels shuffled in `groups` groups (ShuffleNet's shuffle, as the paper).

    Args:
        bypass_weight: the edge's weight under edge normalisation, which scales the whole edge
            output (the mixed part already carries it in its op weights).
    """
    part = x.shape[1] // groups
    rest = x[:, part:]
    if stride > 1:
        rest = functional.max_pool2d(rest, 2, 2, ceil_mode=True)  # ceil: the ops' output size
    if bypass_weight is not None:
        rest = rest * bypass_weight
    if mixed is None:
        mixed = rest.new_zeros((rest.shape[0], part, *rest.shape[2:]))
    return functional.channel_shuffle(torch.cat([mixed, rest], dim=1), groups)


def fused_conv(x: torch.Tensor, convs: Sequence[nn.Conv2d], lanes: bool = False) -> torch.Tensor:
    """The convolutions `convs` as one: on the same input x, or, with `lanes`, each on its own
    equal slice of x's channels (a grouped convolution). The output holds their outputs one
    after another.

    Depthwise convolutions of one input run as one depthwise convolution with several outputs
    per channel, whose output is then reordered, so the input is neither copied nor saved twice.
    """
    first = convs[0]
    count = len(convs)
    groups = first.groups
    if not lanes and groups > 1 and groups == first.in_channels == first.out_channels:
        weight = torch.stack([conv.weight for conv in convs], dim=1).flatten(0, 1)
        bias = None if first.bias is None else torch.stack([c.bias for c in convs], 1).flatten()
        output = functional.conv2d(
            x, weight, bias, first.stride, first.padding, first.dilation, groups
        )
        batch, _, height, width = output.shape
        output = output.view(batch, groups, count, height, width).transpose(1, 2)
        return output.reshape(batch, count * groups, height, width)
    weight = torch.cat([conv.weight for conv in convs])
    bias = None if first.bias is None else torch.cat([conv.bias for conv in convs])
    if lanes or groups > 1:
        if not lanes:
            x = x.repeat(1, count, 1, 1)
        groups *= count
    return functional.conv2d(x, weight, bias, first.stride, first.padding, first.dilation, groups)


_SCALES: dict[tuple, torch.Tensor] = {}


def _scale_vector(scale: Sequence[float], channels: int, like: torch.Tensor) -> torch.Tensor:
    key = (tuple(scale), channels, like.dtype, like.device)
    vector = _SCALES.get(key)
    if vector is None:
        if len(_SCALES) > 256:
            _SCALES.clear()
        vector = torch.tensor(scale, dtype=like.dtype, device=like.device)
        vector = _SCALES[key] = vector.repeat_interleave(channels)
    return vector


def fused_batch_norm(
    x: torch.Tensor, bns: Sequence[nn.BatchNorm2d], scale: Sequence[float] | None = None
) -> torch.Tensor:
    """The BatchNorms `bns`, each over its own equal slice of x's channels, as one BN over all
    of them; each output slice multiplied by its `scale`. BN is per-channel, so this is the same
    computation; running statistics are read concatenated and written back to every module."""
    first = bns[0]
    weight = bias = None
    if first.affine:
        weight = torch.cat([bn.weight for bn in bns])
        bias = torch.cat([bn.bias for bn in bns])
    if scale is not None:
        vector = _scale_vector(scale, first.num_features, x)
        weight = vector if weight is None else weight * vector
        bias = None if bias is None else bias * vector
    if first.running_mean is None:
        return functional.batch_norm(x, None, None, weight, bias, True, 0.0, first.eps)
    # As nn.BatchNorm2d.forward: count the batch, then update with momentum (or the mean).
    factor = 0.0 if first.momentum is None else first.momentum
    update = first.training and first.track_running_stats
    if update:
        for bn in bns:
            bn.num_batches_tracked.add_(1)
        if first.momentum is None:
            factor = 1.0 / float(first.num_batches_tracked)
    mean = torch.cat([bn.running_mean for bn in bns])
    var = torch.cat([bn.running_var for bn in bns])
    output = functional.batch_norm(x, mean, var, weight, bias, first.training, factor, first.eps)
    if update:
        with torch.no_grad():
            for bn, m, v in zip(bns, mean.chunk(len(bns)), var.chunk(len(bns)), strict=True):
                bn.running_mean.copy_(m)
                bn.running_var.copy_(v)
    return output


class _AvgPool(torch.autograd.Function):
    """Average pooling whose backward keeps only the input's shape and strides: aten's gradient
    kernel, which autograd's own backward calls too, reads nothing else of its input."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor):
        ctx.settings = (kernel, stride, padding, ceil_mode, count_include_pad, divisor)
        ctx.like = (x.shape, x.stride(), x.dtype, x.device)
        return functional.avg_pool2d(x, *ctx.settings)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        shape, strides, dtype, device = ctx.like
        # Uninitialised: only its shape and layout are read.
        like = torch.empty_strided(shape, strides, dtype=dtype, device=device)
        grad = torch.ops.aten.avg_pool2d_backward(grad, like, *ctx.settings)
        return grad, None, None, None, None, None, None


def _window_starts(x: torch.Tensor, output: torch.Tensor, stride, padding) -> torch.Tensor:
    """The flat index in its plane of each output pixel's window's first pixel (may be < 0)."""
    rows = torch.arange(output.shape[2], device=x.device) * stride[0] - padding[0]
    columns = torch.arange(output.shape[3], device=x.device) * stride[1] - padding[1]
    return (rows[:, None] * x.shape[3] + columns[None, :]).view(1, 1, *output.shape[2:])


class _MaxPool(torch.autograd.Function):
    """Max pooling whose backward keeps neither its input nor int64 indices: only each argmax's
    offset from its window's first pixel, as int16 where it fits (else int32). aten's gradient
    kernel, which autograd's own backward calls, reads only the indices rebuilt from those."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation, ceil_mode):
        ctx.settings = (kernel, stride, padding, dilation, ceil_mode)
        ctx.like = (x.shape, x.stride(), x.dtype, x.device)
        output, indices = torch.ops.aten.max_pool2d_with_indices(x, *ctx.settings)
        reach = (kernel[0] - 1) * dilation[0] * x.shape[3] + (kernel[1] - 1) * dilation[1]
        starts = _window_starts(x, output, stride, padding)
        kind = torch.int16 if reach < 2**15 else torch.int32
        ctx.save_for_backward((indices - starts).to(kind))
        ctx.stride_padding = (stride, padding)
        return output

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (offsets,) = ctx.saved_tensors
        shape, strides, dtype, device = ctx.like
        like = torch.empty_strided(shape, strides, dtype=dtype, device=device)
        indices = offsets.to(torch.int64) + _window_starts(like, grad, *ctx.stride_padding)
        grad = torch.ops.aten.max_pool2d_with_indices_backward(grad, like, *ctx.settings, indices)
        return grad, None, None, None, None, None


def _pair(value) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [value, value]


def lean_pool(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`module` (nn.AvgPool2d or nn.MaxPool2d) on a 4-d x, with the same output and gradient,
    keeping less for the backward (the `lean_pool` pass). Without autograd it is the module."""
    if not (torch.is_grad_enabled() and x.requires_grad) or x.dim() != 4:
        return module(x)
    kernel, padding = _pair(module.kernel_size), _pair(module.padding)
    stride = _pair(module.stride) if module.stride else kernel
    if isinstance(module, nn.AvgPool2d):
        return _AvgPool.apply(
            x,
            kernel,
            stride,
            padding,
            module.ceil_mode,
            module.count_include_pad,
            module.divisor_override,
        )
    return _MaxPool.apply(x, kernel, stride, padding, _pair(module.dilation), module.ceil_mode)


# The names generated code reaches these by.
GLOBALS = {
    "torch": torch,
    "_zeros": zeros,
    "_to_input": to_input,
    "_drop_path": drop_path,
    "_partial": partial_channels,
    "_conv": fused_conv,
    "_bn": fused_batch_norm,
    "_pool": lean_pool,
}
