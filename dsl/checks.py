"""The semantic checks of a space, `lint_space`: each raises the first problem it finds, with
the span, a dotted path and a hint."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import networkx as nx

from .ast import Num, split_op_name
from .errors import NasSemanticError
from .ir import CELL_FLAGS, Cell, OpInfo, SpaceIR
from .macro import instantiate
from .opdefs import PLUGIN_HINT, PRIMITIVES, check_definitions, info_of
from .printer import format_expr
from .shapes import check_shapes

KEEP_RULES = ("edge", "node")


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean `{close[0]}`? " if close else ""


def _known_list(known) -> str:
    names = sorted(known)
    return ", ".join(names) if names else "(none)"


def _check_op(
    space: SpaceIR,
    catalog: Mapping[str, OpInfo] | None,
    name: str,
    span,
    path: str,
    role: str = "op",
    in_cell: bool = False,
    sets_allowed: bool = False,
    arity: bool = True,
) -> None:
    """Check that an op is registered for its role.

    Args:
        in_cell: the op sits on a cell edge or input, where ops must take the cell's stride.
        sets_allowed: a candidate set could stand here too (a cell edge), so the hint lists them.
    """
    if catalog is None:
        return
    base, values = _split(name, span, path)
    info = catalog.get(base)
    if arity and info is not None and len(values) != len(info.params):
        wanted = len(info.params)
        example = f"{base}({', '.join(info.params)})" if info.params else base
        raise NasSemanticError(
            f"`{base}` takes {wanted} argument{'s' if wanted != 1 else ''}, got {len(values)}",
            span=span,
            path=path,
            hint=f"write `{example}` with integers for its parameters",
        )
    if info is None:
        if any(cell.name == base for cell in space.cells):
            raise NasSemanticError(
                f"`{base}` is a cell, not an op",
                span=span,
                path=path,
                hint=f"a cell is placed in the network on its own, with its width: `{base} @ C` "
                f"or `repeat N {base} @ C`; candidates and blocks are ops (a choice among cells "
                "is written as choices on the cell's edges)",
            )
        if base in space.network.param_names:
            raise NasSemanticError(
                f"unknown op `{name}`",
                span=span,
                path=path,
                hint=f"`{base}` is a parameter of the network, not an op: a width follows `@` "
                f"(`choose {{resblock, skip_connect}} @ {base}`) or opens a block's arguments "
                f"(`resblock({base})`)",
            )
        primitive = (
            f"`{base}` is a primitive of op bodies, not an op: define one from it, e.g. "
            f"`op {base}_op = {base}`, and use `{base}_op`; "
            if base in PRIMITIVES
            else ""
        )
        choices = [op for op, item in catalog.items() if item.role == role]
        sets = [opset.name for opset in space.opsets] if sets_allowed else []
        extra = f"; candidate sets in this file: {', '.join(sets)}" if sets else ""
        raise NasSemanticError(
            f"unknown op `{name}`",
            span=span,
            path=path,
            hint=primitive
            + f"{_suggest(name, choices + sets)}known ops: {_known_list(choices)}; "
            + PLUGIN_HINT
            + extra,
        )
    if info.role != role:
        what = "a head (it ends in class scores)" if info.role == "head" else "a feature-map op"
        where = "`head`/`aux` statements" if role == "head" else "cells, stems and blocks"
        raise NasSemanticError(
            f"`{name}` is {what} and cannot be used in {where}",
            span=span,
            path=path,
            hint="use `head NAME(classes)` for heads and plain ops elsewhere",
        )
    if in_cell and info.stride is not None:
        raise NasSemanticError(
            f"`{name}` reduces the resolution by {info.stride} on its own and cannot be used in "
            "a cell",
            span=span,
            path=path,
            hint="use it as a stem or block of the network; cell ops take the cell's stride",
        )


def _split(name: str, span, path: str) -> tuple[str, tuple[int, ...]]:
    try:
        return split_op_name(name)
    except ValueError:
        raise NasSemanticError(
            f"`{name}` is not an op name", span=span, path=path, hint="write `op` or `op(1, 2)`"
        ) from None


def with_definitions(space: SpaceIR, catalog: Mapping[str, OpInfo] | None):
    """The catalog and the space's own op definitions, checked."""
    if catalog is None:
        check_definitions(space.opdefs, None)
        return None
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
    _check_network(space, catalog)
    space = space.for_values(overrides)
    for phase in ("search", "train") if space.network.phased else ("search",):
        check_shapes(space, instantiate(space, overrides, catalog, phase=phase), catalog)
    return checked


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
            _check_op(space, catalog, op, span or opset.span, path, in_cell=True, sets_allowed=True)


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
                hint=f"{_suggest(flag, CELL_FLAGS)}known flags: {_known_list(CELL_FLAGS)}",
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
            _check_op(space, catalog, item.adapter, span, where, in_cell=True)
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
                hint=f"{_suggest(edge.source, order)}nodes may read the inputs "
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
            _check_op(space, catalog, op, span or edge.span, path, in_cell=True, sets_allowed=True)
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
        if node.name not in inputs_used and node.name not in cell.output:
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


def _check_statements(space: SpaceIR, items, phase: str | None) -> None:
    """One input, one head that comes last and at most one auxiliary head, in each phase."""
    network = space.network
    base = f"{space.name}.network"
    where = f"{phase} network " if phase else "network "
    inputs = [item for item in items if item.kind == "input"]
    if len(inputs) != 1:
        raise NasSemanticError(
            f"the {where}needs exactly one `input(channels, size)` statement"
            if not inputs
            else f"the {where}has two `input` statements",
            span=inputs[1].span if inputs else network.span,
            path=base,
            hint="write `input(channels, size)` first, e.g. `input(3, 32)` for CIFAR-10",
        )
    heads = [item for item in items if item.kind == "head"]
    if len(heads) != 1:
        raise NasSemanticError(
            f"the {where}needs exactly one `head`" if not heads else f"the {where}has two heads",
            span=heads[1].span if heads else network.span,
            path=base,
            hint="give each phase one head: an unmarked `head ...`, or a `search head ...` and a "
            "`train head ...`"
            if phase
            else "end the network with a head, e.g. `head pool_linear(classes)`",
        )
    if items[-1].kind != "head":
        raise NasSemanticError(
            f"statements after the head of the {phase} network"
            if phase
            else "statements after the head",
            span=items[-1].span,
            path=base,
            hint="the head ends the network; move it last",
        )
    if sum(item.kind == "aux" for item in items) > 1:
        raise NasSemanticError(
            f"the {where}has two auxiliary heads",
            span=[item for item in items if item.kind == "aux"][1].span,
            path=base,
            hint="keep one `aux` statement",
        )


def _check_network(space: SpaceIR, catalog) -> None:
    network = space.network
    base = f"{space.name}.network"
    seen = set()
    for param in network.params:
        if param.name in seen:
            raise NasSemanticError(
                f"duplicate parameter `{param.name}`",
                span=param.span,
                path=f"{space.name}.params.{param.name}",
                hint="declare each parameter once",
            )
        seen.add(param.name)
    for phase in ("search", "train") if network.phased else (None,):
        _check_statements(space, network.items_for(phase or "search"), phase)
    cells = {cell.name for cell in space.cells}
    _check_block_choices(space, catalog, cells)
    for item in network.items:
        if item.kind == "choice":
            continue
        if item.kind == "cells":
            if item.cell not in cells:
                raise NasSemanticError(
                    f"unknown cell `{item.cell}`",
                    span=item.cell_span or item.span,
                    path=base,
                    hint=_op_as_cell_hint(item, catalog)
                    or f"{_suggest(item.cell, cells)}cells in this file: {_known_list(cells)}",
                )
            continue
        if item.kind == "input":
            continue
        call = item.call
        role = "head" if item.kind in ("head", "aux") else "op"
        _check_op(space, catalog, call.op, call.span, f"{base}.{call.op}", role=role, arity=False)
        _check_call_args(space, call, (catalog or {}).get(call.op), role)


def _op_as_cell_hint(item, catalog) -> str | None:
    """The hint for an op placed with `OP @ WIDTH`, the syntax of cells."""
    if catalog is None or item.cell not in catalog:
        return None
    call = f"{item.cell}({format_expr(item.width)})"
    if item.repeat != Num(value=1):
        call = f"repeat {format_expr(item.repeat)} {call}"
    return (
        f"`{item.cell}` is an op, not a cell: place it as a block with its width in "
        f"parentheses, `{call}`; `CELL @ WIDTH` places cells"
    )


def _check_call_args(space: SpaceIR, call, info: OpInfo | None, role: str) -> None:
    """The arguments of a stem, block or head: known keywords, each parameter once, and the
    width (or class count) first, then the op's own parameters."""
    path = f"{space.name}.network.{call.op}"
    params = info.params if info is not None else ()
    allowed = ("stride",) if role == "op" and (info is None or info.stride is None) else ()
    allowed += params
    by_position = params[: max(0, len(call.args) - 1)]
    for key, _ in call.kwargs:
        if key not in allowed:
            what = "class count" if role == "head" else "width"
            raise NasSemanticError(
                f"`{call.op}` takes no argument `{key}`",
                span=call.span,
                path=path,
                hint=_suggest(key, allowed)
                + (
                    f"`{call.op}` takes its {what}, then the keywords: {', '.join(allowed)}"
                    if allowed
                    else f"`{call.op}` takes only its {what}"
                ),
            )
        if key in by_position:
            raise NasSemanticError(
                f"`{call.op}` gets `{key}` twice: by position and by keyword",
                span=call.kwarg_span(key),
                path=path,
                hint=f"give `{key}` once: `{call.op}(width, {', '.join(params)})` by position, "
                f"or `{key} = ...` by keyword",
            )
    named = {key for key, _ in call.kwargs if key in params}
    if len(call.args) + len(named) != 1 + len(params) or len(call.args) < 1:
        what = "class count" if role == "head" else "output width"
        if params:
            raise NasSemanticError(
                f"`{call.op}` takes its {what} and its parameters "
                f"{', '.join(params)}; got {len(call.args) + len(named)} arguments",
                span=call.span,
                path=path,
                hint=f"e.g. `{call.op}(C, {', '.join(params)})`: the {what} first",
            )
        raise NasSemanticError(
            f"`{call.op}` takes one positional argument, its {what}; got {len(call.args)}",
            span=call.span,
            path=path,
            hint=f"e.g. `{call.op}(classes)`"
            if role == "head"
            else f"e.g. `{call.op}(2C, stride = 2)`",
        )


def _check_block_choices(space: SpaceIR, catalog, cells: set[str]) -> None:
    """Each `choose` statement: known candidates that build as blocks, a stride of 1 or 2, and
    decision names that no cell type or other choice uses."""
    taken: dict[str, str] = {name: f"cell `{name}`" for name in cells}
    for choice in space.block_choices:
        item = choice.item
        path = f"{space.name}.network.{choice.label}"
        if item.opset is not None and space.opset(item.opset) is None:
            sets = [opset.name for opset in space.opsets]
            is_op = catalog is not None and item.opset in catalog
            raise NasSemanticError(
                f"unknown candidate set `{item.opset}`",
                span=item.cell_span or item.span,
                path=path,
                hint=f"a choice needs candidates: write them in braces, `choose {{{item.opset}, "
                "skip_connect}} @ C`"
                if is_op
                else f"{_suggest(item.opset, sets)}candidate sets in this file: "
                f"{_known_list(sets)}; or list the candidates: `choose {{resblock, skip_connect}}"
                " @ C`",
            )
        spans = item.op_spans if item.opset is None else ()
        seen = set()
        for index, op in enumerate(choice.candidates):
            span = (spans[index] if index < len(spans) else None) or item.cell_span or item.span
            if op == "none":
                raise NasSemanticError(
                    "`none` cannot be a candidate of a block choice: it would zero the features "
                    "of every later layer",
                    span=span,
                    path=path,
                    hint="to make the layer skippable (searchable depth), offer `skip_connect`",
                )
            if op in seen:
                raise NasSemanticError(
                    f"`{op}` is listed twice in the block choice `{choice.label}`",
                    span=span,
                    path=path,
                    hint="list each candidate block once",
                )
            seen.add(op)
            _check_op(space, catalog, op, span, path, in_cell=True)
        if choice.stride not in (1, 2):
            raise NasSemanticError(
                f"the stride of `{choice.label}` must be 1 or 2, not {choice.stride}",
                span=getattr(item.stride, "span", None) or item.span,
                path=path,
                hint="stack two stride-2 choices to reduce by 4",
            )
        if f"the block choice `{choice.label}`" in taken.values():
            raise NasSemanticError(
                f"two block choices are named `{choice.label}`",
                span=item.span,
                path=path,
                hint="give each `choose` statement its own name; instances of one statement "
                "share a decision with `choose shared`",
            )
        for cell in choice.cells:
            if cell.name in taken:
                raise NasSemanticError(
                    f"the block choice `{choice.label}` names its decision `{cell.name}`, "
                    f"which {taken[cell.name]} already uses",
                    span=item.span,
                    path=path,
                    hint="name the choice apart: `choose stage2 = {...} @ C`",
                )
            taken[cell.name] = f"the block choice `{choice.label}`"
