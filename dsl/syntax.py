"""The parser: `.nas` text to the syntax tree (its failures explained by `diagnose`)."""

from __future__ import annotations

import re

import attrs
from lark import Transformer, Tree, v_args
from lark.exceptions import UnexpectedInput, VisitError

from . import ast
from .circuits import CircuitTransformer
from .diagnose import syntax_error, too_deep
from .errors import NascError, NasSyntaxError, Span
from .grammar import parser
from .mistakes import COMMON_MISTAKES, ONE_WIDTH_HINT

# Integers in a space are widths, depths and counts. Longer literals are refused here (Python also
# refuses to convert more than 4300 digits), and `ast.evaluate` bounds what arithmetic makes.
MAX_DIGITS = 18

PARAMETRIC_HINT = next(h for h in COMMON_MISTAKES if h.startswith("a candidate's arguments"))


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

    def width_set(self, meta, *values):
        values = [value for value in values if value is not None]
        if len(values) < 2:
            raise NasSyntaxError(
                "unexpected `{`: one width in braces",
                span=self._s(meta),
                hint=ONE_WIDTH_HINT,
            )
        return ast.WidthSet(values=values, span=self._s(meta))

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
            widths = ast.width_sets(arg)
            if widths:
                raise NasSyntaxError(
                    f"a choice among widths in the candidate `{name}`",
                    span=widths[0].span or self._s(meta),
                    path=f"ops.{name}",
                    hint="a candidate's arguments are fixed integers; to search an op "
                    "parameter, place the op as a block with the choice in its call: "
                    f"`{name}(C, {{3, 6}}, 5)`",
                )
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

    def op_product(self, meta, body, other):
        return ast.OpProduct(body=body, other=other, span=self._s(meta))

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

    def out_mean(self, meta, *names):
        names = [name for name in names if name is not None]
        return ast.OutputDecl(
            nodes=[str(name) for name in names], concat=False, mean=True, span=self._s(meta)
        )

    def next_state(self, meta, state, node):
        return ast.NextDecl(
            state=str(state), node=str(node), span=self._s(state), node_span=self._s(node)
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

    def input_kind(self, meta, kind, size):
        if str(kind) not in ("tokens", "sequence"):
            raise NasSyntaxError(
                f"unknown input `{kind}`",
                span=self._s(kind),
                hint="a network reads images, `input(channels, size)`, token sequences, "
                "`input tokens(vocabulary)`, or sequences of vectors, `input sequence(features)`",
            )
        return ast.MacroDecl(kind="input", args=[size], label=str(kind), span=self._s(meta))

    def _call_stmt(kind):  # noqa: N805 - a factory for the four call statements below
        def method(self, meta, call, reads=None):
            return ast.MacroDecl(kind=kind, call=call, span=self._s(meta), **(reads or {}))

        return method

    stem_stmt = _call_stmt("stem")
    head_stmt = _call_stmt("head")
    aux_stmt = _call_stmt("aux")
    block_stmt = _call_stmt("block")

    def repeat_stmt(self, meta, count, cell, width, at=None, reads=None):
        return ast.MacroDecl(
            kind="cells",
            cell=str(cell),
            width=width,
            repeat=count,
            at=at,
            span=self._s(meta),
            cell_span=self._s(cell),
            **(reads or {}),
        )

    def repeat_block_stmt(self, meta, count, call, reads=None):
        return ast.MacroDecl(
            kind="block", call=call, repeat=count, span=self._s(meta), **(reads or {})
        )

    def cell_stmt(self, meta, cell, width, at=None, reads=None):
        return self.repeat_stmt(meta, ast.Num(value=1), cell, width, at, reads)

    def at(self, meta, expr):
        return expr

    def source_name(self, meta, name):
        return (str(name), self._s(name))

    def source_all(self, meta):
        return (ast.ALL, self._s(meta))

    def reads(self, meta, *sources):
        sources = [source for source in sources if source is not None]
        return {
            "sources": [name for name, _ in sources],
            "source_spans": [span for _, span in sources],
        }

    def named_stmt(self, meta, name, statement):
        return attrs.evolve(statement, name=str(name), name_span=self._s(name), span=self._s(meta))

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

    def choose_stmt(self, meta, choice, reads=None):
        return attrs.evolve(choice, span=self._s(meta), **(reads or {}))

    def repeat_choose_stmt(self, meta, count, choice, reads=None):
        return attrs.evolve(choice, repeat=count, span=self._s(meta), **(reads or {}))

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


def parse_module(text: str, file: str = "<string>") -> ast.Module:
    """Parse `.nas` text into its syntax tree.

    Raises:
        NasSyntaxError: with the line, column and, for a known mistake, a hint.
    """
    try:
        tree = parser().parse(text)
        items = _ToAst(file, text).transform(tree)  # recursive: a long operator chain nests deeply
    except UnexpectedInput as error:
        raise syntax_error(error, text, file) from None
    except (RecursionError, VisitError) as error:
        cause = error.orig_exc if isinstance(error, VisitError) else error
        if isinstance(cause, NascError):  # raised by `_ToAst`, e.g. for a too long number
            raise cause from None
        if not isinstance(cause, RecursionError):
            raise
        raise too_deep(text, file) from None
    return ast.Module(items=items, file=file)
