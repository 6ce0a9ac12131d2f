"""`repeat N OP(width, ...)`: a fixed block placed N times in a row, as cells are with
`repeat N CELL @ width`."""

from __future__ import annotations

import re

import pytest

from nasc.dsl import NasSemanticError, format_space, parse_space
from nasc.dsl.macro import instantiate


def network(body: str) -> str:
    """A network with a stem, the statements `body` and a head."""
    return (
        "network net(C = 16, N = 3, classes = 10) {\n"
        "    input(3, 32)\n"
        "    stem conv3x3_bn(C)\n"
        f"{body}"
        "    head pool_linear(classes)\n"
        "}\n"
    )


def blocks(space, overrides=None) -> list[tuple[str, int, int, int]]:
    """The placed blocks: (op, output channels, stride, output size)."""
    plan = instantiate(space, overrides)
    return [
        (stage.name, stage.out_channels, stage.stride, stage.out_size)
        for stage in plan.stages
        if stage.kind == "block"
    ]


def test_repeat_places_a_block_n_times(catalog):
    """`repeat N resblock(2C, stride = 2)` places N blocks, each with the call's width and
    stride, the same as writing the block N times."""
    text = network("    repeat N resblock(2C, stride = 2)\n    repeat 2 nor_conv_3x3(2C)\n")
    written = network("    resblock(2C, stride = 2)\n" * 3 + "    nor_conv_3x3(2C)\n" * 2)
    space = parse_space(text, catalog=catalog)
    expected = [("resblock", 32, 2, 16), ("resblock", 32, 2, 8), ("resblock", 32, 2, 4)]
    expected += [("nor_conv_3x3", 32, 1, 4)] * 2
    assert blocks(space) == expected
    assert blocks(parse_space(written, catalog=catalog)) == expected
    assert len(blocks(space, {"N": 1})) == 3


def test_a_repeated_block_prints_back_and_reparses(catalog):
    """The printer writes `repeat N OP(...)` back, and the text parses to the same space."""
    text = network("    repeat N resblock(2C, stride = 2)\n    search repeat 0 resblock(2C)\n")
    space = parse_space(text, catalog=catalog)
    printed = format_space(space)
    assert "    repeat N resblock(2C, stride = 2)\n" in printed
    assert "    search repeat 0 resblock(2C)\n" in printed
    assert parse_space(printed, catalog=catalog) == space


def test_a_negative_repeat_count_of_a_block_is_refused(catalog):
    """The repeat count of a block is at least 0, checked where it is written."""
    text = network("    repeat N - 4 resblock(C)\n")
    message = "the repeat count of `resblock` must be at least 0, but it is -1"
    with pytest.raises(NasSemanticError, match=re.escape(message)) as info:
        parse_space(text, "space.nas", catalog=catalog)
    assert (info.value.span.line, info.value.span.column) == (4, 12)


def test_an_op_placed_like_a_cell_gets_a_hint_to_place_it_as_a_block(catalog):
    """`repeat 3 resblock @ C` names a cell that does not exist; the hint says `resblock` is an
    op and shows how to repeat it as a block."""
    text = network("    repeat 3 resblock @ C\n")
    with pytest.raises(NasSemanticError, match="unknown cell `resblock`") as info:
        parse_space(text, "space.nas", catalog=catalog)
    assert "`resblock` is an op, not a cell" in info.value.hint
    assert "`repeat 3 resblock(C)`" in info.value.hint
