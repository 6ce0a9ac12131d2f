"""Characters and numbers that look right but are not: a non-ASCII letter in a word, digits of
other scripts, `_` in numbers, and values too large to build."""

from __future__ import annotations

import re

import pytest

from nasc.dsl import NascError, NasSemanticError, NasSyntaxError, parse_space
from nasc.dsl.ast import parse_int

NETWORK = """network net(C = 16, classes = 10) {
    input(3, 32)
    stem conv3x3_bn(C)
    cell_a @ C
    head pool_linear(classes)
}
"""
CELL = "cell cell_a(x) {\n    n1 = x:skip_connect\n    out n1\n}\n\n"


def syntax_error(text: str) -> NasSyntaxError:
    """The syntax error `parse_space` raises for `text`."""
    with pytest.raises(NasSyntaxError) as info:
        parse_space(text, "space.nas")
    return info.value


@pytest.mark.parametrize(
    ("text", "line", "column", "named"),
    [
        # a Cyrillic `е` (U+0435) in the keyword `cell`, after a Latin `c`
        ("c\u0435ll cell_a(x) {\n    n1 = x:skip_connect\n    out n1\n}\n\n" + NETWORK, 1, 2,
         "U+0435 CYRILLIC SMALL LETTER IE, which looks like `e`"),
        # a Cyrillic `о` (U+043E) as the first letter of `ops`
        ("\u043eps s = {none}\n\n" + CELL + NETWORK, 1, 1,
         "U+043E CYRILLIC SMALL LETTER O, which looks like `o`"),
        # a Cyrillic `с` (U+0441) inside `concat`, in the middle of a line
        (CELL.replace("x:skip_connect", "con\u0441at(x:skip_connect)") + NETWORK, 2, 13,
         "U+0441 CYRILLIC SMALL LETTER ES, which looks like `c`"),
        # a Greek omicron in a name
        (CELL + NETWORK.replace("net(", "n\u03bft("), 6, 10,
         "U+03BF GREEK SMALL LETTER OMICRON, which looks like `o`"),
        # full-width digits in a default
        (CELL + NETWORK.replace("C = 16", "C = \uff11\uff16"), 6, 17,
         "U+FF11 FULLWIDTH DIGIT ONE, which looks like `1`"),
    ],
)
def test_a_lookalike_character_is_named_at_its_column(text, line, column, named):
    """A non-ASCII character that looks like an ASCII one is reported at its own column, by its
    Unicode name and the ASCII character it imitates, with a hint to retype it."""
    error = syntax_error(text)
    assert (error.span.line, error.span.column) == (line, column)
    assert named in error.message
    assert "ASCII" in error.hint and "byte-order mark" not in error.hint


def test_an_accented_letter_in_a_name_is_named():
    """An accented letter is named too: names are ASCII letters, digits and `_`."""
    error = syntax_error(CELL.replace("cell_a", "c\u00e9ll_a") + NETWORK)
    assert (error.span.line, error.span.column) == (1, 7)
    assert "U+00E9 LATIN SMALL LETTER E WITH ACUTE" in error.message


@pytest.mark.parametrize("text", ["16", "-3", "+4", " 7 "])
def test_parse_int_reads_ascii_integers(text):
    """`parse_int` reads integers of ASCII digits with an optional sign."""
    assert parse_int(text.strip()) == int(text)


@pytest.mark.parametrize("text", ["1_6", "\uff11\uff16", "\u0661\u0666", "16.0", "", "0x10", "1e3"])
def test_parse_int_refuses_what_only_python_reads(text):
    """`1_6`, full-width or Arabic-Indic digits are integers to Python's `int`, not to nasc."""
    with pytest.raises(ValueError):
        parse_int(text)


def test_an_underscore_in_a_number_is_not_read_as_a_separator(catalog):
    """`C = 1_6` is not 16: it is 1 times a parameter `_6`, and the error says so where it is
    written (a parameter named `_6` may exist: then it is a product)."""
    text = CELL + NETWORK.replace("C = 16", "C = 1_6")
    with pytest.raises(NasSemanticError, match="unknown parameter `_6`") as info:
        parse_space(text, "space.nas", catalog=catalog)
    assert (info.value.span.line, info.value.span.column) == (6, 17)
    assert "`1_6` is 1 times a parameter `_6`, not 16; leave the `_` out" in info.value.hint
    declared = NETWORK.replace("(C = 16,", "(_6 = 2, C = 1_6,")
    assert parse_space(CELL + declared, catalog=catalog).network.params[1].name == "C"


@pytest.mark.parametrize("define", ["1_6", "\uff11\uff16"])
def test_a_define_value_of_non_ascii_digits_is_refused(define, capsys):
    """`-D C=1_6` and `-D C=１６` are refused, not read as 16."""
    from nasc.runtime.cli import main

    assert main(["check", "-D", f"C={define}", "nb201"]) == 2
    assert f"parameter `C` must be an integer, not `{define}`" in capsys.readouterr().err


def test_a_twenty_digit_define_is_refused_where_the_parameter_is_used(catalog):
    """A `-D` value of 20 digits is refused at the width it gives, not passed on to PyTorch."""
    text = CELL + NETWORK
    message = (
        "the width of `conv3x3_bn` must be at most 2,147,483,647, "
        "but it is 99,999,999,999,999,999,999"
    )
    with pytest.raises(NasSemanticError, match=re.escape(message)) as info:
        parse_space(text, "space.nas", catalog=catalog, overrides={"C": 10**20 - 1})
    assert (info.value.span.line, info.value.span.column) == (8, 21)


@pytest.mark.parametrize(
    ("overrides", "replace", "what", "needle"),
    [
        ({"C": 2**31}, None, "the width of `conv3x3_bn`", "C)\n    cell_a"),
        ({}, ("input(3, 32)", "input(3, 10000000000)"), "the input's size", "10000000000"),
        ({}, ("classes = 10", "classes = 123456789012"), "the width of `pool_linear`", "classes)"),
    ],
)
def test_a_size_too_large_to_build_is_refused_where_it_is_written(
    catalog, overrides, replace, what, needle
):
    """A width, size or class count above 2**31 - 1 passes no check: it is refused, located at the
    expression that gives it, before PyTorch tries to build it."""
    text = CELL + NETWORK
    if replace:
        text = text.replace(*replace)
    message = re.escape(what) + " must be at most 2,147,483,647"
    with pytest.raises(NasSemanticError, match=message) as info:
        parse_space(text, "space.nas", catalog=catalog, overrides=overrides)
    index = text.index(needle)
    line = text.count("\n", 0, index) + 1
    assert (info.value.span.line, info.value.span.column) == (
        line,
        index - text.rfind("\n", 0, index),
    )


def test_a_twenty_digit_define_is_refused_by_check(capsys):
    """`nasc check -D C=<20 digits>` exits 2 with the located error, without a traceback."""
    from nasc.runtime.cli import main

    assert main(["check", "-D", "C=12345678901234567890", "nb201"]) == 2
    err = capsys.readouterr().err
    assert "must be at most 2,147,483,647, but it is 12,345,678,901,234,567,890" in err
    assert "nb201:19:21: error:" in err
    assert "Traceback" not in err


def test_an_op_argument_too_large_to_build_is_refused(catalog):
    """An op's own parameter that makes a step wider than 2**31 - 1 channels is refused at the
    step."""
    text = (
        "op wide(e) = conv(1, out = e * C_in) -> bn -> conv(1) -> bn\n\n"
        + NETWORK.replace("cell_a @ C", "wide(C, 100000000000)")
    )
    message = "`out` of `conv` in op `wide` must be at most 2,147,483,647"
    with pytest.raises(NascError, match=message):
        parse_space(text, "space.nas", catalog=catalog)


def test_an_nb201_string_with_full_width_digits_is_refused(nb201):
    """`~０` in an NB201 string is not node 0: the string is malformed."""
    from nasc.dsl import NascUsageError, parse_arch

    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    assert parse_arch(nb201, text).cells
    with pytest.raises(NascUsageError, match="malformed NB201 node group"):
        parse_arch(nb201, text.replace("~0", "~\uff10", 1))
