"""A diverged run never passes for a good one: no diverged checkpoint is written or resumed,
and the advice it gives works."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_search import SEARCH, lines, nasc

from nasc.runtime.cli import main
from nasc.runtime.runs.checkpoint import (
    load_checkpoint,
    nonfinite,
    save_checkpoint,
)

# --- divergence -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_huge_learning_rate_stops_before_a_diverged_checkpoint(tmp_path):
    """At --lr 1e5 the BN running variances overflow while the training loss stays finite: the
    run stops at the end of epoch 1, saves nothing, and suggests the presets' rate, not lr/4."""
    done = nasc([*SEARCH, "--lr", "1e5", "--runs-dir", str(tmp_path)])
    assert done.returncode == 2, done.stderr
    assert "diverged at epoch 1" in done.stderr and "Traceback" not in done.stderr
    assert "--lr 0.025" in done.stderr and "25000" not in done.stderr
    [run] = tmp_path.iterdir()
    assert not list((run / "checkpoints").glob("ckpt-*.pt"))
    assert not (run / "result.json").exists()


@pytest.mark.slow
def test_non_finite_buffers_are_never_checkpointed_and_the_advice_works(tmp_path):
    """A BN running variance that becomes infinite after epoch 2 (the loss still finite) stops
    the run before its shrink step and checkpoint, naming the buffer and the last good
    checkpoint; the suggested resume finishes with finite checkpoints."""
    done = nasc([*SEARCH, "--runs-dir", str(tmp_path)], env={"NASC_FAULT": "inf@2"})
    assert done.returncode == 2, done.stderr
    assert "diverged at epoch 2" in done.stderr and "running_var" in done.stderr
    assert "ckpt-00001.pt" in done.stderr
    [run] = tmp_path.iterdir()
    assert [p.name for p in (run / "checkpoints").glob("ckpt-*.pt")] == ["ckpt-00001.pt"]
    assert [line["event"] for line in lines(run)] == ["epoch", "shrink"]  # epoch 2: not saved
    suggested = done.stderr.split("--lr ")[-1].split()[0].rstrip(")")
    assert 0 < float(suggested) < 0.025
    resumed = nasc(["search", "--resume", str(run), "--lr", suggested, "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    for path in (run / "checkpoints").glob("ckpt-*.pt"):
        assert not nonfinite(load_checkpoint(path)["net"])


def test_a_non_finite_checkpoint_is_never_resumed(run_copy, capsys):
    """A checkpoint with an infinite weight (written by an older nasc) is skipped with a warning
    naming it; the run resumes from the one before."""
    newest = run_copy / "checkpoints" / "ckpt-00002.pt"
    state = load_checkpoint(newest)
    name = next(k for k, v in state["net"].items() if torch.is_tensor(v) and v.is_floating_point())
    state["net"][name].fill_(math.inf)
    save_checkpoint(run_copy / "checkpoints", 2, state)
    assert main(["search", "--resume", str(run_copy), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ckpt-00002.pt holds non-finite values" in out and "resumed after epoch 1" in out
