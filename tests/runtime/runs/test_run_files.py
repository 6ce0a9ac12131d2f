"""Hostile or odd files in a run directory (or given as a `.nas` file) get clear errors naming
them; metrics.jsonl survives damage; run directories are made and locked safely."""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest
import torch

from nasc.dsl import NascUsageError
from nasc.runtime.cli import main
from nasc.runtime.runs.checkpoint import (
    load_checkpoint,
    nonfinite,
    remove_temporaries,
    write_atomic,
)
from nasc.runtime.runs.rundir import RunDir, unique_directory

# --- metrics.jsonl --------------------------------------------------------------------------------


def test_metrics_write_nan_as_null_and_keep_readable_lines(tmp_path):
    run = RunDir.create(tmp_path, "s", "isdarts")
    run.log_metrics({"event": "epoch", "epoch": 1, "test_loss": float("nan")})
    run.log_metrics({"event": "epoch", "epoch": 2, "test_loss": float("inf")})
    with open(run.path / "metrics.jsonl", "a") as handle:
        handle.write("garbled}\n")
    run.log_metrics({"event": "epoch", "epoch": 3, "test_loss": 1.0})
    text = (run.path / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert [line["epoch"] for line in run.metrics_lines()] == [1, 2, 3]
    assert run.metrics_lines()[0]["test_loss"] is None
    run.close()


@pytest.mark.parametrize("damage", ["delete", "garble"])
def test_metrics_are_rebuilt_from_the_checkpoint(run_copy, damage):
    """A deleted or garbled metrics.jsonl resumes with every earlier epoch's line intact."""
    path = run_copy / "metrics.jsonl"
    before = path.read_text().splitlines()
    if damage == "delete":
        path.unlink()
    else:
        path.write_text("\n".join(["{bad", *before[1:]]) + "\n")
    assert main(["search", "--resume", str(run_copy), "--quiet"]) == 0
    after = path.read_text().splitlines()
    assert after[: len(before)] == before


def test_when_no_checkpoint_can_be_used_the_metrics_are_kept_aside(run_copy, capsys):
    for checkpoint in (run_copy / "checkpoints").glob("ckpt-*.pt"):
        checkpoint.write_bytes(b"garbage")
    before = (run_copy / "metrics.jsonl").read_text()
    assert main(["search", "--resume", str(run_copy), "--quiet"]) == 0
    out = capsys.readouterr().out
    [kept] = run_copy.glob("metrics-*.jsonl")
    assert kept.read_text() == before and str(kept) in out


# --- run directories ------------------------------------------------------------------------------


def test_a_dangling_runs_dir_symlink_is_a_clear_error(tmp_path):
    link = tmp_path / "runs"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(NascUsageError, match="does not exist"):
        RunDir.create(link, "s", "isdarts")


def test_the_lock_is_never_written_through_a_symlink(tmp_path):
    run = RunDir.create(tmp_path, "s", "isdarts")
    run.write_json("config.json", {})
    run.close()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run.path / ".lock").unlink(missing_ok=True)  # a closed run removes its lock
    (run.path / ".lock").symlink_to(victim)
    with pytest.raises(NascUsageError, match="symlink"):
        RunDir.open(run.path)
    assert victim.read_text() == "precious\n"


def test_stale_temporary_files_are_removed_on_the_next_start(tmp_path):
    run = RunDir.create(tmp_path, "s", "isdarts")
    run.write_json("config.json", {})
    run.close()
    stale = [run.path / ".config.json.tmp-99999", run.path / "checkpoints/.ckpt-00003.pt.tmp-1"]
    for path in stale:
        path.write_bytes(b"x" * 100)
    keep = run.path / "checkpoints" / "ckpt-00001.pt"
    keep.write_bytes(b"y")
    RunDir.open(run.path).close()
    assert not any(path.exists() for path in stale) and keep.exists()
    assert remove_temporaries(tmp_path / "nothing") == []


def test_a_write_failing_before_config_json_says_the_run_cannot_be_resumed(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(NascUsageError) as error:
        write_atomic(tmp_path / "space.nas", b"text")
    assert "cannot be resumed" in error.value.hint and "checkpoint is intact" not in (
        error.value.hint
    )


def test_seeds_directories_of_the_same_second_are_distinct(tmp_path):
    first = unique_directory(tmp_path, "seeds-20260101-000000")
    second = unique_directory(tmp_path, "seeds-20260101-000000")
    assert first != second and first.is_dir() and second.is_dir()


def test_nasc_train_at_a_huge_learning_rate_saves_nothing_diverged(tmp_path, capsys):
    """`nasc train` checks the same: a diverged network is not checkpointed, and the suggested
    rate is not lr/4."""
    cell = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    code = main(
        ["train", "nb201", "--arch", cell, "--data", "digits", "--subset", "64", "-D", "C=4",
         "-D", "N=1", "--epochs", "2", "--batch-size", "32", "--lr", "1e6", "--runs-dir",
         str(tmp_path), "--quiet"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and ("diverged" in err or "loss is nan" in err)
    assert "250000" not in err and "--lr" in err
    [run] = tmp_path.iterdir()
    for path in (run / "checkpoints").glob("ckpt-*.pt"):
        assert not nonfinite(load_checkpoint(path)["net"])


def test_a_run_killed_while_writing_its_config_says_it_cannot_be_resumed(tmp_path):
    run = tmp_path / "nb201-isdarts-20260101-000000"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".config.json.tmp-4242").write_text("{")
    with pytest.raises(NascUsageError, match="cannot be resumed") as error:
        RunDir.open(run)
    assert "start the search again" in error.value.hint


def test_each_metric_line_is_fsynced(tmp_path, monkeypatch):
    """A metric line is forced to disk before log_metrics returns: a crash right after keeps it."""
    run = RunDir.create(tmp_path, "s", "isdarts")
    synced, real = [], os.fsync

    def spy(descriptor):
        synced.append(os.path.realpath(f"/proc/self/fd/{descriptor}"))
        real(descriptor)

    monkeypatch.setattr(os, "fsync", spy)
    run.log_metrics({"event": "epoch", "epoch": 1})
    run.close()
    assert os.path.realpath(run.path / "metrics.jsonl") in synced


def test_a_loss_that_explodes_stops_the_run_before_it_is_saved():
    """A finite but exploded epoch loss (train or test, as at --lr 1e4, where losses reach 1e16
    with every weight still finite) is divergence; a healthy epoch is not."""
    from nasc.compiler import catalog
    from nasc.dsl import load_space
    from nasc.runtime.data.images import load_digits
    from nasc.runtime.runs.records import DIVERGED_LOSS, Diverged
    from nasc.runtime.search.config import make_config
    from nasc.runtime.search.loop import Searcher
    from nasc.runtime.tasks import bind_data

    data = load_digits().subset(32, seed=0)
    space = load_space("nb201", catalog=catalog())
    defines = bind_data(space, {"C": 2, "N": 1}, data)
    values = dict(epochs=2, batch_size=16, shrink_steps=1, shrink_interval=1, device="cpu")
    config = make_config(space.preset, "isdarts", values)
    searcher = Searcher(space, defines, config, data, torch.device("cpu"))
    searcher.check_diverged({"epoch": 1, "train_loss": 2.3, "test_loss": 2.4})
    for key in ("train_loss", "test_loss"):
        record = {"epoch": 1, "train_loss": 2.3, "test_loss": 2.4, key: 1e16}
        with pytest.raises(Diverged, match=f"diverged at epoch 1: the {key[:-5]} loss is 1e"):
            searcher.check_diverged(record)
    with pytest.raises(Diverged, match="test loss is nan"):
        searcher.check_diverged({"epoch": 2, "train_loss": 2.3, "test_loss": math.nan})
    assert DIVERGED_LOSS < 1e16


def test_two_seeds_searches_in_the_same_second_keep_both_summaries(tmp_path, monkeypatch):
    """`--seeds` searches started in the same second get two seeds-<time> folders, and neither
    summary overwrites the other (the searches themselves are stood in for)."""
    from types import SimpleNamespace

    import nasc.runtime.search.run as search

    calls = []

    def searched(args, events, overrides, *rest):
        calls.append(overrides["seed"])
        genotype = {"c": [len(calls)]}
        return SimpleNamespace(result={"seed": overrides["seed"], "genotype": genotype,
                                       "run": str(tmp_path / str(len(calls)))})  # fmt: skip

    monkeypatch.setattr(search, "_search_once", searched)
    monkeypatch.setattr(search.time, "strftime", lambda *a: "20260101-000000")
    runs = tmp_path / "runs"
    for first in (0, 10):
        args = ["search", "nb201", "--seeds", "2", "--seed", str(first), "--quiet"]
        assert main([*args, "--runs-dir", str(runs)]) == 0
    summaries = sorted(runs.glob("seeds-20260101-000000*/summary.json"))
    assert len(summaries) == 2 and calls == [0, 1, 10, 11]
    seeds = [[r["seed"] for r in json.loads(p.read_text())["runs"]] for p in summaries]
    assert sorted(seeds) == [[0, 1], [10, 11]]


def test_resume_overrides_of_the_optimizers_settings_are_used(run_copy):
    """`--resume --momentum/--no-nesterov/--weight-decay` reach the SGD that trains on (its saved
    state carried the settings it was built with, which would otherwise win)."""
    flags = ["--momentum", "0.5", "--no-nesterov", "--weight-decay", "0.001"]
    assert main(["search", "--resume", str(run_copy), "--quiet", *flags]) == 0
    last = load_checkpoint(sorted((run_copy / "checkpoints").glob("ckpt-*.pt"))[-1])
    assert last["epoch"] == 3
    [group] = last["optimizer"]["param_groups"]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.5, False, 0.001)


def test_a_resumed_darts_strategy_takes_the_overridden_arch_settings():
    """The alphas' Adam, restored from a checkpoint, runs with the resume's --arch-lr, betas and
    weight decay, not those its saved state was built with."""
    from nasc.compiler import catalog
    from nasc.dsl import load_space
    from nasc.runtime.data.images import load_digits
    from nasc.runtime.search.config import make_config
    from nasc.runtime.search.loop import Searcher
    from nasc.runtime.tasks import bind_data

    data = load_digits().subset(32, seed=0)
    space = load_space("nb201", catalog=catalog())
    defines = bind_data(space, {"C": 2, "N": 1}, data)

    def strategy(**values):
        values.update(epochs=2, batch_size=16, device="cpu")
        config = make_config(space.preset, "darts-1st", values)
        return Searcher(space, defines, config, data, torch.device("cpu")).strategy

    saved = strategy().state_dict()
    resumed = strategy(arch_lr=0.01, arch_beta1=0.9, arch_beta2=0.99, arch_weight_decay=0.0)
    resumed.load_state_dict(saved)
    [group] = resumed.optimizer.param_groups
    assert (group["lr"], group["betas"], group["weight_decay"]) == (0.01, (0.9, 0.99), 0.0)


def test_resuming_a_folder_with_only_config_json_says_there_is_no_checkpoint(
    killed, tmp_path, capsys
):
    """`nasc search --resume` on a folder holding only config.json says there is no checkpoint
    to resume and how to start the search again (its space named), instead of a bare missing
    space.nas."""
    folder = tmp_path / "only-config"
    folder.mkdir()
    shutil.copy(killed / "config.json", folder / "config.json")
    assert main(["search", "--resume", str(folder), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint to resume" in err and "before its first checkpoint" in err
    assert "without --resume (nasc search nb201" in err


def test_resuming_a_run_that_lost_its_space_names_the_file(run_copy, capsys):
    """A run with checkpoints but no space.nas is refused naming the missing file."""
    (run_copy / "space.nas").unlink()
    assert main(["search", "--resume", str(run_copy), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "its space.nas is missing" in err and f"put back {run_copy / 'space.nas'}" in err
