"""Tasks are a registry: a task registered from test code alone (regression on random tensors,
with MSE and a negative-MSE metric) searches and trains end to end through `nasc.search` and
`nasc.train`, and the built-in classification task keeps the head contract."""

from __future__ import annotations

import json

import attrs
import pytest
import torch
from torch.nn import functional

import nasc
from nasc.runtime.tasks import TASKS, Task, get_task, register_task

TINY_REGRESSION_SPACE = """
preset nb201

ops tiny = {skip_connect, nor_conv_1x1, avg_pool_3x3}

cell tiny_cell(x) {
    n1 = x:tiny
    n2 = x:tiny + n1:tiny
    keep 1 per edge
    out n2
}

network regressor(C = 4, channels = 2, size = 4) {
    input(channels, size)
    stem conv3x3_bn(C)
    repeat 1 tiny_cell @ C
    head bn_relu_pool_linear(1)
}
"""


@attrs.frozen(kw_only=True)
class RandomTensors:
    """Inputs (N, 2, 4, 4) and one target value each, a noisy linear function of the inputs."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def subset(self, count: int, seed: int = 0) -> RandomTensors:
        return attrs.evolve(self, train_x=self.train_x[:count], train_y=self.train_y[:count])


class TensorBatches:
    """Batches of (inputs, targets) in an order set by a seed, as the loops iterate them."""

    def __init__(self, x, y, batch_size, device, drop_last, shard):
        rank, world = shard
        self.x, self.y = x[rank::world].to(device), y[rank::world].to(device)
        self.batch_size, self.drop_last = batch_size, drop_last and len(self.y) >= batch_size

    def __len__(self) -> int:
        full, rest = divmod(len(self.y), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def epoch(self, seed, start=0, shuffle=True):
        count = len(self.y)
        order = torch.arange(count)
        if seed is not None and shuffle:
            order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
        for index in range(start, len(self)):
            chunk = order[index * self.batch_size : (index + 1) * self.batch_size]
            yield self.x[chunk], self.y[chunk]


class ToyRegression(Task):
    """Regression on random tensors: mean squared error, reported as its negative (higher is
    better, as a report's accuracy is)."""

    metric = "neg_mse"
    sums = ("squared_error",)

    def load(self, spec, cache_dir=None, image_size=None) -> RandomTensors:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(96, 2, 4, 4, generator=generator)
        y = x.mean(dim=(1, 2, 3)).unsqueeze(1) * 3.0 + 0.1 * torch.randn(96, 1, generator=generator)
        return RandomTensors(
            name=spec, train_x=x[:64], train_y=y[:64], test_x=x[64:], test_y=y[64:]
        )

    def examples(self, data, split) -> int:
        return len(data.train_y if split == "train" else data.test_y)

    def batches(self, data, split, batch_size, device, *, indices=None, augment=False,
                drop_last=False, cutout=0, shard=(0, 1)):  # fmt: skip
        x, y = (data.train_x, data.train_y) if split == "train" else (data.test_x, data.test_y)
        if indices is not None:
            x, y = x[indices], y[indices]
        return TensorBatches(x, y, batch_size, device, drop_last, shard)

    def facts(self, data) -> dict[str, int]:
        return {"channels": 2, "size": 4, "classes": 1}

    def check_output(self, output, targets) -> None:
        if output.shape != targets.shape:
            raise nasc.NascUsageError(
                f"the head produces {tuple(output.shape)}, the targets are {tuple(targets.shape)}",
                hint="end the network with a head of one output",
            )

    def loss(self, output, targets, smoothing=0.0):
        return functional.mse_loss(output, targets)

    def predict(self, output):
        return output

    def batch_sums(self, output, targets):
        return {"squared_error": ((self.predict(output) - targets) ** 2).sum()}

    def metrics(self, sums, seen):
        return {"neg_mse": -sums["squared_error"] / max(seen, 1)}

    def chance_loss(self, data) -> float:
        return float(data.train_y.var())


@pytest.fixture
def toy_task():
    register_task("toy-regression")(ToyRegression)
    yield "toy-regression"
    TASKS.pop("toy-regression")


def test_an_unknown_task_is_refused_naming_the_known_ones():
    """`get_task` of an unregistered name raises, listing the registered tasks."""
    with pytest.raises(nasc.NascUsageError, match="unknown task `detection`") as error:
        get_task("detection")
    assert "classification" in error.value.hint
    assert get_task().name == "classification" and get_task().metric == "acc"


def test_a_toy_task_registered_from_test_code_searches_and_trains(tmp_path, toy_task):
    """A regression task defined here runs through `nasc.search` and `nasc.train` end to end:
    its metric is in every epoch's record, in the result, and in config.json for resumes."""
    space = nasc.load_space(TINY_REGRESSION_SPACE)
    found = nasc.search(space, data="random", task=toy_task, runs_dir=tmp_path, epochs=2,
                        shrink_steps=1, shrink_interval=1, batch_size=16, measure_samples=8,
                        measure_on="train-sample", seed=0)  # fmt: skip
    assert [line["epoch"] for line in found.epochs] == [1, 2]
    for line in found.epochs:
        assert line["test_neg_mse"] <= 0 and "train_neg_mse" in line and "test_acc" not in line
    assert found.result["final_test_acc"] == found.epochs[-1]["test_neg_mse"]
    assert json.loads((found.run_dir / "config.json").read_text())["task"] == toy_task
    trained = nasc.train(found, data="random", task=toy_task, runs_dir=tmp_path, epochs=2,
                         batch_size=16, defines={"C": 4})  # fmt: skip
    assert trained.result["final_test_acc"] <= 0
    metrics = [json.loads(line) for line in (trained.run_dir / "metrics.jsonl").open()]
    assert [m["epoch"] for m in metrics] == [1, 2] and all("test_neg_mse" in m for m in metrics)
    assert trained.result["best_test_acc"] == max(m["test_neg_mse"] for m in metrics)


def test_a_head_that_does_not_fit_the_task_is_refused_before_the_first_epoch(tmp_path, toy_task):
    """A fixed head of 10 outputs cannot regress one value: refused, naming both widths."""
    space = nasc.load_space(TINY_REGRESSION_SPACE.replace("linear(1)", "linear(10)"))
    with pytest.raises(nasc.NascUsageError, match="expects 10 outputs but random has 1"):
        nasc.search(space, data="random", task=toy_task, runs_dir=tmp_path, epochs=9)
    assert not list(tmp_path.iterdir())
