"""Tests of the parser: labelled common mistakes, error positions and rendered syntax errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nasc.dsl import NascError, NasSyntaxError, parse_space
from nasc.dsl import ast as nas_ast
from nasc.dsl.errors import Span
from nasc.dsl.syntax import COMMON_MISTAKES, parse_module

MISTAKES = [(hint, example) for hint, examples in COMMON_MISTAKES.items() for example in examples]


def syntax_error(text: str, file: str = "<string>") -> NasSyntaxError:
    """The syntax error that `parse_space` raises for `text`."""
    with pytest.raises(NasSyntaxError) as info:
        parse_space(text, file)
    return info.value


def position(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """Line and column, counted from 1, of the `occurrence`-th `needle` in `text`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def test_every_hint_has_examples():
    """Every labelled mistake comes with at least one example file and a non-empty hint."""
    assert len(COMMON_MISTAKES) >= 10
    for hint, examples in COMMON_MISTAKES.items():
        assert hint.strip()
        assert examples, hint


@pytest.mark.parametrize(("hint", "example"), MISTAKES, ids=[example for _, example in MISTAKES])
def test_common_mistake_gets_its_hint(hint, example):
    """Each labelled example raises a syntax error with exactly that hint and a span."""
    with pytest.raises(NasSyntaxError) as info:
        parse_module(example, "mistake.nas")
    error = info.value
    assert error.hint == hint
    assert error.span is not None
    assert error.span.file == "mistake.nas"
    assert error.span.line == 1  # every example is one line
    assert 1 <= error.span.column <= len(example) + 1


@pytest.mark.parametrize(("hint", "example"), MISTAKES[::5], ids=[e for _, e in MISTAKES[::5]])
def test_common_mistake_hint_survives_parse_space(hint, example):
    """`parse_space` raises the same hinted error, with the source attached for display."""
    error = syntax_error(example)
    assert error.hint == hint
    assert error.source == example
    assert f"hint: {hint}" in error.render()


def test_mistake_on_a_later_line_gets_hint_and_line():
    """A labelled mistake deep in a file is found by parser state, with its own line number."""
    text = "# a comment\n\nops nb201 = {none}\nops darts {sep_conv_3x3}\n"
    error = syntax_error(text)
    assert error.hint == "missing `=` in op set: write `ops NAME = {op, op}`"
    assert (error.span.line, error.span.column) == position(text, "{sep")


NB201_MISTAKES = [
    ("ops nb201 =", "ops nb201", "missing `=` in op set"),
    ("n2 =", "n2", "a cell statement is `NAME = edges`"),
    ("n1 = x:nb201", "n1 = x", "an edge is written `source:op`"),
    ("keep 1 per edge", "keep 1 edge", "`keep` takes a number and a rule"),
    ("out n3", "out n3, n2", "`out` names a node or a concat of nodes"),
    ("repeat N nb201_cell @ 4C", "repeat N nb201_cell 4C", "a cell in the network is placed"),
    ("repeat N nb201_cell @ 4C", "nb201_cell @ C / 2", "expressions use integers, parameters"),
    ("repeat N nb201_cell @ 4C", "nb201_cell @ C ** 2", "expressions use integers, parameters"),
    ("bn_relu_pool_linear(classes)\n}", "bn_relu_pool_linear(classes)\n", "a `{` is not closed"),
]


@pytest.mark.parametrize(("old", "new", "hint"), NB201_MISTAKES, ids=[m[1] for m in NB201_MISTAKES])
def test_mistake_in_a_real_file_gets_its_hint(old, new, hint):
    """A labelled mistake inside the NB201 space, after other declarations, still gets its hint."""
    text = (Path(__file__).parents[2] / "spaces" / "nb201.nas").read_text()
    assert old in text
    error = syntax_error(text.replace(old, new, 1))
    assert error.hint is not None and error.hint.startswith(hint)
    assert error.span.line > 5


def test_missing_equals_in_op_set_points_at_the_brace():
    """A missing `=` in an op set on line 3 is reported at line 3, at the column of the `{`."""
    text = "# NB201 ops\n\nops nb201 {none, skip_connect}\n"
    error = syntax_error(text)
    assert (error.span.line, error.span.column) == (3, 11)
    assert error.message == "unexpected `{`; expected `=`"


def test_unexpected_character_is_named():
    """A character outside the language is named, at its own line and column."""
    text = "network n(C = 16) {\n    input(3, 32)\n    normal @ C / 2\n}\n"
    error = syntax_error(text)
    assert error.message == "unexpected character `/`"
    assert (error.span.line, error.span.column) == position(text, "/")


def test_missing_colon_in_edge():
    """An edge without `:op` is reported at the token after the source, with what was expected."""
    text = "ops s = {none}\ncell c(x) {\n    n1 = x:s\n    n2 = n1 + x:s\n}\n"
    error = syntax_error(text)
    assert error.message == "unexpected `+`; expected `:`"
    assert (error.span.line, error.span.column) == (4, 13)
    assert error.hint.startswith("an edge is written `source:op`")


def test_keyword_as_node_name():
    """A keyword where a name belongs is an unexpected token, not a crash."""
    text = "ops s = {none}\ncell c(x) {\n    keep = x:s\n}\n"
    error = syntax_error(text)
    assert error.message == "unexpected `=`; expected an integer"
    assert (error.span.line, error.span.column) == position(text, "= x")


def test_unclosed_brace_points_past_the_last_token():
    """A file that ends inside a block is reported after its last character, not at a token."""
    text = "ops s = {none}\n\ncell c(x) {\n    n1 = x:s\n\n\n"
    error = syntax_error(text)
    assert error.message == "unexpected end of file"
    assert (error.span.line, error.span.column) == (4, len("    n1 = x:s") + 1)
    assert error.hint == "a `{` is not closed: every `{` needs its `}`"


def test_a_missing_cell_brace_names_the_line_that_opened_it():
    """A cell whose `}` is missing is reported at the `network` it swallows, naming the line of
    the cell's `{`, with the unclosed-brace hint (it used to ask for `=` after `network`)."""
    text = (
        "ops s = {none, skip_connect}\n\ncell c(x) {\n    n1 = x:s\n    out n1\n\n"
        "network n(C = 16) {\n    input(3, 8)\n    c @ C\n    head pool_linear(10)\n}\n"
    )
    error = syntax_error(text)
    assert error.message == "`network` inside the `{` opened at line 3: a `}` is missing before it"
    assert (error.span.line, error.span.column) == position(text, "network")
    assert error.hint == "a `{` is not closed: every `{` needs its `}`"


def test_early_end_gets_no_unrelated_hint():
    """A file that ends where no labelled example ends gets no hint rather than a wrong one."""
    error = syntax_error("cell c(x) {\n    n1 = x:s\n    out n1\n")
    assert error.message.startswith("unexpected end of file; expected ")
    assert (error.span.line, error.span.column) == (3, 11)
    assert error.hint is None


def test_end_of_file_after_keyword():
    """`ops` alone ends the file where a name is expected; the caret goes after `ops`."""
    error = syntax_error("ops")
    assert error.message == "unexpected end of file; expected a name"
    assert (error.span.line, error.span.column) == (1, 4)


def test_expected_tokens_are_listed():
    """An unexpected token lists what the parser would have accepted, in words."""
    error = syntax_error("cell c(x) reduction { }")
    assert error.message == "unexpected `reduction`; expected `{`, `with`"
    assert (error.span.line, error.span.column) == (1, 11)


def test_rendered_error_shows_file_line_and_caret():
    """The rendered error reads `FILE:LINE:COL: error: ...`, the line, and a caret at the column."""
    text = "# NB201 ops\n\nops nb201 {none, skip_connect}\n"
    error = syntax_error(text, "space.nas")
    lines = error.render().splitlines()
    assert lines[0] == "space.nas:3:11: error: unexpected `{`; expected `=`"
    assert lines[1] == "    ops nb201 {none, skip_connect}"
    assert lines[2] == "    " + " " * 10 + "^"
    assert lines[3] == "  hint: missing `=` in op set: write `ops NAME = {op, op}`"
    assert str(error) == error.render()


def test_rendered_caret_lines_up_after_a_tab():
    """A tab counts as one column, and the rendered line keeps the caret under the token."""
    text = "\tops nb201 {none}\n"
    error = syntax_error(text)
    assert (error.span.line, error.span.column) == (1, 12)
    source, caret = error.render().splitlines()[1:3]
    assert source[caret.index("^")] == "{"


def test_render_without_source_has_no_caret():
    """Without the source attached, the rendered error is the header line and the hint only."""
    with pytest.raises(NasSyntaxError) as info:
        parse_module("ops a {b}", "x.nas")
    error = info.value
    assert error.source is None
    assert error.render().splitlines() == [
        "x.nas:1:7: error: unexpected `{`; expected `=`",
        "  hint: missing `=` in op set: write `ops NAME = {op, op}`",
    ]


def test_render_shows_path_and_span_width():
    """A span with an end column draws a caret per character; the path follows the message."""
    error = NascError("bad op", span=Span(file="f.nas", line=1, column=5, end_line=1, end_column=8))
    error.path = "net.c.n1.edge[x]"
    error.source = "n1 = foo\n"
    assert error.render().splitlines() == [
        "f.nas:1:5: error: bad op (at net.c.n1.edge[x])",
        "    n1 = foo",
        "        ^^^",
    ]


def test_syntax_errors_are_nasc_errors():
    """Syntax errors derive from the one root, `NascError`."""
    assert issubclass(NasSyntaxError, NascError)
    with pytest.raises(NascError, match=re.escape("unexpected `3`")):
        parse_space("network n(C = 16) { 3 }")


def test_comments_and_semicolons_are_ignored():
    """`#` comments and stray `;` are skipped by the parser."""
    module = parse_module("# only a comment\nops a = {b, c,} # trailing\n")
    assert module.items == (nas_ast.OpSetDecl(name="a", ops=("b", "c"), op_spans=()),)
    cell = parse_module("cell c(x) { ; n1 = x:a; ; out n1; }").items[0]
    assert [type(item).__name__ for item in cell.body] == ["NodeDecl", "OutputDecl"]


def test_scaled_number_is_a_product():
    """`2C` is one token that multiplies, and decimals stay decimals so lowering can reject them."""
    network = parse_module("network n(C = 16, W = 2C, R = 1.5, E = 1e3) { }").items[0]
    defaults = {param.name: param.default for param in network.params}
    assert defaults["W"] == nas_ast.BinOp(
        op="*", left=nas_ast.Num(value=2), right=nas_ast.Ref(name="C")
    )
    assert defaults["R"] == nas_ast.Decimal(text="1.5")
    assert defaults["E"] == nas_ast.Decimal(text="1e3")


def test_operator_precedence_and_associativity():
    """`-` and `//` bind as in Python: left to right, products before sums."""
    network = parse_module("network n(X = 10 - 4 - 3 * 2 // 4) { }").items[0]
    assert nas_ast.evaluate(network.params[0].default, {}) == 10 - 4 - 3 * 2 // 4


def test_spans_point_at_names():
    """Syntax-tree spans point at the declared names, so semantic errors can too."""
    text = "ops s = {none}\ncell c(x:pre) with reduction {\n    n1 = x:s\n    out n1\n}\n"
    cell = parse_module(text, "f.nas").items[1]
    assert (cell.span.line, cell.span.column) == (2, 6)
    assert (cell.inputs[0].adapter_span.line, cell.inputs[0].adapter_span.column) == (2, 10)
    assert (cell.flag_spans[0].line, cell.flag_spans[0].column) == (2, 20)
    node = cell.body[0]
    assert (node.span.line, node.span.column) == (3, 5)
    assert (node.terms[0].op_span.line, node.terms[0].op_span.column) == (3, 12)
    assert node.span.file == "f.nas"


def test_preset_declaration():
    """`preset NAME` parses into its own declaration."""
    assert parse_module("preset darts").items == (nas_ast.PresetDecl(name="darts"),)


def test_overlong_number():
    """A number with thousands of digits is a syntax error at the number, not a Python error."""
    text = "network n(C = 16) {\n    input(3, " + "9" * 5000 + ")\n}\n"
    error = syntax_error(text)
    assert error.message == "a number with 5000 digits; nasc reads integers of at most 18"
    assert (error.span.line, error.span.column) == (2, 14)
    assert parse_module("network n(C = 999999999999999999) { }").items[0].params[0].default == (
        nas_ast.Num(value=999_999_999_999_999_999)
    )
    error = syntax_error("cell c(x) { keep " + "1" * 19 + " per edge }")
    assert error.message.startswith("a number with 19 digits")
