"""Fault drill: inject real faults into small `nasc search` runs and count what survives.

Every fault runs a search in a subprocess that fails for real (SIGKILL at a point of its own
progress, a torn checkpoint, a disk that refuses writes, a NaN loss), then resumes it, and
compares the end with an uninterrupted run of the same seed: genotype, masks (the final
checkpoint's), and every metric line but timings. Finished work is what was on disk at the moment
of the fault: completed checkpoints and metric lines; lost bytes are those of it that the resumed
run no longer holds, or holds changed.

    python benchmarks/faults.py
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

SEARCH = [
    "search", "nb201", "--data", "digits", "--subset", "64", "-D", "C=4", "-D", "N=1",
    "--epochs", "4", "--shrink-steps", "2", "--shrink-interval", "1", "--batch-size", "16",
    "--measure-samples", "16", "--seed", "5", "--quiet",
]  # fmt: skip
TIMING = ("seconds", "images_per_s", "measure_seconds")

# (name, NASC_FAULT or an action, expected exit of the faulty run)
FAULTS = [
    ("SIGKILL mid-epoch", "kill@2.3", -signal.SIGKILL),
    ("SIGKILL mid-epoch, first epoch", "kill@1.2", -signal.SIGKILL),
    ("SIGKILL during a shrink step", "shrink@3", -signal.SIGKILL),
    ("SIGKILL during a checkpoint write", "checkpoint@2", -signal.SIGKILL),
    ("SIGKILL between metrics and checkpoint", "metrics@3", -signal.SIGKILL),
    ("torn newest checkpoint", "torn", None),
    ("random bytes in the newest checkpoint", "garbage", None),
    ("disk full while writing a checkpoint", "full", 2),
    ("NaN loss", "nan@3.2", 2),
]


def nasc(args, env=None, file_limit=None):
    environment = {k: v for k, v in os.environ.items() if k != "NASC_FAULT"}
    environment.update(env or {})

    def limits():
        if file_limit:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run(
        [sys.executable, "-m", "nasc.runtime", *args],
        capture_output=True,
        text=True,
        env=environment,
        preexec_fn=limits,
    )


def finished_work(run: Path) -> dict[str, bytes]:
    """Completed work on disk now: checkpoints that verify, and whole metric lines."""
    from nasc.runtime.checkpoint import CorruptCheckpoint, load_checkpoint

    work = {}
    for path in (run / "checkpoints").glob("ckpt-*.pt"):
        try:
            load_checkpoint(path)
        except CorruptCheckpoint:
            continue  # damaged by the fault itself: not finished work
        work[path.name] = path.read_bytes()
    metrics = run / "metrics.jsonl"
    if metrics.is_file():
        for number, line in enumerate(metrics.read_bytes().splitlines(keepends=True)):
            if line.endswith(b"\n"):
                work[f"metrics line {number}"] = line
    return work


def outcome(run: Path):
    metrics = [
        {k: v for k, v in json.loads(line).items() if k not in TIMING}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]
    return (run / "genotype.json").read_text(), metrics


def lost_bytes(before: dict[str, bytes], run: Path, resumed_from: int) -> int:
    """Bytes of finished work the resume threw away: an intact checkpoint newer than the one it
    resumed from, or a metric line up to that epoch that it no longer holds unchanged. (Older
    checkpoints rotate away once newer ones supersede them; that loses nothing.)"""
    after = finished_work(run)
    lost = 0
    for name, data in before.items():
        if name.startswith("metrics line"):
            if json.loads(data)["epoch"] <= resumed_from and after.get(name) != data:
                lost += len(data)
        elif int(name[5:10]) > resumed_from:
            lost += len(data)
    return lost


def drill(name, fault, expected, reference, root: Path):
    runs = root / name.replace(" ", "-")
    env, limit = {}, None
    if "@" in fault:
        env = {"NASC_FAULT": fault}
        first = nasc([*SEARCH, "--runs-dir", str(runs)], env=env)
    else:
        first = nasc([*SEARCH, "--runs-dir", str(runs)], env={"NASC_FAULT": "kill@3.1"})
    run = next(runs.iterdir())
    if fault in ("torn", "garbage"):
        newest = sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]
        data = newest.read_bytes()
        newest.write_bytes(data[: len(data) // 2] if fault == "torn" else os.urandom(len(data)))
        expected = first.returncode
    if fault == "full":
        limit = 100_000
        first = nasc(["search", "--resume", str(run), "--quiet"], file_limit=limit)
    ok_fault = first.returncode == expected
    before = finished_work(run)
    resumed = nasc(["search", "--resume", str(run), "--quiet"])
    resumed_from = 0
    for line in resumed.stdout.splitlines():
        if line.startswith("resumed after epoch"):
            resumed_from = int(line.split()[-1])
    same = resumed.returncode == 0 and outcome(run) == reference
    return ok_fault, same, lost_bytes(before, run, resumed_from), first.stderr.strip()[-200:]


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        done = nasc([*SEARCH, "--runs-dir", str(root / "reference")])
        assert done.returncode == 0, done.stderr
        reference = outcome(next((root / "reference").iterdir()))
        injected = identical = lost_total = 0
        print(
            f"{'fault':<42}{'failed as it should':>20}{'resumed identical':>19}{'bytes lost':>12}"
        )
        for name, fault, expected in FAULTS:
            ok_fault, same, lost, _ = drill(name, fault, expected, reference, root)
            injected += 1
            identical += same
            lost_total += lost
            print(
                f"{name:<42}{'yes' if ok_fault else 'NO':>20}{'yes' if same else 'NO':>19}"
                f"{lost:>12}"
            )
        print(
            f"\nfaults injected: {injected}; runs resumed to the identical result: {identical}; "
            f"bytes of finished work lost: {lost_total}"
        )


if __name__ == "__main__":
    main()
