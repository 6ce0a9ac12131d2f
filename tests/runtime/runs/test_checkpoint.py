"""Tests of checkpoints, run directories and the NAS-Bench-201 table."""

from __future__ import annotations

import os

import pytest
import torch

from nasc.dsl import NascUsageError
from nasc.runtime.reports.nb201 import NB201Table, parse_columns
from nasc.runtime.runs.checkpoint import (
    CorruptCheckpoint,
    checkpoints,
    load_checkpoint,
    load_latest,
    save_checkpoint,
    write_atomic,
)
from nasc.runtime.runs.rundir import RunDir

REFERENCE = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)


def test_checkpoints_round_trip_and_keep_the_last_two(tmp_path):
    """Saved states load back equal; only the two newest files remain."""
    for epoch in range(1, 5):
        save_checkpoint(tmp_path, epoch, {"epoch": epoch, "w": torch.full((3,), float(epoch))})
    files = checkpoints(tmp_path)
    assert [f.name for f in files] == ["ckpt-00003.pt", "ckpt-00004.pt"]
    state = load_checkpoint(files[-1])
    assert state["epoch"] == 4 and torch.equal(state["w"], torch.full((3,), 4.0))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_damaged_checkpoint_is_detected_and_the_previous_used(tmp_path, damage):
    """A torn or corrupt newest checkpoint is reported with its path; the one before loads."""
    save_checkpoint(tmp_path, 1, {"epoch": 1})
    newest = save_checkpoint(tmp_path, 2, {"epoch": 2})
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        newest.write_bytes(data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:])
    else:
        newest.write_bytes(os.urandom(len(data)))
    with pytest.raises(CorruptCheckpoint, match="ckpt-00002.pt"):
        load_checkpoint(newest)
    warnings = []
    path, state = load_latest(tmp_path, warn=warnings.append)
    assert state["epoch"] == 1 and path.name == "ckpt-00001.pt"
    assert "ckpt-00002.pt" in warnings[0]


def test_a_read_only_folder_keeps_the_old_file(tmp_path, monkeypatch):
    """When the folder refuses new files, the error names the path and the old file stays."""
    import builtins

    target = tmp_path / "file"
    write_atomic(target, b"old")
    real_open = builtins.open

    def read_only(path, mode="r", *args, **kwargs):
        if "w" in mode:
            raise PermissionError(13, "Permission denied")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only)
    with pytest.raises(NascUsageError, match=r"cannot write .*file: Permission denied"):
        write_atomic(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    """When the disk fills mid-write, the error names the path and the old file stays whole."""
    target = tmp_path / "file"
    write_atomic(target, b"old")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(NascUsageError, match="No space left on device"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_a_second_process_cannot_open_a_locked_run(tmp_path):
    """While one RunDir holds the folder, opening it again is refused."""
    run = RunDir.create(tmp_path, "nb201", "isdarts")
    run.write_json("config.json", {})
    with pytest.raises(NascUsageError, match="in use by nasc process"):
        RunDir.open(run.path)
    run.close()
    RunDir.open(run.path).close()


def test_metrics_are_truncated_to_what_a_checkpoint_saw(tmp_path):
    """Resuming drops metric lines written after the checkpoint, and a torn last line."""
    run = RunDir.create(tmp_path, "s", "isdarts")
    for epoch in range(1, 4):
        run.log_metrics({"event": "epoch", "epoch": epoch})
    with open(run.path / "metrics.jsonl", "a") as handle:
        handle.write('{"event": "ep')
    assert len(run.metrics_lines()) == 3
    run.truncate_metrics(2)
    assert [line["epoch"] for line in run.metrics_lines()] == [1, 2]
    run.close()


def _table(tmp_path, header, rows):
    path = tmp_path / "t.csv"
    path.write_text(",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_nb201_table_lookup_and_rank(tmp_path):
    """Accuracies come back for a known cell with its rank; unknown cells give None."""
    header = [
        "CIFAR10TestAccuracy200Epochs",
        "CIFAR100TestAccuracy200Epochs",
        "ImageNetTestAccuracy200Epochs",
        "ArchitectureString",
    ]
    other = REFERENCE.replace("skip_connect~0", "none~0")
    path = _table(
        tmp_path, header, [["94.36", "73.51", "46.34", REFERENCE], ["90.0", "75.0", "40.0", other]]
    )
    table = NB201Table.load(path)
    assert table.lookup(REFERENCE) == {"cifar10": 94.36, "cifar100": 73.51, "ImageNet16-120": 46.34}
    assert table.rank(REFERENCE, "cifar10") == 1 and table.rank(REFERENCE, "cifar100") == 2
    assert table.lookup("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|") is None


def test_nb201_table_errors_are_clear(tmp_path):
    """Missing columns name the columns there are; non-numbers name the line."""
    path = _table(tmp_path, ["arch", "acc"], [[REFERENCE, "94"]])
    with pytest.raises(NascUsageError, match="has no column"):
        NB201Table.load(path)
    table = NB201Table.load(path, {"arch": "arch", "cifar10": "acc"})
    assert table.lookup(REFERENCE) == {"cifar10": 94.0}
    bad = _table(tmp_path, ["arch", "acc"], [[REFERENCE, "high"]])
    with pytest.raises(NascUsageError, match=r"t.csv:2"):
        NB201Table.load(bad, {"arch": "arch", "cifar10": "acc"})
    with pytest.raises(NascUsageError, match="not KEY=COLUMN"):
        parse_columns("arch")
    with pytest.raises(NascUsageError, match="No such file"):
        NB201Table.load(tmp_path / "missing.csv")


def test_checkpoints_inside_an_epoch_sort_between_its_ends(tmp_path):
    """`ckpt-1-s2` (two steps into epoch 2) is newer than `ckpt-1` and older than `ckpt-2`, and
    only the last two files of either kind are kept."""
    from nasc.runtime.runs.checkpoint import checkpoints, save_checkpoint

    save_checkpoint(tmp_path, 1, {"at": 1})
    save_checkpoint(tmp_path, 1, {"at": 1.2}, step=2)
    assert [p.name for p in checkpoints(tmp_path)] == ["ckpt-00001.pt", "ckpt-00001-s000002.pt"]
    save_checkpoint(tmp_path, 1, {"at": 1.10}, step=10)
    assert [p.name for p in checkpoints(tmp_path)] == [
        "ckpt-00001-s000002.pt",
        "ckpt-00001-s000010.pt",
    ]
    save_checkpoint(tmp_path, 2, {"at": 2})
    assert checkpoints(tmp_path)[-1].name == "ckpt-00002.pt"
    assert load_latest(tmp_path)[1] == {"at": 2}
