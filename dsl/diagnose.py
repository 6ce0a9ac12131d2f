"""Syntax errors explained: a failure of the parser becomes a `NasSyntaxError` at the right
place, with the hint of the labelled mistake (`mistakes.COMMON_MISTAKES`) that fails in the same
parser state, and with special cases the parser state misreads: a misspelt declaration word, a
missing `}`, a non-ASCII lookalike character, an expression nested too deeply."""

from __future__ import annotations

import functools
import re
import unicodedata

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .errors import NasSyntaxError, Span
from .grammar import parser, terminal_text
from .mistakes import COMMON_MISTAKES, LOOKALIKES

# Words that start a declaration, and invisible characters worth naming in an error.
DECLARATIONS = ("ops", "op", "cell", "network", "preset", "gates", "circuit")
INVISIBLE = {
    "\ufeff": "U+FEFF, a byte-order mark",
    "\u200b": "U+200B, a zero-width space",
    "\u00a0": "U+00A0, a no-break space",
}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEEP_HINT = next(hint for hint in COMMON_MISTAKES if hint.startswith("an expression this long"))
BOM_HINT = next(hint for hint in COMMON_MISTAKES if "byte-order mark" in hint)
SPELLING_HINT = next(hint for hint in COMMON_MISTAKES if hint.startswith("a declaration starts"))
UNCLOSED_HINT = next(hint for hint in COMMON_MISTAKES if hint.startswith("a `{` is not closed"))
CANDIDATES_HINT = next(h for h in COMMON_MISTAKES if h.startswith("`{ }` holds the candidate"))
OPSET_HINT = next(hint for hint in COMMON_MISTAKES if hint.startswith("an op set lists op names"))


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    return f"`{token}`"


def syntax_error(error: UnexpectedInput, text: str, file: str) -> NasSyntaxError:
    """The located error, with a hint where one is known, for a failure of the parser."""
    odd = _lookalike_error(error, text, file)
    if odd is not None:
        return odd
    line = getattr(error, "line", None)
    column = getattr(error, "column", None)
    # LALR reports the end of the input as a `$END` token placed at the last token; point past it.
    at_end = isinstance(error, UnexpectedToken) and error.token.type == "$END"
    if isinstance(error, UnexpectedEOF) or at_end or line in (None, -1):
        lines = text.rstrip().splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream]
        what = f"unexpected character `{char}`"
        if char in INVISIBLE:
            what = f"unexpected invisible character {INVISIBLE[char]}"
            if char == "\ufeff" and error.pos_in_stream == 0:
                return NasSyntaxError(what, span=Span(file=file, line=1, column=1), hint=BOM_HINT)
    elif isinstance(error, UnexpectedToken):
        what = f"unexpected {_describe(error.token)}"
        expected = sorted(
            name for name in error.accepts or error.expected if not name.startswith("__ANON")
        )
        if expected and len(expected) <= 6:
            what += "; expected " + ", ".join(terminal_text(name) for name in expected)
    else:
        what = "unexpected end of file"
    if isinstance(error, UnexpectedToken):
        special = _misspelt_or_unclosed(error, text, file)
        if special is not None:
            return special
    hint = None
    try:
        hint = _match_mistake(error)
    except Exception:  # noqa: BLE001 - a hint is a courtesy; never let it hide the real error
        hint = None
    if hint == UNCLOSED_HINT and _unclosed(text) is None:
        hint = None  # every `{` is closed: the parser state alone misled the match
    if hint in (CANDIDATES_HINT, OPSET_HINT) and isinstance(error, UnexpectedToken):
        hint = _braces_hint(text[: error.token.start_pos])
    return NasSyntaxError(what, span=Span(file=file, line=line, column=column), hint=hint)


def _braces_hint(before: str) -> str:
    """The hint for a mistake inside `{ }` of candidates: an op set's and a block choice's
    candidates share parser states, so the words before the open `{` tell them apart."""
    opened = _unclosed(before)
    if opened is not None and re.search(r"\bops\s+\w+\s*=\s*\Z", before[:opened]):
        return OPSET_HINT
    return CANDIDATES_HINT


def _lookalike_error(error: UnexpectedInput, text: str, file: str) -> NasSyntaxError | None:
    """The error for a non-ASCII character where the parser failed: in the unexpected character,
    or in the word of the unexpected token (`cеll` with a Cyrillic `е` lexes as the name `c`
    and fails there), reported at the character itself, with its Unicode name and the ASCII
    character it imitates."""
    if isinstance(error, UnexpectedCharacters):
        start = error.pos_in_stream
    elif isinstance(error, UnexpectedToken) and error.token.type != "$END":
        start = getattr(error.token, "start_pos", None)
    else:
        return None
    if start is None:
        return None
    index = start
    while index < len(text) and (text[index].isalnum() or text[index] == "_"):
        if not text[index].isascii():
            break
        index += 1
    if index >= len(text) or text[index].isascii() or text[index] in INVISIBLE:
        return None
    char = text[index]
    word_start, word_end = index, index + 1
    while word_start > 0 and (text[word_start - 1].isalnum() or text[word_start - 1] == "_"):
        word_start -= 1
    while word_end < len(text) and (text[word_end].isalnum() or text[word_end] == "_"):
        word_end += 1
    word = text[word_start:word_end]
    name = unicodedata.name(char, "a character without a name")
    what = f"unexpected character `{char}` (U+{ord(char):04X} {name}"
    like = _lookalike(char)
    what += f", which looks like `{like}`)" if like else ")"
    if like and like.isdigit():
        hint = "numbers are written in ASCII digits (0-9): retype the number"
    elif word and word != char:
        hint = (
            f"names and keywords are ASCII letters, digits and `_`: retype `{word}` in ASCII "
            "(only comments may hold other characters)"
        )
    else:
        hint = "outside comments a .nas file is ASCII: retype the character"
    line, column = _position(text, index)
    span = Span(file=file, line=line, column=column, end_line=line, end_column=column + 1)
    return NasSyntaxError(what, span=span, hint=hint)


def _lookalike(char: str) -> str | None:
    """The ASCII letter or digit that `char` imitates, if any: a Cyrillic or Greek lookalike, a
    full-width form, or an accented letter's base."""
    if char in LOOKALIKES:
        return LOOKALIKES[char]
    for form in ("NFKC", "NFKD"):
        base = unicodedata.normalize(form, char)[:1]
        if base.isascii() and base.isalnum():
            return base
    return None


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _misspelt_or_unclosed(error: UnexpectedToken, text: str, file: str) -> NasSyntaxError | None:
    """Two mistakes the parser state misreads: a misspelt declaration word (`opss` lexes as
    `ops` and a name `s`, so the parser asks for `=`), and a cell or network whose `}` is
    missing (the next `network` is read as a node name, so the parser asks for `=` at the line
    after it)."""
    end = getattr(error.token, "start_pos", None)
    if end is None or error.token.type == "$END":
        return None
    before = list(_WORD.finditer(_without_comments(text[:end])))[-2:]
    for word in before:
        name = word[0]
        keyword = next(
            (k for k in DECLARATIONS if name.startswith(k) and name not in DECLARATIONS), None
        )
        if keyword is not None and _starts_declaration(text[: word.start()]):
            line, column = _position(text, word.start())
            return NasSyntaxError(
                f"unknown word `{name}`; did you mean `{keyword}`?",
                span=Span(
                    file=file,
                    line=line,
                    column=column,
                    end_line=line,
                    end_column=column + len(name),
                ),
                hint=SPELLING_HINT,
            )
    if before and before[-1][0] in DECLARATIONS:
        word = before[-1]
        opened = _unclosed(text[: word.start()])
        if opened is not None:
            line, column = _position(text, word.start())
            where, _ = _position(text, opened)
            return NasSyntaxError(
                f"`{word[0]}` inside the `{{` opened at line {where}: a `}}` is missing before it",
                span=Span(
                    file=file,
                    line=line,
                    column=column,
                    end_line=line,
                    end_column=column + len(word[0]),
                ),
                hint=UNCLOSED_HINT,
            )
    return None


def _starts_declaration(text: str) -> bool:
    """Whether a word after `text` stands where a declaration begins (top level, after the
    start of the file, a `}` or a `preset NAME`)."""
    text = _without_comments(text)
    return _depth(text) == 0 and re.search(r"(\A|\}|\bpreset\s+\w+)\s*\Z", text) is not None


def _without_comments(text: str) -> str:
    return re.sub(r"#[^\n]*", lambda m: " " * len(m[0]), text)


def _depth(text: str) -> int:
    text = _without_comments(text)
    return text.count("{") - text.count("}")


def _unclosed(text: str) -> int | None:
    """The index of the last `{` in `text` that no `}` closes, or None."""
    stack = []
    for index, char in enumerate(_without_comments(text)):
        if char == "{":
            stack.append(index)
        elif char == "}" and stack:
            stack.pop()
    return stack[-1] if stack else None


@functools.lru_cache(maxsize=1)
def _mistake_states() -> tuple[tuple[str, UnexpectedInput], ...]:
    """Each labelled example with the error it fails with (parsed once)."""
    failures = []
    for hint, examples in COMMON_MISTAKES.items():
        for example in examples:
            try:
                parser().parse(example)
            except UnexpectedInput as error:
                failures.append((hint, error))
    return tuple(failures)


def _match_mistake(error: UnexpectedInput) -> str | None:
    """The hint of the labelled mistake that fails in the same parser state as `error`.

    Lark's `match_examples` does this, but also compares the depth of the parse stack, which
    grows with every declaration and statement before the mistake: it only ever matched mistakes
    in the first statement of a one-declaration file. The LALR state alone says what the parser
    expected. An example that fails on the same token wins, then one that fails on the same kind
    of token, then one that only shares the state; a file that ends early is not matched by state
    alone, and a bad character only matches bad characters.
    """
    state = getattr(error.state, "position", None)
    if state is None:
        return None
    same_type = same_state = None
    for hint, example in _mistake_states():
        if type(example) is not type(error) or getattr(example.state, "position", None) != state:
            continue
        if isinstance(error, UnexpectedToken):
            if example.accepts != error.accepts:
                continue
            if example.token == error.token and example.token.type == error.token.type:
                return hint
            if example.token.type == error.token.type:
                same_type = same_type or hint
            elif error.token.type != "$END":
                same_state = same_state or hint
        else:
            same_state = same_state or hint
    return same_type or same_state


def too_deep(text: str, file: str) -> NasSyntaxError:
    """The error for an expression too long to read, placed at the first operator of the longest
    chain of them."""
    best_count, best_at = 0, 0
    for match in re.finditer(r"[^\n{};]+", _without_comments(text)):
        operators = list(re.finditer(r"//|[-+*]", match[0]))
        if len(operators) > best_count:
            best_count, best_at = len(operators), match.start() + operators[0].start()
    line, column = _position(text, best_at)
    return NasSyntaxError(
        f"an expression of {best_count:,} operators nests too deeply to parse",
        span=Span(file=file, line=line, column=column),
        hint=DEEP_HINT,
    )
