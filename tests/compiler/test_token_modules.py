"""The modules the transformer primitives build: each weight one tensor at the written size (what
a width choice will slice), head widths apart from the embedding width, mean pooling of tokens,
and `linear` on each token."""

from __future__ import annotations

import torch

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.compiler.tokens import SelfAttention
from nasc.dsl import format_space, load_space, parse_space

SPACE = """
op embed with stride 2 = patch_embed(2) -> pos_embed(16)
op block(heads, head_dim) =
    residual(layer_norm -> self_attention(heads, head_dim = head_dim))
    -> residual(layer_norm -> mlp(3))
    -> linear(out = C_out)
op mean_head with head = token_pool -> linear

network net(D = 12, E = 20, classes = 5) {
    input(3, 8)
    stem embed(D)
    block(E, 4, 5)
    head mean_head(classes)
}
"""


def build() -> torch.nn.Module:
    space = parse_space(SPACE, "tokens.nas", catalog=catalog())
    return compile_space(space, {}, CompileOptions(search=False)).eval()


def test_weights_are_single_tensors_at_the_written_sizes():
    """Attention of 4 heads of 5 features over 12 features holds one (3 x 4 x 5, 12) projection
    and a (12, 20) output projection; the MLP of ratio 3 holds (36, 12) and (12, 36); `linear`
    on tokens is (20, 12); no module per head."""
    net = build()
    [attention] = [m for m in net.modules() if isinstance(m, SelfAttention)]
    assert (attention.heads, attention.head_dim) == (4, 5)
    shapes = {key: tuple(value.shape) for key, value in net.stages[1].state_dict().items()}
    assert shapes["0.1.in_proj_weight"] == (60, 12) and shapes["0.1.in_proj_bias"] == (60,)
    assert shapes["0.1.out_proj.weight"] == (12, 20)
    assert shapes["1.1.fc1.weight"] == (36, 12) and shapes["1.1.fc2.weight"] == (12, 36)
    assert shapes["2.weight"] == (20, 12)
    assert len(shapes) == 14  # two layer norms, attention, MLP and linear: nothing per head
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in net.modules())


def test_mean_pooled_tokens_give_class_scores():
    """The network runs on 8x8 images (16 tokens of 2x2 patches) and its mean-pooling head gives
    5 scores per image, which change when only the last patch of the image changes."""
    net = build()
    image = torch.randn(2, 3, 8, 8)
    other = image.clone()
    other[:, :, 6:, 6:] += 1.0
    with torch.no_grad():
        scores, changed = net(image), net(other)
    assert scores.shape == (2, 5)
    assert not torch.allclose(scores, changed)


def test_attention_equals_torchs_multihead_attention_with_its_weights():
    """`SelfAttention` with the weights of `torch.nn.MultiheadAttention` copied in by name gives
    its outputs to 1e-5, in training mode without dropout too."""
    torch.manual_seed(0)
    reference = torch.nn.MultiheadAttention(24, 3, batch_first=True)
    ours = SelfAttention(24, 3, 8)
    ours.load_state_dict(reference.state_dict())
    tokens = torch.randn(2, 9, 24)
    expected = reference(tokens, tokens, tokens, need_weights=False)[0]
    torch.testing.assert_close(ours(tokens), expected, atol=1e-5, rtol=1e-5)


def test_vit_b_16_prints_and_parses_back_unchanged():
    """`format_space` of `spaces/vit_b_16.nas` (decimal `eps`, keyword arguments, the token
    arithmetic) parses back to a space that prints the same."""
    text = format_space(load_space("spaces/vit_b_16.nas", catalog=catalog()))
    assert "layer_norm(eps = 1e-6)" in text and "token_pool(first = 1)" in text
    assert format_space(parse_space(text, "again.nas", catalog=catalog())) == text
