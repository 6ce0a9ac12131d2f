"""The parser: `.nas` text to the syntax tree, with labelled hints for common mistakes."""

from __future__ import annotations

import functools
import re
import unicodedata

import attrs
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from . import ast
from .circuits import CircuitTransformer
from .errors import NascError, NasSyntaxError, Span
from .mistakes import COMMON_MISTAKES, LOOKALIKES  # matched by parser state in `_match_mistake`

# Integers in a space are widths, depths and counts. Longer literals are refused here (Python also
# refuses to convert more than 4300 digits), and `ast.evaluate` bounds what arithmetic makes.
MAX_DIGITS = 18

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
PARAMETRIC_HINT = next(h for h in COMMON_MISTAKES if h.startswith("a candidate's arguments"))
UNCLOSED_HINT = next(hint for hint in COMMON_MISTAKES if hint.startswith("a `{` is not closed"))
CANDIDATES_HINT = next(h for h in COMMON_MISTAKES if h.startswith("`{ }` holds the candidate"))
OPSET_HINT = next(hint for hint in COMMON_MISTAKES if hint.startswith("an op set lists op names"))


def _load_parser() -> Lark:
    return Lark.open(
        "nas.lark",
        rel_to=__file__,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
    )


@functools.lru_cache(maxsize=1)
def parser() -> Lark:
    """The LALR parser for the `.nas` grammar (built once)."""
    return _load_parser()


def _span(file: str, meta_or_token) -> Span:
    line = getattr(meta_or_token, "line", None) or 1
    column = getattr(meta_or_token, "column", None) or 1
    return Span(
        file=file,
        line=line,
        column=column,
        end_line=getattr(meta_or_token, "end_line", None),
        end_column=getattr(meta_or_token, "end_column", None),
    )


@v_args(meta=True, inline=True)
class _ToAst(CircuitTransformer, Transformer):
    """Lark tree to `ast` classes, keeping spans."""

    def __init__(self, file: str, text: str = ""):
        super().__init__()
        self.file = file
        self.text = text

    def _s(self, meta_or_token) -> Span:
        return _span(self.file, meta_or_token)

    def _int(self, digits: str, token) -> int:
        if len(digits) > MAX_DIGITS:
            raise NasSyntaxError(
                f"a number with {len(digits)} digits; nasc reads integers of at most {MAX_DIGITS}",
                span=self._s(token),
                hint="widths, depths and counts are small integers",
            )
        return int(digits)

    # ---- expressions
    def num(self, meta, token):
        return ast.Num(value=self._int(token, token), span=self._s(token))

    def decimal(self, meta, token):
        return ast.Decimal(text=str(token), span=self._s(token))

    def scaled(self, meta, token):
        digits, name = re.fullmatch(r"([0-9]+)(.*)", str(token)).groups()
        span = self._s(token)
        return ast.BinOp(
            op="*",
            left=ast.Num(value=self._int(digits, token), span=span),
            right=ast.Ref(name=name, span=span),
            span=span,
        )

    def ref(self, meta, token):
        return ast.Ref(name=str(token), span=self._s(token))

    def _binop(op):  # noqa: N805 - a factory for the four operator rules below
        def method(self, meta, left, right):
            return ast.BinOp(op=op, left=left, right=right, span=self._s(meta))

        return method

    add = _binop("+")
    sub = _binop("-")
    mul = _binop("*")
    floordiv = _binop("//")

    def neg(self, meta, operand):
        return ast.Neg(operand=operand, span=self._s(meta))

    # ---- top level
    def preset(self, meta, name):
        return ast.PresetDecl(name=str(name), span=self._s(meta))

    def opset(self, meta, name, *ops):
        names = [op for op in ops if op is not None]
        return ast.OpSetDecl(
            name=str(name),
            ops=[op for op, _ in names],
            op_spans=[span for _, span in names],
            span=self._s(meta),
        )

    # ---- op references and definitions
    def op_name(self, meta, name):
        return (str(name), self._s(name))

    def op_args(self, meta, name, *args):
        values = []
        for arg in args:
            if arg is None:
                continue
            refs = ast.expr_names(arg)
            if refs:
                # A candidate is named by its arguments (`mbconv(6,5)`), so they are fixed
                # integers; where the op is placed gives it its widths and stride.
                raise NasSyntaxError(
                    f"the argument `{refs[0].name}` of the candidate `{name}` is not an integer",
                    span=refs[0].span or self._s(meta),
                    path=f"ops.{name}",
                    hint=PARAMETRIC_HINT,
                )
            values.append(
                ast.evaluate(arg, {}, what=f"an argument of `{name}`", path=f"ops.{name}")
            )
        return (ast.op_name(str(name), values), self._s(meta))

    def op_params(self, meta, *names):
        return [str(name) for name in names if name is not None]

    def op_flag(self, meta, name, value):
        return (str(name), None if value is None else self._int(value, value))

    def op_flags(self, meta, *flags):
        return ("flags", [flag for flag in flags if flag is not None])

    def op_prim(self, meta, name):
        return ast.OpCall(name=str(name), span=self._s(name))

    def op_call(self, meta, name, *args):
        call = self.call(meta, name, *args)
        return ast.OpCall(name=call.op, args=call.args, kwargs=call.kwargs, span=self._s(name))

    def op_item(self, meta, label, body):
        return ast.OpItem(
            label=None if label is None else str(label), body=body, span=self._s(meta)
        )

    def op_seq(self, meta, *items):
        return ast.OpSeq(items=[item for item in items if item is not None], span=self._s(meta))

    def op_residual(self, meta, body, shortcut):
        return ast.OpResidual(body=body, shortcut=shortcut, span=self._s(meta))

    def op_if(self, meta, cond, then, otherwise):
        return ast.OpIf(cond=cond, then=then, otherwise=otherwise, span=self._s(meta))

    def comparison(self, meta, left, op, right):
        return ast.Compare(op=str(op), left=left, right=right, span=self._s(meta))

    def cond_and(self, meta, left, right):
        return ast.BoolOp(op="and", left=left, right=right, span=self._s(meta))

    def cond_or(self, meta, left, right):
        return ast.BoolOp(op="or", left=left, right=right, span=self._s(meta))

    def opdef(self, meta, name, params, flags, body):
        text = self.text[meta.start_pos : meta.end_pos] if self.text else ""
        return ast.OpDef(
            name=str(name),
            params=params or [],
            flags=flags[1] if flags else [],
            body=body,
            text=text,
            doc=_doc_above(self.text, meta.start_pos) if self.text else "",
            span=self._s(name),
        )

    # ---- cells
    def cell_input(self, meta, name, adapter):
        return ast.CellInput(
            name=str(name),
            adapter=None if adapter is None else str(adapter),
            span=self._s(name),
            adapter_span=None if adapter is None else self._s(adapter),
        )

    def cell_flags(self, meta, *flags):
        return [flag for flag in flags if flag is not None]

    def cell(self, meta, name, *rest):
        inputs, flags, body = [], [], []
        for item in rest:
            if isinstance(item, ast.CellInput):
                inputs.append(item)
            elif isinstance(item, list):
                flags = item
            elif item is not None and not isinstance(item, Tree):
                body.append(item)
        return ast.CellDecl(
            name=str(name),
            inputs=inputs,
            flags=[str(flag) for flag in flags],
            flag_spans=[self._s(flag) for flag in flags],
            body=body,
            span=self._s(name),
        )

    def term(self, meta, source, op):
        name, span = op
        return ast.Term(source=str(source), op=name, span=self._s(meta), op_span=span)

    def _node(combine):  # noqa: N805 - a factory for the four node rules below
        def method(self, meta, name, *terms):
            return ast.NodeDecl(
                name=str(name),
                combine=combine,
                terms=[term for term in terms if term is not None],
                span=self._s(name),
            )

        return method

    node_single = _node("sum")
    node_sum = _node("sum")
    node_product = _node("product")
    node_concat = _node("concat")

    def keep_per(self, meta, k, per):
        return ast.KeepDecl(
            k=self._int(k, k), per=str(per), span=self._s(meta), per_span=self._s(per)
        )

    def edge_ref(self, meta, source, target):
        return (str(source), str(target), self._s(meta))

    def keep_of(self, meta, k, *refs):
        refs = [ref for ref in refs if ref is not None]
        return ast.KeepDecl(
            k=self._int(k, k),
            edges=[(source, target) for source, target, _ in refs],
            edge_spans=[span for _, _, span in refs],
            span=self._s(meta),
        )

    def out_single(self, meta, name):
        return ast.OutputDecl(nodes=[str(name)], concat=False, span=self._s(meta))

    def out_concat(self, meta, *names):
        names = [name for name in names if name is not None]
        return ast.OutputDecl(
            nodes=[str(name) for name in names],
            concat=True,
            span=self._s(meta),
        )

    def empty(self, meta):
        return None

    # ---- network
    def param(self, meta, name, default):
        return ast.ParamDecl(name=str(name), default=default, span=self._s(name))

    def kwarg(self, meta, name, value):
        return (str(name), value, self._s(name))

    def call(self, meta, name, *args):
        positional, keywords, spans = [], [], []
        for arg in args:
            if arg is None:
                continue
            if not isinstance(arg, tuple):
                positional.append(arg)
                continue
            key, value, span = arg
            if any(key == given for given, _ in keywords):
                raise NasSyntaxError(
                    f"the keyword argument `{key}` is given twice in `{name}(...)`",
                    span=span,
                    hint=f"give `{key}` once; with two values nasc cannot tell which one you mean",
                )
            keywords.append((key, value))
            spans.append(span)
        return ast.CallDecl(
            op=str(name), args=positional, kwargs=keywords, span=self._s(name), kwarg_spans=spans
        )

    def input_stmt(self, meta, channels, size):
        return ast.MacroDecl(kind="input", args=[channels, size], span=self._s(meta))

    def _call_stmt(kind):  # noqa: N805 - a factory for the four call statements below
        def method(self, meta, call):
            return ast.MacroDecl(kind=kind, call=call, span=self._s(meta))

        return method

    stem_stmt = _call_stmt("stem")
    head_stmt = _call_stmt("head")
    aux_stmt = _call_stmt("aux")
    block_stmt = _call_stmt("block")

    def repeat_stmt(self, meta, count, cell, width):
        return ast.MacroDecl(
            kind="cells",
            cell=str(cell),
            width=width,
            repeat=count,
            span=self._s(meta),
            cell_span=self._s(cell),
        )

    def repeat_block_stmt(self, meta, count, call):
        return ast.MacroDecl(kind="block", call=call, repeat=count, span=self._s(meta))

    def cell_stmt(self, meta, cell, width):
        return ast.MacroDecl(
            kind="cells",
            cell=str(cell),
            width=width,
            repeat=ast.Num(value=1),
            span=self._s(meta),
            cell_span=self._s(cell),
        )

    def shared(self, meta):
        return True

    def choice_named(self, meta, name):
        return {"opset": str(name), "cell_span": self._s(name)}

    def choice_inline(self, meta, *refs):
        # Candidates are op references as in an `ops` set: `resblock` or `mbconv(6, 5)`.
        refs = [ref for ref in refs if ref is not None]
        return {
            "ops": [name for name, _ in refs],
            "op_spans": [span for _, span in refs],
            "cell_span": self._s(meta),
        }

    def choice(self, meta, shared, label, candidates, width, stride):
        return ast.MacroDecl(
            kind="choice",
            label=str(label) if label is not None else None,
            shared=bool(shared),
            width=width,
            stride=stride,
            span=self._s(meta),
            **candidates,
        )

    def choose_stmt(self, meta, choice):
        return attrs.evolve(choice, span=self._s(meta))

    def repeat_choose_stmt(self, meta, count, choice):
        return attrs.evolve(choice, repeat=count, span=self._s(meta))

    def search_only(self, meta, statement):
        return attrs.evolve(statement, phase="search", span=self._s(meta))

    def train_only(self, meta, statement):
        return attrs.evolve(statement, phase="train", span=self._s(meta))

    def network(self, meta, name, *rest):
        params = [item for item in rest if isinstance(item, ast.ParamDecl)]
        body = [item for item in rest if isinstance(item, ast.MacroDecl)]
        return ast.NetworkDecl(name=str(name), params=params, body=body, span=self._s(name))

    def start(self, meta, *items):
        return list(items)


def _doc_above(text: str, start: int) -> str:
    """The `#` comment lines right above position `start`, joined: an op definition's doc.

    Only the lines directly above count: a blank line ends the doc, so a file header or a
    section title separated from the op by a blank line does not document it.
    """
    before, _, same_line = text[:start].rpartition("\n")
    if same_line.strip():  # something else precedes the definition on its line
        return ""
    lines = before.split("\n")  # not splitlines(), which drops a last blank line
    doc = []
    while lines and lines[-1].lstrip().startswith("#"):
        doc.insert(0, lines.pop().lstrip()[1:].strip())
    return " ".join(part for part in doc if part)


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    return f"`{token}`"


def _syntax_error(error: UnexpectedInput, text: str, file: str) -> NasSyntaxError:
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
            what += "; expected " + ", ".join(_terminal_text(name) for name in expected)
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


def _terminal_text(name: str) -> str:
    terminal = next((t for t in parser().terminals if t.name == name), None)
    if terminal is not None and terminal.pattern.type == "str":
        return f"`{terminal.pattern.value}`"
    words = {
        "NAME": "a name",
        "INT": "an integer",
        "DECIMAL": "a number",
        "SCALED": "a scaled parameter such as `2C`",
        "$END": "the end of the file",
    }
    return words.get(name, name.lower())


def parse_module(text: str, file: str = "<string>") -> ast.Module:
    """Parse `.nas` text into its syntax tree.

    Raises:
        NasSyntaxError: with the line, column and, for a known mistake, a hint.
    """
    try:
        tree = parser().parse(text)
        items = _ToAst(file, text).transform(tree)  # recursive: a long operator chain nests deeply
    except UnexpectedInput as error:
        raise _syntax_error(error, text, file) from None
    except (RecursionError, VisitError) as error:
        cause = error.orig_exc if isinstance(error, VisitError) else error
        if isinstance(cause, NascError):  # raised by `_ToAst`, e.g. for a too long number
            raise cause from None
        if not isinstance(cause, RecursionError):
            raise
        raise _too_deep(text, file) from None
    return ast.Module(items=items, file=file)


def _too_deep(text: str, file: str) -> NasSyntaxError:
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
