"""Tests of products in op bodies: `product(body)` and `product(body, other)`, gates pooled to 1x1
by `global_pool` that scale every pixel of a map, their shape checks, and BN's decimal `eps`."""

from __future__ import annotations

import pytest
import torch

from nasc.compiler import get_op
from nasc.dsl import NasSemanticError, format_space, parse_space
from nasc.dsl.shapes import PRODUCT_HINT, op_shape
from nasc.runtime.catalog import language_catalog

SPACE = """{defs}
network net(C = 8) {{
    input(3, 16)
    stem conv3x3_bn(C)
    {block}(C)
    head pool_linear(10)
}}
"""

# Squeeze-and-excitation with a hard sigmoid (MobileNetV3), and LR-ASPP's gated branch.
SE = """op se_hs = product(global_pool -> conv(1, out = C_in // 2, bias = 1) -> relu
    -> conv(1, out = C_in, bias = 1) -> hardsigmoid)"""
GATED = """op gated = product(
    cbr: (conv(1) -> bn -> relu),
    scale: (global_pool -> conv(1) -> sigmoid)
)"""


def space(defs: str, block: str) -> str:
    """A small network that places the op `block` once, at width C, on an 16x16 map."""
    return SPACE.format(defs=defs, block=block)


def located(text: str, needle: str) -> tuple[int, int]:
    """The line and column of the first `needle` in `text`."""
    index = text.index(needle)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def refused(text: str, needle: str) -> NasSemanticError:
    """Assert that `text` is refused at the first `needle`, in the op's path, with a hint."""
    with pytest.raises(NasSemanticError) as info:
        parse_space(text, "space.nas", catalog=language_catalog())
    error = info.value
    where = (error.span.file, error.span.line, error.span.column)
    assert where == ("space.nas", *located(text, needle))
    assert error.path.startswith("op.") and error.hint
    return error


@pytest.mark.parametrize(("defs", "name"), [(SE, "se_hs"), (GATED, "gated")])
def test_a_map_times_a_gate_has_the_maps_shape(defs, name):
    """A product of a map and a gate pooled to 1x1 gives the map's shape, worked out without
    PyTorch as the built module computes it, and the gate scales each channel of every pixel."""
    parsed = parse_space(space(defs, name), "space.nas", catalog=language_catalog())
    shape = op_shape(parsed, name, 8, 8, 1, 16)
    assert (shape.channels, shape.height, shape.width, shape.pooled) == (8, 16, 16, False)
    module = get_op(name, parsed.opdefs).build(8, 8, 1, True).eval()
    image = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        out = module(image)
        assert out.shape == image.shape
        if name == "se_hs":  # the input times a per-channel factor in [0, 1]
            factor = out / image
            assert torch.allclose(factor, factor[:, :, :1, :1].expand_as(factor), atol=1e-5)
            assert factor.min() >= 0 and factor.max() <= 1


def test_labelled_factors_name_the_modules():
    """`product(cbr: ..., scale: ...)` names its factors' modules by their labels, in order, as
    torchvision's LRASPPHead does, and holds no module for the pooling's output shape."""
    parsed = parse_space(space(GATED, "gated"), "space.nas", catalog=language_catalog())
    module = get_op("gated", parsed.opdefs).build(8, 4, 1, True)
    assert [name for name, _ in module.named_children()] == ["cbr", "scale"]
    assert list(module.state_dict())[:2] == ["cbr.0.weight", "cbr.1.weight"]
    assert list(module.state_dict())[-1] == "scale.1.weight"


def test_a_product_of_two_maps_multiplies_them():
    """`product(A, B)` of two maps of one shape is their elementwise product."""
    defs = "op twice = product(conv(1, bias = 1), conv(3, bias = 1))"
    parsed = parse_space(space(defs, "twice"), "space.nas", catalog=language_catalog())
    module = get_op("twice", parsed.opdefs).build(4, 6, 1, True).eval()
    image = torch.randn(1, 4, 8, 8)
    first, second = module._modules["0"], module._modules["other"]
    with torch.no_grad():
        torch.testing.assert_close(module(image), first(image) * second(image))


def test_a_product_of_mismatched_sizes_is_refused_at_the_product():
    """A gate pooled by 2 rather than to 1x1 multiplies an 8x8 map by a 16x16 one: refused at
    `product`, with the sizes and the hint that names `global_pool`."""
    defs = "op half_gate = product(avgpool(2, stride = 2, pad = 0) -> conv(1) -> sigmoid)"
    error = refused(space(defs, "half_gate"), "product")
    message = "a product in op `half_gate` multiplies a 8x8 map by one of 16x16"
    assert error.message.startswith(message)
    assert error.hint == PRODUCT_HINT and error.path == "op.half_gate"


def test_a_product_of_mismatched_channels_is_refused():
    """A gate that ends with other channels than the map it scales is refused at `product`."""
    defs = "op narrow = product(global_pool -> conv(1, out = 4) -> sigmoid)"
    error = refused(space(defs, "narrow"), "product")
    assert "multiplies 4 channels by 8" in error.message
    assert "same channels" in error.hint


def test_a_gate_flattened_by_gap_is_refused():
    """`gap` flattens: a product of a map and a flat vector is refused, pointing to
    `global_pool`."""
    error = refused(space("op flat = product(gap)", "flat"), "product")
    assert "flat vector" in error.message and "global_pool" in error.hint


def test_a_product_parses_and_prints_back():
    """A space whose ops multiply prints as it was written and parses back to the same space."""
    text = space(SE + "\n" + GATED, "gated")
    parsed = parse_space(text, "space.nas", catalog=language_catalog())
    printed = format_space(parsed)
    assert GATED in printed and SE in printed
    assert parse_space(printed, catalog=language_catalog()) == parsed


def test_bn_takes_a_decimal_eps():
    """`bn(eps = 0.001)` builds a BatchNorm with that eps; other arguments stay integers, and a
    non-positive eps is refused."""
    defs = "op cbn = conv(1) -> bn(eps = 0.001)"
    parsed = parse_space(space(defs, "cbn"), "space.nas", catalog=language_catalog())
    module = get_op("cbn", parsed.opdefs).build(4, 4, 1, True)
    assert module[1].eps == 0.001
    text = space("op cbn = conv(1) -> bn(eps = 0)", "cbn")
    assert "`eps` of `bn` in op `cbn` must be positive" in refused(text, "bn(").message
    text = space("op cbn = conv(1.5) -> bn", "cbn")
    assert "must be an integer, not 1.5" in refused(text, "1.5").message
