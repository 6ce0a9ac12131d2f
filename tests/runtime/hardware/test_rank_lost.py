"""Under torchrun, a rank that goes silent ends the job after `--dist-timeout` seconds, with a
message naming it and how to resume (two gloo processes on the CPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tiny_search import TINY_SEARCH


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault, kept",
    [("stop@2.1", ["ckpt-00001.pt"]), ("stop@4", ["ckpt-00002.pt", "ckpt-00003.pt"])],
)
def test_a_silent_rank_is_named_after_the_timeout(tmp_path, fault, kept):
    """Rank 1 hangs mid-run (stop@2.1) or after training ended (stop@4): rank 0 gives up after
    --dist-timeout seconds, naming rank 1 and the resume command, without a gloo traceback."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NASC_FAULT")}
    environment.update({"NASC_FAULT": fault, "NASC_FAULT_RANK": "1"})
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "nasc.runtime", "search", "nb201", *TINY_SEARCH, "--seed", "1",
        "--runs-dir", str(tmp_path), "--dist-timeout", "5",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode != 0
    [run] = tmp_path.iterdir()
    assert "rank 1 stopped answering" in done.stderr
    assert "5 s process-group timeout, --dist-timeout" in done.stderr
    assert f"--resume {run}" in done.stderr
    assert "RuntimeError:" not in done.stderr and "DistBackendError" not in done.stderr
    assert sorted(p.name for p in (run / "checkpoints").glob("ckpt-*.pt")) == kept
