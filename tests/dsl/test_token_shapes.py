"""Tests of token sequences in the shape checks: a patch embedding turns a map into tokens, ops on
tokens keep them or say how they change them, a head pools them, and a step given the wrong kind
of input is refused where it is written."""

from __future__ import annotations

from test_shapes import refused

from nasc.dsl import parse_space
from nasc.runtime.catalog import language_catalog

VIT = """
op embed(tokens) with stride 4 = {embed}
op block(heads) = residual(layer_norm -> self_attention(heads)) -> residual(layer_norm -> {mlp})
op pool_head with head = {head}

network vit(D = 32, classes = 10, size = 16) {{
    input(3, size)
    stem embed(D, {tokens})
    block(D, 4)
    {extra}
    head pool_head(classes)
}}
"""


def vit(
    embed="patch_embed(4) -> class_token -> pos_embed(tokens)",
    mlp="mlp(2)",
    head="layer_norm -> token_pool(first = 1) -> linear",
    tokens="17",
    extra="",
) -> str:
    """A small ViT whose embedding, MLP, head, token count and an extra stage can be changed."""
    return VIT.format(embed=embed, mlp=mlp, head=head, tokens=tokens, extra=extra)


def test_a_small_vit_passes():
    """A 16x16 image in 4x4 patches is 16 tokens, 17 with the class token: the checks pass."""
    parse_space(vit(), "space.nas", catalog=language_catalog())


def test_a_positional_embedding_of_the_wrong_length_is_refused_with_the_right_one():
    """`pos_embed(16)` given 17 tokens (the class token counts) is refused at the call, and the
    hint gives the length to write."""
    error = refused(
        vit(tokens="16"),
        "`pos_embed(16)` in op `embed` is given a sequence of 17 tokens",
        "pos_embed(tokens)",
        "op.embed",
    )
    assert "pos_embed(17)" in error.hint


def test_a_map_step_given_tokens_is_refused_at_the_step():
    """A `bn` inside an encoder block reads a map, but the block is given tokens."""
    error = refused(
        vit(mlp="mlp(2) -> bn"),
        "`bn` in op `block` reads a feature map, but it is given a sequence of 17 tokens of 32 "
        "features",
        "bn",
        "op.block",
    )
    assert "token_pool" in error.hint


def test_a_token_step_given_a_map_is_refused_at_the_step():
    """`layer_norm` before the patch embedding reads a 16x16 map: refused, with the hint to embed
    patches first."""
    error = refused(
        vit(embed="layer_norm -> patch_embed(4) -> class_token -> pos_embed(tokens)"),
        "`layer_norm` in op `embed` reads a sequence of tokens, but it is given a 16x16 map of 3 "
        "channels",
        "layer_norm -> patch",
        "op.embed",
    )
    assert "patch_embed" in error.hint


def test_a_head_that_does_not_pool_the_tokens_is_refused():
    """A head that ends in tokens (a `linear` on each token) gives no class scores."""
    error = refused(
        vit(head="layer_norm -> linear"),
        "the head `pool_head` does not end in class scores: it gives a sequence of 17 tokens",
        "pool_head with",
        "op.pool_head",
    )
    assert "token_pool" in error.hint


def test_a_prelude_block_after_the_embedding_is_refused_at_its_use():
    """A convolutional block of the prelude placed after the embedding is refused where the
    network places it (the prelude's own text is not the user's)."""
    error = refused(
        vit(extra="resblock(D)"),
        "`conv` in op `resblock` reads a feature map",
        "resblock(D)",
        "vit.network.resblock",
    )
    assert "sequence of 17 tokens" in error.message


def test_a_head_count_that_does_not_divide_the_width_is_refused():
    """`self_attention(5)` over 32 features has no whole head width: refused, with the hint to
    give `head_dim`."""
    text = vit().replace("block(D, 4)", "block(D, 5)")
    error = refused(
        text,
        "`self_attention(5)` in op `block` cannot split 32 features into 5 heads",
        "self_attention(heads)",
        "op.block",
    )
    assert "head_dim" in error.hint


def test_a_patch_that_does_not_divide_the_image_is_refused():
    """Patches of 3 do not tile a 16x16 image."""
    text = vit(embed="patch_embed(3) -> class_token -> pos_embed(tokens)")
    refused(
        text,
        "`patch_embed(3)` in op `embed` cannot cut a 16x16 map into 3x3 patches",
        "patch_embed(3)",
        "op.embed",
    )


def test_a_residual_around_the_class_token_is_refused():
    """A residual whose body adds a token adds sequences of two lengths."""
    text = vit(embed="patch_embed(4) -> residual(class_token) -> pos_embed(tokens)")
    refused(
        text,
        "a residual in op `embed` adds its input (a sequence of 16 tokens of 32 features) to its "
        "body's output (a sequence of 17 tokens",
        "residual(class_token)",
        "op.embed",
    )
