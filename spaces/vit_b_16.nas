# ViT-B/16 (Dosovitskiy et al., 2021) as torchvision builds it (`torchvision.models.vit_b_16()`):
# a fixed network, no choices. Its dropouts do nothing in evaluation (and are 0 in torchvision)
# and hold no parameters, so they are left out. tests/compiler/test_transformer_reference.py
# checks that it has torchvision's parameter count and, with torchvision's weights copied in,
# its outputs.

# The embedding: 16x16 patches, each a token of C_out features (a 16x16 convolution of stride
# 16), a learned class token before them and a learned position for each of the `tokens`.
op vit_embed(tokens) with stride 16 = patch_embed(16) -> class_token -> pos_embed(tokens)

# The encoder block (pre-norm): attention over the tokens, then an MLP on each token, each
# after a layer norm and each added to its input.
op encoder_block(heads, mlp_dim) =
    residual(layer_norm(eps = 1e-6) -> self_attention(heads))
    -> residual(layer_norm(eps = 1e-6) -> mlp(hidden = mlp_dim))

# The head: the encoder's last layer norm, the class token, a linear classifier.
op vit_head with head = layer_norm(eps = 1e-6) -> token_pool(first = 1) -> linear

# D is the embedding width; each of the 12 blocks has `heads` heads of D / heads features and an
# MLP of `mlp_dim` hidden features. A size x size image gives (size // 16)^2 patches, plus one
# class token.
network vit_b_16(D = 768, heads = 12, mlp_dim = 3072, classes = 1000, size = 224) {
    input(3, size)
    stem vit_embed(D, (size // 16) * (size // 16) + 1)
    repeat 12 encoder_block(D, heads, mlp_dim)
    head vit_head(classes)
}
