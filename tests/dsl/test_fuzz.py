"""Robustness of the language front end: any input gives a space or a `NascError`, quickly."""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nasc.dsl
from nasc.dsl import (
    NascError,
    NasSyntaxError,
    builtin_spaces,
    format_space,
    load_space,
    parse_space,
)
from nasc.dsl.ir import resolve_params

REFERENCES = {name: path.read_text() for name, path in sorted(builtin_spaces().items())}
TOKEN = re.compile(r"\s+|#[^\n]*|->|//|\w+|\S")
TOKENS = [
    "ops", "cell", "network", "preset", "with", "keep", "per", "of", "out", "concat", "input",
    "stem", "head", "aux", "repeat", "search", "train", "edge", "node", "reduction", "pool_bn",
    "x", "n1", "n2",
    "C", "N", "none", "skip_connect", "nor_conv_3x3", "sep_conv_3x3", "preprocess", "resblock",
    "pool_linear", "conv3x3_bn", "nb201", "darts", "0", "1", "2", "3", "16", "-1", "2C", "1.5",
    "1e3", "=", "{", "}", "(", ")", ",", ":", ";", "@", "->", "+", "-", "*", "//", "/", "%",
    "#", "\n", "\t", "é", "\x00",
]  # fmt: skip


def parses_or_fails_cleanly(text: str, catalog) -> None:
    """`text` parses to a space that round-trips through the printer, or raises a `NascError`."""
    try:
        space = parse_space(text, "fuzz.nas", catalog=catalog)
    except NascError as error:
        assert error.message
        assert error.source == text
        error.render()
        return
    assert parse_space(format_space(space), catalog=catalog) == space


@given(st.text(max_size=400))
def test_random_text(catalog, text):
    """Random text never raises anything but `NascError`."""
    parses_or_fails_cleanly(text, catalog)


@given(st.binary(max_size=400), st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_random_bytes(catalog, data, encoding):
    """Random bytes decoded as text never raise anything but `NascError`."""
    parses_or_fails_cleanly(data.decode(encoding, errors="replace"), catalog)


@given(st.lists(st.sampled_from(TOKENS), max_size=80), st.sampled_from([" ", "", "\n"]))
def test_random_token_soup(catalog, tokens, separator):
    """Sequences of the language's own tokens never raise anything but `NascError`."""
    parses_or_fails_cleanly(separator.join(tokens), catalog)


@st.composite
def mutations(draw):
    """A reference space with one to three random edits of characters or tokens."""
    name = draw(st.sampled_from(sorted(REFERENCES)))
    text = REFERENCES[name]
    for _ in range(draw(st.integers(1, 3))):
        tokens = TOKEN.findall(text)
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "token", "number", "insert"]))
        at = draw(st.integers(0, max(0, len(text) - 1)))
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)) :]
        elif kind == "duplicate":
            piece = text[at : at + draw(st.integers(1, 30))]
            text = text[:at] + piece + text[at:]
        elif kind == "swap":
            other = draw(st.integers(0, max(0, len(text) - 1)))
            chars = list(text)
            if chars:
                chars[at], chars[other] = chars[other], chars[at]
            text = "".join(chars)
        elif kind == "token":
            i = draw(st.integers(0, len(tokens) - 1))
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
            text = "".join(tokens)
        elif kind == "number":
            numbers = [i for i, token in enumerate(tokens) if token.isdigit()]
            if numbers:
                i = draw(st.sampled_from(numbers))
                value = draw(st.integers(-3, 10**6) | st.sampled_from([0, 1, 2, 3, 10**30]))
                tokens[i] = str(value)
            text = "".join(tokens)
        else:
            i = draw(st.integers(0, len(tokens)))
            tokens.insert(i, draw(st.sampled_from(TOKENS)) + draw(st.sampled_from([" ", ""])))
            text = "".join(tokens)
    return text


# Each example lints a whole reference space (twice, through the printer): half the profile's
# examples, which with the shape checks' reuse across identical cell instances keeps the test at
# a few seconds on two cores (a mutated repeat count once made single examples take seconds).
@settings(max_examples=max(10, settings().max_examples // 2))
@given(mutations())
def test_mutated_reference_spaces(catalog, text):
    """Random edits of the reference spaces never raise anything but `NascError`."""
    parses_or_fails_cleanly(text, catalog)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_every_one_token_deletion(catalog, name):
    """Deleting any one non-blank token of a reference space gives a space or a `NascError`."""
    tokens = TOKEN.findall(REFERENCES[name])
    for i in (i for i, token in enumerate(tokens) if not token.isspace()):
        parses_or_fails_cleanly("".join(tokens[:i] + tokens[i + 1 :]), catalog)


def _refused_before_parsing(monkeypatch, text: str, message: str) -> NasSyntaxError:
    """`parse_space(text)` raises `message` from the checks that run before the parser."""

    def parse_module(*args, **kwargs):
        raise AssertionError("the parser ran")

    monkeypatch.setattr(nasc.dsl, "parse_module", parse_module)
    with pytest.raises(NasSyntaxError, match=re.escape(message)) as info:
        parse_space(text, "big.nas")
    return info.value


def test_two_megabyte_file_is_refused_quickly(monkeypatch):
    """A 2 MB source is refused by size before any parsing."""
    text = "# padding\n" * (2 * 1024 * 1024 // 10)
    message = "the file is 2.1 MB; a .nas file is at most 1024 KiB"
    error = _refused_before_parsing(monkeypatch, text, message)
    assert (error.span.line, error.span.column) == (1, 1)


def test_two_megabyte_file_on_disk_is_refused_quickly(monkeypatch, tmp_path):
    """`load_space` refuses a 2 MB file by its size, without reading it as a space."""
    path = tmp_path / "huge.nas"
    path.write_text(REFERENCES["nb201"] + "#" * (2 * 1024 * 1024))
    monkeypatch.setattr(nasc.dsl, "parse_module", lambda *args: pytest.fail("the parser ran"))
    with pytest.raises(NasSyntaxError, match="a .nas file is at most 1024 KiB"):
        load_space(path)


@pytest.mark.parametrize("opening", ["(", "{", "["])
def test_deeply_nested_brackets_are_refused_quickly(monkeypatch, opening):
    """Brackets nested 100,000 deep give a syntax error at the 65th, before any parsing, not a
    RecursionError."""
    closing = {"(": ")", "{": "}", "[": "]"}[opening]
    text = "network n(C = " + opening * 100_000 + "1" + closing * 100_000 + ") { }"
    error = _refused_before_parsing(monkeypatch, text, "brackets nest more than 64 deep")
    assert (error.span.line, error.span.column) == (1, len("network n(C = ") + 64)


def _calls_to_refuse(text: str, message: str) -> tuple[int, NasSyntaxError]:
    """The function calls (Python and C) `parse_space(text)` makes before it raises `message`:
    a measure of its work that, unlike a clock, does not depend on the machine's load."""
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        calls += event in ("call", "c_call")

    previous = sys.getprofile()
    sys.setprofile(count)
    try:
        with pytest.raises(NasSyntaxError, match=re.escape(message)) as info:
            parse_space(text, "big.nas")
    finally:
        sys.setprofile(previous)
    return calls, info.value


@pytest.mark.parametrize("chain", ["-", "1 + ", "2 * ", "- 1 - ", "1 // "])
def test_long_operator_chains_are_refused_quickly(chain):
    """An operator chain too deep to walk gives a syntax error, not a RecursionError, after work
    linear in its length: twice the chain costs about twice the calls, not four times."""
    parse_space("network n(C = 1) { input(3, 8) head pool_linear(C) }")  # builds the parser
    calls = []
    for links in (1_500, 3_000):
        text = "network n(C = " + chain * links + "16) { input(3, 8) head pool_linear(C) }"
        count, error = _calls_to_refuse(text, "operators nests too deeply to parse")
        assert error.span.line == 1 and error.span.column > len("network n(C = ")
        assert error.span.column <= len("network n(C = ") + len(chain)
        calls.append(count)
    assert calls[1] < 2.5 * calls[0]


def test_moderate_operator_chains_still_work():
    """Chains of a few hundred operators parse, evaluate and print back."""
    text = "network n(C = " + "1 + " * 200 + "16, D = " + "-" * 200 + "3) {"
    text += " input(3, 8) head pool_linear(C + D) }"
    space = parse_space(text)
    assert parse_space(format_space(space)) == space
    assert resolve_params(space) == {"C": 216, "D": 3}


def test_nesting_within_the_limit_parses():
    """Sixty levels of parentheses are fine."""
    text = "network n(C = " + "(" * 60 + "16" + ")" * 60 + ") { input(3, 8) head pool_linear(C) }"
    assert parse_space(text).network.params[0].name == "C"


def test_brackets_in_comments_do_not_count_as_nesting():
    """A comment full of opening brackets is prose; the space parses."""
    text = "# " + "(" * 200 + "\nnetwork n(C = 16) { input(3, 8) head pool_linear(C) }"
    assert parse_space(text).network.params[0].name == "C"
