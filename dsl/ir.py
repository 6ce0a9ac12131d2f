"""The search-space IR: cell types, their comparison subsets, and the macro network.

Every value is a frozen attrs class; change one with `attrs.evolve`. `checks.lint_space` checks
every invariant and runs after lowering and before compiling. This module imports no other part
of the language but the syntax tree and the errors: the checks, the macro and the op definitions
build on it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping

import attrs

from .ast import (
    CallDecl,
    MacroDecl,
    Num,
    OpDef,
    ParamDecl,
    WidthSet,
    evaluate,
    expr_names,
    width_sets,
)
from .errors import NasSemanticError, Span

COMBINERS = ("sum", "product", "concat")
CELL_FLAGS = {
    "reduction": "edges that leave the cell's inputs have stride 2: the cell halves the resolution",
    "pool_bn": "in the supernet, a non-affine BatchNorm follows every pooling op (DARTS)",
}
# A block choice becomes a one-edge cell type per decision: its input and its node are named so.
BLOCK_INPUT, BLOCK_NODE = "x", "block"
BLOCK_EDGE = f"{BLOCK_INPUT}->{BLOCK_NODE}"


def _tuple(value) -> tuple:
    return tuple(value)


def _span_field():
    return attrs.field(default=None, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class OpInfo:
    """What the language needs to know of a registered op (the compiler owns the ops themselves).

    Attributes:
        role: `op` maps a feature map to a feature map (cell edges, adapters, stems, blocks);
            `head` maps a feature map to class scores (`head` and `aux` statements).
        stride: the fixed resolution reduction of ops that choose it themselves (an ImageNet
            stem reduces by 4); None for ops that take a `stride` argument (1 or 2).
        doc: one line for `nasc show` and the docs.
        params: the parameters of an op defined with some (`mbconv(e, k)`): a use gives their
            values, `mbconv(6, 5)`.
        per_pixel: a head that ends in a map of class scores (segmentation), which the network
            resizes to the input's size.
        resampling: an op that may bring a cell input from any power-of-two multiple of the
            cell's resolution, larger (`stride`) or smaller (`up`): `resample`.
    """

    role: str = attrs.field(validator=attrs.validators.in_(("op", "head")))
    stride: int | None = None
    doc: str = ""
    params: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    per_pixel: bool = False
    resampling: bool = False
    tied: bool = False  # a head that shares the embedding's weight (docs/language.md, 25)
    sequence: bool = False  # an op of sequences: `with sequence`, or a dense layer, conv1d, ...


@attrs.frozen(kw_only=True)
class OpSet:
    """A named candidate set."""

    name: str
    ops: tuple[str, ...] = attrs.field(converter=_tuple)
    span: Span | None = _span_field()
    op_spans: tuple[Span | None, ...] = attrs.field(
        default=(), converter=_tuple, eq=False, repr=False
    )


@attrs.frozen(kw_only=True)
class Input:
    """A cell input, optionally passed through an adapter op (DARTS' `preprocess`)."""

    name: str
    adapter: str | None = None
    span: Span | None = _span_field()
    adapter_span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class Node:
    """An intermediate node and how it combines its incoming edges."""

    name: str
    combine: str = attrs.field(default="sum", validator=attrs.validators.in_(COMBINERS))
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class Edge:
    """All terms from one source into one node: fixed ops (summed) and at most one choice.

    Attributes:
        ops: fixed ops, summed.
        choice: the name of the candidate set when the edge is a choice, else None.
        candidates: the candidate ops of the choice, in the set's order.
    """

    source: str
    target: str
    ops: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    choice: str | None = None
    candidates: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    span: Span | None = _span_field()
    op_spans: tuple[Span | None, ...] = attrs.field(
        default=(), converter=_tuple, eq=False, repr=False
    )
    choice_span: Span | None = _span_field()

    @property
    def key(self) -> str:
        """The edge's name within its cell, `source->target`."""
        return f"{self.source}->{self.target}"

    @property
    def is_choice(self) -> bool:
        return self.choice is not None


@attrs.frozen(kw_only=True)
class Keep:
    """A `keep` rule: `per` is `edge` or `node`, or `edges` lists an explicit subset."""

    k: int
    per: str | None = None
    edges: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    span: Span | None = _span_field()
    edge_spans: tuple[Span | None, ...] = attrs.field(
        default=(), converter=_tuple, eq=False, repr=False
    )
    per_span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class Subset:
    """A comparison subset: candidates that compete, of which exactly `k` survive.

    Attributes:
        label: `x->n1` for a per-edge subset, `n2` for a per-node subset, `{a->b, c->d}` else.
        members: (edge key, op) pairs in the cell's edge order and the set's op order.
    """

    label: str
    k: int
    members: tuple[tuple[str, str], ...] = attrs.field(converter=_tuple)
    span: Span | None = _span_field()

    @property
    def edges(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(edge for edge, _ in self.members))


@attrs.frozen(kw_only=True)
class Cell:
    """A cell type: inputs, intermediate nodes, edges, output, comparison rules and flags.

    `block` names the block choice of the network that made the cell (one decision of a
    `choose` statement); its ops are built as blocks are, with affine BatchNorms. None for the
    cells a file declares. `widths` marks the cell of a choice among widths (`WidthChoice`): its
    candidates are widths (`"16"`), which the compiler applies to the layers they size, not ops.
    """

    name: str
    inputs: tuple[Input, ...] = attrs.field(converter=_tuple)
    nodes: tuple[Node, ...] = attrs.field(converter=_tuple)
    edges: tuple[Edge, ...] = attrs.field(converter=_tuple)
    output: tuple[str, ...] = attrs.field(converter=_tuple)
    concat: bool = False
    flags: tuple[str, ...] = attrs.field(default=(), converter=lambda v: tuple(sorted(set(v))))
    keeps: tuple[Keep, ...] = attrs.field(default=(), converter=_tuple)
    block: str | None = None
    widths: bool = False
    span: Span | None = _span_field()
    output_span: Span | None = _span_field()
    flag_spans: Mapping[str, Span] = attrs.field(factory=dict, eq=False, repr=False)
    # Sequences (docs/language.md, section 25): the output as the mean of its nodes, and the
    # states a recurrent cell carries, as (state input, node whose value it takes next step).
    mean: bool = False
    states: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_tuple)
    state_spans: tuple[Span | None, ...] = attrs.field(
        default=(), converter=_tuple, eq=False, repr=False
    )

    @property
    def recurrent(self) -> bool:
        """The cell carries states from one time step to the next (`next h = n`)."""
        return bool(self.states)

    @functools.cached_property
    def state_names(self) -> tuple[str, ...]:
        """The inputs that are states, read at step t from the cell's step t - 1."""
        return tuple(state for state, _ in self.states)

    @functools.cached_property
    def step_inputs(self) -> tuple[int, ...]:
        """The positions of the inputs that the network feeds (every input but the states)."""
        states = set(self.state_names)
        return tuple(i for i, item in enumerate(self.inputs) if item.name not in states)

    @property
    def reduction(self) -> bool:
        return "reduction" in self.flags

    @functools.cached_property
    def input_names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.inputs)

    @functools.cached_property
    def node_names(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.nodes)

    @property
    def choices(self) -> tuple[Edge, ...]:
        """The edges that carry a choice, in order."""
        return tuple(edge for edge in self.edges if edge.is_choice)

    def edge(self, key: str) -> Edge:
        return self._edges_by_key[key]

    def edges_into(self, node: str) -> tuple[Edge, ...]:
        return self._edges_by_target.get(node, ())

    def node(self, name: str) -> Node:
        """The intermediate node `name`."""
        return self._nodes_by_name[name]

    # Indexes that keep look-ups constant-time: a cell of thousands of nodes checks in linear time.
    @functools.cached_property
    def _edges_by_key(self) -> dict[str, Edge]:
        return {edge.key: edge for edge in self.edges}

    @functools.cached_property
    def _edges_by_target(self) -> dict[str, tuple[Edge, ...]]:
        found: dict[str, list[Edge]] = {}
        for edge in self.edges:
            found.setdefault(edge.target, []).append(edge)
        return {target: tuple(edges) for target, edges in found.items()}

    @functools.cached_property
    def _nodes_by_name(self) -> dict[str, Node]:
        return {node.name: node for node in self.nodes}

    @functools.cached_property
    def subsets(self) -> tuple[Subset, ...]:
        """The comparison subsets the `keep` rules make; explicit subsets first.

        Assumes a linted cell: every choice edge lies in exactly one subset.
        """
        subsets: list[Subset] = []
        claimed: set[str] = set()
        for rule in self.keeps:
            if rule.per is None:
                members = [(key, op) for key in rule.edges for op in self.edge(key).candidates]
                subsets.append(
                    Subset(
                        label="{" + ", ".join(rule.edges) + "}",
                        k=rule.k,
                        members=members,
                        span=rule.span,
                    )
                )
                claimed.update(rule.edges)
        for rule in self.keeps:
            rest = [edge for edge in self.choices if edge.key not in claimed]
            if rule.per == "edge":
                for edge in rest:
                    members = [(edge.key, op) for op in edge.candidates]
                    subsets.append(
                        Subset(label=edge.key, k=rule.k, members=members, span=rule.span)
                    )
            elif rule.per == "node":
                by_target: dict[str, list[Edge]] = {}
                for edge in rest:
                    by_target.setdefault(edge.target, []).append(edge)
                for node in self.node_names:
                    into = by_target.get(node)
                    if into:
                        members = [(edge.key, op) for edge in into for op in edge.candidates]
                        subsets.append(
                            Subset(label=node, k=rule.k, members=members, span=rule.span)
                        )
        return tuple(subsets)

    def architectures(self) -> int:
        """How many distinct decisions the subsets admit: the product of C(|subset|, k)."""
        return math.prod(math.comb(len(subset.members), subset.k) for subset in self.subsets)


@attrs.frozen(kw_only=True)
class BlockChoice:
    """A `choose` statement of the network with its decisions.

    Attributes:
        item: the statement.
        label: its name: the one written (`choose stage2 = ...`), else `choice1`, `choice2`, ...
            in the order of the network's choices.
        candidates: the candidate ops, from the inline set or the named `ops` set.
        count: the instances the statement places, with the parameters' defaults.
        stride: the stride of every instance (1 or 2), with the defaults.
        cells: one cell type per decision: one for a `shared` choice or a statement without
            `repeat`, else one per instance, named `LABEL_1`, `LABEL_2`, ...
    """

    item: MacroDecl
    label: str
    candidates: tuple[str, ...] = attrs.field(converter=_tuple)
    count: int
    stride: int
    cells: tuple[Cell, ...] = attrs.field(converter=_tuple)

    @property
    def unshared(self) -> bool:
        """Whether each instance of the statement decides for itself."""
        return self.item.repeat is not None and not self.item.shared

    def cell_for(self, instance: int) -> Cell:
        """The cell type (the decision) of the statement's instance `instance` (0-based), also
        beyond the defaults' count (the parameters may place more instances)."""
        if not self.unshared:
            return self.cells[0]
        if instance < len(self.cells):
            return self.cells[instance]
        return block_cell(f"{self.label}_{instance + 1}", self.label, self.candidates, self.stride)


def block_cell(
    name: str, label: str, candidates: Iterable[str], stride: int, widths: bool = False
) -> Cell:
    """The one-edge cell type that holds one decision of a block choice (or, with `widths`, of a
    choice among widths)."""
    return Cell(
        name=name,
        inputs=[Input(name=BLOCK_INPUT)],
        nodes=[Node(name=BLOCK_NODE)],
        edges=[Edge(source=BLOCK_INPUT, target=BLOCK_NODE, choice=label, candidates=candidates)],
        output=[BLOCK_NODE],
        flags=("reduction",) if stride == 2 else (),
        keeps=[Keep(k=1, per="edge")],
        block=label,
        widths=widths,
    )


@attrs.frozen(kw_only=True)
class WidthChoice:
    """A choice among widths (`{8, 16, 24}`), with its decision.

    Attributes:
        label: the parameter whose default it is, else `width1`, `width2`, ...
        widths: the candidate widths with the parameters' defaults, in the order written.
        sets: where it is written (one set; the parameter's uses all share its decision).
        cell: the one-edge cell type that holds its decision; its candidates are the widths as
            text (`"16"`), so masks, architecture weights and genotypes treat it as any choice.
    """

    label: str
    widths: tuple[int, ...] = attrs.field(converter=_tuple)
    set: WidthSet
    cell: Cell

    @property
    def largest(self) -> int:
        return max(self.widths)


@attrs.frozen(kw_only=True)
class Network:
    """The macro network: integer parameters with defaults and a sequence of statements."""

    name: str
    params: tuple[ParamDecl, ...] = attrs.field(converter=_tuple)
    items: tuple[MacroDecl, ...] = attrs.field(converter=_tuple)
    span: Span | None = _span_field()

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(param.name for param in self.params)

    @property
    def phased(self) -> bool:
        """Whether some statement exists in only one phase (`search` or `train`)."""
        return any(item.phase is not None for item in self.items)

    def items_for(self, phase: str) -> tuple[MacroDecl, ...]:
        """The statements of the search supernet (`search`) or the standalone network (`train`)."""
        return tuple(item for item in self.items if item.phase in (None, phase))


@attrs.frozen(kw_only=True)
class SpaceIR:
    """A whole search space: candidate sets, cell types and the macro network."""

    opsets: tuple[OpSet, ...] = attrs.field(converter=_tuple)
    cells: tuple[Cell, ...] = attrs.field(converter=_tuple)
    network: Network
    preset: str | None = None
    preset_span: Span | None = _span_field()
    file: str = attrs.field(default="<string>", eq=False)
    opdefs: tuple[OpDef, ...] = attrs.field(default=(), converter=_tuple)

    @property
    def name(self) -> str:
        return self.network.name

    def cell(self, name: str) -> Cell:
        """A cell type by name: one the file declares, or the decision of a block choice."""
        found = next((cell for cell in self.cells if cell.name == name), None)
        if found is None:
            found = next((c.cell for c in self.width_choices if c.cell.name == name), None)
        if found is None:
            found = next(
                (
                    cell
                    for choice in self.block_choices
                    for cell in choice.cells
                    if cell.name == name
                ),
                None,
            )
        if found is None:
            # An instance of an unshared choice beyond the defaults' count (`-D N=6`).
            label, _, number = name.rpartition("_")
            choice = next(c for c in self.block_choices if c.label == label and c.unshared)
            if not number.isdigit() or number != str(int(number)) or int(number) < 1:
                raise StopIteration(name)
            found = choice.cell_for(int(number) - 1)
        return found

    @functools.cached_property
    def block_choices(self) -> tuple[BlockChoice, ...]:
        """The network's `choose` statements (both phases), in order, with their decisions.

        Repeat counts and strides are evaluated with the parameters' defaults; a space compiled
        with `-D` overrides takes them as its defaults first (`for_values`).
        """
        items = [item for item in self.network.items if item.kind == "choice"]
        if not items:
            return ()
        params = resolve_params(self)
        path = f"{self.name}.network"
        choices = []
        for number, item in enumerate(items, start=1):
            label = item.label or f"choice{number}"
            if item.opset is not None:
                opset = self.opset(item.opset)
                candidates = opset.ops if opset is not None else ()
            else:
                candidates = item.ops
            count = 1
            if item.repeat is not None:
                count = evaluate(
                    item.repeat, params, what=f"the repeat count of `{label}`", path=path
                )
            stride = 1
            if item.stride is not None:
                stride = evaluate(item.stride, params, what=f"the stride of `{label}`", path=path)
            if item.repeat is None or item.shared:
                names = [label]
            else:
                names = [f"{label}_{index}" for index in range(1, max(count, 0) + 1)]
            choices.append(
                BlockChoice(
                    item=item,
                    label=label,
                    candidates=candidates,
                    count=count,
                    stride=stride,
                    cells=[block_cell(name, label, candidates, stride) for name in names],
                )
            )
        return tuple(choices)

    @functools.cached_property
    def width_choices(self) -> tuple[WidthChoice, ...]:
        """The network's choices among widths, parameters first, then in statement order.

        Their widths are evaluated with the parameters' defaults (a set may read them,
        `{C, 2C}`); `checks` refuses sets that are not positive, distinct integers.
        """
        found = [s for param in self.network.params for s in width_sets(param.default)]
        for item in self.network.items:
            exprs = [*item.args, item.repeat, item.width, item.stride, item.at]
            if item.call is not None:
                exprs += [*item.call.args, *(value for _, value in item.call.kwargs)]
            found += [s for expr in exprs for s in width_sets(expr)]
        if not found:
            return ()
        env = resolve_params(self)
        choices = {}
        for written in found:
            if written.label is None or written.label in choices:
                continue
            widths = [
                evaluate(value, env, what=f"a width of `{written.label}`", path=self.name)
                for value in written.values
            ]
            cell = block_cell(written.label, written.label, map(str, widths), 1, widths=True)
            choices[written.label] = WidthChoice(
                label=written.label, widths=widths, set=written, cell=cell
            )
        return tuple(choices.values())

    def width_choice(self, label: str) -> WidthChoice:
        """The choice among widths named `label`."""
        return next(choice for choice in self.width_choices if choice.label == label)

    def block_choice(self, item: MacroDecl) -> BlockChoice:
        """The block choice of a `choose` statement of this network."""
        return next(choice for choice in self.block_choices if choice.item is item)

    def opset(self, name: str) -> OpSet | None:
        return next((opset for opset in self.opsets if opset.name == name), None)

    def used_cells(self) -> tuple[Cell, ...]:
        """The cell types the network places, in order of first use, the decisions of its block
        choices included."""
        cells: dict[str, Cell] = {}
        for item in self.network.items:
            if item.kind == "cells":
                cells.setdefault(item.cell, self.cell(item.cell))
            elif item.kind == "choice":
                for cell in self.block_choice(item).cells:
                    cells.setdefault(cell.name, cell)
        for choice in self.width_choices:
            cells.setdefault(choice.cell.name, choice.cell)
        return tuple(cells.values())

    @property
    def is_fixed(self) -> bool:
        """True when no choice is left: the file describes one architecture."""
        return not any(cell.choices for cell in self.used_cells())

    def with_defaults(self, values: Mapping[str, int]) -> SpaceIR:
        """The space with these parameter values as its defaults (what `-D` set, made lasting)."""
        params = [
            attrs.evolve(param, default=Num(value=values[param.name]))
            if param.name in values
            else param
            for param in self.network.params
        ]
        return attrs.evolve(self, network=attrs.evolve(self.network, params=params))

    def for_values(self, overrides: Mapping[str, int] | None) -> SpaceIR:
        """The space whose block choices are decided for these parameter values.

        An unshared block choice has one decision per instance, so how many it has depends on
        the repeat count: a space with block choices takes `-D` values as its defaults before it
        is compiled, searched, exported or drawn. Other spaces are returned unchanged.
        """
        if not self.block_choices or not overrides:
            return self
        return self.with_defaults(resolve_params(self, overrides))

    def architectures(self) -> int:
        """The number of distinct architectures: cell types that the network uses multiply."""
        return math.prod(cell.architectures() for cell in self.used_cells())


EXACT_DIGITS = 30  # counts up to this many digits print exactly; larger ones as powers of ten


def format_count(count: int | str) -> str:
    """A count of architectures for people: `15,625`; one of more than `EXACT_DIGITS` digits as
    a power of ten, `about 1.63e4771` (Python refuses to print an integer of more than 4,300
    digits, and nobody reads one). Text that `count_value` made of a huge count stays as it is.
    """
    if isinstance(count, str):
        return count
    if count < 10**EXACT_DIGITS:
        return f"{count:,}"
    log = math.log10(count)
    exponent = math.floor(log)
    mantissa = round(10 ** (log - exponent), 2)
    if mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"about {mantissa:.2f}e{exponent}"


def count_value(count: int) -> int | str:
    """A count of architectures for JSON: the integer itself while it has at most 4,000 digits
    (Python prints no integer of more than 4,300), else `format_count`'s text."""
    return count if count < 10**4000 else format_count(count)


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


__all__ = [
    "BlockChoice",
    "CallDecl",
    "Cell",
    "Edge",
    "Input",
    "Keep",
    "MacroDecl",
    "Network",
    "Node",
    "OpInfo",
    "OpSet",
    "ParamDecl",
    "SpaceIR",
    "Subset",
    "WidthChoice",
    "count_value",
    "format_count",
    "resolve_params",
]
