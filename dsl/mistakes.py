"""The table of labelled common mistakes: each hint with files that make the mistake."""

from __future__ import annotations

# Said of a map-only step given a sequence, and of a sequence step given a map.
SEQUENCE_HINT = (
    "a sequence of tokens is read by layer_norm, self_attention, mlp, linear, class_token, "
    "pos_embed, token_pool and the activations; a head pools it with `token_pool` before "
    "`linear`"
)
MAP_HINT = "turn the map into a sequence of tokens first, e.g. `patch_embed(16)` (16x16 patches)"

# Labelled common mistakes: each hint comes with files that make the mistake. A failing parse is
# matched against these by the parser state it fails in (`diagnose._match_mistake`), so a new file
# that fails the same way gets the same hint. The tests parse every example here and check its
# hint.
# Braces after `@` hold a choice among widths (two or more); one width in braces is a mistake.
ONE_WIDTH_HINT = (
    "a width is an expression after `@`, without braces: `c @ 2C`, `choose {a, b} @ 2C`; "
    "braces hold the candidates of a block choice, or two or more widths to choose among: "
    "`c @ {8, 16}`"
)
COMMON_MISTAKES: dict[str, list[str]] = {
    "missing `=` in op set: write `ops NAME = {op, op}`": [
        "ops nb201 {none, skip_connect}",
        "ops darts {sep_conv_3x3}",
    ],
    "an op set is written in braces: `ops NAME = {op, op}`": [
        "ops nb201 = [none, skip_connect]",
        "ops nb201 = (none, skip_connect)",
        "ops nb201 = none, skip_connect",
    ],
    "op names in a set are separated by commas: `{none, skip_connect}`": [
        "ops nb201 = {none skip_connect}",
        "ops nb201 = {none, skip_connect nor_conv_3x3}",
    ],
    "an edge is written `source:op`, e.g. `x:nb201` or `n1:skip_connect`": [
        "cell c(x) { n1 = x }",
        "cell c(x) { n1 = x + y:a }",
        "cell c(x) { n1 = x:a + y }",
        "cell c(x) { n1 = x -> y }",
        "cell c(x) { n1 = x:a n2 = y }",
    ],
    "a node combines its edges with one operator: all `+` (sum), all `*` (product), "
    "or `concat(...)`": [
        "cell c(x) { n1 = x:a + x:b * x:c }",
        "cell c(x) { n1 = x:a * x:b + x:c }",
    ],
    "a cell statement is `NAME = edges`, `keep ...` or `out ...`": [
        "cell c(x) { n1 x:a }",
        "cell c(x) { 3 }",
        "cell c(x) { n1 := x:a }",
    ],
    "`keep` takes a number and a rule: `keep 1 per edge`, `keep 2 per node` or "
    "`keep 1 of {a->b, a->c}`": [
        "cell c(x) { keep per edge }",
        "cell c(x) { keep 1 edge }",
        "cell c(x) { keep 1 per }",
        "cell c(x) { keep one per edge }",
        "cell c(x) { keep 1 of x->n1 }",
    ],
    "edges in an explicit subset are written `source->target`, e.g. `keep 1 of {x->n1, x->n2}`": [
        "cell c(x) { keep 1 of {x, n1} }",
        "cell c(x) { keep 1 of {x:n1} }",
    ],
    "`out` names a node or a concat of nodes: `out n3` or `out concat(n1, n2)`": [
        "cell c(x) { out }",
        "cell c(x) { out n1 + n2 }",
        "cell c(x) { out n1, n2 }",
    ],
    "a cell needs a parameter list: `cell NAME(x) { ... }`": [
        "cell c { n1 = x:a }",
        "cell c() { n1 = x:a }",
    ],
    "cell flags follow `with`: `cell reduce(s0, s1) with reduction { ... }`": [
        "cell c(x) reduction { }",
        "cell c(x) with { }",
    ],
    "a network needs a parameter list, maybe empty: `network NAME(C = 16) { ... }`": [
        "network n { }",
        "network n(C) { }",
        "network n(C: 16) { }",
    ],
    "a cell in the network is placed with its width: `CELL @ WIDTH` or "
    "`repeat COUNT CELL @ WIDTH`": [
        "network n(C = 16) { repeat 2 normal }",
        "network n(C = 16) { repeat 2 normal C }",
        "network n(C = 16) { normal C }",
        "network n(C = 16) { repeat normal @ C }",
    ],
    "a network statement is `input(...)`, `stem op(...)`, `op(...)`, `repeat N op(...)`, "
    "`CELL @ WIDTH`, `repeat N CELL @ WIDTH`, `aux op(...)` or `head op(...)`": [
        "network n(C = 16) { 3 }",
        "network n(C = 16) { stem }",
        "network n(C = 16) { head }",
        "network n(C = 16) { stem = conv3x3_bn(C) }",
    ],
    "expressions use integers, parameters and `+ - * //`, e.g. `2C` or `layers // 3`": [
        "network n(C = 16) { normal @ C / 2 }",
        "network n(C = 16) { normal @ C ** 2 }",
        "network n(C = 16) { normal @ C % 2 }",
        "network n(C = 16) { normal @ }",
        "network n(C = ) { }",
        "network n(C = 16) { normal @ (C }",
    ],
    "a block choice in the network starts with `choose`: `choose {a, b} @ WIDTH` or "
    "`repeat N choose {a, b} @ WIDTH`": [
        "network n(C = 16) { {a, b} @ C }",
        "network n(C = 16) { input(3, 8) {a, b} @ C }",
        "network n(C = 16) { stem s(C) {a, b} @ C }",
        "network n(C = 16) { s(C) {a, b} @ C }",
        "network n(C = 16) { c @ C {a, b} @ C }",
        "network n(C = 16) { repeat 2 {a, b} @ C }",
    ],
    "a block choice is `choose [shared] [NAME =] {op, op} @ WIDTH [, stride = 2]`": [
        "network n(C = 16) { choose {a, b} }",
        "network n(C = 16) { choose {a, b} C }",
        "network n(C = 16) { choose x {a, b} @ C }",
        "network n(C = 16) { choose @ C }",
        "network n(C = 16) { choose [a, b] @ C }",
        "network n(C = 16) { repeat 2 shared choose {a, b} @ C }",
        "network n(C = 16) { choose {a, b} @ C, stride 2 }",
        "network n(C = 16) { choose {a, b} @ C, 2 }",
    ],
    "`{ }` holds the candidate ops of a block choice, separated by commas (a parametric op "
    "with integer arguments, `mbconv(6, 5)`); a width is not a candidate: it follows `@`, "
    "`choose {resblock, skip_connect} @ 2C`": [
        "network n(C = 16) { choose {a b} @ C }",
        "network n(C = 16) { choose {} @ C }",
        "network n(C = 16) { choose {a, 8} @ C }",
        "network n(C = 16) { choose {a, b, 2C} }",
        "network n(C = 16) { choose {a 8} @ C }",
        "network n(C = 16) { choose {a @ 8} }",
    ],
    ONE_WIDTH_HINT: [
        "network n(C = 16) { choose {a, b} @ {8} }",
        "network n(C = 16) { c @ {C} }",
    ],
    "an op set lists op names, separated by commas (a parametric op with integer arguments, "
    "`mbconv(6, 5)`); widths are given where the ops are placed": [
        "ops s = {a, 8}",
        "ops s = {8}",
        "ops s = {a 8}",
    ],
    "a candidate's arguments are integers written in the set, e.g. "
    "`choose {mbconv(3, 3), mbconv(6, 5)} @ 2C`: where the block stands gives its width "
    "(after `@`) and stride": [
        "network n(C = 16) { choose {a(C), b} @ C }",
        "network n(C = 16) { choose {mbconv(3, k), skip_connect} @ C, stride = 2 }",
        "ops mb = {mbconv(C)}",
        "ops mb = {mbconv(6, 2 * e)}",
    ],
    "a block choice's stride follows a comma: `choose {a, b} @ 2C, stride = 2`": [
        "network n(C = 16) { choose {a, b} @ C stride = 2 }",
    ],
    "an op is defined as `op NAME(params) = body`, e.g. `op mb(e) = conv(1, e * C_in) -> bn`": [
        "op a conv(1)",
        "op a(e) conv(1)",
        "op a(e) with head conv(1)",
        "op = conv(1)",
    ],
    "an op body is a sequence of steps joined by `->`, e.g. `relu -> conv(3) -> bn`": [
        "op a = conv(1) bn",
        "op a = ",
        "op a = relu ->",
        "op a = conv(1), bn",
    ],
    "a condition reads `if COND then A else B`, with both branches: "
    "`if stride == 1 then identity else conv(1, stride = stride)`": [
        "op a = if stride == 1 then identity",
        "op a = if stride == 1 identity else zero",
        "op a = if stride then identity else zero",
        "op a = if stride = 1 then identity else zero",
    ],
    "a residual wraps a body and optionally a shortcut: `residual(conv(3) -> bn)` or "
    "`residual(conv(3) -> bn, conv(1))`": [
        "op a = residual()",
        "op a = residual(conv(3), conv(1), bn)",
    ],
    "a parametric op in a set takes integers, separated by commas: "
    "`{mbconv(3, 3), mbconv(6, 5)}`": [
        "ops mb = {mbconv(3 3)}",
        "ops mb = {mbconv(e = 3)}",
    ],
    "a file holds `ops`, `cell`, `network` and `preset` declarations": [
        "foo",
        "def f(): pass",
        "import torch",
        "ops",
        "= 3",
    ],
    "a `{` is not closed: every `{` needs its `}`": [
        "cell c(x) { n1 = x:a",
        "network n(C = 16) { stem conv3x3_bn(C)",
        "ops a = {none",
        "cell c(x) { n1 = x:a out n1 network n(C = 16) { }",
        "cell c(x) { n1 = x:a out n1 cell d(x) { out x }",
    ],
    # Found by spelling, not by parser state: the lexer splits `opss` into `ops` and `s`.
    "a declaration starts with `ops`, `cell`, `network` or `preset`: check its spelling": [
        "opss tiny = {none, skip_connect}",
        "celll block(x) { n1 = x:a }",
        "networks n(C = 16) { }",
    ],
    "the file starts with a byte-order mark (U+FEFF): save it as UTF-8 without a BOM": [
        "\ufeffops a = {none}",
    ],
    "an expression this long nests too deeply: write repeated terms as a product, e.g. `4C` "
    "for `C + C + C + C`": [
        "network n(C = 16) { c @ " + " + ".join(["C"] * 5000) + " }",
    ],
}

# Letters of other scripts that look like ASCII ones (Cyrillic, Greek), for naming a character a
# keyboard layout slipped into a word; full-width forms and accented letters are found by
# Unicode normalisation instead (`diagnose._lookalike`).
LOOKALIKES: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "B", "е": "e", "ё": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x",
    "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "һ": "h", "ԛ": "q", "ԝ": "w", "ӏ": "l",
    "к": "k", "м": "m", "н": "H", "т": "T", "ь": "b",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "Х": "X", "У": "Y", "Ѕ": "S", "І": "I", "Ј": "J", "Ԛ": "Q", "Ԝ": "W",
    # Greek
    "α": "a", "ο": "o", "ν": "v", "ι": "i", "κ": "k", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}  # fmt: skip

# A small dense network that the examples below change: a stem to 1/4, a block to 1/8 named
# `deep`, and a cell reading the stem and `deep`.
_DENSE = """op seg with per_pixel = conv(3, out = C_in) -> bn -> relu -> conv(1, bias = 1)
ops s = {{skip_connect, nor_conv_3x3}}
cell fuse({inputs}) {{
    n1 = {terms}
    keep 1 per edge
    out n1
}}
network net(C = 8) {{
    input(3, {size})
    stem darts_imagenet_stem0(C)
    {body}
    head {head}(5)
}}
"""


def _dense(
    inputs: str = "skip, low:resample",
    terms: str = "skip:s + low:s",
    body: str = "deep = conv3x3_bn(2C, stride = 2)\n    fuse @ C from deep, low",
    size: int = 32,
    head: str = "seg",
) -> str:
    return _DENSE.format(inputs=inputs, terms=terms, body=body, size=size, head=head)


# A small vision transformer (docs/language.md section 24) whose embedding, block or head makes
# a mistake with token sequences.
_TOKENS = """
op embed with stride 4 = {embed}
op block = {block}
op pool_head with head = {head}

network vit(D = 16) {{
    input(3, 16)
    stem embed(D)
    block(D)
    head pool_head(10)
}}
"""


def _tokens(
    embed: str = "patch_embed(4) -> class_token -> pos_embed(17)",
    block: str = "residual(layer_norm -> self_attention(2)) -> residual(layer_norm -> mlp(2))",
    head: str = "layer_norm -> token_pool(first = 1) -> linear",
) -> str:
    return _TOKENS.format(embed=embed, block=block, head=head)


# Labelled mistakes that the checks find, not the parser (dense networks, docs/language.md section
# 22): each hint comes with files that make the mistake. The tests load every example and check
# that it is refused, located, with exactly this hint.
SEMANTIC_MISTAKES: dict[str, list[str]] = {
    # A sum of mismatched resolutions: `deep` arrives at 4x4 where the cell runs at 8x8.
    "a sum or concat needs one resolution: give the input an adapter that resamples, "
    "`deep:resample`, or place the cell where its inputs share one resolution": [
        _dense(
            inputs="deep, low",
            terms="deep:s + low:s",
            body="low = conv3x3_bn(C)\n    deep = conv3x3_bn(2C, stride = 2)\n"
            "    fuse @ C from deep, low",
        ),
    ],
    # An upsampling to a size that is not a multiple: 36 halves to 18, 9, 5; 5 doubled is 10.
    "upsampling multiplies the size, so the cell must run at the coarse map's size times a power "
    "of two: choose an input size that halves evenly (e.g. a multiple of 32), or place the cell "
    "`at` another stride": [
        _dense(
            inputs="low, deep:resample",
            terms="low:s + deep:s",
            body="low = conv3x3_bn(C)\n    deep = conv3x3_bn(2C, stride = 2)\n"
            "    fuse @ C at 4 from low, deep",
            size=36,
        ),
    ],
    "name a statement to read it, `later = basic(2C, stride = 2)`; names so far: none yet": [
        _dense(inputs="low, x", terms="low:s + x:s", body="fuse @ C from later, later"),
    ],
    "a statement reads outputs named above it (named so far: none yet); move the statement after "
    "the one it reads": [
        _dense(
            inputs="low, x",
            terms="low:s + x:s",
            body="fuse @ C from deep, deep\n    deep = conv3x3_bn(2C, stride = 2)",
        ),
    ],
    "end it with a convolution to the class count, e.g. `conv(1, bias = 1)` (whose `out` "
    "defaults to C_out, the class count)": [
        _dense(
            inputs="low, x",
            terms="low:s + x:s",
            body="fuse @ C\n    head2 = conv3x3_bn(C)",
        ).replace("-> conv(1, bias = 1)", "-> conv(1, out = 4, bias = 1)"),
    ],
    "a per-pixel head ends in a feature map, e.g. `conv(3) -> bn -> relu -> conv(1, bias = 1)`; "
    "a head that ends in `gap -> linear` is marked `with head`": [
        _dense(inputs="x", terms="x:s", body="fuse @ C").replace(
            "conv(3, out = C_in) -> bn -> relu -> conv(1, bias = 1)", "gap -> linear"
        ),
    ],
    "give it a resampling adapter, `x:resample`, which brings each output to the cell's width "
    "and resolution before they are summed": [
        _dense(inputs="x", terms="x:s", body="fuse @ C from all"),
    ],
    "name one source per input of `fuse`, in the order of `fuse(x, y)`": [
        _dense(inputs="x, y", terms="x:s + y:s", body="fuse @ C from all"),
    ],
    "an op reads one feature map: `from NAME`; to combine several, place a cell with one input "
    "per source (`from all` sums them through its adapter)": [
        _dense(inputs="x", terms="x:s", body="low = fuse @ C\n    conv3x3_bn(C) from all"),
    ],
    "`at S` runs the cell at 1/S of the input's resolution: S is 1, 2, 4, 8, ...": [
        _dense(inputs="x:resample", terms="x:s", body="fuse @ C at 6 from all"),
    ],
    "give each named statement its own name": [
        _dense(inputs="x", terms="x:s", body="a = fuse @ C\n    a = conv3x3_bn(C)"),
    ],
    "name stems, blocks, cells and block choices, whose outputs later statements read with "
    "`from NAME`": [
        _dense(inputs="x", terms="x:s", body="fuse @ C\n    out = head seg(5)").replace(
            "    head seg(5)\n", ""
        ),
    ],
    "a cell may read an output of at most twice its resolution, through an adapter such as "
    "`preprocess`; `preprocess` does not resample, so write `x:resample` (or an op marked "
    "`with resampling`) to read a coarser one": [
        _dense(
            inputs="x:preprocess, low",
            terms="x:s + low:s",
            body="low = conv3x3_bn(C)\n    deep = conv3x3_bn(2C, stride = 2)\n"
            "    fuse @ C from deep, low",
        ),
    ],
    # A product of mismatched sizes: a gate pooled by 2, not to 1x1, times the 8x8 input.
    "a product multiplies maps of one size, or a map by a gate pooled to 1x1: keep both factors' "
    "size, or pool one with `global_pool` (e.g. `product(global_pool -> conv(1, out = C_in) -> "
    "sigmoid)`)": [
        _dense(inputs="x", terms="x:s", body="fuse @ C").replace(
            "conv(3, out = C_in) -> bn -> relu -> conv(1, bias = 1)",
            "product(avgpool(2, stride = 2, pad = 0) -> conv(1, out = C_in) -> sigmoid)\n"
            "    -> conv(1, bias = 1)",
        ),
    ],
    "a transposed convolution needs a kernel at least its stride (an odd one at stride 1): "
    "`deconv(2, stride = 2)` or `deconv(4, stride = 2)`": [
        _dense(inputs="x", terms="x:s", body="fuse @ C").replace(
            "conv(3, out = C_in) -> bn", "deconv(1, out = C_in, stride = 2) -> bn"
        ),
    ],
    # Token sequences (docs/language.md section 24): a map step given tokens, a token step given
    # a map, a head that does not pool its tokens, a positional embedding of another length.
    SEQUENCE_HINT: [_tokens(block="residual(layer_norm -> mlp(2)) -> bn")],
    MAP_HINT: [_tokens(embed="layer_norm -> patch_embed(4) -> class_token -> pos_embed(17)")],
    "pool the tokens before the classifier: `token_pool(first = 1) -> linear` (the class token) "
    "or `token_pool -> linear` (their mean)": [_tokens(head="layer_norm -> linear")],
    "a positional embedding holds one vector per token: write `pos_embed(17)` here (the patches, "
    "plus one after `class_token`)": [
        _tokens(embed="patch_embed(4) -> class_token -> pos_embed(16)")
    ],
}
