"""Tests of the op graph between the IR and the generated code: its invariants (`lint`), each
phase of the lowering, and that the optimisation passes fired, read from the graph itself."""

from __future__ import annotations

import functools

import pytest

from nasc.compiler import CompileOptions, catalog, compile_space, lowering
from nasc.compiler.graph import (
    Call,
    Combine,
    Dead,
    EdgeTerms,
    Graph,
    GraphError,
    Node,
    Output,
    Term,
    Var,
    Weighted,
    walk,
)
from nasc.dsl import load_space, parse_space
from nasc.runtime.cli import main

NB201 = {"C": 4, "N": 1, "size": 8}
EDGES_INTO = {"n1": 1, "n2": 2, "n3": 3}  # NB201's edges into each node
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@functools.cache
def nb201_space():
    return load_space("nb201", catalog=catalog(), overrides=NB201)


def nb201(**options):
    return compile_space(nb201_space(), NB201, CompileOptions(**options))


def tiny_graph(nodes) -> Graph:
    return Graph(cell="c", function="cell_c", inputs=("x",), nodes=tuple(nodes), edges=("x->a",))


def test_lint_accepts_a_well_formed_graph_and_names_each_broken_invariant():
    """`lint` passes a graph whose values are defined once, before use, and all reach the
    output; it names a read before definition, a name defined twice, an unused value and an
    output that is not last."""
    relu = Node(("a",), Call("relu", ("x->a", "nor_conv_3x3", "0"), Var("x")))
    output = Node((), Output((Var("a"),)))
    assert tiny_graph([relu, output]).lint().nodes[-1] is output
    early = Node(("a",), Call("relu", ("x->a", "nor_conv_3x3", "0"), Var("b")))
    broken = {
        "before they are defined": [early, output],
        "defined twice": [relu, relu, output],
        "never reach the output": [relu, Node(("b",), Call("relu", (), Var("x"))), output],
        "last node is not the output": [relu],
        "an output before the last node": [relu, output, output],
    }
    for message, nodes in broken.items():
        with pytest.raises(GraphError, match=message):
            tiny_graph(nodes).lint()


def test_build_calls_every_op_and_remove_dead_ops_drops_none_and_masked_candidates():
    """The first phase calls every candidate, `none` included; `remove_dead_ops` leaves the
    live, nonzero ones, and reports them in `ops()`."""
    net = nb201(passes=())
    cell = net.space.cell("nb201_cell")
    graph = lowering.build(cell)
    assert graph.ops() == {(edge.key, op) for edge in cell.edges for op in OPS}
    net.arch.discard("nb201_cell", [("x->n1", "nor_conv_3x3"), ("n1->n3", "avg_pool_3x3")])
    pruned = lowering.remove_dead_ops(graph, cell, net.arch)
    removed = graph.ops() - pruned.ops()
    expected = {(edge.key, "none") for edge in cell.edges}
    expected |= {("x->n1", "nor_conv_3x3"), ("n1->n3", "avg_pool_3x3")}
    assert removed == expected
    assert net.graph("nb201_cell").ops() == pruned.ops()


def test_mix_weighs_mixed_candidates_by_the_mixing_mode():
    """`softmax` wraps each live candidate in its weight `w[row, column]`; `mean` sets one scale
    per edge, 1/|candidates|; `live_mean` 1/|live candidates|."""
    net = nb201(passes=())
    cell = net.space.cell("nb201_cell")
    table = net.arch.choices["nb201_cell"]
    net.arch.discard("nb201_cell", [("x->n1", "none")])
    graph = lowering.remove_dead_ops(lowering.build(cell), cell, net.arch)
    for mode, scale in (("mean", 1 / 5), ("live_mean", 1 / 4)):
        net.arch.set_mixing(mode)
        mixed = lowering.mix(graph, cell, net.arch)
        edges = [e for n in mixed.of_kind("combine") for e in n.expr.edges if e.edge == "x->n1"]
        assert edges[0].scale == pytest.approx(scale)
    net.arch.set_mixing("softmax")
    terms = [t for t in lowering.mix(graph, cell, net.arch).terms() if t.edge == "x->n1"]
    assert [t.op for t in terms] == ["skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    for term in terms:
        assert isinstance(term.expr, Weighted)
        assert (term.expr.row, term.expr.column) == table.position("x->n1", term.op)


def test_fuse_joins_same_shaped_convolutions_of_one_value():
    """All live, NB201's 1x1 and 3x3 convolutions of `x` (3 edges) and of `n1` (2 edges) run as
    four fused kernels of ten convolutions; `n2`'s single ones stay separate calls."""
    graph = nb201().graph("nb201_cell")
    convs = [node for node in graph.of_kind("fused") if node.expr.kind == "conv"]
    assert [(node.expr.arg.name, len(node.expr.modules)) for node in convs] == [
        ("x_relu", 3),
        ("x_relu", 3),
        ("n1_relu", 2),
        ("n1_relu", 2),
    ]
    assert {path[-1] for node in convs for path in node.expr.modules} == {"1"}
    assert [node.name for node in convs] == [
        "x_relu_conv1x1",
        "x_relu_conv3x3",
        "n1_relu_conv1x1",
        "n1_relu_conv3x3",
    ]
    # Each fused kernel's BN follows it, then a split gives each edge its own slice.
    for conv in convs:
        (bn,) = graph.users(conv.name)
        assert bn.kind == "fused" and bn.expr.kind == "bn"
        (split,) = graph.users(bn.name)
        assert split.kind == "split" and split.expr.count == len(conv.expr.modules)
    assert not nb201(passes=("cse",)).graph("nb201_cell").of_kind("fused")


def test_cse_shares_the_relu_prefix_of_a_value_s_convolutions():
    """The ReLU that every convolution of a node starts with is computed once per node and read
    by all of them; without `cse` every op is called whole on the node."""
    graph = nb201().graph("nb201_cell")
    shared = {node.name: node for node in graph.of_kind("call") if node.expr.fn == "relu"}
    assert set(shared) == {"x_relu", "n1_relu", "n2_relu"}
    for name, node in shared.items():
        assert node.expr.arg == Var(name.removesuffix("_relu"))
        assert len(graph.users(name)) == 2  # the 1x1 and the 3x3 convolutions
    plain = nb201(passes=()).graph("nb201_cell")
    assert [node.kind for node in plain.nodes] == ["combine"] * 3 + ["output"]
    for term in plain.terms():
        assert term.expr == Call("module", (term.edge, term.op), term.expr.arg)


def test_fold_puts_the_mean_scale_into_the_fused_batch_norms():
    """Under `mean` mixing, fused BNs that end candidates carry the scale 1/5, and the terms
    they feed are marked as scaled; without `fold` no BN carries it."""
    net = nb201()
    net.arch.set_mixing("mean")
    graph = net.graph("nb201_cell")
    bns = [node for node in graph.of_kind("fused") if node.expr.kind == "bn"]
    assert bns and all(node.expr.scale == (0.2,) * len(node.expr.modules) for node in bns)
    scaled = {(t.edge, t.op) for t in graph.terms() if t.scaled}
    assert scaled == {
        (edge, op)
        for edge in ("x->n1", "x->n2", "x->n3", "n1->n2", "n1->n3")
        for op in ("nor_conv_1x1", "nor_conv_3x3")
    }
    unfolded = nb201(passes=("cse", "fuse"))
    unfolded.arch.set_mixing("mean")
    bns = [n for n in unfolded.graph("nb201_cell").of_kind("fused") if n.expr.kind == "bn"]
    assert bns and all(node.expr.scale is None for node in bns)


def test_prune_drops_a_dead_node_and_what_only_it_needed():
    """A node whose every edge is dead becomes a `Dead` comment; a node that nothing reads is
    not computed, nor are the values only it read."""
    text = """
ops s = {none, nor_conv_3x3}
cell c(x) {
    a = x:s
    b = a:s
    keep 1 per edge
    out b
}
network net(C = 4, classes = 3, channels = 3, size = 8) {
    input(channels, size)
    stem conv3x3_bn(C)
    c @ C
    head bn_relu_pool_linear(classes)
}
"""
    space = parse_space(text, "c.nas", catalog=catalog())
    net = compile_space(space)
    assert [node.name for node in net.graph("c").of_kind("combine")] == ["a", "b"]
    net.arch.discard("c", [("x->a", "nor_conv_3x3")])
    graph = net.graph("c")
    assert isinstance(graph.nodes[0].expr, Dead) and graph.nodes[0].expr.node == "a"
    # `b` reads the dead `a`: zeros are made right before it.
    zeros = graph.node("a")
    assert zeros.kind == "zeros" and graph.nodes.index(zeros) == 1
    # With `b` dead, nothing needs `a`: its live op is not computed, and the output is zeros.
    other = compile_space(space)
    other.arch.discard("c", [("a->b", "nor_conv_3x3")])
    graph = other.graph("c")
    assert graph.ops() == set() and [node.kind for node in graph.nodes] == ["dead", "output"]
    assert graph.nodes[-1].expr.values[0].node == "b"


def test_proxyless_cell_types_with_the_same_code_print_one_function():
    """The proxyless space's 11 searched cell types have two distinct bodies: the code holds
    two cell functions, and the others name them."""
    space = load_space("proxyless", catalog=catalog(), overrides={"C": 4, "D": 1})
    net = compile_space(space, {"C": 4, "D": 1})
    assert len(net.arch.choices) == 11
    assert net.code.count("\ndef cell_") + net.code.startswith("def cell_") == 2
    assert net.code.count(" = cell_") == 9
    # Without its skip, `stage3_1` has the code of the `_in` cell types, and shares theirs.
    net.arch.discard("stage3_1", [("x->block", "skip_connect")])
    assert net.code.count("def cell_") == 2
    assert "\ncell_stage3_1 = cell_stage1_in\n" in net.code


def test_printed_code_has_one_statement_per_graph_node():
    """Every node but the output and a dead node's comment is one assignment in the code, to the
    node's targets."""
    net = nb201()
    net.arch.set_mixing("mean")
    graph = net.graph("nb201_cell")
    code = net.code.split("\ndef forward")[0]
    for node in graph.nodes:
        if node.targets and node.kind != "split":
            assert code.count(f"    {node.name} = ") == 1, node.name
        elif node.kind == "split":
            assert code.count(f"{', '.join(node.targets)} = ") == 1


def test_graph_terms_and_edges_are_the_ir_s():
    """Each combination's edges are the IR edges into its node, and every term names its edge."""
    graph = nb201(passes=()).graph("nb201_cell")
    for node in graph.of_kind("combine"):
        assert isinstance(node.expr, Combine)
        assert len(node.expr.edges) == EDGES_INTO[node.name]
        for edge in node.expr.edges:
            assert isinstance(edge, EdgeTerms) and edge.edge.endswith(f"->{node.name}")
            assert all(isinstance(t, Term) and t.edge == edge.edge for t in edge.terms)
    assert all(any(isinstance(i, Var) for i in walk(t.expr)) for t in graph.terms())


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("darts-1st", "w[0, 2] * x_n1_nor_conv_1x1"), ("isdarts", "scale=(0.2, 0.2, 0.2)")],
)
def test_show_code_prints_a_strategy_s_mixing(strategy, expected, capsys):
    """`nasc show --code --strategy` prints the supernet as the strategy mixes it: DARTS' softmax
    weights, IS-DARTS' 1/|candidates| (folded into the fused BNs)."""
    assert main(["show", "nb201", "-D", "C=4", "--code", "--strategy", strategy]) == 0
    code = capsys.readouterr().out
    assert expected in code
    assert ("w[" in code) == (strategy == "darts-1st")
