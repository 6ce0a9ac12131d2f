"""Every file nasc writes goes through the atomic writer: an export, model.pt or a text file
that fails or is killed halfway leaves the previous file whole and no partial file."""

from __future__ import annotations

import signal

import pytest
import torch
from tiny_search import nasc

from nasc.dsl import NascUsageError
from nasc.runtime import exporting
from nasc.runtime.runs import checkpoint
from nasc.runtime.runs.checkpoint import atomic_path

CELL = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
SMALL = {"C": 4, "N": 1}
EXPORT = ["export", "nb201", "--arch", CELL, "-D", "C=4", "-D", "N=1", "--format", "torchscript"]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_a_torchscript_export_that_fails_midway_keeps_the_previous_model(tmp_path, monkeypatch):
    """A re-export whose serialisation writes part of the file and then fails leaves the
    previous model.pt as it was (still loadable) and no partial file beside it."""
    target = tmp_path / "model.pt"
    exporting.export("nb201", CELL, "torchscript", str(target), SMALL)
    good = target.read_bytes()

    def torn(network, path):
        with open(path, "wb") as handle:
            handle.write(good[: len(good) // 3])
        raise RuntimeError("killed while serialising")

    monkeypatch.setattr(exporting, "export_torchscript", torn)
    with pytest.raises(RuntimeError, match="killed while serialising"):
        exporting.export("nb201", CELL, "torchscript", str(target), SMALL)
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    torch.jit.load(str(target))


def test_a_text_export_that_fails_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    """`nasc export --format nas -o FILE` over a good file, on a disk that fills halfway, names
    the file and leaves it whole."""
    target = tmp_path / "found.nas"
    exporting.export("nb201", CELL, "nas", str(target), SMALL)
    good = target.read_bytes()

    def full(name):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "die_writing", full)
    with pytest.raises(NascUsageError, match="No space left on device") as refused:
        exporting.export("nb201", CELL, "genotype", str(target), SMALL)
    assert "export again" in refused.value.hint
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["found.nas"]


def test_a_killed_re_export_keeps_the_previous_model(tmp_path):
    """`nasc export --format torchscript -o model.pt`, killed (SIGKILL) while writing over a good
    model.pt, leaves that model.pt whole: only a hidden temporary is new."""
    target = tmp_path / "model.pt"
    first = nasc([*EXPORT, "-o", str(target)])
    assert first.returncode == 0, first.stderr
    good = target.read_bytes()
    killed = nasc([*EXPORT, "-o", str(target)], env={"NASC_FAULT": "write@model.pt"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert target.read_bytes() == good
    assert all(p.name.startswith(".model.pt.tmp-") for p in tmp_path.iterdir() if p != target)


def test_atomic_path_renames_only_a_finished_file(tmp_path):
    """The block writes to a temporary beside the target; the target appears when it ends, and
    an error inside it removes the temporary."""
    target = tmp_path / "out.bin"
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary != target
        temporary.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"
    with pytest.raises(ValueError):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise ValueError
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_a_training_run_killed_while_writing_model_pt_resumes_to_a_whole_one(tmp_path):
    """`nasc train` killed while writing model.pt leaves no torn model.pt; `--resume` writes it
    whole and removes the temporary."""
    train = ["train", "nb201", "--arch", CELL, "--data", "digits", "--subset", "64", "-D", "C=4",
             "-D", "N=1", "--epochs", "1", "--batch-size", "32", "--quiet"]  # fmt: skip
    killed = nasc([*train, "--runs-dir", str(tmp_path)], env={"NASC_FAULT": "write@model.pt"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [run] = tmp_path.iterdir()
    assert not (run / "model.pt").exists() and list(run.glob(".model.pt.tmp-*"))
    resumed = nasc(["train", "--resume", str(run), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    torch.jit.load(str(run / "model.pt"))
    assert not list(run.glob(".*.tmp-*")) and (run / "result.json").is_file()
