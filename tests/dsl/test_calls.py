"""Arguments of calls (blocks, stems, heads and steps of op bodies): each keyword once, and a
keyword the op does not take named with the ones it does."""

from __future__ import annotations

import re

import pytest

from nasc.dsl import NascError, parse_space

MB = "op mb(e, k) = conv(1, out = e * C_in) -> bn -> dwconv(k) -> conv(1) -> bn\n\n"


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
    """The error `parse_space` raises for `text`, which must contain `message`."""
    with pytest.raises(NascError, match=re.escape(message)) as info:
        parse_space(text, "space.nas", catalog=catalog)
    return info.value


def at(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """Line and column (from 1) of the `occurrence`-th `needle` in `text`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


@pytest.mark.parametrize(
    ("text", "keyword", "occurrence"),
    [
        (MB + network("mb(C, e = 6, k = 3, e = 2)"), "e = ", 2),
        (network("resblock(2C, stride = 2, stride = 1)"), "stride = ", 2),
        (network("stem conv3x3_bn(C, stride = 1, stride = 2)"), "stride = ", 2),
        ("op twice = conv(3, stride = 1, stride = stride)\n\n" + network("twice(C)"), "stride", 2),
    ],
)
def test_a_keyword_given_twice_is_refused_at_the_second(catalog, text, keyword, occurrence):
    """A call that gives one keyword twice is refused at the second, naming the keyword, rather
    than silently keeping the last value."""
    name = keyword.split()[0]
    error = refused(text, catalog, f"the keyword argument `{name}` is given twice")
    assert (error.span.file, error.span.line, error.span.column) == (
        "space.nas",
        *at(text, keyword, occurrence),
    )
    assert "once" in error.hint


@pytest.mark.parametrize(
    ("statement", "keyword", "mean", "takes"),
    [
        ("mb(C, e = 6, kk = 3)", "kk", "k", "stride, e, k"),
        ("mb(C, 6, 3, kk = 3)", "kk", "k", "stride, e, k"),
        ("resblock(C, strid = 2)", "strid", "stride", "stride"),
    ],
)
def test_an_unknown_keyword_is_named_with_the_valid_ones(catalog, statement, keyword, mean, takes):
    """A keyword the block does not take is named, at the call, with a suggestion and the
    keywords it does take, not reported as a wrong argument count."""
    text = MB + network(statement)
    op = statement.split("(")[0]
    error = refused(text, catalog, f"`{op}` takes no argument `{keyword}`")
    assert (error.span.line, error.span.column) == at(text, statement)
    assert f"did you mean `{mean}`?" in error.hint
    assert f"keywords: {takes}" in error.hint


def test_an_unknown_keyword_in_an_op_body_gets_a_suggestion(catalog):
    """A misspelt keyword of a primitive inside an op body is named with a suggestion."""
    text = "op down = conv(3, strid = 2)\n\n" + network("down(C)")
    error = refused(text, catalog, "`conv` takes no argument `strid`")
    assert (error.span.line, error.span.column) == at(text, "conv")
    assert error.hint.startswith("did you mean `stride`?")


def test_a_parameter_given_by_position_and_by_keyword_is_refused(catalog):
    """`mb(C, 6, e = 2)` gives `e` twice (6 by position): refused at the keyword instead of
    crashing on the missing `k`."""
    text = MB + network("mb(C, 6, e = 2)")
    error = refused(text, catalog, "`mb` gets `e` twice: by position and by keyword")
    assert (error.span.line, error.span.column) == at(text, "e = 2")
