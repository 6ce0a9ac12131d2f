"""Hints that point the right way: what a mistake really is, and how to fix it."""

from __future__ import annotations

import re

import pytest

from nasc.dsl import NascError, parse_space

CELL = "cell c(x) {\n    n1 = x:skip_connect\n    out n1\n}\n\n"


def network(statement: str) -> str:
    """A small network that places `statement` after its stem."""
    return (
        "network net(C = 16, classes = 10) {\n"
        "    input(3, 32)\n"
        "    stem conv3x3_bn(C)\n"
        f"    {statement}\n"
        "    head pool_linear(classes)\n"
        "}\n"
    )


def refused(text: str, catalog, message: str) -> NascError:
    """The error `parse_space` raises for `text`, whose message contains `message`."""
    with pytest.raises(NascError, match=re.escape(message)) as info:
        parse_space(text, "space.nas", catalog=catalog)
    assert info.value.hint, "a hint"
    return info.value


@pytest.mark.parametrize(
    "statement",
    [
        "choose {resblock, 8} @ C",
        "choose {resblock, skip_connect, 2C}",
        "choose {resblock 8} @ C",
        "choose {resblock, skip_connect @ C}",
        "repeat 2 choose {resblock, 16} @ C",
    ],
)
def test_a_width_inside_braces_is_told_where_the_width_goes(catalog, statement):
    """A width written among the candidates of a block choice gets a hint that says what the
    braces hold and that the width follows `@`."""
    error = refused(network(statement), catalog, "unexpected")
    assert "`{ }` holds the candidate ops" in error.hint
    assert "follows `@`" in error.hint


def test_a_width_in_braces_after_at_is_told_to_drop_them(catalog):
    """`choose {a, b} @ {8}` and `c @ {8}`: the width after `@` is an expression, not a set."""
    for statement in ("choose {resblock, skip_connect} @ {8}", "c @ {C}"):
        error = refused(CELL + network(statement), catalog, "unexpected `{`")
        assert "without braces" in error.hint


def test_a_parameter_listed_as_a_candidate_is_told_it_is_the_width(catalog):
    """`choose {resblock, C} @ C` lists the parameter `C` as an op; the hint says so."""
    error = refused(network("choose {resblock, C} @ C"), catalog, "unknown op `C`")
    assert error.hint.startswith("`C` is a parameter of the network, not an op")


@pytest.mark.parametrize("statement", ["choose {c, resblock} @ C", "c(C)"])
def test_a_cell_used_as_an_op_is_said_to_be_a_cell(catalog, statement):
    """A cell named where an op goes (a block choice's candidate, a block) is called a cell,
    with how a cell is placed."""
    error = refused(CELL + network(statement), catalog, "`c` is a cell, not an op")
    assert "`c @ C`" in error.hint and "`repeat N c @ C`" in error.hint


def test_a_product_node_reading_one_source_twice_gets_the_right_hint(catalog):
    """`n1 = x:small * x:skip_connect` is told to give one of the ops a node of its own and
    multiply that node's output, not to sum the ops."""
    text = (
        "ops small = {none, nor_conv_3x3}\n\n"
        "cell c(x) {\n    n1 = x:small * x:skip_connect\n    keep 1 per edge\n    out n1\n}\n\n"
    )
    error = refused(text + network("c @ C"), catalog, "`n1` is a product node and reads `x` twice")
    assert "sum" not in error.hint
    assert "n1_x = x:skip_connect" in error.hint
    assert "n1 = x:small * n1_x:skip_connect" in error.hint


def test_the_op_being_defined_is_never_suggested_for_an_unknown_call(catalog):
    """An unknown `attention` inside `op attn = ...` is not offered `attn`, the op itself."""
    text = "op attn = attention(3)\n\n" + network("attn(C)")
    error = refused(text, catalog, "unknown primitive or op `attention` in op `attn`")
    assert "`attn`" not in error.hint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (network("my_plugin_op(C)"), "unknown op `my_plugin_op`"),
        ("ops s = {none, conv_gn}\n\n" + network("choose s @ C"), "unknown op `conv_gn`"),
        ("op mine = conv_gn -> relu\n\n" + network("mine(C)"), "unknown primitive or op `conv_gn`"),
        (network("choose {resblok, skip_connect} @ C"), "unknown op `resblok`"),
    ],
)
def test_an_unknown_op_mentions_python_plugins(catalog, text, message):
    """An unknown op's hint keeps its suggestion and says that an op from a Python plugin needs
    `--ops module_or_file.py`."""
    error = refused(text, catalog, message)
    assert "--ops my_ops.py" in error.hint
    if "resblok" in text:
        assert error.hint.startswith("did you mean `resblock`?")
