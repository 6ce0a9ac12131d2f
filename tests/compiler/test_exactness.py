"""Exported networks hit the published sizes, and closed-form counts for random cells."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nasc.compiler import CompileOptions, catalog, export_network
from nasc.dsl import load_space, parse_arch
from nasc.dsl.genotype import genotype_from_darts

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DARTS_OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
NB201_REFERENCE = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
DARTS_V2 = {
    "normal": [
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("skip_connect", 0),
        ("dil_conv_3x3", 2),
    ],
    "reduce": [
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
    ],
}


@pytest.fixture(scope="module")
def nb201():
    return load_space("nb201", catalog=catalog())


@pytest.fixture(scope="module")
def darts():
    return load_space("darts", catalog=catalog())


@pytest.fixture(scope="module")
def darts_imagenet():
    return load_space("darts_imagenet", catalog=catalog())


def count(network) -> int:
    return sum(p.numel() for p in network.parameters())


def nb201_string(ops) -> str:
    """The NB201 string of six edge ops given in the order x->n1, x->n2, n1->n2, x->n3, ..."""
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


def nb201_closed_form(ops, width: int, depth: int, classes: int, channels: int = 3) -> int:
    """NAS-Bench-201's evaluation network, counted from its definition.

    Stem: 3x3 conv without bias and an affine BN. A cell at width c: per edge 9c^2 for a 3x3
    ReLU-Conv-BN, c^2 for a 1x1 one, each with an affine BN (2c) and no conv bias; skip,
    pooling and zero have no parameters. Three stages of N cells at C, 2C, 4C; between them a
    residual block (two 3x3 ReLU-Conv-BN and an average-pool + 1x1 conv shortcut without BN).
    Head: BN, ReLU, global pooling, linear.
    """
    kernel_area = {"nor_conv_3x3": 9, "nor_conv_1x1": 1}
    total = 9 * channels * width + 2 * width
    for c in (width, 2 * width, 4 * width):
        cell = sum(kernel_area[op] * c * c + 2 * c for op in ops if op in kernel_area)
        total += depth * cell
    for c_in, c_out in ((width, 2 * width), (2 * width, 4 * width)):
        total += 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out + c_in * c_out
    return total + 2 * 4 * width + 4 * width * classes + classes


def darts_op_closed_form(op: str, c: int, stride: int) -> int:
    """A DARTS op at width c in an evaluation network (affine BNs, bias-free convs)."""
    if op.startswith("sep_conv_"):
        k = int(op[-1])
        return 2 * (k * k * c + c * c + 2 * c)  # two ReLU-depthwise-pointwise-BN blocks
    if op.startswith("dil_conv_"):
        k = int(op[-1])
        return k * k * c + c * c + 2 * c
    if op == "skip_connect" and stride == 2:
        return c * c + 2 * c  # FactorizedReduce: two 1x1 convs to c/2 channels each, then BN
    return 0  # none, pooling (no BN in evaluation networks), identity


def darts_cells_closed_form(genotype, stem: int, width: int, layers: int) -> tuple[int, int]:
    """DARTS cells after a stem of `stem` channels: their parameters and output channels.

    Reductions at layers // 3 and 2 * layers // 3 double the width; each cell preprocesses its
    two inputs to its width c (ReLU-Conv1x1-BN, or FactorizedReduce from twice the resolution:
    both c_in * c + 2c), runs two ops per node (stride 2 on edges from the inputs in a reduction
    cell), and concatenates its four nodes (4c channels).
    """
    total = 0
    c_pp, c_p, c = stem, stem, width
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            c *= 2
        total += c_pp * c + 2 * c + c_p * c + 2 * c
        for op, j in genotype["reduce" if reduction else "normal"]:
            total += darts_op_closed_form(op, c, 2 if reduction and j < 2 else 1)
        c_pp, c_p = c_p, 4 * c
    return total, c_p


def darts_closed_form(genotype, width: int, layers: int, classes: int, multiplier: int = 3) -> int:
    """The DARTS CIFAR evaluation network, counted from its definition (no auxiliary head).

    Stem: 3x3 conv to 3C and BN; then the cells; classifier: global pooling and linear.
    """
    stem = multiplier * width
    cells, channels = darts_cells_closed_form(genotype, stem, width, layers)
    return 9 * 3 * stem + 2 * stem + cells + channels * classes + classes


def darts_imagenet_closed_form(genotype, width: int, layers: int, classes: int) -> int:
    """The DARTS ImageNet evaluation network (no auxiliary head).

    Stem 0: 3x3 convs to C/2 and to C, each with BN; stem 1: a 3x3 conv and BN at C. Cells read
    both stems (the first through FactorizedReduce); classifier: global pooling and linear.
    """
    half = width // 2
    stems = 9 * 3 * half + 2 * half + 9 * half * width + 2 * width + 9 * width * width + 2 * width
    cells, channels = darts_cells_closed_form(genotype, width, width, layers)
    return stems + cells + channels * classes + classes


def darts_aux_closed_form(c_in: int, classes: int) -> int:
    """DARTS' CIFAR auxiliary head: 1x1 conv to 128 + BN, 2x2 conv to 768 + BN, linear."""
    return c_in * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * classes + classes


def test_nb201_reference_cell_has_published_size(nb201):
    """The NB201 reference cell at C=16, N=5, 10 classes has exactly 1,288,506 parameters."""
    overrides = {"C": 16, "N": 5, "classes": 10}
    network = export_network(nb201, parse_arch(nb201, NB201_REFERENCE), overrides)
    assert count(network) == 1_288_506
    assert network.num_parameters() == 1_288_506


def test_nb201_closed_form_matches_published_size():
    """The closed form written in this file gives the published NB201 size, so it is sound."""
    ops = [
        "nor_conv_3x3",
        "nor_conv_3x3",
        "nor_conv_3x3",
        "skip_connect",
        "nor_conv_3x3",
        "nor_conv_3x3",
    ]
    assert nb201_string(ops) == NB201_REFERENCE
    assert nb201_closed_form(ops, 16, 5, 10) == 1_288_506


def test_darts_v2_has_published_size(darts):
    """DARTS_V2 at C=36 with 20 cells has exactly 3,349,342 parameters without the aux head."""
    overrides = {"C": 36, "layers": 20}
    genotype = parse_arch(darts, "DARTS_V2")
    network = export_network(darts, genotype, overrides)
    assert count(network) == 3_349_342
    assert darts_closed_form(DARTS_V2, 36, 20, 10) == 3_349_342


def test_darts_v2_auxiliary_head_reads_the_last_reduction(darts):
    """With the auxiliary head, only the head's own parameters are added (576 input channels)."""
    overrides = {"C": 36, "layers": 20}
    options = CompileOptions(search=False, auxiliary=True)
    network = export_network(darts, parse_arch(darts, "DARTS_V2"), overrides, options)
    assert count(network) == 3_349_342 + darts_aux_closed_form(4 * 4 * 36, 10)


def test_darts_v2_imagenet_has_published_size(darts_imagenet):
    """DARTS_V2 in the ImageNet network (C=48, 14 cells, 1000 classes) has 4,718,752 (4.7M)."""
    network = export_network(darts_imagenet, parse_arch(darts_imagenet, "DARTS_V2"))
    assert count(network) == 4_718_752
    assert darts_imagenet_closed_form(DARTS_V2, 48, 14, 1000) == 4_718_752


def test_darts_genotype_from_dict_matches_the_named_one(darts):
    """The DARTS_V2 pairs written in this file are the genotype `DARTS_V2` names."""
    written = dict(DARTS_V2, normal_concat=[2, 3, 4, 5], reduce_concat=[2, 3, 4, 5])
    assert genotype_from_darts(darts, written) == parse_arch(darts, "DARTS_V2")


@given(
    ops=st.lists(st.sampled_from(NB201_OPS), min_size=6, max_size=6),
    width=st.integers(2, 12),
    depth=st.integers(1, 3),
    classes=st.integers(2, 12),
)
def test_nb201_cells_match_closed_form(nb201, ops, width, depth, classes):
    """For any NB201 cell, the exported network has the closed-form parameter count."""
    overrides = {"C": width, "N": depth, "classes": classes}
    network = export_network(nb201, parse_arch(nb201, nb201_string(ops)), overrides)
    assert count(network) == nb201_closed_form(ops, width, depth, classes)


def node_pairs(node: int):
    """Two distinct (op, input) pairs for DARTS node `node`, which reads inputs 0..node+1."""
    pair = st.tuples(st.sampled_from(DARTS_OPS), st.integers(0, node + 1))
    return st.lists(pair, min_size=2, max_size=2, unique=True)


darts_cells = st.tuples(*(node_pairs(node) for node in range(4))).map(
    lambda nodes: [pair for pairs in nodes for pair in pairs]
)


@given(
    normal=darts_cells,
    reduce=darts_cells,
    width=st.sampled_from([2, 4, 6, 8]),
    layers=st.integers(3, 8),
    classes=st.integers(2, 12),
)
def test_darts_genotypes_match_closed_form(darts, normal, reduce, width, layers, classes):
    """For any DARTS genotype, the exported network has the closed-form parameter count."""
    written = {"normal": normal, "reduce": reduce}
    genotype = genotype_from_darts(darts, written)
    overrides = {"C": width, "layers": layers, "classes": classes}
    network = export_network(darts, genotype, overrides)
    assert count(network) == darts_closed_form(written, width, layers, classes)


@given(
    normal=darts_cells,
    reduce=darts_cells,
    width=st.sampled_from([2, 4, 6, 8]),
    layers=st.integers(3, 8),
    classes=st.integers(2, 12),
)
def test_darts_imagenet_genotypes_match_closed_form(
    darts_imagenet, normal, reduce, width, layers, classes
):
    """For any DARTS genotype, the ImageNet network has the closed-form parameter count."""
    written = {"normal": normal, "reduce": reduce}
    genotype = genotype_from_darts(darts_imagenet, written)
    overrides = {"C": width, "layers": layers, "classes": classes}
    network = export_network(darts_imagenet, genotype, overrides)
    assert count(network) == darts_imagenet_closed_form(written, width, layers, classes)
