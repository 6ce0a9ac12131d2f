"""Hypothesis strategies over search spaces: space sources, genotypes, masks and shrink sequences.

Every strategy here needs only the language (no PyTorch), so a property test of a space draws
its examples without building a supernet. `spaces()` draws the source text of valid spaces (any
shape the language allows); `searchable_spaces()` draws small single-cell spaces that also
compile to a supernet; `genotypes(space)`, `masks(space)` and `shrink_sequences(space)` draw
decisions for one given space.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import attrs
from hypothesis import strategies as st

from nasc.dsl import Genotype, OpInfo, SpaceIR
from nasc.runtime.catalog import language_catalog

# --- the source text of valid spaces --------------------------------------------------------------

KEYWORDS = {
    "ops",
    "cell",
    "network",
    "preset",
    "with",
    "keep",
    "per",
    "of",
    "out",
    "concat",
    "input",
    "stem",
    "head",
    "aux",
    "repeat",
    "search",
    "train",
}
FLAGS = ("reduction", "pool_bn")


def names(exclude=frozenset()):
    """Identifiers of the language that are not keywords (nor in `exclude`)."""
    first = st.sampled_from("abcnxyzCNE_")
    rest = st.text(alphabet="aceiknoprstuwx_0123CE", max_size=5)
    return st.builds(str.__add__, first, rest).filter(
        lambda name: name not in KEYWORDS and name not in exclude
    )


@st.composite
def expressions(draw, env: dict[str, int], low: int, high: int, depth: int = 2):
    """Source text of an integer expression over the parameters in `env`, and its value.

    The value lies in [low, high]; parentheses and spacing vary, and `2C` is written glued.
    """
    text, value = draw(_expression(env, depth))
    if not low <= value <= high:
        value = draw(st.integers(low, high))
        text = str(value)
    if draw(st.booleans()) and draw(st.booleans()):
        text = f"({text})"
    return text, value


@st.composite
def _expression(draw, env: dict[str, int], depth: int):
    kinds = ["num", "ref", "scaled"] if env else ["num"]
    if depth > 0:
        kinds += ["binop", "binop", "neg"]
    kind = draw(st.sampled_from(kinds))
    if kind == "num":
        value = draw(st.integers(0, 40))
        return str(value), value
    if kind == "ref":
        name = draw(st.sampled_from(sorted(env)))
        return name, env[name]
    if kind == "scaled":
        name = draw(st.sampled_from(sorted(env)))
        factor = draw(st.integers(1, 4))
        if name[0] in "eE":  # `2e1` would read as a decimal
            return f"{factor} * {name}", factor * env[name]
        return f"{factor}{name}", factor * env[name]
    if kind == "neg":
        text, value = draw(_expression(env, depth - 1))
        return f"-{text}" if re.fullmatch(r"-*\w+", text) else f"-({text})", -value
    op = draw(st.sampled_from(["+", "-", "*", "//"]))
    left, lvalue = draw(_expression(env, depth - 1))
    right, rvalue = draw(_expression(env, depth - 1))
    if op == "//" and rvalue == 0:
        op = "+"
    value = {"+": lvalue + rvalue, "-": lvalue - rvalue, "*": lvalue * rvalue}.get(op)
    if value is None:
        value = lvalue // rvalue
    space = draw(st.sampled_from([" ", ""]))
    return f"({left}){space}{op}{space}({right})", value


@st.composite
def cells(draw, name: str, opsets: dict[str, tuple[str, ...]], ops: list[str], reduction: bool):
    """Source text of a valid cell type: 1-3 inputs, 1-5 nodes, keep rules that partition it."""
    count_inputs = draw(st.integers(1, 3))
    count_nodes = draw(st.integers(1, 5))
    labels = draw(
        st.lists(
            names(),
            min_size=count_inputs + count_nodes,
            max_size=count_inputs + count_nodes,
            unique=True,
        )
    )
    inputs, nodes = labels[:count_inputs], labels[count_inputs:]
    header = []
    for index, item in enumerate(inputs):
        # every input but the last may arrive at twice the resolution: it needs an adapter
        needs = count_inputs > 1 and index < count_inputs - 1
        if needs or draw(st.booleans()):
            header.append(f"{item}:{draw(st.sampled_from(ops))}")
        else:
            header.append(item)
    flags = ["reduction"] if reduction else []
    if draw(st.booleans()):
        flags.append("pool_bn")
    flags = draw(st.permutations(flags))
    with_flags = f" with {', '.join(flags)}" if flags else ""

    statements, choices, read = [], {}, set()
    for index, node in enumerate(nodes):
        sources = inputs + nodes[:index]
        combine = draw(st.sampled_from(["sum", "sum", "product", "concat"]))
        if combine == "product" and len(sources) < 2:
            combine = "sum"
        chosen = draw(
            st.lists(
                st.sampled_from(sources),
                unique=True,
                min_size=2 if combine == "product" else 1,
                max_size=len(sources),
            )
        )
        read.update(chosen)
        terms = []
        for source in chosen:
            choice = draw(st.sampled_from([None, *sorted(opsets)]))
            if combine == "sum":
                banned = set(opsets.get(choice, ()))
                fixed = draw(st.lists(st.sampled_from(ops), unique=True, max_size=2))
                fixed = [op for op in fixed if op not in banned]
                if choice is None and not fixed:
                    fixed = [draw(st.sampled_from(ops))]
                source_terms = [f"{source}:{op}" for op in fixed]
            else:
                source_terms = [] if choice else [f"{source}:{draw(st.sampled_from(ops))}"]
            if choice is not None:
                source_terms.append(f"{source}:{choice}")
                choices[f"{source}->{node}"] = len(opsets[choice])
            terms += source_terms
        if combine == "sum":
            terms = draw(st.permutations(terms))
            statements.append(f"{node} = {' + '.join(terms)}")
        elif combine == "product":
            statements.append(f"{node} = {' * '.join(terms)}")
        else:
            statements.append(f"{node} = concat({', '.join(terms)})")

    unread = [node for node in nodes if node not in read]
    if len(unread) == 1 and draw(st.booleans()):
        output = f"out {unread[0]}"
    else:
        extra = draw(st.lists(st.sampled_from(nodes), unique=True))
        listed = draw(st.permutations(list(dict.fromkeys(unread + extra))))
        output = f"out concat({', '.join(listed)})"

    rules = []
    groups: dict[int, list[str]] = {}
    for key in choices:
        groups.setdefault(draw(st.integers(0, 2)), []).append(key)
    for group, keys in sorted(groups.items()):
        if group == 0:
            continue
        k = draw(st.integers(1, sum(choices[key] for key in keys)))
        rules.append(f"keep {k} of {{{', '.join(keys)}}}")
    rest = groups.get(0, [])
    if rest or draw(st.booleans()):
        per = draw(st.sampled_from(["edge", "node"]))
        if per == "edge":
            most = min((choices[key] for key in rest), default=3)
        else:
            into: dict[str, int] = {}
            for key in rest:
                target = key.split("->")[1]
                into[target] = into.get(target, 0) + choices[key]
            most = min(into.values(), default=3)
        rules.append(f"keep {draw(st.integers(1, most))} per {per}")
    tail = draw(st.permutations([*rules, output]))
    body = "\n".join(f"    {line}" for line in statements + tail)
    return f"cell {name}({', '.join(header)}){with_flags} {{\n{body}\n}}"


@st.composite
def spaces(draw, catalog: Mapping[str, OpInfo] | None = None):
    """Source text of a valid space built from the catalog's ops (default: nasc's op table).

    Random candidate sets of `op`-role ops, one to three cell types, and a network with
    parameters whose defaults are expressions over earlier ones, an input, maybe a stem, cells
    (some repeated) and blocks, maybe an auxiliary head, and a head. Every input but a cell's last
    has an adapter, and two stages that halve the resolution are at least two stages apart, so a
    cell never reads an output more than twice its own resolution.
    """
    if catalog is None:
        catalog = language_catalog()
    # Ops that stride on their own (ImageNet stems) may only be blocks, never cell ops.
    ops = sorted(name for name, info in catalog.items() if info.role == "op" and not info.stride)
    blocks = ops
    heads = sorted(name for name, info in catalog.items() if info.role == "head")
    parts = []
    if draw(st.booleans()):
        parts.append(f"preset {draw(names())}")

    set_names = draw(
        st.lists(names(exclude=frozenset(catalog)), min_size=1, max_size=3, unique=True)
    )
    opsets = {
        name: tuple(draw(st.lists(st.sampled_from(ops), min_size=1, max_size=4, unique=True)))
        for name in set_names
    }
    parts += [f"ops {name} = {{{', '.join(members)}}}" for name, members in opsets.items()]

    cell_names = draw(st.lists(names(), min_size=1, max_size=3, unique=True))
    reducing = {name: draw(st.booleans()) for name in cell_names}
    parts += [draw(cells(name, opsets, ops, reducing[name])) for name in cell_names]

    params = draw(st.lists(names(), min_size=1, max_size=4, unique=True))
    env: dict[str, int] = {}
    header = []
    for param in params:
        text, value = draw(expressions(env, 1, 64))
        header.append(f"{param} = {text}")
        env[param] = value

    def expr(low, high):
        return draw(expressions(env, low, high))[0]

    lines = [f"input({expr(1, 8)}, {expr(1, 64)})"]
    if draw(st.booleans()):
        lines.append(f"stem {draw(st.sampled_from(blocks))}({expr(1, 64)})")
    since_reduction = 2
    for _ in range(draw(st.integers(0, 5))):
        reduce = since_reduction >= 2 and draw(st.booleans())
        fitting = [name for name in cell_names if reducing[name] == reduce]
        if fitting and draw(st.booleans()):
            cell = draw(st.sampled_from(fitting))
            if reduce or draw(st.booleans()):
                lines.append(f"{cell} @ {expr(1, 64)}")
            else:
                lines.append(f"repeat {expr(1, 3)} {cell} @ {expr(1, 64)}")
        else:
            stride = ", stride = 2" if reduce else draw(st.sampled_from(["", ", stride = 1"]))
            lines.append(f"{draw(st.sampled_from(blocks))}({expr(1, 64)}{stride})")
        since_reduction = 0 if reduce else since_reduction + 1
    if draw(st.booleans()):
        at = draw(st.integers(1, len(lines)))
        lines.insert(at, f"aux {draw(st.sampled_from(heads))}({expr(1, 100)})")
    lines.append(f"head {draw(st.sampled_from(heads))}({expr(1, 100)})")
    separator = draw(st.sampled_from(["\n    ", ";   ", "\n    ;"]))
    parts.append(
        f"network {draw(names())}({', '.join(header)}) {{\n    {separator.join(lines)}\n}}"
    )
    return "\n\n".join(parts) + "\n"


# --- decisions for one space ---------------------------------------------------------------------


def _searched(space: SpaceIR):
    """The cell types that have choices, as the supernet's `ArchState` lists them."""
    return [cell for cell in space.used_cells() if cell.choices]


def genotypes(space: SpaceIR) -> st.SearchStrategy[Genotype]:
    """Genotypes the comparison subsets admit: exactly k candidates of every subset survive.

    Shrinks towards the first candidates of each subset in the space's order.
    """

    @st.composite
    def draw(draw_from):
        cells = {}
        for cell in _searched(space):
            kept: dict[str, set[str]] = {edge.key: set() for edge in cell.choices}
            for subset in cell.subsets:
                chosen = draw_from(
                    st.lists(
                        st.sampled_from(subset.members),
                        min_size=subset.k,
                        max_size=subset.k,
                        unique=True,
                    )
                )
                for key, op in chosen:
                    kept[key].add(op)
            cells[cell.name] = {
                edge.key: [op for op in edge.candidates if op in kept[edge.key]]
                for edge in cell.choices
            }
        return Genotype(cells)

    return draw()


def masks(space: SpaceIR) -> st.SearchStrategy[Genotype]:
    """Any masks, as the genotype of live candidates: every candidate live or not, independently
    (a subset may keep fewer than k, or none)."""

    @st.composite
    def draw(draw_from):
        return Genotype(
            {
                cell.name: {
                    edge.key: [op for op in edge.candidates if draw_from(st.booleans())]
                    for edge in cell.choices
                }
                for cell in _searched(space)
            }
        )

    return draw()


@attrs.frozen(kw_only=True)
class ShrinkSequence:
    """The information tables of a sequence of IS-DARTS shrink steps.

    Attributes:
        scores: per step, `{cell type: {(edge, op): F}}` for every candidate (dead ones too;
            a shrink step reads only the live ones).
    """

    scores: tuple[dict[str, dict[tuple[str, str], float]], ...] = attrs.field(converter=tuple)

    @property
    def steps(self) -> int:
        return len(self.scores)


# Ties, infinities (a constant output such as `none`) and zeros are where ranking rules go wrong;
# quarters from 0 to 10 tie often and shrink quickly (towards 0), unlike arbitrary floats.
_F_VALUES = st.integers(0, 40).map(lambda quarters: quarters / 4) | st.just(math.inf)


def shrink_sequences(space: SpaceIR, max_steps: int = 8) -> st.SearchStrategy[ShrinkSequence]:
    """Sequences of 1 to `max_steps` shrink steps, each with its own F for every candidate.

    Each step's F values are drawn in the candidates' order, the ones left over set to 0; the
    sequence shrinks towards one step and F = 0 everywhere (all tied).
    """
    members = [
        (cell.name, (edge.key, op))
        for cell in _searched(space)
        for edge in cell.choices
        for op in edge.candidates
    ]

    @st.composite
    def draw(draw_from):
        steps = draw_from(st.integers(1, max_steps))
        tables = []
        for _ in range(steps):
            # A short list leaves the rest at 0 (tied); hypothesis shrinks to that branch and then
            # by deleting values, far quicker than lowering every value of a full-length list.
            values = draw_from(
                st.lists(_F_VALUES, max_size=len(members))
                | st.lists(_F_VALUES, min_size=len(members), max_size=len(members))
            )
            values += [0.0] * (len(members) - len(values))
            table: dict[str, dict[tuple[str, str], float]] = {}
            for (cell, member), value in zip(members, values):
                table.setdefault(cell, {})[member] = value
            tables.append(table)
        return ShrinkSequence(scores=tables)

    return draw()


_SEARCH_OPS = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "sep_conv_3x3",
)


@st.composite
def searchable_spaces(draw):
    """Source text of a small space that compiles: one cell type of 1-4 nodes on 4x4 images at
    width 2, with per-edge, per-node or explicit comparison subsets of any legal k."""
    ops = draw(st.lists(st.sampled_from(_SEARCH_OPS), min_size=2, max_size=6, unique=True))
    nodes = draw(st.integers(1, 4))
    lines, edges = [], []
    for index in range(nodes):
        sources = ["x"] + [f"n{j}" for j in range(index)]
        chosen = draw(st.lists(st.sampled_from(sources), min_size=1, unique=True))
        lines.append(f"    n{index} = " + " + ".join(f"{s}:ops_set" for s in chosen))
        edges.extend(f"{s}->n{index}" for s in chosen)
    rule = draw(st.sampled_from(["edge", "node", "explicit"]))
    keeps = []
    if rule == "explicit" and len(edges) >= 2:
        group = draw(st.lists(st.sampled_from(edges), min_size=2, max_size=len(edges), unique=True))
        k = draw(st.integers(1, len(group) * len(ops)))
        keeps.append(f"    keep {k} of {{{', '.join(group)}}}")
        keeps.append("    keep 1 per edge")
    else:
        k = draw(st.integers(1, len(ops))) if rule != "node" else 1
        keeps.append(f"    keep {k} per {rule if rule != 'explicit' else 'edge'}")
    used = {e.split("->")[0] for e in edges}
    outputs = [f"n{i}" for i in range(nodes) if f"n{i}" not in used] or [f"n{nodes - 1}"]
    return (
        f"ops ops_set = {{{', '.join(ops)}}}\n"
        "cell c(x) {\n" + "\n".join(lines + keeps) + f"\n    out concat({', '.join(outputs)})\n}}\n"
        "network n(C = 2) {\n    input(3, 4)\n    stem conv3x3_bn(C)\n    c @ C\n"
        "    head pool_linear(3)\n}\n"
    )
