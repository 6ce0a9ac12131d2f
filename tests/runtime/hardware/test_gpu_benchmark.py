"""benchmarks/gpu.py (its dry run, its budget, its arguments) and the GPU settings of a search:
bf16 autocast, channels-last and compiled forwards, with IS-DARTS' hooks still seeing each op."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasc.compiler import CompileOptions, compile_space
from nasc.dsl import NascUsageError, load_space
from nasc.runtime.search.config import make_config, validate
from nasc.runtime.search.found import result_settings

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"
TINY = {"C": 2, "N": 1}


@pytest.fixture
def gpu_script(monkeypatch):
    """benchmarks/gpu.py as a module, with its folder on the path (it imports its neighbours)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("gpu_benchmark", BENCHMARKS / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_dry_run_measures_every_stage(tmp_path):
    """`gpu.py --dry-run` runs all four stages on the CPU and writes every row it measured."""
    out = tmp_path / "out"
    command = [sys.executable, str(BENCHMARKS / "gpu.py"), "--dry-run", "--out", str(out)]
    done = subprocess.run(
        command + ["--work", str(tmp_path / "work")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert not [row for row in rows if row["status"] == "failed"]
    ok = {(row["stage"], row["name"]) for row in rows if row["status"] == "ok"}
    assert ("environment", "pytest -m gpu") in ok
    assert ("steps", "nb201 masked / standalone, fp32, channels-last, eager") in ok
    assert ("steps", "darts all live, bf16, NCHW, eager") in ok
    seeds = [row for row in rows if row["stage"] == "search" and row["name"].startswith("seed ")]
    found = [row for row in seeds if "epoch" not in row["name"]]
    assert len(found) == 2 and all(row["cell"].count("~") == 6 for row in found)
    assert all(row["accuracy"]["cifar10"] > 0 for row in found)
    predictor = next(row for row in rows if row["name"] == "latency predictor")
    assert predictor["status"] == "ok" and math.isfinite(predictor["relative_error"])
    assert json.loads((out / "profile.json").read_text())["space"] == "nb201"
    markdown = (out / "results.md").read_text()
    assert all(f"## {stage}" in markdown for stage in ("environment", "steps", "search"))
    skipped = [row for row in rows if row["status"] == "skipped"]
    assert skipped and all("CUDA" in row["reason"] for row in skipped)


def test_a_budget_of_nothing_skips_every_stage_saying_so(gpu_script, tmp_path):
    """With no time, each stage records that it would not finish instead of running."""
    out = tmp_path / "out"
    argv = ["--dry-run", "--budget", "0", "--out", str(out), "--work", str(tmp_path / "w")]
    assert gpu_script.main(argv) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert rows[0]["name"] == "environment" and rows[0]["status"] == "ok"
    assert [row["name"] for row in rows[1:]] == ["pytest -m gpu", "steps", "search", "profile"]
    assert all("would not finish" in row["reason"] for row in rows[1:])
    assert "| skipped |" in (out / "results.md").read_text()


def test_arguments_are_checked(gpu_script, capsys):
    """Unknown stages and impossible search settings are refused; stages run in their order."""
    with pytest.raises(SystemExit):
        gpu_script.parse_args(["--stages", "steps,warp"])
    with pytest.raises(SystemExit):
        gpu_script.parse_args(["--search-config", "cuda graphs,compile"])
    args = gpu_script.parse_args(["--stages", "profile,search", "--search-config", "bf16,nchw"])
    assert args.stages == ("search", "profile") and args.seeds == 3
    from gpu_stages import search_settings

    assert search_settings("bf16, cuda graphs") == {
        "amp": True,
        "channels_last": True,
        "cuda_compile": "reduce-overhead",
    }
    assert search_settings("eager")["cuda_compile"] == "none"


def test_the_clock_shares_the_budget_over_the_stages_run(gpu_script):
    """A stage's deadline is its share plus the earlier stages'; one stage alone gets it all."""
    from gpu_stages import Clock

    clock = Clock(100.0, ("environment", "steps", "search", "profile"), now=lambda: 0.0)
    assert clock.left("environment") == pytest.approx(8.0)
    assert clock.left("search") == pytest.approx(85.0)
    assert clock.left("profile") == pytest.approx(100.0)
    assert Clock(100.0, ("search",), now=lambda: 0.0).left("search") == pytest.approx(100.0)


def test_a_search_that_would_pass_its_deadline_stops_after_its_second_epoch(gpu_script):
    """The epoch watch writes each epoch and stops the search once its pace passes the time."""
    from gpu_stages import Clock, EpochWatch, OutOfBudget, Results

    results = Results(None, {})
    watch = EpochWatch(results, Clock(0.0, ("search",)), seed=0, epochs=30)
    record = {"event": "epoch", "live": 30, "seconds": 1.0, "images_per_s": 10.0}
    watch({**record, "epoch": 1})  # the first epoch holds one-time work: never decides
    with pytest.raises(OutOfBudget) as stop:
        watch({**record, "epoch": 2})
    assert stop.value.projected >= 0 and [r["name"] for r in results.rows] == [
        "seed 0 epoch 1",
        "seed 0 epoch 2",
    ]
    assert list(watch.per_level()) == ["30 live"]


def test_an_unknown_compile_mode_is_refused():
    """`--cuda-compile` takes none or a torch.compile mode, and says which."""
    config = make_config("nb201", "isdarts", {"cuda_compile": "fastest"})
    with pytest.raises(NascUsageError, match="--cuda-compile"):
        validate(config)
    validate(make_config("nb201", "isdarts", {"cuda_compile": "reduce-overhead", "amp": True}))


def test_gpu_settings_stay_out_of_what_checkpoints_record():
    """How a search runs (device, autocast, layout, compiling) may change on resume."""
    config = make_config("nb201", "isdarts", {"amp": True, "cuda_compile": "default"})
    recorded = result_settings(config, "digits", None, None)
    assert not {"device", "amp", "channels_last", "cuda_compile"} & set(recorded)
    assert recorded["epochs"] == 30


def test_a_hooked_supernet_is_watched(catalog):
    """A hook on any op makes the supernet watched (so a compiled forward runs eagerly)."""
    net = compile_space(load_space("nb201", catalog=catalog, overrides=TINY), TINY)
    assert not net.watched()
    op = net.cells()[0].edges["x->n1"]["nor_conv_3x3"]
    handle = op.register_forward_hook(lambda *_: None)
    assert net.watched()
    handle.remove()
    net.cells()[0].__dict__.pop("_watched", None)
    assert not net.watched()


@pytest.mark.slow
def test_on_the_cpu_the_gpu_settings_change_nothing(tmp_path):
    """bf16 autocast and compiling are CUDA-only: a CPU search with them finds the same cell
    with the same losses."""
    import nasc

    settings = dict(
        data="digits", subset=64, defines=TINY, epochs=2, shrink_steps=1, shrink_interval=1,
        batch_size=16, measure_on="train-sample", measure_samples=16, device="cpu",
        runs_dir=None,
    )  # fmt: skip
    plain = nasc.search("nb201", **settings)
    gpu = nasc.search("nb201", amp=True, cuda_compile="reduce-overhead", **settings)
    assert gpu.genotype == plain.genotype
    losses = [
        [record["train_loss"] for record in run.metrics if record["event"] == "epoch"]
        for run in (plain, gpu)
    ]
    assert losses[0] == losses[1]


@pytest.mark.gpu
def test_cuda_events_time_longer_work_longer():
    """`cuda_time_call` times GPU work: twice the products take longer than once."""
    from nasc.runtime.hardware.latency import cuda_time_call

    x = torch.randn(2048, 2048, device="cuda")
    once = cuda_time_call(lambda a: a @ a, x, min_run_time=0.05)
    twice = cuda_time_call(lambda a: (a @ a) @ a, x, min_run_time=0.05)
    assert 0 < once < twice


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["reduce-overhead", "default"])
def test_isdarts_measures_a_compiled_supernet_as_an_eager_one(catalog, mode):
    """A compiled supernet runs eagerly under IS-DARTS' hooks: the same F for every candidate."""
    from nasc.runtime.strategies.isdarts import measure

    space = load_space("nb201", catalog=catalog, overrides=TINY)
    torch.manual_seed(0)
    eager = compile_space(space, TINY, CompileOptions(search=True)).cuda()
    torch.manual_seed(0)
    compiled = compile_space(space, TINY, CompileOptions(search=True, cuda_compile=mode)).cuda()
    compiled.load_state_dict(eager.state_dict())
    images = torch.randn(8, 3, 32, 32, device="cuda")
    compiled(images)  # compiled once, before the hooks
    batches = [(images, None)]
    expected, got = measure(eager, batches), measure(compiled, batches)
    for cell, scores in expected.items():
        for member, value in scores.items():
            assert got[cell][member] == pytest.approx(value, rel=1e-4)


@pytest.mark.gpu
def test_a_search_runs_on_cuda_with_bf16_and_cuda_graphs():
    """The fastest GPU settings search to the end with finite losses."""
    import nasc

    found = nasc.search(
        "nb201", data="digits", subset=128, defines=TINY, epochs=2, shrink_steps=1,
        shrink_interval=1, batch_size=32, device="cuda", amp=True,
        cuda_compile="reduce-overhead", runs_dir=None,
    )  # fmt: skip
    losses = [r["train_loss"] for r in found.metrics if r["event"] == "epoch"]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
