"""The macro network resolved for concrete parameter values: every stage with its channels and
resolution, and which earlier outputs feed it.

A cell with k inputs reads the outputs of the k stages before it (stems, blocks and cells); when
fewer exist, the earliest output repeats (DARTS: `s0 = s1 = stem(x)`).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from .ast import evaluate, expr_names, op_name
from .errors import NasSemanticError
from .ir import Cell, OpInfo, SpaceIR
from .opdefs import info_of

IMAGE = -1  # the index that stands for the network's input image
MAX_STAGES = 10_000  # far more than any real network; keeps a huge repeat count from hanging lint


@attrs.frozen(kw_only=True)
class Stage:
    """One placed stem, block, cell, auxiliary head or head.

    Attributes:
        kind: `stem`, `block`, `cell`, `aux` or `head`.
        name: the op or cell type.
        inputs: indices of the stages whose outputs it reads (`IMAGE` for the input image).
        width: the op's output channels, the cell's node width, or the head's class count.
        stride: 2 for stages that halve the resolution (reduction cells, strided ops).
        input_strides: for a cell, how much each input's adapter must reduce.
        node_channels: for a cell, the channels of every input (after its adapter) and node.
    """

    index: int
    kind: str
    name: str
    inputs: tuple[int, ...]
    in_channels: tuple[int, ...]
    in_size: int
    width: int
    stride: int
    out_channels: int
    out_size: int
    input_strides: tuple[int, ...] = ()
    node_channels: Mapping[str, int] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Plan:
    """The resolved network: parameter values, input shape and stages in order."""

    params: Mapping[str, int]
    channels: int
    size: int
    stages: tuple[Stage, ...]

    def cells_of(self, name: str) -> tuple[Stage, ...]:
        return tuple(stage for stage in self.stages if stage.kind == "cell" and stage.name == name)


def resolve_params(space: SpaceIR, overrides: Mapping[str, int] | None = None) -> dict[str, int]:
    """Evaluate the network's parameters: defaults in order, each replaced by its override.

    Raises:
        NasSemanticError: an unknown override, a parameter that is not a positive integer, or a
            default that reads a parameter declared after it.
    """
    network = space.network
    overrides = dict(overrides or {})
    declared = network.param_names
    for name in overrides:
        if name not in declared:
            raise NasSemanticError(
                f"unknown parameter `{name}` in -D {name}={overrides[name]}",
                span=network.span,
                path=f"{space.name}.params",
                hint=f"the network `{network.name}` has the parameters "
                f"{', '.join(declared) or '(none)'}",
            )
    env: dict[str, int] = {}
    for param in network.params:
        if param.name in overrides:
            value = overrides[param.name]
            if not isinstance(value, int) or isinstance(value, bool):
                raise NasSemanticError(
                    f"parameter `{param.name}` must be an integer, not {value!r}",
                    span=param.span,
                    path=f"{space.name}.params.{param.name}",
                    hint=f"write -D {param.name}=16",
                )
        else:
            for ref in expr_names(param.default):
                if ref.name in declared and ref.name not in env:
                    raise NasSemanticError(
                        f"the default of `{param.name}` reads `{ref.name}`, declared after it",
                        span=ref.span,
                        path=f"{space.name}.params.{param.name}",
                        hint="a default may only use parameters declared before it",
                    )
            value = evaluate(
                param.default,
                env,
                what=f"parameter `{param.name}`",
                path=f"{space.name}.params.{param.name}",
            )
        if value <= 0:
            raise NasSemanticError(
                f"parameter `{param.name}` must be a positive integer, not {value}",
                span=param.span,
                path=f"{space.name}.params.{param.name}",
                hint="widths, depths and class counts are positive",
            )
        env[param.name] = value
    return env


def halve(size: int, stride: int) -> int:
    """The resolution after a stride (ceil division per factor 2, as padded convs do)."""
    while stride > 1:
        size = (size + 1) // 2
        stride //= 2
    return size


def _adapter_strides(
    space: SpaceIR, cell: Cell, sizes: list[int], index: int, item_span
) -> tuple[int, ...]:
    base = sizes[-1]
    strides = []
    read = {edge.source for edge in cell.edges}
    for item, size in zip(cell.inputs, sizes):
        if item.name not in read and item.adapter is None:
            strides.append(1)  # an input nothing reads computes nothing; any shape will do
        elif size == base:
            strides.append(1)
        elif halve(size, 2) == base:
            strides.append(2)
        else:
            raise NasSemanticError(
                f"shapes cannot match: input `{item.name}` of cell `{cell.name}` (stage {index}) "
                f"arrives at {size}x{size} but the cell runs at {base}x{base}",
                span=item_span,
                path=f"{space.name}.{cell.name}.{item.name}",
                hint="a cell may read an output of at most twice its resolution, through an "
                "adapter such as `preprocess`",
            )
        if strides[-1] != 1 and item.adapter is None:
            raise NasSemanticError(
                f"shapes cannot match: input `{item.name}` of cell `{cell.name}` (stage {index}) "
                f"arrives at {size}x{size} but the cell runs at {base}x{base}",
                span=item.span or item_span,
                path=f"{space.name}.{cell.name}.{item.name}",
                hint=f"give the input an adapter that reduces, e.g. `{item.name}:preprocess`, or "
                "place the cell where its inputs share one resolution",
            )
    return tuple(strides)


def _check_decisions(space: SpaceIR, decisions, params: Mapping[str, int]) -> None:
    """A block choice's decisions were made with the defaults; the values must still agree."""
    item = decisions.item
    stride = 1
    if item.stride is not None:
        stride = evaluate(
            item.stride, params, what=f"the stride of `{decisions.label}`", path=space.name
        )
    if stride != decisions.stride:
        raise NasSemanticError(
            f"the block choice `{decisions.label}` was read with stride {decisions.stride}; "
            f"these parameter values give stride {stride}",
            span=item.span,
            path=f"{space.name}.network.{decisions.label}",
            hint="compile the space with `space.for_values(values)`, which `compile_space` "
            "and `nasc` do",
        )


def cell_channels(cell: Cell, in_channels: tuple[int, ...], width: int) -> dict[str, int]:
    """Channels of every input (after its adapter) and node of a cell placed at `width`."""
    channels = {
        item.name: (width if item.adapter else c) for item, c in zip(cell.inputs, in_channels)
    }
    for node in cell.nodes:
        into = len(cell.edges_into(node.name))
        channels[node.name] = width * into if node.combine == "concat" else width
    return channels


def instantiate(
    space: SpaceIR,
    overrides: Mapping[str, int] | None = None,
    catalog: Mapping[str, OpInfo] | None = None,
    phase: str = "search",
) -> Plan:
    """Resolve the macro network for the given parameter values.

    Args:
        phase: `search` places the statements of the search supernet, `train` those of the
            standalone network (statements marked with the other phase are left out).

    Assumes the space's cells are linted; checks the macro statements and shapes as it goes.

    Raises:
        NasSemanticError: bad values (non-positive width, negative repeat, stride not 1 or 2),
            more than `MAX_STAGES` stages, or shapes that cannot match.
    """
    params = resolve_params(space, overrides)
    network = space.network
    if catalog is not None and space.opdefs:
        catalog = {**catalog, **{defn.name: info_of(defn) for defn in space.opdefs}}

    def value(expr, what, span, minimum=1):
        result = evaluate(expr, params, what=what, path=f"{space.name}.network")
        if result < minimum:
            raise NasSemanticError(
                f"{what} must be at least {minimum}, but it is {result}",
                span=getattr(expr, "span", None) or span,
                path=f"{space.name}.network",
                hint="check the arithmetic and the parameter values (`-D`)",
            )
        return result

    items = network.items_for(phase)
    inputs = [item for item in items if item.kind == "input"]
    channels = value(inputs[0].args[0], "the input's channels", inputs[0].span)
    size = value(inputs[0].args[1], "the input's size", inputs[0].span)

    stages: list[Stage] = []
    outputs: list[tuple[int, int, int]] = []  # (stage index, channels, size) of the main path

    def current() -> tuple[int, int, int]:
        return outputs[-1] if outputs else (IMAGE, channels, size)

    def make_room(count: int, span) -> None:
        if len(stages) + count > MAX_STAGES:
            raise NasSemanticError(
                f"the network places more than {MAX_STAGES} stems, blocks, cells and heads",
                span=span,
                path=f"{space.name}.network",
                hint="check the repeat counts and the parameter values (`-D`)",
            )

    for item in items:
        if item.kind == "input":
            continue
        if item.kind in ("cells", "choice"):
            if item.kind == "cells":
                what = item.cell
                decisions = None
            else:
                decisions = space.block_choice(item)
                what = decisions.label
            count = 1
            if item.repeat is not None:
                count = value(item.repeat, f"the repeat count of `{what}`", item.span, minimum=0)
            width = value(item.width, f"the width of `{what}`", item.span)
            if decisions is not None:
                _check_decisions(space, decisions, params)
            make_room(count, getattr(item.repeat, "span", None) or item.span)
            for instance in range(count):
                if decisions is None:
                    cell = space.cell(item.cell)
                else:
                    cell = decisions.cell_for(instance)
                k = len(cell.inputs)
                feeding = outputs[-k:] if outputs else [current()]
                feeding = [feeding[0]] * (k - len(feeding)) + feeding
                in_channels = tuple(c for _, c, _ in feeding)
                strides = _adapter_strides(
                    space, cell, [s for _, _, s in feeding], len(stages), item.span
                )
                node_channels = cell_channels(cell, in_channels, width)
                base = feeding[-1][2]
                out_size = halve(base, 2) if cell.reduction else base
                out_channels = sum(node_channels[name] for name in cell.output)
                stage = Stage(
                    index=len(stages),
                    kind="cell",
                    name=cell.name,
                    inputs=tuple(index for index, _, _ in feeding),
                    in_channels=in_channels,
                    in_size=base,
                    width=width,
                    stride=2 if cell.reduction else 1,
                    out_channels=out_channels,
                    out_size=out_size,
                    input_strides=strides,
                    node_channels=node_channels,
                )
                stages.append(stage)
                outputs.append((stage.index, out_channels, out_size))
            continue
        call = item.call
        make_room(1, call.span)
        info = (catalog or {}).get(call.op)
        width = value(call.args[0], f"the width of `{call.op}`", call.span)
        name = call.op
        if info is not None and info.params:
            # A parametric op is placed by its canonical name, `invres(6)`, as a cell names it.
            given = dict(zip(info.params, call.args[1:]))
            given.update((key, expr) for key, expr in call.kwargs if key in info.params)
            name = op_name(
                call.op,
                [
                    evaluate(
                        given[param],
                        params,
                        what=f"the argument `{param}` of `{call.op}`",
                        path=f"{space.name}.network.{call.op}",
                    )
                    for param in info.params
                ],
            )
        stride = 1
        for key, expr in call.kwargs:
            if key == "stride":
                stride = evaluate(
                    expr,
                    params,
                    what=f"the stride of `{call.op}`",
                    path=f"{space.name}.network.{call.op}",
                )
                if stride not in (1, 2):
                    raise NasSemanticError(
                        f"the stride of `{call.op}` must be 1 or 2, not {stride}",
                        span=getattr(expr, "span", None) or call.span,
                        path=f"{space.name}.network.{call.op}",
                        hint="stack two stride-2 blocks to reduce by 4",
                    )
        if info is not None and info.stride is not None:
            stride = info.stride
        source, in_channels, in_size = current()
        is_head = item.kind in ("head", "aux")
        stage = Stage(
            index=len(stages),
            kind=item.kind,
            name=name,
            inputs=(source,),
            in_channels=(in_channels,),
            in_size=in_size,
            width=width,
            stride=1 if is_head else stride,
            out_channels=width,
            out_size=1 if is_head else halve(in_size, stride),
        )
        stages.append(stage)
        if not is_head:
            outputs.append((stage.index, width, stage.out_size))
    return Plan(params=params, channels=channels, size=size, stages=tuple(stages))
