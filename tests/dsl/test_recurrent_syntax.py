"""The recurrent constructs of the language: state inputs carried by `next`, `out mean(...)`,
sequence inputs (`input tokens(V)`, `input sequence(F)`), the sequence primitives, and their
located errors."""

from __future__ import annotations

import pytest

from nasc.dsl import NasSemanticError, NasSyntaxError, format_space, parse_space
from nasc.dsl.macro import instantiate

MINIMAL = """
cell rnn(x, h) {
    z = x:fc + h:fc
    h1 = z:act_tanh
    out h1
    next h = h1
}

network net(features = 4, hidden = 6) {
    input sequence(features)
    rnn @ hidden
    head decoder(features)
}
"""


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_a_cell_with_next_is_recurrent_and_the_network_feeds_only_its_step_input(catalog):
    """`next h = h1` makes `h` a state: the plan feeds `x` alone and gives `h` the node's width."""
    space = parse_space(MINIMAL, catalog=catalog)
    cell = space.cell("rnn")
    assert cell.recurrent and cell.states == (("h", "h1"),)
    assert cell.step_inputs == (0,)
    plan = instantiate(space, {"hidden": 9}, catalog)
    assert plan.sequence and not plan.tokens
    stage = plan.cells_of("rnn")[0]
    assert [read[0] for read in stage.reads()] == [0]
    assert stage.node_channels["x"] == 4 and stage.node_channels["h"] == 9


def test_recurrent_spaces_print_back_to_themselves(catalog):
    """The printer writes `input tokens(...)`, `out mean(...)` and `next` as they are parsed."""
    for name in ("spaces/darts_rnn.nas", "examples/lstm.nas", "examples/gru.nas"):
        with open(name) as handle:
            space = parse_space(handle.read(), name, catalog=catalog)
        text = format_space(space)
        assert parse_space(text, catalog=catalog) == space
    assert "out mean(b1, b2, b3, b4, b5, b6, b7, b8)" in text or "next h = h1" in text


def test_darts_rnn_output_is_a_mean_and_its_state_the_output(catalog):
    """The DARTS recurrent cell ends in the mean of its 8 nodes, which it carries as `h`."""
    with open("spaces/darts_rnn.nas") as handle:
        text = handle.read()
    space = parse_space(text, catalog=catalog)
    cell = space.cell("darts_rnn")
    assert cell.mean and cell.output == tuple(f"b{i}" for i in range(1, 9))
    assert cell.states == (("h", "out"),)
    assert "out mean(b1, b2, b3, b4, b5, b6, b7, b8)" in format_space(space)
    plan = instantiate(space, {"units": 12}, catalog)
    assert plan.tokens and plan.cells_of("darts_rnn")[0].out_channels == 12


@pytest.mark.parametrize(
    ("old", "new", "message", "hint"),
    [
        ("next h = h1", "next z = h1", "`next z` names a state that is not an", "cell rnn("),
        ("next h = h1", "next h = nowhere", "carries `nowhere`, which is undefined", "= out"),
        ("next h = h1", "next h = h1\n    next h = z", "carried twice", "one `next`"),
        ("cell rnn(x, h)", "cell rnn(x, h:preprocess)", "has an adapter", "not `h:preprocess`"),
    ],
)
def test_state_mistakes_are_located(catalog, old, new, message, hint):
    """A `next` that names no input, an undefined node, a second `next` for one state, and a state
    with an adapter are refused at their line, with a hint."""
    text = MINIMAL.replace(old, new)
    with pytest.raises(NasSemanticError, match=message) as info:
        parse_space(text, "rnn.nas", catalog=catalog)
    wrong = new.splitlines()[-1].strip()
    assert info.value.span.line == line_of(text, wrong)
    assert hint in info.value.hint


def test_a_cell_of_states_alone_is_refused(catalog):
    """A recurrent cell needs an input the sequence feeds."""
    text = MINIMAL.replace("cell rnn(x, h)", "cell rnn(h)").replace("x:fc + h:fc", "h:fc")
    with pytest.raises(NasSemanticError, match="the sequence feeds nothing") as info:
        parse_space(text, "rnn.nas", catalog=catalog)
    assert "cell rnn(x, h)" in info.value.hint


def test_an_unknown_input_kind_is_a_located_syntax_error(catalog):
    """`input words(10)` names no input kind: the error points at it and lists the kinds."""
    text = MINIMAL.replace("input sequence(features)", "input words(features)")
    with pytest.raises(NasSyntaxError, match="unknown input `words`") as info:
        parse_space(text, "rnn.nas", catalog=catalog)
    assert info.value.span.line == line_of(text, "input words")
    assert "input tokens(vocabulary)" in info.value.hint


def test_a_sequence_primitive_on_an_image_map_is_refused_where_it_is_used(catalog):
    """`fc` (a dense layer on the last axis) on an image's feature map is refused at the edge."""
    text = MINIMAL.replace("input sequence(features)", "input(3, 8)").replace(
        "head decoder(features)", "head pool_linear(features)"
    )
    with pytest.raises(NasSemanticError, match="reads an image's feature map") as info:
        parse_space(text, "rnn.nas", catalog=catalog)
    assert info.value.span.line == line_of(text, "x:fc")
    assert "input sequence(features)" in info.value.hint


def test_a_recurrent_cell_read_from_too_many_sources_names_its_step_inputs(catalog):
    """`rnn @ hidden from a, b` reads two outputs for one step input: the hint says states are
    carried, not read."""
    text = MINIMAL.replace("    rnn @ hidden", "    a = rnn @ hidden\n    rnn @ hidden from a, a")
    with pytest.raises(NasSemanticError, match="has 1 input but the statement reads 2") as info:
        parse_space(text, "rnn.nas", catalog=catalog)
    assert "states are carried" in info.value.hint


def test_dropout_takes_a_probability(catalog):
    """`dropout(p)` takes a decimal in [0, 1); 1.5 is refused at the call."""
    op = "op drop = fc -> dropout(1.5)\n"
    text = op + MINIMAL.replace("h1 = z:act_tanh", "h1 = z:drop")
    with pytest.raises(NasSemanticError, match="must lie in") as info:
        parse_space(text, "rnn.nas", catalog=catalog)
    assert info.value.span.line == 1
    good = op.replace("1.5", "0.25") + MINIMAL.replace("h1 = z:act_tanh", "h1 = z:drop")
    assert parse_space(good, catalog=catalog).cell("rnn").recurrent


def test_one_d_convolution_and_pooling_keep_a_sequence_and_stride_over_time(catalog):
    """`conv1d` and `maxpool1d` run over the time axis; a stem of them checks on a sequence."""
    text = "op temporal = conv1d(3) -> relu -> maxpool1d(3)\n" + MINIMAL.replace(
        "    rnn @ hidden", "    stem temporal(8)\n    rnn @ hidden"
    )
    space = parse_space(text, catalog=catalog)
    stage = instantiate(space, None, catalog).stages[0]
    assert (stage.name, stage.width) == ("temporal", 8)
