"""`nasc train` and `nasc eval`: train a found architecture from scratch with a paper's evaluation
protocol, and measure the test accuracy of a trained network."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from nasc.compiler import (
    CompileOptions,
    Supernet,
    catalog,
    compile_space,
    count_flops,
)
from nasc.dsl import (
    NascUsageError,
    SpaceIR,
    find_space,
    format_space,
    load_space,
    parse_space,
    read_source,
)
from nasc.runtime.exporting import write_torchscript
from nasc.runtime.hardware.memory import check_fits
from nasc.runtime.plugins import load_plugins
from nasc.runtime.plugins import recorded as plugins_recorded
from nasc.runtime.requests import EvalRequest, TrainRequest, check_overrides
from nasc.runtime.runs.checkpoint import load_checkpoint
from nasc.runtime.runs.events import LoggedEvents, RunEvents
from nasc.runtime.runs.resume import (
    check_resumable,
    check_run_config,
    record_overrides,
    resume_changes,
    resume_overrides,
)
from nasc.runtime.runs.resume import fingerprint as make_fingerprint
from nasc.runtime.runs.rundir import RunDir, environment
from nasc.runtime.runs.scalars import require_tensorboard
from nasc.runtime.runs.settings import resolve_device, validate_counts, validate_minutes
from nasc.runtime.tasks import DEFAULT_TASK, Task, get_task
from nasc.runtime.train.config import TrainConfig
from nasc.runtime.train.loop import TRAIN_RESUME_OVERRIDES, Trainer, evaluate
from nasc.runtime.train.result import TrainResult

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


def fit_augmentation(config: TrainConfig, data, given: Mapping[str, Any], warn) -> TrainConfig:
    """Scale the preset's cutout (sized for 32 x 32 CIFAR images) to smaller images, with a
    warning; a `--cutout` that covers the whole image is refused.

    Raises:
        NascUsageError: a given cutout that covers the whole image.
    """
    if config.cutout == 0 or not hasattr(data, "size"):  # no images (token streams): no cutout
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
    if not config.lr > 0:
        raise NascUsageError(f"--lr {config.lr:g}: must be positive", hint="e.g. --lr 0.025")
    for name in ("lr_min", "momentum", "weight_decay", "grad_clip", "label_smoothing"):
        if not getattr(config, name) >= 0:
            flag = "--" + name.replace("_", "-")
            raise NascUsageError(f"{flag} {getattr(config, name):g}: must not be negative")
    if config.cutout < 0 or config.drop_path < 0 or config.auxiliary_weight < 0:
        raise NascUsageError(
            "--cutout, --drop-path and --auxiliary-weight cannot be negative",
            hint="0 turns each off",
        )


def run_train(request: TrainRequest, events: RunEvents | None = None) -> TrainResult:
    """`nasc train` as a library call: run or resume a training run, in phases. Every input is
    checked, and the network built, before the run directory is made.

    Args:
        events: progress callbacks (None: messages go to the `nasc` logger).
    """
    events = events if events is not None else LoggedEvents()
    overrides = train_overrides(request.overrides)
    validate_counts(subset=request.subset, image_size=request.image_size)
    validate_minutes(request.checkpoint_minutes)
    if request.tensorboard:
        require_tensorboard()
    plan = None
    try:
        if request.resume:
            plan = resumed_training(request, overrides)
        else:
            plan = new_training(request, overrides)
        validate_train(plan.config)
        device = resolve_device(plan.config.device)
        data = load_training_data(plan, request, overrides, events)
        if request.memory_check and plan.space.is_fixed:
            # From the IR, before the network is built: a width too large for the machine is
            # refused here, not by the allocator after minutes.
            options = CompileOptions(search=False, auxiliary=plan.config.auxiliary_weight > 0)
            check_fits(
                plan.space, plan.defines, plan.config.batch_size, options, device, phase="train"
            )
        trainer = build_trainer(plan, request, data, device, events)
        if plan.run is not None:
            events.message(f"run directory: {plan.run.path}")
        finished = restore_training(trainer, plan, events) if request.resume else False
        run = plan.run
        if run is not None and (request.tensorboard or (run.path / "tensorboard").is_dir()):
            run.open_scalars(resumed=bool(request.resume))
        trainer.run_epochs()
        events.close()
        result = training_result(trainer, plan, finished, device)
    finally:
        events.close()
        if plan is not None and plan.run is not None:
            plan.run.close()
    trained = TrainResult(run_dir=plan.run.path if plan.run else None, result=result)
    events.finished(trained)
    return trained


def train_overrides(given: dict) -> dict:
    """Every TrainConfig field, with the value given (None: the preset's).

    Raises:
        NascUsageError: a name that is no field of the training config, or a value of the
            wrong type.
    """
    names = [f.name for f in attrs.fields(TrainConfig)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise NascUsageError(
            f"unknown training setting `{unknown[0]}`", hint=f"known settings: {', '.join(names)}"
        )
    given = check_overrides(TrainConfig, given)
    return {name: given.get(name) for name in names}


@attrs.define
class TrainingPlan:
    """What a training run is built from: the fixed space, its -D values, the settings, the
    data and the task (and, on resume, the run directory and what it recorded)."""

    space: SpaceIR
    source: str | None
    defines: dict[str, int]
    config: TrainConfig
    data_spec: str
    subset: int | None
    task: Task
    image_size: int | None = None  # `--image-size`: the size folders (and shapes) are read at
    preset: str | None = None
    plugins: list[str] = attrs.field(factory=list)
    run: RunDir | None = None
    saved: dict | None = None
    changes: dict = attrs.field(factory=dict)


def resumed_training(request, overrides: dict) -> TrainingPlan:
    """Phase 1 of a resume: the run's config.json and arch.nas, checked, with the settings the
    request changes."""
    run = RunDir.open(Path(request.resume))
    plan = None
    try:
        check_resumable(run, "arch.nas", "nasc train")
        saved = run.read_json("config.json")
        check_run_config(saved, run.path / "config.json", TrainConfig)
        load_plugins(saved.get("plugins"), run.path / "config.json")  # before arch.nas
        changes = resume_changes(
            saved, overrides, request, None, TRAIN_RESUME_OVERRIDES, "training run"
        )
        source = read_source(run.path / "arch.nas")
        plan = TrainingPlan(
            space=parse_space(source, str(run.path / "arch.nas"), catalog=catalog()),
            source=source,
            defines=saved["defines"],
            config=TrainConfig(**{**saved["config"], **changes}),
            data_spec=saved["data"],
            subset=saved.get("subset"),
            task=get_task(saved.get("task", DEFAULT_TASK)),
            image_size=saved.get("image_size"),
            run=run,
            saved=saved,
            changes=changes,
        )
    finally:
        if plan is None:
            run.close()
    return plan


def new_training(request, overrides: dict) -> TrainingPlan:
    """Phase 1 of a new run: the architecture, its training preset (and the preset's macro
    network, unless `keep_macro`), and the -D values."""
    plugins = [*request.plugins, *_search_plugins(request.arch_file)]
    load_plugins(plugins)
    space = _architecture(request)
    preset_name = request.preset or PRESET_FOR_SPACE_PRESET.get(space.preset or "", "darts-cifar")
    config = make_train_config(preset_name, overrides)
    preset = TRAIN_PRESETS[preset_name]
    if preset.get("macro") and not request.keep_macro:
        space = transplant(space, load_space(preset["macro"], catalog=catalog()))
    defines = {k: v for k, v in preset["defines"].items() if k in space.network.param_names}
    defines.update(request.defines)
    return TrainingPlan(
        space=space,
        source=None,  # printed from the space once the data is bound
        defines=defines,
        config=config,
        data_spec=request.data,
        subset=request.subset,
        task=get_task(request.task),
        image_size=request.image_size,
        preset=preset_name,
        plugins=plugins,
    )


def load_training_data(plan: TrainingPlan, request, overrides: dict, events: RunEvents):
    """Phase 2: the data, as the task loads it; for a new run, what it fixes of the network
    bound, the augmentation fitted to it (a note says so), and the architecture's text."""
    data = plan.task.load(plan.data_spec, request.cache_dir, plan.image_size)
    if plan.subset:
        data = plan.task.subset(data, plan.subset)
    if plan.saved is None:
        plan.defines = plan.task.bind(plan.space, plan.defines, data)
        plan.config = fit_augmentation(plan.config, data, overrides, events.message)
        plan.source = format_space(plan.space)
        # The shape checks again, at the data's sizes (the space was read with its defaults).
        where = str(request.arch_file or "<string>")
        parse_space(plan.source, where, catalog=catalog(), overrides=plan.defines)
    return data


def build_trainer(plan: TrainingPlan, request, data, device, events: RunEvents) -> Trainer:
    """Phase 3: the trainer, complete, its network run once on the data; a new run's
    directory is made only then."""
    config = plan.config
    minutes = request.checkpoint_minutes
    trainer = Trainer(
        plan.space,
        plan.defines,
        config,
        data,
        device,
        run=plan.run,
        events=events,
        fingerprint=make_fingerprint(
            plan.source,
            plan.defines,
            "train",
            plan.data_spec,
            config.seed,
            config.epochs,
            plan.task.name,
        ),
        task=plan.task,
        resume_overrides=resume_overrides(plan, config),
        checkpoint_seconds=60.0 * minutes if minutes else None,
    )
    plan.task.check_network(trainer.net, data, device)
    if plan.saved is None and request.runs_dir is not None:
        name = f"train-{plan.space.name}"
        plan.run = trainer.run = RunDir.create(Path(request.runs_dir), name, plan.preset)
    if plan.run is not None and plan.saved is None:
        plan.run.write_text("arch.nas", plan.source)
        plan.run.write_json(
            "config.json",
            {
                "arch": str(request.arch_file),
                "preset": plan.preset,
                "defines": plan.defines,
                "data": plan.data_spec,
                "subset": plan.subset,
                "image_size": plan.image_size,
                "task": plan.task.name,
                "config": config.to_json(),
                "plugins": plugins_recorded(plan.plugins),
                "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "environment": environment(device),
            },
        )
    return trainer


def restore_training(trainer: Trainer, plan: TrainingPlan, events: RunEvents) -> bool:
    """Phase 4 of a resume: continue from the newest good checkpoint and record the accepted
    overrides. True when the run had already finished."""
    resumed = trainer.restore(warn=events.message)
    record_overrides(plan.run, plan.saved, plan.changes, trainer, resumed)
    if not resumed:
        events.message("no checkpoint yet: starting from the first epoch")
        return False
    finished = trainer.epoch >= plan.config.epochs
    events.message(
        "the training had finished; its results stand"
        if finished
        else f"resumed after epoch {trainer.epoch}"
    )
    return finished


def training_result(trainer: Trainer, plan: TrainingPlan, finished: bool, device) -> dict:
    """Phase 5: what result.json holds (a finished run's stands), with the trained network
    exported as TorchScript beside it."""
    run = plan.run
    if finished and run is not None and (run.path / "result.json").is_file():
        return run.read_json("result.json")
    net = trainer.net
    final = trainer.evaluate()[f"test_{plan.task.metric}"]
    result = {
        "arch": plan.space.name,
        "final_test_acc": final,
        "best_test_acc": trainer.best,
        **plan.task.metric_fields(final, trainer.best),
        "parameters": sum(
            p.numel() for n, p in net.named_parameters() if not n.startswith(_aux_prefix(net.plan))
        ),
        "flops": count_flops(net, net.plan.channels, net.plan.size),
        "train_seconds": trainer.seconds,
        "epochs": trainer.epoch,
        "environment": environment(device),
    }
    if run is not None:
        write_torchscript(_without_aux(plan.space, plan.defines, net), run.path / "model.pt")
        run.write_json("result.json", result)
    return result


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


def run_eval(args: EvalRequest) -> dict:
    """`nasc eval`: the test accuracy of a trained network (a train run, a checkpoint or a
    TorchScript file).

    Returns:
        `test_<metric>` (`test_acc` for classification) and `test_loss`, `metric` and
        `metric_label` (the task's), `images`: how many test images they cover, and `data`:
        the data's name.
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
                if (p / "arch.nas").is_file() or (p / "space.nas").is_file()
            ),
            target,
        )
        if (run_dir / "space.nas").is_file():
            raise NascUsageError(
                f"{run_dir} is a search run; nasc eval measures a network that nasc train trained "
                "(a search's supernet shares its weights among every candidate)",
                hint=f"train the architecture it found: nasc train {run_dir / 'arch.nas'} "
                "--data DATA, then nasc eval runs/train-...; the search's own test accuracies "
                f"are in {run_dir / 'result.json'}",
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
        if not checkpoint.exists():
            raise NascUsageError(
                f"{run_dir} has no best.pt yet: its training stopped before its first epoch ended",
                hint=f"resume it (nasc train --resume {run_dir}), then evaluate it",
            )
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
    named = {"metric": task.metric, "metric_label": task.metric_label}
    return {**result, **named, "images": task.examples(data, "test"), "data": data.name}


def _is_torchscript(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(
                name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist()
            )
    except (zipfile.BadZipFile, OSError):
        return False
