"""Tests of the IR: comparison subsets, architecture counts, cells and the resolved macro."""

from __future__ import annotations

import math

import attrs
import pytest
from darts_reference import REFERENCE_DARTS_ORDER

from nasc.dsl import lint_space, load_space, parse_space
from nasc.dsl.ir import Cell, Edge, resolve_params
from nasc.dsl.macro import IMAGE, halve, instantiate

TINY = """
ops small = {none, skip_connect, nor_conv_3x3}

cell used(x) {
    n1 = x:small
    keep 1 per edge
    out n1
}

cell spare(x) {
    n1 = x:small
    keep 1 per edge
    out n1
}

cell plain(x) {
    n1 = x:skip_connect
    out n1
}

network net(C = 16) {
    input(3, 32)
    plain @ C
    used @ C
    plain @ C
    head pool_linear(10)
}
"""


def test_nb201_has_15625_architectures(nb201):
    """NB201 is 5^6: one subset of five candidates per edge, one survivor each."""
    cell = nb201.cell("nb201_cell")
    assert [subset.label for subset in cell.subsets] == [edge.key for edge in cell.edges]
    assert len(cell.subsets) == 6
    assert all(subset.k == 1 and len(subset.members) == 5 for subset in cell.subsets)
    assert nb201.architectures() == 15_625


def test_nb201_subset_members_follow_edge_and_set_order(nb201):
    """A per-edge subset lists (edge, op) pairs in the candidate set's order."""
    subset = nb201.cell("nb201_cell").subsets[0]
    assert subset.members == tuple(
        ("x->n1", op)
        for op in ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    )
    assert subset.edges == ("x->n1",)


def test_darts_architecture_count(darts):
    """DARTS keeps 2 of all candidates into each node; two cell types multiply."""
    per_cell = math.comb(16, 2) * math.comb(24, 2) * math.comb(32, 2) * math.comb(40, 2)
    for name in ("normal", "reduce"):
        cell = darts.cell(name)
        assert [subset.label for subset in cell.subsets] == ["n0", "n1", "n2", "n3"]
        assert [len(subset.members) for subset in cell.subsets] == [16, 24, 32, 40]
        assert all(subset.k == 2 for subset in cell.subsets)
        assert cell.architectures() == per_cell
    assert darts.architectures() == per_cell**2


def test_darts_node_subset_spans_its_edges(darts):
    """A per-node subset holds every candidate of every edge into the node, in the IS-DARTS
    reference's order (sources first, then its candidate order), which breaks exact ties."""
    subset = darts.cell("normal").subsets[1]
    assert subset.edges == ("c_k2->n1", "c_k1->n1", "n0->n1")
    assert subset.members == tuple(
        (edge, op) for edge in subset.edges for op in REFERENCE_DARTS_ORDER
    )


def test_tricell_has_1792_architectures(tricell):
    """An explicit subset comes first; the `per edge` rule covers the remaining choices."""
    space = tricell
    cell = space.cell("tri")
    assert [(subset.label, subset.k, len(subset.members)) for subset in cell.subsets] == [
        ("{x->a, a->b}", 2, 8),
        ("x->b", 1, 4),
        ("a->c", 1, 4),
        ("b->c", 1, 4),
    ]
    assert space.architectures() == math.comb(8, 2) * 4**3 == 1_792


def test_subsets_partition_the_choices(darts, nb201, tricell):
    """Every choice candidate of every reference cell lies in exactly one subset."""
    spaces = [darts, nb201, tricell]
    for cell in (cell for space in spaces for cell in space.cells):
        members = [member for subset in cell.subsets for member in subset.members]
        expected = [(edge.key, op) for edge in cell.choices for op in edge.candidates]
        assert sorted(members) == sorted(expected)
        assert len(set(members)) == len(members)


def test_cell_nodes_and_edges(nb201):
    """A cell lists its inputs and nodes in order, and an edge per source and target, each from
    an earlier name (the cell is a DAG)."""
    cell = nb201.cell("nb201_cell")
    order = [*cell.input_names, *cell.node_names]
    assert order == ["x", "n1", "n2", "n3"]
    assert cell.inputs[0].adapter is None
    assert cell.nodes[1].name == "n2" and cell.nodes[1].combine == "sum"
    assert {(edge.source, edge.target) for edge in cell.edges} == {
        ("x", "n1"),
        ("x", "n2"),
        ("n1", "n2"),
        ("x", "n3"),
        ("n1", "n3"),
        ("n2", "n3"),
    }
    assert len(cell.edges) == len({edge.key for edge in cell.edges})
    assert all(order.index(edge.source) < order.index(edge.target) for edge in cell.edges)
    edge = cell.edge("n1->n3")
    assert edge.choice == "nb201"
    assert edge.ops == ()
    assert edge.candidates[0] == "none"
    assert [cell.name for cell in nb201.cells] == ["nb201_cell"]


def test_cell_attributes_of_fixed_edges_and_adapters(darts, tricell, catalog):
    """Cells carry adapters, fixed ops and concat and product combiners."""
    inputs = {item.name: item for item in darts.cell("normal").inputs}
    assert inputs["c_k1"].adapter == "preprocess"
    tri = tricell.cell("tri").edge("x->c")
    assert (tri.ops, tri.choice, tri.candidates) == (("skip_connect",), None, ())
    text = """
    cell c(x) {
        n1 = concat(x:nor_conv_3x3)
        n2 = n1:none * x:skip_connect
        out n2
    }
    network n() { input(3, 8) c @ 4 head pool_linear(2) }
    """
    nodes = parse_space(text, catalog=catalog).cell("c").nodes
    combine = {node.name: node.combine for node in nodes}
    assert combine["n1"] == "concat"
    assert combine["n2"] == "product"


def test_terms_from_one_source_merge_into_one_edge():
    """Fixed ops and a choice from one source into one node form one edge."""
    text = """
    ops s = {nor_conv_3x3, avg_pool_3x3}
    cell c(x) {
        n1 = x:none + x:s + x:skip_connect
        keep 1 per edge
        out n1
    }
    network n() { input(3, 8) c @ 4 head pool_linear(2) }
    """
    cell = parse_space(text).cell("c")
    assert cell.edges == (
        Edge(
            source="x",
            target="n1",
            ops=("none", "skip_connect"),
            choice="s",
            candidates=("nor_conv_3x3", "avg_pool_3x3"),
        ),
    )
    assert cell.edge("x->n1").is_choice
    assert cell.choices == cell.edges


def test_used_cells_and_is_fixed():
    """Only placed cells count: an unplaced cell's choices neither multiply nor unfix the space."""
    space = parse_space(TINY)
    assert [cell.name for cell in space.used_cells()] == ["plain", "used"]
    assert space.architectures() == 3
    assert not space.is_fixed
    fixed = parse_space(TINY.replace("    used @ C\n", ""))
    assert [cell.name for cell in fixed.used_cells()] == ["plain"]
    assert fixed.is_fixed
    assert fixed.architectures() == 1
    assert [cell.name for cell in fixed.cells] == ["used", "spare", "plain"]


def test_ir_values_are_frozen(nb201):
    """IR values cannot be changed in place; `attrs.evolve` makes changed copies."""
    cell = nb201.cell("nb201_cell")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cell.name = "other"
    renamed = attrs.evolve(cell, name="other")
    assert renamed.name == "other" and cell.name == "nb201_cell"
    assert isinstance(cell.edges, tuple) and isinstance(cell.nodes, tuple)


def test_cell_flags_are_sorted_and_unique():
    """Flags are a sorted set, so `with a, b` and `with b, a, b` mean the same cell."""
    cell = Cell(name="c", inputs=(), nodes=(), edges=(), output=(), flags=["reduction", "pool_bn"])
    assert cell.flags == ("pool_bn", "reduction")
    assert cell.reduction
    again = Cell(name="c", inputs=(), nodes=(), edges=(), output=(), flags=["pool_bn"] * 2)
    assert again.flags == ("pool_bn",) and not again.reduction


def test_lint_returns_the_space(nb201, catalog):
    """`lint_space` returns the space itself so calls chain."""
    assert lint_space(nb201, catalog) is nb201


# --- the macro network ----------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [8, 20])
def test_darts_macro(darts, catalog, layers):
    """DARTS places `layers` cells with reductions at layers//3 and 2*layers//3 and one aux head."""
    plan = instantiate(darts, {"layers": layers}, catalog)
    assert plan.params["layers"] == layers
    assert (plan.channels, plan.size) == (3, 32)
    stem, *rest = plan.stages
    assert (stem.kind, stem.name, stem.inputs, stem.out_channels, stem.out_size) == (
        "stem",
        "conv3x3_bn",
        (IMAGE,),
        48,
        32,
    )
    cells = [stage for stage in plan.stages if stage.kind == "cell"]
    assert len(cells) == layers
    assert [i for i, stage in enumerate(cells) if stage.name == "reduce"] == [
        layers // 3,
        2 * layers // 3,
    ]
    widths = [16] * (layers // 3) + [32] * (2 * layers // 3 - layers // 3)
    widths += [64] * (layers - 2 * layers // 3)
    assert [stage.width for stage in cells] == widths
    assert [stage.in_size for stage in cells] == [
        32 if i <= layers // 3 else 16 if i <= 2 * layers // 3 else 8 for i in range(layers)
    ]
    for stage in cells:
        assert stage.out_channels == 4 * stage.width  # concat of four nodes
        assert stage.out_size == (
            halve(stage.in_size, 2) if stage.name == "reduce" else stage.in_size
        )
        assert stage.stride == (2 if stage.name == "reduce" else 1)
    # the first cell reads the stem twice: s0 = s1 = stem(x)
    assert cells[0].inputs == (stem.index, stem.index)
    assert cells[0].in_channels == (48, 48)
    assert cells[1].inputs == (stem.index, cells[0].index)
    # after a reduction, the older input is twice as large and its adapter reduces (stride 2)
    for before, after in zip(cells, cells[1:], strict=False):
        if before.name == "reduce":
            assert after.input_strides == (2, 1)
            assert after.node_channels["c_k2"] == after.width
        else:
            assert after.input_strides == (1, 1)
    aux = [stage for stage in plan.stages if stage.kind == "aux"]
    assert len(aux) == 1
    assert aux[0].inputs == (cells[2 * layers // 3].index,)
    assert (aux[0].name, aux[0].out_channels, aux[0].in_size) == ("darts_aux_cifar", 10, 8)
    head = plan.stages[-1]
    assert (head.kind, head.name, head.inputs, head.in_channels) == (
        "head",
        "bn_relu_pool_linear",  # the IS-DARTS reference's search network
        (cells[-1].index,),
        (256,),
    )
    trained = instantiate(darts, {"layers": layers}, catalog, phase="train")
    assert trained.stages[:-1] == plan.stages[:-1]
    assert trained.stages[-1] == attrs.evolve(head, name="pool_linear")  # DARTS' evaluation net


def test_darts_cell_after_aux_skips_the_aux_head(darts, catalog):
    """An auxiliary head is not on the main path: the next cell reads the two cells before it."""
    plan = instantiate(darts, {}, catalog)
    aux = next(stage for stage in plan.stages if stage.kind == "aux")
    after = plan.stages[aux.index + 1]
    assert after.inputs == (aux.index - 2, aux.index - 1)


def test_nb201_macro(nb201, catalog):
    """NB201: three stages of N cells at C, 2C, 4C joined by stride-2 residual blocks."""
    plan = instantiate(nb201, {}, catalog)
    kinds = [stage.kind for stage in plan.stages]
    assert kinds == ["stem"] + ["cell"] * 5 + ["block"] + ["cell"] * 5 + ["block"] + [
        "cell"
    ] * 5 + ["head"]
    cells = [stage for stage in plan.stages if stage.kind == "cell"]
    assert [(stage.width, stage.in_size) for stage in cells] == (
        [(16, 32)] * 5 + [(32, 16)] * 5 + [(64, 8)] * 5
    )
    assert all(stage.inputs == (stage.index - 1,) for stage in cells)
    blocks = [stage for stage in plan.stages if stage.kind == "block"]
    assert [(b.name, b.stride, b.in_channels, b.out_channels, b.out_size) for b in blocks] == [
        ("resblock", 2, (16,), 32, 16),
        ("resblock", 2, (32,), 64, 8),
    ]
    assert plan.stages[-1].out_channels == 10
    assert plan.cells_of("nb201_cell") == tuple(cells)


def test_overrides_change_the_plan_not_the_space(nb201, catalog):
    """`-D` overrides resolve a different network from one unchanged IR."""
    overridden = load_space("nb201", catalog=catalog, overrides={"C": 8, "N": 2})
    assert overridden == nb201
    plan = instantiate(nb201, {"C": 8, "N": 2, "classes": 100}, catalog)
    cells = [stage for stage in plan.stages if stage.kind == "cell"]
    assert [stage.width for stage in cells] == [8, 8, 16, 16, 32, 32]
    assert plan.stages[-1].width == 100
    assert plan.params == {"C": 8, "N": 2, "classes": 100, "channels": 3, "size": 32}


def test_overrides_reach_dependent_defaults():
    """A default that reads an earlier parameter follows that parameter's override."""
    space = parse_space(
        "network n(C = 16, W = 2C + 1, S = W // 3) { input(3, 8) head pool_linear(W) }"
    )
    assert resolve_params(space) == {"C": 16, "W": 33, "S": 11}
    assert resolve_params(space, {"C": 4}) == {"C": 4, "W": 9, "S": 3}
    assert resolve_params(space, {"W": 7}) == {"C": 16, "W": 7, "S": 2}


def test_override_changes_repeat_counts(nb201, catalog):
    """`-D N=...` changes how many cells each `repeat` places."""
    plan = instantiate(nb201, {"N": 1}, catalog)
    assert [stage.kind for stage in plan.stages] == [
        "stem",
        "cell",
        "block",
        "cell",
        "block",
        "cell",
        "head",
    ]


def test_tricell_concat_output_doubles_the_width(tricell, catalog):
    """A cell that concatenates two nodes outputs twice its width."""
    plan = instantiate(tricell, {}, catalog)
    cells = plan.cells_of("tri")
    assert [(stage.width, stage.out_channels) for stage in cells] == [
        (16, 32),
        (16, 32),
        (32, 64),
        (32, 64),
    ]
    assert cells[1].in_channels == (32,)
    assert cells[1].node_channels == {"x": 32, "a": 16, "b": 16, "c": 16}


def test_fixed_stride_op_sets_its_own_stride(catalog):
    """An op with a fixed stride in the catalog reduces by that stride."""
    space = parse_space(
        "network n(C = 8) { input(3, 224) stem darts_imagenet_stem0(C) "
        "darts_imagenet_stem1(C) head pool_linear(10) }",
        catalog=catalog,
    )
    plan = instantiate(space, {}, catalog)
    assert [(stage.stride, stage.out_size) for stage in plan.stages[:2]] == [(4, 56), (2, 28)]


@pytest.mark.parametrize(
    ("size", "stride", "expected"), [(32, 1, 32), (32, 2, 16), (7, 2, 4), (1, 2, 1), (32, 4, 8)]
)
def test_halve_rounds_up(size, stride, expected):
    """Resolution after a stride rounds up, as padded convolutions do."""
    assert halve(size, stride) == expected
