"""From a cell of the IR to its op graph, and the passes every graph goes through.

`build` gives one call per op of every edge, candidates and `none` included; then, in order:

- `remove_dead_ops`: masked-out candidates and zero ops (`none`) leave the graph;
- `mix`: mixed candidates are weighted by the mixing mode (softmax weights, or one scale per
  edge under `mean` and `live_mean`);
- `split_channels`: PC-DARTS' partial channels: an edge's mixed candidates read a slice of
  their source, the rest bypasses them;
- `prune`: a node whose every edge is dead (or a product with a dead factor) computes nothing,
  and statements whose values the output does not need are dropped;
- the optimisation passes (`passes.optimise`), when enabled;
- `materialise_zeros`: a dead node that something still reads becomes a zero feature map.
"""

from __future__ import annotations

import builtins
import keyword

import attrs

from nasc.dsl.ir import Cell

from .archstate import ArchState
from .graph import (
    RESERVED,
    Adapter,
    Call,
    Combine,
    Dead,
    Drop,
    EdgeTerms,
    Graph,
    Node,
    Output,
    Partial,
    Slice,
    Term,
    Var,
    Weighted,
    Zeros,
    insert_after,
    namer,
    rewrite,
)
from .kernels import GLOBALS
from .ops import get_op

# Names a user's name must not become: the generated code's own, and Python's.
_RESERVED = frozenset(
    [*keyword.kwlist, *keyword.softkwlist, *dir(builtins), *GLOBALS]
    + ["self", "w", "e", "image", "logits", "forward", "out_"]
)


def identifier(name: str) -> str:
    """A user's name as a Python name that collides with nothing: kept as written when it is safe,
    else prefixed with `v_` (a keyword such as `import` or `None`, a builtin, a name of the
    generated code such as `self`, `w`, `e` or `torch`, a private `_name`, `s0`). Names that
    start with `v_` are always prefixed, so two user names never meet."""
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    if (
        safe == name
        and name.isidentifier()
        and name not in _RESERVED
        and not name.startswith(("_", "v_"))
        and not (name[:1] == "s" and name[1:].isdigit())
    ):
        return name
    return "v_" + safe


def _zero_stride(cell: Cell) -> int:
    return 2 if cell.reduction else 1


def _edge_stride(cell: Cell, edge) -> int:
    return 2 if cell.reduction and edge.source in cell.input_names else 1


def build(cell: Cell, defs: tuple = (), drop: bool = False) -> Graph:
    """The cell's graph before any pass: every input through its adapter, every node the
    combination of one call per op of each edge into it (drop path around each op that is no
    identity, when `drop`), and the output."""
    var = {name: identifier(name) for name in (*cell.input_names, *cell.node_names)}
    fresh = namer(set(var.values()) | RESERVED)
    params = []
    nodes = []
    for item in cell.inputs:
        if item.adapter:
            # The raw input gets a name of its own, so its adapted value keeps the input's.
            raw = fresh(f"{var[item.name]}_in")
            params.append(raw)
            nodes.append(Node((var[item.name],), Adapter(item.name, Var(raw))))
        else:
            params.append(var[item.name])

    def term(edge, op: str) -> Term:
        expr = Call("module", (edge.key, op), Var(var[edge.source]))
        if drop and not get_op(op, defs).identity:
            expr = Drop(expr)
        return Term(edge.key, op, expr)

    for node in cell.nodes:
        edges = tuple(
            EdgeTerms(
                edge.key,
                fixed=tuple(term(edge, op) for op in edge.ops),
                mixed=tuple(term(edge, op) for op in edge.candidates) if edge.is_choice else (),
            )
            for edge in cell.edges_into(node.name)
        )
        nodes.append(Node((var[node.name],), Combine(node.name, node.combine, edges)))
    states = tuple("out" if node == "out" else Var(var[node]) for _, node in cell.states)
    values = tuple(Var(var[n]) for n in cell.output)
    nodes.append(Node((), Output(values, bool(cell.concat), cell.mean, states)))
    return Graph(
        cell=cell.name,
        function=f"cell_{identifier(cell.name)}",
        inputs=tuple(params),
        nodes=tuple(nodes),
        edges=tuple(edge.key for edge in cell.edges),
    )


def _map_edges(graph: Graph, fn) -> Graph:
    """The graph with every combination's `EdgeTerms` replaced by `fn(edge_terms)`."""

    def visit(expr):
        return fn(expr) if isinstance(expr, EdgeTerms) else expr

    nodes = tuple(
        attrs.evolve(node, expr=rewrite(node.expr, visit)) if node.kind == "combine" else node
        for node in graph.nodes
    )
    return attrs.evolve(graph, nodes=nodes)


def remove_dead_ops(graph: Graph, cell: Cell, arch: ArchState, defs: tuple = ()) -> Graph:
    """Drop masked-out candidates and zero ops (`none`): they never run."""

    def nonzero(terms) -> tuple[Term, ...]:
        return tuple(t for t in terms if not get_op(t.op, defs).zero)

    def visit(edge: EdgeTerms) -> EdgeTerms:
        live = set(arch.live(cell.name, edge.edge)) if edge.mixed else set()
        mixed = tuple(t for t in edge.mixed if t.op in live)
        return attrs.evolve(edge, fixed=nonzero(edge.fixed), mixed=nonzero(mixed))

    return _map_edges(graph, visit)


def mix(graph: Graph, cell: Cell, arch: ArchState) -> Graph:
    """Weigh each edge's mixed candidates by the mixing mode: `softmax` by `w[row, column]`,
    `mean` by 1/|candidates| and `live_mean` by 1/|live candidates| (one scale per edge, which
    multiplies their sum); `sum` leaves them as they are."""
    mode = arch.mixing
    table = arch.choices.get(cell.name)

    def visit(edge: EdgeTerms) -> EdgeTerms:
        if not edge.mixed or table is None:
            return edge
        if mode == "softmax":
            row = table.edges.index(edge.edge)
            mixed = tuple(
                attrs.evolve(
                    t, expr=Weighted(row, table.candidates[row].index(t.op), t.expr)
                )
                for t in edge.mixed
            )
            return attrs.evolve(edge, mixed=mixed)
        if mode in ("mean", "live_mean"):
            ir = cell.edge(edge.edge)
            count = len(ir.candidates) if mode == "mean" else len(arch.live(cell.name, ir.key))
            return attrs.evolve(edge, scale=1.0 / count)
        return edge

    return _map_edges(graph, visit)


def _retarget(expr, old: str, new: str):
    """`expr` reading `new` where it read `old`."""
    return rewrite(expr, lambda item: Var(new) if item == Var(old) else item)


def split_channels(graph: Graph, cell: Cell, arch: ArchState, groups: int) -> Graph:
    """PC-DARTS' partial channels: on every choice edge with a live candidate (`none` counts:
    the bypassed channels flow anyway), the mixed candidates read the first 1/`groups` of
    their source's channels, a slice made once per source right after it."""
    if groups <= 1 or cell.name not in arch.choices:
        return graph
    table = arch.choices[cell.name]
    edges = [e for e in cell.choices if arch.live(cell.name, e.key)]
    if not edges:
        return graph
    fresh = graph.fresh()
    source_var = {e.key: identifier(e.source) for e in edges}
    sliced = {source: fresh(f"{source}_part") for source in dict.fromkeys(source_var.values())}

    def visit(edge: EdgeTerms) -> EdgeTerms:
        if edge.edge not in source_var:
            return edge
        source = source_var[edge.edge]
        inner = tuple(
            attrs.evolve(t, expr=_retarget(t.expr, source, sliced[source])) for t in edge.mixed
        )
        row = table.edges.index(edge.edge)
        # Under edge normalisation a row of `w` sums to its edge's weight.
        weight = row if arch.mixing == "softmax" and arch.edge_normalised else None
        partial = Partial(
            source, inner, edge.scale, groups, _edge_stride(cell, cell.edge(edge.edge)), weight
        )
        term = Term(edge.edge, None, partial, scaled=True)
        return attrs.evolve(edge, mixed=(term,), scale=None)

    graph = _map_edges(graph, visit)
    slices = {source: Node((part,), Slice(Var(source), groups)) for source, part in sliced.items()}
    return insert_after(graph, {source: [node] for source, node in slices.items()})


def prune(graph: Graph) -> Graph:
    """A combination with nothing to combine (a sum without live ops, a product with a dead
    factor) becomes a `Dead` comment; then, walking back from the output, statements whose
    values nothing needs are dropped (so are their sources, unless something else reads them)."""
    nodes = []
    for node in graph.nodes:
        expr = node.expr
        if node.kind == "combine":
            empty = [not edge.terms for edge in expr.edges]
            if (expr.mode == "sum" and all(empty)) or (expr.mode == "product" and any(empty)):
                node = Node((), Dead(expr.node, node.name))
        nodes.append(node)
    needed: set[str] = set()
    kept = []
    for node in reversed(nodes):
        if node.kind == "output" or needed.intersection(node.targets):
            needed |= node.reads()
            kept.append(node)
        elif node.kind == "dead" and node.expr.var in needed:
            kept.append(node)
    return attrs.evolve(graph, nodes=tuple(reversed(kept)))


def materialise_zeros(graph: Graph, cell: Cell, defs: tuple = ()) -> Graph:
    """Zero feature maps for dead nodes that something reads: made right before the first
    statement that reads one, or in the output itself; and the zeros a concatenation puts
    for an edge without live ops."""
    # The reference for the zeros' size: the last input, adapted when its adapter runs.
    last = identifier(cell.inputs[-1].name)
    adapted = {node.name for node in graph.of_kind("adapter")}
    like = last if last in adapted else graph.inputs[-1]
    stride = _zero_stride(cell)
    dead = {node.expr.var: node.expr.node for node in graph.of_kind("dead")}
    nodes = []
    needed = any(node.reads() & dead.keys() for node in graph.nodes) or any(
        node.kind == "combine"
        and node.expr.mode == "concat"
        and any(not edge.terms for edge in node.expr.edges)
        for node in graph.nodes
    )
    adapter = cell.inputs[-1].adapter
    if needed and adapter and like != last and get_op(adapter, defs).info.resampling:
        # A resampling adapter brings the input to the cell's resolution from another: the raw
        # input has another size, so the adapter runs for the zeros' shape.
        nodes.append(Node((last,), Adapter(cell.inputs[-1].name, Var(graph.inputs[-1]))))
        like = last
    for node in graph.nodes:
        if node.kind == "output":
            values, states = (
                tuple(
                    Zeros(like, dead[v.name], stride)
                    if isinstance(v, Var) and v.name in dead
                    else v
                    for v in items
                )
                for items in (node.expr.values, node.expr.states)
            )
            node = attrs.evolve(node, expr=attrs.evolve(node.expr, values=values, states=states))
        else:
            for name in sorted(node.reads() & dead.keys()):
                nodes.append(Node((name,), Zeros(like, dead.pop(name), stride)))
        if node.kind == "combine" and node.expr.mode == "concat":
            if any(not edge.terms for edge in node.expr.edges):
                empty = Zeros(like, None, stride)
                node = attrs.evolve(node, expr=attrs.evolve(node.expr, empty=empty))
        nodes.append(node)
    return attrs.evolve(graph, nodes=tuple(nodes))
