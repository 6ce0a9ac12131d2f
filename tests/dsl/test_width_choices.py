"""Choices among widths in the language: syntax, counts, genotypes, the printer and errors."""

from __future__ import annotations

import re

import pytest

from nasc.dsl import (
    Genotype,
    NascError,
    apply_genotype,
    format_space,
    load_space,
    parse_arch,
    parse_space,
)
from nasc.dsl.genotype import blocks_string
from nasc.dsl.ir import BLOCK_EDGE

CELL = "cell c(x) {\n    n1 = x:nor_conv_3x3\n    out n1\n}\n\n"


def network(statement: str, params: str = "C = 16") -> str:
    """A small network that places `statement` after its stem."""
    return (
        f"network net({params}, classes = 10) {{\n"
        "    input(3, 16)\n"
        "    stem conv3x3_bn(C)\n"
        f"    {statement}\n"
        "    head bn_relu_pool_linear(classes)\n"
        "}\n"
    )


def refused(text: str, catalog, message: str) -> NascError:
    """The error `parse_space` raises for `text`, whose message contains `message`."""
    with pytest.raises(NascError, match=re.escape(message)) as info:
        parse_space(text, "space.nas", catalog=catalog)
    assert info.value.hint, "a hint"
    return info.value


def test_a_block_width_a_cell_width_and_a_parameter_are_choices(catalog):
    """Braces in a block's call, after a cell's `@` and as a default each make one choice."""
    text = CELL + network(
        "resblock({16, 32}, stride = 2)\n    c @ {8, 16, 24}", params="C = {8, 16}"
    )
    space = parse_space(text, "w.nas", catalog=catalog)
    assert [(c.label, c.widths) for c in space.width_choices] == [
        ("C", (8, 16)),
        ("width1", (16, 32)),
        ("width2", (8, 16, 24)),
    ]
    assert space.architectures() == 2 * 2 * 3
    assert not space.is_fixed


def test_a_width_set_reads_parameters_and_a_block_choice_takes_one(catalog):
    """`{C, 2C}` is evaluated with the parameters; a block choice's width may be a set."""
    text = network("choose down = {resblock, nor_conv_3x3} @ {C, 2C}, stride = 2")
    space = parse_space(text, "w.nas", catalog=catalog)
    (choice,) = space.width_choices
    assert choice.widths == (16, 32)
    assert space.architectures() == 2 * 2


def test_nats_sss_counts_32768(catalog):
    """The NATS-Bench size space: five widths among eight values."""
    space = load_space("nats_sss", catalog=catalog)
    assert space.architectures() == 8**5
    assert [c.label for c in space.width_choices] == ["C1", "C2", "C3", "C4", "C5"]


def test_a_genotype_fixes_the_widths_and_prints_back(catalog):
    """Applying a genotype writes the chosen widths; the printed text parses back to it."""
    space = load_space("nats_sss", catalog=catalog)
    chosen = dict(zip(["C1", "C2", "C3", "C4", "C5"], ["8", "16", "24", "32", "40"]))
    genotype = Genotype({label: {BLOCK_EDGE: (width,)} for label, width in chosen.items()})
    fixed = apply_genotype(space, genotype)
    assert fixed.is_fixed and not fixed.width_choices
    defaults = {p.name: p.default.value for p in fixed.network.params}
    assert [defaults[label] for label in chosen] == [8, 16, 24, 32, 40]
    again = parse_space(format_space(fixed), "again.nas", catalog=catalog)
    assert again == fixed
    text = blocks_string(space, genotype)
    assert text == "C1=8 C2=16 C3=24 C4=32 C5=40"
    assert parse_arch(space, text) == genotype


def test_the_printer_writes_a_space_with_width_choices_back(catalog):
    """A space with inline and parameter width sets survives print and parse unchanged."""
    text = CELL + network(
        "resblock({16, 2D}, stride = 2)\n    c @ {8, 24}", params="C = {8, 16}, D = 16"
    )
    space = parse_space(text, "w.nas", catalog=catalog)
    printed = format_space(space)
    assert "{16, 2D}" in printed and "C = {8, 16}" in printed
    assert parse_space(printed, "again.nas", catalog=catalog) == space


@pytest.mark.parametrize(
    "statement, message",
    [
        ("repeat {1, 2} resblock(C)", "a width choice in a repeat count"),
        ("resblock(C, stride = {1, 2})", "a width choice in a stride"),
        ("resblock({16, 16})", "lists 16 twice"),
        ("resblock({16, 0})", "lists 0, not a positive width"),
        ("resblock({16, {8, 32}})", "inside the choice"),
    ],
)
def test_misplaced_or_malformed_width_choices_are_located(catalog, statement, message):
    """Each mistake names what is wrong, points at it and says how to fix it."""
    error = refused(network(statement), catalog, message)
    assert error.span is not None and error.span.line == 4


def test_a_width_parameter_in_a_repeat_count_is_refused(catalog):
    """A parameter that is a choice among widths cannot count repeats."""
    error = refused(network("repeat W resblock(C)", params="C = 16, W = {1, 2}"), catalog, "`W`")
    assert "repeat counts" in error.hint


def test_a_width_set_reading_a_width_parameter_is_refused(catalog):
    """`{C, 2C}` with `C = {8, 16}` would change with C's decision: refused at the `C`."""
    error = refused(network("resblock({C, 2C})", params="C = {8, 16}"), catalog, "reads `C`")
    assert error.span.line == 4


def test_one_width_in_braces_is_not_a_choice(catalog):
    """`{8}` is refused with the hint to drop the braces or list two widths."""
    error = refused(CELL + network("c @ {8}"), catalog, "one width in braces")
    assert "`c @ {8, 16}`" in error.hint


def test_a_candidate_argument_cannot_be_a_width_choice(catalog):
    """`ops s = {mbconv({3, 6}, 5)}` is refused: candidates have fixed arguments."""
    text = "ops s = {nor_conv_3x3, mbconv({3, 6}, 5)}\n" + network("resblock(C)")
    error = refused(text, catalog, "a choice among widths in the candidate `mbconv`")
    assert "mbconv(C, {3, 6}, 5)" in error.hint


def test_a_define_of_a_width_choice_is_refused_at_the_parameter(catalog):
    """`-D C=12` for a parameter whose default is a choice among widths is refused where the
    parameter is written, before any network is built (the search decides it)."""
    text = CELL + network("c @ C", params="C = {8, 16}")
    message = "-D C=12: `C` is a choice among the widths"
    with pytest.raises(NascError, match=re.escape(message)) as info:
        parse_space(text, "w.nas", catalog=catalog, overrides={"C": 12})
    assert info.value.span.line == CELL.count("\n") + 1
    assert "`C = 12`" in info.value.hint
    assert parse_space(text, "w.nas", catalog=catalog, overrides={"classes": 5}).width_choices
