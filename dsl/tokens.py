"""Token sequences in the shape checks: what the transformer primitives make of a sequence
(B, length, features), held as a `shapes.Shape` with channels = features, height = length,
width 1 and `sequence`, and the refusal of a step given the other kind of input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from . import ast
from .mistakes import MAP_HINT, SEQUENCE_HINT
from .opdefs import EITHER_PRIMITIVES, SEQUENCE_PRIMITIVES

if TYPE_CHECKING:
    from .shapes import Shape


def describe(shape: Shape) -> str:
    """A shape in words, for errors: `a sequence of 197 tokens of 768 features`, `a 32x32 map of
    16 channels` or `a flat vector of 10 features`."""
    if shape.sequence:
        return f"a sequence of {shape.height} tokens of {shape.channels} features"
    if shape.flat:
        return f"a flat vector of {shape.channels} features"
    return f"a {shape.height}x{shape.width} map of {shape.channels} channels"


def check_reads(body, call: ast.OpCall, shape: Shape) -> None:
    """Refuse a primitive that reads a feature map given a sequence of tokens, or the reverse,
    at the step of `body` (the op body being worked out, `shapes._Body`)."""
    name, op = call.name, body.defn.name
    if shape.sequence and name not in SEQUENCE_PRIMITIVES | EITHER_PRIMITIVES:
        raise body.fail(
            f"`{name}` in op `{op}` reads a feature map, but it is given {describe(shape)}",
            call.span,
            SEQUENCE_HINT,
        )
    if not (shape.sequence or shape.flat) and name in SEQUENCE_PRIMITIVES:
        raise body.fail(
            f"`{name}` in op `{op}` reads a sequence of tokens, but it is given "
            f"{describe(shape)}",
            call.span,
            MAP_HINT,
        )


def token_step(
    body, call: ast.OpCall, a: Mapping[str, int], shape: Shape
) -> tuple[Shape, tuple[int, int]]:
    """The shape a primitive of token sequences (or `patch_embed`, or `linear` on tokens) gives
    of `shape` in `body` (`shapes._Body`), and its strides down and across; `check_reads` has
    let it read `shape`."""
    c, name, op, length = shape.channels, call.name, body.defn.name, shape.height
    if name == "patch_embed":
        patch = body.positive(call, a, "patch", 1)
        out = body.positive(call, a, "out", body.env["C_out"])
        if shape.height % patch or shape.width % patch:
            raise body.fail(
                f"`patch_embed({patch})` in op `{op}` cannot cut a {shape.height}x"
                f"{shape.width} map into {patch}x{patch} patches",
                call.span,
                "take a patch size that divides the image size (or an image size that is a "
                "multiple of the patch size)",
            )
        tokens = (shape.height // patch) * (shape.width // patch)
        after = attrs.evolve(shape, channels=out, height=tokens, width=1, pooled=False)
        return attrs.evolve(after, stride=shape.stride * patch, sequence=True), (patch, patch)
    if name == "class_token":
        return attrs.evolve(shape, height=length + 1), (1, 1)
    if name == "pos_embed":
        wanted = body.positive(call, a, "length", 1)
        if wanted != length:
            raise body.fail(
                f"`pos_embed({wanted})` in op `{op}` is given a sequence of {length} tokens",
                call.span,
                f"a positional embedding holds one vector per token: write `pos_embed"
                f"({length})` here (the patches, plus one after `class_token`)",
            )
        return shape, (1, 1)
    if name == "layer_norm":
        if a.get("eps", 1) <= 0:
            raise body.fail(
                f"`eps` of `layer_norm` in op `{op}` must be positive, not {a['eps']}",
                call.span,
                "LayerNorm divides by sqrt(variance + eps): write e.g. "
                "`layer_norm(eps = 1e-6)`",
            )
        return shape, (1, 1)
    if name == "self_attention":
        heads = body.positive(call, a, "heads", 1)
        if "head_dim" in a:
            body.positive(call, a, "head_dim", 1)
        elif c % heads:
            raise body.fail(
                f"`self_attention({heads})` in op `{op}` cannot split {c} features into "
                f"{heads} heads",
                call.span,
                "take a head count that divides the width, or give each head's width: "
                "`self_attention(heads, head_dim = 64)`",
            )
        if not 0 <= a.get("dropout", 0) < 1:
            raise body.fail(
                f"`dropout` of `self_attention` in op `{op}` must be in [0, 1), not "
                f"{a['dropout']}",
                call.span,
                "write e.g. `self_attention(12, dropout = 0.1)`",
            )
        return shape, (1, 1)
    if name == "mlp":
        ratio = body.positive(call, a, "ratio", 4)
        body.positive(call, a, "hidden", ratio * c)
        out = body.positive(call, a, "out", c)
        return attrs.evolve(shape, channels=out), (1, 1)
    if name == "linear":
        out = body.positive(call, a, "out", body.env["C_out"])
        return attrs.evolve(shape, channels=out), (1, 1)
    # token_pool: the class token or the mean of the tokens, a flat vector
    return attrs.evolve(shape, height=1, width=1, flat=True, sequence=False), (1, 1)
