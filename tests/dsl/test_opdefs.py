"""Tests of ops defined in the language: parsing, names of parametric candidates, the prelude,
and the located errors of a definition (a table that the tests loop over)."""

from __future__ import annotations

import re

import pytest

from nasc.dsl import NasSemanticError, format_space, parse_space
from nasc.dsl.opdefs import PRIMITIVES, prelude, prelude_text
from nasc.runtime.catalog import OP_TABLE

MBCONV = """# An inverted residual block.
op mbconv(e, k) = residual(
    conv(1, out = e * C_in) -> bn -> relu6 -> dwconv(k, stride = stride) -> bn -> relu6
    -> conv(1) -> bn
)"""
BODY = """ops mb = {mbconv(3, 3), mbconv(6, 5), skip_connect}

cell layer(x) {
    n1 = x:mb
    keep 1 per edge
    out n1
}

network net(C = 8, classes = 10) {
    input(3, 16)
    stem conv3x3_bn(C)
    layer @ C
    mbconv(2C, 6, 3, stride = 2)
    head pool_linear(classes)
}
"""


def space(definitions: str = MBCONV) -> str:
    return definitions + "\n\n" + BODY


def position(text: str, needle: str) -> tuple[int, int]:
    index = text.index(needle)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def test_parametric_candidates_have_readable_distinct_names(catalog):
    """`mbconv(3, 3)` and `mbconv(6, 5)` are two candidates, named with their arguments."""
    parsed = parse_space(space(), "space.nas", catalog=catalog)
    assert parsed.opset("mb").ops == ("mbconv(3,3)", "mbconv(6,5)", "skip_connect")
    assert parsed.cell("layer").edges[0].candidates == parsed.opset("mb").ops
    assert [d.name for d in parsed.opdefs] == ["mbconv"]
    assert parsed.opdefs[0].params == ("e", "k")
    assert parsed.opdefs[0].doc == "An inverted residual block."


def test_a_space_with_op_definitions_prints_and_parses_back(catalog):
    """The printer writes the definitions (with their doc comment) and the canonical names, and
    the text parses back to an equal space."""
    parsed = parse_space(space(), "space.nas", catalog=catalog)
    text = format_space(parsed)
    assert text.startswith("# An inverted residual block.\nop mbconv(e, k) = residual(")
    assert "ops mb = {mbconv(3,3), mbconv(6,5), skip_connect}" in text
    assert parse_space(text, catalog=catalog) == parsed


def test_the_prelude_defines_every_builtin_op_but_the_python_ones(catalog):
    """Every op in the catalog is the prelude's or one of the few Python ones, each documented."""
    names = {defn.name for defn in prelude()}
    assert names | set(OP_TABLE) == set(catalog)
    assert not names & set(OP_TABLE)
    assert {"nor_conv_3x3", "sep_conv_3x3", "resblock", "bn_relu_pool_linear"} <= names
    assert all(defn.doc for defn in prelude())
    assert "register_op" not in prelude_text()  # the prelude is language, not Python


def test_a_fixed_stride_and_a_head_are_flags(catalog):
    """`with stride 4` and `with head` give an op its fixed stride and its role."""
    assert catalog["darts_imagenet_stem0"].stride == 4
    assert catalog["pool_linear"].role == "head"
    assert catalog["nor_conv_3x3"].stride is None and catalog["nor_conv_3x3"].role == "op"


# Each mistake: (what to replace in MBCONV, by what, the message, where it points, the path, a
# word the hint holds).
OP_MISTAKES = [
    (
        "relu6 -> dwconv",
        "relu7 -> dwconv",
        "unknown primitive or op `relu7` in op `mbconv`",
        "relu7",
        "op.mbconv.relu7",
        "relu6",
    ),
    (
        "out = e * C_in",
        "out = e * C_in * width",
        "unknown name `width` in op `mbconv`",
        "width",
        "op.mbconv",
        "C_in",
    ),
    (
        "dwconv(k, stride = stride)",
        "dwconv(stride = stride)",
        "`dwconv` needs its argument `k`",
        "dwconv",
        "op.mbconv.dwconv",
        "dilation",
    ),
    (
        "dwconv(k, stride = stride)",
        "dwconv(k, padding = 1)",
        "`dwconv` takes no argument `padding`",
        "dwconv",
        "op.mbconv.dwconv",
        "stride",
    ),
    (
        "dwconv(k, stride = stride)",
        "dwconv(k, stride, 1, 1)",
        "`dwconv` takes at most 3 positional arguments, got 4",
        "dwconv",
        "op.mbconv.dwconv",
        "dilation",
    ),
    (
        "conv(1) -> bn\n)",
        "conv(1) -> bn -> mbconv(1, 3)\n)",
        "op `mbconv` uses itself: mbconv -> mbconv",
        "mbconv(1, 3)",
        "op.mbconv.mbconv",
        "primitives",
    ),
    (
        "op mbconv(e, k)",
        "op mbconv(e, stride)",
        "op `mbconv` has a parameter `stride`, a name every op already has",
        "mbconv",
        "op.mbconv",
        "C_out",
    ),
    (
        "op mbconv(e, k)",
        "op mbconv(e, k) with tiny",
        "unknown op flag `tiny`",
        "mbconv",
        "op.mbconv",
        "head",
    ),
    (
        "-> conv(1) -> bn\n)",
        "-> conv(1) -> bn -> pool_linear\n)",
        "`pool_linear` is a head and cannot be used inside the op `mbconv`",
        "pool_linear",
        "op.mbconv.pool_linear",
        "with head",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "message", "needle", "path", "hint"),
    OP_MISTAKES,
    ids=[mistake[2] for mistake in OP_MISTAKES],
)
def test_a_mistake_in_an_op_definition_is_located(catalog, old, new, message, needle, path, hint):
    """Each mistake in a definition names the problem at its line and column, with the dotted
    path `op.NAME[.CALL]` and a hint."""
    assert MBCONV.count(old) == 1
    text = space(MBCONV.replace(old, new))
    with pytest.raises(NasSemanticError, match=re.escape(message)) as info:
        parse_space(text, "space.nas", catalog=catalog)
    error = info.value
    assert error.message == message
    line, column = position(text, needle if needle != "mbconv" else "mbconv(")
    assert (error.span.file, error.span.line, error.span.column) == ("space.nas", line, column)
    assert error.path == path
    assert hint in error.hint
    assert error.source == text


def test_defining_a_builtin_or_a_primitive_again_is_refused(catalog):
    """A file cannot redefine a prelude op or a primitive: names in genotypes stay unambiguous."""
    for name in ("nor_conv_3x3", "relu"):
        text = space(MBCONV + f"\nop {name} = relu -> conv(3, stride = stride) -> bn")
        with pytest.raises(NasSemanticError, match=f"op `{name}` is already a") as info:
            parse_space(text, "space.nas", catalog=catalog)
        assert info.value.span.line == text.count("\n", 0, text.index(f"op {name}")) + 1
        assert info.value.path == f"op.{name}"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("mbconv(3, 3), ", "mbconv(3), ", "`mbconv` takes 2 arguments, got 1"),
        ("mbconv(3, 3), ", "skip_connect(1), ", "`skip_connect` takes 0 arguments, got 1"),
        ("mbconv(2C, 6, 3, stride = 2)", "mbconv(2C, 6)", "`mbconv` takes its output width"),
    ],
)
def test_a_parametric_op_used_with_the_wrong_arguments_is_located(catalog, old, new, message):
    """A use of an op with the wrong number of arguments points at the use."""
    text = space().replace(old, new)
    with pytest.raises(NasSemanticError, match=re.escape(message)) as info:
        parse_space(text, "space.nas", catalog=catalog)
    assert info.value.span.line == position(text, new)[0]
    assert info.value.hint


def test_primitives_are_documented():
    """Every primitive has a line of documentation, and its required arguments are its own."""
    for primitive in PRIMITIVES.values():
        assert primitive.doc
        assert set(primitive.required) <= set(primitive.params)


def test_a_primitive_named_as_a_candidate_says_how_to_make_it_an_op(catalog):
    """`ops gate = {sigmoid, tanh}` names primitives: the error says to define ops from them, and
    the definitions then work as candidates."""
    text = space().replace("ops mb = {mbconv(3, 3), ", "ops mb = {sigmoid, mbconv(3, 3), ")
    with pytest.raises(NasSemanticError, match="unknown op `sigmoid`") as info:
        parse_space(text, "space.nas", catalog=catalog)
    assert info.value.span.line == position(text, "sigmoid")[0]
    assert "`sigmoid` is a primitive of op bodies" in info.value.hint
    assert "op sigmoid_op = sigmoid" in info.value.hint
    fixed = "op sigmoid_op = sigmoid\n" + text.replace("{sigmoid,", "{sigmoid_op,")
    assert parse_space(fixed, catalog=catalog).opset("mb").ops[0] == "sigmoid_op"


NET_MINE = """
network net(C = 16, classes = 10) {
    input(3, 32)
    stem conv3x3_bn(C)
    mine(C)
    head pool_linear(classes)
}
"""


@pytest.mark.parametrize(
    ("top", "doc"),
    [
        ("# My space, by me.\n\nop mine = conv(3) -> bn\n", ""),
        ("# My space, by me.\n#\n# Two paragraphs.\n\n\nop mine = conv(3) -> bn\n", ""),
        ("# My space.\n\n# A conv and a BN.\nop mine = conv(3) -> bn\n", "A conv and a BN."),
        ("# A conv\n# and a BN.\nop mine = conv(3) -> bn\n", "A conv and a BN."),
    ],
)
def test_only_the_comment_right_above_an_op_documents_it(catalog, top, doc):
    """The comment lines directly above an op (no blank line between) are its documentation; a
    file header or any comment separated from the op by a blank line is not, and is not written
    back above the op in a printed (exported) file."""
    space = parse_space(top + NET_MINE, catalog=catalog)
    assert space.opdefs[0].doc == doc
    printed = format_space(space, header="exported")
    assert ("My space" in printed) is False
    assert parse_space(printed, catalog=catalog).opdefs[0].doc == doc
