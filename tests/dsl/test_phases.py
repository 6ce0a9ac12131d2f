"""Tests of `search` and `train` statements: a macro that differs between the search supernet
and the standalone network."""

from __future__ import annotations

import re

import pytest

from nasc.dsl import NasSemanticError, format_space, parse_space
from nasc.dsl.macro import instantiate

SPACE = """ops small = {none, skip_connect, nor_conv_3x3}
cell c(x) {
    n1 = x:small
    n2 = x:small + n1:small
    keep 1 per edge
    out n2
}
network net(C = 8, classes = 10) {
    input(3, 32)
    stem conv3x3_bn(C)
    c @ C
    search resblock(2C, stride = 2)
    train c @ C
    search head bn_relu_pool_linear(classes)
    train head pool_linear(classes)
}
"""


@pytest.fixture
def phased(catalog):
    return parse_space(SPACE, "phased.nas", catalog=catalog)


def test_each_phase_places_its_own_statements(phased, catalog):
    """The search plan has the marked search block and head, the train plan the train ones."""
    search = instantiate(phased, {}, catalog, phase="search")
    train = instantiate(phased, {}, catalog, phase="train")
    assert [(s.kind, s.name) for s in search.stages] == [
        ("stem", "conv3x3_bn"),
        ("cell", "c"),
        ("block", "resblock"),
        ("head", "bn_relu_pool_linear"),
    ]
    assert [(s.kind, s.name) for s in train.stages] == [
        ("stem", "conv3x3_bn"),
        ("cell", "c"),
        ("cell", "c"),
        ("head", "pool_linear"),
    ]
    assert search.stages[-1].in_channels == (16,) and train.stages[-1].in_channels == (8,)


def test_phases_print_and_parse_back(phased, catalog):
    """The printer writes the phase marks, and its text parses to the same space."""
    text = format_space(phased)
    assert "    search head bn_relu_pool_linear(classes)" in text
    assert "    train c @ C" in text
    again = parse_space(text, "again.nas", catalog=catalog)
    assert again.network.items == phased.network.items
    assert [item.phase for item in again.network.items] == [
        None,
        None,
        None,
        "search",
        "train",
        "search",
        "train",
    ]


def test_the_phase_mark_starts_the_statement_span(phased):
    """A marked statement's span starts at its mark, so errors point at the whole statement."""
    item = phased.network.items[-1]
    assert (item.span.line, item.span.column) == (
        SPACE.splitlines().index("    train head pool_linear(classes)") + 1,
        5,
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "    train head pool_linear(classes)\n",
            "",
            "the train network needs exactly one `head`",
        ),
        (
            "    train head pool_linear(classes)\n",
            "    search head pool_linear(classes)\n",
            "the search network has two heads",
        ),
        (
            "    train head pool_linear(classes)\n",
            "    head pool_linear(classes)\n",
            "the search network has two heads",
        ),
        (
            "    train head pool_linear(classes)\n",
            "    train head pool_linear(classes)\n    train c @ C\n",
            "statements after the head of the train network",
        ),
        (
            "    input(3, 32)\n",
            "    search input(3, 32)\n",
            "the train network needs exactly one `input(channels, size)` statement",
        ),
    ],
)
def test_each_phase_is_checked_on_its_own(catalog, old, new, message):
    """Input and head rules hold in each phase, and the error names the phase."""
    text = SPACE.replace(old, new)
    with pytest.raises(NasSemanticError, match=re.escape(message)) as info:
        parse_space(text, "phased.nas", catalog=catalog)
    assert info.value.path == "net.network"
    assert info.value.span is not None


def test_a_phase_mark_needs_a_statement(catalog):
    """`search` alone is a syntax error located at what follows it."""
    text = SPACE.replace("    train c @ C\n", "    train\n")
    with pytest.raises(Exception, match="phased.nas:14") as info:
        parse_space(text, "phased.nas", catalog=catalog)
    assert type(info.value).__name__ == "NasSyntaxError"
