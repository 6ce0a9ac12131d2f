"""Tests of `--tensorboard`: the event files hold the metrics and the strategies' own scalars,
and a killed run resumed keeps one value per epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_search import TINY_SEARCH

from nasc.runtime.cli import main

TINY = [*TINY_SEARCH, "--seed", "3"]


def events(run):
    """The scalars of a run's TensorBoard files: {tag: [(step, value), ...]}."""
    accumulator = EventAccumulator(str(run / "tensorboard"))
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def epochs(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["event"] == "epoch"]


def test_isdarts_search_writes_metrics_and_information(tmp_path):
    """Every epoch's numbers land at their epoch; each shrink step adds the F of the candidates
    it compared."""
    args = ["search", "nb201", *TINY, "--tensorboard", "--runs-dir", str(tmp_path)]
    assert main(args) == 0
    [run] = tmp_path.iterdir()
    scalars = events(run)
    assert [step for step, _ in scalars["epoch/test_acc"]] == [1, 2, 3]
    for (_, value), record in zip(scalars["epoch/test_acc"], epochs(run)):
        assert value == pytest.approx(record["test_acc"])
    assert [step for step, _ in scalars["shrink/live"]] == [1, 2]  # shrinks after epochs 1, 2
    history = json.loads((run / "importance.json").read_text())
    first = history[0]["subsets"][0]["candidates"][0]
    tag = f"information/nb201_cell.{first['edge']}:{first['op']}"
    if first["F"] not in ("inf", "-inf"):
        assert scalars[tag][0] == (1, pytest.approx(first["F"]))
    compared = {
        f"information/{s['cell']}.{c['edge']}:{c['op']}"
        for step in history
        for s in step["subsets"]
        for c in s["candidates"]
    }
    assert {tag for tag in scalars if tag.startswith("information/")} <= compared
    assert len([tag for tag in scalars if tag.startswith("information/")]) >= 20


@pytest.mark.parametrize("strategy", ["darts-1st", "gdas", "drnas", "ms-darts"])
def test_darts_search_writes_the_mixing_weights(tmp_path, strategy):
    """The DARTS family plots the (expected) weight of every candidate each epoch; each edge's
    sum to one."""
    args = ["search", "nb201", *TINY, "--strategy", strategy, "--tensorboard"]
    assert main([*args, "--runs-dir", str(tmp_path)]) == 0
    [run] = tmp_path.iterdir()
    scalars = events(run)
    weights = {tag: values for tag, values in scalars.items() if tag.startswith("weight/")}
    assert len(weights) == 6 * 5
    edge = [values for tag, values in weights.items() if ".x->n1:" in tag]
    assert len(edge) == 5
    for epoch in range(3):
        assert sum(values[epoch][1] for values in edge) == pytest.approx(1.0, abs=1e-5)
    if strategy == "gdas":
        assert [value for _, value in scalars["gdas/tau"]] == pytest.approx([10.0, 5.05, 0.1])


def test_a_resumed_run_keeps_one_value_per_epoch(tmp_path):
    """A run killed after epoch 2's metrics but before its checkpoint runs epoch 2 again on
    --resume; TensorBoard shows that epoch once, with the value the finished run logged."""
    environment = {**os.environ, "NASC_FAULT": "metrics@2"}
    command = [sys.executable, "-m", "nasc.runtime", "search", "nb201", *TINY]
    killed = subprocess.run(
        [*command, "--tensorboard", "--runs-dir", str(tmp_path)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [run] = tmp_path.iterdir()
    before = events(run)["epoch/test_acc"]
    assert [step for step, _ in before] == [1, 2]
    assert main(["search", "--resume", str(run), "--quiet"]) == 0  # no flag: the folder says so
    after = events(run)["epoch/test_acc"]
    assert [step for step, _ in after] == [1, 2, 3]
    assert [value for _, value in after] == pytest.approx([r["test_acc"] for r in epochs(run)])


def test_train_writes_its_metrics(tmp_path):
    """`nasc train --tensorboard` mirrors the training curves too."""
    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|skip_connect~1|avg_pool_3x3~2|"
    args = ["train", "nb201", "--arch", arch, "--data", "digits", "--subset", "64", "-D", "C=4"]
    args += ["-D", "N=1", "--epochs", "2", "--batch-size", "16", "--quiet", "--tensorboard"]
    assert main([*args, "--runs-dir", str(tmp_path)]) == 0
    [run] = tmp_path.iterdir()
    scalars = events(run)
    assert [step for step, _ in scalars["epoch/train_loss"]] == [1, 2]
    assert [step for step, _ in scalars["epoch/best_test_acc"]] == [1, 2]


def test_a_missing_tensorboard_package_is_a_clear_error(tmp_path, monkeypatch, capsys):
    """Without the package, --tensorboard stops before any work and says how to install it."""
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # makes `import tensorboard` fail
    args = ["search", "nb201", *TINY, "--tensorboard", "--runs-dir", str(tmp_path)]
    assert main(args) == 2
    assert 'pip install "nasc[tensorboard]"' in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
