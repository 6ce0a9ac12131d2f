"""Tests of the compiled supernet: generated code, masks, mixing, and export equivalence."""

from __future__ import annotations

import copy
import functools
import math
import pickle
import re
import traceback
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasc.compiler import (
    CompileOptions,
    catalog,
    compile_space,
    count_flops,
    export_network,
    export_torchscript,
    fixed_source,
)
from nasc.dsl import Genotype, NascUsageError, builtin_spaces, load_space, parse_arch, parse_space
from nasc.testing import genotypes

SMALL = {
    "nb201": {"C": 4, "N": 1, "size": 8},
    "darts": {"C": 4, "layers": 4, "size": 8},
    "darts_original": {"C": 4, "layers": 4, "size": 8},
    "tricell": {"C": 4, "N": 1, "size": 8},
    "macro_choice": {"C": 4, "N": 2, "size": 8},
    "proxyless": {"C": 4, "D": 1, "size": 8},
    "gated": {"C": 4, "N": 1, "size": 8},
    "darts_imagenet": {"C": 4, "layers": 4, "classes": 10, "size": 32},
    "resnet18": {"W": 4, "classes": 10, "size": 32},
    "mobilenet_v2": {"classes": 10, "size": 32},
    "nb101": {"C": 4, "N": 1, "size": 8},
    "inception_time": {"C": 4, "N": 1, "size": 8},
    "dcnas": {"C": 4, "size": 32},
    "dcnas_short": {"C": 4, "size": 32},
    "fcn_resnet50": {"W": 4, "size": 32},
    "lraspp_mobilenet_v3_large": {"classes": 5, "size": 32},
    "nats_sss": {"size": 8},
    "vit_b_16": {"D": 16, "heads": 2, "mlp_dim": 32, "classes": 10, "size": 32},
    "vit_tiny": {"D": 8, "N": 2, "size": 8},
    "darts_rnn": {"vocab": 10, "units": 4},
}
# Segmentation spaces end in a per-pixel head: tests/compiler/test_dense_networks.py checks
# their output.
DENSE = {"dcnas", "dcnas_short", "fcn_resnet50", "lraspp_mobilenet_v3_large"}
# Sequence spaces read token ids: tests/compiler/test_recurrent_reference.py and
# tests/runtime/tasks/test_language_model.py run them.
SEQUENCES = {"darts_rnn"}
IMAGES = sorted(set(SMALL) - SEQUENCES)
CLASSIFIERS = sorted(set(SMALL) - DENSE - SEQUENCES)
NB201_REFERENCE = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)

# A cell with one choice of two candidates: small enough to check the mixing by hand.
TINY = """
ops two = {nor_conv_1x1, skip_connect}
cell tiny(x) {
    n1 = x:two
    keep 1 per edge
    out n1
}
network tiny(C = 4, classes = 3, channels = 3, size = 6) {
    input(channels, size)
    stem conv3x3_bn(C)
    repeat 1 tiny @ C
    head pool_linear(classes)
}
"""

# Product and concat nodes, to check that dead edges give zeros of the right shape.
COMBINERS = """
ops two = {none, nor_conv_1x1}
cell comb(x) {
    a = x:two
    p = x:two * a:two
    q = concat(x:two, a:two)
    keep 1 per edge
    out concat(p, q)
}
network comb(C = 4, classes = 3, channels = 3, size = 6) {
    input(channels, size)
    stem conv3x3_bn(C)
    repeat 1 comb @ C
    head pool_linear(classes)
}
"""


pytestmark = pytest.mark.usefixtures("one_thread")


@functools.cache
def space(name: str):
    return load_space(name, catalog=catalog(), overrides=SMALL[name])


def build(name: str, options: CompileOptions | None = None, seed: int = 0, **overrides):
    """A small supernet of a built-in space with repeatable weights."""
    torch.manual_seed(seed)
    return compile_space(space(name), {**SMALL[name], **overrides}, options, seed=seed)


def image(size: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


def call(edge: str, op: str) -> str:
    """How generated code reaches an op of an edge: the op's module, or one inside it."""
    return f"e[{edge!r}]['{op}"


def cell_code(net, cell_type: str) -> str:
    """The generated function of one cell type, cut out of `net.code` (a cell type whose code
    is another's names that function: `cell_b = cell_a`)."""
    code = net.code
    alias = re.search(rf"^cell_{cell_type} = (\w+)$", code, re.MULTILINE)
    function = alias.group(1) if alias else f"cell_{cell_type}"
    start = code.index(f"def {function}(")
    end = code.find("\ndef ", start)
    return code[start:] if end < 0 else code[start:end]


def op_modules(net):
    """Every op module of every cell instance: (instance, edge, op) -> module."""
    return {
        (index, edge, op): module
        for index, cell in enumerate(net.cells())
        for edge, ops in cell.edges.items()
        for op, module in ops.items()
    }


def count_calls(net, x):
    """Run one forward and count the calls of every op module, by (instance, edge, op)."""
    calls = dict.fromkeys(op_modules(net), 0)
    handles = []
    for key, module in op_modules(net).items():

        def hook(module, inputs, output, key=key):
            calls[key] += 1

        handles.append(module.register_forward_hook(hook))
    try:
        output = net(x)
    finally:
        for handle in handles:
            handle.remove()
    return calls, output


def parameter_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_every_builtin_space_is_covered():
    """This file knows small sizes for every built-in network space (circuits have their own
    tests), so none escapes these tests."""
    networks = {
        name for name, path in builtin_spaces().items() if "\ncircuit " not in path.read_text()
    }
    assert networks == set(SMALL)


@pytest.mark.parametrize("search", [True, False], ids=["search", "eval"])
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_space_compiles_and_trains(name, search):
    """A built-in space compiles at a small size and runs forward and backward on the CPU."""
    net = build(name, CompileOptions(search=search))
    logits = net(image(SMALL[name]["size"]))
    assert tuple(logits.shape) == (2, 10)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None and ".alphas." not in n]
    assert not missing
    assert all(p.grad is None for p in net.arch.parameters())  # `sum` mixing reads no alphas


def test_darts_auxiliary_head_runs_in_training_only():
    """With the auxiliary head, DARTS returns aux logits in training mode and None in eval."""
    net = build("darts", CompileOptions(search=False, auxiliary=True), size=32)
    logits, aux = net(image(32))
    assert tuple(logits.shape) == (2, 10) and tuple(aux.shape) == (2, 10)
    net.eval()
    logits, aux = net(image(32))
    assert tuple(logits.shape) == (2, 10) and aux is None


@pytest.mark.parametrize("name", IMAGES)
def test_code_never_mentions_dead_candidates_or_none(name):
    """Generated code calls exactly the live, nonzero candidates (without the passes, which
    share and fuse calls; tests/compiler/test_passes.py checks their code)."""
    net = build(name, CompileOptions(passes=()))
    for offset, (cell, table) in enumerate(net.arch.choices.items()):
        for edge, candidates in list(zip(table.edges, table.candidates, strict=True))[offset::2]:
            net.arch.discard(cell, [(edge, candidates[-1 - offset])])
    assert "'none'" not in net.code
    for cell, table in net.arch.choices.items():
        if net.space.cell(cell).widths:
            # A width sets how wide other layers run and makes no call of its own
            # (tests/compiler/test_width_supernet.py checks it).
            continue
        code = cell_code(net, cell)
        for edge, candidates in zip(table.edges, table.candidates, strict=True):
            live = net.arch.live(cell, edge)
            for op in candidates:
                assert (call(edge, op) in code) == (op in live and op != "none"), (edge, op)


def test_discard_changes_code_and_calls():
    """Discarding candidates regenerates the code; the next forward runs fewer op modules."""
    net = build("nb201", N=2)
    x = image()
    before_code = net.code
    before, _ = count_calls(net, x)
    instances = len(net.cells())
    assert instances == 6
    assert all(n == 1 for (_, _, op), n in before.items() if op != "none")
    assert all(n == 0 for (_, _, op), n in before.items() if op == "none")
    dead = [("x->n1", "nor_conv_3x3"), ("n1->n3", "skip_connect"), ("n2->n3", "avg_pool_3x3")]
    net.arch.discard("nb201_cell", dead)
    assert net.code != before_code
    after, _ = count_calls(net, x)
    assert sum(after.values()) == sum(before.values()) - len(dead) * instances
    assert all(after[(i, edge, op)] == 0 for i in range(instances) for edge, op in dead)


@pytest.mark.parametrize("name", ["nb201", "darts"])
def test_masked_ops_receive_no_gradient(name):
    """After a discard, the dead ops' weights get no gradient and the live ones do."""
    net = build(name)
    cell_type, table = next(iter(net.arch.choices.items()))
    dead = [
        (edge, op)
        for edge, ops in zip(table.edges, table.candidates, strict=True)
        for op in ops
        if op in ("nor_conv_3x3", "sep_conv_3x3")
    ]
    net.arch.discard(cell_type, dead)
    net(image()).sum().backward()
    cells = net.cells()
    checked = 0
    for (index, edge, op), module in op_modules(net).items():
        dead_here = cells[index].cell_type == cell_type and (edge, op) in dead
        for parameter in module.parameters():
            assert (parameter.grad is None) == dead_here, (index, edge, op)
            checked += dead_here
    assert checked > 0


def tiny_net(mode: str):
    torch.manual_seed(0)
    net = compile_space(parse_space(TINY, catalog=catalog()), options=CompileOptions(search=True))
    net.arch.set_mixing(mode)
    with torch.no_grad():
        net.arch.alphas["tiny"].copy_(torch.tensor([[0.7, -0.4]]))
    return net.eval()


def run_cell(net, x):
    """The input and output of the network's only cell in one forward."""
    seen = {}

    def hook(module, inputs, output):
        seen["input"], seen["output"] = inputs[0], output

    handle = net.cells()[0].register_forward_hook(hook)
    try:
        net(x)
    finally:
        handle.remove()
    return seen["input"], seen["output"]


@pytest.mark.parametrize("discard", [False, True], ids=["both-live", "skip-dead"])
@pytest.mark.parametrize("mode", ["sum", "mean", "live_mean", "softmax"])
def test_mixing_modes_by_hand(mode, discard):
    """Each mixing mode weighs the live candidates as its definition says."""
    net = tiny_net(mode)
    if discard:
        net.arch.discard("tiny", [("x->n1", "skip_connect")])
    with torch.no_grad():
        x, output = run_cell(net, image(6))
        conv = net.cells()[0].edges["x->n1"]["nor_conv_1x1"](x)
    skip = x
    a, b = math.exp(0.7), math.exp(-0.4)
    if not discard:
        expected = {
            "sum": conv + skip,
            "mean": (conv + skip) / 2,
            "live_mean": (conv + skip) / 2,
            "softmax": a / (a + b) * conv + b / (a + b) * skip,
        }[mode]
    else:
        expected = {"sum": conv, "mean": conv / 2, "live_mean": conv, "softmax": conv}[mode]
    assert torch.allclose(output, expected, atol=1e-6)


def test_softmax_gradient_reaches_live_alphas_only():
    """In softmax mode the live candidates' alphas get gradient; a dead one's stays zero."""
    net = compile_space(space("darts"), SMALL["darts"], seed=0)
    net.arch.set_mixing("softmax")
    net.arch.discard("normal", [("c_k2->n0", "sep_conv_3x3")])
    net(image()).sum().backward()
    grad = net.arch.alphas["normal"].grad
    row, column = net.arch.choices["normal"].position("c_k2->n0", "sep_conv_3x3")
    assert grad[row, column] == 0
    live = net.arch.mask("normal").clone()
    live[:, net.arch.choices["normal"].candidates[0].index("none")] = False
    assert (grad[live] != 0).all()
    assert net.arch.alphas["reduce"].grad.abs().sum() > 0


def test_unknown_mixing_mode_is_refused():
    """An unknown mixing mode raises NascUsageError naming the known ones."""
    net = build("nb201")
    with pytest.raises(NascUsageError, match="unknown mixing mode `median`"):
        net.arch.set_mixing("median")


def test_node_with_every_edge_dead_gives_zeros():
    """A cell whose output node has only `none` or masked edges outputs zeros of its shape."""
    net = build("nb201").eval()
    dead = [
        (edge, op)
        for edge in ("x->n3", "n1->n3", "n2->n3")
        for op in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    ]
    net.arch.discard("nb201_cell", dead)
    outputs = []
    handles = [c.register_forward_hook(lambda m, i, o: outputs.append(o)) for c in net.cells()]
    logits = net(image())
    for handle in handles:
        handle.remove()
    assert [tuple(o.shape) for o in outputs] == [(2, 4, 8, 8), (2, 8, 4, 4), (2, 16, 2, 2)]
    assert all(not o.any() for o in outputs)
    assert tuple(logits.shape) == (2, 10)
    assert "nor_conv" not in cell_code(net, "nb201_cell")  # n1 and n2 are not needed either


def test_dead_node_is_read_as_zeros():
    """An op that reads a node whose every edge is dead runs on zeros of that node's shape."""
    net = build("nb201").eval()
    genotype = Genotype(
        {
            "nb201_cell": {
                "x->n1": ["none"],
                "x->n2": ["none"],
                "n1->n2": ["nor_conv_1x1"],
                "x->n3": ["none"],
                "n1->n3": ["none"],
                "n2->n3": ["skip_connect"],
            }
        }
    )
    net.arch.restrict(genotype)
    cell = net.cells()[0]
    with torch.no_grad():
        x, output = run_cell(net, image())
        expected = cell.edges["n1->n2"]["nor_conv_1x1"](torch.zeros_like(x))
    assert expected.abs().sum() > 0  # the conv's bias makes this nonzero
    assert torch.allclose(output, expected)


def test_dead_parts_of_product_and_concat_nodes():
    """Dead edges leave zeros in a concat node and a product node reads a dead node as zeros."""
    torch.manual_seed(0)
    net = compile_space(parse_space(COMBINERS, catalog=catalog())).eval()
    net.arch.discard("comb", [("x->a", "nor_conv_1x1"), ("x->q", "nor_conv_1x1")])
    cell = net.cells()[0]
    with torch.no_grad():
        x, output = run_cell(net, image(6))
        zero = torch.zeros_like(x)
        product = cell.edges["x->p"]["nor_conv_1x1"](x) * cell.edges["a->p"]["nor_conv_1x1"](zero)
        from_a = cell.edges["a->q"]["nor_conv_1x1"](zero)
    assert tuple(output.shape) == (2, 12, 6, 6)
    assert torch.allclose(output[:, :4], product)
    assert not output[:, 4:8].any()
    assert torch.allclose(output[:, 8:], from_a)


def test_product_with_a_dead_factor_runs_none_of_its_factors():
    """A dead edge into a product node makes it zero: the node feeding its other factor is
    not computed when nothing else reads it."""
    text = COMBINERS.replace("    q = concat(x:two, a:two)\n", "").replace("concat(p, q)", "p")
    net = compile_space(parse_space(text, catalog=catalog())).eval()
    with torch.no_grad():
        calls, _ = count_calls(net, image(6))
        assert calls[(0, "x->a", "nor_conv_1x1")] == 1
        net.arch.discard("comb", [("x->p", "nor_conv_1x1")])
        calls, _ = count_calls(net, image(6))
        _, output = run_cell(net, image(6))
    assert calls[(0, "x->a", "nor_conv_1x1")] == 0
    assert calls[(0, "a->p", "nor_conv_1x1")] == 0
    assert not output.any()


def test_a_cell_called_on_its_own_after_a_discard_refuses_stale_code():
    """A cell's code is generated by the supernet: after a mask change a direct call says so,
    instead of running the ops the mask just removed."""
    net = build("nb201").eval()
    cell = net.cells()[0]
    x, _ = run_cell(net, image())
    cell(x, None)  # current code runs
    net.arch.discard("nb201_cell", [("x->n1", "nor_conv_3x3")])
    with pytest.raises(RuntimeError, match="call the supernet, or its recompile"):
        cell(x, None)
    net.recompile()
    cell(x, None)


def test_reduction_cell_with_a_dead_node_keeps_its_shape():
    """In a DARTS reduction cell, a node with only `none` edges is a zero slice of the concat."""
    net = build("darts").eval()
    darts = {
        "normal": [("sep_conv_3x3", 0), ("skip_connect", 1)] * 4,
        "reduce": [("none", 0), ("none", 1)] + [("max_pool_3x3", 0), ("dil_conv_3x3", 1)] * 3,
    }
    from nasc.dsl.genotype import genotype_from_darts

    net.arch.restrict(genotype_from_darts(space("darts"), darts))
    outputs = []
    reductions = [c for c in net.cells() if c.cell_type == "reduce"]
    handles = [c.register_forward_hook(lambda m, i, o: outputs.append(o)) for c in reductions]
    net(image())
    for handle in handles:
        handle.remove()
    assert [tuple(o.shape) for o in outputs] == [(2, 32, 4, 4), (2, 64, 2, 2)]
    assert not outputs[0][:, :8].any() and not outputs[1][:, :16].any()
    assert outputs[0][:, 8:].any() and outputs[1][:, 16:].any()


@pytest.mark.parametrize("name", ["nb201", "darts"])
def test_instances_of_a_cell_type_share_one_mask(name):
    """One mask per cell type: a discard reaches every instance of that type."""
    net = build(name, N=2) if name == "nb201" else build(name, layers=5)
    types = {cell.cell_type for cell in net.cells()}
    assert set(net.arch.choices) == types
    masks = [n for n, _ in net.arch.named_buffers() if n.startswith("mask__")]
    assert sorted(masks) == sorted(f"mask__{t}" for t in types)
    cell_type = sorted(types)[0]
    table = net.arch.choices[cell_type]
    edge, op = table.edges[0], table.candidates[0][-1]
    net.arch.discard(cell_type, [(edge, op)])
    calls, _ = count_calls(net, image())
    instances = [i for i, c in enumerate(net.cells()) if c.cell_type == cell_type]
    assert len(instances) >= 2
    assert all(calls[(i, edge, op)] == 0 for i in instances)
    other = table.candidates[0][-2]
    assert all(calls[(i, edge, other)] == 1 for i in instances)


def test_count_flops_grows_with_live_candidates():
    """Discarding a conv lowers the FLOPs; discarding a pooling op leaves them unchanged."""
    net = build("nb201")
    full = count_flops(net, 3, 8)
    net.arch.discard("nb201_cell", [("x->n1", "nor_conv_3x3")])
    fewer = count_flops(net, 3, 8)
    net.arch.discard("nb201_cell", [("x->n1", "avg_pool_3x3")])
    same = count_flops(net, 3, 8)
    net.arch.discard("nb201_cell", [("x->n2", "nor_conv_1x1")])
    fewest = count_flops(net, 3, 8)
    assert full > fewer == same > fewest
    # 9 C^2 H W multiply-adds per image for a 3x3 conv at width C on an H x W map, per stage
    assert full - fewer == sum(9 * c * c * s * s for c, s in ((4, 8), (8, 4), (16, 2)))


def test_count_flops_of_restricted_supernet_equals_export():
    """The supernet restricted to a genotype counts the FLOPs of the exported network."""
    net = build("nb201")
    genotype = parse_arch(space("nb201"), NB201_REFERENCE)
    net.arch.restrict(genotype)
    exported = export_network(space("nb201"), genotype, SMALL["nb201"])
    assert count_flops(net, 3, 8) == count_flops(exported, 3, 8) > 0


EQUIVALENCE_OPTIONS = {
    "batch-stats": CompileOptions(search=True, track_running_stats=False),
    "running-stats": CompileOptions(search=True),
    "eval-conventions": CompileOptions(search=False),
}


@functools.cache
def trained_supernet(name: str, variant: str):
    """A supernet after one training-mode forward, so BN running statistics are not initial."""
    net = build(name, EQUIVALENCE_OPTIONS[variant])
    net(image(SMALL[name]["size"], seed=7))
    return net.eval()


@pytest.mark.parametrize("variant", sorted(EQUIVALENCE_OPTIONS))
@pytest.mark.parametrize("name", IMAGES)
@settings(max_examples=max(5, settings().max_examples // 3))  # it runs for 12 parametrizations
@given(data=st.data())
def test_restricted_supernet_equals_exported_network(name, variant, data):
    """The supernet restricted to a genotype and the exported network with its weights agree.

    With `sum` mixing the restricted supernet computes, per node, the sum of the kept ops on the
    same inputs as the fixed network; the weights (and BN running statistics) are carried over
    module for module, and in eval mode BN uses the same statistics in both (running ones, or
    those of the same batch), so the outputs match. The exported network's size is that of the
    supernet without its dead candidates.
    """
    net = trained_supernet(name, variant)
    genotype = data.draw(genotypes(net.space))
    net.arch.set_mixing("sum")
    net.arch.restrict(genotype)
    assert net.arch.genotype() == genotype
    exported = export_network(space(name), genotype, SMALL[name], supernet=net).eval()
    x = image(SMALL[name]["size"], seed=3)
    with torch.no_grad():
        assert torch.allclose(net(x), exported(x), atol=1e-5, rtol=0)
    cells = net.cells()
    dead = 0
    for (index, edge, op), module in op_modules(net).items():
        decided = genotype.cells.get(cells[index].cell_type, {})  # none: a fixed cell
        if edge in decided and op not in decided[edge]:
            dead += parameter_count(module)
    assert exported.num_parameters() == net.num_parameters() - dead


def test_export_refuses_weights_from_other_options():
    """Carrying weights from a supernet built with other options raises NascUsageError."""
    net = build("nb201", CompileOptions(search=True))
    genotype = parse_arch(space("nb201"), NB201_REFERENCE)
    with pytest.raises(NascUsageError, match="cannot carry weights"):
        export_network(
            space("nb201"), genotype, SMALL["nb201"], CompileOptions(search=False), supernet=net
        )


@pytest.mark.parametrize("name", ["nb201", "darts", "darts_imagenet"])
def test_fixed_source_compiles_to_the_exported_network(name):
    """A fixed `.nas` file compiles straight to the network export_network builds."""
    arch = NB201_REFERENCE if name == "nb201" else "DARTS_V2"
    x = image(SMALL[name]["size"])
    genotype = parse_arch(space(name), arch)
    fixed = parse_space(fixed_source(space(name), genotype), catalog=catalog())
    assert fixed.is_fixed
    torch.manual_seed(0)
    direct = compile_space(fixed, SMALL[name], CompileOptions(search=False)).eval()
    exported = export_network(space(name), genotype, SMALL[name]).eval()
    shapes = {k: tuple(v.shape) for k, v in exported.state_dict().items() if torch.is_tensor(v)}
    assert {
        k: tuple(v.shape) for k, v in direct.state_dict().items() if torch.is_tensor(v)
    } == shapes
    assert direct.code == exported.code
    direct.load_state_dict(exported.state_dict())
    with torch.no_grad():
        assert torch.equal(direct(x), exported(x))


@pytest.mark.parametrize("name", ["nb201", "darts", "darts_imagenet"])
def test_torchscript_export_runs_to_the_same_outputs(name, tmp_path):
    """The TorchScript file loads with torch.jit.load and gives the network's outputs."""
    arch = NB201_REFERENCE if name == "nb201" else "DARTS_V2"
    size = SMALL[name]["size"]
    torch.manual_seed(0)
    network = export_network(space(name), parse_arch(space(name), arch), SMALL[name])
    network(image(size, seed=5))  # move the BN running statistics off their initial values
    with warnings.catch_warnings():
        # A TracerWarning means a branch on a traced value: the file might not fit other inputs.
        warnings.simplefilter("error", torch.jit.TracerWarning)
        path = export_torchscript(network, tmp_path / "net.pt")
    assert path.is_file() and network.training  # the mode is restored
    loaded = torch.jit.load(str(path))
    network.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(image(size)), network(image(size)), atol=1e-6)


def test_loading_a_state_dict_regenerates_the_code():
    """Masks loaded from a checkpoint take effect in the next forward."""
    source = build("nb201")
    source.arch.discard("nb201_cell", [("x->n1", "nor_conv_3x3")])
    target = build("nb201", seed=1)
    assert call("x->n1", "nor_conv_3x3") in target.code
    target.load_state_dict(source.state_dict())
    assert call("x->n1", "nor_conv_3x3") not in target.code
    with torch.no_grad():
        assert torch.equal(target.eval()(image()), source.eval()(image()))


def test_deepcopy_gives_the_same_network():
    """A deep copy (as second-order DARTS makes) computes the same outputs under its own masks."""
    net = build("darts").eval()
    twin = copy.deepcopy(net)
    with torch.no_grad():
        assert torch.equal(twin(image()), net(image()))
    twin.arch.discard("normal", [("c_k2->n0", "sep_conv_3x3")])
    assert call("c_k2->n0", "sep_conv_3x3") in cell_code(net, "normal")
    assert call("c_k2->n0", "sep_conv_3x3") not in cell_code(twin, "normal")
    assert call("c_k2->n0", "sep_conv_3x3") in cell_code(twin, "reduce")


def test_pickled_supernet_regenerates_its_code():
    """A pickled supernet (torch.save of the module) loads and runs under its own masks."""
    net = build("nb201").eval()
    net.arch.discard("nb201_cell", [("x->n1", "nor_conv_3x3")])
    with torch.no_grad():
        expected = net(image())
    twin = pickle.loads(pickle.dumps(net))
    assert call("x->n1", "nor_conv_3x3") not in twin.code
    with torch.no_grad():
        assert torch.equal(twin(image()), expected)


def test_generated_lines_show_in_tracebacks():
    """A failure inside generated code shows the generated line in the traceback."""
    net = build("nb201", CompileOptions(passes=()))
    with pytest.raises(RuntimeError) as info:
        net.cells()[0](torch.randn(2, 5, 8, 8), None)
    frames = [f for f in traceback.extract_tb(info.tb) if f.filename.startswith("<nasc-generated")]
    assert frames and all(frame.line for frame in frames)
    assert "e['x->n1']" in frames[0].line


def test_drop_path_wraps_every_op_but_identities():
    """With drop path compiled in, every op but `skip_connect` is wrapped; p=0 changes nothing."""
    genotype = parse_arch(space("nb201"), NB201_REFERENCE)
    torch.manual_seed(0)
    plain = export_network(space("nb201"), genotype, SMALL["nb201"])
    dropping = export_network(
        space("nb201"), genotype, SMALL["nb201"], CompileOptions(search=False, drop_path=True)
    )
    dropping.load_state_dict(plain.state_dict())
    code = dropping.code
    assert code.count("_drop_path(") == 5 and "_drop_path(e['x->n3']" not in code
    with torch.no_grad():
        assert torch.equal(dropping(image()), plain(image()))
        dropping.set_drop_prob(0.5)
        dropping.eval()
        plain.eval()
        assert torch.equal(dropping(image()), plain(image()))  # drop path is off in eval mode
        dropping.train()
        plain.train()
        assert not torch.equal(dropping(image()), plain(image()))
