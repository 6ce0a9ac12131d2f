"""Transformers written in `.nas` are torchvision's and torch's: ViT-B/16 and a small ViT have
torchvision's parameter counts and, with its weights copied in by order, its outputs; one encoder
block is `torch.nn.TransformerEncoderLayer` (pre-norm, GELU)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from test_torchvision import build, count
from torchvision.models.vision_transformer import VisionTransformer

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.dsl import parse_space


def copy_by_order(net: torch.nn.Module, theirs: list[tuple[str, torch.Tensor]]) -> None:
    """Copy the tensors `theirs` into `net`'s parameters by order, each of the same shape."""
    ours = [(key, value) for key, value in net.state_dict().items() if torch.is_tensor(value)]
    assert len(ours) == len(theirs)
    with torch.no_grad():
        for (key, value), (their_key, their_value) in zip(ours, theirs, strict=True):
            assert value.shape == their_value.shape, (key, their_key)
            value.copy_(their_value)


def vit_tensors(reference: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """torchvision's ViT tensors in the `.nas` network's order: torchvision registers the class
    token before the patch convolution, the `.nas` embedding reads patches first."""
    tensors = list(reference.state_dict().items())
    return tensors[1:3] + tensors[:1] + tensors[3:]


def randomized(reference: torch.nn.Module) -> torch.nn.Module:
    """The reference with every parameter drawn at random (torchvision starts the class token and
    some biases at zero), so that each one matters in the comparison."""
    with torch.no_grad():
        for value in reference.parameters():
            value.normal_(std=0.05)
    return reference.eval()


def test_vit_b_16_has_torchvisions_parameter_count():
    """At 1000 classes and 224x224, `spaces/vit_b_16.nas` has torchvision's parameter count, and
    its tensors have torchvision's shapes in order."""
    net = build("vit_b_16")
    reference = torchvision.models.vit_b_16()
    assert count(net) == count(reference)
    shapes = [value.shape for value in net.state_dict().values() if torch.is_tensor(value)]
    assert shapes == [value.shape for _, value in vit_tensors(reference)]


@pytest.mark.slow
def test_vit_b_16_outputs_equal_torchvisions_with_its_weights():
    """With torchvision's ViT-B/16 weights copied in by order, eval outputs at 224x224 agree to
    1e-5 on one random image."""
    torch.manual_seed(0)
    reference = randomized(torchvision.models.vit_b_16())
    net = build("vit_b_16").eval()
    copy_by_order(net, vit_tensors(reference))
    image = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = reference(image)
        assert expected.abs().max() > 1e-3  # a real comparison, not one of zeros
        torch.testing.assert_close(net(image), expected, atol=1e-5, rtol=1e-5)


def test_small_vit_equals_torchvisions_vision_transformer():
    """`vit_b_16.nas` at a 32x32 image, width 64, 4 heads, MLP 128, 2 blocks (and patches of 4)
    has the parameter count and, with its weights copied in, the outputs of torchvision's
    `VisionTransformer` of those sizes."""
    torch.manual_seed(0)
    text = open("spaces/vit_b_16.nas").read()
    text = text.replace("with stride 16 = patch_embed(16)", "with stride 4 = patch_embed(4)")
    text = text.replace("(size // 16) * (size // 16)", "(size // 4) * (size // 4)")
    text = text.replace("repeat 12 encoder_block", "repeat 2 encoder_block")
    space = parse_space(text, "vit_small.nas", catalog=catalog())
    sizes = {"D": 64, "heads": 4, "mlp_dim": 128, "classes": 10, "size": 32}
    net = compile_space(space, sizes, CompileOptions(search=False)).eval()
    reference = VisionTransformer(
        image_size=32,
        patch_size=4,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        mlp_dim=128,
        num_classes=10,
    )
    reference = randomized(reference)
    assert count(net) == count(reference)
    copy_by_order(net, vit_tensors(reference))
    image = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = reference(image)
        assert expected.abs().max() > 1e-3
        torch.testing.assert_close(net(image), expected, atol=1e-5, rtol=1e-5)


BLOCK = """
op encoder_block(heads, mlp_dim) =
    residual(layer_norm -> self_attention(heads))
    -> residual(layer_norm -> mlp(hidden = mlp_dim))

network one_block(D = 32, heads = 4, mlp_dim = 48, size = 8) {
    input(3, size)
    stem patch_embed_stem(D)
    encoder_block(D, heads, mlp_dim)
    head token_mean(10)
}

op patch_embed_stem with stride 2 = patch_embed(2)
op token_mean with head = token_pool -> linear
"""


@pytest.mark.parametrize(("width", "heads", "mlp_dim"), [(32, 4, 48), (24, 1, 96)])
def test_encoder_block_equals_torchs_transformer_encoder_layer(width, heads, mlp_dim):
    """One `encoder_block` equals `torch.nn.TransformerEncoderLayer(norm_first=True, GELU,
    dropout 0, batch_first)` of the same sizes with its weights copied in, on a batch of token
    sequences, to 1e-5."""
    torch.manual_seed(0)
    space = parse_space(BLOCK, "one_block.nas", catalog=catalog())
    sizes = {"D": width, "heads": heads, "mlp_dim": mlp_dim}
    net = compile_space(space, sizes, CompileOptions(search=False)).eval()
    block = net.stages[1]
    layer = torch.nn.TransformerEncoderLayer(
        width, heads, mlp_dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    )
    layer = randomized(layer)
    theirs = dict(layer.state_dict())
    order = ["norm1", "self_attn.in_proj", "self_attn.out_proj", "norm2", "linear1", "linear2"]
    ordered = [(key, theirs[key]) for prefix in order for key in theirs if key.startswith(prefix)]
    assert count(block) == count(layer)
    copy_by_order(block, ordered)
    tokens = torch.randn(2, 7, width)
    with torch.no_grad():
        expected = layer(tokens)
        assert expected.abs().max() > 1e-3
        torch.testing.assert_close(block(tokens), expected, atol=1e-5, rtol=1e-5)
