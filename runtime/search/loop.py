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
from nasc.runtime.data.images import Batches, ImageData
from nasc.runtime.hardware.distributed import Dist, broadcast, sum_tensor
from nasc.runtime.runs.checkpoint import CorruptCheckpoint, load_latest, nonfinite, save_checkpoint
from nasc.runtime.runs.faults import die_at, poison, stop_at
from nasc.runtime.search.config import SearchConfig
from nasc.runtime.strategies import make_strategy


class NonFiniteLoss(NascError):
    """The training loss became NaN or infinite."""


class Diverged(NonFiniteLoss):
    """The weights, buffers (BN running statistics) or losses are no longer finite, or a loss
    exploded past `DIVERGED_LOSS`: the run diverged, and its state is not saved."""


# A mean cross-entropy above this means logits a million apart: no healthy run gets there.
DIVERGED_LOSS = 1e6
SAFE_DEFAULT_LR = 0.025  # the presets' learning rate, suggested when the run shows none safe


def search_options(config: SearchConfig) -> CompileOptions:
    """How a search compiles its supernet."""
    return CompileOptions(
        search=True,
        track_running_stats=config.track_running_stats,
        partial_channels=config.partial_channels,
        edge_normalisation=config.edge_normalisation,
    )


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


class RunRecords:
    """What a search (`Searcher`) and a training run (`train.Trainer`) share: logging a metrics
    record, and checkpoints taken inside long epochs. The class sets `run`, `display`,
    `metric_lines`, `metric_records`, `epoch`, `seconds`, `checkpoint_seconds` and `_saved_at`,
    and defines `state()`; `dist` (torchrun) turns checkpoints inside epochs off."""

    dist = None

    def _log(self, record: dict) -> None:
        if self.run is not None:
            self.run.log_metrics(record)
        self.metric_lines += 1
        self.metric_records.append(record)
        if self.display is not None:
            self.display.record(record)

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


class Searcher(RunRecords):
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
            search_options(config),
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
        self._reference_batches = None  # built on the first `reference` measurement
        self.epoch = 0
        self.current_lr = config.lr
        self.metric_lines = 0
        self.metric_records: list[dict] = []  # kept in checkpoints: metrics.jsonl is rebuilt
        # What changes the result, recorded in checkpoints and checked on resume; `overrides`
        # are the settings a resume may change (given explicitly, or recorded in config.json).
        self.settings: dict | None = None
        self.overrides: set[str] = set()
        self.last_settings: dict | None = None  # those of the checkpoint resumed from
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
            # The whole training split, moved to the device once for every step.
            if self._reference_batches is None:
                self._reference_batches = Batches(
                    data,
                    data.train_images,
                    data.train_labels,
                    config.batch_size,
                    self.device,
                    True,
                    False,
                    shard=self.shard,
                )
            batches = self._reference_batches
            return len(batches.labels), batches.epoch(seed, shuffle=False)
        held_out = config.measure_on == "paper"
        pool = data.test_labels if held_out else data.train_labels
        chosen = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
        chosen = chosen[: config.measure_samples]
        images = (data.test_images if held_out else data.train_images)[chosen]
        batches = Batches(
            data,
            images,
            pool[chosen],
            config.batch_size,
            self.device,
            False,
            False,
            shard=self.shard,
        )
        return len(chosen), batches.epoch(None)

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
        # The architecture batches the skipped steps took (IS-DARTS and single-level strategies
        # take none).
        for _ in range(first if arch_batches is not None else 0):
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
            stop_at("stop", self.epoch + 1, step + 1)
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

    def save_inside(
        self, step: int, total_loss, correct, seen: int, seconds: float, session: float
    ) -> None:
        """A checkpoint inside the current epoch (see `RunRecords._save_partial`)."""
        self.check_diverged(everywhere=False)  # never only under torchrun: see _checkpoint_due
        sums = {"total_loss": total_loss.detach().cpu(), "correct": correct.detach().cpu()}
        self._save_partial(step, {**sums, "seen": seen}, seconds, session)

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
        lower = safe_lr(self.config, self.metric_records, resume_epoch, self.data.num_classes)
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
        from nasc.dsl import NascUsageError

        check_kinds(path, state, {**STATE_KINDS, "strategy": dict})
        check_partial(path, state, len(self.train_batches))
        check_settings(path, state, self.settings, self.overrides, RESUME_OVERRIDES, "search")
        if state["fingerprint"] != self.fingerprint:
            raise NascUsageError(
                f"{path} was written by another run (another space, -D values, strategy, data, "
                "seed or number of epochs)",
                hint="resume with the run directory's own settings, or start anew",
            )
        check_fits_net(path, state, self.net, self.config.epochs)
        if state.get("data_order", self.data.order) != self.data.order:
            raise NascUsageError(
                f"{path} was written with the data in the order {state['data_order']}, not "
                f"{self.data.order}: the images changed since",
                hint="resume with the data the search started with, or start anew",
            )

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
            "data_order": self.data.order,  # the order `ImageData.mixed` made, checked on resume
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


# The keys every checkpoint of a search or training run holds, and their types.
STATE_KINDS = {
    "fingerprint": str,
    "epoch": int,
    "metric_lines": int,
    "net": dict,
    "optimizer": dict,
    "rng": torch.Tensor,
}


def check_kinds(path, state: dict, kinds: dict) -> None:
    """Raises CorruptCheckpoint when a key of `kinds` is missing or of another type."""
    for key, kind in kinds.items():
        value = state.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            got = "missing" if key not in state else f"a {type(value).__name__}"
            raise CorruptCheckpoint(f"{path} has no valid `{key}` ({got}, not a {kind.__name__})")


def check_settings(path, state: dict, settings, overrides, allowed, noun: str) -> None:
    """Refuse a checkpoint trained with settings the run's config.json no longer says, unless an
    explicit resume override (`overrides`) explains the change.

    Raises:
        NascUsageError: naming the setting, and how to change it (`allowed`) or why it cannot.
    """
    from nasc.dsl import NascUsageError

    recorded = state.get("settings")
    if not isinstance(recorded, dict) or settings is None:
        return
    for key in sorted(set(recorded) | set(settings)):
        was, now = recorded.get(key), settings.get(key)
        if was != now and key not in overrides:
            raise NascUsageError(
                f"{path} was trained with {key} = {was!r}, but the run's config.json "
                f"now says {now!r}",
                hint=f"restore {key} in config.json"
                + (
                    f", or change it explicitly: --resume RUN --{key.replace('_', '-')} {now}"
                    if key in allowed
                    else f"; {key} cannot change on resume, start a new {noun} for it"
                ),
            )


def check_partial(path, state: dict, steps: int) -> None:
    """Raises CorruptCheckpoint when a checkpoint taken inside an epoch does not say where in an
    epoch of `steps` steps it was taken, and what the epoch had summed."""
    partial = state.get("partial")
    if partial is None:
        return
    fields = {"step": int, "seen": int, "seconds": (int, float)}
    if not isinstance(partial, dict) or any(
        not isinstance(partial.get(k), kind) or isinstance(partial.get(k), bool)
        for k, kind in fields.items()
    ):
        raise CorruptCheckpoint(f"{path} has no valid record of its place inside the epoch")
    if not 0 < partial["step"] < steps or "total_loss" not in partial or "correct" not in partial:
        raise CorruptCheckpoint(
            f"{path} was taken at step {partial['step']} of an epoch of {steps} steps"
        )


def check_fits_net(path, state: dict, net: nn.Module, epochs: int) -> None:
    """Raises CorruptCheckpoint when the state cannot be this network's after at most `epochs`
    epochs: an impossible epoch, a bad random state, other keys or shapes, non-finite values."""
    if not 0 <= state["epoch"] <= epochs or state["metric_lines"] < 0:
        raise CorruptCheckpoint(f"{path} has an impossible epoch ({state['epoch']})")
    if state["rng"].dtype != torch.uint8:
        raise CorruptCheckpoint(f"{path} has no valid random state")
    expected, net = net.state_dict(), state["net"]
    missing, extra = sorted(set(expected) - set(net)), sorted(set(net) - set(expected))
    if missing or extra:
        what = (f"lacks {missing[0]}" if missing else f"has an unknown {extra[0]}") + (
            f" ({len(missing) + len(extra)} keys differ)" if len(missing) + len(extra) > 1 else ""
        )
        raise CorruptCheckpoint(f"{path} does not fit this network: it {what}")
    for key, value in expected.items():
        if torch.is_tensor(value) and (
            not torch.is_tensor(net[key]) or net[key].shape != value.shape
        ):
            shape = tuple(net[key].shape) if torch.is_tensor(net[key]) else type(net[key])
            raise CorruptCheckpoint(
                f"{path} does not fit this network: {key} is {shape}, not {tuple(value.shape)}"
            )
    bad = nonfinite(net) + nonfinite(state["optimizer"])
    if bad:
        raise CorruptCheckpoint(
            f"{path} holds non-finite values ({', '.join(bad[:3])}): the run had diverged "
            "before it was written"
        )


def apply_sgd_settings(optimizer: torch.optim.Optimizer, config) -> None:
    """Give a restored SGD the run's settings: its saved state carries those it was built with,
    so without this a resume override of momentum, Nesterov or weight decay would be recorded
    but not used. (The learning rate is set at every step.)"""
    for group in optimizer.param_groups:
        group["momentum"] = config.momentum
        group["nesterov"] = config.nesterov and config.momentum > 0
        group["weight_decay"] = config.weight_decay


def resume_state(run, fingerprint: str, dist: Dist | None, warn=print, check=None) -> dict | None:
    """The newest good checkpoint's state for a resumed run, or None when there is none.

    Rank 0 (the process holding the run directory) reads it and hands it to the other ranks.
    The run's metrics are rebuilt from the history that checkpoint kept (older checkpoints: cut
    back to the lines it had seen). When checkpoints exist but none can be used, the earlier
    metrics are kept in a side file, and `warn` says so.

    Args:
        check: called with (path, state) on rank 0; see `checkpoint.load_latest`.

    Raises:
        NascUsageError: the checkpoint was written for another space or other settings.
    """
    found, refused = None, None
    if run is not None:
        try:
            found = load_latest(run.checkpoints, warn=warn, map_location="cpu", check=check)
        except NascUsageError as error:  # refused on rank 0: every rank stops with it
            refused = (error.message, error.hint)
        if found is not None:
            found[1]["_path"] = str(found[0])
    found, refused = broadcast((found, refused), dist)
    if refused is not None:
        raise NascUsageError(refused[0], hint=refused[1])
    if found is None:
        if run is not None:  # lines of a first epoch that never reached a checkpoint
            kept = run.set_aside_metrics() if list(run.checkpoints.glob("ckpt-*.pt")) else None
            if kept is not None:
                warn(
                    f"warning: no checkpoint of {run.path} can be used; starting from the first "
                    f"epoch; the earlier metrics are kept in {kept}"
                )
            run.truncate_metrics(0)
        return None
    path, state = found
    if state.get("fingerprint") != fingerprint:
        raise NascUsageError(
            f"{path} was written by another run (another space, -D values, strategy, data, seed "
            "or number of epochs)",
            hint="resume with the run directory's own settings, or start anew",
        )
    if run is not None:
        if "metrics" in state:
            run.rewrite_metrics(metric_records(state))
        else:
            run.truncate_metrics(int(state["metric_lines"]))
    return state


def metric_records(state: dict) -> list[dict]:
    """The metric lines a checkpoint kept (none for checkpoints older than that)."""
    records = state.get("metrics")
    if not isinstance(records, list):
        return []
    return [record for record in records if isinstance(record, dict)]


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
)


def safe_lr(config, records: list[dict], resume_epoch: int, classes: int) -> float:
    """A learning rate to resume a diverged run with, from what its schedule showed safe.

    An epoch is healthy when its training loss is finite and at most twice that of guessing
    (ln classes). The largest rate a healthy epoch started at was safe; the suggestion is the
    base rate whose cosine schedule, from the epoch the run resumes after, starts at that rate,
    at most half the rate that diverged. With no healthy epoch: the presets' rate, or a tenth of
    the run's when that is lower.
    """
    limit = 2 * math.log(max(classes, 2))
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
