"""Choices among widths in the supernet: one set of entangled weights, sliced to the live widths.

A space with width choices (`{8, 16, 24}`, docs/language.md section 23) is built at the largest
width of every choice. Its convolutions, BatchNorms and linear layers become sliceable
(`SliceableConv2d`, ...): each takes the input slice of its weights from the incoming tensor's
channel count, and the output slice from `out_width`, which `Widths.apply` sets from the masks.

How a layer learns its output width: the stage is built again, on the `meta` device (no memory,
no arithmetic), at the macro resolved for the chosen widths (`nasc.dsl.ast.chosen_widths`); the
layer at the same path in that build has the channels the layer must produce. So every width the
language computes (a block's output, a cell's `@ C`, an expansion ratio's hidden width, a head
count times a head width) slices the layers it sizes, whatever the op's body.

- One live width per choice: every layer runs at its slice, as the network of those widths would
  (a masked supernet costs what that network costs).
- Several live widths: the layers run at the largest live width, and a layer whose channels vary
  with the choice multiplies its output by the softmax-weighted sum of the candidates' channel
  masks (FBNetV2, TAS): `sum_w p_w * [c < channels at w]`.
- An op whose structure changes with the widths (`skip_connect` is the identity when its input
  and output widths agree, a factorized reduction else) gets a module of its own per shape that
  has another structure (`WidthVariants`); it shares no weights with the largest build.

A module written in Python supports widths the same way: it slices its weights by the incoming
feature size and by an `out_width` attribute that `Widths.apply` sets (see `SLICEABLE`).
"""

from __future__ import annotations

import functools
import itertools
import math

import attrs
import torch
from torch import nn
from torch.nn import functional

from nasc.dsl import NascUsageError
from nasc.dsl.ast import chosen_widths
from nasc.dsl.macro import instantiate

MAX_ASSIGNMENTS = 4096  # the width combinations one stage may depend on (each is built on `meta`)


class _Mix:
    """A layer's channel mask under several live widths: per live width, its channels there."""

    def __init__(self, holder: dict, label: str, sizes: list[int], channels: int):
        self.holder = holder
        self.label = label
        # (live widths x channels) indicators: row w keeps the channels the width w has.
        self.indicators = torch.tensor(
            [[1.0 if c < size else 0.0 for c in range(channels)] for size in sizes]
        )

    def mask(self, like: torch.Tensor) -> torch.Tensor:
        weights = self.holder[self.label].to(like.device, like.dtype)
        if self.indicators.device != like.device:
            self.indicators = self.indicators.to(like.device)
        return weights @ self.indicators.to(like.dtype)


def _mixed(module, out: torch.Tensor, channel_dim: int) -> torch.Tensor:
    mix = module.__dict__.get("width_mix")
    if mix is None:
        return out
    mask = mix.mask(out)
    shape = [1] * out.dim()
    shape[channel_dim] = -1
    return out * mask.view(shape)


class SliceableConv2d(nn.Conv2d):
    """A Conv2d that reads as many input channels as it gets and writes `out_width` of them."""

    out_width: int | None = None

    def forward(self, x):
        cin, cout = x.shape[1], self.out_width or self.out_channels
        if cin == self.in_channels and cout == self.out_channels:
            return _mixed(self, super().forward(x), 1)
        if self.groups == 1:
            weight, groups = self.weight[:cout, :cin], 1
        elif self.groups == self.in_channels == self.out_channels:  # depthwise
            weight, groups = self.weight[:cin], cin
        else:
            raise NascUsageError(
                f"a grouped convolution ({self.groups} groups) cannot be sliced to {cin} inputs",
                hint="width choices slice plain and depthwise convolutions",
            )
        bias = self.bias[: weight.shape[0]] if self.bias is not None else None
        out = functional.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)
        return _mixed(self, out, 1)


class SliceableBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d over the first channels of its parameters and statistics, as many as it
    gets."""

    out_width: int | None = None  # unused: a BatchNorm keeps its input's channels

    def forward(self, x):
        c = x.shape[1]
        if c == self.num_features:
            return _mixed(self, super().forward(x), 1)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        out = functional.batch_norm(
            x,
            self.running_mean[:c] if keep and self.running_mean is not None else None,
            self.running_var[:c] if keep and self.running_var is not None else None,
            self.weight[:c] if self.weight is not None else None,
            self.bias[:c] if self.bias is not None else None,
            batch_stats,
            factor,
            self.eps,
        )
        return _mixed(self, out, 1)


class SliceableLinear(nn.Linear):
    """A Linear layer that reads as many features as it gets and writes `out_width`."""

    out_width: int | None = None

    def forward(self, x):
        fin, fout = x.shape[-1], self.out_width or self.out_features
        if fin == self.in_features and fout == self.out_features:
            return _mixed(self, super().forward(x), -1)
        bias = self.bias[:fout] if self.bias is not None else None
        return _mixed(self, functional.linear(x, self.weight[:fout, :fin], bias), -1)


# The layers a width supernet slices, by their class: the parameterised layers of the op library.
SLICEABLE = {
    nn.Conv2d: SliceableConv2d,
    nn.BatchNorm2d: SliceableBatchNorm2d,
    nn.Linear: SliceableLinear,
}


def out_size(layer: nn.Module) -> int | None:
    """The channels a layer produces (None for a layer without parameters to slice)."""
    for name in ("out_channels", "num_features", "out_features"):
        if hasattr(layer, name):
            return getattr(layer, name)
    return None


def make_sliceable(module: nn.Module) -> None:
    """Turn every plain Conv2d, BatchNorm2d and Linear inside `module` into its sliceable kind
    (the same parameters under the same names)."""
    for layer in module.modules():
        kind = SLICEABLE.get(type(layer))
        if kind is not None:
            layer.__class__ = kind


def signature(module: nn.Module) -> tuple:
    """A module's structure: its submodules' paths and classes (sliceable or not)."""
    plain = {kind: base for base, kind in SLICEABLE.items()}
    return tuple(
        (path, plain.get(type(m), type(m)).__name__) for path, m in module.named_modules()
    )


class WidthVariants(nn.Module):
    """An op built once per structure the widths give it: `base` (the largest build) and a module
    per shape where the structure differs (`16x32`); `active` is the one that runs."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.variants = nn.ModuleDict({"base": base})
        self.active = "base"

    def forward(self, *inputs, **kwargs):
        return self.variants[self.active](*inputs, **kwargs)

    def extra_repr(self) -> str:
        return f"active={self.active}"


@attrs.frozen
class _Unit:
    """A part of a stage that a width may rebuild: (container, key) where it is registered."""

    path: str
    container: nn.Module
    key: str


def _units(stage_module: nn.Module, stage) -> list[_Unit]:
    """The ops of a placed cell (adapters, fused adapters, edge ops), or a whole block."""
    if stage.kind == "cell":
        units = [_Unit(f"adapters.{k}", stage_module.adapters, k) for k in stage_module.adapters]
        for name, fuse in stage_module.fuse.items():
            units += [_Unit(f"fuse.{name}.{k}", fuse, k) for k in fuse._modules]
        for edge, ops in stage_module.edges.items():
            units += [_Unit(f"edges.{edge}.{op}", ops, op) for op in ops]
        return units
    return [_Unit("", None, str(stage.index))]


def _lookup(root: nn.Module, unit: _Unit) -> nn.Module:
    if unit.container is None:
        return root
    module = root
    for part in unit.path.split("."):
        module = module._modules[part]
    return module


def _shape_key(stage) -> str:
    """A stage's shape as a variant's name: its reads' channels and its width."""
    ins = "_".join(map(str, stage.in_channels))
    nodes = "_".join(f"{v}" for v in stage.node_channels.values())
    return f"{stage.name}|{ins}|{stage.width}|{nodes}"


class Widths:
    """The width choices of a supernet: which stages each one sizes, the variants of ops whose
    structure changes, and (at every mask change) the slices and channel masks of every layer."""

    def __init__(self, supernet):
        self.net = supernet
        space = supernet.space
        self.choices = space.width_choices
        labels = {choice.label for choice in self.choices}
        # The parameters the supernet was compiled with (`-D`), the width choices left out.
        self.params = tuple(
            sorted((k, v) for k, v in supernet.plan.params.items() if k not in labels)
        )
        self.phase = "search" if supernet.options.search else "train"
        self.weights: dict[str, torch.Tensor] = {}  # per mixed choice, its widths' weights
        self.mixed: tuple[str, ...] = ()
        largest = {choice.label: choice.largest for choice in self.choices}
        base = self.plan(largest)
        # Which choices each stage depends on: those whose widths change its shape.
        self.depends: dict[int, tuple[str, ...]] = {}
        for choice in self.choices:
            for width in choice.widths:
                plan = self.plan({**largest, choice.label: width})
                for stage, other in zip(base.stages, plan.stages):
                    if _shape_key(stage) != _shape_key(other):
                        found = self.depends.setdefault(stage.index, ())
                        if choice.label not in found:
                            self.depends[stage.index] = (*found, choice.label)
        for module in supernet.stages:
            make_sliceable(module)
        self._build_variants(largest)

    def plan(self, widths):
        """The macro resolved at these widths (by label; the others at their largest)."""
        return _plan(self.net.space, self.params, self.phase, tuple(sorted(widths.items())))

    def meta(self, stage) -> nn.Module:
        """A stage's module built on the `meta` device at that stage's shape (cached)."""
        key = (stage.index, _shape_key(stage))
        cache = self.__dict__.setdefault("_meta", {})
        if key not in cache:
            with torch.device("meta"):
                cache[key] = self.net.build_stage(stage)
        return cache[key]

    def _build_variants(self, largest: dict[str, int]) -> None:
        by_label = {choice.label: choice for choice in self.choices}
        for index, labels in self.depends.items():
            combos = math.prod(len(by_label[label].widths) for label in labels)
            if combos > MAX_ASSIGNMENTS:
                raise NascUsageError(
                    f"stage {index} depends on {combos} combinations of widths "
                    f"({', '.join(labels)}); nasc builds at most {MAX_ASSIGNMENTS}",
                    hint="give the choices fewer widths, or share one choice between layers",
                )
            module = self.net.stages[index]
            units = _units(module, self.net.plan.stages[index])
            bases = {unit.path: signature(_lookup(module, unit)) for unit in units}
            for values in itertools.product(*(by_label[label].widths for label in labels)):
                stage = self.plan({**largest, **dict(zip(labels, values))}).stages[index]
                meta = self.meta(stage)
                real = None
                for unit in units:
                    if signature(_lookup(meta, unit)) == bases[unit.path]:
                        continue
                    holder = self._holder(index, unit)
                    key = _shape_key(stage)
                    if key in holder.variants:
                        continue
                    if real is None:
                        real = self.net.build_stage(stage)
                        make_sliceable(real)
                    holder.variants[key] = _lookup(real, unit)

    def _holder(self, index: int, unit: _Unit) -> WidthVariants:
        """The unit's `WidthVariants`, installed in place of the unit on first need."""
        if unit.container is None:
            current = self.net.stages[index]
            if not isinstance(current, WidthVariants):
                current = WidthVariants(current)
                self.net.stages[index] = current
            return current
        container = self._container(index, unit)
        current = container._modules[unit.key]
        if not isinstance(current, WidthVariants):
            current = WidthVariants(current)
            container._modules[unit.key] = current
        return current

    def _container(self, index: int, unit: _Unit) -> nn.Module:
        module = self.net.stages[index]
        for part in unit.path.split(".")[:-1]:
            module = module._modules[part]
        return module

    # --- at every mask change -----------------------------------------------------------------

    def live(self) -> dict[str, tuple[int, ...]]:
        """Per choice, its live widths."""
        arch = self.net.arch
        return {
            choice.label: tuple(
                int(width) for width in arch.live(choice.label, choice.cell.edges[0].key)
            )
            for choice in self.choices
        }

    def apply(self) -> None:
        """Set every layer's slice and channel mask for the current masks: each choice runs at
        its largest live width; choices with several live widths mix (`_Mix`)."""
        live = self.live()
        running = {label: max(widths) for label, widths in live.items() if widths}
        plan = self.plan(running)
        self.mixed = tuple(label for label, widths in live.items() if len(widths) > 1)
        for index in range(len(self.net.stages)):
            module = self.net.stages[index]
            for layer in module.modules():
                if hasattr(layer, "out_width"):
                    layer.out_width = None
                    layer.__dict__.pop("width_mix", None)
            if index not in self.depends:
                continue
            stage = plan.stages[index]
            meta = self.meta(stage)
            key = _shape_key(stage)
            for unit in _units(_unwrapped(module), stage):
                real = _lookup(module, unit) if unit.container is not None else module
                if isinstance(real, WidthVariants):
                    real.active = key if key in real.variants else "base"
                    real = real.variants[real.active]
                shaped = _lookup(meta, unit)
                sizes = {path: out_size(m) for path, m in shaped.named_modules()}
                for path, layer in real.named_modules():
                    if hasattr(layer, "out_width") and path in sizes:
                        size = sizes[path]
                        layer.out_width = None if size == out_size(layer) else size
                for label in self.mixed:
                    if label in self.depends[index]:
                        self._mix(index, unit, real, running, label, live[label])

    def _mix(self, index, unit, real, running, label, widths) -> None:
        """Give the layers of `real` whose channels vary among the live widths of `label` the
        channel mask of the mixture."""
        per_width = []
        for width in widths:
            stage = self.plan({**running, label: width}).stages[index]
            shaped = _lookup(self.meta(stage), unit)
            per_width.append({path: out_size(m) for path, m in shaped.named_modules()})
        for path, layer in real.named_modules():
            if not hasattr(layer, "out_width"):
                continue
            sizes = [found.get(path) for found in per_width]
            if None in sizes or len(set(sizes)) == 1:
                continue
            channels = layer.out_width or out_size(layer)
            layer.__dict__["width_mix"] = _Mix(self.weights, label, sizes, channels)

    def live_parameters(self) -> int:
        """The weights that run under the current masks: a stage the widths size counts as its
        build at the running widths (`meta`), any other stage as it is."""
        live = self.live()
        plan = self.plan({label: max(widths) for label, widths in live.items() if widths})
        total = 0
        for index, module in enumerate(self.net.stages):
            if index in self.depends:
                module = self.meta(plan.stages[index])
            total += sum(p.numel() for p in module.parameters())
        return total

    def set_weights(self) -> None:
        """Before a forward: the weight of every live width of every mixed choice."""
        arch = self.net.arch
        for label in self.mixed:
            choice = next(c for c in self.choices if c.label == label)
            mask = arch.mask(label)[0]
            if arch.mixing == "softmax":
                row = arch.mixing_weights(label)[0]
            elif arch.mixing == "mean":
                row = mask.float() / len(choice.widths)
            elif arch.mixing == "live_mean":
                row = mask.float() / mask.sum()
            else:
                row = mask.float()
            self.weights[label] = row[mask.to(row.device)]


def _unwrapped(module: nn.Module) -> nn.Module:
    return module.variants["base"] if isinstance(module, WidthVariants) else module


@functools.lru_cache(maxsize=1024)
def _plan(space, params, phase, widths):
    """The plan of `space` with these parameters at these widths (both sorted item tuples)."""
    with chosen_widths(dict(widths)):
        return instantiate(space, dict(params), None, phase=phase)


def carried_state(supernet, genotype, state: dict) -> dict:
    """The supernet's state for the network of the genotype's widths: each op built in several
    structures under its plain path (the variant of the chosen shape, else the largest build)
    and every tensor sliced to its first channels where the fixed network is narrower is left
    to `sliced`; entries of other variants stay and are not read."""
    widths = supernet.widths
    chosen = {
        choice.label: int(genotype.cells[choice.label][choice.cell.edges[0].key][0])
        for choice in widths.choices
    }
    plan = widths.plan(chosen)
    state = dict(state)
    for index, module in enumerate(supernet.stages):
        key = _shape_key(plan.stages[index])
        wrapped = []
        if isinstance(module, WidthVariants):
            wrapped.append((f"stages.{index}.", module))
        else:
            wrapped += [
                (f"stages.{index}.{path}.", m)
                for path, m in module.named_modules()
                if isinstance(m, WidthVariants)
            ]
        for prefix, holder in wrapped:
            active = key if key in holder.variants else "base"
            inner = f"{prefix}variants.{active}."
            for name in [name for name in state if name.startswith(inner)]:
                state[prefix + name[len(inner) :]] = state[name]
    return state


def sliced(source: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    """The first entries of `source` along every dimension, to `shape`; None when `source` is
    smaller somewhere or has another number of dimensions."""
    if source.dim() != len(shape) or any(s < t for s, t in zip(source.shape, shape)):
        return None
    return source[tuple(slice(0, size) for size in shape)].clone()


def channel_groups(supernet, label: str) -> dict[int, list[tuple[str, int, int, float]]]:
    """Per stage whose output the width choice `label` sizes, the channel group each live width
    adds over the next smaller live one: (width, first channel, end, the weight the mixture
    gives those channels), in the order of the widths.

    IS-DARTS measures a width's information on its group (docs/isdarts.md); the group is divided
    by its weight first, so the mixture's scaling does not count.
    """
    widths = supernet.widths
    live = sorted(widths.live()[label])
    running = {name: max(found) for name, found in widths.live().items() if found}
    weights = widths.weights.get(label)
    groups: dict[int, list[tuple[str, int, int, float]]] = {}
    sizes = {
        width: widths.plan({**running, label: width}).stages for width in live
    }
    for index, stage in enumerate(sizes[live[-1]]):
        ends = [sizes[width][index].out_channels for width in live]
        if len(set(ends)) < len(ends) or stage.kind == "head" or index not in widths.depends:
            continue
        found, start = [], 0
        for position, (width, end) in enumerate(zip(live, ends)):
            scale = 1.0
            if weights is not None:
                scale = float(weights[position:].sum())
            found.append((str(width), start, end, scale))
            start = end
        groups[index] = found
    return groups
