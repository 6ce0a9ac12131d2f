# vit_tiny: a small searchable vision transformer. The image is cut into 2x2 patches, each a
# token, with a class token and learned positions; each of the N blocks chooses among an encoder
# block with 2 heads, one with 4 heads (each with its own weights, until width choices share
# them), an MLP-only block (no attention) and `skip_connect`, which makes the depth searchable.
# The head reads the class token. On the 8x8 digits: `-D channels=1 -D size=8`.

# 2x2 patches to tokens of C_out features, a class token before them and one learned position
# per token (the patches, plus the class token).
op vit_patches(tokens) with stride 2 = patch_embed(2) -> class_token -> pos_embed(tokens)

# A pre-norm encoder block: self-attention with `heads` heads, then an MLP twice as wide as the
# tokens, each after a layer norm and each added to its input.
op attn_block(heads) =
    residual(layer_norm -> self_attention(heads))
    -> residual(layer_norm -> mlp(2))

# The same block without attention: each token on its own.
op mlp_block = residual(layer_norm -> mlp(2))

# A last layer norm, the class token, a linear classifier.
op class_token_head with head = layer_norm -> token_pool(first = 1) -> linear

network vit_tiny(D = 32, N = 2, classes = 10, channels = 3, size = 32) {
    input(channels, size)
    stem vit_patches(D, (size // 2) * (size // 2) + 1)
    repeat N choose block = {attn_block(2), attn_block(4), mlp_block, skip_connect} @ D
    head class_token_head(classes)
}
