"""The search loop: train the supernet's weights, let the strategy change the architecture,
evaluate, log and checkpoint every epoch, and resume from the last good checkpoint."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nasc.compiler import CompileOptions, Supernet, compile_space
from nasc.dsl import NascUsageError, SpaceIR
from nasc.runtime.hardware.distributed import Dist, sum_tensor
from nasc.runtime.runs.checkpoint import CorruptCheckpoint, nonfinite, save_checkpoint
from nasc.runtime.runs.events import RunEvents
from nasc.runtime.runs.faults import die_at, poison, stop_at, wait_for_signal
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
from nasc.runtime.search.config import SearchConfig, frozen_from
from nasc.runtime.strategies import make_strategy
from nasc.runtime.tasks import Task, TaskLoss, get_task
from nasc.runtime.tasks.base import add_sums, read_sums, zero_sums


def search_options(config: SearchConfig) -> CompileOptions:
    """How a search compiles its supernet."""
    return CompileOptions(
        search=True,
        track_running_stats=config.track_running_stats,
        partial_channels=config.partial_channels,
        edge_normalisation=config.edge_normalisation,
        channels_last=config.channels_last,
        cuda_compile=None if config.cuda_compile == "none" else config.cuda_compile,
    )


class Searcher(RunRecords):
    """One search: the supernet, its strategy and optimizer, data, and where it logs.

    Args:
        space: the linted space; `overrides` are its -D values (the data's shape included).
        run: the run directory to log and checkpoint into (None: nothing is written).
        events: progress callbacks (see `runs.events.RunEvents`; None: none).
        fingerprint: identifies the space and settings; a checkpoint of another is refused.
        task: what the data is and how the network's output is scored (None: image
            classification).
        settings: what changes the result, recorded in checkpoints and checked on resume.
        resume_overrides: the settings a resume may change (given explicitly, or recorded in
            config.json).
        checkpoint_seconds: inside an epoch, write a checkpoint when this many seconds have
            passed since the last one (None: at epoch ends only). Not under torchrun, where
            ranks would have to agree.
    """

    def __init__(
        self,
        space: SpaceIR,
        overrides: Mapping[str, int],
        config: SearchConfig,
        data,
        device: torch.device,
        run=None,
        events: RunEvents | None = None,
        fingerprint: str = "",
        dist: Dist | None = None,
        task: Task | None = None,
        *,
        settings: dict | None = None,
        resume_overrides: Iterable[str] = (),
        checkpoint_seconds: float | None = None,
    ):
        self.space = space
        self.task = task if task is not None else get_task()
        self.config = config
        self.device = device
        self.run = run
        self.events = events if events is not None else RunEvents()
        self.fingerprint = fingerprint
        self.dist = dist
        torch.manual_seed(config.seed)
        self.net: Supernet = compile_space(
            space,
            overrides,
            search_options(config),
            seed=config.seed,
        ).to(device)
        self.cuda = device.type == "cuda"
        if self.cuda and self.net.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.strategy = make_strategy(config.strategy, config)
        self.strategy.setup(self.net)
        # Weight steps run through DDP under torchrun; masked-out candidates leave parameters
        # without gradients, hence find_unused_parameters.
        self.model = self.net
        if dist is not None:
            self.model = DistributedDataParallel(
                self.net,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        self.criterion = TaskLoss(self.task)  # what strategies' architecture steps minimise too
        self.optimizer = torch.optim.SGD(
            self.net.weights(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
        self.data = data
        count = self.task.examples(data, "train")
        split = torch.randperm(count, generator=torch.Generator().manual_seed(config.seed))
        if self.strategy.bilevel:
            cut = max(1, min(count - 1, int(count * config.train_portion)))
            weight_part, arch_part = split[:cut], split[cut:]
        else:
            weight_part, arch_part = split, None
        batch = config.batch_size
        self.shard = (dist.rank, dist.world) if dist is not None else (0, 1)
        training = dict(augment=True, drop_last=True, shard=self.shard)
        self.train_batches = self.task.batches(
            data, "train", batch, device, indices=weight_part, **training
        )
        self.arch_batches = None
        if arch_part is not None:
            self.arch_batches = self.task.batches(
                data, "train", batch, device, indices=arch_part, **training
            )
        # The single-stage protocol's last epochs train the weights on every training image.
        self.frozen_from = frozen_from(config)
        self.all_batches = self.train_batches
        if self.frozen_from < config.epochs and arch_part is not None:
            self.all_batches = self.task.batches(
                data, "train", batch, device, indices=split, **training
            )
        self.test_batches = self.task.batches(data, "test", batch, device, shard=self.shard)
        self._checked = False  # the network's output is checked against the task once
        self._reference_batches = None  # built on the first `reference` measurement
        self.epoch = 0
        self.current_lr = config.lr
        self.metric_lines = 0
        self.metric_records: list[dict] = []  # kept in checkpoints: metrics.jsonl is rebuilt
        self.settings = settings
        self.overrides: set[str] = set(resume_overrides)
        self.last_settings: dict | None = None  # those of the checkpoint resumed from
        self.seconds = 0.0  # time spent on the epochs checkpointed so far, over every session
        self.checkpoint_seconds = checkpoint_seconds
        self.partial: dict | None = None  # progress into the current epoch, from a checkpoint
        self._saved_at = time.perf_counter()

    def autocast(self):
        """bfloat16 autocast on CUDA with `amp` (the weight steps and the evaluation; IS-DARTS
        measures in float32), else nothing."""
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda and self.config.amp)

    # --- hooks for strategies --------------------------------------------------------------------

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        output = self.net(images)
        return output[0] if isinstance(output, tuple) else output

    def measurement_batches(self, step: int):
        """The images IS-DARTS measures its information on at shrink step `step`, by protocol.

        `reference`: every training image, augmented as for training, in dataset order (the
        reference code reads its unshuffled training loader). `paper`: `measure_samples` images
        of the held-out split, not augmented. `train-sample`: `measure_samples` training images,
        not augmented. Samples are drawn, and augmentations made, anew for each step from the seed.

        Returns:
            (the number of images, an iterator over their batches).
        """
        config, data = self.config, self.data
        seed = epoch_seed(config.seed, step, 7)
        if config.measure_on == "reference":
            # The whole training split, moved to the device once for every step.
            if self._reference_batches is None:
                self._reference_batches = self.task.batches(
                    data, "train", config.batch_size, self.device, augment=True, shard=self.shard
                )
            count = self.task.examples(data, "train")
            return count, self._reference_batches.epoch(seed, shuffle=False)
        split = "test" if config.measure_on == "paper" else "train"
        pool = self.task.examples(data, split)
        chosen = torch.randperm(pool, generator=torch.Generator().manual_seed(seed))
        chosen = chosen[: config.measure_samples]
        batches = self.task.batches(
            data, split, config.batch_size, self.device, indices=chosen, shard=self.shard
        )
        return len(chosen), batches.epoch(None)

    # --- the loop ---------------------------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        """Whether this epoch's architecture is frozen (the single-stage protocol's last
        epochs): no architecture steps, and the weights learn from every training image."""
        return self.epoch >= self.frozen_from

    def epoch_batches(self, epoch: int | None = None):
        """The batches the weights and the architecture learn from in `epoch` (0-based; this
        one by default); the architecture's are None when it takes no steps."""
        epoch = self.epoch if epoch is None else epoch
        if epoch >= self.frozen_from:
            return self.all_batches, None
        if self.config.arch_split == "swap" and self.arch_batches is not None and epoch % 2:
            return self.arch_batches, self.train_batches
        return self.train_batches, self.arch_batches

    def freeze(self, frozen: bool) -> None:
        """Stop (or restart) the architecture's learning: its parameters take no gradients, and
        a sampling strategy fixes the weights it draws at their expectation."""
        for parameter in self.net.arch.parameters():
            parameter.requires_grad_(not frozen)
        if frozen:
            self.strategy.before_evaluate(self)

    def train_epoch(self) -> dict:
        """Train one epoch (or its rest, after a checkpoint taken inside it)."""
        net, config = self.net, self.config
        net.train()
        weight_source, self.arch_source = self.epoch_batches()
        self.freeze(self.frozen)
        steps = len(weight_source)
        partial, self.partial = self.partial, None
        first = int(partial["step"]) if partial else 0
        batches = weight_source.epoch(epoch_seed(config.seed, self.epoch, 0), start=first)
        arch_batches = (
            self.arch_source.epoch(epoch_seed(config.seed, self.epoch, 1))
            if self.arch_source is not None
            else None
        )
        # The architecture batches the skipped steps took (IS-DARTS, single-level strategies
        # and frozen epochs take none).
        for _ in range(first if arch_batches is not None else 0):
            arch_batches = self._next_arch_batch(arch_batches)[0]
        # The epoch's loss and the task's metric sums, added up on the device.
        names = ("total_loss", *self.task.sums)
        sums = {"total_loss": torch.zeros((), device=self.device), **zero_sums(self.task.sums)}
        seen = 0
        before = 0.0  # seconds of this epoch spent before the checkpoint it resumed from
        if partial:
            sums = {name: partial[name].to(self.device) for name in names}
            seen, before = int(partial["seen"]), float(partial["seconds"])
        started = time.perf_counter()
        self._saved_at = started
        for step, (images, labels) in enumerate(batches, start=first):
            self.current_lr = cosine_lr(
                config.lr, config.lr_min, config.epochs, self.epoch + step / steps
            )
            for group in self.optimizer.param_groups:
                group["lr"] = self.current_lr
            if arch_batches is not None:
                arch_batches, arch_batch = self._next_arch_batch(arch_batches)
                self.strategy.arch_step(self, (images, labels), arch_batch)
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                output = self.model(images)
                logits = output[0] if isinstance(output, tuple) else output
                if not self._checked:
                    self.task.check_output(logits, labels)
                    self._checked = True
                loss = self.criterion(logits, labels)
            if poison("nan", self.epoch + 1, step + 1):
                loss = loss * float("nan")
            if not self._finite(loss):
                raise NonFiniteLoss(
                    f"the training loss is {loss.item()} "
                    f"at epoch {self.epoch + 1}, step {step + 1}",
                    hint=self._nan_hint(),
                )
            loss.backward()
            if not self.frozen:
                self.strategy.after_backward(self)
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.net.weights(), config.grad_clip)
            self.optimizer.step()
            sums["total_loss"] += loss.detach() * len(labels)
            add_sums(sums, self.task.batch_sums(logits.detach(), labels))
            seen += len(labels)
            wait_for_signal(self.epoch + 1, step + 1)
            self._after_step(step + 1, steps, sums, seen, before, started)
            die_at("kill", self.epoch + 1, step + 1)
            stop_at("stop", self.epoch + 1, step + 1)
            self.events.step(
                step + 1, steps, float(sums["total_loss"]) / seen if step % 10 == 0 else None
            )
        elapsed = before + time.perf_counter() - started
        count = torch.tensor(float(seen), device=self.device)
        seen_everywhere = float(sum_tensor(count, self.dist))
        summed = self._over_ranks(sums)
        metrics = self.task.metrics(summed, seen_everywhere)
        return {
            "train_loss": summed["total_loss"] / max(seen_everywhere, 1),
            **{f"train_{name}": value for name, value in metrics.items()},
            "images_per_s": seen_everywhere / elapsed if elapsed > 0 else 0.0,
            "seconds": elapsed,
        }

    def _over_ranks(self, sums: dict) -> dict:
        """Each running sum (of any shape and dtype) summed over ranks, as `Task.metrics`
        reads it (`read_sums`)."""
        return read_sums(
            {
                name: sum_tensor(torch.as_tensor(value, device=self.device), self.dist)
                for name, value in sums.items()
            }
        )

    def _next_arch_batch(self, arch_batches):
        """The next batch of the architecture half; it may be a batch shorter than the weights'
        half, and then starts again in another order."""
        arch_batch = next(arch_batches, None)
        if arch_batch is None:
            seed = epoch_seed(self.config.seed, self.epoch, 2)
            arch_batches = self.arch_source.epoch(seed)
            arch_batch = next(arch_batches)
        return arch_batches, arch_batch

    def save_inside(self, step: int, sums: dict, seen: int, seconds: float, session: float) -> None:
        """A checkpoint inside the current epoch (see `RunRecords._save_partial`); `sums` are
        the epoch's loss and metric sums so far."""
        self.check_diverged(everywhere=False)  # never only under torchrun: see _checkpoint_due
        kept = {name: value.detach().cpu() for name, value in sums.items()}
        self._save_partial(step, {**kept, "seen": seen}, seconds, session)

    def _finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank (all stop together when one is not)."""
        bad = (~torch.isfinite(loss.detach())).float().reshape(1)
        return not bool(sum_tensor(bad, self.dist).item())

    def _nan_hint(self) -> str:
        where = "no checkpoint yet"
        resume_epoch = 0
        if self.run is not None and (last := sorted(self.run.checkpoints.glob("ckpt-*.pt"))):
            where = f"the last good checkpoint is {last[-1]}"
            digits = last[-1].name[5:10]
            resume_epoch = int(digits) if digits.isdigit() else 0
        chance = self.task.chance_loss(self.data)
        lower = safe_lr(self.config, self.metric_records, resume_epoch, chance)
        run = str(self.run.path) if self.run is not None else "RUN_DIR"
        if resume_epoch == 0:
            return (
                f"{where}; start again with a lower learning rate, e.g. --lr {lower:.2g} "
                f"(or --resume {run} --lr {lower:.2g})"
            )
        return (
            f"{where}; resume from it with a lower learning rate, e.g. "
            f"--resume {run} --lr {lower:.2g}"
        )

    def check_diverged(self, record: dict | None = None, everywhere: bool = True) -> None:
        """Refuse to go on (shrink, checkpoint) from a diverged state; with `everywhere`, every
        rank must call it (they agree by a sum over ranks), else it checks this rank alone.

        Raises:
            Diverged: a non-finite weight, buffer or optimizer value, or an epoch's training or
                test loss that is not finite or exploded past `DIVERGED_LOSS`.
        """
        problems = []
        for key in ("train_loss", "test_loss"):
            value = (record or {}).get(key)
            if isinstance(value, float) and not (math.isfinite(value) and value < DIVERGED_LOSS):
                problems.append(f"the {key.replace('_', ' ')} is {value:.4g}")
        bad = nonfinite(self.net.state_dict()) + nonfinite(self.optimizer.state_dict())
        bad_flags = sum_tensor(
            torch.tensor([float(bool(bad)), float(bool(problems))], device=self.device),
            self.dist if everywhere else None,
        ).tolist()
        if bad:
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            problems.append(f"non-finite values in {shown}")
        elif bad_flags[0] > 0:
            problems.append("non-finite values on another rank")
        if not problems and bad_flags[1] > 0:
            problems.append("a loss exploded on another rank")
        if problems:
            epoch = (record or {}).get("epoch", self.epoch)
            raise Diverged(
                f"the run diverged at epoch {epoch}: {'; '.join(problems)}; its state is not saved",
                hint=self._nan_hint(),
            )

    def check_checkpoint(self, path, state: dict) -> None:
        """Refuse a checkpoint that verifies but cannot be resumed here.

        Raises:
            NascUsageError: it belongs to another run, or its settings differ from this run's
                in a setting that no override explains (named).
            CorruptCheckpoint: another structure (keys, types, shapes) or non-finite values;
                the previous checkpoint is tried.
        """
        check_kinds(path, state, {**STATE_KINDS, "strategy": dict})
        steps = len(self.epoch_batches(int(state.get("epoch", 0)))[0])
        check_partial(path, state, steps, self.task.sums)
        check_settings(path, state, self.settings, self.overrides, RESUME_OVERRIDES, "search")
        if state["fingerprint"] != self.fingerprint:
            raise NascUsageError(
                f"{path} was written by another run (another space, -D values, strategy, data, "
                "seed or number of epochs)",
                hint="resume with the run directory's own settings, or start anew",
            )
        check_fits_net(path, state, self.net, self.config.epochs)
        order = getattr(self.data, "order", None)  # what the task's `mix` recorded, if anything
        if state.get("data_order", order) != order:
            raise NascUsageError(
                f"{path} was written with the data in the order {state['data_order']}, not "
                f"{order}: the images changed since",
                hint="resume with the data the search started with, or start anew",
            )

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Loss and the task's metrics of the supernet on the test split."""
        self.net.eval()
        # The loss sum and the count, and the task's sums, summed over ranks.
        totals = torch.zeros(2, device=self.device)
        sums = zero_sums(self.task.sums)
        for images, labels in self.test_batches.epoch(None):
            with self.autocast():
                logits = self.logits(images).float()
            totals[0] += self.criterion(logits, labels) * len(labels)
            add_sums(sums, self.task.batch_sums(logits, labels))
            totals[1] += len(labels)
        self.net.train()
        loss, seen = sum_tensor(totals, self.dist).tolist()
        metrics = self.task.metrics(self._over_ranks(sums), seen)
        return {
            "test_loss": loss / max(seen, 1),
            **{f"test_{name}": value for name, value in metrics.items()},
        }

    def run_epochs(self) -> None:
        """Train from the current epoch to the last, checkpointing after each (and, on SIGINT or
        SIGTERM, inside the epoch before stopping: see `runs.signals`)."""
        with self._stops():
            while self.epoch < self.config.epochs:
                self.run_one_epoch()
                self._take_stop()

    def run_one_epoch(self) -> None:
        """Train one epoch, evaluate, let the strategy act, log, and checkpoint."""
        started = time.perf_counter()
        done = int(self.partial["step"]) if self.partial else 0
        steps = len(self.epoch_batches()[0])
        self.events.start_epoch(self.epoch + 1, self.config.epochs, steps, done)
        record = {
            "event": "epoch",
            "epoch": self.epoch + 1,
            "lr": cosine_lr(self.config.lr, self.config.lr_min, self.config.epochs, self.epoch),
        }
        if self.frozen:
            record["frozen"] = True
        record.update(self.train_epoch())
        self.strategy.before_evaluate(self)
        if poison("inf", self.epoch + 1):  # a BN's running variance overflows, the loss does not
            buffers = self.net.named_buffers()
            next(b for n, b in buffers if n.endswith("running_var")).fill_(math.inf)
        record.update(self.evaluate())
        record["live"] = self.net.arch.live_count()
        self.check_diverged(record)
        self.epoch += 1
        records = [record] + self.strategy.end_of_epoch(self, self.epoch)
        for item in records:
            self._log(item)
        if self.run is not None and self.run.scalars is not None:
            self.run.scalars.add(self.strategy.scalars(self.net, self.epoch), self.epoch)
        die_at("metrics", self.epoch)
        self.seconds += time.perf_counter() - started
        self.save()
        self._saved_at = time.perf_counter()

    # --- checkpoints ------------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "metric_lines": self.metric_lines,
            "seconds": self.seconds,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "strategy": self.strategy.state_dict(),
            "rng": torch.get_rng_state(),
            "metrics": list(self.metric_records),
            "settings": self.settings,
            "data_order": getattr(self.data, "order", None),  # the task's `mix`; checked on resume
        }

    def save(self) -> None:
        if self.run is not None:
            self.check_diverged(everywhere=False)  # rank 0 alone saves
            save_checkpoint(
                self.run.checkpoints,
                self.epoch,
                self.state(),
                fault=lambda: die_at("checkpoint", self.epoch),
            )

    def restore(self, warn=print) -> bool:
        """Continue from the run directory's newest good checkpoint; False when there is none.

        Raises:
            NascUsageError: the checkpoint belongs to a different space or settings.
        """
        state = resume_state(self.run, self.fingerprint, self.dist, warn, self.check_checkpoint)
        if state is None:
            return False
        try:
            self.net.load_state_dict(state["net"])
            self.optimizer.load_state_dict(state["optimizer"])
            apply_sgd_settings(self.optimizer, self.config)
            self.strategy.load_state_dict(state["strategy"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            raise CorruptCheckpoint(
                f"{state.get('_path', 'the checkpoint')} does not fit this run: {error}"
            ) from None
        self._restore_records(state)
        return True


# Settings a resume may change, explicitly (`--resume RUN --lr X`), and records in config.json.
RESUME_OVERRIDES = (
    "lr",
    "lr_min",
    "momentum",
    "nesterov",
    "weight_decay",
    "grad_clip",
    "arch_lr",
    "arch_beta1",
    "arch_beta2",
    "arch_weight_decay",
    "device",
    "amp",
    "channels_last",
    "cuda_compile",
)
