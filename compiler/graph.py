"""The op graph of one cell type: the statements of its forward function, between the IR and the
generated source.

A `Graph` is a list of `Node`s in execution order; a node is one statement: the names it defines
(`targets`) and the expression that computes them. Expressions say which module or step is
called on which value (`Call`, `Fused`), how an edge's candidates are weighted (`Weighted`,
`EdgeTerms.scale`) and how a node combines its edges (`Combine`). Modules are named by their
path under the cell's `edges`: `(edge, op, *children)`, e.g. `("x->n1", "nor_conv_3x3", "1")`.

The lowering (`lowering`) builds the graph from a cell and the masks, the passes (`lowering`,
`passes`) rewrite it, `lint` checks it after each, and `codegen` prints it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import attrs


class GraphError(ValueError):
    """A graph breaks one of its invariants (`Graph.lint`)."""


# --- expressions ----------------------------------------------------------------------------------


@attrs.frozen
class Var:
    """A value the graph defined before, or an input of the cell."""

    name: str


@attrs.frozen
class Call:
    """One module or step applied to a value.

    Attributes:
        fn: `module` (call the module), `relu` or `relu_` (torch's, out of place or in place),
            `pool` (the module's pooling through `kernels.lean_pool`).
        module: the module's path under the cell's edges, `(edge, op, *children)`; the op
            module itself is `(edge, op)`. For a ReLU, the ReLU module it stands for.
    """

    fn: str
    module: tuple[str, ...]
    arg: object

    @property
    def op(self) -> tuple[str, str]:
        """The (edge, op) whose module this is."""
        return self.module[0], self.module[1]


@attrs.frozen
class Adapter:
    """A cell input's adapter module on the raw input."""

    input: str
    arg: Var


@attrs.frozen
class Fused:
    """Several candidates' same-shaped convolutions (`conv`) or BNs (`bn`) as one kernel, their
    outputs one channel slice (lane) after another.

    Attributes:
        lanes: each convolution reads its own slice of `arg` (else all read the whole of it).
        scale: per module, the constant mixing scale folded into a BN.
    """

    kind: str
    arg: Var
    modules: tuple[tuple[str, ...], ...]
    lanes: bool = False
    scale: tuple[float, ...] | None = None


@attrs.frozen
class Split:
    """A tensor cut into `count` equal channel slices (a node with `count` targets)."""

    arg: Var
    count: int


@attrs.frozen
class Slice:
    """The first 1/`groups` of a value's channels: what partial-channel candidates read."""

    arg: Var
    groups: int


@attrs.frozen
class Drop:
    """Drop path around an op's output."""

    arg: object


@attrs.frozen
class Weighted:
    """A candidate's output times its mixing weight `w[row, column]` (softmax mixing)."""

    row: int
    column: int
    arg: object


@attrs.frozen
class Zeros:
    """A zero feature map shaped like `like` reduced by `stride`, with the channels of the node
    `node` (None: the cell's width)."""

    like: str
    node: str | None
    stride: int


@attrs.frozen
class Term:
    """A live op's contribution to a node.

    Attributes:
        op: the op; None for a partial-channel edge's whole output (`Partial`).
        scaled: the edge's mixing scale is already in `expr` (folded into a BN).
    """

    edge: str
    op: str | None
    expr: object
    scaled: bool = False


@attrs.frozen
class Partial:
    """A PC-DARTS edge: its mixed candidates (`inner`, scaled by `scale`) ran on the first
    1/`groups` of `source`'s channels, the rest bypass them (`kernels.partial_channels`).

    Attributes:
        row: the edge's row of `w`, whose sum weighs the bypass under edge normalisation.
    """

    source: str
    inner: tuple[Term, ...]
    scale: float | None
    groups: int
    stride: int
    row: int | None = None


@attrs.frozen
class EdgeTerms:
    """An edge's live ops into a node: fixed ones, and mixed ones whose sum is scaled by
    `scale` (the mean mixing modes; None for none)."""

    edge: str
    fixed: tuple[Term, ...] = ()
    mixed: tuple[Term, ...] = ()
    scale: float | None = None

    @property
    def terms(self) -> tuple[Term, ...]:
        return self.fixed + self.mixed


@attrs.frozen
class Combine:
    """A node's value from its edges: `sum`, `product` or `concat` (as the IR's node).

    Attributes:
        node: the node, as the cell names it.
        accumulate: a sum of several terms is printed as one new tensor the others are added
            into in place (the `accumulate` pass).
        empty: for a concat, the zeros an edge without live ops contributes.
    """

    node: str
    mode: str
    edges: tuple[EdgeTerms, ...]
    accumulate: bool = False
    empty: Zeros | None = None


@attrs.frozen
class Dead:
    """A node whose every edge is `none` or masked out: nothing is computed (a comment).

    Attributes:
        node: the node, as the cell names it.
        var: the variable it would have defined.
    """

    node: str
    var: str


@attrs.frozen
class Output:
    """The cell's output: one value, several concatenated, or (`mean`) their mean; and for a
    recurrent cell its next states, each a value or the string `out` (the output itself)."""

    values: tuple[object, ...]
    concat: bool = False
    mean: bool = False
    states: tuple[object, ...] = ()


EXPRESSIONS = (
    Var,
    Call,
    Adapter,
    Fused,
    Split,
    Slice,
    Drop,
    Weighted,
    Zeros,
    Term,
    Partial,
    EdgeTerms,
    Combine,
    Dead,
    Output,
)


def children(expr) -> Iterator:
    """The expressions directly inside `expr`."""
    for field in attrs.fields(type(expr)):
        value = getattr(expr, field.name)
        if isinstance(value, EXPRESSIONS):
            yield value
        elif isinstance(value, tuple):
            yield from (item for item in value if isinstance(item, EXPRESSIONS))


def walk(expr) -> Iterator:
    """`expr` and every expression inside it, outermost first."""
    yield expr
    for child in children(expr):
        yield from walk(child)


def rewrite(expr, fn: Callable):
    """`expr` with every expression inside it, innermost first, replaced by `fn(expression)`."""
    changes = {}
    for field in attrs.fields(type(expr)):
        value = getattr(expr, field.name)
        if isinstance(value, EXPRESSIONS):
            changes[field.name] = rewrite(value, fn)
        elif isinstance(value, tuple) and any(isinstance(v, EXPRESSIONS) for v in value):
            changes[field.name] = tuple(
                rewrite(v, fn) if isinstance(v, EXPRESSIONS) else v for v in value
            )
    return fn(attrs.evolve(expr, **changes) if changes else expr)


def reads(expr) -> set[str]:
    """The names of the values `expr` reads."""
    found = set()
    for item in walk(expr):
        if isinstance(item, Var):
            found.add(item.name)
        elif isinstance(item, Partial):
            found.add(item.source)
        elif isinstance(item, Zeros):
            found.add(item.like)
    return found


# --- nodes and graphs -----------------------------------------------------------------------------


@attrs.frozen
class Node:
    """One statement: `targets = expr` (no targets for a `Dead` comment and the `Output`)."""

    targets: tuple[str, ...]
    expr: object

    @property
    def kind(self) -> str:
        """The statement's kind: the name of its expression's class, lower case (`call`,
        `fused`, `combine`, ...)."""
        return type(self.expr).__name__.lower()

    @property
    def name(self) -> str | None:
        """The single name the node defines (None for none or several)."""
        return self.targets[0] if len(self.targets) == 1 else None

    def reads(self) -> set[str]:
        return reads(self.expr)


@attrs.frozen
class Graph:
    """The forward function of one cell type.

    Attributes:
        cell: the cell type.
        function: the generated function's name.
        inputs: the function's parameters, one per cell input.
        nodes: the statements in order; the last is the `Output`.
        edges: the cell's edge keys in the IR's order (passes keep candidates in it).
        doc: the function's docstring.
    """

    cell: str
    function: str
    inputs: tuple[str, ...]
    nodes: tuple[Node, ...]
    edges: tuple[str, ...]
    doc: str = ""

    def node(self, name: str) -> Node:
        """The node that defines `name`."""
        for node in self.nodes:
            if name in node.targets:
                return node
        raise KeyError(name)

    def of_kind(self, kind: str) -> list[Node]:
        """The nodes of one kind, in order."""
        return [node for node in self.nodes if node.kind == kind]

    def users(self, name: str) -> list[Node]:
        """The nodes that read `name`."""
        return [node for node in self.nodes if name in node.reads()]

    def names(self) -> set[str]:
        """Every name the graph defines, inputs included."""
        return set(self.inputs).union(*(node.targets for node in self.nodes))

    def terms(self) -> list[Term]:
        """Every op's term in the graph's nodes (inside partial-channel edges too)."""
        found = []
        for node in self.nodes:
            found.extend(item for item in walk(node.expr) if isinstance(item, Term) and item.op)
        return found

    def ops(self) -> set[tuple[str, str]]:
        """The (edge, op) pairs whose modules the graph runs, whole or step by step."""
        found = {(term.edge, term.op) for term in self.terms()}
        for node in self.nodes:
            for item in walk(node.expr):
                if isinstance(item, Call):
                    found.add(item.op)
                elif isinstance(item, Fused):
                    found.update((path[0], path[1]) for path in item.modules)
        return found

    def fresh(self) -> Callable[[str], str]:
        """A maker of names unused in this graph (and by the generated code), from hints."""
        return namer(self.names() | RESERVED)

    def lint(self) -> Graph:
        """Check the invariants: names are defined once, every value is defined before it is
        read, the output comes last, every defined value reaches the output, fused kernels
        join several modules and splits have a target per slice. Returns the graph.

        Raises:
            GraphError: the first broken invariant.
        """
        defined = set(self.inputs)
        if len(defined) != len(self.inputs):
            raise GraphError(f"{self.cell}: inputs {self.inputs} repeat a name")
        if not self.nodes or self.nodes[-1].kind != "output":
            raise GraphError(f"{self.cell}: the last node is not the output")
        for index, node in enumerate(self.nodes):
            missing = node.reads() - defined
            if missing:
                raise GraphError(
                    f"{self.cell}: node {index} ({node.kind}) reads {sorted(missing)} before "
                    "they are defined"
                )
            for target in node.targets:
                if target in defined:
                    raise GraphError(f"{self.cell}: `{target}` is defined twice")
                if not target.isidentifier():
                    raise GraphError(f"{self.cell}: `{target}` is no Python name")
                defined.add(target)
            if node.kind == "output" and index != len(self.nodes) - 1:
                raise GraphError(f"{self.cell}: an output before the last node")
            if node.kind == "fused" and len(node.expr.modules) < 2:
                raise GraphError(f"{self.cell}: `{node.name}` fuses fewer than two modules")
            if node.kind == "split" and node.expr.count != len(node.targets):
                raise GraphError(f"{self.cell}: a split into {node.expr.count} has other targets")
            if node.kind not in ("dead", "output") and not node.targets:
                raise GraphError(f"{self.cell}: node {index} ({node.kind}) defines nothing")
        needed = set()
        for node in reversed(self.nodes):
            if node.kind == "output" or needed.intersection(node.targets):
                needed |= node.reads()
        unused = [t for node in self.nodes for t in node.targets if t not in needed]
        if unused:
            raise GraphError(f"{self.cell}: {unused} never reach the output")
        return self


def insert_after(graph: Graph, blocks: dict[str, list[Node]]) -> Graph:
    """The graph with each list of nodes in `blocks` right after the statement that defines
    its key (a node's `Dead` comment counts), or first when the key is an input."""
    defined_by = {}
    for node in graph.nodes:
        for target in node.targets:
            defined_by[target] = node
        if node.kind == "dead":
            defined_by[node.expr.var] = node
    after: dict[int, list[Node]] = {}
    first: list[Node] = []
    for key, block in blocks.items():
        anchor = defined_by.get(key)
        if anchor is None:
            first.extend(block)
        else:
            after.setdefault(id(anchor), []).extend(block)
    nodes = list(first)
    for node in graph.nodes:
        nodes.append(node)
        nodes.extend(after.get(id(node), ()))
    return attrs.evolve(graph, nodes=tuple(nodes))


# --- names ----------------------------------------------------------------------------------------

# Names the generated code uses itself.
RESERVED = frozenset({"e", "w", "self", "torch"})


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def namer(taken: set[str]) -> Callable[[str], str]:
    """A maker of variable names unused in `taken`, from hints (which it adds to `taken`)."""

    def fresh(hint: str) -> str:
        base = _slug(hint)
        for suffix in itertools.chain([""], (f"_{n}" for n in itertools.count(2))):
            name = f"{base}{suffix}"
            if name not in taken:
                taken.add(name)
                return name
        raise AssertionError("unreachable")

    return fresh
