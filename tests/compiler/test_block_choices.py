"""Tests of compiled block choices: masked to one block they are the fixed network with that
block, dead blocks never run, and the DARTS family and IS-DARTS see them as any choice."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.dsl import Genotype, parse_space
from nasc.dsl.ir import BLOCK_EDGE
from nasc.runtime.strategies.isdarts import measure, shrink

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = """ops layer = {resblock, nor_conv_3x3, sep_conv_3x3, skip_connect}

network net(C = 4, N = 2, classes = 5) {
    input(3, 8)
    stem conv3x3_bn(C)
    repeat N choose stage = layer @ C
    choose down = {resblock, nor_conv_3x3, sep_conv_3x3, skip_connect} @ 2C, stride = 2
    repeat N choose shared last = layer @ 2C
    head bn_relu_pool_linear(classes)
}
"""
# The fixed network with blocks in place of the choices, for `fixed(...)` to fill in.
FIXED = """network net(C = 4, N = 2, classes = 5) {{
    input(3, 8)
    stem conv3x3_bn(C)
    {0}(C)
    {1}(C)
    {2}(2C, stride = 2)
    {3}(2C)
    {3}(2C)
    head bn_relu_pool_linear(classes)
}}
"""
DECISIONS = ("stage_1", "stage_2", "down", "last")


def supernet(options: CompileOptions | None = None, **overrides):
    torch.manual_seed(0)
    space = parse_space(SPACE, catalog=catalog())
    return compile_space(space, overrides, options, seed=0)


def image(seed: int = 1) -> torch.Tensor:
    return torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def restrict(net, picks) -> Genotype:
    genotype = Genotype({name: {BLOCK_EDGE: (op,)} for name, op in zip(DECISIONS, picks)})
    net.arch.restrict(genotype)
    return genotype


def live_modules(net, picks) -> list[torch.nn.Module]:
    """The supernet's stages with each block choice replaced by its chosen candidate module."""
    chosen = dict(zip(DECISIONS, picks))
    modules = []
    for module in net.stages:
        cell_type = getattr(module, "cell_type", None)
        modules.append(module if cell_type is None else module.edges[BLOCK_EDGE][chosen[cell_type]])
    return modules


@pytest.mark.parametrize("search", [True, False], ids=["search", "eval"])
@settings(max_examples=12, deadline=None)
@given(
    picks=st.tuples(
        *[st.sampled_from(["resblock", "nor_conv_3x3", "sep_conv_3x3", "skip_connect"])] * 4
    )
)
def test_a_choice_masked_to_one_block_is_the_fixed_network(search, picks):
    """With one block live per decision, the supernet's outputs equal (1e-5) those of the fixed
    network written with those blocks, after copying the live blocks' weights stage by stage."""
    options = CompileOptions(search=search)
    net = supernet(options)
    net(image(seed=7))  # move the BN running statistics off their initial values
    net.eval()
    restrict(net, picks)
    fixed_space = parse_space(FIXED.format(*picks), catalog=catalog())
    fixed = compile_space(fixed_space, {}, options).eval()
    assert len(fixed.stages) == len(net.stages)
    for source, target in zip(live_modules(net, picks), fixed.stages, strict=True):
        target.load_state_dict(source.state_dict())
    x = image(seed=3)
    with torch.no_grad():
        assert torch.allclose(net(x), fixed(x), atol=1e-5, rtol=0)
    live = sum(p.numel() for m in live_modules(net, picks) for p in m.parameters())
    assert fixed.num_parameters() == live


def count_calls(net, x) -> dict[tuple[int, str], int]:
    """Forward calls of every candidate module of every block choice, by (stage, op)."""
    calls, handles = {}, []
    for index, module in enumerate(net.stages):
        if getattr(module, "cell_type", None) is None:
            continue
        for op, candidate in module.edges[BLOCK_EDGE].items():
            calls[(index, op)] = 0

            def hook(_, inputs, output, key=(index, op)):
                calls[key] += 1

            handles.append(candidate.register_forward_hook(hook))
    try:
        net(x)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def test_a_dead_block_is_never_run():
    """After a discard, the dead block's module is not called; the others still are, once."""
    net = supernet()
    before = count_calls(net, image())
    assert set(before.values()) == {1}
    net.arch.discard("stage_1", [(BLOCK_EDGE, "resblock"), (BLOCK_EDGE, "sep_conv_3x3")])
    net.arch.discard("last", [(BLOCK_EDGE, "nor_conv_3x3")])
    after = count_calls(net, image())
    stages = {m.cell_type: i for i, m in enumerate(net.stages) if hasattr(m, "cell_type")}
    last = [i for i, m in enumerate(net.stages) if getattr(m, "cell_type", None) == "last"]
    dead = {(stages["stage_1"], "resblock"), (stages["stage_1"], "sep_conv_3x3")}
    dead |= {(index, "nor_conv_3x3") for index in last}
    assert all(after[key] == 0 for key in dead)
    assert all(count == 1 for key, count in after.items() if key not in dead)
    code = net.code
    assert "e['x->block']['resblock" not in code.split("def cell_stage_1(")[1].split("def ")[0]


def test_unshared_instances_decide_apart_and_shared_ones_together():
    """Each instance of an unshared repeat has its own mask; a shared repeat's instances one."""
    net = supernet()
    assert list(net.arch.choices) == list(DECISIONS)
    net.arch.discard("stage_1", [(BLOCK_EDGE, "skip_connect")])
    assert net.arch.live("stage_2", BLOCK_EDGE) == (
        "resblock",
        "nor_conv_3x3",
        "sep_conv_3x3",
        "skip_connect",
    )
    assert "skip_connect" not in net.arch.live("stage_1", BLOCK_EDGE)
    assert [m.cell_type for m in net.cells()].count("last") == 2
    wider = supernet(N=3)
    assert list(wider.arch.choices) == ["stage_1", "stage_2", "stage_3", "down", "last"]


def test_softmax_mixing_weighs_the_blocks_by_their_alphas():
    """DARTS mixing: a block choice's output is the softmax(alpha)-weighted sum of its live
    blocks, and the alphas of live blocks get gradient, a dead block's none."""
    net = supernet()
    net.arch.set_mixing("softmax")
    net.arch.discard("down", [(BLOCK_EDGE, "skip_connect")])
    with torch.no_grad():
        net.arch.alphas["down"].copy_(torch.tensor([[0.3, -0.2, 0.9, 0.0]]))
    down = next(m for m in net.stages if getattr(m, "cell_type", None) == "down")
    seen = {}
    handle = down.register_forward_hook(lambda m, i, o: seen.update(x=i[0], out=o))
    try:
        net(image()).sum().backward()
    finally:
        handle.remove()
    with torch.no_grad():
        weights = [math.exp(a) for a in (0.3, -0.2, 0.9)]
        total = sum(weights)
        ops = ("resblock", "nor_conv_3x3", "sep_conv_3x3")
        expected = sum(
            w / total * down.edges[BLOCK_EDGE][op](seen["x"]) for w, op in zip(weights, ops)
        )
    assert torch.allclose(seen["out"], expected, atol=1e-5)
    grad = net.arch.alphas["down"].grad
    assert (grad[0, :3] != 0).all() and grad[0, 3] == 0


def test_isdarts_measures_and_shrinks_block_choices():
    """IS-DARTS measures F for every live block of every decision and shrinks each to one."""
    net = supernet(CompileOptions(search=True, track_running_stats=False))
    scores = measure(net, [(image(), torch.zeros(4, dtype=torch.long))])
    assert set(scores) == set(DECISIONS)
    for name in DECISIONS:
        assert set(scores[name]) == {(BLOCK_EDGE, op) for op in net.arch.live(name, BLOCK_EDGE)}
    for step in range(3):
        shrink(net, measure(net, [(image(step), torch.zeros(4, dtype=torch.long))]), step, 3)
    assert all(len(net.arch.live(name, BLOCK_EDGE)) == 1 for name in DECISIONS)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.randoms(use_true_random=False))
def test_block_masks_only_shrink_and_end_with_one(steps, rng):
    """After any shrink sequence with random F, each decision's mask only loses blocks, keeps at
    least one, and exactly one after the last step."""
    net = supernet()
    previous = {name: net.arch.mask(name).clone() for name in DECISIONS}
    for step in range(steps):
        scores = {
            name: {
                (BLOCK_EDGE, op): rng.choice([math.inf, rng.random(), float(rng.randint(0, 2))])
                for op in net.arch.live(name, BLOCK_EDGE)
            }
            for name in DECISIONS
        }
        shrink(net, scores, step, steps)
        for name in DECISIONS:
            mask = net.arch.mask(name)
            assert not (mask & ~previous[name]).any()
            alive = int(mask.sum())
            assert alive >= 1 and (alive == 1 or step < steps - 1)
            previous[name] = mask.clone()
