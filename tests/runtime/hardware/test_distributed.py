"""Data-parallel searches under torchrun: two gloo processes on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tiny_search import TINY_SEARCH

from nasc.runtime.cli import main

TINY = [*TINY_SEARCH, "--seed", "1"]


def torchrun(args, processes=2, env=None):
    """`torchrun --standalone --nproc-per-node N -m nasc.runtime ARGS`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NASC_FAULT")}
    environment.update(env or {})
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={processes}", "-m", "nasc.runtime", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)


def output_tail(process) -> str:
    """What a failed torchrun printed: the end of both streams (progress shows where it died)."""
    return f"stdout:\n{process.stdout[-1500:]}\nstderr:\n{process.stderr[-3000:]}"


def only_run(root):
    [run] = root.iterdir()
    return run


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A finished two-process IS-DARTS search."""
    root = tmp_path_factory.mktemp("ddp")
    done = torchrun(["search", "nb201", *TINY, "--runs-dir", str(root)])
    assert done.returncode == 0, output_tail(done)
    return only_run(root), done


def test_two_ranks_hold_one_architecture_and_write_one_run(uninterrupted):
    """Both ranks end with the same masks and genotype; rank 0 alone writes one run directory
    and prints progress."""
    run, done = uninterrupted
    result = json.loads((run / "result.json").read_text())
    assert len(result["ranks"]) == 2
    assert result["ranks"][0] == result["ranks"][1]
    assert (
        result["ranks"][0]["genotype"] == json.loads((run / "genotype.json").read_text())["cells"]
    )
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert [line for line in done.stdout.splitlines() if line.startswith("run directory:")]
    assert done.stdout.count("found by isdarts") == 1
    assert "effective batch 32" in done.stdout
    assert done.stdout.count("epoch   3/3") == 1


@pytest.mark.parametrize(
    "strategy, options",
    [
        ("darts-1st", []),
        ("gdas", []),
        ("drnas", []),
        ("darts-1st", ["--partial-channels", "2", "--edge-normalisation"]),
    ],
)
def test_darts_alphas_stay_identical_across_ranks(tmp_path, strategy, options):
    """A two-process DARTS-family search derives the same genotype and masks on both ranks (the
    sampling strategies draw their architectures from per-run streams under DDP; PC-DARTS'
    channel shuffle and edge weights change nothing of that)."""
    done = torchrun(["search", "nb201", *TINY, "--strategy", strategy, "--epochs", "2",
                     *options, "--runs-dir", str(tmp_path)])  # fmt: skip
    assert done.returncode == 0, output_tail(done)
    ranks = json.loads((only_run(tmp_path) / "result.json").read_text())["ranks"]
    assert ranks[0] == ranks[1]


def test_a_dead_rank_ends_the_job_and_a_restart_resumes(uninterrupted, tmp_path):
    """When one rank is killed mid-epoch the job ends naming it; torchrun with --resume then
    finishes with the same result as the uninterrupted job."""
    killed = torchrun(
        ["search", "nb201", *TINY, "--runs-dir", str(tmp_path)],
        env={"NASC_FAULT": "kill@3.1", "NASC_FAULT_RANK": "1"},
    )
    assert killed.returncode != 0
    assert "rank" in killed.stderr and ("SIGKILL" in killed.stderr or "-9" in killed.stderr)
    run = only_run(tmp_path)
    assert not (run / "result.json").exists()
    resumed = torchrun(["search", "--resume", str(run), "--quiet"])
    assert resumed.returncode == 0, output_tail(resumed)
    assert "resumed after epoch 2" in resumed.stdout
    reference = uninterrupted[0]
    assert (run / "genotype.json").read_text() == (reference / "genotype.json").read_text()

    def lines(folder):
        timing = ("seconds", "images_per_s", "measure_seconds")
        return [
            {k: v for k, v in json.loads(line).items() if k not in timing}
            for line in (folder / "metrics.jsonl").read_text().splitlines()
        ]

    assert lines(run) == lines(reference)


def test_seeds_run_independent_searches_and_summarise(tmp_path, capsys):
    """`--seeds 2` runs two searches with consecutive seeds and writes one summary."""
    assert main(["search", "nb201", *TINY, "--seeds", "2", "--runs-dir", str(tmp_path)]) == 0
    runs = sorted(p for p in tmp_path.iterdir() if (p / "result.json").is_file())
    assert len(runs) == 2
    [summary] = tmp_path.glob("seeds-*/summary.json")
    results = json.loads(summary.read_text())["runs"]
    assert [r["seed"] for r in results] == [1, 2]
    assert "2 seeds:" in capsys.readouterr().out
