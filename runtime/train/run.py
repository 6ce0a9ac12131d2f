"""`nasc train` and `nasc eval`: train a found architecture from scratch with a paper's evaluation
protocol, and measure the test accuracy of a trained network."""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from rich.console import Console
from torch import nn

from nasc.compiler import (
    CompileOptions,
    Supernet,
    catalog,
    compile_space,
    count_flops,
    export_torchscript,
)
from nasc.dsl import NascUsageError, SpaceIR, find_space, load_space, parse_space, read_source
from nasc.runtime.cli.progress import Display
from nasc.runtime.plugins import load_plugins
from nasc.runtime.plugins import recorded as plugins_recorded
from nasc.runtime.requests import EvalRequest, TrainRequest
from nasc.runtime.runs.checkpoint import (
    CorruptCheckpoint,
    load_checkpoint,
    nonfinite,
    save_checkpoint,
    write_atomic,
)
from nasc.runtime.runs.faults import die_at, poison
from nasc.runtime.runs.rundir import RunDir
from nasc.runtime.runs.scalars import require_tensorboard
from nasc.runtime.search.loop import (
    DIVERGED_LOSS,
    STATE_KINDS,
    Diverged,
    NonFiniteLoss,
    RunRecords,
    apply_sgd_settings,
    check_fits_net,
    check_kinds,
    check_partial,
    check_settings,
    cosine_lr,
    epoch_seed,
    resolve_device,
    resume_state,
    safe_lr,
)
from nasc.runtime.search.run import (
    check_run_config,
    record_overrides,
    recorded_overrides,
    resume_changes,
)
from nasc.runtime.tasks import DEFAULT_TASK, Task, get_task
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

TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # The DARTS evaluation protocol on CIFAR, as IS-DARTS used it.
    "darts-cifar": dict(
        config=dict(
            epochs=600,
            batch_size=96,
            lr=0.025,
            lr_min=0.0,
            momentum=0.9,
            nesterov=False,
            weight_decay=3e-4,
            grad_clip=5.0,
            cutout=16,
            drop_path=0.2,
            auxiliary_weight=0.4,
        ),
        defines={"C": 36, "layers": 20},
    ),
    # DARTS' mobile setting on ImageNet: the cells go into the DARTS ImageNet network.
    "darts-imagenet": dict(
        config=dict(
            epochs=250,
            batch_size=128,
            lr=0.1,
            lr_min=0.0,
            warmup_epochs=5,
            momentum=0.9,
            nesterov=False,
            weight_decay=3e-5,
            grad_clip=5.0,
            label_smoothing=0.1,
            auxiliary_weight=0.4,
        ),
        defines={"C": 48, "layers": 14},
        macro="darts_imagenet",
    ),
    # NAS-Bench-201's protocol.
    "nb201": dict(
        config=dict(
            epochs=200,
            batch_size=256,
            lr=0.1,
            lr_min=0.0,
            momentum=0.9,
            nesterov=True,
            weight_decay=5e-4,
            grad_clip=0.0,
        ),
        defines={"C": 16, "N": 5},
    ),
}
PRESET_FOR_SPACE_PRESET = {"darts": "darts-cifar", "nb201": "nb201"}


def transplant(cells_from: SpaceIR, macro: SpaceIR) -> SpaceIR:
    """The macro network of one space with the (fixed) cells of another, matched by name.

    Raises:
        NascUsageError: the macro places a cell the architecture does not define.
    """
    cells = {cell.name: cell for cell in cells_from.cells}
    missing = [c.name for c in macro.used_cells() if c.name not in cells]
    if missing:
        raise NascUsageError(
            f"the network `{macro.name}` places cells {', '.join(missing)}, which "
            f"`{cells_from.name}` does not define",
            hint="the architecture and the macro must name their cell types alike",
        )
    used = {c.name for c in macro.used_cells()}
    return attrs.evolve(
        macro,
        cells=[cells[name] for name in (c.name for c in macro.cells) if name in used],
        opsets=cells_from.opsets,
        file=cells_from.file,
    )


def make_train_config(preset: str, overrides: Mapping[str, Any]) -> TrainConfig:
    if preset not in TRAIN_PRESETS:
        raise NascUsageError(
            f"unknown training preset `{preset}`",
            hint=f"known presets: {', '.join(sorted(TRAIN_PRESETS))}",
        )
    values = dict(TRAIN_PRESETS[preset]["config"])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)


class Trainer(RunRecords):
    """Trains one fixed network; the evaluation-protocol counterpart of `Searcher`.

    Args:
        task: what the data is and how the network's output is scored (None: image
            classification).
    """

    def __init__(
        self,
        space: SpaceIR,
        defines: Mapping[str, int],
        config: TrainConfig,
        data,
        device: torch.device,
        run: RunDir | None = None,
        display: Display | None = None,
        fingerprint: str = "",
        task: Task | None = None,
    ):
        if not space.is_fixed:
            raise NascUsageError(
                f"`{space.name}` still has choices; train a fixed architecture",
                hint="train the arch.nas of a search run, or give --arch",
            )
        self.config, self.device, self.run, self.display = config, device, run, display
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
        self.epoch = 0
        self.best = -math.inf  # the best test metric so far (the task's, higher is better)
        self.metric_lines = 0
        self.metric_records: list[dict] = []  # kept in checkpoints: metrics.jsonl is rebuilt
        self.seconds = 0.0  # time spent on the epochs checkpointed so far, over every session
        # What checkpoints record of the settings, to refuse a config.json edited behind their
        # back; `overrides`: settings an explicit resume override changed.
        self.settings = {k: v for k, v in config.to_json().items() if k != "device"}
        self.overrides: set[str] = set()
        self.last_settings: dict | None = None
        self.checkpoint_seconds: float | None = None  # also checkpoint inside epochs this often
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
        sums = dict.fromkeys(names, 0.0)
        seen = 0
        before = 0.0  # seconds of this epoch spent before the checkpoint it resumed from
        if partial:
            sums = {name: float(partial[name]) for name in names}
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
                smoothing = config.label_smoothing
                loss = self.task.loss(logits.float(), labels, smoothing)
                if aux is not None:
                    aux_loss = self.task.loss(aux.float(), labels, smoothing)
                    loss = loss + config.auxiliary_weight * aux_loss
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
            for name, value in self.task.batch_sums(logits.detach(), labels).items():
                sums[name] += float(value)
            seen += len(labels)
            if self._checkpoint_due() and step + 1 < steps:
                session = time.perf_counter() - started
                self.save_inside(step + 1, sums, seen, before + session, session)
            die_at("kill", self.epoch + 1, step + 1)
            if self.display is not None and step % 10 == 0:
                self.display.step(step + 1, steps, sums["total_loss"] / seen)
        elapsed = before + time.perf_counter() - started
        metrics = self.task.metrics(sums, seen)
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
        while self.epoch < self.config.epochs:
            started = time.perf_counter()
            if self.display is not None:
                done = int(self.partial["step"]) if self.partial else 0
                self.display.start_epoch(
                    self.epoch + 1, self.config.epochs, len(self.train_batches), done
                )
            record = {"event": "epoch", "epoch": self.epoch + 1}
            record.update(self.train_epoch())
            record.update(self.evaluate())
            self._check_diverged(record)
            self.epoch += 1
            score = record[f"test_{self.task.metric}"]
            improved = score > self.best
            self.best = max(self.best, score)
            record["best_test_acc"] = self.best
            self._log(record)
            self.seconds += time.perf_counter() - started
            self.save(best=improved)

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
    sums = dict.fromkeys(task.sums, 0.0)
    total, seen = 0.0, 0
    with torch.no_grad():
        for images, labels in batches.epoch(None):
            with autocast():
                output = model(prepare(images) if prepare else images)
            logits = (output[0] if isinstance(output, tuple) else output).float()
            total += float(task.loss(logits, labels)) * len(labels)
            for name, value in task.batch_sums(logits, labels).items():
                sums[name] += float(value)
            seen += len(labels)
    if was_training:
        model.train()
    metrics = task.metrics(sums, seen)
    return {
        "test_loss": total / max(seen, 1),
        **{f"test_{name}": value for name, value in metrics.items()},
    }


def _search_plugins(arch_file: str | None) -> list[str]:
    """The `--ops` plugins recorded by the search run that wrote `arch_file` (its `arch.nas`),
    so training a found architecture needs no `--ops` again."""
    if not arch_file or Path(arch_file).name != "arch.nas":
        return []
    config = Path(arch_file).parent / "config.json"
    try:
        recorded = json.loads(config.read_text()).get("plugins") if config.is_file() else None
    except (OSError, ValueError, AttributeError):
        return []  # not a run's config: the architecture needs no plugin, or names it itself
    return [name for name in recorded or [] if isinstance(name, str)]


def _architecture(args) -> SpaceIR:
    """The fixed space to train: a fixed .nas file (or its text), or a space with --arch."""
    from nasc.dsl import apply_genotype, parse_arch

    text = args.source if args.source is not None else read_source(find_space(args.arch_file))
    space = parse_space(text, str(args.arch_file), catalog=catalog())
    if args.arch:
        space = apply_genotype(space, parse_arch(space, args.arch))
    return space


def fit_augmentation(
    config: TrainConfig, data, given: Mapping[str, Any], warn
) -> TrainConfig:
    """Scale the preset's cutout (sized for 32 x 32 CIFAR images) to smaller images, with a
    warning; a `--cutout` that covers the whole image is refused.

    Raises:
        NascUsageError: a given cutout that covers the whole image.
    """
    if config.cutout == 0:
        return config
    size = data.size
    if given.get("cutout") is not None:
        if config.cutout >= size:
            raise NascUsageError(
                f"--cutout {config.cutout} covers the whole of {data.name}'s {size} x {size} "
                "images, which leaves nothing to learn from",
                hint=f"use a cutout below {size}, e.g. --cutout {max(1, size // 2)}, or 0",
            )
        return config
    scaled = max(1, round(config.cutout * size / 32))
    if scaled >= config.cutout:
        return config
    warn(
        f"warning: the preset's cutout of {config.cutout} pixels is sized for 32 x 32 images; "
        f"{data.name} has {size} x {size}, so it is scaled to {scaled} (--cutout N sets it)"
    )
    return attrs.evolve(config, cutout=scaled)


def validate_train(config: TrainConfig) -> None:
    """Refuse settings that cannot run, naming the flag."""
    for flag, value in (("--epochs", config.epochs), ("--batch-size", config.batch_size)):
        if value < 1:
            raise NascUsageError(
                f"{flag} {value}: must be at least 1", hint="see nasc train --help"
            )
    if config.cutout < 0 or config.drop_path < 0 or config.auxiliary_weight < 0:
        raise NascUsageError(
            "--cutout, --drop-path and --auxiliary-weight cannot be negative",
            hint="0 turns each off",
        )


def run_train(args: TrainRequest, console: Console) -> dict:
    """`nasc train`: run or resume a training run. Every input is checked, and the network
    built, before the run directory is made.

    Returns:
        What result.json holds, and `run`: the run directory.
    """
    from nasc.runtime.runs.rundir import environment
    from nasc.runtime.search.run import fingerprint as make_fingerprint
    from nasc.runtime.search.run import validate_counts, validate_minutes

    names = [f.name for f in attrs.fields(TrainConfig)]
    unknown = sorted(set(args.overrides) - set(names))
    if unknown:
        raise NascUsageError(
            f"unknown training setting `{unknown[0]}`", hint=f"known settings: {', '.join(names)}"
        )
    overrides = {name: args.overrides.get(name) for name in names}
    validate_counts(subset=args.subset, image_size=getattr(args, "image_size", None))
    validate_minutes(args.checkpoint_minutes)
    if args.tensorboard:
        require_tensorboard()
    run = display = None
    try:
        if args.resume:
            run = RunDir.open(Path(args.resume))
            saved = run.read_json("config.json")
            check_run_config(saved, run.path / "config.json", TrainConfig)
            load_plugins(saved.get("plugins"), run.path / "config.json")  # before arch.nas
            changes = resume_changes(
                saved, overrides, args, None, TRAIN_RESUME_OVERRIDES, "training run"
            )
            source = read_source(run.path / "arch.nas")
            space = parse_space(source, str(run.path / "arch.nas"), catalog=catalog())
            config = TrainConfig(**{**saved["config"], **changes})
            defines, data_spec, subset = saved["defines"], saved["data"], saved.get("subset")
            task_name = saved.get("task", DEFAULT_TASK)
        else:
            plugins = [*args.plugins, *_search_plugins(args.arch_file)]
            load_plugins(plugins)
            space = _architecture(args)
            preset_name = args.preset or PRESET_FOR_SPACE_PRESET.get(
                space.preset or "", "darts-cifar"
            )
            preset = TRAIN_PRESETS.get(preset_name)
            config = make_train_config(preset_name, overrides)
            if preset.get("macro") and not args.keep_macro:
                space = transplant(space, load_space(preset["macro"], catalog=catalog()))
            defines = {k: v for k, v in preset["defines"].items() if k in space.network.param_names}
            defines.update(args.defines)
            data_spec, subset = args.data, args.subset
            task_name = args.task
        task = get_task(task_name)
        validate_train(config)
        device = resolve_device(config.device)
        data = task.load(data_spec, args.cache_dir, getattr(args, "image_size", None))
        if subset:
            data = data.subset(subset, seed=0)
        from nasc.dsl import format_space

        notes = []
        if not args.resume:
            defines = task.bind(space, defines, data)
            config = fit_augmentation(config, data, overrides, notes.append)
            source = format_space(space)
        if not args.no_memory_check and space.is_fixed:
            from nasc.runtime.hardware.memory import check_fits

            # From the IR, before the network is built: a width too large for the machine is
            # refused here, not by the allocator after minutes.
            options = CompileOptions(search=False, auxiliary=config.auxiliary_weight > 0)
            check_fits(space, defines, config.batch_size, options, device, phase="train")
        trainer = Trainer(
            space,
            defines,
            config,
            data,
            device,
            fingerprint=make_fingerprint(
                source, defines, "train", data_spec, config.seed, config.epochs, task.name
            ),
            task=task,
        )
        if not args.resume:
            run = RunDir.create(Path(args.runs_dir), f"train-{space.name}", preset_name)
            run.write_text("arch.nas", source)
            run.write_json(
                "config.json",
                {
                    "arch": str(args.arch_file),
                    "preset": preset_name,
                    "defines": defines,
                    "data": data_spec,
                    "subset": subset,
                    "task": task.name,
                    "config": config.to_json(),
                    "plugins": plugins_recorded(plugins),
                    "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "environment": environment(device),
                },
            )
        display = Display(console, quiet=args.quiet)
        trainer.run, trainer.display = run, display
        minutes = args.checkpoint_minutes
        trainer.checkpoint_seconds = 60.0 * minutes if minutes else None
        for note in notes:
            display.print(note)
        display.print(f"run directory: {run.path}")
        finished = False
        resumed = False
        if args.resume:
            trainer.overrides = set(changes) | recorded_overrides(saved, config)
            resumed = trainer.restore(warn=display.print)
            record_overrides(run, saved, changes, trainer, resumed)
        if resumed:
            finished = trainer.epoch >= config.epochs
            display.print(
                "the training had finished; its results stand"
                if finished
                else f"resumed after epoch {trainer.epoch}"
            )
        if args.tensorboard or (run.path / "tensorboard").is_dir():
            run.open_scalars(resumed=bool(args.resume))
        trainer.run_epochs()
        display.close()
        if finished and (run.path / "result.json").is_file():
            result = run.read_json("result.json")
        else:
            net = trainer.net
            result = {
                "arch": space.name,
                "final_test_acc": trainer.evaluate()[f"test_{task.metric}"],
                "best_test_acc": trainer.best,
                "parameters": sum(
                    p.numel()
                    for n, p in net.named_parameters()
                    if not n.startswith(_aux_prefix(net.plan))
                ),
                "flops": count_flops(net, net.plan.channels, net.plan.size),
                "train_seconds": trainer.seconds,
                "epochs": trainer.epoch,
                "environment": environment(device),
            }
            export_torchscript(_without_aux(space, defines, net), run.path / "model.pt")
            run.write_json("result.json", result)
    finally:
        if display is not None:
            display.close()
        if run is not None:
            run.close()
    console.print(
        f"test accuracy {result['final_test_acc']:.2f}% (best {result['best_test_acc']:.2f}%), "
        f"{result['parameters']:,} parameters, {result['flops'] / 1e6:.1f} M multiply-adds, "
        f"{result['train_seconds']:.0f} s of training; "
        f"run directory {run.path} (model.pt, result.json, metrics.jsonl)",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    return {**result, "run": str(run.path)}


def _aux_prefix(plan) -> str:
    """The state-dict prefix of the auxiliary head's stage (a prefix no key has, when none)."""
    aux = [stage.index for stage in plan.stages if stage.kind == "aux"]
    return f"stages.{aux[0]}." if aux else "\0"


def _without_aux(space: SpaceIR, defines, net: Supernet) -> Supernet:
    """The trained network without its auxiliary head, for export."""
    if not net.options.auxiliary:
        return net
    plain = compile_space(space, defines, CompileOptions(search=False)).to(
        next(net.parameters()).device
    )
    state = {k: v for k, v in net.state_dict().items() if not k.startswith(_aux_prefix(net.plan))}
    plain.load_state_dict(state)
    return plain


def run_eval(args: EvalRequest, console: Console) -> dict:
    """`nasc eval`: the test accuracy of a trained network (a train run, a checkpoint or a
    TorchScript file).

    Returns:
        `test_acc` and `test_loss`, and `images`: how many test images they cover.
    """
    target = Path(args.checkpoint)
    device = resolve_device(args.device)
    task = get_task(args.task)
    if target.suffix == ".pt" and target.is_file() and _is_torchscript(target):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # see export_torchscript
            model = torch.jit.load(str(target), map_location=device)
        channels, size = None, None
    else:
        # A run directory, its best.pt, or a checkpoint in its checkpoints/ folder.
        run_dir = next(
            (
                p
                for p in (target, target.parent, target.parent.parent)
                if (p / "arch.nas").is_file()
            ),
            target,
        )
        if not (run_dir / "arch.nas").is_file() or not (run_dir / "config.json").is_file():
            raise NascUsageError(
                f"{target} is not a training run, a checkpoint in one, or a TorchScript file",
                hint="give runs/train-.../ , its best.pt, or an exported model.pt",
            )
        saved = json.loads((run_dir / "config.json").read_text())
        load_plugins(saved.get("plugins"), run_dir / "config.json")
        task = get_task(saved.get("task", DEFAULT_TASK))  # the one the network was trained for
        space = parse_space(
            read_source(run_dir / "arch.nas"), str(run_dir / "arch.nas"), catalog=catalog()
        )
        net = compile_space(space, saved["defines"], CompileOptions(search=False))
        checkpoint = target if target.is_file() else run_dir / "best.pt"
        state = load_checkpoint(checkpoint, map_location="cpu")["net"]
        prefix = _aux_prefix(net.plan)
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith(prefix)})
        model = net.to(device)
        channels, size = net.plan.channels, net.plan.size
    data = task.load(args.data, args.cache_dir, getattr(args, "image_size", None))
    facts = task.facts(data)
    have = (facts.get("channels"), facts.get("size"))
    if channels is not None and have != (channels, size):
        raise NascUsageError(
            f"the network takes {channels} x {size} x {size} images; {data.name} has "
            f"{have[0]} x {have[1]} x {have[1]}",
            hint="evaluate on the data the network was trained on",
        )
    batches = task.batches(data, "test", args.batch_size, device)
    result = evaluate(model, batches, task)
    count = task.examples(data, "test")
    console.print(
        f"test accuracy {result[f'test_{task.metric}']:.2f}% (loss {result['test_loss']:.4f}) "
        f"on {count} {data.name} images",
        highlight=False,
    )
    return {**result, "images": count}


def _is_torchscript(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(
                name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist()
            )
    except (zipfile.BadZipFile, OSError):
        return False
