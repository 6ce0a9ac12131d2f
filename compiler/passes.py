"""Optimisation passes over the live ops of a cell, run before its forward code is generated.

Every op module is read as a chain of steps (ReLU, convolution, BatchNorm, pooling; anything else
is one opaque call). The candidates that read one source then form a tree of those chains, and
the passes decide how the tree runs:

- `cse`: a step without parameters or state (ReLU, pooling, a BN without affine parameters or
  running statistics) that several candidates apply to the same value is computed once;
- `fuse`: dense convolutions of the same shape that several candidates apply to the same value
  run as one wider convolution with their weights concatenated, and the candidates' further
  identical steps without a convolution run on the wide tensor too (BN over the concatenated
  channels, which is per-channel and so the same computation), until the chains end or differ;
  then it is split. Grouped and depthwise convolutions could fuse too (`fused_conv` runs them),
  but oneDNN runs those slower than separate ones on the CPU (see `_fusable`);
- `fold`: the constant mixing scale (1/|candidates|) of candidates that end in a fused BN is
  multiplied into that BN's weight, where it costs nothing;
- `lean_pool`: pooling runs through `pool`, whose backward keeps less than autograd's: average
  pooling only its input's shape (its gradient does not read the input's values), max pooling
  its argmax as an int16 offset within its window, not its input nor int64 indices (the same
  gradient kernel reads only the indices, rebuilt from those);
- `accumulate` (in `codegen`): a node's sum of several terms is one new tensor the others are
  added into in place, so it allocates one buffer rather than one per `+`;
- `inplace_relu`: a ReLU that follows a convolution, BN or pooling inside one op's chain (DARTS'
  separable convolution: BN, ReLU, convolution) runs in place: none of those keeps its output
  for the backward, so the tensor before the ReLU need not live beside the one after it.

Weights are concatenated at forward time from the original modules, so parameters, gradients,
state_dict keys, optimizers, checkpoints and export are unchanged. The passes run again at every
mask change, so dead candidates leave the fused kernels too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import attrs
import torch
from torch import nn
from torch.nn import functional

from .modules import Identity

PASSES = {
    "cse": "compute a step without parameters shared by candidates on one value once",
    "fuse": "run same-shaped convolutions and BNs on one value as one (grouped) kernel",
    "fold": "multiply the constant mixing scale into the fused BN that ends a candidate",
    "lean_pool": "pooling whose backward keeps only the input's shape (max: int16 argmax offsets)",
    "accumulate": "sum a node's terms into one new tensor in place",
    "inplace_relu": "a ReLU after a convolution, BN or pooling of the same op runs in place",
}
DEFAULT_PASSES = tuple(PASSES)


# --- ops as chains of steps -----------------------------------------------------------------------


@attrs.frozen
class Step:
    """One step of an op's chain.

    Attributes:
        kind: `relu`, `conv`, `bn`, `pool`, or `call` (an opaque module, run as it is).
        path: where the step's module sits inside the op module (ints index a Sequential).
        key: what must agree for two steps to share or fuse: the step's settings in every
            instance of the cell type (instances differ in width).
        free: no parameters and no state: equal keys on one value give one result.
    """

    kind: str
    path: tuple
    key: tuple
    free: bool


def _steps(module: nn.Module, path: tuple = ()) -> list[tuple[str, tuple, tuple, bool]] | None:
    """The chain of one module as (kind, path, key, free); None when it is no plain chain."""
    kind = type(module)
    if isinstance(module, nn.Sequential) and kind.forward is nn.Sequential.forward:
        found = []
        for name, child in module.named_children():
            # Labelled steps of an op defined in the language have names (`pool`), others numbers.
            inner = _steps(child, (*path, int(name) if name.isdigit() else name))
            if inner is None:
                return None
            found.extend(inner)
        return found
    if kind in (Identity, nn.Identity):
        return []
    if kind is nn.ReLU and not module.inplace:
        return [("relu", path, ("relu",), True)]
    if kind in (nn.AvgPool2d, nn.MaxPool2d):
        settings = (kind.__name__, repr(module))
        if kind is nn.AvgPool2d:
            settings += (module.count_include_pad, module.divisor_override, module.ceil_mode)
        elif module.return_indices:
            return None
        else:
            settings += (module.dilation, module.ceil_mode)
        return [("pool", path, settings, True)]
    if kind is nn.Conv2d and module.padding_mode == "zeros" and not isinstance(module.padding, str):
        key = (
            "conv",
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            module.groups,
            module.bias is not None,
        )
        return [("conv", path, key, False)]
    if kind is nn.BatchNorm2d:
        key = ("bn", module.num_features, module.eps, module.momentum, module.affine)
        key += (module.track_running_stats,)
        return [("bn", path, key, not module.affine and not module.track_running_stats)]
    return None


def op_steps(modules: Sequence[nn.Module], tag: tuple) -> tuple[Step, ...]:
    """The chain of an op, read from its module in every instance of the cell type.

    Args:
        modules: the op's module in each instance.
        tag: the (edge, op) the chain belongs to, which makes an opaque call unique.
    """
    chains = [_steps(module) for module in modules]
    first = chains[0]
    if first is None or any(
        chain is None
        or len(chain) != len(first)
        or any(a[:2] != b[:2] or a[3] != b[3] for a, b in zip(chain, first, strict=True))
        for chain in chains
    ):
        return (Step(kind="call", path=(), key=("call", *tag), free=False),)
    return tuple(
        Step(kind=kind, path=path, key=tuple(chain[index][2] for chain in chains), free=free)
        for index, (kind, path, _, free) in enumerate(first)
    )


# --- the kernels that fused code calls ------------------------------------------------------------


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


GLOBALS = {"_conv": fused_conv, "_bn": fused_batch_norm, "_pool": lean_pool}


# --- planning and emitting one source's candidates ------------------------------------------------


@attrs.frozen
class Candidate:
    """A live op on an edge, as the passes see it."""

    edge: str
    op: str
    steps: tuple[Step, ...]

    def ref(self, path: tuple = ()) -> str:
        """How generated code names the module at `path` inside this candidate's op."""
        text = f"e[{self.edge!r}][{self.op!r}]"
        for part in path:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text


@attrs.frozen
class Term:
    """How a node reads a candidate's output: an expression, and whether the mixing scale is
    already in it."""

    expr: str
    scaled: bool = False


class SourceBlock:
    """The statements that compute every candidate reading one value, under the chosen passes.

    Args:
        source: the variable holding the value.
        candidates: its readers, in the order of the unoptimised code.
        scales: the mixing scale of each (edge, op) whose term the node scales, if any.
        passes: the enabled pass names.
        fresh: makes a new variable name from a hint.
    """

    def __init__(
        self,
        source: str,
        candidates: Sequence[Candidate],
        scales: dict[tuple[str, str], float],
        passes: Sequence[str],
        fresh: Callable[[str], str],
    ):
        self.passes = set(passes)
        self.scales = scales
        self.fresh = fresh
        self.lines: list[str] = []
        self.terms: dict[tuple[str, str], Term] = {}
        self.base = source
        self._single(source, [(candidate, 0) for candidate in candidates])

    def _single(self, value: str, items: list[tuple[Candidate, int]]) -> None:
        """Candidates at step `index` of their chains, all reading the plain tensor `value`."""
        groups: dict[tuple, list[tuple[Candidate, int]]] = {}
        for candidate, index in items:
            if index == len(candidate.steps):
                self.terms[(candidate.edge, candidate.op)] = Term(expr=value)
                continue
            step = candidate.steps[index]
            # Fusion starts at a dense convolution; a stateful BN on one value runs per
            # candidate, and so do depthwise convolutions (see `_fusable`).
            shares = ("cse" if step.free else "fuse") in self.passes
            shares = shares and (step.free or _fusable(step, lanes=False))
            key = step.key if shares else (step.key, candidate.edge, candidate.op)
            groups.setdefault(key, []).append((candidate, index))
        for group in groups.values():
            candidate, index = group[0]
            step = candidate.steps[index]
            if len(group) == 1:
                self._rest(value, candidate, index)
            elif step.free:
                name = self.fresh(f"{value}_{step.kind}")
                self.lines.append(f"    {name} = {self._free(step, candidate, value)}")
                self._single(name, [(c, i + 1) for c, i in group])
            else:
                self._lanes(value, group)

    def _free(self, step: Step, candidate: Candidate, value: str, after: str | None = None) -> str:
        """The call of one step on `value`; `after`: the kind of the step of the same op that
        made `value` (None when others may read it too)."""
        if step.kind == "relu":
            # Convolution, BN and pooling keep their input, not their output, for the backward.
            if after in ("conv", "bn", "pool") and "inplace_relu" in self.passes:
                return f"torch.relu_({value})"
            return f"torch.relu({value})"
        if step.kind == "pool" and "lean_pool" in self.passes:
            return f"_pool({candidate.ref(step.path)}, {value})"
        return f"{candidate.ref(step.path)}({value})"

    def _rest(self, value: str, candidate: Candidate, index: int) -> None:
        """One candidate's remaining steps, module by module (or the whole op from step 0)."""
        lean = "lean_pool" in self.passes and any(s.kind == "pool" for s in candidate.steps)
        if index == 0 and not lean:
            self.terms[(candidate.edge, candidate.op)] = Term(expr=f"{candidate.ref()}({value})")
            return
        steps = candidate.steps[index:]
        for position, step in enumerate(steps[:-1]):
            name = self.fresh(f"{value}_{step.kind}")
            made = position > 0 and steps[position - 1].kind  # what made `value` here
            call = self._free(step, candidate, value, after=made or None)
            self.lines.append(f"    {name} = {call}")
            value = name
        last = steps[-1]
        made = steps[-2].kind if len(steps) > 1 else None
        expr = self._free(last, candidate, value, after=made)
        self.terms[(candidate.edge, candidate.op)] = Term(expr=expr)

    def _lanes(self, value: str, lanes: list[tuple[Candidate, int]]) -> None:
        """Candidates whose next step is the same parametric one on `value`: run their common
        steps as one kernel on a tensor of one channel slice (lane) per candidate, then split."""
        count = len(lanes)
        shared = True
        scaled = False
        tag = "_".join(dict.fromkeys(c.op for c, _ in lanes))
        source = self.base if value == self.base else value
        while all(i < len(c.steps) for c, i in lanes) and (
            len({c.steps[i].key for c, i in lanes}) == 1
        ):
            candidate, index = lanes[0]
            step = candidate.steps[index]
            if step.kind == "conv" and not _fusable(step, lanes=not shared):
                break
            last = all(i + 1 == len(c.steps) for c, i in lanes)
            refs = [c.ref(c.steps[i].path) for c, i in lanes]
            name = self.fresh(f"{source}_{tag}_{step.kind}")
            if step.kind in ("conv", "bn"):
                helper, extra = "_conv", "" if shared else ", lanes=True"
                if step.kind == "bn":
                    helper, extra = "_bn", ""
                    factors = [self.scales.get((c.edge, c.op)) for c, _ in lanes]
                    if last and "fold" in self.passes and any(f is not None for f in factors):
                        extra = f", scale={tuple(1.0 if f is None else f for f in factors)!r}"
                        scaled = True
                self.lines.append(f"    {name} = {helper}({value}, (")
                self.lines.extend(f"        {ref}," for ref in refs)
                self.lines.append(f"    ){extra})")
            elif step.kind == "relu":
                made = None if shared else lanes[0][0].steps[lanes[0][1] - 1].kind
                self.lines.append(f"    {name} = {self._free(step, candidate, value, made)}")
            else:  # pooling is per channel: one pooling of the wide tensor
                self.lines.append(f"    {name} = {self._free(step, candidate, value)}")
            value = name
            shared = False
            lanes = [(c, i + 1) for c, i in lanes]
        names = [self.fresh(f"{c.edge.replace('->', '_')}_{c.op}") for c, _ in lanes]
        targets = ", ".join(names)
        if len(targets) + len(value) > 80:
            self.lines.append("    (")
            self.lines.extend(f"        {name}," for name in names)
            self.lines.append(f"    ) = {value}.chunk({count}, 1)")
        else:
            self.lines.append(f"    {targets} = {value}.chunk({count}, 1)")
        for (candidate, index), name in zip(lanes, names, strict=True):
            if index == len(candidate.steps):
                self.terms[(candidate.edge, candidate.op)] = Term(expr=name, scaled=scaled)
            else:
                self._rest(name, candidate, index)


def _fusable(step: Step, lanes: bool) -> bool:
    """Whether fusing this convolution pays: on the CPU, oneDNN runs grouped convolutions (the
    depthwise ones of several candidates as one, or pointwise ones on one slice per candidate)
    slower than the separate convolutions, so only dense convolutions of one value fuse (NB201's
    ReLU-Conv-BN of one node; measured in docs/compiler.md). `fused_conv` can run the others."""
    return step.kind == "conv" and not lanes and all(key[7] == 1 for key in step.key)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def namer(taken: set[str]) -> Callable[[str], str]:
    """A maker of variable names unused in `taken`, from hints."""

    def fresh(hint: str) -> str:
        base = _slug(hint)
        for suffix in itertools.chain([""], (str(n) for n in itertools.count(1))):
            name = f"{base}{suffix}"
            if name not in taken:
                taken.add(name)
                return name
        raise AssertionError("unreachable")

    return fresh
