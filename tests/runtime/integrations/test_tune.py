"""The Ray Tune adapter: a trial is a nasc search that reports every epoch to Tune, under an ASHA
scheduler. Ray is optional (not in the test extra); where it is not installed, this is skipped."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray", reason="the Ray Tune adapter is optional: pip install ray[tune]")


@pytest.mark.slow
def test_each_trial_reports_every_epoch_to_an_asha_scheduler(tmp_path):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from nasc.runtime.integrations.tune import trainable

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            trainable(
                "nb201",
                runs_dir=tmp_path / "runs",
                data="digits",
                subset=64,
                defines={"C": 4, "N": 1},
                epochs=3,
                shrink_steps=2,
                shrink_interval=1,
                batch_size=16,
                measure_samples=16,
            ),
            param_space={"strategy": tune.grid_search(["isdarts", "darts-1st"])},
            tune_config=tune.TuneConfig(
                metric="test_acc",
                mode="max",
                scheduler=ASHAScheduler(max_t=3, grace_period=1),
                max_concurrent_trials=1,
            ),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    assert results.num_errors == 0
    assert len(results) == 2
    for result in results:
        frame = result.metrics_dataframe
        epochs = list(frame["epoch"])
        assert epochs == list(range(1, len(epochs) + 1)) and 1 <= len(epochs) <= 3
        assert list(frame["training_iteration"]) == epochs  # one report per epoch
    runs = sorted((tmp_path / "runs").iterdir())
    assert {
        json.loads((run / "config.json").read_text())["config"]["strategy"] for run in runs
    } == {
        "isdarts",
        "darts-1st",
    }
