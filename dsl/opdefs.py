"""Ops defined in the language: the primitives an op body composes, the prelude (the standard op
library, written in `.nas`), and the checks of a definition.

An op body is evaluated when the op is built, with integers for the op's own parameters and for
`C_in`, `C_out`, `stride` and `affine` (1 or 0: the BNs of a search supernet are not affine). The
compiler turns the primitives into modules; this module knows only their names and arguments.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterator, Mapping
from importlib import resources

import attrs

from . import ast
from .errors import NascError, NasSemanticError
from .ir import OpInfo

# The integers every op body may read besides its own parameters.
CONTEXT = ("C_in", "C_out", "stride", "affine", "up")
# Said of every unknown op name: the op may be one of a Python plugin not loaded.
PLUGIN_HINT = "an op written in Python needs its plugin: `--ops my_ops.py` (a file or a module)"


@attrs.frozen(kw_only=True)
class Primitive:
    """A primitive of op bodies: its parameters in positional order, the required ones, and those
    that take a decimal (`bn(eps = 0.001)`) rather than an integer."""

    name: str
    params: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    reals: tuple[str, ...] = ()
    doc: str = ""


PRIMITIVES: dict[str, Primitive] = {
    p.name: p
    for p in (
        Primitive(
            name="conv",
            params=("k", "out", "stride", "dilation", "groups", "bias", "kh", "kw", "sh", "sw"),
            required=("k",),
            doc="convolution: kernel k (or kh x kw), out channels (default C_out), stride, "
            "dilation, groups, bias (0 or 1); padded to keep the size at stride 1",
        ),
        Primitive(
            name="dwconv",
            params=("k", "stride", "dilation"),
            required=("k",),
            doc="depthwise convolution: one k x k filter per channel, no bias",
        ),
        Primitive(
            name="pwconv",
            params=("out", "stride", "bias"),
            doc="pointwise (1x1) convolution to `out` channels (default C_out)",
        ),
        Primitive(
            name="deconv",
            params=("k", "out", "stride", "bias"),
            required=("k",),
            doc="transposed convolution: kernel k, out channels (default C_out), stride s "
            "(the factor it multiplies the size by), bias (0 or 1); padded so that an n x n "
            "map becomes exactly ns x ns (k >= s, and an odd k at stride 1)",
        ),
        Primitive(
            name="bilinear",
            params=("factor",),
            required=("factor",),
            doc="bilinear upsampling by an integer factor (align_corners=False, as torchvision's "
            "segmentation models)",
        ),
        Primitive(
            name="nearest",
            params=("factor",),
            required=("factor",),
            doc="nearest-neighbour upsampling by an integer factor",
        ),
        Primitive(
            name="bn",
            params=("affine", "eps"),
            reals=("eps",),
            doc="BatchNorm (affine as the op's `affine`; `eps`, a decimal, 1e-5 unless given)",
        ),
        Primitive(name="relu", doc="ReLU"),
        Primitive(name="relu6", doc="ReLU6"),
        Primitive(name="hardswish", doc="hard swish"),
        Primitive(name="hardsigmoid", doc="hard sigmoid"),
        Primitive(name="sigmoid", doc="sigmoid"),
        Primitive(name="tanh", doc="tanh"),
        Primitive(name="gelu", doc="GELU"),
        Primitive(
            name="maxpool",
            params=("k", "stride", "pad", "ceil"),
            required=("k",),
            doc="k x k max pooling (padding k // 2 unless given)",
        ),
        Primitive(
            name="avgpool",
            params=("k", "stride", "pad", "ceil", "count_pad"),
            required=("k",),
            doc="k x k average pooling; padding is not counted unless count_pad = 1",
        ),
        Primitive(
            name="se",
            params=("mid",),
            required=("mid",),
            doc="squeeze-and-excitation: global pooling, 1x1 conv to `mid`, ReLU, 1x1 conv, "
            "sigmoid, times the input",
        ),
        Primitive(name="identity", doc="the input unchanged"),
        Primitive(name="zero", doc="zeros of the op's output shape (never computed in a cell)"),
        Primitive(
            name="factorized_reduce",
            params=("out", "stride"),
            doc="ReLU and two offset stride-2 1x1 convs, concatenated, then BN (DARTS); "
            "at stride 1 a 1x1 conv and BN",
        ),
        Primitive(name="gap", doc="global average pooling, flattened to (B, C)"),
        Primitive(
            name="global_pool",
            doc="global average pooling to a 1x1 map (B, C, 1, 1), not flattened: a gate that "
            "`product` multiplies with a full map",
        ),
        Primitive(
            name="linear",
            params=("out", "bias"),
            doc="fully connected layer to `out` features (default C_out); bias unless bias = 0",
        ),
        # --- transformers (issue 26): token sequences (B, length, features)
        Primitive(
            name="patch_embed",
            params=("patch", "out"),
            required=("patch",),
            doc="patch embedding: a patch x patch convolution of stride patch (with bias) to `out` "
            "features (default C_out), its pixels read row by row as a sequence of tokens",
        ),
        Primitive(
            name="class_token",
            doc="a learned class token (zeros at first) put before the tokens: one token more",
        ),
        Primitive(
            name="pos_embed",
            params=("length",),
            required=("length",),
            doc="a learned positional embedding of `length` tokens added to the sequence (the "
            "checks say the length where it differs)",
        ),
        Primitive(
            name="layer_norm",
            params=("eps",),
            reals=("eps",),
            doc="LayerNorm over each token's features (`eps`, a decimal, 1e-5 unless given)",
        ),
        Primitive(
            name="self_attention",
            params=("heads", "head_dim", "dropout"),
            required=("heads",),
            reals=("dropout",),
            doc="multi-head self-attention: `heads` heads of `head_dim` features each (default "
            "C_in / heads), one query-key-value projection and an output projection back to "
            "C_in features; `dropout` on the attention weights (a decimal, 0 unless given)",
        ),
        Primitive(
            name="mlp",
            params=("ratio", "hidden", "out"),
            doc="Linear -> GELU -> Linear on each token: `hidden` features in between (default "
            "ratio * C_in, ratio 4 unless given), then `out` (default C_in, the tokens' width, "
            "as self_attention gives)",
        ),
        Primitive(
            name="token_pool",
            params=("first",),
            doc="a sequence to a flat vector: its first token (the class token) when first = 1, "
            "else the mean of the tokens",
        ),
        # --- sequences (docs/language.md, section 25)
        Primitive(
            name="dense",
            params=("out", "bias"),
            doc="dense (fully connected) layer on the last axis, a vector's or each time step's "
            "features, to `out` (default C_out); bias unless bias = 0",
        ),
        Primitive(
            name="embedding",
            params=("out",),
            doc="a table of one vector of `out` features (default C_out) per token of the "
            "vocabulary (C_in): token ids to vectors",
        ),
        Primitive(
            name="dropout",
            params=("p",),
            reals=("p",),
            doc="dropout: zero each element with probability p (a decimal), scaling the rest",
        ),
        Primitive(name="neg", doc="the input negated, -x: with a sum, a difference"),
        Primitive(
            name="bn1d",
            params=("affine",),
            doc="BatchNorm over the features of vectors or time steps (affine as the op's "
            "`affine`): DARTS' recurrent search normalises every node so",
        ),
        Primitive(
            name="conv1d",
            params=("k", "out", "stride", "dilation", "bias"),
            required=("k",),
            doc="1-D convolution over the time axis of a sequence: kernel k, out features "
            "(default C_out), stride, dilation, bias (0 or 1); padded to keep the length",
        ),
        Primitive(
            name="maxpool1d",
            params=("k", "stride"),
            required=("k",),
            doc="max pooling over the time axis of a sequence (padding k // 2)",
        ),
        Primitive(
            name="avgpool1d",
            params=("k", "stride"),
            required=("k",),
            doc="average pooling over the time axis of a sequence (padding k // 2, not counted)",
        ),
    )
}

# --- transformers (issue 26): which primitives read a sequence of tokens. The others read a
# feature map, except these, which read either (`linear` acts on each token's features).
SEQUENCE_PRIMITIVES = frozenset(
    {"class_token", "pos_embed", "layer_norm", "self_attention", "mlp", "token_pool"}
)
EITHER_PRIMITIVES = frozenset(
    {"relu", "relu6", "hardswish", "hardsigmoid", "sigmoid", "tanh", "gelu", "identity", "linear"}
)


# The primitives that read only sequences (docs/language.md, section 25): an op built of one is
# marked `OpInfo.sequence`, for networks that read `input tokens(...)` or `input sequence(...)`.
SEQUENCE_ONLY = ("dense", "embedding", "conv1d", "maxpool1d", "avgpool1d", "bn1d")


def _path(defn: ast.OpDef) -> str:
    return f"op.{defn.name}"


def walk_calls(body) -> Iterator[ast.OpCall]:
    """Every call in an op body, in reading order."""
    if isinstance(body, ast.OpCall):
        yield body
    elif isinstance(body, ast.OpSeq):
        for item in body.items:
            yield from walk_calls(item.body)
    elif isinstance(body, ast.OpResidual):
        yield from walk_calls(body.body)
        if body.shortcut is not None:
            yield from walk_calls(body.shortcut)
    elif isinstance(body, ast.OpProduct):
        yield from walk_calls(body.body)
        if body.other is not None:
            yield from walk_calls(body.other)
    elif isinstance(body, ast.OpIf):
        yield from walk_calls(body.then)
        yield from walk_calls(body.otherwise)


def _walk_exprs(body) -> Iterator[ast.Expr]:
    if isinstance(body, ast.OpCall):
        yield from body.args
        yield from (value for _, value in body.kwargs)
    elif isinstance(body, ast.OpSeq):
        for item in body.items:
            yield from _walk_exprs(item.body)
    elif isinstance(body, ast.OpResidual):
        yield from _walk_exprs(body.body)
        if body.shortcut is not None:
            yield from _walk_exprs(body.shortcut)
    elif isinstance(body, ast.OpProduct):
        yield from _walk_exprs(body.body)
        if body.other is not None:
            yield from _walk_exprs(body.other)
    elif isinstance(body, ast.OpIf):
        yield from _cond_exprs(body.cond)
        yield from _walk_exprs(body.then)
        yield from _walk_exprs(body.otherwise)


def _cond_exprs(cond) -> Iterator[ast.Expr]:
    if isinstance(cond, ast.Compare):
        yield cond.left
        yield cond.right
    else:
        yield from _cond_exprs(cond.left)
        yield from _cond_exprs(cond.right)


def argument(
    primitive: Primitive | None, key: str, expr: ast.Expr, env: Mapping[str, int], *, what, path
) -> int | float:
    """The value of one argument of a call in an op body: an integer expression, or for a
    primitive's decimal parameter (`eps`) a decimal literal too.

    Raises:
        NasSemanticError: as `ast.evaluate`, located at the argument.
    """
    if isinstance(expr, ast.Decimal) and primitive is not None and key in primitive.reals:
        return float(expr.text)
    return ast.evaluate(expr, env, what=what, path=path)


def info_of(defn: ast.OpDef) -> OpInfo:
    """What the language checks uses of a defined op against."""
    return OpInfo(
        role=defn.role,
        stride=defn.stride,
        doc=defn.doc,
        params=defn.params,
        per_pixel=defn.per_pixel,
        resampling=defn.resampling,
        tied=defn.tied,
        sequence=defn.sequence
        or any(call.name in SEQUENCE_ONLY for call in walk_calls(defn.body)),
    )


def check_definitions(
    defs: tuple[ast.OpDef, ...],
    catalog: Mapping[str, OpInfo] | None,
    builtin: frozenset = frozenset(),
) -> None:
    """Check op definitions: unique names, known flags, parameters and calls, no recursion.

    Args:
        catalog: the ops a body may call besides the primitives (the definitions included);
            None skips the check of op names.
        builtin: names a file may not define again (the prelude's and Python's ops).

    Raises:
        NasSemanticError: the first problem, located, with the path `op.NAME`.
    """
    seen: dict[str, ast.OpDef] = {}
    for defn in defs:
        path = _path(defn)
        if defn.name in seen:
            raise NasSemanticError(
                f"op `{defn.name}` is defined twice",
                span=defn.span,
                path=path,
                hint="give each op its own name",
            )
        if defn.name in builtin or defn.name in PRIMITIVES:
            what = "a primitive" if defn.name in PRIMITIVES else "a built-in op"
            raise NasSemanticError(
                f"op `{defn.name}` is already {what}",
                span=defn.span,
                path=path,
                hint=f"name it differently, e.g. `my_{defn.name}`; the built-in ops are "
                "defined in `nasc/dsl/prelude.nas`",
            )
        seen[defn.name] = defn
        for flag, value in defn.flags:
            if flag in ("head", "per_pixel", "resampling", "tied", "sequence") and value is None:
                continue
            if flag == "stride" and value in (2, 4, 8, 16, 32):
                continue
            raise NasSemanticError(
                f"unknown op flag `{flag}{'' if value is None else f' {value}'}`",
                span=defn.span,
                path=path,
                hint="op flags are `head` (the op ends in class scores), `per_pixel` (a head "
                "that ends in a map of class scores), `resampling` (an adapter for any "
                "power-of-two scale), `stride 2|4|8|16|32` (a stem that reduces on its own, e.g. "
                "a patch embedding), `tied` (a head that shares the embedding's weight) and "
                "`sequence` (an op of recurrent cells that keeps its input's width)",
            )
        if len(set(defn.params)) != len(defn.params):
            raise NasSemanticError(
                f"op `{defn.name}` names a parameter twice",
                span=defn.span,
                path=path,
                hint="give each parameter its own name",
            )
        clash = [name for name in defn.params if name in CONTEXT]
        if clash:
            raise NasSemanticError(
                f"op `{defn.name}` has a parameter `{clash[0]}`, a name every op already has",
                span=defn.span,
                path=path,
                hint=f"{', '.join(CONTEXT)} are given to every op; pick another name",
            )
        known = set(defn.params) | set(CONTEXT)
        for expr in _walk_exprs(defn.body):
            for ref in ast.expr_names(expr):
                if ref.name not in known:
                    raise NasSemanticError(
                        f"unknown name `{ref.name}` in op `{defn.name}`",
                        span=ref.span,
                        path=path,
                        hint=f"an op body reads its parameters and {', '.join(CONTEXT)}; "
                        f"known here: {', '.join(sorted(known))}",
                    )
        for call in walk_calls(defn.body):
            _check_call(defn, call, catalog)
    _check_recursion(defs)


def _check_call(defn: ast.OpDef, call: ast.OpCall, catalog) -> None:
    path = f"{_path(defn)}.{call.name}"
    primitive = PRIMITIVES.get(call.name)
    if primitive is not None:
        params, required = primitive.params, primitive.required
    elif catalog is None:
        return
    elif call.name in catalog:
        info = catalog[call.name]
        if info.role == "head" and defn.role != "head":
            raise NasSemanticError(
                f"`{call.name}` is a head and cannot be used inside the op `{defn.name}`",
                span=call.span,
                path=path,
                hint=f"mark the op a head: `op {defn.name}(...) with head = ...`",
            )
        params, required = (*info.params, "out", "stride"), info.params
    else:
        names = sorted({*PRIMITIVES, *catalog} - {defn.name})  # never the op being defined
        close = difflib.get_close_matches(call.name, names, n=1)
        raise NasSemanticError(
            f"unknown primitive or op `{call.name}` in op `{defn.name}`",
            span=call.span,
            path=path,
            hint=(f"did you mean `{close[0]}`? " if close else "")
            + f"primitives: {', '.join(sorted(PRIMITIVES))}; {PLUGIN_HINT}",
        )
    if len(call.args) > len(params):
        raise NasSemanticError(
            f"`{call.name}` takes at most {len(params)} positional arguments, got {len(call.args)}",
            span=call.span,
            path=path,
            hint=f"`{call.name}` takes {', '.join(params) or 'no arguments'}",
        )
    given = set(params[: len(call.args)])
    for key, _ in call.kwargs:
        if key not in params:
            close = difflib.get_close_matches(key, params, n=1)
            raise NasSemanticError(
                f"`{call.name}` takes no argument `{key}`",
                span=call.span,
                path=path,
                hint=(f"did you mean `{close[0]}`? " if close else "")
                + f"`{call.name}` takes {', '.join(params) or 'no arguments'}",
            )
        if key in given:
            raise NasSemanticError(
                f"`{call.name}` gets `{key}` twice",
                span=call.span,
                path=path,
                hint="give each argument once, by position or by name",
            )
        given.add(key)
    missing = [name for name in required if name not in given]
    if missing:
        raise NasSemanticError(
            f"`{call.name}` needs its argument `{missing[0]}`",
            span=call.span,
            path=path,
            hint=f"`{call.name}` takes {', '.join(params)}",
        )


def _check_recursion(defs: tuple[ast.OpDef, ...]) -> None:
    by_name = {defn.name: defn for defn in defs}
    state: dict[str, int] = {}

    def visit(defn: ast.OpDef, trail: list[str]) -> None:
        state[defn.name] = 1
        for call in walk_calls(defn.body):
            callee = by_name.get(call.name)
            if callee is None:
                continue
            if state.get(callee.name) == 1:
                cycle = " -> ".join([*trail, defn.name, callee.name][-len(trail) - 2 :])
                raise NasSemanticError(
                    f"op `{callee.name}` uses itself: {cycle}",
                    span=call.span,
                    path=f"{_path(defn)}.{call.name}",
                    hint="an op is built from primitives and ops defined without it",
                )
            if callee.name not in state:
                visit(callee, [*trail, defn.name])
        state[defn.name] = 2

    for defn in defs:
        if defn.name not in state:
            visit(defn, [])


# --- the prelude --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def prelude_text() -> str:
    """The source of the standard op library shipped with nasc."""
    return resources.files("nasc.dsl").joinpath("prelude.nas").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def prelude() -> tuple[ast.OpDef, ...]:
    """The standard op library's definitions (parsed and checked once)."""
    from .syntax import parse_module

    text = prelude_text()
    try:
        module = parse_module(text, "<prelude>")
        defs = tuple(item for item in module.items if isinstance(item, ast.OpDef))
        if len(defs) != len(module.items):
            raise NasSemanticError("the prelude holds only `op` definitions")
        catalog = {defn.name: info_of(defn) for defn in defs}
        check_definitions(defs, catalog)
    except NascError as error:
        error.source = text
        raise
    return defs


@functools.lru_cache(maxsize=1)
def sequence_library() -> tuple[ast.OpDef, ...]:
    """The op library of sequences (`dsl/sequences.nas`, docs/language.md section 25), parsed
    and checked once against the prelude."""
    from .syntax import parse_module

    text = resources.files("nasc.dsl").joinpath("sequences.nas").read_text(encoding="utf-8")
    try:
        module = parse_module(text, "<sequences>")
        defs = tuple(item for item in module.items if isinstance(item, ast.OpDef))
        if len(defs) != len(module.items):
            raise NasSemanticError("the sequence library holds only `op` definitions")
        catalog = {**prelude_catalog(), **{defn.name: info_of(defn) for defn in defs}}
        check_definitions(defs, catalog, frozenset(prelude_catalog()))
    except NascError as error:
        error.source = text
        raise
    return defs


def library() -> tuple[ast.OpDef, ...]:
    """Every op definition shipped with nasc: the prelude's and the sequence library's."""
    return (*prelude(), *sequence_library())


def sequence_catalog() -> dict[str, OpInfo]:
    """The sequence library's ops as the language sees them."""
    return {defn.name: info_of(defn) for defn in sequence_library()}


def prelude_catalog() -> dict[str, OpInfo]:
    """The prelude's ops as the language sees them."""
    return {defn.name: info_of(defn) for defn in prelude()}
