"""The smallest real search the runtime tests run, and how they run nasc in a process of its own.

`TINY_SEARCH`: IS-DARTS-ready flags for NB201 at C=4, N=1 on 64 embedded digits, 3 epochs with
shrink steps after epochs 1 and 2; tests add the space, the seed and the run folder. `SEARCH` is
that search with seed 4, the one `tests/runtime/conftest.py` kills for the resume tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

TINY_SEARCH = [
    "--data", "digits", "--subset", "64", "-D", "C=4", "-D", "N=1", "--epochs", "3",
    "--shrink-steps", "2", "--shrink-interval", "1", "--batch-size", "16",
    "--measure-samples", "16", "--quiet",
]  # fmt: skip

SEARCH = ["search", "nb201", *TINY_SEARCH, "--seed", "4"]


def nasc(args, env=None):
    """`python -m nasc.runtime ARGS` in its own process, without inherited fault injection."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NASC_FAULT")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "nasc.runtime", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )


def nasc_signalled(args, fault, signum):
    """`nasc ARGS` in its own process with `NASC_FAULT=signal@EPOCH.STEP` (`fault`): once it
    says on stderr that it waits at that step, it is sent `signum`; returns the completed
    process."""
    from nasc.runtime.runs.faults import WAITING

    environment = {k: v for k, v in os.environ.items() if not k.startswith("NASC_FAULT")}
    environment["NASC_FAULT"] = fault
    process = subprocess.Popen(
        [sys.executable, "-m", "nasc.runtime", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    said = []
    for line in process.stderr:  # ends at the marker, or when the process ends without it
        said.append(line)
        if WAITING in line:
            process.send_signal(signum)
            break
    out, err = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, out, "".join(said) + err)


def lines(run):
    """The records of a run's metrics.jsonl."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def first_weight(state):
    """The name of a checkpoint's first weight matrix (a tensor of two or more dimensions)."""
    return next(k for k, v in state["net"].items() if torch.is_tensor(v) and v.dim() > 1)
