"""Runs that several runtime test folders share: a tiny search killed in its last epoch."""

from __future__ import annotations

import shutil
import signal

import pytest
from tiny_search import SEARCH, nasc


@pytest.fixture(scope="session")
def killed(tmp_path_factory):
    """A run killed in its third (last) epoch: checkpoints after epochs 1 and 2. Tests change
    only copies of it (`run_copy`)."""
    root = tmp_path_factory.mktemp("killed")
    done = nasc([*SEARCH, "--runs-dir", str(root)], env={"NASC_FAULT": "kill@3.1"})
    assert done.returncode == -signal.SIGKILL, done.stderr
    [run] = root.iterdir()
    return run


@pytest.fixture
def run_copy(killed, tmp_path):
    """A copy of the killed run, free to change."""
    copy = tmp_path / killed.name
    shutil.copytree(killed, copy)
    (copy / ".lock").unlink(missing_ok=True)
    return copy
