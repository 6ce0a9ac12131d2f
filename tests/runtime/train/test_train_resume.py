"""`nasc train` resumes as a search does: overrides recorded, used and kept; flags and edits
that change the result refused; checkpoints of another structure fall back."""

from __future__ import annotations

import json
import math
import shutil
import signal

import pytest
import torch
from tiny_search import first_weight, lines, nasc, nasc_signalled

from nasc.compiler import catalog
from nasc.dsl import apply_genotype, load_space, parse_arch
from nasc.runtime.cli import main
from nasc.runtime.data.images import load_digits
from nasc.runtime.runs.checkpoint import (
    checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from nasc.runtime.tasks import bind_data
from nasc.runtime.train.run import make_train_config

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


# --- signals --------------------------------------------------------------------------------------


def test_a_terminated_training_run_checkpoints_its_epoch_and_resumes_to_the_same_result(tmp_path):
    """SIGTERM in the middle of epoch 2 of `nasc train` saves a checkpoint at that step and exits
    143; `--resume` ends with the metrics and weights of an uninterrupted run."""
    whole = nasc([*TRAIN, "--runs-dir", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr
    part = tmp_path / "part"
    stopped = nasc_signalled([*TRAIN, "--runs-dir", str(part)], "signal@2.1", signal.SIGTERM)
    assert stopped.returncode == 143, stopped.stderr
    [run] = part.iterdir()
    assert (
        "terminated (SIGTERM)" in stopped.stderr and f"nasc train --resume {run}" in stopped.stderr
    )
    assert (run / "checkpoints" / "ckpt-00001-s000001.pt").is_file()
    resumed = nasc(["train", "--resume", str(run), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    [whole_run] = (tmp_path / "whole").iterdir()

    def strip(records):
        timing = ("seconds", "images_per_s")
        return [{k: v for k, v in r.items() if k not in timing} for r in records]

    assert strip(lines(run)) == strip(lines(whole_run))
    a = load_checkpoint(whole_run / "checkpoints" / "ckpt-00002.pt")["net"]
    b = load_checkpoint(run / "checkpoints" / "ckpt-00002.pt")["net"]
    assert all(torch.equal(value, b[key]) for key, value in a.items() if torch.is_tensor(value))


def test_a_stop_asked_at_an_epochs_last_step_is_taken_after_its_checkpoint(tmp_path, monkeypatch):
    """A SIGTERM that arrives during an epoch's last step lets the epoch end and checkpoint,
    then stops, saying after which epoch and how to resume."""
    import os

    from nasc.runtime.runs.rundir import RunDir
    from nasc.runtime.runs.signals import Stopped
    from nasc.runtime.train import loop

    space = load_space("nb201", catalog=catalog())
    space = apply_genotype(space, parse_arch(space, TRAIN[3]))
    data = load_digits().subset(64)
    defines = bind_data(space, {"C": 4, "N": 1}, data)
    config = make_train_config("nb201", dict(epochs=2, batch_size=32, device="cpu"))
    run = RunDir.create(tmp_path, "train", "nb201")
    trainer = loop.Trainer(space, defines, config, data, torch.device("cpu"), run=run)

    def terminate_at_the_last_step(point, epoch, step=None):
        if (point, epoch, step) == ("kill", 1, len(trainer.train_batches)):
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(loop, "die_at", terminate_at_the_last_step)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as stopped:
        trainer.run_epochs()
    run.close()
    assert stopped.value.status == 143 and "after epoch 1" in stopped.value.message
    assert [p.name for p in checkpoints(run.checkpoints)] == ["ckpt-00001.pt"]
    assert signal.getsignal(signal.SIGTERM) == handler


# --- what eval and resume need --------------------------------------------------------------------


def test_resuming_a_training_folder_with_only_config_json_says_so(trained, tmp_path, capsys):
    """`nasc train --resume` on a folder holding only config.json says there is no checkpoint to
    resume and to start the training again without --resume."""
    folder = tmp_path / "only-config"
    folder.mkdir()
    shutil.copy(trained / "config.json", folder / "config.json")
    assert main(["train", "--resume", str(folder), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint to resume" in err and "without --resume (nasc train nb201" in err


@pytest.mark.parametrize("finished", [True, False])
def test_eval_of_a_search_run_says_to_train_it_first(tmp_path, capsys, finished):
    """`nasc eval` of a search run directory (finished or not) says it is a search run and to
    train the architecture it found first."""
    run = tmp_path / "nb201-isdarts-20260101-000000"
    (run / "checkpoints").mkdir(parents=True)
    (run / "space.nas").write_text("# the searched space\n")
    (run / "config.json").write_text(json.dumps({"space": "nb201", "defines": {}}))
    if finished:
        (run / "arch.nas").write_text("# the found architecture\n")
    assert main(["eval", str(run), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "is a search run" in err and f"nasc train {run / 'arch.nas'}" in err


def test_eval_of_a_training_run_without_best_pt_says_to_resume_it(trained, tmp_path, capsys):
    """A training run stopped before its first epoch ended has no best.pt: eval says so and to
    resume it."""
    copy = tmp_path / trained.name
    shutil.copytree(trained, copy)
    (copy / "best.pt").unlink()
    assert main(["eval", str(copy), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "no best.pt yet" in err and f"nasc train --resume {copy}" in err
