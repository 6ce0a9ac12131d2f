"""Tests of the printer: generated and reference spaces survive `parse(format(ir)) == ir`."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from nasc.dsl import ast as nas_ast
from nasc.dsl import builtin_spaces, format_space, lint_space, load_space, parse_space
from nasc.dsl.genotype import Genotype, apply_genotype
from nasc.dsl.printer import format_expr
from nasc.dsl.syntax import parse_module
from nasc.testing import spaces


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
    lint_space(fixed, catalog)
    assert_round_trip(fixed, catalog)


# Networks of cells; the circuit spaces (ghz, tfim, qaoa) round-trip in test_circuits_language.py.
NETWORK_SPACES = sorted(
    name for name, path in builtin_spaces().items() if "\ncircuit " not in path.read_text()
)


@pytest.mark.parametrize("name", NETWORK_SPACES)
def test_reference_spaces_round_trip(catalog, name):
    """Each reference space prints to canonical text that parses back to an equal IR."""
    space = load_space(name, catalog=catalog)
    text = assert_round_trip(space, catalog)
    if space.opsets and not space.opdefs:
        assert text.startswith(f"preset {space.preset}\n\nops ")
    elif space.opsets:  # proxyless, gated: their op definitions, then the sets that use them
        assert text.startswith(f"preset {space.preset}\n\n# ")
        assert all(f"# {d.doc}\n{d.text}" in text for d in space.opdefs)
        assert text.index("\nops ") > max(text.index(d.text) for d in space.opdefs)
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
