"""Stopping on SIGINT (Ctrl-C) and SIGTERM (what SLURM, Kubernetes and `kill` send before they
kill): a run with a run directory finishes its training step, checkpoints the partial epoch and
raises `Stopped`; the command line says so and exits 128 + the signal's number (130 for SIGINT,
143 for SIGTERM).

While `stop_on_signals(defer=True)` is active (a search's or training run's epochs), the first
signal only marks a stop as wanted (`stop_wanted`), which the loop takes at the end of a step; a
second signal stops at once. Elsewhere a signal raises `Stopped` where the program is. Under
torchrun the launcher's SIGTERM ends a rank as before (a rank blocked in a collective could not
run a handler), and only SIGINT is handled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """A signal stopped the command; `status` is the exit status (128 + the signal number),
    `message` what to print: `interrupted` (SIGINT) or `terminated` (SIGTERM), and what was
    saved."""

    def __init__(self, signum: int, detail: str = ""):
        self.signum = signum
        self.status = 128 + signum
        name = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
        self.message = f"{name}: {detail}" if detail else name
        super().__init__(self.message)


_state = {"defer": False, "pending": None}


def _handler(signum, frame) -> None:
    if _state["defer"] and _state["pending"] is None:
        _state["pending"] = signum  # taken at the end of the training step
        return
    raise Stopped(signum)


def stop_wanted() -> int | None:
    """The signal that asked a deferred stop, or None."""
    return _state["pending"]


@contextlib.contextmanager
def stop_on_signals(defer: bool = False):
    """Within the block, SIGINT and SIGTERM raise `Stopped` (SIGTERM not under torchrun); with
    `defer`, the first one only marks the stop wanted. The handlers in place before come back
    afterwards. Outside the main thread (where Python cannot set handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = SIGNALS if not _under_launcher() else (signal.SIGINT,)
    before = {number: signal.getsignal(number) for number in handled}
    outer = dict(_state)
    for number in handled:
        signal.signal(number, _handler)
    _state.update(defer=defer, pending=None)
    try:
        yield
    finally:
        for number, previous in before.items():
            signal.signal(number, previous)
        _state.update(outer)


def _under_launcher() -> bool:
    """Started by torchrun (the variables `hardware.distributed.launched` reads)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ
