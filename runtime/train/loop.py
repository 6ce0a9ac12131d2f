"""The training loop: train one fixed network with an evaluation protocol, evaluate, log and
checkpoint every epoch, and resume from the last good checkpoint (`Searcher`'s counterpart)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from nasc.compiler import CompileOptions, Supernet, compile_space
from nasc.dsl import NascUsageError, SpaceIR
from nasc.runtime.runs.checkpoint import (
    CorruptCheckpoint,
    nonfinite,
    save_checkpoint,
    write_atomic,
)
from nasc.runtime.runs.events import RunEvents
from nasc.runtime.runs.faults import die_at, poison, wait_for_signal
from nasc.runtime.runs.records import (
    DIVERGED_LOSS,
    Diverged,
    NonFiniteLoss,
    RunRecords,
    apply_sgd_settings,
    cosine_lr,
    epoch_seed,
    safe_lr,
)
from nasc.runtime.runs.resume import (
    STATE_KINDS,
    check_fits_net,
    check_kinds,
    check_partial,
    check_settings,
    resume_state,
)
from nasc.runtime.runs.rundir import RunDir
from nasc.runtime.tasks import Task, TaskLoss, get_task
from nasc.runtime.tasks.base import add_sums, read_sums, zero_sums
from nasc.runtime.train.config import TrainConfig

# Settings a training resume may change explicitly (`--resume RUN --lr X`), recorded in
# config.json and the metrics; any other change is refused, naming it.
TRAIN_RESUME_OVERRIDES = (
    "lr",
    "lr_min",
    "momentum",
    "nesterov",
    "weight_decay",
    "grad_clip",
    # How the same computation runs, as `device` does: a resume on a GPU may compile it.
    "device",
    "amp",
    "channels_last",
    "compile",
)


class Trainer(RunRecords):
    """Trains one fixed network; the evaluation-protocol counterpart of `Searcher`.

    Args:
        run: the run directory to log and checkpoint into (None: nothing is written).
        events: progress callbacks (see `runs.events.RunEvents`; None: none).
        fingerprint: identifies the architecture and settings; another's checkpoint is refused.
        task: what the data is and how the network's output is scored (None: image
            classification).
        resume_overrides: the settings an explicit resume override changed.
        checkpoint_seconds: also checkpoint inside epochs this often (None: at epoch ends only).
    """

    command = "nasc train"

    def __init__(
        self,
        space: SpaceIR,
        defines: Mapping[str, int],
        config: TrainConfig,
        data,
        device: torch.device,
        run: RunDir | None = None,
        events: RunEvents | None = None,
        fingerprint: str = "",
        task: Task | None = None,
        *,
        resume_overrides: Iterable[str] = (),
        checkpoint_seconds: float | None = None,
    ):
        if not space.is_fixed:
            raise NascUsageError(
                f"`{space.name}` still has choices; train a fixed architecture",
                hint="train the arch.nas of a search run, or give --arch",
            )
        self.config, self.device, self.run = config, device, run
        self.events = events if events is not None else RunEvents()
        self.task = task if task is not None else get_task()
        self.data = data
        self.fingerprint = fingerprint
        torch.manual_seed(config.seed)
        self.net: Supernet = compile_space(
            space,
            defines,
            CompileOptions(
                search=False, auxiliary=config.auxiliary_weight > 0, drop_path=config.drop_path > 0
            ),
        ).to(device)
        self.cuda = device.type == "cuda"
        if self.cuda and config.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.model = torch.compile(self.net) if config.compile else self.net
        self.optimizer = torch.optim.SGD(
            self.net.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
        self.train_batches = self.task.batches(
            data, "train", config.batch_size, device, augment=True, drop_last=True,
            cutout=config.cutout,
        )  # fmt: skip
        self.test_batches = self.task.batches(data, "test", config.batch_size, device)
        self._checked = False  # the network's output is checked against the task once
        self.criterion = TaskLoss(self.task, config.label_smoothing)
        self.epoch = 0
        # The best test metric so far (the task's, higher is better unless it says otherwise).
        self.best = -math.inf if self.task.higher_is_better else math.inf
        self.metric_lines = 0
        self.metric_records: list[dict] = []  # kept in checkpoints: metrics.jsonl is rebuilt
        self.seconds = 0.0  # time spent on the epochs checkpointed so far, over every session
        # What checkpoints record of the settings, to refuse a config.json edited behind their
        # back; `overrides`: settings an explicit resume override changed.
        self.settings = {k: v for k, v in config.to_json().items() if k != "device"}
        self.overrides: set[str] = set(resume_overrides)
        self.last_settings: dict | None = None
        self.checkpoint_seconds = checkpoint_seconds
        self.partial: dict | None = None  # progress into the current epoch, from a checkpoint
        self._saved_at = time.perf_counter()

    def _autocast(self):
        enabled = self.cuda and self.config.amp
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled)

    def _prepare(self, images):
        if self.cuda and self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def train_epoch(self) -> dict:
        config, net = self.config, self.net
        net.train()
        net.set_drop_prob(config.drop_path * self.epoch / config.epochs)
        steps = len(self.train_batches)
        partial, self.partial = self.partial, None
        first = int(partial["step"]) if partial else 0
        # The epoch's loss and the task's metric sums so far.
        names = ("total_loss", *self.task.sums)
        sums = {"total_loss": 0.0, **zero_sums(self.task.sums)}
        seen = 0
        before = 0.0  # seconds of this epoch spent before the checkpoint it resumed from
        if partial:
            sums = {name: partial[name] for name in names}
            sums["total_loss"] = float(sums["total_loss"])
            seen, before = int(partial["seen"]), float(partial["seconds"])
        started = self._saved_at = time.perf_counter()
        batches = self.train_batches.epoch(epoch_seed(config.seed, self.epoch, 0), start=first)
        for step, (images, labels) in enumerate(batches, start=first):
            lr = cosine_lr(
                config.lr,
                config.lr_min,
                config.epochs,
                self.epoch + step / steps,
                config.warmup_epochs,
            )
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                output = self.model(self._prepare(images))
                logits, aux = output if isinstance(output, tuple) else (output, None)
                if not self._checked:
                    self.task.check_output(logits, labels)
                    self._checked = True
                loss = self.criterion(logits.float(), labels)
                if aux is not None:
                    loss = loss + config.auxiliary_weight * self.criterion(aux.float(), labels)
            if poison("nan", self.epoch + 1, step + 1):
                loss = loss * float("nan")
            if not torch.isfinite(loss).item():
                raise NonFiniteLoss(
                    f"the training loss is {loss.item()} "
                    f"at epoch {self.epoch + 1}, step {step + 1}",
                    hint=self._lower_lr_hint(),
                )
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            self.optimizer.step()
            sums["total_loss"] += float(loss.detach()) * len(labels)
            batch = self.task.batch_sums(logits.detach(), labels)
            add_sums(sums, {name: value.cpu() for name, value in batch.items()})
            seen += len(labels)
            wait_for_signal(self.epoch + 1, step + 1)
            self._after_step(step + 1, steps, sums, seen, before, started)
            die_at("kill", self.epoch + 1, step + 1)
            if step % 10 == 0:
                self.events.step(step + 1, steps, sums["total_loss"] / seen)
        elapsed = before + time.perf_counter() - started
        metrics = self.task.metrics(read_sums(sums), seen)
        return {
            "train_loss": sums["total_loss"] / max(seen, 1),
            **{f"train_{name}": value for name, value in metrics.items()},
            "images_per_s": seen / elapsed if elapsed > 0 else 0.0,
            "seconds": elapsed,
            "lr": lr,
            "drop_prob": config.drop_path * self.epoch / config.epochs,
        }

    @torch.no_grad()
    def evaluate(self) -> dict:
        return evaluate(self.model, self.test_batches, self.task, self._autocast, self._prepare)

    def run_epochs(self) -> None:
        """Train to the last epoch, checkpointing after each (and, on SIGINT or SIGTERM, inside
        the epoch before stopping: see `runs.signals`)."""
        with self._stops():
            self._epochs()

    def _epochs(self) -> None:
        while self.epoch < self.config.epochs:
            started = time.perf_counter()
            done = int(self.partial["step"]) if self.partial else 0
            steps = len(self.train_batches)
            self.events.start_epoch(self.epoch + 1, self.config.epochs, steps, done)
            record = {"event": "epoch", "epoch": self.epoch + 1}
            record.update(self.train_epoch())
            record.update(self.evaluate())
            self._check_diverged(record)
            self.epoch += 1
            score = record[f"test_{self.task.metric}"]
            improved = score > self.best if self.task.higher_is_better else score < self.best
            self.best = score if improved else self.best
            record[f"best_test_{self.task.metric}"] = self.best
            self._log(record)
            self.seconds += time.perf_counter() - started
            self.save(best=improved)
            self._take_stop()

    def _lower_lr_hint(self) -> str:
        chance = self.task.chance_loss(self.data)
        lower = safe_lr(self.config, self.metric_records, self.epoch, chance)
        if self.epoch == 0:
            return (
                f"no checkpoint yet; start again with a lower learning rate, e.g. --lr {lower:.2g}"
            )
        return (
            f"the last good checkpoint is after epoch {self.epoch}; resume with a lower learning "
            f"rate: --resume {self.run.path if self.run else 'RUN_DIR'} --lr {lower:.2g}"
        )

    def _check_diverged(self, record: dict) -> None:
        """Refuse to checkpoint non-finite weights, buffers or optimizer state, or exploded losses.

        Raises:
            Diverged: naming what is not finite and a learning rate to resume with.
        """
        problems = [
            f"the {key.replace('_', ' ')} is {record[key]:.4g}"
            for key in ("train_loss", "test_loss")
            if isinstance(record.get(key), float)
            and not (math.isfinite(record[key]) and record[key] < DIVERGED_LOSS)
        ]
        bad = nonfinite(self.net.state_dict()) + nonfinite(self.optimizer.state_dict())
        if bad:
            problems.append(f"non-finite values in {', '.join(bad[:3])}")
        if problems:
            raise Diverged(
                f"the run diverged at epoch {record['epoch']}: {'; '.join(problems)}; its state "
                "is not saved",
                hint=self._lower_lr_hint(),
            )

    def state(self) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "best": self.best,
            "metric_lines": self.metric_lines,
            "seconds": self.seconds,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "metrics": list(self.metric_records),
            "settings": self.settings,
        }

    def check_checkpoint(self, path, state: dict) -> None:
        """Refuse a checkpoint that verifies but cannot be resumed here, as a search does.

        Raises:
            NascUsageError: its settings differ from config.json's in one no override explains.
            CorruptCheckpoint: another structure (keys, types, shapes) or non-finite values;
                the previous checkpoint is tried.
        """
        check_kinds(path, state, {**STATE_KINDS, "best": float})
        check_partial(path, state, len(self.train_batches), self.task.sums)
        check_settings(
            path, state, self.settings, self.overrides, TRAIN_RESUME_OVERRIDES, "training run"
        )
        check_fits_net(path, state, self.net, self.config.epochs)

    def save_inside(self, step: int, sums: dict, seen: int, seconds: float, session: float) -> None:
        """A checkpoint inside the current epoch (see `RunRecords._save_partial`); `sums` are
        the epoch's loss and metric sums so far."""
        loss = sums["total_loss"] / max(seen, 1)
        self._check_diverged({"epoch": self.epoch + 1, "train_loss": loss})
        self._save_partial(step, {**sums, "seen": seen}, seconds, session)

    def save(self, best: bool) -> None:
        self._saved_at = time.perf_counter()
        if self.run is None:
            return
        path = save_checkpoint(
            self.run.checkpoints,
            self.epoch,
            self.state(),
            fault=lambda: die_at("checkpoint", self.epoch),
        )
        if best:
            write_atomic(self.run.path / "best.pt", path.read_bytes())

    def restore(self, warn=print) -> bool:
        """Continue from the newest good checkpoint; False when there is none."""
        state = resume_state(self.run, self.fingerprint, None, warn, self.check_checkpoint)
        if state is None:
            return False
        try:
            self.net.load_state_dict(state["net"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            raise CorruptCheckpoint(
                f"{state.get('_path', 'the checkpoint')} does not fit this run: {error}"
            ) from None
        apply_sgd_settings(self.optimizer, self.config)
        self._restore_records(state)
        self.best = float(state["best"])
        return True


def evaluate(model, batches, task: Task, autocast=contextlib.nullcontext, prepare=None) -> dict:
    """Test loss and the task's metrics of a network over a split."""
    was_training = getattr(model, "training", False)
    model.eval()
    sums = zero_sums(task.sums)
    total, seen = 0.0, 0
    with torch.no_grad():
        for images, labels in batches.epoch(None):
            with autocast():
                output = model(prepare(images) if prepare else images)
            logits = (output[0] if isinstance(output, tuple) else output).float()
            total += float(task.loss(logits, labels)) * len(labels)
            add_sums(sums, task.batch_sums(logits, labels))
            seen += len(labels)
    if was_training:
        model.train()
    metrics = task.metrics(read_sums(sums), seen)
    return {
        "test_loss": total / max(seen, 1),
        **{f"test_{name}": value for name, value in metrics.items()},
    }
