"""An optional Ray Tune adapter: each trial is one nasc search that reports the metrics of every
epoch to Tune as it ends, so that an ASHA-style scheduler can stop weak searches early.

    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from nasc.runtime.integrations.tune import trainable

    tuner = tune.Tuner(
        trainable("nb201", data="cifar10", epochs=30),
        param_space={"strategy": tune.grid_search(["isdarts", "darts-1st"]),
                     "lr": tune.loguniform(0.005, 0.05), "seed": tune.randint(0, 1000)},
        tune_config=tune.TuneConfig(metric="test_acc", mode="max", num_samples=8,
                                    scheduler=ASHAScheduler(max_t=30, grace_period=10)),
    )
    tuner.fit()

Each report is one epoch (Tune's `training_iteration` counts them), with the epoch's numbers
(`epoch`, `train_loss`, `train_acc`, `test_acc`, `lr`, `live`, ...). A trial's run directory is
the nasc run directory of its search, under `runs_dir`. Ray is not a dependency of nasc:
`pip install "ray[tune]"`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nasc.dsl import NascUsageError


def epoch_metrics(record: dict) -> dict[str, float]:
    """The numbers of an epoch record, as Tune takes them."""
    return {
        key: value
        for key, value in record.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def trainable(space, *, runs_dir: str | Path = "runs", **fixed: Any):
    """A function trainable for `ray.tune.Tuner`: the trial's `config` (preset fields, and
    `strategy`, `data`, ... as `nasc.search` takes them) goes over `fixed`.

    The space is loaded and checked once, here, so a mistake in it is reported before Tune
    starts any trial.

    Raises:
        NascUsageError: Ray Tune is not installed.
        NascError: the space does not load.
    """
    try:
        from ray import tune
    except ImportError:
        raise NascUsageError(
            "the Ray Tune adapter needs ray, which is not installed",
            hint='pip install "ray[tune]", or sweep with nasc sweep (submitit)',
        ) from None
    from nasc.runtime.api import load_space, search

    loaded = load_space(space)
    root = Path(runs_dir).resolve()  # Tune runs each trial in a folder of its own

    def run(config: dict) -> None:
        def report(record: dict) -> None:
            if record.get("event") == "epoch":
                tune.report(epoch_metrics(record))

        search(loaded, runs_dir=root, on_record=report, **{**fixed, **config})

    return run
