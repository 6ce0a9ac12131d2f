"""Tests of the IS-DARTS measurement, schedule and shrinking."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nasc.compiler import catalog, compile_space
from nasc.dsl import parse_space
from nasc.runtime.strategies.isdarts import (
    discard_count,
    information,
    measure,
    shrink,
    shrink_epochs,
)


def test_constant_output_has_infinite_information():
    """A constant feature map (sigma = 0 everywhere) gives F = +inf, as `none` does."""
    assert torch.isinf(information(torch.ones(3, 8, 4, 4))).all()
    assert torch.isinf(information(torch.zeros(2, 8, 4, 4))).all()


def test_information_matches_the_formula():
    """F is the mean over (C, H, W) of 3 (x - mu)^2 / sigma^6 with per-pixel channel statistics."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, 3)
    expected = []
    for sample in x:
        mu = sample.mean(dim=0)
        sigma = sample.std(dim=0, unbiased=True)
        expected.append((3 * (sample - mu) ** 2 / sigma**6).mean())
    assert torch.allclose(information(x), torch.stack(expected), rtol=1e-5)


def test_wider_spread_across_channels_gives_smaller_information():
    """Scaling a feature map up by s divides F by s^4: a wider spread is more informative."""
    torch.manual_seed(1)
    x = torch.randn(4, 16, 5, 5)
    narrow, wide = information(x), information(3.0 * x)
    assert (wide < narrow).all()
    assert torch.allclose(wide, narrow / 81.0, rtol=1e-4)


def test_a_nan_pixel_makes_the_sample_infinite():
    """NaN elements count as +inf, so one constant pixel makes that sample's F infinite."""
    x = torch.randn(2, 4, 3, 3)
    x[0, :, 1, 1] = 2.0  # constant across channels at one pixel: 0 / 0
    values = information(x)
    assert math.isinf(values[0]) and math.isfinite(values[1])


def test_shrink_epochs_follow_the_reference_schedule():
    """NB201 shrinks after epochs 22, 24, 26, 28 of 30; DARTS after 29, 32, ..., 47 of 50."""
    assert shrink_epochs(30, 4, 2) == [22, 24, 26, 28]
    assert shrink_epochs(50, 7, 3) == [29, 32, 35, 38, 41, 44, 47]


def test_five_ops_and_four_steps_discard_one_per_step():
    """With 5 candidates, k = 1 and 4 steps, every step discards exactly one."""
    live = 5
    for step in range(4):
        count = discard_count(live, 1, step, 4)
        assert count == 1
        live -= count
    assert live == 1


@pytest.mark.parametrize("inputs", [2, 3, 4, 5])
def test_darts_nodes_end_with_exactly_two(inputs):
    """A DARTS node with 2..5 input edges of 8 ops each ends with exactly 2 after 7 steps."""
    live = inputs * 8
    for step in range(7):
        count = discard_count(live, 2, step, 7)
        assert count >= 1 or live == 2
        live -= count
        assert live >= 2
    assert live == 2


SMALL = """
ops set = {none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3}
cell c(x) {
    a = x:set
    b = x:set + a:set
    keep 1 per edge
    out b
}
network small(C = 4, classes = 3) {
    input(3, 8)
    stem conv3x3_bn(C)
    repeat 2 c @ C
    head pool_linear(classes)
}
"""


def test_measure_averages_over_samples_and_instances():
    """`measure` is, per candidate, the sample mean of F per instance, averaged over instances."""
    torch.manual_seed(0)
    space = parse_space(SMALL, catalog=catalog())
    net = compile_space(space, seed=0)
    net.arch.set_mixing("mean")
    batches = [(torch.randn(3, 3, 8, 8), None), (torch.randn(2, 3, 8, 8), None)]
    scores = measure(net, batches)

    manual: dict = {}
    for cell in net.cells():
        for edge, ops in cell.edges.items():
            for op, module in ops.items():
                if op == "none":
                    continue
                values = []
                handle = module.register_forward_hook(
                    lambda m, i, o, values=values: values.append(information(o))
                )
                net.eval()
                with torch.no_grad():
                    for images, _ in batches:
                        net(images)
                handle.remove()
                manual.setdefault((edge, op), []).append(float(torch.cat(values).mean()))
    for member, per_instance in manual.items():
        assert len(per_instance) == 2
        assert scores["c"][member] == pytest.approx(sum(per_instance) / 2, rel=1e-5)
    assert math.isinf(scores["c"][("x->a", "none")])


def test_shrink_discards_the_largest_information_inside_each_subset():
    """At step 0 of 4 each edge loses its candidate with the largest F; records say which."""
    space = parse_space(SMALL, catalog=catalog())
    net = compile_space(space, seed=0)
    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    scores = {"c": {}}
    for edge in ("x->a", "x->b", "a->b"):
        for rank, op in enumerate(ops):
            scores["c"][(edge, op)] = float(rank)  # avg_pool_3x3 has the largest F
    records = shrink(net, scores, 0, 4)
    for edge in ("x->a", "x->b", "a->b"):
        assert net.arch.live("c", edge) == tuple(ops[:4])
    discarded = [c for r in records for c in r["candidates"] if c["discarded"]]
    assert {(c["edge"], c["op"]) for c in discarded} == {
        (edge, "avg_pool_3x3") for edge in ("x->a", "x->b", "a->b")
    }


@st.composite
def random_space(draw):
    """A random single-cell space with per-edge, per-node or explicit subsets."""
    names = [
        "none",
        "skip_connect",
        "nor_conv_1x1",
        "nor_conv_3x3",
        "avg_pool_3x3",
        "max_pool_3x3",
        "sep_conv_3x3",
    ]
    ops = draw(st.lists(st.sampled_from(names), min_size=2, max_size=6, unique=True))
    nodes = draw(st.integers(1, 4))
    lines, edges = [], []
    for index in range(nodes):
        sources = ["x"] + [f"n{j}" for j in range(index)]
        chosen = draw(st.lists(st.sampled_from(sources), min_size=1, unique=True))
        lines.append(f"    n{index} = " + " + ".join(f"{s}:ops_set" for s in chosen))
        edges.extend(f"{s}->n{index}" for s in chosen)
    rule = draw(st.sampled_from(["edge", "node", "explicit"]))
    keeps = []
    if rule == "explicit" and len(edges) >= 2:
        group = draw(st.lists(st.sampled_from(edges), min_size=2, max_size=len(edges), unique=True))
        k = draw(st.integers(1, len(group) * len(ops)))
        keeps.append(f"    keep {k} of {{{', '.join(group)}}}")
        keeps.append("    keep 1 per edge")
    else:
        k = draw(st.integers(1, len(ops))) if rule != "node" else 1
        keeps.append(f"    keep {k} per {rule if rule != 'explicit' else 'edge'}")
    used = {e.split("->")[0] for e in edges}
    outputs = [f"n{i}" for i in range(nodes) if f"n{i}" not in used] or [f"n{nodes - 1}"]
    text = (
        f"ops ops_set = {{{', '.join(ops)}}}\n"
        "cell c(x) {\n" + "\n".join(lines + keeps) + f"\n    out concat({', '.join(outputs)})\n}}\n"
        "network n(C = 2) {\n    input(3, 4)\n    stem conv3x3_bn(C)\n    c @ C\n"
        "    head pool_linear(3)\n}\n"
    )
    return text


@given(random_space(), st.integers(1, 6), st.randoms(use_true_random=False))
def test_masks_only_shrink_and_end_with_exactly_k(text, steps, rng):
    """After any shrink sequence with random F, masks only lose candidates, every subset keeps
    at least k, and exactly k after the last step."""
    space = parse_space(text, catalog=catalog())
    net = compile_space(space)
    table = net.arch.choices["c"]
    previous = net.arch.mask("c").clone()
    for step in range(steps):
        scores = {"c": {}}
        for edge, ops in zip(table.edges, table.candidates):
            for op in ops:
                scores["c"][(edge, op)] = rng.choice(
                    [math.inf, rng.random(), float(rng.randint(0, 3))]
                )
        shrink(net, scores, step, steps)
        mask = net.arch.mask("c")
        assert not (mask & ~previous).any(), "a discarded candidate came back"
        for k, members in table.subsets:
            alive = sum(bool(mask[r, c]) for r, c in members)
            assert alive >= k
            if step == steps - 1:
                assert alive == k
        previous = mask.clone()
