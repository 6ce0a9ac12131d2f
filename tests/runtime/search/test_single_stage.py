"""The single-stage protocol: the architecture frozen for the last epochs, the weights trained on
every training image, and the supernet kept as the found network; the swapped data split."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from tiny_search import nasc

from nasc import search
from nasc.compiler import catalog
from nasc.dsl import NascUsageError, load_space
from nasc.runtime.data.images import load_digits
from nasc.runtime.exporting import export_as
from nasc.runtime.runs.checkpoint import load_checkpoint
from nasc.runtime.search.config import make_config, validate
from nasc.runtime.search.loop import Searcher
from nasc.runtime.tasks import bind_data

TIMING = ("seconds", "images_per_s", "measure_seconds")
TINY = dict(data="digits", subset=48, defines={"C": 4, "N": 1}, batch_size=16, device="cpu")


@pytest.fixture(scope="module")
def digits():
    """A small slice of the embedded digits."""
    return load_digits().subset(48, seed=0)


def _searcher(data, strategy="darts-1st", **overrides):
    space = load_space("nb201", catalog=catalog())
    defines = bind_data(space, {"C": 4, "N": 1}, data)
    values = {"epochs": 4, "batch_size": 16, "device": "cpu", "seed": 0, **overrides}
    config = make_config(space.preset, strategy, values)
    validate(config)
    return Searcher(space, defines, config, data, torch.device("cpu"), fingerprint="test")


def _alphas(searcher):
    return [p.detach().clone() for p in searcher.net.arch.parameters()]


def test_frozen_epochs_leave_the_architecture_and_train_on_every_image(digits):
    """After the search epochs, the alphas stop moving while the weights keep learning, and a
    frozen epoch steps through the whole training set rather than the weights' half."""
    searcher = _searcher(digits, protocol="single-stage", frozen_epochs=2)
    assert searcher.frozen_from == 2
    half = len(searcher.train_batches)
    searcher.run_one_epoch()
    searcher.run_one_epoch()
    searched = _alphas(searcher)
    weights = [p.detach().clone() for p in searcher.net.weights()]
    assert not searcher.frozen or searcher.epoch == 2
    searcher.run_one_epoch()
    assert len(searcher.epoch_batches(2)[0]) > half  # every image, not the weights' half
    assert searcher.epoch_batches(2)[1] is None  # no architecture steps
    for before, after in zip(searched, _alphas(searcher), strict=True):
        assert torch.equal(before, after)
    assert any(
        not torch.equal(a, b) for a, b in zip(weights, searcher.net.weights(), strict=True)
    )
    records = [r for r in searcher.metric_records if r.get("event") == "epoch"]
    assert [bool(r.get("frozen")) for r in records] == [False, False, True]


def test_two_stage_searches_move_the_alphas_in_every_epoch(digits):
    """Without the protocol the last epoch still steps the architecture (the test above would
    pass vacuously if the alphas never moved)."""
    searcher = _searcher(digits, epochs=2)
    searcher.run_one_epoch()
    before = _alphas(searcher)
    searcher.run_one_epoch()
    assert any(not torch.equal(a, b) for a, b in zip(before, _alphas(searcher), strict=True))


def test_a_sampling_strategy_is_frozen_at_its_expected_weights(digits):
    """GDAS draws a new architecture every step; frozen, it mixes with its expected weights,
    so two forward passes in training mode agree."""
    searcher = _searcher(digits, "gdas", epochs=2, protocol="single-stage", frozen_epochs=1)
    searcher.run_one_epoch()
    searcher.freeze(True)
    images = next(iter(searcher.all_batches.epoch(0)))[0]
    torch.manual_seed(0)
    first = searcher.logits(images)
    torch.manual_seed(1)
    assert torch.allclose(first, searcher.logits(images))


def test_swapped_halves_trade_roles_every_epoch(digits):
    """Under --arch-split swap the weights learn from the architecture's half in odd epochs."""
    searcher = _searcher(digits, arch_split="swap")
    assert searcher.epoch_batches(0) == (searcher.train_batches, searcher.arch_batches)
    assert searcher.epoch_batches(1) == (searcher.arch_batches, searcher.train_batches)
    plain = _searcher(digits)
    assert plain.epoch_batches(1) == (plain.train_batches, plain.arch_batches)


@pytest.mark.parametrize(
    ("strategy", "overrides", "flag"),
    [
        ("isdarts", {"protocol": "single-stage"}, "--protocol"),
        ("darts-1st", {"protocol": "one-stage"}, "--protocol"),
        ("darts-1st", {"protocol": "single-stage", "frozen_epochs": 10}, "--frozen-epochs"),
        ("darts-1st", {"frozen_epochs": 2}, "--frozen-epochs"),
        ("darts-1st", {"arch_split": "thirds"}, "--arch-split"),
    ],
)
def test_settings_that_cannot_run_are_refused_by_flag(strategy, overrides, flag):
    """A masking strategy, an unknown protocol or split, and frozen epochs that leave nothing
    to search (or without the protocol) are refused, naming the flag."""
    config = make_config("nb201", strategy, {"epochs": 10, **overrides})
    with pytest.raises(NascUsageError) as error:
        validate(config)
    assert error.value.message.startswith(flag)


def test_a_single_stage_run_keeps_and_exports_its_supernet(tmp_path):
    """The run writes its final supernet, alphas and weights as the last checkpoint holds them,
    as network.pt; `export` hands it out as TorchScript and as a module."""
    result = search(
        "nb201", strategy="darts-1st", epochs=2, protocol="single-stage", runs_dir=tmp_path,
        **TINY,
    )  # fmt: skip
    run = result.run_dir
    recorded = json.loads((run / "result.json").read_text())
    assert recorded["protocol"] == "single-stage"
    assert recorded["single_stage"]["frozen_from_epoch"] == 2
    kept = torch.jit.load(str(run / "network.pt"))
    last = sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]
    final = load_checkpoint(last)["net"]
    state = kept.state_dict()
    tensors = {name for name, value in final.items() if isinstance(value, torch.Tensor)}
    assert {name for name, _ in kept.named_parameters()} <= tensors
    assert any(name.startswith("arch.alphas") for name in tensors)  # the alphas are kept too
    for name in tensors & set(state):
        assert torch.equal(state[name], final[name]), name
    module = export_as(run, "module")
    images = torch.rand(4, 1, 28, 28)
    assert torch.equal(kept(images), module(images))
    written = export_as(run, "torchscript", output=tmp_path / "copy.pt")
    assert written.read_bytes() == (run / "network.pt").read_bytes()


def test_a_run_killed_in_a_frozen_epoch_resumes_to_the_same_supernet(tmp_path):
    """SIGKILL inside the first frozen epoch, then --resume: the same records and the same
    kept supernet as an uninterrupted run."""
    args = [
        "search", "nb201", "--strategy", "darts-1st", "--protocol", "single-stage",
        "--data", "digits", "--subset", "48", "-D", "C=4", "-D", "N=1", "--epochs", "3",
        "--frozen-epochs", "1", "--batch-size", "16", "--seed", "2", "--quiet",
    ]  # fmt: skip
    whole = tmp_path / "whole"
    assert nasc([*args, "--runs-dir", str(whole)]).returncode == 0
    broken = tmp_path / "broken"
    killed = nasc([*args, "--runs-dir", str(broken)], env={"NASC_FAULT": "kill@3.1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [run] = broken.iterdir()
    assert not (run / "network.pt").exists()
    resumed = nasc(["search", "--resume", str(run), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    [reference] = whole.iterdir()

    def records(folder):
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]

    assert records(run) == records(reference)
    assert [r.get("frozen", False) for r in records(run) if r["event"] == "epoch"] == [
        False, False, True,
    ]  # fmt: skip
    ours, theirs = (torch.jit.load(str(f / "network.pt")).state_dict() for f in (run, reference))
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
