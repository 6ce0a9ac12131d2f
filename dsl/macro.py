"""The macro network resolved for concrete parameter values: every stage with its channels and
resolution, and which earlier outputs feed it.

A cell with k inputs reads the outputs of the k stages before it (stems, blocks and cells); when
fewer exist, the earliest output repeats (DARTS: `s0 = s1 = stem(x)`). A statement with `from`
reads named outputs instead, one per input; an input that reads `from all` sums every earlier
output, each through its own copy of the input's adapter. Each read reaches the cell's
resolution through the adapter: by a power-of-two stride, or upsampled by a power of two (`up`).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from .ast import ALL, evaluate, op_name
from .errors import NasSemanticError, Span
from .ir import Cell, OpInfo, SpaceIR, resolve_params
from .opdefs import info_of, library

IMAGE = -1  # the index that stands for the network's input image
MAX_STAGES = 10_000  # far more than any real network; keeps a huge repeat count from hanging lint
# The largest width, channel count, class count or size a network may have: far beyond any real
# one (what lies below it but cannot fit the memory, the runtime's memory check refuses), and
# small enough that PyTorch's 32-bit sizes and 64-bit weight counts stay in range.
MAX_SIZE = 2**31 - 1
MAX_SCALE = 2**16  # the largest resampling factor between a read and the cell that reads it


@attrs.frozen(kw_only=True)
class Stage:
    """One placed stem, block, cell, auxiliary head or head.

    Attributes:
        kind: `stem`, `block`, `cell`, `aux` or `head`.
        name: the op or cell type.
        inputs: indices of the stages whose outputs it reads (`IMAGE` for the input image), one
            per read: a cell reads one output per input, and every earlier one for an input that
            reads `from all`.
        in_channels: the channels of each read.
        width: the op's output channels, the cell's node width, or the head's class count.
        stride: 2 for stages that halve the resolution (reduction cells, strided ops).
        input_strides: for a cell, how much each read's adapter must reduce.
        input_ups: for a cell, by how much each read's adapter must upsample (1: not at all);
            empty when no read is upsampled.
        slots: for a cell, the input each read feeds; empty when read i feeds input i.
        fused: for a cell, the positions of the inputs that read `from all` (their reads are
            summed).
        node_channels: for a cell, the channels of every input (after its adapter) and node.
        label: the statement's name (`low = basic(...)`), if it has one.
        per_pixel: a head that ends in a map of class scores, resized to the input's size.
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
    input_ups: tuple[int, ...] = ()
    slots: tuple[int, ...] = ()
    fused: tuple[int, ...] = ()
    node_channels: Mapping[str, int] = attrs.field(factory=dict)
    label: str | None = None
    per_pixel: bool = False
    span: Span | None = attrs.field(default=None, eq=False, repr=False)

    def reads(self) -> tuple[tuple[int, int, int, int, int], ...]:
        """For a cell, each read as (input position, stage index, channels, stride, up)."""
        slots = self.slots or tuple(range(len(self.inputs)))
        ups = self.input_ups or (1,) * len(self.inputs)
        strides = self.input_strides or (1,) * len(self.inputs)
        return tuple(zip(slots, self.inputs, self.in_channels, strides, ups))


@attrs.frozen(kw_only=True)
class Plan:
    """The resolved network: parameter values, input shape and stages in order."""

    params: Mapping[str, int]
    channels: int
    size: int
    stages: tuple[Stage, ...]
    # The network reads sequences (`input tokens(V)` or `input sequence(F)`): every stage's
    # output is (batch, length, features), its size 1 (the length is the data's).
    sequence: bool = False
    tokens: bool = False

    def cells_of(self, name: str) -> tuple[Stage, ...]:
        return tuple(stage for stage in self.stages if stage.kind == "cell" and stage.name == name)


def halve(size: int, stride: int) -> int:
    """The resolution after a stride (ceil division per factor 2, as padded convs do)."""
    while stride > 1:
        size = (size + 1) // 2
        stride //= 2
    return size


def _scale(size: int, base: int) -> tuple[int, int] | None:
    """(stride, up) that bring a `size` map to `base`: a power-of-two stride (ceil halvings) or
    a power-of-two upsampling; None when no power of two does."""
    factor = 1
    while factor <= MAX_SCALE:
        if halve(size, factor) == base:
            return factor, 1
        if size * factor == base:
            return 1, factor
        factor *= 2
    return None


def _read_scales(
    space: SpaceIR, catalog, cell: Cell, reads, base: int, index: int, item_span
) -> tuple[tuple[int, int], ...]:
    """(stride, up) of each read `(slot, size)` into a cell that runs at `base`.

    An input at the cell's resolution needs nothing; one at twice it needs an adapter (which is
    built with stride 2); one at another power-of-two multiple, larger or smaller, needs a
    resampling adapter (`resample`, an op marked `with resampling`).
    """
    scales = []
    read = {edge.source for edge in cell.edges}
    for slot, size, span in reads:
        item = cell.inputs[slot]
        where = f"input `{item.name}` of cell `{cell.name}` (stage {index})"
        path = f"{space.name}.{cell.name}.{item.name}"
        arrives = f"arrives at {size}x{size} but the cell runs at {base}x{base}"
        if item.name not in read and item.adapter is None:
            scales.append((1, 1))  # an input nothing reads computes nothing; any shape will do
            continue
        scale = _scale(size, base)
        if scale is None:
            coarser = size < base
            raise NasSemanticError(
                f"shapes cannot match: {where} {arrives}, which "
                + (
                    f"no upsampling by a power of two gives ({base} is not {size} times 2, 4, "
                    "8, ...)"
                    if coarser
                    else f"no halving gives ({base} is not {size} halved some times, "
                    "rounding up)"
                ),
                span=span or item_span,
                path=path,
                hint="upsampling multiplies the size, so the cell must run at the coarse map's "
                "size times a power of two: choose an input size that halves evenly (e.g. a "
                "multiple of 32), or place the cell `at` another stride",
            )
        scales.append(scale)
        stride, up = scale
        if (stride, up) == (1, 1):
            continue
        resampling = _resamples(space, catalog, item.adapter)
        if item.adapter is not None and (stride == 2 or resampling):
            continue
        if item.adapter is None:
            hint = (
                f"give the input an adapter that reduces, e.g. `{item.name}:preprocess`, or "
                "place the cell where its inputs share one resolution"
                if stride == 2
                else f"a sum or concat needs one resolution: give the input an adapter that "
                f"resamples, `{item.name}:resample`, or place the cell where its inputs share "
                "one resolution"
            )
            raise NasSemanticError(
                f"shapes cannot match: {where} {arrives}",
                span=item.span or item_span,
                path=path,
                hint=hint,
            )
        raise NasSemanticError(
            f"shapes cannot match: {where} {arrives}",
            span=span or item_span,
            path=path,
            hint=f"a cell may read an output of at most twice its resolution, through an "
            f"adapter such as `preprocess`; `{item.adapter}` does not resample, so write "
            f"`{item.name}:resample` (or an op marked `with resampling`) to read "
            + ("a coarser one" if up > 1 else "one further away"),
        )
    return tuple(scales)


def _info(space: SpaceIR, catalog, name: str | None) -> OpInfo | None:
    """What the language knows of an op: from the catalog, else the file's or the prelude's
    definitions (a space checked without a catalog)."""
    if name is None:
        return None
    if catalog is not None and name in catalog:
        return catalog[name]
    base = name.split("(")[0]
    defn = next((d for d in (*space.opdefs, *library()) if d.name == base), None)
    return info_of(defn) if defn is not None else None


def _resamples(space: SpaceIR, catalog, adapter: str | None) -> bool:
    info = _info(space, catalog, adapter)
    return info is not None and info.resampling


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
    """Channels of every input (after its adapter) and node of a cell placed at `width`;
    `in_channels` holds the incoming channels of each input the network feeds (a recurrent
    cell's state has the channels of the node it carries, or of the output)."""
    fed = [cell.inputs[i] for i in cell.step_inputs]
    channels = {item.name: (width if item.adapter else c) for item, c in zip(fed, in_channels)}
    for node in cell.nodes:
        into = len(cell.edges_into(node.name))
        channels[node.name] = width * into if node.combine == "concat" else width
    out = channels[cell.output[0]] if cell.mean or not cell.concat else None
    for state, node in cell.states:
        channels[state] = (
            channels[node]
            if node != "out"
            else out or sum(channels[name] for name in cell.output)
        )
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
    layout.phase = phase if space.network.phased else None
    for item in items:
        if item.kind in ("cells", "choice"):
            _place_cells(space, params, catalog, layout, item)
        elif item.kind != "input":
            _place_call(space, params, catalog, layout, item)
        _name_output(space, layout, item)
    return Plan(
        params=params,
        channels=layout.channels,
        size=layout.size,
        stages=tuple(layout.stages),
        sequence=layout.sequence is not None,
        tokens=layout.sequence == "tokens",
    )


@attrs.define
class _Layout:
    """The stages placed so far, and the outputs of the main path (auxiliary heads and heads read
    it but are not on it)."""

    channels: int
    size: int
    stages: list[Stage] = attrs.Factory(list)
    outputs: list[tuple[int, int, int]] = attrs.Factory(list)  # (stage index, channels, size)
    # The named outputs so far (None: the statement placed nothing), and where each was named.
    named: dict[str, tuple[int, int, int] | None] = attrs.Factory(dict)
    phase: str | None = None
    placed_from: int = 0  # the number of stages before the statement being placed
    sequence: str | None = None  # `tokens` or `sequence` for a network that reads sequences

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
    if item.label is not None:  # `input tokens(vocabulary)`, `input sequence(features)`
        what = "vocabulary" if item.label == "tokens" else "features"
        channels = _value(space, params, item.args[0], f"the input's {what}", item.span)
        return _Layout(channels=channels, size=1, sequence=item.label)
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


def _name_output(space: SpaceIR, layout: _Layout, item) -> None:
    """Remember the output of a named statement (its last stage) for later `from NAME`."""
    if item.name is None:
        return
    path = f"{space.name}.network.{item.name}"
    if item.kind in ("input", "head", "aux"):
        raise NasSemanticError(
            f"the `{item.kind}` statement is named `{item.name}`, but no statement can read it",
            span=item.name_span or item.span,
            path=path,
            hint="name stems, blocks, cells and block choices, whose outputs later statements "
            "read with `from NAME`",
        )
    if item.name in layout.named:
        raise NasSemanticError(
            f"two statements are named `{item.name}`",
            span=item.name_span or item.span,
            path=path,
            hint="give each named statement its own name",
        )
    placed = layout.stages[layout.placed_from :]
    layout.named[item.name] = (
        (placed[-1].index, placed[-1].out_channels, placed[-1].out_size) if placed else None
    )
    if placed:
        layout.stages[-1] = attrs.evolve(placed[-1], label=item.name)


def _read_named(space: SpaceIR, layout: _Layout, item, position: int) -> tuple[int, int, int]:
    """The output a statement reads by name: `from NAME`."""
    name = item.sources[position]
    spans = item.source_spans
    span = (spans[position] if position < len(spans) else None) or item.span
    path = f"{space.name}.network.{name}"
    if name not in layout.named:
        later = [
            other
            for other in space.network.items_for(layout.phase or "search")
            if other.name == name
        ]
        known = ", ".join(f"`{known}`" for known in layout.named) or "none yet"
        if later:
            raise NasSemanticError(
                f"`{name}` is read before the statement that names it",
                span=span,
                path=path,
                hint=f"a statement reads outputs named above it (named so far: {known}); "
                "move the statement after the one it reads",
            )
        where = f" of the {layout.phase} network" if layout.phase else ""
        raise NasSemanticError(
            f"unknown stage name `{name}`",
            span=span,
            path=path,
            hint=f"name a statement to read it, `{name} = basic(2C, stride = 2)`; names "
            f"so far{where}: {known}",
        )
    found = layout.named[name]
    if found is None:
        raise NasSemanticError(
            f"`{name}` names a statement that places nothing (its repeat count is 0)",
            span=span,
            path=path,
            hint="read another output, or make the repeat count at least 1",
        )
    return found


def _place_cells(space: SpaceIR, params: Mapping[str, int], catalog, layout: _Layout, item) -> None:
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
    at = None
    if item.at is not None:
        at = _value(space, params, item.at, f"the stride `at` of `{what}`", item.span)
        if at & (at - 1) or at > MAX_SCALE:
            raise NasSemanticError(
                f"`{what}` is placed at stride {at}, which is not a power of two",
                span=getattr(item.at, "span", None) or item.span,
                path=f"{space.name}.network.{what}",
                hint="`at S` runs the cell at 1/S of the input's resolution: S is 1, 2, 4, 8, ...",
            )
    if decisions is not None:
        _check_decisions(space, decisions, params)
    _make_room(space, layout, count, getattr(item.repeat, "span", None) or item.span)
    layout.placed_from = len(layout.stages)
    for instance in range(count):
        cell = space.cell(item.cell) if decisions is None else decisions.cell_for(instance)
        # The first instance reads the statement's sources; later ones the instance before
        # them, as a repeat of blocks does, unless the statement reads `from all`.
        reading = item if instance == 0 or ALL in item.sources else None
        layout.add(_cell_stage(space, cell, layout, width, item.span, reading, catalog, at))


def _cell_feeds(space: SpaceIR, cell: Cell, layout: _Layout, item) -> list[list]:
    """Per input of the cell that the network feeds (a recurrent cell's states are its own), the
    outputs it reads: (stage index, channels, size, span)."""
    k = len(cell.step_inputs)
    if item is None or not item.sources:
        feeding = layout.outputs[-k:] if layout.outputs else [layout.current()]
        feeding = [feeding[0]] * (k - len(feeding)) + feeding
        return [[(*feed, None)] for feed in feeding]
    if len(item.sources) != k:
        what = "input" if k == 1 else "inputs"
        raise NasSemanticError(
            f"cell `{cell.name}` has {k} {what} but the statement reads "
            f"{len(item.sources)} source{'s' if len(item.sources) != 1 else ''}",
            span=item.source_spans[0] if item.source_spans else item.span,
            path=f"{space.name}.network.{cell.name}",
            hint=f"name one source per input of `{cell.name}`, in the order of "
            f"`{cell.name}({', '.join(cell.input_names[i] for i in cell.step_inputs)})`"
            + (" (its states are carried, not read)" if cell.recurrent else ""),
        )
    feeds = []
    for position, name in enumerate(item.sources):
        span = item.source_spans[position] if position < len(item.source_spans) else None
        if name == ALL:
            everything = layout.outputs or [layout.current()]
            feeds.append([(*feed, span) for feed in everything])
        else:
            feeds.append([(*_read_named(space, layout, item, position), span)])
    return feeds


def _cell_stage(
    space: SpaceIR,
    cell: Cell,
    layout: _Layout,
    width: int,
    item_span,
    item=None,
    catalog=None,
    at: int | None = None,
) -> Stage:
    """One cell instance at `width`, reading the outputs of the stages before it (or those the
    statement names), at the resolution of its last input or at stride `at`."""
    index = len(layout.stages)
    feeds = _cell_feeds(space, cell, layout, item)
    fused = []
    steps = cell.step_inputs  # feed i reaches input steps[i] (a recurrent cell's states: none)
    for position, slot in enumerate(steps):
        input_ = cell.inputs[slot]
        if item is not None and item.sources and item.sources[position] == ALL:
            if input_.adapter is None:
                raise NasSemanticError(
                    f"input `{input_.name}` of cell `{cell.name}` reads `from all`, whose "
                    "outputs differ in width and resolution, but has no adapter",
                    span=input_.span or item_span,
                    path=f"{space.name}.{cell.name}.{input_.name}",
                    hint=f"give it a resampling adapter, `{input_.name}:resample`, which brings "
                    "each output to the cell's width and resolution before they are summed",
                )
            fused.append(slot)
    if at is not None:
        base = halve(layout.size, at)
    elif item is not None and item.sources and item.sources[-1] == ALL:
        base = layout.current()[2]
    else:
        base = feeds[-1][-1][2]
    reads = [(steps[i], size, span) for i, feed in enumerate(feeds) for _, _, size, span in feed]
    scales = _read_scales(space, catalog, cell, reads, base, index, item_span)
    flat = [read for feed in feeds for read in feed]
    slots = tuple(steps[i] for i, feed in enumerate(feeds) for _ in feed)
    slot_channels = tuple(feed[-1][1] for feed in feeds)
    node_channels = cell_channels(cell, slot_channels, width)
    ups = tuple(up for _, up in scales)
    return Stage(
        index=index,
        kind="cell",
        name=cell.name,
        inputs=tuple(read[0] for read in flat),
        in_channels=tuple(read[1] for read in flat),
        in_size=base,
        width=width,
        stride=2 if cell.reduction else 1,
        out_channels=node_channels[cell.output[0]]
        if cell.mean
        else sum(node_channels[name] for name in cell.output),
        out_size=halve(base, 2) if cell.reduction else base,
        input_strides=tuple(stride for stride, _ in scales),
        input_ups=ups if any(up > 1 for up in ups) else (),
        slots=slots if slots != tuple(range(len(cell.inputs))) else (),
        fused=tuple(fused),
        node_channels=node_channels,
        span=item_span,
    )


def _place_call(space: SpaceIR, params: Mapping[str, int], catalog, layout: _Layout, item) -> None:
    """Place a stem, block, auxiliary head or head: one op on the main path's last output, or on
    the output it reads by name (a block `repeat` times in a row)."""
    call = item.call
    count = 1
    if item.repeat is not None:
        what = f"the repeat count of `{call.op}`"
        count = _value(space, params, item.repeat, what, item.span, minimum=0, maximum=None)
    _make_room(space, layout, count, getattr(item.repeat, "span", None) or call.span)
    info = _info(space, catalog, call.op)
    width = _value(space, params, call.args[0], f"the width of `{call.op}`", call.span)
    name = _placed_name(space, params, call, info)
    stride = _call_stride(space, params, call, info)
    is_head = item.kind in ("head", "aux")
    per_pixel = is_head and info is not None and info.per_pixel
    source = None
    if item.sources:
        if len(item.sources) != 1 or item.sources[0] == ALL:
            raise NasSemanticError(
                f"`{item.kind} {call.op}` reads one output, but the statement reads "
                + ("`from all`" if ALL in item.sources else f"{len(item.sources)}"),
                span=item.source_spans[0] if item.source_spans else item.span,
                path=f"{space.name}.network.{call.op}",
                hint="an op reads one feature map: `from NAME`; to combine several, place a "
                "cell with one input per source (`from all` sums them through its adapter)",
            )
        source = _read_named(space, layout, item, 0)
    layout.placed_from = len(layout.stages)
    for instance in range(count):
        index, in_channels, in_size = source if instance == 0 and source else layout.current()
        stage = Stage(
            index=len(layout.stages),
            kind=item.kind,
            name=name,
            inputs=(index,),
            in_channels=(in_channels,),
            in_size=in_size,
            width=width,
            stride=1 if is_head else stride,
            out_channels=width,
            out_size=(layout.size if per_pixel else 1) if is_head else halve(in_size, stride),
            per_pixel=per_pixel,
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
