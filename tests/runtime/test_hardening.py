"""A diverged run never passes for a good one, resumes keep their settings, and hostile or odd
files in a run directory (or given as a `.nas` file) get clear errors naming them."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from tiny_search import TINY_SEARCH

from nasc.dsl import NascUsageError, read_source
from nasc.runtime.cli import main
from nasc.runtime.runs.checkpoint import (
    CorruptCheckpoint,
    load_checkpoint,
    load_latest,
    nonfinite,
    remove_temporaries,
    save_checkpoint,
    write_atomic,
)
from nasc.runtime.runs.records import cosine_lr
from nasc.runtime.runs.rundir import RunDir, unique_directory

SEARCH = ["search", "nb201", *TINY_SEARCH, "--seed", "4"]


def nasc(args, env=None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NASC_FAULT")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "nasc.runtime", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )


def lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A run killed in its third (last) epoch: checkpoints after epochs 1 and 2."""
    root = tmp_path_factory.mktemp("killed")
    done = nasc([*SEARCH, "--runs-dir", str(root)], env={"NASC_FAULT": "kill@3.1"})
    assert done.returncode == -signal.SIGKILL, done.stderr
    [run] = root.iterdir()
    return run


@pytest.fixture
def run_copy(killed, tmp_path):
    copy = tmp_path / killed.name
    shutil.copytree(killed, copy)
    (copy / ".lock").unlink(missing_ok=True)
    return copy


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


# --- resumes keep their settings ------------------------------------------------------------------


@pytest.mark.slow
def test_a_resume_override_is_recorded_and_kept_by_the_next_resume(killed, tmp_path):
    """`--resume RUN --lr X`, killed before its next checkpoint, then a plain `--resume`: the
    run continues with X (config.json records it, the metrics say so once)."""
    run = tmp_path / "run"
    shutil.copytree(killed, run)
    for path in (run / "checkpoints").glob("ckpt-00002.pt"):
        path.unlink()  # resume after epoch 1
    first = nasc(
        ["search", "--resume", str(run), "--lr", "0.01", "--quiet"],
        env={"NASC_FAULT": "kill@2.2"},
    )
    assert first.returncode == -signal.SIGKILL, first.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["lr"] == 0.01
    assert saved["overrides"][0]["settings"] == {"lr": 0.01}
    plain = nasc(["search", "--resume", str(run), "--quiet"])
    assert plain.returncode == 0, plain.stderr
    records = lines(run)
    overrides = [r for r in records if r["event"] == "override"]
    assert overrides == [{"event": "override", "epoch": 1, "settings": {"lr": 0.01}}]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert epochs[1]["lr"] == pytest.approx(cosine_lr(0.01, 0.001, 3, 1))
    assert load_checkpoint(sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1])["settings"][
        "lr"
    ] == pytest.approx(0.01)


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--epochs", "6"], "epochs"),
        (["--batch-size", "8"], "batch_size"),
        (["--measure-samples", "8"], "measure_samples"),
        (["--subset", "32"], "subset"),
        (["-D", "C=8"], "-D C=8"),
        (["--seed", "9"], "seed"),
    ],
)
def test_flags_that_change_the_result_are_refused_on_resume(run_copy, capsys, flags, named):
    """A resume flag that would change what the run computes is refused, naming it."""
    assert main(["search", "--resume", str(run_copy), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and "cannot change on resume" in err


@pytest.mark.parametrize(
    "key, value", [("batch_size", 8), ("lr", 1e6), ("measure_samples", 8), ("subset", 32)]
)
def test_an_edited_config_json_is_refused_naming_the_setting(run_copy, capsys, key, value):
    """Editing a setting in config.json that the checkpoint was trained without is refused."""
    path = run_copy / "config.json"
    saved = json.loads(path.read_text())
    if key == "subset":
        saved["subset"] = value
    else:
        saved["config"][key] = value
    path.write_text(json.dumps(saved))
    assert main(["search", "--resume", str(run_copy), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"trained with {key} =" in err and "config.json" in err


def test_a_resume_under_another_world_size_is_refused(run_copy, capsys):
    path = run_copy / "config.json"
    saved = json.loads(path.read_text())
    saved["world_size"] = 2
    path.write_text(json.dumps(saved))
    assert main(["search", "--resume", str(run_copy), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "2 processes" in err and "--nproc-per-node 2" in err


@pytest.mark.parametrize(
    "edit, named",
    [
        (lambda s: s["config"].update(epochs="3"), "`epochs` must be an int"),
        (lambda s: s.update(config=[1, 2]), "`config` must be a JSON object"),
        (lambda s: s["config"].update(colour=1), "unknown setting `colour`"),
        (lambda s: s.pop("defines"), "has no `defines`"),
        (lambda s: s["defines"].update(C="4"), "`C` in `defines` must be an integer"),
    ],
)
def test_malformed_config_values_are_clear_errors(run_copy, capsys, edit, named):
    path = run_copy / "config.json"
    saved = json.loads(path.read_text())
    edit(saved)
    path.write_text(json.dumps(saved))
    assert main(["search", "--resume", str(run_copy), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert named in err and "config.json" in err and "Traceback" not in err


# --- checkpoints with a valid checksum but the wrong structure, and odd files ---------------------


def _first_weight(state):
    return next(k for k, v in state["net"].items() if torch.is_tensor(v) and v.dim() > 1)


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda s: s.pop("net"), "no valid `net`"),
        (lambda s: s.update(epoch="2"), "no valid `epoch`"),
        (lambda s: s["net"].update({_first_weight(s): torch.zeros(1)}), "(1,)"),
    ],
)
def test_a_checkpoint_of_another_structure_falls_back(run_copy, capsys, damage, said):
    newest = run_copy / "checkpoints" / "ckpt-00002.pt"
    state = load_checkpoint(newest)
    damage(state)
    save_checkpoint(run_copy / "checkpoints", 2, state)
    assert main(["search", "--resume", str(run_copy), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ckpt-00002.pt" in out and said in out and "resumed after epoch 1" in out


@pytest.mark.parametrize("kind", ["directory", "fifo", "dev-zero", "huge"])
def test_odd_files_in_a_checkpoints_place_are_refused(tmp_path, kind, monkeypatch):
    """A directory, a FIFO, /dev/zero or an oversized file named like a checkpoint is reported
    by name without hanging or exhausting memory; the previous checkpoint loads."""
    save_checkpoint(tmp_path, 1, {"epoch": 1})
    odd = tmp_path / "ckpt-00002.pt"
    if kind == "directory":
        odd.mkdir()
    elif kind == "fifo":
        os.mkfifo(odd)
    elif kind == "dev-zero":
        odd.symlink_to("/dev/zero")
    else:
        save_checkpoint(tmp_path, 2, {"epoch": 2})
        monkeypatch.setattr("nasc.runtime.runs.checkpoint.MAX_CHECKPOINT_BYTES", 100)
    with pytest.raises(CorruptCheckpoint, match="ckpt-00002.pt"):
        load_checkpoint(odd)
    warnings = []
    monkeypatch.setattr("nasc.runtime.runs.checkpoint.MAX_CHECKPOINT_BYTES", 1 << 20)
    if kind == "huge":
        return
    path, state = load_latest(tmp_path, warn=warnings.append)
    assert path.name == "ckpt-00001.pt" and "ckpt-00002.pt" in warnings[0]
    save_checkpoint(tmp_path, 2, {"epoch": 2})  # the resumed run writes it again
    assert load_checkpoint(odd)["epoch"] == 2


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_fifo_or_dev_zero_as_a_nas_file_is_refused(tmp_path, kind, capsys):
    path = tmp_path / "space.nas"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    with pytest.raises(NascUsageError, match="not a regular file"):
        read_source(path)
    assert main(["check", str(path)]) == 2
    assert "space.nas" in capsys.readouterr().err


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


# --- nasc train resumes as a search does ----------------------------------------------------------

TRAIN = [
    "train", "nb201", "--arch",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "--data", "digits", "--subset", "64", "-D", "C=4", "-D", "N=1", "--epochs", "2",
    "--batch-size", "32", "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished two-epoch training run."""
    root = tmp_path_factory.mktemp("trained")
    assert main([*TRAIN, "--runs-dir", str(root)]) == 0
    [run] = root.iterdir()
    return run


@pytest.fixture
def train_copy(trained, tmp_path):
    """A copy of the training run as if stopped after epoch 1."""
    copy = tmp_path / trained.name
    shutil.copytree(trained, copy)
    (copy / "checkpoints" / "ckpt-00002.pt").unlink()
    (copy / "result.json").unlink()
    return copy


def test_a_train_resume_override_is_recorded_used_and_kept(train_copy):
    """`nasc train --resume RUN --lr X --momentum M` (the advice a diverged run prints) is
    written to config.json and the metrics and reaches the optimizer; a later plain --resume
    from the same checkpoint trains exactly as the overridden one did."""
    run = train_copy
    flags = ["--lr", "0.01", "--momentum", "0.5"]
    assert main(["train", "--resume", str(run), "--quiet", *flags]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["lr"] == 0.01 and saved["config"]["momentum"] == 0.5
    assert saved["overrides"][0]["settings"] == {"lr": 0.01, "momentum": 0.5}
    overridden = lines(run)
    assert [r for r in overridden if r["event"] == "override"] == [
        {"event": "override", "epoch": 1, "settings": {"lr": 0.01, "momentum": 0.5}}
    ]
    [group] = load_checkpoint(run / "checkpoints" / "ckpt-00002.pt")["optimizer"]["param_groups"]
    assert group["momentum"] == 0.5
    (run / "checkpoints" / "ckpt-00002.pt").unlink()  # as if killed before that checkpoint
    (run / "result.json").unlink()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    again = lines(run)
    assert [r["lr"] for r in again if r["event"] == "epoch"] == [
        r["lr"] for r in overridden if r["event"] == "epoch"
    ]
    assert [r["train_loss"] for r in again if r["event"] == "epoch"] == [
        r["train_loss"] for r in overridden if r["event"] == "epoch"
    ]


def test_a_train_resume_may_change_how_it_runs(train_copy):
    """Settings of how the network runs (layout, autocast, torch.compile) are overrides a
    training resume accepts and records, as `--device` is."""
    assert main(["train", "--resume", str(train_copy), "--quiet", "--no-channels-last"]) == 0
    saved = json.loads((train_copy / "config.json").read_text())
    assert saved["config"]["channels_last"] is False
    assert saved["overrides"][0]["settings"] == {"channels_last": False}


@pytest.mark.parametrize(
    "flags, named",
    [(["--epochs", "6"], "epochs"), (["--batch-size", "8"], "batch_size"),
     (["--seed", "3"], "seed"), (["--subset", "32"], "subset"), (["-D", "C=8"], "-D C=8")],
)  # fmt: skip
def test_train_resume_flags_that_change_the_result_are_refused(train_copy, capsys, flags, named):
    assert main(["train", "--resume", str(train_copy), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and "cannot change on resume" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "edit, said",
    [
        (lambda s: s["config"].update(batch_size=8), "trained with batch_size = 32"),
        (lambda s: s["config"].update(epochs="2"), "`epochs` must be an int"),
        (lambda s: s.pop("config"), "has no `config`"),
        (lambda s: s["config"].update(colour=1), "unknown setting `colour`"),
    ],
)
def test_an_edited_train_config_json_is_refused_naming_the_setting(train_copy, capsys, edit, said):
    path = train_copy / "config.json"
    saved = json.loads(path.read_text())
    edit(saved)
    path.write_text(json.dumps(saved))
    assert main(["train", "--resume", str(train_copy), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert said in err and "config.json" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda s: s.pop("net"), "no valid `net`"),
        (lambda s: s["net"].update({_first_weight(s): torch.zeros(1)}), "(1,)"),
        (lambda s: s["net"][_first_weight(s)].fill_(math.inf), "non-finite values"),
    ],
)
def test_a_train_checkpoint_of_another_structure_falls_back(trained, tmp_path, capsys, damage,
                                                             said):  # fmt: skip
    """A training checkpoint that verifies but does not fit (or holds inf) is skipped, named; the
    run resumes from the one before."""
    run = tmp_path / trained.name
    shutil.copytree(trained, run)
    (run / "result.json").unlink()
    state = load_checkpoint(run / "checkpoints" / "ckpt-00002.pt")
    damage(state)
    save_checkpoint(run / "checkpoints", 2, state)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ckpt-00002.pt" in out and said in out and "resumed after epoch 1" in out
