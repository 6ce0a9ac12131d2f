"""Tests that `spaces/darts.nas` compiles to the IS-DARTS reference's DARTS-space supernet, and
`spaces/darts_original.nas` to the DARTS paper's own search supernet."""

from __future__ import annotations

import pytest
import torch
from darts_reference import REFERENCE_DARTS_ORDER, reference_search_weights
from torch import nn

from nasc.compiler import CompileOptions, compile_space, export_network
from nasc.compiler.ops import catalog
from nasc.dsl import load_space
from nasc.dsl.genotype import parse_arch

SMALL = {"C": 4, "layers": 5, "size": 8}


def supernet(name: str):
    return compile_space(load_space(name, catalog=catalog()), SMALL, CompileOptions(), seed=0)


def pooling_candidates(net):
    for cell in net.cells():
        for edge, ops in cell.edges.items():
            for op in ("avg_pool_3x3", "max_pool_3x3"):
                yield f"{cell.cell_type}.{edge}:{op}", ops[op], cell.width


def call_order(module: nn.Module, x: torch.Tensor) -> list[type]:
    """The types of the leaf modules that run, in the order they run."""
    order, handles = [], []
    for child in module.modules():
        if not list(child.children()):
            handles.append(child.register_forward_hook(lambda m, i, o: order.append(type(m))))
    module.eval()
    with torch.no_grad():
        module(x)
    for handle in handles:
        handle.remove()
    return order


def test_darts_pooling_candidates_are_bare():
    """Every pooling candidate of the DARTS search supernet is a bare 3x3 pooling, no BN."""
    for name, module, _ in pooling_candidates(supernet("darts")):
        assert not any(isinstance(m, nn.BatchNorm2d) for m in module.modules()), name
        assert isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)) or all(
            isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) for m in module.children()
        ), name


def test_darts_search_head_is_bn_relu_pool_linear():
    """The search supernet ends in BN, ReLU, global pooling and a linear layer (the reference's
    `lastact`), while the network `nasc train` builds from a genotype ends in pooling and a
    linear layer, as DARTS' evaluation network does."""
    net = supernet("darts")
    head = net.stages[-1]
    features = torch.randn(2, head.classifier.in_features, 2, 2)
    assert call_order(head, features) == [
        nn.BatchNorm2d,
        nn.ReLU,
        nn.AdaptiveAvgPool2d,
        nn.Linear,
    ]
    space = load_space("darts", catalog=catalog())
    trained = export_network(space, parse_arch(space, "DARTS_V2"), SMALL)
    head = trained.stages[-1]
    assert call_order(head, features) == [nn.AdaptiveAvgPool2d, nn.Linear]


def test_darts_candidates_follow_the_reference_order():
    """Every edge of both cell types lists the reference's candidates in its order."""
    space = load_space("darts", catalog=catalog())
    for cell in space.used_cells():
        for edge in cell.edges:
            assert tuple(edge.candidates) == REFERENCE_DARTS_ORDER, f"{cell.name}.{edge.key}"


def test_darts_original_is_the_darts_papers_supernet():
    """`darts_original.nas` keeps the DARTS search code's BN after pooling and its plain head."""
    net = supernet("darts_original")
    for name, module, width in pooling_candidates(net):
        assert call_order(module, torch.randn(2, width, 4, 4))[-1] is nn.BatchNorm2d, name
    head = net.stages[-1]
    features = torch.randn(2, head.classifier.in_features, 2, 2)
    assert call_order(head, features) == [nn.AdaptiveAvgPool2d, nn.Linear]


@pytest.mark.parametrize("name", ["darts", "darts_original"])
def test_both_darts_spaces_train_the_same_evaluation_network(name):
    """A genotype exported from either space is the same standalone network, by parameters."""
    space = load_space(name, catalog=catalog())
    network = export_network(space, parse_arch(space, "DARTS_V2"), {"C": 36, "layers": 20})
    assert network.num_parameters() == 3_349_342


@pytest.mark.parametrize(("C", "N"), [(16, 2), (8, 1)])
def test_darts_supernet_has_the_reference_weights_less_its_conv_biases(C, N):
    """The search supernet of `darts.nas` (3N + 2 cells, no auxiliary head, as the reference's)
    has the weights of the reference's search network, counted from its structure, less the
    biases of its convolutions in front of non-affine BNs (which those BNs cancel)."""
    values = {"C": C, "layers": 3 * N + 2}
    net = compile_space(load_space("darts", catalog=catalog()), values, CompileOptions(), seed=0)
    assert net.num_parameters() == reference_search_weights(C, N, biases=False)
    if (C, N) == (16, 2):  # the search defaults, as docs/language.md states them
        assert net.num_parameters() == 1_931_130
        assert reference_search_weights(C, N) == 1_959_418
