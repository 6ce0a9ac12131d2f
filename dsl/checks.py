"""The semantic checks of a space, `lint_space`: each raises the first problem it finds, with
the span, a dotted path and a hint. Here the op sets and cells; the network's checks are
`netchecks`, the checks of an op name where it is used `opcheck`."""

from __future__ import annotations

from collections.abc import Mapping

import networkx as nx

from .errors import NasSemanticError
from .ir import CELL_FLAGS, Cell, OpInfo, SpaceIR
from .macro import instantiate
from .netchecks import check_network
from .opcheck import check_op, known_list, suggest
from .opdefs import check_definitions, info_of, sequence_catalog
from .shapes import check_shapes

KEEP_RULES = ("edge", "node")


def with_definitions(space: SpaceIR, catalog: Mapping[str, OpInfo] | None):
    """The catalog and the space's own op definitions, checked."""
    if catalog is None:
        check_definitions(space.opdefs, None)
        return None
    # The sequence library's ops are nasc's too (docs/language.md, section 25).
    catalog = {**catalog, **sequence_catalog()}
    builtin = frozenset(catalog)
    merged = {**catalog, **{defn.name: info_of(defn) for defn in space.opdefs}}
    check_definitions(space.opdefs, merged, builtin)
    return merged


def lint_space(
    space: SpaceIR,
    catalog: Mapping[str, OpInfo] | None = None,
    overrides: Mapping[str, int] | None = None,
) -> SpaceIR:
    """Check every invariant of a space; return the space so calls chain.

    Args:
        catalog: the registered ops; when None, op names are not checked.
        overrides: parameter values that replace the defaults (`-D name=value`).

    Raises:
        NasSemanticError: the first problem found, with its span, path and a hint.
    """
    checked = space
    overrides = overrides or {}
    catalog = with_definitions(space, catalog)
    _check_opsets(space, catalog)
    names: dict[str, object] = {}
    for cell in space.cells:
        if cell.name in names:
            raise NasSemanticError(
                f"duplicate cell `{cell.name}`",
                span=cell.span,
                path=f"{space.name}.{cell.name}",
                hint="give each cell type its own name",
            )
        names[cell.name] = cell
        _check_cell(space, cell, catalog)
    check_network(space, catalog)
    _check_width_overrides(space, overrides)
    space = space.for_values(overrides)
    for phase in ("search", "train") if space.network.phased else ("search",):
        check_shapes(space, instantiate(space, overrides, catalog, phase=phase), catalog)
    return checked


def _check_width_overrides(space: SpaceIR, overrides: Mapping[str, int]) -> None:
    """Refuse `-D NAME=...` for a parameter whose default is a choice among widths: the search
    decides it, and the supernet is built from the set."""
    for choice in space.width_choices:
        if choice.label not in overrides:
            continue
        param = next(p for p in space.network.params if p.name == choice.label)
        value = overrides[choice.label]
        raise NasSemanticError(
            f"-D {choice.label}={value}: `{choice.label}` is a choice among the widths "
            f"{{{', '.join(map(str, choice.widths))}}}, which the search decides",
            span=param.span,
            path=f"{space.name}.params.{choice.label}",
            hint=f"to fix the width, write `{choice.label} = {value}` in the file in place of "
            "the set; to search fewer widths, list fewer in the set",
        )


def _check_opsets(space: SpaceIR, catalog) -> None:
    seen = set()
    for opset in space.opsets:
        path = f"{space.name}.ops.{opset.name}"
        if opset.name in seen:
            raise NasSemanticError(
                f"duplicate op set `{opset.name}`",
                span=opset.span,
                path=path,
                hint="give each candidate set its own name",
            )
        seen.add(opset.name)
        if catalog is not None and opset.name in catalog:
            raise NasSemanticError(
                f"the op set `{opset.name}` has the name of an op",
                span=opset.span,
                path=path,
                hint=f"rename the set, e.g. `{opset.name}_ops`, "
                f"so `x:{opset.name}` is not ambiguous",
            )
        if not opset.ops:
            raise NasSemanticError(
                f"the op set `{opset.name}` is empty",
                span=opset.span,
                path=path,
                hint="list at least one op, e.g. `{none, skip_connect}`",
            )
        spans = opset.op_spans or (opset.span,) * len(opset.ops)
        listed = set()
        for op, span in zip(opset.ops, spans):
            if op in listed:
                raise NasSemanticError(
                    f"`{op}` appears twice in the op set `{opset.name}`",
                    span=span or opset.span,
                    path=path,
                    hint="list each op once",
                )
            listed.add(op)
            check_op(space, catalog, op, span or opset.span, path, in_cell=True, sets_allowed=True)


def _check_cell(space: SpaceIR, cell: Cell, catalog) -> None:
    base = f"{space.name}.{cell.name}"
    if not cell.inputs:
        raise NasSemanticError(
            f"cell `{cell.name}` has no inputs",
            span=cell.span,
            path=base,
            hint="name its inputs: `cell NAME(x) { ... }`",
        )
    for flag in cell.flags:
        if flag not in CELL_FLAGS:
            raise NasSemanticError(
                f"unknown cell flag `{flag}`",
                span=cell.flag_spans.get(flag, cell.span),
                path=base,
                hint=f"{suggest(flag, CELL_FLAGS)}known flags: {known_list(CELL_FLAGS)}",
            )
    defined: dict[str, object] = {}
    for item in cell.inputs:
        if item.name in defined:
            raise NasSemanticError(
                f"duplicate input `{item.name}` of cell `{cell.name}`",
                span=item.span,
                path=f"{base}.{item.name}",
                hint="give each input its own name",
            )
        defined[item.name] = item
        if item.adapter is not None:
            where = f"{base}.{item.name}"
            span = item.adapter_span or item.span
            check_op(space, catalog, item.adapter, span, where, in_cell=True)
    order = {name: index for index, name in enumerate(cell.input_names)}
    for node in cell.nodes:
        if node.name in defined:
            what = "an input" if node.name in cell.input_names else "a node"
            raise NasSemanticError(
                f"duplicate node `{node.name}` in cell `{cell.name}`: it is already {what}",
                span=node.span,
                path=f"{base}.{node.name}",
                hint="each node is defined once; sum all its edges in one line",
            )
        defined[node.name] = node
        order[node.name] = len(order)
    if not cell.nodes:
        raise NasSemanticError(
            f"cell `{cell.name}` has no nodes",
            span=cell.span,
            path=base,
            hint="define at least one node, e.g. `n1 = x:nb201`",
        )
    _check_output(space, cell)  # first: without a valid `out`, every node looks unused
    _check_states(space, cell)
    _check_edges(space, cell, catalog, order)
    _check_keeps(space, cell)


def _check_edges(space: SpaceIR, cell: Cell, catalog, order: dict[str, int]) -> None:
    base = f"{space.name}.{cell.name}"
    for edge in cell.edges:
        path = f"{base}.{edge.target}.edge[{edge.source}]"
        if edge.source not in order:
            raise NasSemanticError(
                f"undefined node `{edge.source}` read by `{edge.target}`",
                span=edge.span,
                path=path,
                hint=f"{suggest(edge.source, order)}nodes may read the inputs "
                f"({', '.join(cell.input_names)}) and nodes defined above them",
            )
    graph = nx.DiGraph()
    graph.add_nodes_from(order)
    graph.add_edges_from((edge.source, edge.target) for edge in cell.edges)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        names = [source for source, _ in cycle] + [cycle[0][0]]
        first = next(edge for edge in cell.edges if (edge.source, edge.target) == cycle[-1])
        raise NasSemanticError(
            f"cycle in cell `{cell.name}`: {' -> '.join(names)}",
            span=first.span,
            path=f"{base}.{first.target}.edge[{first.source}]",
            hint="a cell is a DAG: a node may only read inputs and nodes defined above it",
        )
    for edge in cell.edges:
        path = f"{base}.{edge.target}.edge[{edge.source}]"
        if order[edge.source] > order[edge.target]:
            raise NasSemanticError(
                f"edge from a later node: `{edge.target}` reads `{edge.source}`, "
                "which is defined after it",
                span=edge.span,
                path=path,
                hint=f"move the definition of `{edge.source}` above `{edge.target}`",
            )
        node = cell.node(edge.target)
        if node.combine != "sum" and len(edge.ops) + edge.is_choice > 1:
            raise NasSemanticError(
                f"`{edge.target}` is a {node.combine} node and reads `{edge.source}` twice",
                span=edge.span,
                path=path,
                hint=_one_term_per_source(node.combine, edge),
            )
        repeated = [op for op in edge.ops if edge.ops.count(op) > 1 or op in edge.candidates]
        if repeated:
            raise NasSemanticError(
                f"the edge {edge.key} carries `{repeated[0]}` twice",
                span=edge.span,
                path=path,
                hint="an op appears once per edge, fixed or as a candidate",
            )
        spans = edge.op_spans or (edge.span,) * len(edge.ops)
        for op, span in zip(edge.ops, spans):
            check_op(space, catalog, op, span or edge.span, path, in_cell=True, sets_allowed=True)
        if edge.is_choice and not edge.candidates:
            raise NasSemanticError(
                f"the choice `{edge.choice}` on {edge.key} has no candidates",
                span=edge.choice_span or edge.span,
                path=path,
                hint=f"list ops in `ops {edge.choice} = {{...}}`",
            )
    inputs_used = {edge.source for edge in cell.edges}
    for node in cell.nodes:
        if not cell.edges_into(node.name):
            raise NasSemanticError(
                f"node `{node.name}` has no incoming edges",
                span=node.span,
                path=f"{base}.{node.name}",
                hint="a node reads at least one input or earlier node",
            )
        if (
            node.name not in inputs_used
            and node.name not in cell.output
            and all(node.name != carried for _, carried in cell.states)
        ):
            raise NasSemanticError(
                f"node `{node.name}` is never used: no node reads it and `out` leaves it out",
                span=node.span,
                path=f"{base}.{node.name}",
                hint=f"read it from a later node or add it to the output, e.g. `out {node.name}`",
            )


def _one_term_per_source(combine: str, edge) -> str:
    """How to combine two ops of one source in a product or concat node: one of them in a node
    of its own, read by the node."""
    first, second = [*([edge.choice] if edge.is_choice else []), *edge.ops][:2]
    source, target, own = edge.source, edge.target, f"{edge.target}_{edge.source}"
    terms = f"{source}:{first}, {own}:skip_connect"
    value = f"concat({terms})" if combine == "concat" else terms.replace(", ", " * ")
    return (
        f"a {combine} node takes one term per source: compute one of the two ops in a node of "
        f"its own, `{own} = {source}:{second}` above `{target}`, and read that node: "
        f"`{target} = {value}`"
    )


def _check_output(space: SpaceIR, cell: Cell) -> None:
    base = f"{space.name}.{cell.name}"
    if not cell.output:
        raise NasSemanticError(
            f"cell `{cell.name}` has no output",
            span=cell.span,
            path=f"{base}.out",
            hint=f"add `out {cell.nodes[-1].name}` or `out concat(...)` at the end of the cell"
            if cell.nodes
            else "add an `out` statement",
        )
    nodes = set(cell.node_names)
    for name in cell.output:
        if name not in nodes:
            what = "an input" if name in cell.input_names else "undefined"
            raise NasSemanticError(
                f"the output names `{name}`, which is {what}",
                span=cell.output_span or cell.span,
                path=f"{base}.out",
                hint=f"the output is made of intermediate nodes: {', '.join(cell.node_names)}",
            )
    if len(set(cell.output)) != len(cell.output):
        raise NasSemanticError(
            "the output lists a node twice",
            span=cell.output_span or cell.span,
            path=f"{base}.out",
            hint="list each node once in `out concat(...)`",
        )


def _check_states(space: SpaceIR, cell: Cell) -> None:
    """`next STATE = NODE`: the state is an input of the cell, carried once, from a node (or
    the output, `out`); at least one input is left for the sequence to feed."""
    base = f"{space.name}.{cell.name}"
    seen: set[str] = set()
    nodes = set(cell.node_names)
    for (state, node), span in zip(cell.states, cell.state_spans or (None,) * len(cell.states)):
        path = f"{base}.next.{state}"
        if state not in cell.input_names:
            what = "a node" if state in nodes else "undefined"
            raise NasSemanticError(
                f"`next {state}` names a state that is not an input of cell `{cell.name}` "
                f"(`{state}` is {what})",
                span=span or cell.span,
                path=path,
                hint=f"a state is an input the cell reads at step t from step t - 1: add it to "
                f"the inputs, `cell {cell.name}({', '.join((*cell.input_names, state))})`",
            )
        if state in seen:
            raise NasSemanticError(
                f"the state `{state}` of cell `{cell.name}` is carried twice",
                span=span or cell.span,
                path=path,
                hint="write one `next` per state",
            )
        seen.add(state)
        if node != "out" and node not in nodes:
            what = "an input" if node in cell.input_names else "undefined"
            raise NasSemanticError(
                f"`next {state} = {node}` carries `{node}`, which is {what}",
                span=span or cell.span,
                path=path,
                hint=f"a state takes the value of a node at the end of the step "
                f"({', '.join(cell.node_names)}), or of the cell's output: `next {state} = out`",
            )
        item = next(item for item in cell.inputs if item.name == state)
        if item.adapter is not None:
            adapter = item.adapter
            raise NasSemanticError(
                f"the state `{state}` of cell `{cell.name}` has an adapter",
                span=item.adapter_span or span or cell.span,
                path=path,
                hint=f"a state is carried as it is: write `{state}`, not `{state}:{adapter}`",
            )
    if cell.states and len(cell.states) == len(cell.inputs):
        raise NasSemanticError(
            f"every input of the recurrent cell `{cell.name}` is a state, so the sequence feeds "
            "nothing",
            span=cell.state_spans[0] if cell.state_spans else cell.span,
            path=base,
            hint=f"add the input at step t first: `cell {cell.name}(x, "
            f"{', '.join(cell.input_names)})`",
        )


def _check_keeps(space: SpaceIR, cell: Cell) -> None:
    base = f"{space.name}.{cell.name}"
    choices = {edge.key: edge for edge in cell.choices}
    claimed: dict[str, object] = {}
    general = None
    for rule in cell.keeps:
        if rule.k < 1:
            raise NasSemanticError(
                f"`keep {rule.k}` keeps nothing",
                span=rule.span,
                path=f"{base}.keep",
                hint="keep at least 1 candidate",
            )
        if rule.per is not None:
            if rule.per not in KEEP_RULES:
                raise NasSemanticError(
                    f"unknown rule `per {rule.per}`",
                    span=rule.per_span or rule.span,
                    path=f"{base}.keep",
                    hint="write `keep K per edge` (each edge its own subset) or `keep K per node` "
                    "(all candidates into a node compete)",
                )
            if general is not None:
                raise NasSemanticError(
                    "two `keep ... per ...` rules in one cell",
                    span=rule.span,
                    path=f"{base}.keep",
                    hint="one `per` rule covers every choice not in an explicit subset; "
                    "list other groups with `keep K of {a->b, ...}`",
                )
            general = rule
            continue
        spans = rule.edge_spans or (rule.span,) * len(rule.edges)
        for key, span in zip(rule.edges, spans):
            if key not in choices:
                source, target = key.split("->")
                exists = any(edge.key == key for edge in cell.edges)
                raise NasSemanticError(
                    f"the subset lists {key}, which "
                    + ("carries a fixed op, not a choice" if exists else "is not an edge"),
                    span=span or rule.span,
                    path=f"{base}.{target}.edge[{source}]",
                    hint="a subset lists choice edges: " + ", ".join(choices)
                    if choices
                    else "this cell has no choices",
                )
            if key in claimed:
                raise NasSemanticError(
                    f"the edge {key} is in two subsets",
                    span=span or rule.span,
                    path=f"{base}.keep",
                    hint="comparison subsets partition the choices: list each edge once",
                )
            claimed[key] = rule
    unclaimed = [key for key in choices if key not in claimed]
    if unclaimed and general is None:
        if not cell.keeps:
            hint = "add `keep 1 per edge` (one op per edge) or `keep 2 per node` (DARTS)"
            message = f"cell `{cell.name}` has choices but no `keep` rule"
        else:
            hint = f"add {unclaimed[0]} to a `keep ... of {{...}}` subset, or add `keep 1 per edge`"
            message = f"the choice {unclaimed[0]} is in no comparison subset"
        raise NasSemanticError(message, span=cell.span, path=f"{base}.keep", hint=hint)
    for subset in cell.subsets:
        if subset.k > len(subset.members):
            raise NasSemanticError(
                f"`keep {subset.k}` in the subset {subset.label}, which has only "
                f"{len(subset.members)} candidate{'s' if len(subset.members) != 1 else ''}",
                span=subset.span,
                path=f"{base}.keep",
                hint=f"keep at most {len(subset.members)}, or add candidates to the subset",
            )
