"""Block choices over parametric ops: `choose {mbconv(3, 3), mbconv(6, 5), skip_connect} @ C`."""

from __future__ import annotations

import pytest

from nasc.compiler import catalog
from nasc.dsl import NasSyntaxError, apply_genotype, parse_space
from nasc.dsl.genotype import blocks_string, parse_arch
from nasc.dsl.ir import BLOCK_EDGE
from nasc.dsl.printer import format_space

SPACE = """op mbconv(e, k) = residual(conv(1, out = e * C_in) -> bn -> relu6
    -> dwconv(k, stride = stride) -> bn -> relu6 -> conv(1) -> bn)

ops mb = {mbconv(3, 3), mbconv(6, 5), skip_connect}

network net(C = 4, N = 2, classes = 5) {
    input(3, 8)
    stem conv3x3_bn(C)
    choose down = {mbconv(3, 3), mbconv(6, 5)} @ 2C, stride = 2
    repeat N choose stage = mb @ 2C
    head pool_linear(classes)
}
"""


def load(text: str = SPACE):
    return parse_space(text, "net.nas", catalog=catalog())


def test_inline_and_named_sets_take_parametric_candidates():
    """Both forms name the candidates canonically, as `ops` sets do."""
    space = load()
    candidates = {cell.name: cell.edges[0].candidates for cell in space.used_cells()}
    assert candidates == {
        "down": ("mbconv(3,3)", "mbconv(6,5)"),
        "stage_1": ("mbconv(3,3)", "mbconv(6,5)", "skip_connect"),
        "stage_2": ("mbconv(3,3)", "mbconv(6,5)", "skip_connect"),
    }
    assert space.architectures() == 2 * 3 * 3


def test_printed_space_parses_back():
    text = format_space(load())
    assert "choose down = {mbconv(3,3), mbconv(6,5)} @ 2C, stride = 2" in text
    assert load(text) == load(text.replace("\n\n", "\n\n\n"))
    assert format_space(load(text)) == text


@pytest.mark.parametrize("spacing", ["mbconv(6,5)", "mbconv(6, 5)", "mbconv( 6 ,5 )"])
def test_blocks_string_reads_back(spacing):
    """A blocks string names parametric candidates as genotypes print them, spaces allowed."""
    space = load()
    genotype = parse_arch(space, f"down={spacing} stage_1=skip_connect stage_2=mbconv(3,3)")
    assert genotype.cells["down"][BLOCK_EDGE] == ("mbconv(6,5)",)
    text = blocks_string(space, genotype)
    assert text == "down=mbconv(6,5) stage_1=skip_connect stage_2=mbconv(3,3)"
    assert parse_arch(space, text) == genotype


def test_export_writes_the_blocks_as_calls_with_their_op_definition():
    """The fixed network calls `mbconv(W, 6, 5)` and carries the definition of `mbconv`."""
    space = load()
    genotype = parse_arch(space, "down=mbconv(6,5) stage_1=skip_connect stage_2=mbconv(3,3)")
    text = format_space(apply_genotype(space, genotype))
    assert "op mbconv(e, k) = " in text
    assert "mbconv(2C, 6, 5, stride = 2)" in text
    assert "skip_connect(2C)" in text and "mbconv(2C, 3, 3)" in text
    fixed = load(text)
    assert fixed.is_fixed
    assert [item.call.op for item in fixed.network.items if item.kind == "block"] == [
        "mbconv",
        "skip_connect",
        "mbconv",
    ]


def test_a_parameter_as_a_candidate_argument_is_located():
    """Candidates are named by their arguments, so a parameter there is refused at its place."""
    with pytest.raises(NasSyntaxError) as info:
        load(SPACE.replace("{mbconv(3, 3), mbconv(6, 5)} @ 2C", "{mbconv(3, C)} @ 2C"))
    error = info.value
    assert error.message == "the argument `C` of the candidate `mbconv` is not an integer"
    assert (error.span.file, error.span.line, error.span.column) == ("net.nas", 9, 30)  # at `C`
    assert error.path == "ops.mbconv"
    assert "where the block stands gives its width" in error.hint
