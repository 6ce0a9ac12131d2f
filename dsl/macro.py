"""The macro network resolved for concrete parameter values: every stage with its channels and
resolution, and which earlier outputs feed it.

A cell with k inputs reads the outputs of the k stages before it (stems, blocks and cells); when
fewer exist, the earliest output repeats (DARTS: `s0 = s1 = stem(x)`).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from .ast import evaluate, op_name
from .errors import NasSemanticError, Span
from .ir import Cell, OpInfo, SpaceIR, resolve_params
from .opdefs import info_of

IMAGE = -1  # the index that stands for the network's input image
MAX_STAGES = 10_000  # far more than any real network; keeps a huge repeat count from hanging lint
# The largest width, channel count, class count or size a network may have: far beyond any real
# one (what lies below it but cannot fit the memory, the runtime's memory check refuses), and
# small enough that PyTorch's 32-bit sizes and 64-bit weight counts stay in range.
MAX_SIZE = 2**31 - 1


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
        span: the statement that placed it, for errors.
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
    span: Span | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class Plan:
    """The resolved network: parameter values, input shape and stages in order."""

    params: Mapping[str, int]
    channels: int
    size: int
    stages: tuple[Stage, ...]

    def cells_of(self, name: str) -> tuple[Stage, ...]:
        return tuple(stage for stage in self.stages if stage.kind == "cell" and stage.name == name)


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
    if catalog is not None and space.opdefs:
        catalog = {**catalog, **{defn.name: info_of(defn) for defn in space.opdefs}}
    items = space.network.items_for(phase)
    layout = _read_input(space, params, items)
    for item in items:
        if item.kind in ("cells", "choice"):
            _place_cells(space, params, layout, item)
        elif item.kind != "input":
            _place_call(space, params, catalog, layout, item)
    return Plan(
        params=params, channels=layout.channels, size=layout.size, stages=tuple(layout.stages)
    )


@attrs.define
class _Layout:
    """The stages placed so far, and the outputs of the main path (auxiliary heads and heads read
    it but are not on it)."""

    channels: int
    size: int
    stages: list[Stage] = attrs.Factory(list)
    outputs: list[tuple[int, int, int]] = attrs.Factory(list)  # (stage index, channels, size)

    def current(self) -> tuple[int, int, int]:
        """The last output of the main path, or the input image."""
        return self.outputs[-1] if self.outputs else (IMAGE, self.channels, self.size)

    def add(self, stage: Stage, on_path: bool = True) -> None:
        self.stages.append(stage)
        if on_path:
            self.outputs.append((stage.index, stage.out_channels, stage.out_size))


def _value(
    space: SpaceIR,
    params: Mapping[str, int],
    expr,
    what: str,
    span,
    minimum: int = 1,
    maximum: int | None = MAX_SIZE,
) -> int:
    """An expression of the network's parameters, at least `minimum` and at most `maximum`."""
    result = evaluate(expr, params, what=what, path=f"{space.name}.network")
    if result < minimum:
        raise NasSemanticError(
            f"{what} must be at least {minimum}, but it is {result}",
            span=getattr(expr, "span", None) or span,
            path=f"{space.name}.network",
            hint="check the arithmetic and the parameter values (`-D`)",
        )
    if maximum is not None and result > maximum:
        raise NasSemanticError(
            f"{what} must be at most {maximum:,}, but it is {result:,}",
            span=getattr(expr, "span", None) or span,
            path=f"{space.name}.network",
            hint="no network this large can be built: check the arithmetic and the parameter "
            "values (`-D`)",
        )
    return result


def _read_input(space: SpaceIR, params: Mapping[str, int], items) -> _Layout:
    """The layout before any stage: the channels and size of the `input` statement."""
    item = next(item for item in items if item.kind == "input")
    channels = _value(space, params, item.args[0], "the input's channels", item.span)
    size = _value(space, params, item.args[1], "the input's size", item.span)
    return _Layout(channels=channels, size=size)


def _make_room(space: SpaceIR, layout: _Layout, count: int, span) -> None:
    """Refuse a network of more than `MAX_STAGES` stages before placing `count` more."""
    if len(layout.stages) + count > MAX_STAGES:
        raise NasSemanticError(
            f"the network places more than {MAX_STAGES} stems, blocks, cells and heads",
            span=span,
            path=f"{space.name}.network",
            hint="check the repeat counts and the parameter values (`-D`)",
        )


def _place_cells(space: SpaceIR, params: Mapping[str, int], layout: _Layout, item) -> None:
    """Place the instances of a cell statement or a block choice (`repeat` times or once)."""
    if item.kind == "cells":
        what, decisions = item.cell, None
    else:
        decisions = space.block_choice(item)
        what = decisions.label
    count = 1
    if item.repeat is not None:
        counted = f"the repeat count of `{what}`"
        count = _value(space, params, item.repeat, counted, item.span, minimum=0, maximum=None)
    width = _value(space, params, item.width, f"the width of `{what}`", item.span)
    if decisions is not None:
        _check_decisions(space, decisions, params)
    _make_room(space, layout, count, getattr(item.repeat, "span", None) or item.span)
    for instance in range(count):
        cell = space.cell(item.cell) if decisions is None else decisions.cell_for(instance)
        layout.add(_cell_stage(space, cell, layout, width, item.span))


def _cell_stage(space: SpaceIR, cell: Cell, layout: _Layout, width: int, item_span) -> Stage:
    """One cell instance at `width`, reading the outputs of the stages before it."""
    k = len(cell.inputs)
    feeding = layout.outputs[-k:] if layout.outputs else [layout.current()]
    feeding = [feeding[0]] * (k - len(feeding)) + feeding
    in_channels = tuple(c for _, c, _ in feeding)
    strides = _adapter_strides(
        space, cell, [s for _, _, s in feeding], len(layout.stages), item_span
    )
    node_channels = cell_channels(cell, in_channels, width)
    base = feeding[-1][2]
    return Stage(
        index=len(layout.stages),
        kind="cell",
        name=cell.name,
        inputs=tuple(index for index, _, _ in feeding),
        in_channels=in_channels,
        in_size=base,
        width=width,
        stride=2 if cell.reduction else 1,
        out_channels=sum(node_channels[name] for name in cell.output),
        out_size=halve(base, 2) if cell.reduction else base,
        input_strides=strides,
        node_channels=node_channels,
        span=item_span,
    )


def _place_call(space: SpaceIR, params: Mapping[str, int], catalog, layout: _Layout, item) -> None:
    """Place a stem, block, auxiliary head or head: one op on the main path's last output (a
    block `repeat` times in a row)."""
    call = item.call
    count = 1
    if item.repeat is not None:
        what = f"the repeat count of `{call.op}`"
        count = _value(space, params, item.repeat, what, item.span, minimum=0, maximum=None)
    _make_room(space, layout, count, getattr(item.repeat, "span", None) or call.span)
    info = (catalog or {}).get(call.op)
    width = _value(space, params, call.args[0], f"the width of `{call.op}`", call.span)
    name = _placed_name(space, params, call, info)
    stride = _call_stride(space, params, call, info)
    is_head = item.kind in ("head", "aux")
    for _ in range(count):
        source, in_channels, in_size = layout.current()
        stage = Stage(
            index=len(layout.stages),
            kind=item.kind,
            name=name,
            inputs=(source,),
            in_channels=(in_channels,),
            in_size=in_size,
            width=width,
            stride=1 if is_head else stride,
            out_channels=width,
            out_size=1 if is_head else halve(in_size, stride),
            span=call.span,
        )
        layout.add(stage, on_path=not is_head)


def _placed_name(space: SpaceIR, params: Mapping[str, int], call, info: OpInfo | None) -> str:
    """The op a call places: a parametric op by its canonical name, `invres(6)`, as a cell
    names it."""
    if info is None or not info.params:
        return call.op
    given = dict(zip(info.params, call.args[1:]))
    given.update((key, expr) for key, expr in call.kwargs if key in info.params)
    values = [
        evaluate(
            given[param],
            params,
            what=f"the argument `{param}` of `{call.op}`",
            path=f"{space.name}.network.{call.op}",
        )
        for param in info.params
    ]
    return op_name(call.op, values)


def _call_stride(space: SpaceIR, params: Mapping[str, int], call, info: OpInfo | None) -> int:
    """The stride of a call: its fixed stride, else its `stride` argument (1 or 2), else 1."""
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
    return stride
