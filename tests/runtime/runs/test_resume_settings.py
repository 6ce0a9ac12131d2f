"""Resumes keep their settings: overrides are recorded and kept, flags and edits that would
change the result are refused by name, and checkpoints of another structure fall back."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
import torch
from tiny_search import first_weight, lines, nasc

from nasc.dsl import NascUsageError, read_source
from nasc.runtime.cli import main
from nasc.runtime.runs.checkpoint import (
    CorruptCheckpoint,
    load_checkpoint,
    load_latest,
    save_checkpoint,
)
from nasc.runtime.runs.records import cosine_lr

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


def test_a_run_records_its_thread_count_and_determinism(killed):
    """config.json records torch's thread count and deterministic-algorithm setting."""
    recorded = json.loads((killed / "config.json").read_text())["environment"]
    assert isinstance(recorded["threads"], int) and recorded["threads"] >= 1
    assert isinstance(recorded["deterministic"], bool)


def test_a_resume_with_other_threads_or_determinism_warns(run_copy, capsys):
    """A resume under another thread count or deterministic-algorithm setting than the run
    recorded says what changed, that the results will differ in the last digits, and how to set
    it back; one under the same settings says nothing of it."""
    path = run_copy / "config.json"
    saved = json.loads(path.read_text())
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    saved["environment"].update(threads=threads + 1, deterministic=not deterministic)
    path.write_text(json.dumps(saved))
    shutil.copytree(run_copy, run_copy.with_name("same"))
    assert main(["search", "--resume", str(run_copy), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"computed with {threads + 1} threads and this resume has {threads}" in out
    assert f"OMP_NUM_THREADS={threads + 1}" in out and "last digits" in out
    assert f"torch.use_deterministic_algorithms({not deterministic})" in out
    same = run_copy.with_name("same")
    saved["environment"].update(threads=threads, deterministic=deterministic)
    (same / "config.json").write_text(json.dumps(saved))
    assert main(["search", "--resume", str(same), "--quiet"]) == 0
    assert "last digits" not in capsys.readouterr().out


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


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda s: s.pop("net"), "no valid `net`"),
        (lambda s: s.update(epoch="2"), "no valid `epoch`"),
        (lambda s: s["net"].update({first_weight(s): torch.zeros(1)}), "(1,)"),
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
