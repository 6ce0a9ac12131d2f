"""Tests of IS-DARTS beyond the papers' spaces: information defined for every candidate, ties
broken by a rule that ignores listing order and reported, and data order that never reaches a
batch."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import attrs
import pytest
import torch
from torch import nn

from nasc.compiler import catalog, compile_space
from nasc.dsl import parse_space
from nasc.runtime.strategies.isdarts import (
    REFERENCE_ORDER,
    information,
    information_sums,
    measure,
    measured_module,
    shrink,
)

SPACES = Path(__file__).parents[3] / "spaces"

PROBE = (Path(__file__).parents[3] / "benchmarks" / "isdarts_probe.nas").read_text()


def digit_batches(count: int = 64, batch: int = 32):
    from nasc.runtime.data.images import Batches, load_digits

    data = load_digits().subset(count, seed=0)
    batches = Batches(data, data.train_images, data.train_labels, batch, "cpu", False, False)
    return list(batches.epoch(None))


def test_the_probe_gives_every_candidate_but_none_finite_information():
    """Four equal 3x3 convolutions ending in relu, sigmoid, bn and the NB201 op (relu-conv-bn):
    each has finite F on every edge, `none` alone is infinite; the paper's F on the relu one's
    own output is infinite on these digits (its spread is 0 at some pixel of every sample)."""
    torch.manual_seed(0)
    net = compile_space(parse_space(PROBE, catalog=catalog()), seed=0)
    net.arch.set_mixing("mean")
    batches = digit_batches()
    scores = measure(net, batches)["c"]
    assert len(scores) == 15
    for (edge, op), value in scores.items():
        assert math.isfinite(value) == (op != "none"), (edge, op, value)
    seen = []
    module = net.cells()[0].edges["x->a"]["conv_relu"]
    handle = module.register_forward_hook(lambda m, i, o: seen.append(information(o)))
    net.eval()
    with torch.no_grad():
        for images, _ in batches:
            net(images)
    handle.remove()
    assert torch.isinf(torch.cat(seen)).any()


def test_measured_module_reads_the_tensor_before_trailing_activations():
    """conv-bn-relu is read at its BN, conv-sigmoid at its conv, a residual block followed by a
    ReLU at the residual sum; ops that end in no activation are read whole."""
    source = """
    op cbr = conv(3, stride = stride) -> bn -> relu
    op cs = conv(3, stride = stride) -> sigmoid
    op nested = (conv(1) -> bn) -> (conv(3) -> bn -> relu6)
    op block = residual(conv(3) -> bn -> relu -> conv(3) -> bn) -> relu
    op only = relu
    ops s = {cbr, cs, nested, block, only, nor_conv_3x3, sep_conv_3x3, skip_connect}
    cell c(x) {
        a = x:s
        keep 1 per edge
        out a
    }
    network n(C = 4, classes = 3) {
        input(3, 8)
        stem conv3x3_bn(C)
        c @ C
        head pool_linear(classes)
    }
    """
    ops = compile_space(parse_space(source, catalog=catalog())).cells()[0].edges["x->a"]
    assert isinstance(measured_module(ops["cbr"]), nn.BatchNorm2d)
    assert isinstance(measured_module(ops["cs"]), nn.Conv2d)
    assert measured_module(ops["nested"]) is ops["nested"][1][1]
    assert type(measured_module(ops["block"])).__name__ == "Residual"
    for name in ("only", "nor_conv_3x3", "sep_conv_3x3", "skip_connect"):
        assert measured_module(ops[name]) is ops[name], name


@pytest.mark.parametrize(("name", "defines"), [("nb201", {"C": 4, "N": 1}), ("darts", {"C": 4})])
def test_the_papers_candidates_are_measured_on_their_own_output(name, defines):
    """No NB201 or DARTS candidate ends in an activation: each is measured on its own output,
    as the paper measures it."""
    space = parse_space((SPACES / f"{name}.nas").read_text(), catalog=catalog())
    net = compile_space(space, {**defines, "layers": 3} if name == "darts" else defines)
    for cell in net.cells():
        for ops in cell.edges.values():
            for module in ops.values():
                assert measured_module(module) is module


def test_information_sums_leave_constant_pixels_out():
    """Without constant pixels the sums give the paper's F exactly; a pixel whose channels are
    all equal is left out instead of making the sample infinite; all constant counts nothing."""
    torch.manual_seed(0)
    x = torch.randn(3, 6, 4, 5)
    total, count = information_sums(x)
    assert torch.equal(count, torch.full((3,), 20))
    assert torch.allclose(total / count, information(x).double(), rtol=1e-6)
    x[0, :, 1, 1] = 0.0  # a pixel a ReLU zeroed in every channel
    total, count = information_sums(x)
    assert count.tolist() == [19, 20, 20]
    assert math.isinf(information(x)[0]) and math.isfinite(total[0] / count[0])
    assert information_sums(torch.zeros(2, 6, 3, 3))[1].tolist() == [0, 0]
    assert information_sums(torch.randn(2, 1, 3, 3))[1].tolist() == [0, 0]  # one channel


# --- ties ----------------------------------------------------------------------------------------

TIED = """
op conv_relu = conv(3, stride = stride) -> relu
op conv_bn = conv(3, stride = stride) -> bn
ops s = {%s}
cell c(x) {
    a = x:s
    b = x:s + a:s
    keep 2 per node
    out b
}
network n(C = 4, classes = 3, channels = 3, size = 8) {
    input(channels, size)
    stem conv3x3_bn(C)
    c @ C
    head pool_linear(classes)
}
"""
TIED_OPS = ["none", "skip_connect", "conv_relu", "conv_bn", "nor_conv_3x3", "avg_pool_3x3"]


def discards(order: list[str], tables: list[dict], steps: int) -> list[set]:
    net = compile_space(parse_space(TIED % ", ".join(order), catalog=catalog()))
    done = []
    for step, table in enumerate(tables):
        records = shrink(net, {"c": dict(table)}, step, steps)
        done.append(
            {(c["edge"], c["op"]) for r in records for c in r["candidates"] if c["discarded"]}
        )
    return done


@pytest.mark.parametrize("seed", range(6))
def test_permuting_a_sets_candidates_gives_the_same_discards(seed):
    """Shrinking with F tables full of ties (equal values, infinities) discards the same
    candidates at every step whatever order the set lists them in."""
    rng = random.Random(seed)
    edges = ("x->a", "x->b", "a->b")
    steps = 3
    tables = [
        {(e, op): rng.choice([math.inf, 1.0, 2.0, rng.random()]) for e in edges for op in TIED_OPS}
        for _ in range(steps)
    ]
    expected = discards(TIED_OPS, tables, steps)
    for _ in range(3):
        order = TIED_OPS[:]
        rng.shuffle(order)
        assert discards(order, tables, steps) == expected, order


def test_the_tie_order_puts_the_references_ops_in_its_order():
    """The canonical op order begins with the reference code's NB201 and DARTS lists, each in
    its own order, so exact ties on the papers' spaces go as in the reference."""
    nb201 = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    from darts_reference import REFERENCE_DARTS_ORDER

    for listed in (nb201, list(REFERENCE_DARTS_ORDER)):
        assert sorted(listed, key=REFERENCE_ORDER.index) == listed


def test_a_tie_that_decides_a_discard_is_reported_with_the_rule():
    """Equal F across the cut: the subset's record names the tied candidates, those the rule
    discarded and the rule; a cut between distinct values reports nothing."""
    net = compile_space(parse_space(TIED % ", ".join(TIED_OPS), catalog=catalog()))
    table = {(e, op): 5.0 for e in ("x->a", "x->b", "a->b") for op in TIED_OPS}
    table.update({(e, "none"): math.inf for e in ("x->a", "x->b", "a->b")})
    by_subset = {r["subset"]: r for r in shrink(net, {"c": table}, 0, 2)}
    (tie,) = by_subset["a"]["ties"]
    assert tie["F"] == 5.0
    assert sorted(tie["candidates"]) == sorted(f"x->a:{op}" for op in TIED_OPS[1:])
    assert len(tie["discarded"]) == 1 and "hash" in tie["rule"]
    distinct = {(e, op): float(i) for i, (e, op) in enumerate(table)}
    assert all("ties" not in r for r in shrink(net, {"c": distinct}, 1, 2))
    fresh = compile_space(parse_space(TIED % ", ".join(TIED_OPS), catalog=catalog()))
    gone = {**distinct, ("x->a", "none"): 0.0, ("x->a", "skip_connect"): 90.0}
    gone.update({("x->a", op): 5.0 for op in ("conv_relu", "nor_conv_3x3", "avg_pool_3x3")})
    gone[("x->a", "conv_bn")] = 3.0
    records = {r["subset"]: r for r in shrink(fresh, {"c": gone}, 0, 1)}  # x->a discards 4
    assert "ties" not in records["a"]  # all three tied candidates go: the tie decides nothing
    assert fresh.arch.live("c", "x->a") == ("none", "conv_bn")


def test_a_search_logs_ties_in_its_metrics_and_importance(tmp_path, monkeypatch):
    """A search whose measurement ties every candidate but `none` says so: `tie` lines in
    metrics.jsonl and `ties` in importance.json, each with the subset, candidates and rule."""
    from nasc.runtime.api import search
    from nasc.runtime.strategies import isdarts

    honest = isdarts.measure

    def flat(net, batches, dist=None):
        scores = honest(net, batches, dist)
        return {
            cell: {m: (v if math.isinf(v) else 1.0) for m, v in table.items()}
            for cell, table in scores.items()
        }

    monkeypatch.setattr(isdarts, "measure", flat)
    found = search(
        TIED % ", ".join(TIED_OPS),
        data="digits",
        subset=48,
        epochs=3,
        shrink_steps=2,
        shrink_interval=1,
        batch_size=16,
        measure_on="train-sample",
        measure_samples=16,
        runs_dir=tmp_path,
    )
    ties = [line for line in found.metrics if line.get("event") == "tie"]
    assert ties
    for tie in ties:
        assert {"epoch", "step", "cell", "subset", "candidates", "discarded", "rule"} <= set(tie)
    importance = json.loads((found.run_dir / "importance.json").read_text())
    assert any("ties" in subset for step in importance for subset in step["subsets"])


# --- data order ----------------------------------------------------------------------------------


def write_folder(root: Path) -> None:
    """A tiny ImageFolder tree: 3 classes of 8x8 colour images, each class a tint plus noise."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", 20), ("test", 8)):
        for label in range(3):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                image = torch.randint(0, 120, (8, 8, 3), generator=generator)
                image[..., label] += 120
                Image.fromarray(image.to(torch.uint8).numpy()).save(folder / f"{index:02d}.png")


def test_a_class_sorted_folder_and_its_images_shuffled_search_alike(tmp_path, monkeypatch):
    """An ImageFolder tree loads class by class; searching it and the same images shuffled
    gives the same supernet test accuracies and the same information F (to 1e-5), because the
    search reads both in the one order `ImageData.mixed` makes from the images and the seed."""
    from nasc.runtime.api import search
    from nasc.runtime.data.images import load_image_folder
    from nasc.runtime.tasks import classification

    write_folder(tmp_path / "folder")
    loaded = load_image_folder(tmp_path / "folder", tmp_path / "cache")
    assert torch.equal(loaded.train_labels, loaded.train_labels.sort().values)  # class-sorted
    assert len(set(loaded.mixed(0).test_labels[:8].tolist())) > 1  # a mixed first batch
    generator = torch.Generator().manual_seed(1)
    train = torch.randperm(len(loaded.train_labels), generator=generator)
    test = torch.randperm(len(loaded.test_labels), generator=generator)
    shuffled = attrs.evolve(
        loaded,
        train_images=loaded.train_images[train],
        train_labels=loaded.train_labels[train],
        test_images=loaded.test_images[test],
        test_labels=loaded.test_labels[test],
    )
    settings = dict(
        defines={"C": 4, "N": 1},
        epochs=3,
        shrink_steps=2,
        shrink_interval=1,
        batch_size=8,
        measure_on="reference",
        cache_dir=str(tmp_path / "cache"),
    )
    found = {}
    for name, data in (("sorted", loaded), ("shuffled", shuffled)):
        monkeypatch.setattr(classification, "load_data", lambda *args, data=data: data)
        found[name] = search("nb201", data="folder", runs_dir=tmp_path / name, **settings)
    epochs = {
        name: [m["test_acc"] for m in result.metrics if m["event"] == "epoch"]
        for name, result in found.items()
    }
    assert epochs["sorted"] == pytest.approx(epochs["shuffled"], abs=1e-9)
    tables = {}
    for name, result in found.items():
        steps = json.loads((result.run_dir / "importance.json").read_text())
        tables[name] = [
            (s["cell"], c["edge"], c["op"], c["F"])
            for step in steps
            for s in step["subsets"]
            for c in s["candidates"]
        ]
    assert [row[:3] for row in tables["sorted"]] == [row[:3] for row in tables["shuffled"]]
    for ours, theirs in zip(tables["sorted"], tables["shuffled"]):
        if isinstance(ours[3], str):
            assert ours[3] == theirs[3]
        else:
            assert ours[3] == pytest.approx(theirs[3], rel=1e-5)
    assert found["sorted"].genotype == found["shuffled"].genotype


def test_a_resume_refuses_a_checkpoint_of_data_in_another_order(tmp_path):
    """The order `mixed` made is kept in every checkpoint; a checkpoint written with other
    images (another order digest) is refused when the search resumes."""
    from nasc.dsl import NascUsageError
    from nasc.runtime.data.images import load_digits
    from nasc.runtime.search.config import make_config
    from nasc.runtime.search.loop import Searcher
    from nasc.runtime.tasks import bind_data

    space = parse_space((SPACES / "nb201.nas").read_text(), catalog=catalog())
    data = load_digits().subset(32, seed=0).mixed(0)
    defines = bind_data(space, {"C": 2, "N": 1}, data)
    config = make_config(space.preset, "isdarts", dict(epochs=1, batch_size=16, device="cpu"))
    searcher = Searcher(space, defines, config, data, torch.device("cpu"))
    state = searcher.state()
    assert state["data_order"] == data.order and data.order.startswith("mixed:0:")
    searcher.check_checkpoint("ckpt", state)  # the same data: accepted
    other = load_digits().subset(32, seed=1).mixed(0)
    assert other.order != data.order
    with pytest.raises(NascUsageError, match="the images changed since"):
        searcher.check_checkpoint("ckpt", {**state, "data_order": other.order})


# --- the spaces where it failed ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "defines"), [("nb101", {"C": 4, "N": 1}), ("inception_time", {"C": 4, "N": 1})]
)
def test_nb101_and_inception_time_measure_every_candidate(tmp_path, name, defines):
    """Searched with IS-DARTS on the digits, the NB-101-style and InceptionTime-like spaces give
    every candidate but `none` finite F at every step, the NB-101 cell keeps 3 of its 6 optional
    edges, and the only ties are between skips of one source (the same tensor), reported."""
    from nasc.runtime.api import search

    found = search(
        str(SPACES / f"{name}.nas"),
        data="digits",
        subset=96,
        defines=defines,
        epochs=4,
        shrink_steps=2,
        shrink_interval=1,
        batch_size=16,
        measure_on="train-sample",
        measure_samples=32,
        runs_dir=tmp_path,
    )
    steps = json.loads((found.run_dir / "importance.json").read_text())
    assert len(steps) == 2
    for step in steps:
        for subset in step["subsets"]:
            assert "non_finite" not in subset
            for tie in subset.get("ties", ()):
                sources = {c.split("->")[0] for c in tie["candidates"]}
                assert len(sources) == 1 and all(
                    c.endswith(":skip_connect") for c in tie["candidates"]
                )
            for candidate in subset["candidates"]:
                finite = isinstance(candidate["F"], float) and math.isfinite(candidate["F"])
                assert finite == (candidate["op"] != "none"), (step["step"], candidate)
    ties = [m for m in found.metrics if m.get("event") == "tie"]
    if name == "nb101":
        edges = found.genotype.cells["nb101"]
        links = [e for e in edges if e.split("->")[1] in ("a2", "a3", "o")]
        assert len(links) == 6
        assert sum(1 for e in links if edges[e] == ("skip_connect",)) == 3
    else:
        assert not ties
