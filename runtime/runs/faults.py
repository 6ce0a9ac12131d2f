"""Fault injection for the reliability tests and `benchmarks/faults.py`.

`NASC_FAULT=POINT@EPOCH[.STEP]` makes a run fail for real when it reaches that point:
`kill@E.S` (SIGKILL after training step S of epoch E), `shrink@E` (SIGKILL in the middle of the
shrink step after epoch E), `checkpoint@E` (SIGKILL halfway through writing checkpoint E),
`metrics@E` (SIGKILL after epoch E's metrics, before its checkpoint), `nan@E.S` (the loss of step
S of epoch E becomes NaN) and `inf@E` (after training epoch E, a BN running variance becomes
infinite while the training loss stays finite); `stop@E.S` hangs the process after step S of
epoch E (a silent rank; `stop@E` for the epoch after the last: once training has ended).
`write@NAME` (SIGKILL halfway through writing the file NAME, e.g. `write@model.pt`,
`write@report.html`, `write@curves.png`) and `signal@E.S` (after step S of epoch E, print
`WAITING` on stderr and wait until a signal arrives, so a test can send SIGTERM or SIGINT at a
known step). `NASC_FAULT_RANK=R` limits the fault to rank R of a torchrun job. Unset, every check
is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "NASC_FAULT"
WAITING = "nasc fault: waiting for a signal"


def _wanted(point: str, epoch: int, step: int | None) -> bool:
    spec = os.environ.get(VARIABLE)
    if not spec:
        return False
    only = os.environ.get(f"{VARIABLE}_RANK")  # under torchrun: fail one rank only
    if only is not None and only != os.environ.get("RANK", "0"):
        return False
    name, _, where = spec.partition("@")
    wanted_epoch, _, wanted_step = where.partition(".")
    if name != point or not wanted_epoch.isdigit() or int(wanted_epoch) != epoch:
        return False
    return not wanted_step or (
        step is not None and wanted_step.isdigit() and int(wanted_step) == step
    )


def die_at(point: str, epoch: int, step: int | None = None) -> None:
    """SIGKILL this process when `NASC_FAULT` names this point: no cleanup, as a crash would."""
    if _wanted(point, epoch, step):
        os.kill(os.getpid(), signal.SIGKILL)


def stop_at(point: str, epoch: int, step: int | None = None) -> None:
    """Hang this process when `NASC_FAULT` names `stop@...`: a rank alive but silent (it still
    dies of SIGTERM, so the launcher can end it)."""
    if _wanted(point, epoch, step):
        import time

        while True:
            time.sleep(3600)


def poison(point: str, epoch: int, step: int | None = None) -> bool:
    """True when `NASC_FAULT` asks to corrupt the value computed at this point."""
    return _wanted(point, epoch, step)


def die_writing(name: str) -> None:
    """SIGKILL this process when `NASC_FAULT` is `write@NAME` for this file's name (called by
    the atomic writers halfway through a write)."""
    spec = os.environ.get(VARIABLE)
    if spec and spec == f"write@{name}":
        os.kill(os.getpid(), signal.SIGKILL)


def wait_for_signal(epoch: int, step: int) -> None:
    """When `NASC_FAULT` names `signal@EPOCH.STEP`: print `WAITING` on stderr and wait until a
    signal asks a deferred stop (`signals.stop_wanted`; a signal raised at once ends it too)."""
    if _wanted("signal", epoch, step):
        import sys
        import time

        from nasc.runtime.runs.signals import stop_wanted

        print(WAITING, file=sys.stderr, flush=True)
        while not stop_wanted():
            time.sleep(0.02)
