"""The supernet of a space with width choices: entangled weights sliced to the live widths."""

from __future__ import annotations

import torch

from nasc.compiler import compile_space, export_network
from nasc.dsl import Genotype, load_space, parse_space
from nasc.dsl.ir import BLOCK_EDGE
from nasc.runtime.testing.widths import conv_output_shapes

MBCONV = """
op mbconv(e, k) = residual(
    (if e == 1 then identity else (conv(1, out = e * C_in) -> bn -> relu6))
    -> dwconv(k, stride = stride) -> bn -> relu6
    -> conv(1) -> bn
)

network net(C = {8, 16}, classes = 10) {
    input(3, 8)
    stem conv3x3_bn(C)
    mbconv({8, 16}, {3, 6}, 3, stride = 2)
    head bn_relu_pool_linear(classes)
}
"""


def decided(space, **widths) -> Genotype:
    """The genotype that keeps these widths (by label)."""
    return Genotype({label: {BLOCK_EDGE: (str(width),)} for label, width in widths.items()})


def test_a_masked_width_equals_the_network_of_that_width(catalog):
    """NATS size space masked to one width per layer computes what the fixed network of those
    widths computes with the sliced weights, also after BN statistics moved."""
    torch.manual_seed(0)
    space = load_space("nats_sss", catalog=catalog)
    net = compile_space(space, {"size": 8}, seed=0)
    genotype = decided(space, C1=16, C2=8, C3=24, C4=64, C5=40)
    net.arch.set_mixing("sum")
    net.arch.restrict(genotype)
    x = torch.randn(4, 3, 8, 8)
    net.train()
    net(x)  # moves the sliced running statistics
    fixed = export_network(space, genotype, {"size": 8}, supernet=net).eval()
    net.eval()
    with torch.no_grad():
        assert torch.allclose(net(x), fixed(x), atol=1e-5)
    # Every convolution runs at the fixed network's width: nothing at 64 with zeros.
    assert conv_output_shapes(net, x) == conv_output_shapes(fixed, x)


def test_an_expansion_ratio_and_a_parameter_width_slice_one_block(catalog):
    """`mbconv({8, 16}, {3, 6}, 3)`: the hidden width follows the ratio, the output the width;
    each masked choice equals its fixed network."""
    space = parse_space(MBCONV, "mb.nas", catalog=catalog)
    assert space.architectures() == 8
    net = compile_space(space, seed=0)
    net.arch.set_mixing("sum")
    x = torch.randn(2, 3, 8, 8)
    for c, block, ratio in [(8, 16, 3), (16, 8, 6), (8, 8, 3)]:
        genotype = decided(space, C=c, width1=block, width2=ratio)
        net.arch.restrict(genotype)
        fixed = export_network(space, genotype, supernet=net).eval()
        net.eval()
        with torch.no_grad():
            assert torch.allclose(net(x), fixed(x), atol=1e-5)
        assert conv_output_shapes(net, x) == conv_output_shapes(fixed, x)
        expanded = [shape[1] for shape in conv_output_shapes(fixed, x)]
        assert ratio * c in expanded


def test_all_live_widths_mix_by_channel_masks_with_gradients(catalog):
    """With every width live and softmax mixing, the architecture parameters of every width
    choice get gradients, and the output differs from the largest width alone."""
    space = load_space("nats_sss", catalog=catalog)
    net = compile_space(space, {"size": 8}, seed=0)
    net.arch.set_mixing("softmax")
    x = torch.randn(4, 3, 8, 8)
    net.train()
    mixed = net(x)
    mixed.sum().backward()
    for label in ("C1", "C2", "C3", "C4", "C5"):
        grad = net.arch.alphas[net.arch.alpha_key(label)].grad
        assert grad is not None and grad.abs().sum() > 0
    net.arch.restrict(decided(space, C1=64, C2=64, C3=64, C4=64, C5=64))
    with torch.no_grad():
        assert not torch.allclose(net(x), mixed.detach())


def test_widths_share_one_tensor_by_default(catalog):
    """The candidates of a width choice are slices of one weight built at the largest width: the
    supernet of a block whose width is chosen has the weights of the largest block."""
    text = """
network net(classes = 10) {
    input(3, 8)
    stem conv3x3_bn(16)
    resblock({8, 16, 32}, stride = 2)
    head bn_relu_pool_linear(classes)
}
"""
    largest = text.replace("{8, 16, 32}", "32")
    net = compile_space(parse_space(text, "w.nas", catalog=catalog))
    plain = compile_space(parse_space(largest, "p.nas", catalog=catalog))
    assert net.num_parameters() == plain.num_parameters()


def test_an_op_whose_structure_changes_with_the_width_gets_a_module_per_shape(catalog):
    """`skip_connect` at 16 -> 16 is the identity and at 16 -> 8 a projection: each masked
    width runs its own structure and equals its fixed network."""
    text = """
network net(classes = 10) {
    input(3, 8)
    stem conv3x3_bn(16)
    skip_connect({8, 16})
    head bn_relu_pool_linear(classes)
}
"""
    space = parse_space(text, "s.nas", catalog=catalog)
    net = compile_space(space, seed=0)
    net.arch.set_mixing("sum")
    x = torch.randn(2, 3, 8, 8)
    for width in (8, 16):
        genotype = decided(space, width1=width)
        net.arch.restrict(genotype)
        fixed = export_network(space, genotype, supernet=net).eval()
        net.eval()
        with torch.no_grad():
            assert torch.allclose(net(x), fixed(x), atol=1e-5)
        assert net.num_parameters() == fixed.num_parameters()
