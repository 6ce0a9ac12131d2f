"""Tests of `nasc train` and `nasc eval`: each preset's code path, path dropout, the auxiliary
head, cutout, and resume."""

from __future__ import annotations

import json

import attrs
import pytest
import torch

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.compiler.kernels import drop_path
from nasc.dsl import apply_genotype, load_space, parse_arch
from nasc.runtime.cli import main
from nasc.runtime.data.images import cutout, load_digits
from nasc.runtime.runs.rundir import RunDir
from nasc.runtime.tasks import bind_data
from nasc.runtime.train.loop import Trainer
from nasc.runtime.train.run import make_train_config, transplant

NB201_CELL = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)


def upsampled_digits(factor: int, count: int):
    """Digits scaled up by an integer factor (8x8 -> 8*factor), for networks that need size."""
    data = load_digits().subset(count, seed=1)

    def grow(images):
        return images.repeat_interleave(factor, 2).repeat_interleave(factor, 3)

    return attrs.evolve(
        data, train_images=grow(data.train_images), test_images=grow(data.test_images), pad=2
    )


def _train(space, defines, preset, data, epochs, run=None, **overrides):
    values = dict(epochs=epochs, device="cpu", seed=0)
    values.update(overrides)
    config = make_train_config(preset, values)
    bound = bind_data(space, defines, data)
    trainer = Trainer(space, bound, config, data, torch.device("cpu"), run=run, fingerprint="t")
    losses = []
    while trainer.epoch < epochs:
        losses.append(trainer.train_epoch()["train_loss"])
        trainer.epoch += 1
    return trainer, losses


def test_nb201_preset_trains_and_the_loss_falls():
    """The NB201 protocol (Nesterov SGD, cosine) lowers the training loss on digits."""
    space = load_space("nb201", catalog=catalog())
    space = apply_genotype(space, parse_arch(space, NB201_CELL))
    data = load_digits().subset(256, seed=0)
    _, losses = _train(space, {"C": 8, "N": 1}, "nb201", data, 4, batch_size=32, lr=0.05)
    assert losses[-1] < 0.8 * losses[0]


def test_darts_cifar_preset_uses_aux_cutout_and_path_dropout():
    """The DARTS CIFAR protocol trains DARTS_V2 with its auxiliary head, cutout and path
    dropout, and the loss falls."""
    space = load_space("darts", catalog=catalog())
    space = apply_genotype(space, parse_arch(space, "DARTS_V2"))
    data = upsampled_digits(4, 192)
    trainer, losses = _train(
        space, {"C": 4, "layers": 3}, "darts-cifar", data, 4, batch_size=32, cutout=8
    )
    assert trainer.net.options.auxiliary and trainer.net.options.drop_path
    assert trainer.train_batches.cutout == 8
    assert [cell.drop_prob for cell in trainer.net.cells()] == [0.2 * 3 / 4] * 3
    assert losses[-1] < losses[0]


def test_darts_imagenet_preset_moves_the_cells_into_the_imagenet_network():
    """The ImageNet preset trains the found cells inside the DARTS ImageNet macro (two stems,
    224x224 input, label smoothing, warm-up)."""
    space = load_space("darts", catalog=catalog())
    fixed = apply_genotype(space, parse_arch(space, "DARTS_V2"))
    moved = transplant(fixed, load_space("darts_imagenet", catalog=catalog()))
    assert moved.is_fixed and [s.kind for s in moved.network.items[:3]] == ["input", "stem", "stem"]
    data = upsampled_digits(28, 16)
    trainer, losses = _train(
        moved, {"C": 8, "layers": 3}, "darts-imagenet", data, 2, batch_size=8, warmup_epochs=1
    )
    assert trainer.criterion.label_smoothing == 0.1
    assert all(torch.isfinite(torch.tensor(losses)))


def test_drop_path_follows_its_definition():
    """Drop path zeroes whole samples with probability p and scales the rest by 1/(1-p); it is
    the identity in eval mode or at p = 0."""
    torch.manual_seed(0)
    x = torch.ones(4000, 2, 3, 3)
    y = drop_path(x, 0.3, True)
    kept = (y.flatten(1) != 0).all(1)
    dropped = (y.flatten(1) == 0).all(1)
    assert bool((kept | dropped).all())
    assert abs(float(dropped.float().mean()) - 0.3) < 0.03
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert torch.equal(drop_path(x, 0.3, False), x) and torch.equal(drop_path(x, 0.0, True), x)


def test_path_dropout_skips_identity_ops_in_the_generated_code():
    """With drop path compiled in, every op but the identity `skip_connect` is wrapped (in the
    code without the passes, which has one call per op)."""
    space = load_space("darts", catalog=catalog())
    fixed = apply_genotype(space, parse_arch(space, "DARTS_V2"))
    options = CompileOptions(search=False, drop_path=True, passes=())
    net = compile_space(fixed, {"C": 4, "layers": 3}, options)
    normal = net.code.split("def cell_normal")[1].split("def ")[0]
    assert "_drop_path(e['c_k2->n0']['sep_conv_3x3'](c_k2)" in normal
    assert "e['c_k2->n2']['skip_connect'](c_k2)" in normal
    assert "_drop_path(e['c_k2->n2']['skip_connect']" not in normal


def test_the_auxiliary_head_speaks_only_in_training():
    """Built with `auxiliary`, the network returns aux logits in training and None in eval; its
    size follows DARTS' definition (1x1 conv to 128, 2x2 conv to 768, linear)."""
    space = load_space("darts", catalog=catalog())
    fixed = apply_genotype(space, parse_arch(space, "DARTS_V2"))
    net = compile_space(fixed, {"C": 4, "layers": 3}, CompileOptions(search=False, auxiliary=True))
    x = torch.randn(2, 3, 32, 32)
    logits, aux = net(x)
    assert logits.shape == aux.shape == (2, 10)
    net.eval()
    assert net(x)[1] is None
    aux_stage = next(s for s in net.plan.stages if s.kind == "aux")
    c = aux_stage.in_channels[0]
    expected = c * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * 10 + 10
    assert sum(p.numel() for p in net.stages[aux_stage.index].parameters()) == expected


def test_an_auxiliary_head_at_the_wrong_size_is_refused():
    """On 8x8 digits the CIFAR aux head would read 2x2 features: a clear error, not a crash."""
    from nasc.dsl import NascUsageError

    space = load_space("darts", catalog=catalog())
    fixed = apply_genotype(space, parse_arch(space, "DARTS_V2"))
    with pytest.raises(NascUsageError, match="auxiliary head `darts_aux_cifar` reads 2x2"):
        compile_space(
            fixed, {"C": 4, "layers": 3, "size": 8}, CompileOptions(search=False, auxiliary=True)
        )


def test_cutout_zeroes_a_clipped_square():
    """Cutout zeroes a length x length square around the centre, clipped at the borders."""
    images = torch.ones(2, 1, 8, 8)
    out = cutout(images, 4, torch.tensor([[4, 4], [0, 7]]))
    assert int((out[0] == 0).sum()) == 16 and bool((out[0, 0, 2:6, 2:6] == 0).all())
    assert int((out[1] == 0).sum()) == 2 * 3  # rows 0..1, columns 5..7


def test_nasc_train_and_eval_from_the_command_line(tmp_path, capsys):
    """`nasc train` writes a run with model.pt and result.json; `nasc eval` reproduces its test
    accuracy from the run, from best.pt and from the TorchScript file; resume finishes."""
    runs = tmp_path / "runs"
    code = main(
        [
            "train",
            "nb201",
            "--arch",
            NB201_CELL,
            "--data",
            "digits",
            "--subset",
            "128",
            "-D",
            "C=4",
            "-D",
            "N=1",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--runs-dir",
            str(runs),
            "--quiet",
        ]
    )
    assert code == 0
    [run] = runs.iterdir()
    for name in ("arch.nas", "config.json", "metrics.jsonl", "best.pt", "model.pt", "result.json"):
        assert (run / name).is_file(), name
    assert main(["check", str(run / "arch.nas")]) == 0
    capsys.readouterr()
    accuracies = []
    for target in (run, run / "best.pt", run / "model.pt"):
        assert main(["eval", str(target), "--data", "digits", "--device", "cpu"]) == 0
        accuracies.append(capsys.readouterr().out.split("test accuracy ")[1].split("%")[0])
    assert len(set(accuracies)) == 1
    result = json.loads((run / "result.json").read_text())
    assert result["train_seconds"] > 0 and result["environment"]["torch"] == torch.__version__
    assert json.loads((run / "config.json").read_text())["environment"]["device"] == "cpu"
    # `nasc report` draws a training run too: its architecture, its curves and its results.
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert f"{result['final_test_acc']:.2f}%" in page and "nasc train" in page
    for figure in ("arch.png", "curves.png"):
        assert (run / "figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert "its results stand" in capsys.readouterr().out
    assert json.loads((run / "result.json").read_text()) == result  # train_seconds included
    assert not (run / ".lock").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nb201"], "still has choices"),
        (["nb201", "--arch", NB201_CELL, "--subset", "0"], "--subset 0: must be at least 1"),
        (["nb201", "--arch", NB201_CELL, "--epochs", "0"], "--epochs 0: must be at least 1"),
        (["nb201", "--arch", NB201_CELL, "--cutout", "8"], "--cutout 8 covers the whole"),
        (["darts", "--arch", "DARTS_V2", "-D", "layers=3"], "auxiliary head"),
        (["nb201", "--arch", NB201_CELL, "-D", "C=100000"], "the network needs about"),
    ],
)
def test_nasc_train_refuses_before_making_a_run_directory(argv, message, tmp_path, capsys):
    """A train command that cannot start exits 2 with its reason and leaves no run directory."""
    runs = tmp_path / "runs"
    code = main(["train", *argv, "--data", "digits", "--runs-dir", str(runs), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.slow
def test_nasc_train_checks_its_memory_estimate(tmp_path, monkeypatch, capsys):
    """With no free memory, `nasc train` is refused from the IR's sizes; `--no-memory-check`
    trains anyway."""
    from nasc.runtime.hardware import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 1)
    argv = ["train", "nb201", "--arch", NB201_CELL, "-D", "C=4", "-D", "N=1", "--data", "digits"]
    argv += ["--subset", "64", "--epochs", "1", "--runs-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 2
    assert "the network needs about" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    assert main([*argv, "--no-memory-check"]) == 0
    [run] = tmp_path.iterdir()
    assert (run / "result.json").is_file()


def test_a_preset_cutout_is_scaled_to_small_images():
    """darts-cifar's cutout of 16 (for 32 x 32 images) becomes 4 on the 8 x 8 digits, with a
    warning; on 32 x 32 images it stays, and a given --cutout is kept."""
    from nasc.runtime.train.run import fit_augmentation

    config = make_train_config("darts-cifar", {})
    digits = load_digits()
    said = []
    assert fit_augmentation(config, digits, {}, said.append).cutout == 4
    assert "scaled to 4" in said[0]
    big = upsampled_digits(4, 16)
    assert fit_augmentation(config, big, {}, said.append).cutout == 16 and len(said) == 1
    small = make_train_config("darts-cifar", {"cutout": 3})
    assert fit_augmentation(small, digits, {"cutout": 3}, said.append).cutout == 3


def test_training_time_accumulates_over_a_resume(tmp_path, monkeypatch):
    """A training run killed in its second epoch and resumed counts the first epoch's time (from
    its checkpoint) plus the rest, in `seconds` and so in result.json's `train_seconds`."""
    from nasc.runtime.train import loop as train_module

    space = load_space("nb201", catalog=catalog())
    space = apply_genotype(space, parse_arch(space, NB201_CELL))
    data = load_digits().subset(64, seed=0)
    run = RunDir.create(tmp_path, "train", "nb201")
    run.write_json("config.json", {})
    config = make_train_config("nb201", dict(epochs=2, batch_size=32, device="cpu"))
    bound = bind_data(space, {"C": 4, "N": 1}, data)

    class Killed(Exception):
        pass

    def die_at(point, epoch, step=None):
        if (point, epoch) == ("kill", 2):
            raise Killed

    first = Trainer(space, bound, config, data, torch.device("cpu"), run=run, fingerprint="t")
    monkeypatch.setattr(train_module, "die_at", die_at)
    with pytest.raises(Killed):
        first.run_epochs()
    monkeypatch.undo()
    spent = first.seconds
    assert first.epoch == 1 and spent > 0
    second = Trainer(space, bound, config, data, torch.device("cpu"), run=run, fingerprint="t")
    assert second.restore() and second.seconds == spent
    second.run_epochs()
    assert second.epoch == 2 and second.seconds > spent
    run.close()


def test_train_resumes_where_it_stopped(tmp_path):
    """A training run stopped after one epoch resumes at epoch 1 with the same weights."""
    space = load_space("nb201", catalog=catalog())
    space = apply_genotype(space, parse_arch(space, NB201_CELL))
    data = load_digits().subset(64, seed=0)
    run = RunDir.create(tmp_path, "train", "nb201")
    run.write_json("config.json", {})
    config = make_train_config("nb201", dict(epochs=3, batch_size=32, device="cpu"))
    bound = bind_data(space, {"C": 4, "N": 1}, data)
    first = Trainer(space, bound, config, data, torch.device("cpu"), run=run, fingerprint="t")
    first.train_epoch()
    first.epoch = 1
    first.save(best=False)
    second = Trainer(space, bound, config, data, torch.device("cpu"), run=run, fingerprint="t")
    assert second.restore()
    assert second.epoch == 1
    for key, value in first.net.state_dict().items():
        if torch.is_tensor(value):
            assert torch.equal(value, second.net.state_dict()[key]), key
    run.close()


def test_a_training_run_killed_inside_an_epoch_resumes_there_to_the_same_result(
    tmp_path, monkeypatch
):
    """With checkpoints inside epochs (cutout, path dropout and augmentation drawing random
    numbers), a run killed in the middle of its second epoch resumes at that step and ends with
    the weights and metrics of an uninterrupted run."""
    from nasc.runtime.runs.checkpoint import checkpoints
    from nasc.runtime.train import loop as train_module

    space = load_space("darts", catalog=catalog())
    space = apply_genotype(space, parse_arch(space, "DARTS_V2"))
    data = upsampled_digits(2, 96)
    defines = {"C": 4, "layers": 2}
    settings = dict(epochs=2, batch_size=16, device="cpu", cutout=4, drop_path=0.2)
    settings.update(auxiliary_weight=0.0)
    config = make_train_config("darts-cifar", settings)
    bound = bind_data(space, defines, data)

    def trainer(path):
        return Trainer(space, bound, config, data, torch.device("cpu"), run=path, fingerprint="t")

    whole_run = RunDir.create(tmp_path / "a", "train", "darts")
    whole = trainer(whole_run)
    whole.run_epochs()
    whole_run.close()

    class Killed(Exception):
        pass

    def die_at(point, epoch, step=None):
        if (point, epoch, step) == ("kill", 2, 2):
            raise Killed

    part_run = RunDir.create(tmp_path / "b", "train", "darts")
    part_run.write_json("config.json", {})
    first = trainer(part_run)
    first.checkpoint_seconds = 0.0  # a checkpoint after every step
    monkeypatch.setattr(train_module, "die_at", die_at)
    with pytest.raises(Killed):
        first.run_epochs()
    monkeypatch.undo()
    part_run.close()
    assert checkpoints(part_run.checkpoints)[-1].name == "ckpt-00001-s000002.pt"

    resumed_run = RunDir.open(part_run.path)
    second = trainer(resumed_run)
    assert second.restore() and second.epoch == 1 and second.partial["step"] == 2
    second.run_epochs()
    resumed_run.close()

    def strip(lines):
        return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in lines]

    assert strip(whole_run.metrics_lines()) == strip(resumed_run.metrics_lines())
    for key, value in whole.net.state_dict().items():
        if torch.is_tensor(value):
            assert torch.equal(value, second.net.state_dict()[key]), key


def test_a_checkpoint_inside_an_epoch_that_does_not_say_where_falls_back():
    """A checkpoint whose record of its place in the epoch is malformed is refused as corrupt
    (and the resume tries the one before), not run from a wrong step."""
    from nasc.runtime.runs.checkpoint import CorruptCheckpoint
    from nasc.runtime.runs.resume import check_partial

    check_partial("ckpt", {"partial": None}, 10)
    good = {"step": 3, "seen": 48, "seconds": 1.5, "total_loss": 2.0, "correct": 7}
    check_partial("ckpt", {"partial": good}, 10)
    for bad in ({**good, "step": "3"}, {**good, "step": 10}, {**good, "step": 0}, [1, 2]):
        with pytest.raises(CorruptCheckpoint, match="ckpt"):
            check_partial("ckpt", {"partial": bad}, 10)
