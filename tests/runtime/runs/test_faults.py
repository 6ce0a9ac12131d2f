"""Faults a search must survive, injected for real into `nasc search` subprocesses.

Each run is killed (SIGKILL) at a point chosen from its own progress (`NASC_FAULT`), then resumed,
and must end exactly as an uninterrupted run with the same seed does.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys

import pytest
from tiny_search import TINY_SEARCH, nasc_signalled

from nasc.runtime.runs.rundir import RunDir

SEARCH = ["search", "nb201", *TINY_SEARCH, "--seed", "3"]
TIMING = ("seconds", "images_per_s", "measure_seconds")


def nasc(args, env=None, limit_file_size=None):
    """Run `python -m nasc.runtime ARGS` and return the completed process."""
    environment = dict(os.environ)
    environment.pop("NASC_FAULT", None)
    environment.update(env or {})

    def limits():
        if limit_file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails, not kills
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return subprocess.run(
        [sys.executable, "-m", "nasc.runtime", *args],
        capture_output=True,
        text=True,
        env=environment,
        preexec_fn=limits,
        timeout=600,
    )


def outcome(run):
    """What a finished run must agree on: genotype, final masks and metrics without timings."""
    metrics = [
        {k: v for k, v in json.loads(line).items() if k not in TIMING}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]
    result = json.loads((run / "result.json").read_text())
    return (run / "genotype.json").read_text(), result["nb201"], metrics


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run."""
    root = tmp_path_factory.mktemp("reference")
    done = nasc([*SEARCH, "--runs-dir", str(root)])
    assert done.returncode == 0, done.stderr
    [run] = root.iterdir()
    return outcome(run)


@pytest.mark.parametrize("fault", ["kill@2.3", "shrink@2", "checkpoint@2", "metrics@1"])
def test_a_killed_run_resumes_to_the_same_result(fault, reference, tmp_path):
    """SIGKILL mid-epoch, during a shrink step, during a checkpoint write, or between the metrics
    and the checkpoint: `--resume` ends with the same genotype, masks and metrics."""
    killed = nasc([*SEARCH, "--runs-dir", str(tmp_path)], env={"NASC_FAULT": fault})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [run] = tmp_path.iterdir()
    assert not (run / "result.json").exists()
    resumed = nasc(["search", "--resume", str(run), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    assert outcome(run) == reference
    assert not list(run.glob("checkpoints/.*tmp*")) or fault == "checkpoint@2"


def test_a_corrupt_checkpoint_falls_back_to_the_previous_one(reference, tmp_path):
    """A damaged newest checkpoint is reported by path; the run resumes from the one before."""
    killed = nasc([*SEARCH, "--runs-dir", str(tmp_path)], env={"NASC_FAULT": "kill@3.1"})
    assert killed.returncode == -signal.SIGKILL
    [run] = tmp_path.iterdir()
    newest = sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 3])  # torn
    resumed = nasc(["search", "--resume", str(run), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    assert newest.name in resumed.stdout and "previous checkpoint" in resumed.stdout
    assert outcome(run) == reference


def test_a_full_disk_keeps_the_previous_checkpoint(reference, tmp_path):
    """When a checkpoint cannot be written (a file size limit makes the write fail with EFBIG),
    the run stops naming the path, the previous checkpoint stays intact, and a later --resume
    finishes as if nothing happened."""
    killed = nasc([*SEARCH, "--runs-dir", str(tmp_path)], env={"NASC_FAULT": "kill@3.1"})
    assert killed.returncode == -signal.SIGKILL
    [run] = tmp_path.iterdir()
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").glob("ckpt-*.pt")}
    assert sorted(before) == ["ckpt-00001.pt", "ckpt-00002.pt"]
    limited = nasc(["search", "--resume", str(run), "--quiet"], limit_file_size=100_000)
    assert limited.returncode == 2, limited.stderr
    assert "cannot write" in limited.stderr and "ckpt-00003.pt" in limited.stderr
    assert "File too large" in limited.stderr and "Traceback" not in limited.stderr
    after = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    assert after == before  # intact, and no temporary file left behind
    resumed = nasc(["search", "--resume", str(run), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    assert outcome(run) == reference


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_search_checkpoints_its_epoch_and_resumes_to_the_same_result(
    signum, reference, tmp_path
):
    """SIGTERM (SLURM, Kubernetes) or SIGINT in the middle of epoch 2 finishes the step, saves a
    checkpoint there, says so and exits 143 (SIGTERM) or 130 (SIGINT); `--resume` continues at
    that step and ends as an uninterrupted run does."""
    stopped = nasc_signalled([*SEARCH, "--runs-dir", str(tmp_path)], "signal@2.2", signum)
    assert stopped.returncode == 128 + signum, stopped.stderr
    word = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    assert word in stopped.stderr and "in epoch 2, after step 2" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    [run] = tmp_path.iterdir()
    assert f"nasc search --resume {run}" in stopped.stderr
    assert (run / "checkpoints" / "ckpt-00001-s000002.pt").is_file()
    resumed = nasc(["search", "--resume", str(run), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed in epoch 2, after step 2" in resumed.stdout
    assert outcome(run) == reference


def test_a_nan_loss_stops_the_run_and_resume_with_a_lower_rate_continues(tmp_path):
    """A NaN loss is caught at its step, named with the last good checkpoint; resuming with a
    lower learning rate finishes the run."""
    poisoned = nasc([*SEARCH, "--runs-dir", str(tmp_path)], env={"NASC_FAULT": "nan@3.2"})
    assert poisoned.returncode == 2
    assert "epoch 3, step 2" in poisoned.stderr and "ckpt-00002.pt" in poisoned.stderr
    assert "--lr" in poisoned.stderr
    [run] = tmp_path.iterdir()
    resumed = nasc(["search", "--resume", str(run), "--lr", "0.01", "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed after epoch 2" in resumed.stdout
    assert (run / "genotype.json").is_file()


def test_a_second_process_cannot_share_a_run_directory(tmp_path):
    """While one process holds a run directory, a second `nasc search --resume` is refused."""
    run = RunDir.create(tmp_path, "nb201", "isdarts")
    run.write_json("config.json", {})
    try:
        second = nasc(["search", "--resume", str(run.path), "--quiet"])
    finally:
        run.close()
    assert second.returncode == 2
    assert "in use by nasc process" in second.stderr
