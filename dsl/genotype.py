"""Genotypes: the decisions of a search, kept apart from the space they decide.

A genotype maps each cell type to the surviving ops of each of its choice edges. It can be
checked against a space's comparison subsets, applied to the space to give a fixed space (a `.nas`
file with no choices), and written as an NB201 string or a DARTS genotype when the cells have
those shapes.
"""

from __future__ import annotations

import ast as python_ast
import json
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from .ast import CallDecl, MacroDecl, Num, WidthSet, map_width_sets, split_op_name
from .errors import NascUsageError
from .ir import BLOCK_EDGE, Cell, Edge, SpaceIR

# The DARTS paper's published genotypes (quark0/darts, cnn/genotypes.py), for `--arch DARTS_V2`.
KNOWN_DARTS_GENOTYPES = {
    "DARTS_V1": "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])",
    "DARTS_V2": "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])",
}


def _freeze(cells: Mapping[str, Mapping[str, object]]) -> dict[str, dict[str, tuple[str, ...]]]:
    return {
        cell: {edge: tuple(ops) for edge, ops in edges.items()} for cell, edges in cells.items()
    }


@attrs.frozen
class Genotype:
    """Surviving ops per cell type and choice edge: `{"cell": {"x->n1": ("nor_conv_3x3",)}}`."""

    cells: dict[str, dict[str, tuple[str, ...]]] = attrs.field(converter=_freeze)

    def to_json(self) -> dict:
        return {
            "cells": {
                cell: {e: list(ops) for e, ops in edges.items()}
                for cell, edges in self.cells.items()
            }
        }

    @classmethod
    def from_json(cls, data: object, source: str = "genotype") -> Genotype:
        """Read the JSON form written by `to_json` (the run directory's `genotype.json`)."""
        cells = data.get("cells") if isinstance(data, dict) else None
        if not isinstance(cells, dict) or not all(
            isinstance(edges, dict)
            and all(
                isinstance(ops, list) and all(isinstance(op, str) for op in ops)
                for ops in edges.values()
            )
            for edges in cells.values()
        ):
            raise NascUsageError(
                f"{source} is not a genotype",
                hint='a genotype is JSON like {"cells": {"CELL": {"x->n1": ["nor_conv_3x3"]}}}',
            )
        return cls(cells)


def check_genotype(space: SpaceIR, genotype: Genotype) -> None:
    """Check that a genotype decides every choice of the space and keeps exactly k per subset.

    Raises:
        NascUsageError: naming the cell, edge or subset that does not fit.
    """
    searched = [cell.name for cell in space.used_cells() if cell.choices]
    for name in genotype.cells:
        if name not in searched:
            # Most often a misspelt cell name, or a genotype of another space.
            raise NascUsageError(
                f"the genotype decides cell `{name}`, which is not a searched cell of "
                f"`{space.name}`",
                hint=f"its searched cells: {', '.join(searched) or 'none'}",
            )
    for cell in space.used_cells():
        if not cell.choices:
            continue
        decided = genotype.cells.get(cell.name)
        if decided is None:
            raise NascUsageError(
                f"the genotype does not decide cell `{cell.name}`",
                hint=f"give surviving ops for its edges: {', '.join(e.key for e in cell.choices)}",
            )
        choices = {edge.key: edge for edge in cell.choices}
        for key, ops in decided.items():
            if key not in choices:
                raise NascUsageError(
                    f"the genotype names {key}, which is not a choice of cell `{cell.name}`",
                    hint=f"choices of `{cell.name}`: {', '.join(choices)}",
                )
            for op in ops:
                if op not in choices[key].candidates:
                    raise NascUsageError(
                        f"`{op}` is not a candidate of {cell.name}.{key}",
                        hint=f"candidates: {', '.join(choices[key].candidates)}",
                    )
            if len(set(ops)) != len(ops):
                raise NascUsageError(f"the genotype lists an op twice on {cell.name}.{key}")
        for subset in cell.subsets:
            kept = sum(1 for key, op in subset.members if op in decided.get(key, ()))
            if kept != subset.k:
                raise NascUsageError(
                    f"cell `{cell.name}`, subset {subset.label}: the genotype keeps {kept}, "
                    f"the space keeps exactly {subset.k}",
                    hint="choose exactly k candidates in every comparison subset",
                )


def apply_genotype(space: SpaceIR, genotype: Genotype) -> SpaceIR:
    """The fixed space the genotype selects: choices become fixed ops, `keep` rules go.

    A choice edge left with no op is dropped, unless its target would read nothing or its source
    would be read by nothing; then it stays as a `none` edge, which computes nothing. A product
    node left with one edge becomes a sum node: both compute that edge, and only the sum can be
    written in `.nas` text (a product needs two terms).
    """
    check_genotype(space, genotype)
    cells = []
    for cell in space.cells:
        decided = genotype.cells.get(cell.name, {})
        edges: list[Edge] = []
        dropped: list[Edge] = []
        for edge in cell.edges:
            if not edge.is_choice:
                edges.append(edge)
                continue
            ops = edge.ops + tuple(op for op in edge.candidates if op in decided.get(edge.key, ()))
            fixed = attrs.evolve(edge, ops=ops, choice=None, candidates=(), choice_span=None)
            (edges if ops else dropped).append(fixed)
        for edge in dropped:
            reads_nothing = not any(e.target == edge.target for e in edges)
            source_unused = (
                edge.source in cell.node_names
                and edge.source not in cell.output
                and not any(e.source == edge.source for e in edges)
            )
            if reads_nothing or source_unused:
                edges.append(attrs.evolve(edge, ops=("none",)))
        order = {e.key: index for index, e in enumerate(cell.edges)}
        edges.sort(key=lambda e: order[e.key])
        nodes = [
            attrs.evolve(node, combine="sum")
            if node.combine == "product" and sum(e.target == node.name for e in edges) == 1
            else node
            for node in cell.nodes
        ]
        cells.append(attrs.evolve(cell, nodes=nodes, edges=edges, keeps=()))
    used = {edge.choice for cell in cells for edge in cell.edges if edge.is_choice}
    network = attrs.evolve(space.network, items=_fixed_items(space, genotype))
    if space.width_choices:
        network = _fixed_widths(network, genotype)
    return attrs.evolve(
        space,
        cells=cells,
        network=network,
        opsets=[opset for opset in space.opsets if opset.name in used],
    )


def _fixed_items(space: SpaceIR, genotype: Genotype) -> list:
    """The network's statements with every block choice replaced by its chosen blocks, one
    block statement per instance (instances of an unshared choice may differ)."""
    items = []
    for item in space.network.items:
        if item.kind != "choice":
            items.append(item)
            continue
        choice = space.block_choice(item)
        for instance in range(choice.count):
            (op,) = genotype.cells[choice.cell_for(instance).name][BLOCK_EDGE]
            kwargs = [("stride", item.stride)] if item.stride is not None else []
            # A parametric candidate `mbconv(6,5)` is written as the block `mbconv(W, 6, 5)`.
            base, values = split_op_name(op)
            args = [item.width, *(Num(value=value) for value in values)]
            call = CallDecl(op=base, args=args, kwargs=kwargs, span=item.span)
            last = instance == choice.count - 1
            items.append(
                MacroDecl(
                    kind="block",
                    phase=item.phase,
                    call=call,
                    span=item.span,
                    name=item.name if last else None,
                    sources=item.sources if instance == 0 else (),
                )
            )
    return items


def _fixed_widths(network, genotype: Genotype):
    """The network with every choice among widths replaced by its chosen width."""
    from .lower import map_item_exprs

    def chosen(found: WidthSet):
        (width,) = genotype.cells[found.label][BLOCK_EDGE]
        return Num(value=int(width), span=found.span)

    params = [
        attrs.evolve(param, default=map_width_sets(param.default, chosen))
        for param in network.params
    ]
    items = [
        map_item_exprs(item, lambda expr: map_width_sets(expr, chosen)) for item in network.items
    ]
    return attrs.evolve(network, params=params, items=items)


# One decision of a blocks string: `stage1_1=skip_connect` or `stage1_1=mbconv(6,5)`.
_BLOCK = r"\w+=\w+(\([0-9]+(,[0-9]+)*\))?"


def _tight_args(text: str) -> str:
    """`mbconv(6, 5)` as the canonical candidate name `mbconv(6,5)`: no spaces in arguments."""
    return re.sub(r"\(([^()]*)\)", lambda m: "(" + re.sub(r"\s+", "", m.group(1)) + ")", text)


def genotype_from_blocks(space: SpaceIR, text: str) -> Genotype:
    """Read a blocks string (`blocks_string`): `DECISION=op` for every block-choice decision;
    the space's cells must have no other choice.

    Raises:
        NascUsageError: an unknown decision or candidate, a decision left out or named twice.
    """
    decisions = {cell.name: cell for choice in space.block_choices for cell in choice.cells}
    decisions.update({choice.label: choice.cell for choice in space.width_choices})
    others = [cell.name for cell in space.used_cells() if cell.choices and cell.block is None]
    if others:
        raise NascUsageError(
            f"a blocks string decides only block choices; cell `{others[0]}` has choices too",
            hint="give the whole genotype as a JSON file",
        )
    cells: dict[str, dict[str, tuple[str, ...]]] = {}
    for pair in _tight_args(text).split():
        name, op = pair.split("=")
        if name not in decisions:
            raise NascUsageError(
                f"`{name}` is not a block-choice decision of `{space.name}`",
                hint=f"decisions: {', '.join(decisions)}",
            )
        if name in cells:
            raise NascUsageError(f"the blocks string decides `{name}` twice")
        cells[name] = {BLOCK_EDGE: (op,)}
    genotype = Genotype(cells)
    check_genotype(space, genotype)
    return genotype


def blocks_string(space: SpaceIR, genotype: Genotype) -> str:
    """The chosen block of every block-choice decision and the chosen width of every choice among
    widths: `stage1=resblock stage2_1=skip_connect C1=16`."""
    cells = [cell for choice in space.block_choices for cell in choice.cells]
    cells += [choice.cell for choice in space.width_choices]
    return " ".join(
        f"{cell.name}={'+'.join(genotype.cells.get(cell.name, {}).get(BLOCK_EDGE, ())) or '-'}"
        for cell in cells
    )


# --- NAS-Bench-201 strings ----------------------------------------------------------------------


def nb201_sources(cell: Cell) -> list[str] | None:
    """The node order of an NB201-shaped cell (input first), or None when the cell is not one.

    NB201-shaped: one input, each node summing edges from the input and every earlier node,
    output the last node, and one op per edge: a choice with `keep 1 per edge`, or (in a fixed
    architecture) one fixed op.
    """
    if cell.block is not None or len(cell.inputs) != 1 or cell.concat or len(cell.output) != 1:
        return None
    order = [cell.inputs[0].name, *cell.node_names]
    if cell.output[0] != order[-1]:
        return None
    for index, node in enumerate(cell.nodes, start=1):
        into = cell.edges_into(node.name)
        if node.combine != "sum" or [e.source for e in into] != order[:index]:
            return None
        if any(len(e.ops) + e.is_choice != 1 for e in into):
            return None
    if any(subset.k != 1 or len(subset.edges) != 1 for subset in cell.subsets):
        return None
    return order


def _nb201_cell(space: SpaceIR) -> tuple[Cell, list[str]]:
    """The one NB201-shaped cell type: the searched one, or the only one of a fixed space."""
    cells = [c for c in space.used_cells() if c.choices] or list(space.used_cells())
    shaped = [(cell, nb201_sources(cell)) for cell in cells]
    shaped = [(cell, order) for cell, order in shaped if order]
    if len(shaped) != 1 or len(shaped) != len(cells):
        raise NascUsageError(
            f"the space `{space.name}` is not NB201-shaped",
            hint="NB201 strings describe spaces with one searched cell type that has one input, "
            "dense choice edges and `keep 1 per edge`",
        )
    return shaped[0]


def nb201_string(space: SpaceIR, genotype: Genotype) -> str:
    """The NB201 architecture string, e.g. `|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|`."""
    cell, order = _nb201_cell(space)
    decided = genotype.cells.get(cell.name, {})

    def op(source: str, target: str) -> str:
        edge = cell.edge(f"{source}->{target}")
        return edge.ops[0] if edge.ops else decided[edge.key][0]

    nodes = []
    for index, node in enumerate(order[1:], start=1):
        terms = [f"{op(src, node)}~{j}" for j, src in enumerate(order[:index])]
        nodes.append("|" + "|".join(terms) + "|")
    return "+".join(nodes)


def genotype_from_nb201(space: SpaceIR, text: str) -> Genotype:
    """Read an NB201 string for the space's NB201-shaped cell type.

    Raises:
        NascUsageError: a malformed string, or one for a different number of nodes or ops.
    """
    cell, order = _nb201_cell(space)
    hint = (
        "write one `|op~j|...|` group per node, joined by `+`, e.g. "
        "`|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|`"
    )
    groups = text.strip().split("+")
    if len(groups) != len(order) - 1:
        raise NascUsageError(
            f"the NB201 string has {len(groups)} node groups; cell `{cell.name}` has "
            f"{len(order) - 1} nodes",
            hint=hint,
        )
    decided: dict[str, list[str]] = {}
    for index, group in enumerate(groups, start=1):
        if not re.fullmatch(r"\|([^|~]+~[0-9]+\|)+", group):
            raise NascUsageError(f"malformed NB201 node group `{group}`", hint=hint)
        terms = [term.split("~") for term in group.strip("|").split("|")]
        if sorted(int(j) for _, j in terms) != list(range(index)):
            raise NascUsageError(
                f"node group {index} `{group}` must have one op from each of nodes 0..{index - 1}",
                hint=hint,
            )
        for op, j in terms:
            decided[f"{order[int(j)]}->{order[index]}"] = [op]
    genotype = Genotype({cell.name: decided})
    check_genotype(space, genotype)
    return genotype


# --- DARTS genotypes ----------------------------------------------------------------------------


def _darts_cells(space: SpaceIR) -> dict[str, tuple[Cell, list[str]]]:
    """The normal and reduction cell types of a DARTS-shaped space, with their node orders."""
    found: dict[str, tuple[Cell, list[str]]] = {}
    for cell in space.used_cells():
        order = [*cell.input_names, *cell.node_names]
        # A searched cell has dense choice edges; a fixed one keeps only the chosen edges.
        shaped = (
            len(cell.inputs) == 2
            and cell.concat
            and all(
                node.combine == "sum"
                and (
                    not cell.choices
                    or [e.source for e in cell.edges_into(node.name)] == order[: 2 + i]
                )
                for i, node in enumerate(cell.nodes)
            )
        )
        role = "reduce" if cell.reduction else "normal"
        if not shaped or role in found:
            found = {}
            break
        found[role] = (cell, order)
    if set(found) != {"normal", "reduce"}:
        raise NascUsageError(
            f"the space `{space.name}` is not DARTS-shaped",
            hint="DARTS genotypes describe spaces with one normal and one reduction cell type, "
            "each with two inputs, sum nodes (with dense choices when searched) and a concat "
            "output",
        )
    return found


def darts_genotype(space: SpaceIR, genotype: Genotype) -> dict[str, list]:
    """The DARTS genotype as a dict: `normal`, `normal_concat`, `reduce`, `reduce_concat`."""
    result: dict[str, list] = {}
    for role, (cell, order) in _darts_cells(space).items():
        decided = genotype.cells.get(cell.name, {})
        pairs = []
        for node in cell.node_names:
            for edge in cell.edges_into(node):
                ops = edge.ops + decided.get(edge.key, ()) if edge.is_choice else edge.ops
                pairs.extend((op, order.index(edge.source)) for op in ops)
        result[role] = pairs
        result[f"{role}_concat"] = [order.index(name) for name in cell.output]
    return result


def format_darts(genotype: dict[str, list]) -> str:
    """Write a DARTS genotype the way the DARTS code prints it."""

    def pairs(items):
        return "[" + ", ".join(f"('{op}', {j})" for op, j in items) + "]"

    return (
        f"Genotype(normal={pairs(genotype['normal'])}, normal_concat={genotype['normal_concat']}, "
        f"reduce={pairs(genotype['reduce'])}, reduce_concat={genotype['reduce_concat']})"
    )


def genotype_strings(space: SpaceIR, genotype: Genotype) -> dict[str, str]:
    """The NB201 string and the DARTS genotype, for the shapes the space has."""
    strings = {}
    if space.block_choices or space.width_choices:
        strings["blocks"] = blocks_string(space, genotype)
    try:
        strings["nb201"] = nb201_string(space, genotype)
    except NascUsageError:
        pass
    try:
        strings["darts"] = format_darts(darts_genotype(space, genotype))
    except NascUsageError:
        pass
    return strings


def _parse_darts_text(text: str) -> dict:
    match = re.fullmatch(r"\s*Genotype\s*\((.*)\)\s*", text, flags=re.S)
    if not match:
        raise NascUsageError("not a DARTS genotype: expected `Genotype(normal=[...], ...)`")
    # `range(2, 6)` as DARTS prints concat lists; small bounds only, so a typo cannot allocate GBs
    body = re.sub(
        r"range\(\s*([0-9]{1,3})\s*,\s*([0-9]{1,3})\s*\)",
        lambda m: str(list(range(int(m[1]), int(m[2])))),
        match[1],
    )
    try:
        call = python_ast.parse(f"f({body})", mode="eval").body
        return {kw.arg: python_ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError, TypeError) as error:  # TypeError: `{[1]: 2}`
        what = error.msg if isinstance(error, SyntaxError) else str(error)
        where = ""
        if isinstance(error, SyntaxError) and error.offset and "\n" not in body:
            # `f(` was put in front of the body; count columns in what the user wrote.
            at = min(len(body), max(0, error.offset - 3))
            if snippet := body[max(0, at - 12) : at + 1].strip():
                where = f" at `...{snippet}`"
        raise NascUsageError(
            f"malformed DARTS genotype: {what}{where}",
            hint="write it as DARTS prints it: Genotype(normal=[('sep_conv_3x3', 0), "
            "('skip_connect', 1), ...], normal_concat=[2, 3, 4, 5], reduce=[...], "
            "reduce_concat=[2, 3, 4, 5]), quoted for the shell; or name DARTS_V1 or DARTS_V2",
        ) from None


def genotype_from_darts(space: SpaceIR, darts: str | Mapping) -> Genotype:
    """Read a DARTS genotype (text `Genotype(...)`, a name such as `DARTS_V2`, or a dict).

    Pairs are grouped per node in equal shares (DARTS: two per node).
    """
    if isinstance(darts, str):
        darts = _parse_darts_text(KNOWN_DARTS_GENOTYPES.get(darts, darts))
    decided: dict[str, dict[str, list[str]]] = {}
    for role, (cell, order) in _darts_cells(space).items():
        pairs = darts.get(role)
        if not isinstance(pairs, (list, tuple)) or len(pairs) % len(cell.nodes):
            raise NascUsageError(
                f"the DARTS genotype's `{role}` list must split evenly over the "
                f"{len(cell.nodes)} nodes of `{cell.name}`"
            )
        per_node = len(pairs) // len(cell.nodes)
        concat = darts.get(f"{role}_concat")
        if concat is not None and (
            not isinstance(concat, (list, tuple))
            or not all(_is_index(j) and 0 <= j < len(order) for j in concat)
            or [order[j] for j in concat] != list(cell.output)
        ):
            raise NascUsageError(
                f"the genotype's {role}_concat {concat!r} differs from the output of `{cell.name}`",
                hint=f"the space concatenates {', '.join(cell.output)}",
            )
        edges: dict[str, list[str]] = {edge.key: [] for edge in cell.choices}
        for position, pair in enumerate(pairs):
            node = cell.node_names[position // per_node]
            is_pair = isinstance(pair, (list, tuple)) and len(pair) == 2
            if not (is_pair and isinstance(pair[0], str)):
                raise NascUsageError(
                    f"the {role} entry {pair!r} is not an (op, node) pair",
                    hint="DARTS pairs look like ('sep_conv_3x3', 0)",
                )
            op, j = pair
            if not _is_index(j) or not 0 <= j < order.index(node):
                raise NascUsageError(
                    f"the {role} pair {pair} reads node {j}, which `{node}` cannot read"
                )
            key = f"{order[j]}->{node}"
            if key not in edges:
                raise NascUsageError(
                    f"the {role} pair {pair} names {cell.name}.{key}, which is not a choice"
                )
            edges[key].append(op)
        decided[cell.name] = edges
    genotype = Genotype(decided)
    check_genotype(space, genotype)
    return genotype


def parse_arch(space: SpaceIR, arch: str) -> Genotype:
    """Read `--arch`: an NB201 string, a DARTS genotype or its name, a blocks string
    (`stage1_1=resblock down1=skip_connect`, for a space of block choices), or a JSON file.

    A JSON file holds this project's genotype (`{"cells": ...}`), a DARTS genotype as a dict
    (`{"normal": [...], ...}`), or `{"nb201": "|...|"}`.
    """
    text = arch.strip()
    if text.startswith("|"):
        return genotype_from_nb201(space, text)
    blocks = _tight_args(text)
    if re.fullmatch(rf"{_BLOCK}(\s+{_BLOCK})*", blocks) and (
        space.block_choices or space.width_choices
    ):
        return genotype_from_blocks(space, blocks)
    if text in KNOWN_DARTS_GENOTYPES or text.startswith("Genotype"):
        return genotype_from_darts(space, text)
    path = Path(arch)
    if not path.is_file():
        raise NascUsageError(
            f"--arch {arch}: not an NB201 string, a DARTS genotype or a file",
            hint="give `|op~0|+|...|`, `Genotype(normal=[...], ...)`, DARTS_V1, DARTS_V2, or the "
            "path of a genotype JSON file",
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NascUsageError(f"cannot read the genotype file {path}: {error}") from None
    if isinstance(data, dict) and "normal" in data:
        return genotype_from_darts(space, data)
    if isinstance(data, dict) and isinstance(data.get("nb201"), str) and "cells" not in data:
        return genotype_from_nb201(space, data["nb201"])
    genotype = Genotype.from_json(data, source=str(path))
    check_genotype(space, genotype)
    return genotype


def _is_index(value: object) -> bool:
    """An int node index; JSON `true` loads as a bool, which Python counts as the int 1."""
    return isinstance(value, int) and not isinstance(value, bool)
