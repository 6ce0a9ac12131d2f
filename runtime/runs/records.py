"""What a search and a training run share while they run: the metrics they log, checkpoints
inside long epochs, the learning-rate schedule, per-epoch seeds, and what a diverged run is."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time

import torch

from nasc.dsl import NascError
from nasc.runtime.runs.checkpoint import save_checkpoint
from nasc.runtime.runs.signals import Stopped, stop_on_signals, stop_wanted


class NonFiniteLoss(NascError):
    """The training loss became NaN or infinite."""


class Diverged(NonFiniteLoss):
    """The weights, buffers (BN running statistics) or losses are no longer finite, or a loss
    exploded past `DIVERGED_LOSS`: the run diverged, and its state is not saved."""


# A mean cross-entropy above this means logits a million apart: no healthy run gets there.
DIVERGED_LOSS = 1e6


SAFE_DEFAULT_LR = 0.025  # the presets' learning rate, suggested when the run shows none safe


def cosine_lr(lr: float, lr_min: float, epochs: int, progress: float, warmup: int = 0) -> float:
    """Linear warm-up over `warmup` epochs, then cosine decay from `lr` to `lr_min` by the last
    epoch; `progress` counts epochs, fractions included."""
    if progress < warmup:
        return lr * (progress + 1e-3) / warmup
    fraction = min(1.0, (progress - warmup) / max(epochs - warmup, 1e-9))
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * fraction))


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    digest = hashlib.sha256(f"{seed}:{epoch}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class RunRecords:
    """What a search (`Searcher`) and a training run (`train.Trainer`) share: logging a metrics
    record, checkpoints taken inside long epochs, and stopping on a signal. The class sets `run`,
    `events`, `metric_lines`, `metric_records`, `epoch`, `seconds`, `checkpoint_seconds` and
    `_saved_at`, and defines `state()` and `save_inside()`; `dist` (torchrun) turns checkpoints
    inside epochs off; `command` is what resumes it (`nasc search`, `nasc train`)."""

    dist = None
    command = "nasc search"

    def _log(self, record: dict) -> None:
        if self.run is not None:
            self.run.log_metrics(record)
        self.metric_lines += 1
        self.metric_records.append(record)
        self.events.record(record)

    def _restore_records(self, state: dict) -> None:
        """Take what every checkpoint holds besides the weights: the random state, the epoch,
        the metrics, the settings it was written with, the time spent and the place inside an
        epoch (the caller has loaded the network and optimizers)."""
        torch.set_rng_state(state["rng"].cpu())
        self.epoch = int(state["epoch"])
        self.metric_lines = int(state["metric_lines"])
        self.metric_records = metric_records(state)
        settings = state.get("settings")
        self.last_settings = settings if isinstance(settings, dict) else None
        self.seconds = float(state.get("seconds", 0.0))
        self.partial = state.get("partial")

    def _checkpoint_due(self) -> bool:
        return (
            self.run is not None
            and self.dist is None
            and self.checkpoint_seconds is not None
            and time.perf_counter() - self._saved_at >= self.checkpoint_seconds
        )

    def _stops(self):
        """The block in which SIGINT and SIGTERM wait for the end of a training step (see
        `runs.signals`): where there is a run directory to checkpoint into, not under torchrun."""
        if self.run is None or self.dist is not None:
            return contextlib.nullcontext()
        return stop_on_signals(defer=True)

    def _after_step(self, step: int, steps: int, sums: dict, seen: int, before, started) -> None:
        """After training step `step` (from 1) of `steps`: a checkpoint inside the epoch when one
        is due or a signal asked to stop, and then the stop. A stop asked at an epoch's last step
        is taken once that epoch's checkpoint is written (`_take_stop`).

        Args:
            sums, seen: what the epoch has summed so far; `before`: its seconds before this
                session; `started`: when this session started it (`time.perf_counter`).

        Raises:
            Stopped: after the checkpoint, when a signal asked to stop.
        """
        wanted = stop_wanted()
        if step < steps and (wanted or self._checkpoint_due()):
            session = time.perf_counter() - started
            self.save_inside(step, sums, seen, before + session, session)
            if wanted:
                where = f"in epoch {self.epoch + 1}, after step {step} of {steps}"
                raise Stopped(wanted, self._resume_line(where))

    def _take_stop(self) -> None:
        """Stop after an epoch's checkpoint when a signal asked to during the epoch's end.

        Raises:
            Stopped: when a signal asked to stop.
        """
        wanted = stop_wanted()
        if wanted:
            raise Stopped(wanted, self._resume_line(f"after epoch {self.epoch}"))

    def _resume_line(self, where: str) -> str:
        return f"checkpoint saved {where}; continue with: {self.command} --resume {self.run.path}"

    def _save_partial(self, step: int, sums: dict, seconds: float, session: float) -> None:
        """A checkpoint `step` training steps into the current epoch, with what the epoch has
        summed so far (`sums`: total_loss, correct, seen), so a resumed run finishes the epoch
        exactly as it would have. The caller checks the state is finite first.

        Args:
            seconds: the epoch's training time so far; `session`: the part of it since this
                process started the epoch (what `self.seconds` has not counted yet).
        """
        state = self.state()
        state["seconds"] = self.seconds + session
        state["partial"] = {"step": step, **sums, "seconds": seconds}
        save_checkpoint(self.run.checkpoints, self.epoch, state, step=step)
        self._saved_at = time.perf_counter()


def metric_records(state: dict) -> list[dict]:
    """The metric lines a checkpoint kept (none for checkpoints older than that)."""
    records = state.get("metrics")
    if not isinstance(records, list):
        return []
    return [record for record in records if isinstance(record, dict)]


def apply_sgd_settings(optimizer: torch.optim.Optimizer, config) -> None:
    """Give a restored SGD the run's settings: its saved state carries those it was built with,
    so without this a resume override of momentum, Nesterov or weight decay would be recorded
    but not used. (The learning rate is set at every step.)"""
    for group in optimizer.param_groups:
        group["momentum"] = config.momentum
        group["nesterov"] = config.nesterov and config.momentum > 0
        group["weight_decay"] = config.weight_decay


def safe_lr(config, records: list[dict], resume_epoch: int, chance_loss: float) -> float:
    """A learning rate to resume a diverged run with, from what its schedule showed safe.

    An epoch is healthy when its training loss is finite and at most twice that of guessing
    (`chance_loss`, the task's: ln classes for classification). The largest rate a healthy
    epoch started at was safe; the suggestion is the base rate whose cosine schedule, from the
    epoch the run resumes after, starts at that rate, at most half the rate that diverged. With
    no healthy epoch: the presets' rate, or a tenth of the run's when that is lower.
    """
    limit = 2 * chance_loss
    safe = [
        r["lr"]
        for r in records
        if r.get("event") == "epoch"
        and isinstance(r.get("train_loss"), (int, float))
        and isinstance(r.get("lr"), (int, float))
        and math.isfinite(r["train_loss"])
        and r["train_loss"] <= limit
    ]
    if not safe:
        return min(SAFE_DEFAULT_LR, config.lr / 10)
    shape = 0.5 * (1 + math.cos(math.pi * min(resume_epoch, config.epochs) / config.epochs))
    base = config.lr_min + (max(safe) - config.lr_min) / max(shape, 1e-3)
    return max(min(base, config.lr / 2), config.lr_min, 1e-6)
