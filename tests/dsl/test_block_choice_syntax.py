"""Tests of block choices in the macro network: parsing, decisions, printing, errors, genotypes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nasc.compiler import catalog
from nasc.dsl import Genotype, NascUsageError, NasSemanticError, apply_genotype, parse_space
from nasc.dsl.genotype import check_genotype, genotype_strings
from nasc.dsl.ir import BLOCK_EDGE
from nasc.dsl.printer import format_space

SPACE = """ops layer = {resblock, nor_conv_3x3, skip_connect}

network net(C = 8, N = 2, classes = 10) {
    input(3, 16)
    stem conv3x3_bn(C)
    choose {nor_conv_3x3, sep_conv_3x3} @ C
    repeat N choose deep = layer @ 2C, stride = 2
    repeat N choose shared same = layer @ 2C
    head pool_linear(classes)
}
"""


def load(text: str = SPACE, **overrides):
    return parse_space(text, catalog=catalog(), overrides=overrides)


def test_each_instance_decides_unless_shared():
    """An unshared `repeat` has one decision per instance, a shared one and a plain choice one."""
    space = load()
    assert [cell.name for cell in space.used_cells()] == ["choice1", "deep_1", "deep_2", "same"]
    assert all(cell.block is not None and cell.reduction for cell in space.used_cells()[1:3])
    assert not space.cell("same").reduction
    assert space.cell("deep_2").edges[0].candidates == ("resblock", "nor_conv_3x3", "skip_connect")
    assert space.architectures() == 2 * 3 * 3 * 3
    assert not space.is_fixed


def test_values_decide_how_many_decisions():
    """`-D N=4` gives the unshared choice four decisions; the shared one keeps one."""
    space = load(N=4).for_values({"N": 4})
    assert [c.name for c in space.used_cells()] == [
        "choice1",
        *(f"deep_{i}" for i in range(1, 5)),
        "same",
    ]
    assert space.architectures() == 2 * 3**4 * 3
    assert load().for_values({}) == load()


def test_printer_round_trips_every_form():
    """The printer writes every form of `choose` back, and the text parses to the same IR."""
    space = load()
    text = format_space(space)
    assert "choose {nor_conv_3x3, sep_conv_3x3} @ C" in text
    assert "repeat N choose deep = layer @ 2C, stride = 2" in text
    assert "repeat N choose shared same = layer @ 2C" in text
    assert load(text) == space


@st.composite
def block_networks(draw):
    """A random network of block choices: inline or named sets, labels, sharing, repeats."""
    ops = ["resblock", "nor_conv_1x1", "nor_conv_3x3", "sep_conv_3x3", "skip_connect"]
    lines = []
    for number in range(draw(st.integers(1, 4))):
        words = []
        repeat = draw(st.sampled_from([None, "1", "2", "N"]))
        if repeat is not None:
            words += ["repeat", repeat]
        words.append("choose")
        if draw(st.booleans()):
            words.append("shared")
        if draw(st.booleans()):
            words += [f"layer{number}", "="]
        if draw(st.booleans()):
            words.append("blocks")
        else:
            chosen = draw(st.lists(st.sampled_from(ops), min_size=1, max_size=4, unique=True))
            words.append("{" + ", ".join(chosen) + "}")
        words += ["@", draw(st.sampled_from(["C", "2C", "C + 4"]))]
        line = " ".join(words)
        if draw(st.booleans()):
            line += ", stride = " + draw(st.sampled_from(["1", "2"]))
        lines.append("    " + line)
    return (
        "ops blocks = {resblock, skip_connect}\n"
        "network n(C = 4, N = 2) {\n    input(3, 32)\n    stem conv3x3_bn(C)\n"
        + "\n".join(lines)
        + "\n    head pool_linear(3)\n}\n"
    )


@given(block_networks())
def test_random_block_networks_round_trip_and_decide(text):
    """Random block-choice networks lint, print and parse back; every instance of an unshared
    repeat has its own decision and a shared or plain statement has one."""
    space = load(text)
    assert load(format_space(space)) == space
    for choice in space.block_choices:
        expected = choice.count if choice.unshared else 1
        assert len(choice.cells) == expected
        assert all(cell.subsets[0].k == 1 for cell in choice.cells)
    names = [cell.name for cell in space.used_cells()]
    assert len(names) == len(set(names))


# Each mistake: the statement that replaces the first choice of SPACE, the message, the text at
# which the error points, and the dotted path.
MISTAKES = [
    (
        "choose {nor_conv_3x3, sep_conv_3x5} @ C",
        "unknown op `sep_conv_3x5`",
        "sep_conv_3x5",
        "net.network.choice1",
    ),
    (
        "choose {nor_conv_3x3, none} @ C",
        "`none` cannot be a candidate of a block choice: it would zero the features of every "
        "later layer",
        "none",
        "net.network.choice1",
    ),
    (
        "choose {nor_conv_3x3, nor_conv_3x3} @ C",
        "`nor_conv_3x3` is listed twice in the block choice `choice1`",
        "nor_conv_3x3} @",
        "net.network.choice1",
    ),
    (
        "choose {nor_conv_3x3, pool_linear} @ C",
        "`pool_linear` is a head (it ends in class scores) and cannot be used in cells, stems "
        "and blocks",
        "pool_linear",
        "net.network.choice1",
    ),
    (
        "choose {nor_conv_3x3, darts_imagenet_stem0} @ C",
        "`darts_imagenet_stem0` reduces the resolution by 4 on its own and cannot be used in a "
        "cell",
        "darts_imagenet_stem0",
        "net.network.choice1",
    ),
    (
        "choose layers @ C",
        "unknown candidate set `layers`",
        "layers",
        "net.network.choice1",
    ),
    (
        "choose resblock @ C",
        "unknown candidate set `resblock`",
        "resblock",
        "net.network.choice1",
    ),
    (
        "choose {resblock, skip_connect} @ C, stride = 3",
        "the stride of `choice1` must be 1 or 2, not 3",
        "3\n",
        "net.network.choice1",
    ),
    (
        "choose same = {resblock, skip_connect} @ C",
        "two block choices are named `same`",
        "repeat N choose shared same",
        "net.network.same",
    ),
    (
        "choose deep_2 = {resblock, skip_connect} @ C",
        "the block choice `deep` names its decision `deep_2`, which the block choice `deep_2` "
        "already uses",
        "repeat N choose deep",
        "net.network.deep",
    ),
    (
        "repeat 0 - 1 choose {resblock, skip_connect} @ C",
        "the repeat count of `choice1` must be at least 0, but it is -1",
        "0 - 1 choose",
        "net.network",
    ),
]


@pytest.mark.parametrize(("statement", "message", "at", "path"), MISTAKES)
def test_block_choice_mistakes_are_located(statement, message, at, path):
    """Each mistake in a block choice raises its message at its place with its dotted path."""
    text = SPACE.replace("choose {nor_conv_3x3, sep_conv_3x3} @ C", statement)
    with pytest.raises(NasSemanticError) as info:
        load(text)
    error = info.value
    assert error.message == message
    assert error.path == path
    assert error.hint
    index = text.index(at, text.index("stem conv3x3_bn"))
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    assert (error.span.line, error.span.column) == (line, column)


def test_a_choice_named_like_a_cell_is_refused():
    """A decision may not take the name of a cell type the file declares."""
    text = SPACE.replace("choose {nor_conv_3x3", "choose c = {nor_conv_3x3").replace(
        "ops layer", "cell c(x) {\n    n = x:skip_connect\n    out n\n}\nops layer"
    )
    with pytest.raises(NasSemanticError, match="which cell `c` already uses"):
        load(text)


def decide(space, picks: dict[str, str]) -> Genotype:
    return Genotype({name: {BLOCK_EDGE: (op,)} for name, op in picks.items()})


PICKS = {
    "choice1": "sep_conv_3x3",
    "deep_1": "resblock",
    "deep_2": "skip_connect",
    "same": "nor_conv_3x3",
}


def test_a_genotype_fixes_the_chosen_blocks():
    """Applying a genotype replaces each choice by its chosen blocks, one per instance; the
    fixed file has no choice left and parses back to the same IR."""
    space = load()
    fixed = apply_genotype(space, decide(space, PICKS))
    assert fixed.is_fixed and not fixed.block_choices and not fixed.opsets
    blocks = [item.call for item in fixed.network.items if item.kind == "block"]
    assert [call.op for call in blocks] == [
        "sep_conv_3x3",
        "resblock",
        "skip_connect",
        "nor_conv_3x3",
        "nor_conv_3x3",
    ]
    assert [dict(call.kwargs).get("stride") is not None for call in blocks] == [
        False,
        True,
        True,
        False,
        False,
    ]
    text = format_space(fixed)
    assert "    resblock(2C, stride = 2)\n    skip_connect(2C, stride = 2)\n" in text
    assert load(text) == fixed


def test_genotype_strings_name_every_decision():
    """The `blocks` string lists each decision's block; no NB201 string for a one-edge cell."""
    space = load()
    strings = genotype_strings(space, decide(space, PICKS))
    assert strings == {
        "blocks": "choice1=sep_conv_3x3 deep_1=resblock deep_2=skip_connect same=nor_conv_3x3"
    }


def test_a_genotype_keeps_exactly_one_block_per_decision():
    """Keeping two blocks, or none, of a decision is refused by the genotype check."""
    space = load()
    two = {**decide(space, PICKS).cells, "same": {BLOCK_EDGE: ("resblock", "skip_connect")}}
    with pytest.raises(NascUsageError, match="cell `same`, subset x->block: the genotype keeps 2"):
        check_genotype(space, Genotype(two))
    missing = dict(decide(space, PICKS).cells)
    del missing["deep_2"]
    with pytest.raises(NascUsageError, match="does not decide cell `deep_2`"):
        check_genotype(space, Genotype(missing))


def test_the_blocks_string_parses_back():
    """`--arch` reads the blocks string back to the same genotype; a wrong one is refused."""
    from nasc.dsl import parse_arch

    space = load()
    genotype = decide(space, PICKS)
    assert parse_arch(space, genotype_strings(space, genotype)["blocks"]) == genotype
    with pytest.raises(NascUsageError, match="`deep_3` is not a block-choice decision"):
        parse_arch(space, "choice1=sep_conv_3x3 deep_3=resblock")
    with pytest.raises(NascUsageError, match="`none` is not a candidate of deep_1.x->block"):
        parse_arch(space, "choice1=sep_conv_3x3 deep_1=none deep_2=resblock same=resblock")
    with pytest.raises(NascUsageError, match="does not decide cell `same`"):
        parse_arch(space, "choice1=sep_conv_3x3 deep_1=resblock deep_2=resblock")


def test_values_that_change_a_stride_need_the_space_for_them():
    """A stride read from a parameter is fixed with the decisions: the raw space refuses other
    values (located), and the space for those values places them."""
    from nasc.dsl.macro import instantiate

    text = SPACE.replace("N = 2,", "N = 2, S = 2,").replace("@ 2C, stride = 2", "@ 2C, stride = S")
    space = load(text)
    with pytest.raises(NasSemanticError, match="read with stride 2; these parameter values give "):
        instantiate(space, {"S": 1}, catalog())
    plan = instantiate(space.for_values({"S": 1}), {"S": 1}, catalog())
    assert [stage.stride for stage in plan.stages if stage.name.startswith("deep")] == [1, 1]
