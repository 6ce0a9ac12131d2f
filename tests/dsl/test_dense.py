"""Tests of dense networks in the language: named statements read with `from`, `from all`,
cells placed `at` a stride, resampling adapters, upsampling primitives and per-pixel heads."""

from __future__ import annotations

import pytest
from dense_examples import UNET

from nasc.dsl import NasSemanticError, format_space, parse_space
from nasc.dsl.macro import IMAGE, instantiate
from nasc.dsl.mistakes import SEMANTIC_MISTAKES
from nasc.dsl.shapes import op_shape
from nasc.runtime.catalog import language_catalog

MISTAKES = [(hint, text) for hint, texts in SEMANTIC_MISTAKES.items() for text in texts]


# Cells that read every earlier output, at strides 4, 8 and back to 4.
DENSE = """
op stem4 with stride 4 = conv(3, stride = 2) -> bn -> relu -> conv(3, stride = 2) -> bn
op seg with per_pixel = conv(3, out = C_in) -> bn -> relu -> conv(1, bias = 1)
ops s = {skip_connect, nor_conv_3x3}

cell dense(x:resample) {
    n1 = x:s
    keep 1 per edge
    out n1
}

network net(C = 4, classes = 3, size = 32) {
    input(3, size)
    stem stem4(2C)
    dense @ C at 4 from all
    dense @ 2C at 8 from all
    dense @ C at 4 from all
    head seg(classes)
}
"""


def plan(text: str, **overrides):
    space = parse_space(text, "dense.nas", catalog=language_catalog())
    return space, instantiate(space, overrides, language_catalog())


@pytest.mark.parametrize(("hint", "text"), MISTAKES, ids=[h[:40] for h, _ in MISTAKES])
def test_labelled_dense_mistake_is_refused_with_its_hint(hint, text):
    """Each labelled dense mistake is a located semantic error with exactly its hint."""
    with pytest.raises(NasSemanticError) as info:
        parse_space(text, "mistake.nas", catalog=language_catalog())
    error = info.value
    assert error.hint == hint
    assert error.span is not None and error.span.file == "mistake.nas"
    lines = text.splitlines()
    assert 1 <= error.span.line <= len(lines)
    assert 1 <= error.span.column <= len(lines[error.span.line - 1]) + 1
    assert error.path


def test_named_outputs_wire_a_unet():
    """`from NAME` wires the decoder cells to the bottom and the skips, with upsampling reads."""
    _, net = plan(UNET)
    stages = net.stages
    assert [s.out_size for s in stages] == [32, 16, 8, 16, 32, 32]
    dec2, dec1, head = stages[3], stages[4], stages[5]
    assert dec2.inputs == (2, 1) and dec2.input_ups == (2, 1) and dec2.input_strides == (1, 1)
    assert dec2.in_channels == (16, 8) and dec2.label == "dec2"
    assert dec1.inputs == (3, 0) and dec1.input_ups == (2, 1)
    assert dec1.node_channels["n1"] == 8 and dec1.out_channels == 4
    assert head.inputs == (4,) and head.per_pixel and head.out_size == 32


def test_from_all_reads_every_earlier_output_at_the_cells_stride():
    """`from all` reads every earlier output; `at S` puts the cell at 1/S of the input, and each
    read is strided or upsampled by the power of two that brings it there."""
    space, net = plan(DENSE)
    cells = [stage for stage in net.stages if stage.kind == "cell"]
    assert [c.inputs for c in cells] == [(0,), (0, 1), (0, 1, 2)]
    assert [c.in_size for c in cells] == [8, 4, 8]
    assert [c.fused for c in cells] == [(0,), (0,), (0,)]
    assert cells[1].input_strides == (2, 2) and cells[1].input_ups == ()
    assert cells[2].input_strides == (1, 1, 1) and cells[2].input_ups == (1, 1, 2)
    assert cells[2].slots == (0, 0, 0)
    assert cells[2].in_channels == (8, 4, 8)
    assert format_space(parse_space(format_space(space))) == format_space(space)


def test_without_at_a_cell_runs_at_its_last_inputs_resolution():
    """A cell reading `from all` without `at` runs at the latest output's resolution; one
    reading named outputs at its last one's."""
    text = DENSE.replace("dense @ 2C at 8 from all", "dense @ 2C from all")
    _, net = plan(text)
    assert net.stages[2].in_size == 8
    _, net = plan(UNET)
    assert net.stages[3].in_size == 16 == net.stages[1].out_size
    # Read at its own resolution, `up_conv` would be `deconv(2, stride = 1)`: refused.
    with pytest.raises(NasSemanticError, match="cannot multiply the size by 1 exactly"):
        plan(UNET.replace("from bottom, enc2", "from enc2, enc2"))


def test_a_single_read_of_four_times_the_resolution_needs_a_resampling_adapter():
    """`resample` reads an output four times larger through one strided conv; `preprocess`
    stops at twice, as before."""
    text = DENSE.replace("dense @ 2C at 8 from all", "dense @ 2C at 16 from all")
    _, net = plan(text)
    assert net.stages[2].input_strides == (4, 4) and net.stages[2].in_size == 2
    text = text.replace("x:resample", "x:preprocess")
    with pytest.raises(NasSemanticError, match="arrives at 8x8 but the cell runs at 2x2") as info:
        plan(text)
    assert "at most twice its resolution" in info.value.hint


def test_printer_writes_names_sources_and_strides_back():
    """Named statements, `from` lists and `at` print back and parse to an equal space."""
    space, _ = plan(UNET)
    text = format_space(space)
    assert "dec2 = decoder @ 2C from bottom, enc2" in text
    assert "    decoder @ C from dec2, enc1" in text
    assert parse_space(text, catalog=language_catalog()) == space
    dense, _ = plan(DENSE)
    assert "dense @ 2C at 8 from all" in format_space(dense)


def test_named_statements_may_be_phased_and_the_other_phase_cannot_read_them():
    """A name given by a `search` statement is unknown to the standalone network."""
    text = UNET.replace("    enc1 = double_conv(C)", "    search enc1 = double_conv(C)")
    text = text.replace(
        "    enc2 = double_conv(2C", "    train enc1 = double_conv(C)\n    enc2 = double_conv(2C"
    )
    space = parse_space(text, catalog=language_catalog())
    for phase in ("search", "train"):
        assert instantiate(space, {}, language_catalog(), phase=phase).stages[-1].out_size == 32
    broken = text.replace("    train enc1 = double_conv(C)\n", "")
    with pytest.raises(NasSemanticError, match="unknown stage name `enc1`") as info:
        instantiate(parse_space(broken), {}, language_catalog(), phase="train")
    assert "train network" in info.value.hint


def test_upsampling_primitives_multiply_the_size():
    """`bilinear`, `nearest` and `deconv` multiply the size by their factor; a resampling
    adapter gives its place's size, strided or upsampled."""
    text = (
        "op up2 with resampling = if up > 1 then (nearest(up) -> conv(1) -> bn) "
        "else (conv(3, stride = stride) -> bn)\n"
        "op tconv with resampling = deconv(4, stride = up) -> bn\n" + UNET
    )
    space = parse_space(text, catalog=language_catalog())
    for name in ("resample", "up2", "tconv"):
        shape = op_shape(space, name, 8, 16, 1, 5, up=4)
        assert (shape.channels, shape.height, shape.width) == (16, 20, 20), name
    shape = op_shape(space, "resample", 8, 16, 8, 33)
    assert (shape.height, shape.width) == (5, 5)


def test_an_op_parameter_named_up_is_refused():
    """`up` is given to every op, like `stride`, so no op may take it as a parameter."""
    with pytest.raises(NasSemanticError, match="has a parameter `up`"):
        parse_space("op o(up) = conv(1)\n" + UNET, catalog=language_catalog())


def test_a_per_pixel_head_may_end_at_any_size_and_a_class_score_head_still_may_not():
    """A per-pixel head's map is resized to the input, so its size is free; a `with head` op
    that ends in a map is still refused."""
    text = UNET.replace(
        "op seg_out with per_pixel = conv(1, bias = 1)",
        "op seg_out with per_pixel = conv(3, stride = 2) -> conv(1, bias = 1)",
    )
    _, net = plan(text)
    assert net.stages[-1].out_size == 32 and net.stages[-1].per_pixel
    flat = UNET.replace("with per_pixel", "with head")
    with pytest.raises(NasSemanticError, match="does not end in class scores"):
        plan(flat)


def test_the_image_is_read_when_nothing_came_before():
    """A cell that reads `from all` before any stage reads the image, through its adapter."""
    text = DENSE.replace("    stem stem4(2C)\n", "")
    _, net = plan(text)
    assert net.stages[0].inputs == (IMAGE,) and net.stages[0].input_strides == (4,)


CHAIN = """
ops s = {skip_connect, nor_conv_3x3}
cell c(x) {
    n1 = x:s
    keep 1 per edge
    out n1
}
network net(C = 4) {
    input(3, 16)
    low = conv3x3_bn(C)
    conv3x3_bn(2C, stride = 2)
    repeat 2 c @ C from low
    pick = choose {conv3x3_bn, skip_connect} @ C from low
    c @ C from pick
    head pool_linear(10)
}
"""


def test_a_repeat_reads_its_sources_once_then_chains():
    """The first instance of a repeat reads the `from` sources, the next the one before it (as
    a repeat of blocks); a `from all` statement's every instance reads all."""
    _, net = plan(CHAIN)
    assert [s.inputs for s in net.stages[2:4]] == [(0,), (2,)]
    _, net = plan(DENSE.replace("dense @ 2C at 8 from all", "repeat 2 dense @ 2C at 8 from all"))
    assert [s.inputs for s in net.stages[2:4]] == [(0, 1), (0, 1, 2)]


def test_a_decided_block_choice_keeps_its_name_and_sources():
    """A fixed architecture writes a named block choice read `from` as the chosen block with its
    name and sources, so it reads and is read as before."""
    from nasc.dsl import Genotype, apply_genotype

    space = parse_space(CHAIN, catalog=language_catalog())
    decided = {"choice1": {"x->block": ["skip_connect"]}, "c": {"x->n1": ["nor_conv_3x3"]}}
    fixed = apply_genotype(space, Genotype(decided))
    text = format_space(fixed)
    assert "pick = skip_connect(C) from low" in text
    again = parse_space(text, catalog=language_catalog())
    stages = instantiate(again, {}, language_catalog()).stages
    assert stages[4].inputs == (0,) and stages[5].inputs == (4,)
