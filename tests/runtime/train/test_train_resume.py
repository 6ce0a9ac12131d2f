"""`nasc train` resumes as a search does: overrides recorded, used and kept; flags and edits
that change the result refused; checkpoints of another structure fall back."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from tiny_search import first_weight, lines

from nasc.runtime.cli import main
from nasc.runtime.runs.checkpoint import (
    load_checkpoint,
    save_checkpoint,
)

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
        (lambda s: s["net"].update({first_weight(s): torch.zeros(1)}), "(1,)"),
        (lambda s: s["net"][first_weight(s)].fill_(math.inf), "non-finite values"),
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
