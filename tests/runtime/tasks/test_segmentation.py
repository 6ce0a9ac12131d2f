"""The segmentation task: its loss ignores 255, its mIoU and pixel accuracy match a confusion
matrix counted pixel by pixel, it refuses outputs that are not per pixel, and a hand-written
per-pixel network trains through the training loop (resuming inside an epoch to the same
result) and gets a report with its predictions."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.nn import functional

from nasc.compiler import catalog
from nasc.dsl import NascUsageError, apply_genotype, load_space, parse_arch
from nasc.runtime.cli import main
from nasc.runtime.tasks import get_task
from nasc.runtime.tasks.segmentation import confusion_matrix, segmentation_scores

SKIPS = (
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|"
    "+|skip_connect~0|skip_connect~1|skip_connect~2|"
)


class TinyPerPixel(nn.Module):
    """Two padded convolutions and a 1x1 classifier: logits (N, classes, H, W) at the input's
    size, as a per-pixel head ends."""

    def __init__(self, channels: int = 3, classes: int = 5, width: int = 12):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2),
            nn.ReLU(),
            nn.Conv2d(width, classes, 1),
        )

    def forward(self, images):
        return self.body(images)

    def set_drop_prob(self, probability: float) -> None:
        """The training loop sets path dropout on compiled networks; this one has none."""


def counted_confusion(predicted, targets, classes):
    """The confusion matrix counted pixel by pixel in Python (rows: truth)."""
    counts = [[0] * classes for _ in range(classes)]
    for truth, guess in zip(targets.flatten().tolist(), predicted.flatten().tolist()):
        if truth != 255:
            counts[truth][guess] += 1
    return counts


def counted_miou(counts):
    """Mean over classes with a non-empty union of TP / (TP + FP + FN), in percent."""
    scores = []
    for c, row in enumerate(counts):
        tp = row[c]
        fn = sum(row) - tp
        fp = sum(r[c] for r in counts) - tp
        if tp + fp + fn:
            scores.append(tp / (tp + fp + fn))
    return 100.0 * sum(scores) / len(scores)


def test_the_metrics_match_a_confusion_matrix_counted_pixel_by_pixel():
    """mIoU and pixel accuracy of random logits and labels (with 255s, and one class absent
    from both truth and prediction) equal those of a matrix counted in Python."""
    task = get_task("segmentation")
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 5, 6, 7, generator=generator)
    logits[:, 4] = -1e9  # class 4 is never predicted...
    targets = torch.randint(0, 4, (3, 6, 7), generator=generator)  # ...nor true
    targets[:, 0, :3] = 255
    sums = task.batch_sums(logits, targets)
    counts = counted_confusion(logits.argmax(1), targets, 5)
    assert sums["confusion"].tolist() == counts
    scores = task.metrics({"confusion": sums["confusion"]}, 3)
    assert scores["miou"] == pytest.approx(counted_miou(counts))
    diagonal = sum(counts[c][c] for c in range(5))
    assert scores["pixel_acc"] == pytest.approx(100.0 * diagonal / (3 * 6 * 7 - 9))
    # Class 4 has an empty union: the mean is over the other four, not five with a 0.
    assert sum(counts[4]) == 0 and sum(row[4] for row in counts) == 0
    four = [
        counts[c][c] / (sum(counts[c]) + sum(r[c] for r in counts) - counts[c][c]) for c in range(4)
    ]
    assert scores["miou"] == pytest.approx(100.0 * sum(four) / 4)


def test_a_perfect_prediction_scores_100_and_an_empty_matrix_0():
    """Predicting the labels exactly gives mIoU 100 whatever the ignored pixels say."""
    targets = torch.tensor([[[0, 1], [2, 255]]])
    logits = functional.one_hot(targets.clamp(max=2), 3).permute(0, 3, 1, 2).float()
    confusion = confusion_matrix(logits.argmax(1), targets, 3)
    assert segmentation_scores(confusion) == {"miou": 100.0, "pixel_acc": 100.0}
    assert segmentation_scores(torch.zeros(3, 3, dtype=torch.int64))["miou"] == 0.0


def test_the_loss_ignores_255_and_passes_label_smoothing_through():
    """The loss equals cross-entropy over the labelled pixels only; smoothing changes it; a
    batch with no labelled pixel gives 0, not NaN."""
    task = get_task("segmentation")
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    targets = torch.randint(0, 3, (2, 4, 4), generator=torch.Generator().manual_seed(1))
    targets[0, :2] = 255
    keep = targets != 255
    flat = logits.permute(0, 2, 3, 1)[keep]
    assert float(task.loss(logits, targets)) == pytest.approx(
        float(functional.cross_entropy(flat, targets[keep]))
    )
    assert float(task.loss(logits, targets, 0.1)) == pytest.approx(
        float(functional.cross_entropy(flat, targets[keep], label_smoothing=0.1))
    )
    assert float(task.loss(logits, torch.full_like(targets, 255))) == 0.0


def test_an_output_that_is_not_per_pixel_is_refused_with_a_hint():
    """Class scores per image, or a map at another size, are refused naming the shapes and the
    per-pixel head; a map of too few classes for a label is refused too."""
    task = get_task("segmentation")
    targets = torch.zeros(2, 8, 8, dtype=torch.int64)
    for output in (torch.zeros(2, 5), torch.zeros(2, 5, 4, 4), torch.zeros(3, 5, 8, 8)):
        with pytest.raises(NascUsageError, match="segmentation needs") as error:
            task.check_output(output, targets)
        assert "seg_head(classes)" in error.value.hint
    task.check_output(torch.zeros(2, 5, 8, 8), targets)
    targets[0, 0, 0] = 7
    with pytest.raises(NascUsageError, match="5 classes but the data has the label 7"):
        task.check_output(torch.zeros(2, 5, 8, 8), targets)


def test_facts_chance_loss_and_predict():
    """The shapes data fixes 3 channels, 32 pixels and 5 classes; chance is ln 5; a
    prediction is the argmax over classes per pixel."""
    task = get_task("segmentation")
    data = task.load("shapes")
    assert task.facts(data) == {"channels": 3, "size": 32, "classes": 5}
    assert task.chance_loss(data) == pytest.approx(math.log(5))
    logits = torch.zeros(1, 5, 2, 2)
    logits[0, 3, 1, 0] = 1.0
    assert task.predict(logits).tolist() == [[[0, 0], [3, 0]]]
    assert task.metric == "miou" and task.metric_label == "mIoU"


def _trainer(data, run=None, epochs=2):
    """A Trainer of the segmentation task whose network is `TinyPerPixel` (the loop compiles
    a fixed space; a per-pixel head in `.nas` is the compiler's part)."""
    from nasc.runtime.train.loop import Trainer
    from nasc.runtime.train.run import make_train_config

    task = get_task("segmentation")
    space = load_space("nb201", catalog=catalog())
    space = apply_genotype(space, parse_arch(space, SKIPS))
    defines = task.bind(space, {"C": 4, "N": 1}, data)
    config = make_train_config("nb201", dict(epochs=epochs, batch_size=16, device="cpu", seed=0))
    trainer = Trainer(space, defines, config, data, torch.device("cpu"), run=run, task=task)
    torch.manual_seed(0)
    trainer.net = trainer.model = TinyPerPixel()
    trainer.optimizer = torch.optim.SGD(
        trainer.net.parameters(), lr=config.lr, momentum=config.momentum,
        nesterov=config.nesterov, weight_decay=config.weight_decay,
    )  # fmt: skip
    return trainer


@pytest.fixture(scope="module")
def shapes():
    task = get_task("segmentation")
    return task.mix(task.load("shapes").subset(64, seed=0), 0)


def test_a_per_pixel_network_trains_through_the_training_loop(shapes):
    """Two epochs of the training loop give records with train/test mIoU and pixel accuracy,
    a falling loss, and a best epoch chosen by test mIoU."""
    trainer = _trainer(shapes)
    task = trainer.task
    task.check_network(trainer.net, shapes, torch.device("cpu"))
    records = []
    for _ in range(2):
        record = {**trainer.train_epoch(), **trainer.evaluate()}
        trainer.epoch += 1
        records.append(record)
    assert records[1]["train_loss"] < records[0]["train_loss"]
    for record in records:
        for key in ("train_miou", "test_miou", "train_pixel_acc", "test_pixel_acc"):
            assert 0.0 <= record[key] <= 100.0
        assert "train_acc" not in record and "test_acc" not in record
    assert records[1]["test_pixel_acc"] > 50.0  # the background alone covers most pixels


def test_a_run_killed_inside_an_epoch_resumes_to_the_same_confusion_sums(
    shapes, tmp_path, monkeypatch
):
    """A checkpoint taken inside an epoch keeps the confusion matrix summed so far; resumed
    there, the epoch ends with the metrics of a run never stopped."""
    from nasc.runtime.runs.rundir import RunDir
    from nasc.runtime.train import loop as train_module

    whole = _trainer(shapes, epochs=1)
    expected = whole.train_epoch()
    run = RunDir.create(tmp_path, "train", "seg")
    run.write_json("config.json", {})
    first = _trainer(shapes, run=run, epochs=1)
    first.checkpoint_seconds = 0.0  # a checkpoint after every step

    class Killed(Exception):
        pass

    def die_at(point, epoch, step=None):
        if (point, epoch, step) == ("kill", 1, 2):
            raise Killed

    monkeypatch.setattr(train_module, "die_at", die_at)
    with pytest.raises(Killed):
        first.train_epoch()
    monkeypatch.undo()
    second = _trainer(shapes, run=run, epochs=1)
    assert second.restore() and second.partial["step"] == 2
    assert second.partial["confusion"].shape == (5, 5)
    resumed = second.train_epoch()
    run.close()
    for key in ("train_loss", "train_miou", "train_pixel_acc"):
        assert resumed[key] == pytest.approx(expected[key], rel=1e-5)


def test_a_segmentation_run_report_shows_predictions_and_the_miou_curve(
    shapes, tmp_path, monkeypatch
):
    """`nasc report` of a training run recorded with the segmentation task draws the mIoU
    curve and the predictions figure, and names mIoU on the page; weights that do not fit the
    recorded network give no predictions figure rather than an error."""
    from nasc.compiler import fixed_source
    from nasc.runtime.reports import segmentation as report
    from nasc.runtime.runs.checkpoint import load_checkpoint
    from nasc.runtime.runs.rundir import RunDir

    run = RunDir.create(tmp_path, "train", "seg")
    trainer = _trainer(shapes, run=run, epochs=1)
    trainer.run_epochs()
    run.close()
    folder = run.path
    space = load_space("nb201", catalog=catalog())
    (folder / "arch.nas").write_text(fixed_source(space, parse_arch(space, SKIPS)))
    config = {"task": "segmentation", "data": "shapes", "defines": {"C": 4, "N": 1, "classes": 5,
              "channels": 3, "size": 32}}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    best = trainer.best
    fields = get_task("segmentation").metric_fields(best, best)
    (folder / "result.json").write_text(
        json.dumps({"arch": "nb201", "final_test_acc": best, "best_test_acc": best, **fields})
    )
    drawn = report.segmentation_figures(folder, config, _records(folder))
    assert (folder / "figures" / "miou.png").stat().st_size > 1000
    assert "predictions" not in drawn  # best.pt holds TinyPerPixel's weights, not nb201's
    net = TinyPerPixel()
    net.load_state_dict(load_checkpoint(folder / "best.pt")["net"])
    monkeypatch.setattr(report, "trained_network", lambda run_dir, config: net.eval())
    assert main(["report", str(folder)]) == 0
    page = (folder / "report.html").read_text()
    assert "figures/predictions.png" in page and "figures/miou.png" in page
    assert "test mIoU" in page and "test accuracy" not in page
    assert (folder / "figures" / "predictions.png").stat().st_size > 1000


def _records(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("data", ["digits", "shapes"])
def test_segmentation_on_a_classification_space_or_data_is_refused_before_a_run(
    tmp_path, capsys, data
):
    """`nasc search nb201 --task segmentation` with the digits (no label maps) or the shapes
    (the nb201 head pools to class scores) is refused with a hint, and no run is made."""
    runs = tmp_path / "runs"
    argv = ["search", "nb201", "--task", "segmentation", "--data", data, "--subset", "16",
            "--epochs", "2", "--shrink-steps", "1", "--shrink-interval", "1", "--batch-size", "8",
            "--measure-samples", "8", "--quiet", "--runs-dir", str(runs)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    if data == "digits":
        assert "classification data" in err and "--data shapes" in err
    else:
        assert "segmentation needs" in err and "per-pixel head" in err
    assert not runs.exists() or not list(runs.iterdir())


def test_the_search_loop_sums_a_confusion_matrix_when_it_evaluates(shapes, monkeypatch):
    """`Searcher.evaluate` adds up the task's K x K confusion sums over the test batches and
    reports the same mIoU as the task computes on the whole split at once."""
    from nasc.runtime.search.config import make_config
    from nasc.runtime.search.loop import Searcher

    task = get_task("segmentation")
    space = load_space("nb201", catalog=catalog())
    defines = task.bind(space, {"C": 4, "N": 1}, shapes)
    config = make_config("nb201", "isdarts", dict(epochs=2, batch_size=7, device="cpu", seed=0))
    searcher = Searcher(space, defines, config, shapes, torch.device("cpu"), task=task)
    torch.manual_seed(0)
    net = TinyPerPixel().eval()
    monkeypatch.setattr(searcher, "logits", net)
    scores = searcher.evaluate()
    with torch.no_grad():
        images, masks = next(iter(task.batches(shapes, "test", 1000, "cpu").epoch(None)))
        whole = task.metrics(task.batch_sums(net(images), masks), len(masks))
    assert len(masks) > 7  # more than one batch was summed
    assert scores["test_miou"] == pytest.approx(whole["miou"])
    assert scores["test_pixel_acc"] == pytest.approx(whole["pixel_acc"])
