"""Tests of the IS-DARTS measurement, schedule and shrinking."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
from darts_reference import REFERENCE_DARTS_ORDER
from hypothesis import example, given, settings
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
from nasc.testing import check_shrinking, searchable_spaces, shrink_sequences


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


@given(st.data())
def test_masks_only_shrink_and_end_with_exactly_k(data):
    """After any shrink sequence with random F (ties and infinities included) on any small space,
    masks only lose candidates, every subset keeps at least k, and exactly k after the last step."""
    space = parse_space(data.draw(searchable_spaces(), label="source"), catalog=catalog())
    sequence = data.draw(shrink_sequences(space, max_steps=6), label="F tables")
    check_shrinking(space, sequence)
    compile_space(space)  # the generated spaces are ones a search can run on


def direct_information(output: torch.Tensor) -> torch.Tensor:
    """The paper's formula element by element, in float64: the oracle for `information`."""
    x = output.double()
    mu = x.mean(dim=1, keepdim=True)
    sigma = x.std(dim=1, keepdim=True)
    f = 3.0 * (x - mu).pow(2) / sigma.pow(6)
    f = torch.where(torch.isnan(f), torch.full_like(f, math.inf), f)
    return f.mean(dim=(1, 2, 3))


@example(shape=(3, 3, 3, 3), scale=1e-2, offset=-50.0, constant_pixel=False, relu=False, seed=2)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 4), st.integers(1, 4)),
    scale=st.sampled_from([1e-2, 1.0, 30.0]),
    offset=st.sampled_from([0.0, 1.0, -50.0]),
    constant_pixel=st.booleans(),
    relu=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_closed_form_equals_the_direct_formula(shape, scale, offset, constant_pixel, relu, seed):
    """F from per-pixel channel variances equals the element-wise formula, infinities included
    (one channel, a constant pixel, a ReLU's all-zero pixels)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator) * scale + offset
    if relu:
        x = torch.relu(x)
    if constant_pixel:
        x[0, :, 0, 0] = 0.5
    fast, oracle = information(x), direct_information(x)
    assert torch.equal(torch.isinf(fast), torch.isinf(oracle))
    finite = torch.isfinite(oracle)
    assert torch.allclose(fast[finite].double(), oracle[finite], rtol=1e-4)


# --- agreement with the IS-DARTS reference's rule on the DARTS space ----------------------------

DARTS_SOURCES = ("c_k2", "c_k1", "n0", "n1", "n2")


def reference_discards(masks: dict, scores: dict, step: int, steps: int) -> set:
    """The reference's mask update, written from its description: for node i, the live
    candidates listed by source j, then by op in the reference's order; sorted by F, largest
    first (a stable sort, so ties keep that order); the first ceil((live - 2) / (steps - step))
    are discarded. `masks` maps (edge, op) to 0/1 and is updated in place."""
    discarded = set()
    for node in range(4):
        listed = [
            (f"{DARTS_SOURCES[j]}->n{node}", op)
            for j in range(2 + node)
            for op in REFERENCE_DARTS_ORDER
            if masks[(f"{DARTS_SOURCES[j]}->n{node}", op)] == 1
        ]
        listed.sort(key=lambda member: -scores[member])
        count = int(math.ceil((len(listed) - 2) / (steps - step)))
        for member in listed[:count]:
            masks[member] = 0
            discarded.add(member)
    return discarded


def live_members(net, cell: str) -> set:
    table = net.arch.choices[cell]
    return {(edge, op) for edge in table.edges for op in net.arch.live(cell, edge)}


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_shrink_agrees_with_the_reference_rule_on_every_darts_step(seed):
    """Given the same F tables (with ties and infinities), nasc's `shrink` on `spaces/darts.nas`
    discards exactly what the reference's rule does at each of 7 steps, and every node keeps
    at least 2 candidates, exactly 2 at the end."""
    space = parse_space(
        (Path(__file__).parents[3] / "spaces" / "darts.nas").read_text(), catalog=catalog()
    )
    net = compile_space(space, {"C": 2, "layers": 3, "size": 4})
    rng = random.Random(seed)
    masks = {
        cell: {(edge, op): 1 for edge in table.edges for op in table.candidates[0]}
        for cell, table in net.arch.choices.items()
    }
    for step in range(7):
        scores = {
            cell: {
                member: rng.choice([math.inf, rng.random(), float(rng.randint(0, 2))])
                for member in masks[cell]
            }
            for cell in masks
        }
        before = {cell: live_members(net, cell) for cell in masks}
        shrink(net, scores, step, 7)
        for cell in masks:
            expected = reference_discards(masks[cell], scores[cell], step, 7)
            assert before[cell] - live_members(net, cell) == expected, (cell, step)
            for node in range(4):
                alive = sum(1 for edge, _ in live_members(net, cell) if edge.endswith(f"n{node}"))
                assert alive >= 2 and (step < 6 or alive == 2)


def reference_measure(net, run) -> dict:
    """The reference's measurement, written from its description: a hook on every candidate of
    every cell computes the element-wise F per sample and keeps a running mean over samples
    (iim = (iim * n + sum F) / (n + B)); a candidate never run (`none`, a pruned one) is
    +inf, as the reference's zeros give 0 / 0; the mean over the cell type's instances.
    `run()` makes the forward passes; the hooks check that they run in eval mode, no grad."""
    state: dict = {}

    def hook(module, inputs, output):
        assert not module.training and not torch.is_grad_enabled()
        fisher = direct_information(output.detach())
        iim, seen = state.get(id(module), (0.0, 0))
        total = seen + len(fisher)
        state[id(module)] = ((iim * seen + float(fisher.sum())) / total, total)

    handles, owners = [], {}
    for cell in net.cells():
        for edge in net.arch.choices[cell.cell_type].edges:
            for op in net.arch.live(cell.cell_type, edge):
                module = cell.edges[edge][op]
                owners.setdefault((cell.cell_type, edge, op), []).append(id(module))
                handles.append(module.register_forward_hook(hook))
    try:
        result = run()
    finally:
        for handle in handles:
            handle.remove()
    scores: dict = {}
    for (cell, edge, op), keys in owners.items():
        values = [state[key][0] if key in state else math.inf for key in keys]
        scores.setdefault(cell, {})[(edge, op)] = sum(values) / len(values)
    return scores, result


@pytest.mark.slow
def test_a_real_darts_search_discards_as_the_reference_rule(monkeypatch):
    """A search of `spaces/darts.nas` (C=8, 5 cells, the digits, 7 shrink steps): at every step
    the reference's measurement, run on the same supernet and images, gives nasc's F table
    (the same infinities, finite values to 1e-4), and the reference's rule applied to it
    discards what nasc discarded."""
    from nasc.runtime.data.images import load_digits
    from nasc.runtime.search.config import make_config
    from nasc.runtime.search.loop import Searcher
    from nasc.runtime.strategies import isdarts
    from nasc.runtime.tasks import bind_data

    measured = []
    nasc_measure = isdarts.measure

    def both(net, batches, dist=None):  # one pass over the step's images feeds both
        theirs, ours = reference_measure(net, lambda: nasc_measure(net, batches, dist))
        measured.append(theirs)
        return ours

    monkeypatch.setattr(isdarts, "measure", both)
    data = load_digits().subset(32, seed=0)
    space = parse_space(
        (Path(__file__).parents[3] / "spaces" / "darts.nas").read_text(), catalog=catalog()
    )
    defines = bind_data(space, {"C": 8, "layers": 5}, data)
    values = dict(epochs=8, batch_size=16, shrink_steps=7, shrink_interval=1, device="cpu")
    config = make_config(space.preset, "isdarts", values)
    assert config.measure_on == "reference"
    searcher = Searcher(space, defines, config, data, torch.device("cpu"))
    searcher.run_epochs()
    history = searcher.strategy.history
    assert [record["step"] for record in history] == list(range(1, 8))
    assert len(measured) == 7
    masks = {
        cell: {(edge, op): 1 for edge in table.edges for op in table.candidates[0]}
        for cell, table in searcher.net.arch.choices.items()
    }
    for step, record in enumerate(history):
        for cell in masks:
            subsets = [s for s in record["subsets"] if s["cell"] == cell]
            scores = {(c["edge"], c["op"]): float(c["F"]) for s in subsets for c in s["candidates"]}
            done = {
                (c["edge"], c["op"]) for s in subsets for c in s["candidates"] if c["discarded"]
            }
            theirs = measured[step][cell]
            assert set(scores) == set(theirs) == {m for m, live in masks[cell].items() if live}
            for member, value in theirs.items():
                assert math.isinf(value) == math.isinf(scores[member]), (cell, step + 1, member)
                if math.isfinite(value):
                    assert scores[member] == pytest.approx(value, rel=1e-4), (cell, member)
            assert reference_discards(masks[cell], theirs, step, 7) == done, (cell, step + 1)
    for cell in searcher.net.arch.choices:
        assert live_members(searcher.net, cell) == {m for m, live in masks[cell].items() if live}


def test_shrinker_makes_the_strategys_steps_from_user_code():
    """`Shrinker.step` measures and shrinks as `measure` + `shrink` do; after its steps every
    edge keeps one candidate, a further step is refused, and its state restores."""
    from nasc.dsl import NascUsageError
    from nasc.runtime.strategies.isdarts import Shrinker

    space = parse_space(SMALL, catalog=catalog())
    torch.manual_seed(0)
    net = compile_space(space, seed=0)
    twin = compile_space(space, seed=0)
    twin.load_state_dict(net.state_dict())
    twin.arch.set_mixing("mean")
    shrinker = Shrinker(net, steps=4)
    assert net.arch.mixing == "mean"
    images = [torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    for step in range(4):
        record = shrinker.step(images)
        expected = shrink(twin, measure(twin, [(x, None) for x in images]), step, 4)
        assert record["subsets"] == expected and record["step"] == step + 1
        assert net.arch.fingerprint() == twin.arch.fingerprint()
        assert record["live"] == 3 * (4 - step)
    assert shrinker.done
    assert all(len(ops) == 1 for ops in shrinker.genotype().cells["c"].values())
    with pytest.raises(NascUsageError, match="all 4 shrink steps are made"):
        shrinker.step(images)
    again = Shrinker(twin, steps=1)
    again.load_state_dict(shrinker.state_dict())
    assert again.done and again.history == shrinker.history
