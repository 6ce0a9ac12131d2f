"""Tests of the printer: generated and reference spaces survive `parse(format(ir)) == ir`."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from nasc.dsl import ast as nas_ast
from nasc.dsl import builtin_spaces, format_space, load_space, parse_space
from nasc.dsl.genotype import Genotype, apply_genotype
from nasc.dsl.printer import format_expr
from nasc.dsl.syntax import parse_module

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
def spaces(draw, catalog):
    """Source text of a valid space built from the catalog's ops.

    Random candidate sets of `op`-role ops, one to three cell types, and a network with
    parameters whose defaults are expressions over earlier ones, an input, maybe a stem, cells
    (some repeated) and blocks, maybe an auxiliary head, and a head. Every input but a cell's last
    has an adapter, and two stages that halve the resolution are at least two stages apart, so a
    cell never reads an output more than twice its own resolution.
    """
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


def assert_round_trip(space, catalog):
    """Printing and parsing again gives an equal IR, and printing that gives the same text."""
    text = format_space(space)
    again = parse_space(text, "printed.nas", catalog=catalog)
    assert again == space
    assert format_space(again) == text
    return text


@given(st.data())
def test_generated_spaces_round_trip(catalog, data):
    """Every generated valid space prints to text that parses back to an equal IR."""
    source = data.draw(spaces(catalog), label="source")
    space = parse_space(source, "generated.nas", catalog=catalog)
    assert space.cells and space.opsets
    assert_round_trip(space, catalog)
    assert space.architectures() >= 1


@given(st.data())
def test_generated_genotypes_give_fixed_spaces(catalog, data):
    """A random valid genotype of a generated space applies to a fixed space that round-trips."""
    space = parse_space(data.draw(spaces(catalog), label="source"), catalog=catalog)
    decided = {}
    for cell in space.used_cells():
        if not cell.choices:
            continue
        kept: dict[str, list[str]] = {edge.key: [] for edge in cell.choices}
        for subset in cell.subsets:
            for key, op in data.draw(st.permutations(subset.members))[: subset.k]:
                kept[key].append(op)
        decided[cell.name] = kept
        # a product or concat node cannot hold two ops on one edge once fixed (see the report)
        combine = {node.name: node.combine for node in cell.nodes}
        assume(
            all(len(ops) < 2 for key, ops in kept.items() if combine[key.split("->")[1]] != "sum")
        )
    fixed = apply_genotype(space, Genotype(decided))
    assert fixed.is_fixed and fixed.architectures() == 1
    fixed.lint(catalog)
    assert_round_trip(fixed, catalog)


@pytest.mark.parametrize("name", sorted(builtin_spaces()))
def test_reference_spaces_round_trip(catalog, name):
    """Each reference space prints to canonical text that parses back to an equal IR."""
    space = load_space(name, catalog=catalog)
    text = assert_round_trip(space, catalog)
    if space.cells:
        assert text.startswith(f"preset {space.preset}\n\nops ")
    else:  # a fixed network (resnet18, mobilenet_v2): its op definitions come first
        assert space.preset is None and text.startswith("# ")
        assert space.opdefs and all(f"# {d.doc}\n{d.text}" in text for d in space.opdefs)
    assert text.count("\ncell ") == len(space.cells)


def test_printed_nb201_text():
    """The printer writes NB201 in the canonical layout, `2C` glued, one statement per line."""
    text = format_space(load_space("nb201"))
    assert "ops nb201 = {none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3}\n" in text
    assert "    n3 = x:nb201 + n1:nb201 + n2:nb201\n    keep 1 per edge\n    out n3\n}" in text
    assert "    repeat N nb201_cell @ 2C\n    resblock(4C, stride = 2)\n" in text
    assert text.endswith("    head bn_relu_pool_linear(classes)\n}\n")


def test_header_becomes_comments():
    """A header is printed as `#` comment lines that the parser skips."""
    space = load_space("tricell")
    text = format_space(space, header="exported by nasc\n\nrun 7")
    assert text.startswith("# exported by nasc\n#\n# run 7\n\n")
    assert parse_space(text) == space


@pytest.mark.parametrize(
    ("source", "printed"),
    [
        ("2C", "2C"),
        ("2 * C", "2C"),
        ("2 * layers", "2 * layers"),
        ("2 * e", "2 * e"),
        ("C * 2", "C * 2"),
        ("(C + 1) * 2", "(C + 1) * 2"),
        ("C - (N - 1)", "C - (N - 1)"),
        ("C - N - 1", "C - N - 1"),
        ("2 * layers // 3 - layers // 3 - 1", "2 * layers // 3 - layers // 3 - 1"),
        ("layers // (3 * N)", "layers // (3N)"),
        ("-(C + 1)", "-(C + 1)"),
        ("--C", "--C"),
        ("-2C", "-(2C)"),
        ("C - -3", "C - -3"),
        ("((C))", "C"),
        ("007", "7"),
    ],
)
def test_format_expr(source, printed):
    """Expressions print with the fewest parentheses that keep their tree."""
    expr = parse_module(f"network n(X = {source}) {{ }}").items[0].params[0].default
    assert format_expr(expr) == printed
    again = parse_module(f"network n(X = {printed}) {{ }}").items[0].params[0].default
    assert again == expr


def test_format_expr_keeps_values():
    """Printing never changes what an expression evaluates to."""
    env = {"C": 7, "N": 3, "layers": 20}
    for source in ["2 * layers // 3 - layers // 3 - 1", "-(C - N) * 2", "C // -N", "3C - -N"]:
        expr = parse_module(f"network n(X = {source}) {{ }}").items[0].params[0].default
        printed = parse_module(f"network n(X = {format_expr(expr)}) {{ }}").items[0]
        value = nas_ast.evaluate(printed.params[0].default, env)
        assert value == nas_ast.evaluate(expr, env)
    assert nas_ast.evaluate(expr, env) == 3 * 7 + 3  # the last one: 3C - -N
