"""The syntax tree of a `.nas` file: frozen attrs classes that mirror the grammar, with spans.

Integer expressions (`2C`, `layers // 3 - 1`) are shared with the IR, which keeps them symbolic so
the printer can write them back and `-D` overrides can change the parameters they use.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator, Mapping
from typing import Union

import attrs

from .errors import NasSemanticError, Span

MAX_INT = 2**63 - 1  # arithmetic beyond this is refused, so values print and nothing blows up


def _tuple(value) -> tuple:
    return tuple(value)


def _span_field():
    # Spans say where a thing was written; they are not part of what it means, so equality
    # (used by the print/parse round trip) ignores them.
    return attrs.field(default=None, eq=False, repr=False)


# --- integer expressions -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Num:
    """An integer literal."""

    value: int
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class Decimal:
    """A decimal literal; only kept so that lowering can say that parameters must be integers."""

    text: str
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class Ref:
    """A reference to a network parameter."""

    name: str
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class BinOp:
    """`left OP right` with OP one of `+ - * //`."""

    op: str = attrs.field(validator=attrs.validators.in_(("+", "-", "*", "//")))
    left: Expr
    right: Expr
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class Neg:
    """`-operand`."""

    operand: Expr
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class WidthSet:
    """`{8, 16, 24}`: a choice among widths where the language takes a width (docs/language.md,
    section 23). It is searched like a block choice; outside a search it takes its largest value.

    Attributes:
        values: the candidate widths, integer expressions of the network's parameters.
        label: the choice's name: the parameter whose default it is (`network n(C1 = {8, 16})`),
            else `width1`, `width2`, ... in the order of the network's statements (set when the
            file is lowered).
    """

    values: tuple[Expr, ...] = attrs.field(converter=_tuple)
    label: str | None = None
    span: Span | None = _span_field()


Expr = Union[Num, Decimal, Ref, BinOp, Neg, WidthSet]

# The width each width choice takes while a network is resolved (`chosen_widths`); a choice that
# is not named takes its largest width, which is what the supernet is built at.
_CHOSEN: contextvars.ContextVar[Mapping[str, int] | None] = contextvars.ContextVar(
    "widths", default=None
)


@contextlib.contextmanager
def chosen_widths(widths: Mapping[str, int]) -> Iterator[None]:
    """Evaluate width choices at these widths (by label) inside the block: the macro resolved at
    one width of each choice, as the compiler and the genotype checks need it."""
    token = _CHOSEN.set({**(_CHOSEN.get() or {}), **widths})
    try:
        yield
    finally:
        _CHOSEN.reset(token)


def width_sets(expr: Expr | None) -> list[WidthSet]:
    """The width choices written inside an expression, outermost first."""
    if isinstance(expr, WidthSet):
        return [expr, *(inner for value in expr.values for inner in width_sets(value))]
    if isinstance(expr, BinOp):
        return width_sets(expr.left) + width_sets(expr.right)
    if isinstance(expr, Neg):
        return width_sets(expr.operand)
    return []


def map_width_sets(expr: Expr | None, change) -> Expr | None:
    """The expression with every width choice replaced by `change(choice)`."""
    if isinstance(expr, WidthSet):
        return change(expr)
    if isinstance(expr, BinOp):
        return attrs.evolve(
            expr, left=map_width_sets(expr.left, change), right=map_width_sets(expr.right, change)
        )
    if isinstance(expr, Neg):
        return attrs.evolve(expr, operand=map_width_sets(expr.operand, change))
    return expr


def expr_names(expr: Expr) -> list[Ref]:
    """The parameter references inside an expression, in reading order."""
    if isinstance(expr, Ref):
        return [expr]
    if isinstance(expr, WidthSet):
        return [ref for value in expr.values for ref in expr_names(value)]
    if isinstance(expr, BinOp):
        return expr_names(expr.left) + expr_names(expr.right)
    if isinstance(expr, Neg):
        return expr_names(expr.operand)
    return []


def evaluate(
    expr: Expr, env: dict[str, int], *, what: str = "expression", path: str | None = None
) -> int:
    """Evaluate an integer expression with the parameter values in `env`.

    Args:
        what: names the expression in errors, e.g. "the width of `normal`".
        path: the dotted path errors carry, e.g. `darts.params.C`.

    Raises:
        NasSemanticError: for an unknown parameter, a decimal, a division by zero, or a result
            beyond `MAX_INT` in magnitude.
    """
    if isinstance(expr, Num):
        return expr.value
    if isinstance(expr, Decimal):
        raise NasSemanticError(
            f"{what} must be an integer, not {expr.text}",
            span=expr.span,
            path=path,
            hint="nasc works in whole channels and cells: write an integer",
        )
    if isinstance(expr, Ref):
        if expr.name not in env:
            known = ", ".join(sorted(env)) or "none"
            hint = (
                f"declare it in the network header, e.g. `network net({expr.name} = 16)`; "
                f"known parameters: {known}"
            )
            if re.fullmatch(r"_[0-9_]*", expr.name):  # `1_6` lexes as 1 times a parameter `_6`
                hint = (
                    "integers are plain ASCII digits: `1_6` is 1 times a parameter `_6`, not "
                    f"16; leave the `_` out. Else {hint}"
                )
            raise NasSemanticError(
                f"unknown parameter `{expr.name}` in {what}",
                span=expr.span,
                path=path,
                hint=hint,
            )
        return env[expr.name]
    if isinstance(expr, Neg):
        return -evaluate(expr.operand, env, what=what, path=path)
    if isinstance(expr, WidthSet):
        values = [evaluate(value, env, what=what, path=path) for value in expr.values]
        chosen = (_CHOSEN.get() or {}).get(expr.label) if expr.label is not None else None
        if chosen is None:
            return max(values)
        if chosen not in values:
            raise NasSemanticError(
                f"{chosen} is not a width of the choice `{expr.label}` in {what}",
                span=expr.span,
                path=path,
                hint=f"its widths: {', '.join(map(str, values))}",
            )
        return chosen
    left = evaluate(expr.left, env, what=what, path=path)
    right = evaluate(expr.right, env, what=what, path=path)
    if expr.op == "+":
        result = left + right
    elif expr.op == "-":
        result = left - right
    elif expr.op == "*":
        result = left * right
    elif right == 0:
        raise NasSemanticError(f"division by zero in {what}", span=expr.span, path=path)
    else:
        result = left // right
    if abs(result) > MAX_INT:
        raise NasSemanticError(
            f"{what} is out of range: its arithmetic goes beyond 2**63",
            span=expr.span,
            path=path,
            hint="widths, depths and counts are small integers",
        )
    return result


# --- op definitions ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Compare:
    """`left OP right` with OP one of `== != < <= > >=`, in an op body's condition."""

    op: str
    left: Expr
    right: Expr
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class BoolOp:
    """`left and right`, `left or right`."""

    op: str = attrs.field(validator=attrs.validators.in_(("and", "or")))
    left: Cond
    right: Cond
    span: Span | None = _span_field()


Cond = Union[Compare, BoolOp]


@attrs.frozen(kw_only=True)
class OpCall:
    """A primitive or an op in a body: `relu`, `conv(3, stride = stride)`, `mbconv(6, 3)`."""

    name: str
    args: tuple[Expr, ...] = attrs.field(default=(), converter=_tuple)
    kwargs: tuple[tuple[str, Expr], ...] = attrs.field(default=(), converter=_tuple)
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class OpItem:
    """One step of a sequence, optionally labelled (`conv_a: ...` names its module)."""

    label: str | None
    body: OpBody
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class OpSeq:
    """`a -> b -> c`."""

    items: tuple[OpItem, ...] = attrs.field(converter=_tuple)
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class OpResidual:
    """`residual(body)`: body plus its input when shapes allow; `residual(body, shortcut)`: the
    sum of the two."""

    body: OpSeq
    shortcut: OpSeq | None = None
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class OpIf:
    """`if COND then A else B`, decided when the op is built."""

    cond: Cond
    then: OpBody
    otherwise: OpBody
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class OpProduct:
    """`product(body)`: the input times the body's output; `product(body, other)`: the product of
    the two. Either factor may be a gate, a map pooled to 1x1 (`global_pool -> ...`), which
    multiplies every pixel of the other."""

    body: OpSeq
    other: OpSeq | None = None
    span: Span | None = _span_field()


OpBody = Union[OpCall, OpSeq, OpResidual, OpProduct, OpIf]


@attrs.frozen(kw_only=True)
class OpDef:
    """`op NAME(params) [with flags] = body`.

    Attributes:
        flags: `head` (the op ends in class scores), `per_pixel` (a head that ends in a map of
            class scores), `resampling` (an adapter for any power-of-two scale) and `stride N`
            (a fixed reduction).
        text: the definition as written, which the printer writes back.
        doc: the comment lines right above the definition.
    """

    name: str
    params: tuple[str, ...] = attrs.field(converter=_tuple)
    flags: tuple[tuple[str, int | None], ...] = attrs.field(default=(), converter=_tuple)
    body: OpSeq
    text: str = attrs.field(default="", eq=False, repr=False)
    doc: str = attrs.field(default="", eq=False, repr=False)
    span: Span | None = _span_field()

    @property
    def role(self) -> str:
        heads = ("head", "per_pixel")
        return "head" if any(name in heads for name, _ in self.flags) else "op"

    @property
    def per_pixel(self) -> bool:
        """A head that ends in a map of class scores (`with per_pixel`), not a vector."""
        return any(name == "per_pixel" for name, _ in self.flags)

    @property
    def resampling(self) -> bool:
        """An adapter that brings an input from any power-of-two multiple of the cell's
        resolution (`with resampling`): its body reads `stride` and `up`."""
        return any(name == "resampling" for name, _ in self.flags)

    @property
    def stride(self) -> int | None:
        return next((value for name, value in self.flags if name == "stride"), None)

    @property
    def sequence(self) -> bool:
        """An op of sequence networks (`with sequence`): it keeps its input's width, so it
        belongs on the edges of recurrent cells rather than anywhere a width changes."""
        return any(name == "sequence" for name, _ in self.flags)

    @property
    def tied(self) -> bool:
        """A head whose dense layer shares the weight of the network's embedding (`with head,
        tied`: tied input and output embeddings, as language models are trained)."""
        return any(name == "tied" for name, _ in self.flags)


def op_name(name: str, values: tuple[int, ...] | list[int]) -> str:
    """The canonical name of a parametric op with its arguments: `mbconv(6,5)`."""
    return f"{name}({','.join(str(value) for value in values)})" if values else name


def parse_int(text: str) -> int:
    """An integer written in ASCII digits with an optional sign: `16`, `-3`.

    Python's `int` also reads `1_6`, full-width `１６` and the digits of other scripts; a `-D`
    value, an arch string or an op name that nasc reads must look as the grammar's integers do.

    Raises:
        ValueError: for anything else.
    """
    if not re.fullmatch(r"[-+]?[0-9]+", text):
        raise ValueError(f"not an integer of ASCII digits: {text!r}")
    return int(text)


def split_op_name(text: str) -> tuple[str, tuple[int, ...]]:
    """`mbconv(6,5)` -> (`mbconv`, (6, 5)); a plain name has no arguments.

    Raises:
        ValueError: for a malformed name.
    """
    if "(" not in text:
        return text, ()
    base, _, rest = text.partition("(")
    if not rest.endswith(")"):
        raise ValueError(text)
    inner = rest[:-1].strip()
    return base, tuple(parse_int(part.strip()) for part in inner.split(",")) if inner else ()


# --- declarations --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class OpSetDecl:
    """`ops NAME = {op, op, ...}`."""

    name: str
    ops: tuple[str, ...] = attrs.field(converter=_tuple)
    op_spans: tuple[Span | None, ...] = attrs.field(converter=_tuple, eq=False, repr=False)
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class CellInput:
    """A cell parameter, optionally adapted by an op: `c_k2:preprocess`."""

    name: str
    adapter: str | None = None
    span: Span | None = _span_field()
    adapter_span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class Term:
    """One edge term of a node: `source:op_or_set`."""

    source: str
    op: str
    span: Span | None = _span_field()
    op_span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class NodeDecl:
    """`NAME = term + term`, `NAME = term * term` or `NAME = concat(term, term)`."""

    name: str
    combine: str
    terms: tuple[Term, ...] = attrs.field(converter=_tuple)
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class KeepDecl:
    """`keep K per edge|node` (`per` set) or `keep K of {a->b, ...}` (`edges` set)."""

    k: int
    per: str | None = None
    edges: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_tuple)
    edge_spans: tuple[Span | None, ...] = attrs.field(
        default=(), converter=_tuple, eq=False, repr=False
    )
    span: Span | None = _span_field()
    per_span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class OutputDecl:
    """`out NAME`, `out concat(NAME, ...)` or `out mean(NAME, ...)` (`mean`: the nodes'
    element-wise mean, as DARTS' recurrent cell ends)."""

    nodes: tuple[str, ...] = attrs.field(converter=_tuple)
    concat: bool
    span: Span | None = _span_field()
    mean: bool = False


@attrs.frozen(kw_only=True)
class NextDecl:
    """`next STATE = NODE`: the node's value becomes the state input's at the next time step."""

    state: str
    node: str
    span: Span | None = _span_field()
    node_span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class CellDecl:
    """`cell NAME(inputs) [with flags] { statements }`."""

    name: str
    inputs: tuple[CellInput, ...] = attrs.field(converter=_tuple)
    flags: tuple[str, ...] = attrs.field(converter=_tuple)
    flag_spans: tuple[Span | None, ...] = attrs.field(converter=_tuple, eq=False, repr=False)
    body: tuple[NodeDecl | KeepDecl | OutputDecl | NextDecl, ...] = attrs.field(
        converter=_tuple
    )
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class ParamDecl:
    """`NAME = expr` in a network header."""

    name: str
    default: Expr
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class CallDecl:
    """`op(expr, name = expr, ...)` in the macro; `kwarg_spans` locate the keywords' names."""

    op: str
    args: tuple[Expr, ...] = attrs.field(converter=_tuple)
    kwargs: tuple[tuple[str, Expr], ...] = attrs.field(converter=_tuple)
    span: Span | None = _span_field()
    kwarg_spans: tuple[Span | None, ...] = attrs.field(
        default=(), converter=_tuple, eq=False, repr=False
    )

    def kwarg_span(self, key: str) -> Span | None:
        """Where the keyword `key` is written (its first use), else the call's span."""
        for (name, _), span in zip(self.kwargs, self.kwarg_spans):
            if name == key:
                return span or self.span
        return self.span


ALL = "all"  # the source `from all`: every earlier output, resampled and summed


@attrs.frozen(kw_only=True)
class MacroDecl:
    """One statement of a network body.

    `kind` is one of `input`, `stem`, `block`, `cells`, `choice`, `aux`, `head`. `input` uses
    `args` (channels, size); `cells` uses `cell`, `width` and `repeat`; `choice` (a block choice)
    uses `label`, `opset` or `ops`, `shared`, `width`, `stride` and `repeat` (None when the
    statement has no `repeat`); the others use `call`, and `block` also `repeat` (None when the
    block is placed once). `phase`
    is `search` or `train` for a statement that exists only in the search supernet or only in
    the standalone network, None for one in both.

    Dense networks: `name` names the statement's output (`low = basic(2W, stride = 2)`);
    `sources` are the outputs it reads (`from low, deep`; `ALL` for `from all`), empty for the
    latest ones; `at` is the stride from the input image at which a cell runs (`at 8`).
    """

    kind: str
    phase: str | None = attrs.field(
        default=None, validator=attrs.validators.in_((None, "search", "train"))
    )
    call: CallDecl | None = None
    cell: str | None = None
    width: Expr | None = None
    repeat: Expr | None = None
    args: tuple[Expr, ...] = attrs.field(default=(), converter=_tuple)
    label: str | None = None
    opset: str | None = None
    ops: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    shared: bool = False
    stride: Expr | None = None
    name: str | None = None
    sources: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    at: Expr | None = None
    span: Span | None = _span_field()
    cell_span: Span | None = _span_field()
    op_spans: tuple[Span | None, ...] = attrs.field(
        default=(), converter=_tuple, eq=False, repr=False
    )
    name_span: Span | None = _span_field()
    source_spans: tuple[Span | None, ...] = attrs.field(
        default=(), converter=_tuple, eq=False, repr=False
    )


@attrs.frozen(kw_only=True)
class NetworkDecl:
    """`network NAME(params) { statements }`."""

    name: str
    params: tuple[ParamDecl, ...] = attrs.field(converter=_tuple)
    body: tuple[MacroDecl, ...] = attrs.field(converter=_tuple)
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class PresetDecl:
    """`preset NAME`: the search preset this space names for `nasc search`."""

    name: str
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class Module:
    """A whole `.nas` file."""

    items: tuple[OpSetDecl | OpDef | CellDecl | NetworkDecl | PresetDecl, ...] = attrs.field(
        converter=_tuple
    )
    file: str = attrs.field(default="<string>", eq=False)
