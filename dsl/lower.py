"""Lowering: the syntax tree of a file to a `SpaceIR`.

Lowering resolves names that decide the IR's shape (a term's op is a candidate set or a fixed op;
terms from one source into one node merge into one edge). Every other check is
`checks.lint_space`'s.
"""

from __future__ import annotations

import attrs

from . import ast, ir
from .errors import NasSemanticError


def lower(module: ast.Module) -> ir.SpaceIR:
    """Turn a parsed file into the IR.

    Raises:
        NasSemanticError: when the file does not have exactly one network, names two presets, or
            puts two choices on one edge.
    """
    opset_decls = [item for item in module.items if isinstance(item, ast.OpSetDecl)]
    cell_decls = [item for item in module.items if isinstance(item, ast.CellDecl)]
    networks = [item for item in module.items if isinstance(item, ast.NetworkDecl)]
    presets = [item for item in module.items if isinstance(item, ast.PresetDecl)]
    opdefs = [item for item in module.items if isinstance(item, ast.OpDef)]

    if not networks:
        raise NasSemanticError(
            "the file has no `network`",
            hint="add the macro network, e.g. `network net(C = 16, classes = 10) { ... }`; "
            "see docs/language.md",
        )
    if len(networks) > 1:
        raise NasSemanticError(
            f"the file declares {len(networks)} networks; a space has exactly one",
            span=networks[1].span,
            hint="move the other networks into files of their own",
        )
    if len(presets) > 1:
        raise NasSemanticError(
            "the file names two presets",
            span=presets[1].span,
            hint="keep one `preset` line",
        )

    opsets = tuple(
        ir.OpSet(name=decl.name, ops=decl.ops, span=decl.span, op_spans=decl.op_spans)
        for decl in opset_decls
    )
    set_names = {opset.name: opset for opset in opsets}
    network = label_width_sets(networks[0])
    cells = tuple(_lower_cell(network.name, decl, set_names) for decl in cell_decls)
    return ir.SpaceIR(
        opsets=opsets,
        cells=cells,
        network=ir.Network(
            name=network.name, params=network.params, items=network.body, span=network.span
        ),
        preset=presets[0].name if presets else None,
        preset_span=presets[0].span if presets else None,
        file=module.file,
        opdefs=opdefs,
    )


def label_width_sets(network: ast.NetworkDecl) -> ast.NetworkDecl:
    """Name every choice among widths: a parameter's default by the parameter (`C1 = {8, 16}`),
    the others `width1`, `width2`, ... in the order of the statements and their arguments."""
    params = [
        attrs.evolve(
            param,
            default=ast.map_width_sets(param.default, _labelled(lambda name=param.name: name)),
        )
        for param in network.params
    ]
    count = 0

    def number() -> str:
        nonlocal count
        count += 1
        return f"width{count}"

    change = _labelled(number)
    body = [
        map_item_exprs(item, lambda expr: ast.map_width_sets(expr, change))
        for item in network.body
    ]
    return attrs.evolve(network, params=params, body=body)


def _labelled(name):
    """A width-set change that gives an unnamed set the label `name()` (nested sets are left to
    the checks, which refuse them)."""

    def change(found: ast.WidthSet) -> ast.WidthSet:
        return found if found.label is not None else attrs.evolve(found, label=name())

    return change


def map_item_exprs(item: ast.MacroDecl, change) -> ast.MacroDecl:
    """A statement with `change` applied to each of its expressions, in reading order."""
    updates = {}
    if item.call is not None:
        args = [change(arg) for arg in item.call.args]
        kwargs = [(key, change(value)) for key, value in item.call.kwargs]
        updates["call"] = attrs.evolve(item.call, args=args, kwargs=kwargs)
    for field in ("repeat", "width", "stride", "at"):
        value = getattr(item, field)
        if value is not None:
            updates[field] = change(value)
    if item.args:
        updates["args"] = [change(arg) for arg in item.args]
    return attrs.evolve(item, **updates)


def _lower_cell(space: str, decl: ast.CellDecl, opsets: dict[str, ir.OpSet]) -> ir.Cell:
    base = f"{space}.{decl.name}"  # dotted paths start with the space's name, as lint's do
    nodes: list[ir.Node] = []
    edges: dict[tuple[str, str], dict] = {}
    keeps: list[ir.Keep] = []
    outputs: list[ast.OutputDecl] = []
    states: list[ast.NextDecl] = []
    named: set[str] = set()
    for statement in decl.body:
        if isinstance(statement, ast.NodeDecl):
            nodes.append(
                ir.Node(name=statement.name, combine=statement.combine, span=statement.span)
            )
            if statement.name in named:
                # Merging a second definition's terms into the first's edges would blame
                # an edge; lint names the real mistake, the repeated node.
                continue
            named.add(statement.name)
            for term in statement.terms:
                _add_term(base, statement.name, term, edges, opsets)
        elif isinstance(statement, ast.KeepDecl):
            keeps.append(
                ir.Keep(
                    k=statement.k,
                    per=statement.per,
                    edges=[f"{source}->{target}" for source, target in statement.edges],
                    span=statement.span,
                    edge_spans=statement.edge_spans,
                    per_span=statement.per_span,
                )
            )
        elif isinstance(statement, ast.NextDecl):
            states.append(statement)
        else:
            outputs.append(statement)
    if len(outputs) > 1:
        raise NasSemanticError(
            f"cell `{decl.name}` has {len(outputs)} `out` statements",
            span=outputs[1].span,
            path=f"{base}.out",
            hint="a cell has one output: `out n4` or `out concat(n1, n2, n3, n4)`",
        )
    output = outputs[0] if outputs else None
    return ir.Cell(
        name=decl.name,
        inputs=[
            ir.Input(
                name=item.name, adapter=item.adapter, span=item.span, adapter_span=item.adapter_span
            )
            for item in decl.inputs
        ],
        nodes=nodes,
        edges=[ir.Edge(**fields) for fields in edges.values()],
        output=output.nodes if output else (),
        concat=output.concat if output else False,
        mean=output.mean if output else False,
        states=[(item.state, item.node) for item in states],
        state_spans=[item.span for item in states],
        flags=decl.flags,
        keeps=keeps,
        span=decl.span,
        output_span=output.span if output else None,
        flag_spans=dict(zip(decl.flags, decl.flag_spans)),
    )


def _add_term(
    base: str, node: str, term: ast.Term, edges: dict[tuple[str, str], dict], opsets: dict
) -> None:
    fields = edges.setdefault(
        (term.source, node),
        {"source": term.source, "target": node, "ops": [], "op_spans": [], "span": term.span},
    )
    if term.op not in opsets:
        fields["ops"].append(term.op)
        fields["op_spans"].append(term.op_span)
        return
    if fields.get("choice") is not None:
        raise NasSemanticError(
            f"two choices on the edge {term.source}->{node}",
            span=term.span,
            path=f"{base}.{node}.edge[{term.source}]",
            hint="one edge carries one candidate set; merge the two sets into one `ops` set",
        )
    fields["choice"] = term.op
    fields["candidates"] = opsets[term.op].ops
    fields["choice_span"] = term.op_span
