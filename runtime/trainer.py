"""The search loop: train the supernet's weights, let the strategy change the architecture,
evaluate, log and checkpoint every epoch, and resume from the last good checkpoint."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nasc.compiler import CompileOptions, Supernet, compile_space
from nasc.dsl import NascError, NascUsageError, SpaceIR

from .checkpoint import load_latest, save_checkpoint
from .config import SearchConfig
from .data import Batches, ImageData
from .distributed import Dist, broadcast, sum_tensor
from .faults import die_at, poison
from .strategies import make_strategy


class NonFiniteLoss(NascError):
    """The training loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from nasc.dsl import NascUsageError

        raise NascUsageError("--device cuda: no CUDA device is available", hint="use --device cpu")
    return torch.device(name)


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


class Searcher:
    """One search: the supernet, its strategy and optimizer, data, and where it logs.

    Args:
        space: the linted space; `overrides` are its -D values (the data's shape included).
        run: the run directory to log and checkpoint into (None: nothing is written).
        display: progress output (see `progress.Display`).
        fingerprint: identifies the space and settings; a checkpoint of another is refused.
    """

    def __init__(
        self,
        space: SpaceIR,
        overrides: Mapping[str, int],
        config: SearchConfig,
        data: ImageData,
        device: torch.device,
        run=None,
        display=None,
        fingerprint: str = "",
        dist: Dist | None = None,
    ):
        self.space = space
        self.config = config
        self.device = device
        self.run = run
        self.display = display
        self.fingerprint = fingerprint
        self.dist = dist
        torch.manual_seed(config.seed)
        self.net: Supernet = compile_space(
            space,
            overrides,
            CompileOptions(search=True, track_running_stats=config.track_running_stats),
            seed=config.seed,
        ).to(device)
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
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(
            self.net.weights(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
        self.data = data
        count = len(data.train_labels)
        split = torch.randperm(count, generator=torch.Generator().manual_seed(config.seed))
        if self.strategy.bilevel:
            cut = max(1, min(count - 1, int(count * config.train_portion)))
            weight_part, arch_part = split[:cut], split[cut:]
        else:
            weight_part, arch_part = split, None
        batch = config.batch_size
        self.shard = (dist.rank, dist.world) if dist is not None else (0, 1)
        self.train_batches = Batches(
            data,
            data.train_images[weight_part],
            data.train_labels[weight_part],
            batch,
            device,
            True,
            True,
            shard=self.shard,
        )
        self.arch_batches = None
        if arch_part is not None:
            self.arch_batches = Batches(
                data,
                data.train_images[arch_part],
                data.train_labels[arch_part],
                batch,
                device,
                True,
                True,
                shard=self.shard,
            )
        self.test_batches = Batches(
            data, data.test_images, data.test_labels, batch, device, False, False, shard=self.shard
        )
        self.epoch = 0
        self.current_lr = config.lr
        self.metric_lines = 0
        self.seconds = 0.0  # time spent on the epochs checkpointed so far, over every session
        # Inside an epoch, a checkpoint is written when this many seconds have passed since the
        # last one (None: at epoch ends only). Not under torchrun, where ranks would have to agree.
        self.checkpoint_seconds: float | None = None
        self.partial: dict | None = None  # progress into the current epoch, from a checkpoint
        self._saved_at = time.perf_counter()

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
            images, labels, augment = data.train_images, data.train_labels, True
        else:
            held_out = config.measure_on == "paper"
            pool = data.test_labels if held_out else data.train_labels
            chosen = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
            chosen = chosen[: config.measure_samples]
            images = (data.test_images if held_out else data.train_images)[chosen]
            labels, augment = pool[chosen], False
        batches = Batches(
            data, images, labels, config.batch_size, self.device, augment, False, shard=self.shard
        )
        return len(labels), batches.epoch(seed if augment else None, shuffle=False)

    # --- the loop ---------------------------------------------------------------------------------

    def train_epoch(self) -> dict:
        """Train one epoch (or its rest, after a checkpoint taken inside it)."""
        net, config = self.net, self.config
        net.train()
        steps = len(self.train_batches)
        partial, self.partial = self.partial, None
        first = int(partial["step"]) if partial else 0
        batches = self.train_batches.epoch(epoch_seed(config.seed, self.epoch, 0), start=first)
        arch_batches = (
            self.arch_batches.epoch(epoch_seed(config.seed, self.epoch, 1))
            if self.arch_batches is not None
            else None
        )
        for _ in range(first):  # the architecture batches the skipped steps took
            arch_batches = self._next_arch_batch(arch_batches)[0]
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = 0
        before = 0.0  # seconds of this epoch spent before the checkpoint it resumed from
        if partial:
            total_loss = partial["total_loss"].to(self.device)
            correct = partial["correct"].to(self.device)
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
            output = self.model(images)
            logits = output[0] if isinstance(output, tuple) else output
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
            self.strategy.after_backward(self)
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.net.weights(), config.grad_clip)
            self.optimizer.step()
            total_loss += loss.detach() * len(labels)
            correct += (logits.argmax(1) == labels).sum()
            seen += len(labels)
            if self._checkpoint_due() and step + 1 < steps:
                session = time.perf_counter() - started
                self.save_inside(step + 1, total_loss, correct, seen, before + session, session)
            die_at("kill", self.epoch + 1, step + 1)
            if self.display is not None:
                self.display.step(
                    step + 1, steps, float(total_loss) / seen if step % 10 == 0 else None
                )
        elapsed = before + time.perf_counter() - started
        totals = sum_tensor(
            torch.stack(
                [total_loss.float(), correct.float(), torch.tensor(float(seen)).to(self.device)]
            ),
            self.dist,
        ).tolist()
        return {
            "train_loss": totals[0] / max(totals[2], 1),
            "train_acc": 100.0 * totals[1] / max(totals[2], 1),
            "images_per_s": totals[2] / elapsed if elapsed > 0 else 0.0,
            "seconds": elapsed,
        }

    def _next_arch_batch(self, arch_batches):
        """The next batch of the architecture half; it may be a batch shorter than the weights'
        half, and then starts again in another order."""
        arch_batch = next(arch_batches, None)
        if arch_batch is None:
            seed = epoch_seed(self.config.seed, self.epoch, 2)
            arch_batches = self.arch_batches.epoch(seed)
            arch_batch = next(arch_batches)
        return arch_batches, arch_batch

    def _checkpoint_due(self) -> bool:
        return (
            self.run is not None
            and self.dist is None
            and self.checkpoint_seconds is not None
            and time.perf_counter() - self._saved_at >= self.checkpoint_seconds
        )

    def save_inside(
        self, step: int, total_loss, correct, seen: int, seconds: float, session: float
    ) -> None:
        """A checkpoint `step` training steps into the current epoch, with what the epoch has
        summed so far, so a resumed run finishes the epoch exactly as it would have.

        Args:
            seconds: the epoch's training time so far; `session`: the part of it since this
                process started the epoch (what `self.seconds` has not counted yet).
        """
        state = self.state()
        state["seconds"] = self.seconds + session
        state["partial"] = {
            "step": step,
            "total_loss": total_loss.detach().cpu(),
            "correct": correct.detach().cpu(),
            "seen": seen,
            "seconds": seconds,
        }
        save_checkpoint(self.run.checkpoints, self.epoch, state, step=step)
        self._saved_at = time.perf_counter()

    def _finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank (all stop together when one is not)."""
        bad = (~torch.isfinite(loss.detach())).float().reshape(1)
        return not bool(sum_tensor(bad, self.dist).item())

    def _nan_hint(self) -> str:
        where = "no checkpoint yet"
        if self.run is not None and (last := sorted(self.run.checkpoints.glob("ckpt-*.pt"))):
            where = f"the last good checkpoint is {last[-1]}"
        lower = self.config.lr / 4
        return f"{where}; resume with a lower learning rate, e.g. --resume RUN_DIR --lr {lower:g}"

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Loss and top-1 accuracy of the supernet on the test split."""
        self.net.eval()
        totals = torch.zeros(3, device=self.device)  # loss sum, correct, seen; summed over ranks
        for images, labels in self.test_batches.epoch(None):
            logits = self.logits(images)
            totals[0] += self.criterion(logits, labels) * len(labels)
            totals[1] += (logits.argmax(1) == labels).sum()
            totals[2] += len(labels)
        self.net.train()
        loss, correct, seen = sum_tensor(totals, self.dist).tolist()
        return {"test_loss": loss / max(seen, 1), "test_acc": 100.0 * correct / max(seen, 1)}

    def run_epochs(self) -> None:
        """Train from the current epoch to the last, checkpointing after each."""
        while self.epoch < self.config.epochs:
            self.run_one_epoch()

    def run_one_epoch(self) -> None:
        """Train one epoch, evaluate, let the strategy act, log, and checkpoint."""
        started = time.perf_counter()
        if self.display is not None:
            done = int(self.partial["step"]) if self.partial else 0
            self.display.start_epoch(
                self.epoch + 1, self.config.epochs, len(self.train_batches), done
            )
        record = {
            "event": "epoch",
            "epoch": self.epoch + 1,
            "lr": cosine_lr(self.config.lr, self.config.lr_min, self.config.epochs, self.epoch),
        }
        record.update(self.train_epoch())
        record.update(self.evaluate())
        record["live"] = self.net.arch.live_count()
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

    def _log(self, record: dict) -> None:
        if self.run is not None:
            self.run.log_metrics(record)
        self.metric_lines += 1
        if self.display is not None:
            self.display.record(record)

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
        }

    def save(self) -> None:
        if self.run is not None:
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
        state = resume_state(self.run, self.fingerprint, self.dist, warn)
        if state is None:
            return False
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.strategy.load_state_dict(state["strategy"])
        torch.set_rng_state(state["rng"].cpu())
        self.epoch = int(state["epoch"])
        self.metric_lines = int(state["metric_lines"])
        self.seconds = float(state.get("seconds", 0.0))
        self.partial = state.get("partial")
        return True


def resume_state(run, fingerprint: str, dist: Dist | None, warn=print) -> dict | None:
    """The newest good checkpoint's state for a resumed run, or None when there is none.

    Rank 0 (the process holding the run directory) reads it and hands it to the other ranks.
    The run's metrics are cut back to the lines that checkpoint had seen.

    Raises:
        NascUsageError: the checkpoint was written for another space or other settings.
    """
    found = None
    if run is not None:
        found = load_latest(run.checkpoints, warn=warn, map_location="cpu")
    found = broadcast(found, dist)
    if found is None:
        if run is not None:  # lines of a first epoch that never reached a checkpoint
            run.truncate_metrics(0)
        return None
    path, state = found
    if state.get("fingerprint") != fingerprint:
        raise NascUsageError(
            f"{path} was written by another run (another space, -D values, strategy, data or seed)",
            hint="resume with the run directory's own settings, or start anew",
        )
    if run is not None:
        run.truncate_metrics(int(state["metric_lines"]))
    return state
