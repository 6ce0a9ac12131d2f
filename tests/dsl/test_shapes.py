"""Tests of the torch-free shape checks: every op gives the shape its place needs, or `check`
refuses the file at the step that goes wrong."""

from __future__ import annotations

import pytest

from nasc.dsl import NasSemanticError, parse_space
from nasc.dsl.macro import instantiate
from nasc.runtime.catalog import language_catalog
from nasc.runtime.cli import main

SPACE = """{defs}
ops s = {{{ops}, skip_connect}}

cell c(x) {{
    n1 = x:s
    n2 = x:skip_connect + n1:s
    keep 1 per edge
    out n2
}}

network net(C = 16) {{
    input(3, 32)
    stem {stem}(C)
    c @ C
    resblock(2C, stride = 2)
    head {head}(10)
}}
"""


def space(defs: str = "", ops: str = "nor_conv_3x3", stem: str = "conv3x3_bn", head="pool_linear"):
    """A small space with op definitions `defs`, candidates `ops`, a stem and a head."""
    return SPACE.format(defs=defs, ops=ops, stem=stem, head=head)


def refused(text: str, message: str, needle: str, path: str) -> NasSemanticError:
    """Assert that checking `text` raises an error starting with `message`, located at the first
    `needle` of the text, with the dotted `path`."""
    with pytest.raises(NasSemanticError) as info:
        parse_space(text, "space.nas", catalog=language_catalog())
    error = info.value
    index = text.index(needle)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    assert error.message.startswith(message), error.message
    assert (error.span.file, error.span.line, error.span.column) == ("space.nas", line, column)
    assert error.path == path
    assert error.hint
    return error


def test_the_reference_spaces_and_the_small_space_pass():
    """The small space every test here changes is valid, so each refusal is the change's."""
    parse_space(space(), "space.nas", catalog=language_catalog())


def test_an_even_kernel_that_shrinks_the_map_is_refused():
    """`conv(2)` turns 32x32 into 31x31 while `show` says 32x32: refused at the conv with a hint
    to use an odd kernel."""
    text = space("op conv2 = relu -> conv(2) -> bn", "conv2")
    error = refused(
        text,
        "`conv` in op `conv2` turns 32x32 into 31x31, so the op gives 31x31; its place needs "
        "32x32, the size `nasc show` reports (placed at net.c.n1.edge[x], C_in 16, C_out 16, "
        "stride 1)",
        "conv(2)",
        "op.conv2",
    )
    assert "odd kernel" in error.hint


def test_an_even_kernel_at_stride_2_on_an_even_size_is_accepted():
    """A stride-2 even kernel halves an even size exactly (resblock's 2x2 pooling), so it passes."""
    text = space("op patch = conv(2, stride = stride) -> bn", "nor_conv_3x3", stem="conv3x3_bn")
    text = text.replace("resblock(2C, stride = 2)", "patch(2C, stride = 2)")
    plan = instantiate(parse_space(text, catalog=language_catalog()), {}, language_catalog())
    assert [stage.out_size for stage in plan.stages] == [32, 32, 16, 1]


def test_a_pooling_that_shrinks_the_map_is_refused():
    """`avgpool(5, pad = 0)` at stride 1 turns 32x32 into 28x28: refused at the pooling."""
    text = space("op pool5 = avgpool(5, pad = 0)", "pool5")
    error = refused(text, "`avgpool` in op `pool5` turns 32x32 into 28x28", "avgpool(5", "op.pool5")
    assert "pad" in error.hint


def test_a_stride_that_does_not_fit_its_place_is_refused():
    """An op that always strides by 2 cannot sit on a stride-1 edge."""
    text = space("op down = conv(3, stride = 2) -> bn", "down")
    refused(
        text,
        "op `down` reduces the resolution by 2 where it is placed with stride 1",
        "down =",
        "op.down",
    )


def test_a_group_count_that_does_not_divide_the_channels_is_refused():
    """Three groups cannot split 16 channels."""
    text = space("op gconv = conv(3, groups = 3) -> bn", "gconv")
    error = refused(
        text,
        "`conv` in op `gconv` has 3 groups for 16 input and 16 output",
        "conv(3, groups",
        "op.gconv",
    )
    assert "divide" in error.hint


def test_a_head_that_does_not_produce_class_scores_is_refused():
    """A head without `gap -> linear` gives a map, not class scores: refused at its definition."""
    text = space("op badhead with head = conv(1)", head="badhead")
    refused(
        text,
        "the head `badhead` does not end in class scores: it gives a 16x16 map",
        "badhead with",
        "op.badhead",
    )


def test_an_op_that_ends_flat_is_refused_on_an_edge():
    """An op (not a head) that ends after `gap` gives a vector where the cell sums maps."""
    text = space("op pooled = gap -> linear", "pooled")
    refused(text, "op `pooled` ends in a flat vector (after `gap`)", "pooled =", "op.pooled")


def test_wrong_output_channels_are_refused():
    """An op that ends with a fixed channel count where its place needs another is refused."""
    text = space("op narrow = conv(3, out = 8) -> bn", "narrow")
    refused(text, "op `narrow` ends with 8 channels where it must give 16", "narrow =", "op.narrow")


def test_a_residual_whose_body_shrinks_the_map_is_refused():
    """A residual adds its input to a body that lost two pixels: refused at the residual."""
    text = space("op rc = residual(conv(2) -> conv(2))", "rc")
    refused(
        text,
        "a residual in op `rc` adds its input of 32x32 to its body's 30x30",
        "residual",
        "op.rc",
    )


def test_a_prelude_op_is_refused_at_its_use():
    """A mistake inside a prelude op points at the use of the op in the file: the ImageNet stem
    halves its width first, which leaves no channels of a width of 1."""
    text = space(stem="darts_imagenet_stem0")
    text = text.replace("stem darts_imagenet_stem0(C)", "stem darts_imagenet_stem0(1)")
    refused(
        text,
        "`out` of `conv` in op `darts_imagenet_stem0` must be at least 1, not 0",
        "darts_imagenet_stem0(1)",
        "net.network.darts_imagenet_stem0",
    )


def test_a_block_stride_on_a_one_pixel_map_keeps_one_pixel():
    """Stride-2 blocks on tiny maps follow ceil division, as `show` reports, and pass."""
    text = space().replace("input(3, 32)", "input(3, 1)")
    plan = instantiate(parse_space(text, catalog=language_catalog()), {}, language_catalog())
    assert [stage.out_size for stage in plan.stages[:-1]] == [1, 1, 1]


def test_nasc_check_refuses_the_file_with_its_location(tmp_path, capsys):
    """`nasc check` prints file:line:col, the dotted path and the hint, and exits with 2."""
    path = tmp_path / "space.nas"
    path.write_text(space("op pool5 = avgpool(5, pad = 0)", "pool5"))
    assert main(["check", str(path)]) == 2
    printed = capsys.readouterr()
    output = printed.out + printed.err
    assert f"{path}:1:12: error: `avgpool` in op `pool5` turns 32x32 into 28x28" in output
    assert "(at op.pool5)" in output
    assert "hint:" in output


OWN_OPS = """op patch = conv(2, stride = stride) -> bn
op wide = conv(5, kh = 3, sh = 1, sw = stride, dilation = 2) -> conv(1, kw = 3, sh = stride, sw = 1)
op ceiling = maxpool(3, stride = stride, pad = 0, ceil = 1) -> conv(1)
op shrink = avgpool(5, pad = 0) -> conv(1)
"""


@pytest.mark.parametrize("size", [1, 7, 8, 33])
@pytest.mark.parametrize("stride", [1, 2])
def test_inferred_shapes_equal_pytorch_outputs(size, stride):
    """For every prelude op and a few of a file's own, the shape worked out without PyTorch is the
    shape of the module the compiler builds, run on an image of that size."""
    import torch

    from nasc.compiler import get_op
    from nasc.dsl.opdefs import prelude
    from nasc.dsl.shapes import op_shape

    own = parse_space(OWN_OPS + "network n() { input(3, 8) head pool_linear(2) }")
    defs = {defn.name: defn for defn in (*prelude(), *own.opdefs) if not defn.params}
    refused = set()
    for name, defn in defs.items():
        fixed = 1 if defn.role == "head" else defn.stride or stride
        for c_in, c_out in ((4, 4), (4, 8)):
            try:
                shape = op_shape(own, name, c_in, c_out, fixed, size)
            except NasSemanticError:
                shape = None  # refused: the op does not give the shape of its place here
                refused.add(name)
            try:
                module = get_op(name, own.opdefs).build(c_in, c_out, fixed, False).eval()
                with torch.no_grad():
                    out = tuple(module(torch.zeros(1, c_in, size, size)).shape[1:])
            except (RuntimeError, NasSemanticError):
                out = None
            if shape is None:
                place = (c_out, -(-size // fixed), -(-size // fixed))
                assert out is None or out != place, (name, c_in, c_out)
            elif shape.flat:
                assert out == (shape.channels,), name
            else:
                assert out == (shape.channels, shape.height, shape.width), name
    assert "shrink" in refused and "resblock" not in refused
