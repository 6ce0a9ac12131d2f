"""`nasc search`: prepare a run directory, run the search, export what it found."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import platform
import time
from pathlib import Path

import torch
from rich.console import Console

from nasc.compiler import catalog, check_partial_channels, fixed_source, genotype_strings
from nasc.dsl import NascUsageError, SpaceIR, find_space, parse_space, read_source
from nasc.dsl.macro import instantiate
from nasc.runtime.cli.progress import Display
from nasc.runtime.data.images import ImageData, load_data
from nasc.runtime.hardware.distributed import (
    broadcast,
    collective_failed,
    gather,
    rank_lost,
    setup,
    shutdown,
)
from nasc.runtime.hardware.memory import check_fits
from nasc.runtime.plugins import load_plugins
from nasc.runtime.plugins import recorded as plugins_recorded
from nasc.runtime.reports.nb201 import NB201Table, accuracy_spread, lookup_nats, parse_columns
from nasc.runtime.requests import SearchRequest
from nasc.runtime.runs.faults import stop_at
from nasc.runtime.runs.rundir import RunDir, environment, unique_directory
from nasc.runtime.runs.scalars import require_tensorboard
from nasc.runtime.search.config import MEASURE_PROTOCOLS, SearchConfig, make_config
from nasc.runtime.search.loop import RESUME_OVERRIDES, Searcher, resolve_device, search_options

DATA_PARAMS = ("channels", "size", "classes")


def bind_data(space: SpaceIR, defines: dict[str, int], data: ImageData) -> dict[str, int]:
    """The -D values with the data's channels, size and class count bound to the space.

    A network that declares `channels`, `size` or `classes` takes them from the data; a `-D`
    that contradicts the data, or a network whose fixed input or head does not fit it, is refused.

    Raises:
        NascUsageError: naming the mismatch and what to change.
    """
    facts = {"channels": data.channels, "size": data.size, "classes": data.num_classes}
    words = {"channels": "image channels", "size": "image size", "classes": "classes"}
    bound = dict(defines)
    for name in DATA_PARAMS:
        if name not in space.network.param_names:
            continue
        if name in defines and defines[name] != facts[name]:
            raise NascUsageError(
                f"-D {name}={defines[name]} contradicts the data: {data.name} has "
                f"{facts[name]} {words[name]}",
                hint=f"drop -D {name}; nasc takes it from the data",
            )
        bound[name] = facts[name]
    plan = instantiate(space, bound, catalog())
    head = next(stage for stage in plan.stages if stage.kind == "head")
    for name, have in (("channels", plan.channels), ("size", plan.size), ("classes", head.width)):
        if have != facts[name]:
            raise NascUsageError(
                f"the space `{space.name}` expects {have} {words[name]} but {data.name} has "
                f"{facts[name]}",
                hint=f"declare a `{name}` parameter in the network header and use it "
                f"({'input(channels, size)' if name != 'classes' else 'head ...(classes)'}), so "
                "nasc can bind it to the data",
            )
    return bound


def fingerprint(
    source: str, defines: dict[str, int], kind: str, data: str, seed: int, epochs: int
) -> str:
    """What a checkpoint must match to be resumed: the space, its values, the strategy (or
    `train`), the data, the seed and the length of the run."""
    key = json.dumps(
        {
            "source": source,
            "defines": defines,
            "kind": kind,
            "data": data,
            "seed": seed,
            "epochs": epochs,
        },
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def lookup_table(args) -> NB201Table | None:
    """The NB201 table of `--nb201-table`, read now, and `--nats-bench` checked, so that a bad
    look-up is refused before the search rather than after it.

    Raises:
        NascUsageError: a missing or malformed table, or `--nats-bench` without its package.
    """
    if getattr(args, "nats_bench", None) is not None and not args.nb201_table:
        if importlib.util.find_spec("nats_bench") is None:
            raise NascUsageError(
                "--nats-bench needs the nats_bench package, which is not installed",
                hint="pip install nats_bench and download its benchmark file (NATS-tss-v1_0-3ffb9"
                "-simple), or give the accuracies as a CSV with --nb201-table",
            )
        if args.nats_bench and not Path(args.nats_bench).exists():
            raise NascUsageError(
                f"--nats-bench {args.nats_bench}: no such file or folder",
                hint="give the path of the NATS-Bench topology benchmark, or --nats-bench alone "
                "for its default place ($TORCH_HOME)",
            )
    if getattr(args, "nb201_columns", None) and not getattr(args, "nb201_table", None):
        raise NascUsageError(
            "--nb201-columns names the columns of --nb201-table, which is not given",
            hint="add --nb201-table CSV",
        )
    if getattr(args, "nb201_table", None):
        return NB201Table.load(args.nb201_table, parse_columns(args.nb201_columns))
    return None


def validate_minutes(minutes: float | None) -> None:
    if minutes is not None and minutes < 0:
        raise NascUsageError(
            f"--checkpoint-minutes {minutes:g}: must not be negative",
            hint="0 checkpoints at epoch ends only",
        )


def validate_counts(**counts: int | None) -> None:
    """Refuse counts given as zero or less (`--subset 0` would otherwise mean all the data).

    Raises:
        NascUsageError: naming the flag.
    """
    for name, value in counts.items():
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise NascUsageError(
                f"{flag} {value}: must be at least 1",
                hint=f"leave {flag} out to use the default, or give a positive number",
            )


def run_search(args: SearchRequest, console: Console) -> list[dict]:
    """Run or resume a search (or `--seeds N` independent searches) as `args` asks.

    Under torchrun every rank runs this; rank 0 alone writes the run directory and prints.
    Every input is checked before the first epoch.

    Returns:
        The result of each search (what result.json holds), on rank 0; elsewhere, [].
    """
    overrides = search_overrides(args.overrides)
    validate_counts(seeds=getattr(args, "seeds", None), subset=args.subset)
    validate_counts(image_size=getattr(args, "image_size", None))
    validate_minutes(getattr(args, "checkpoint_minutes", None))
    timeout_s = getattr(args, "dist_timeout", None)
    if timeout_s is not None and not timeout_s > 0:  # NaN too
        raise NascUsageError(
            f"--dist-timeout {timeout_s:g}: must be a positive number of seconds",
            hint="the default, 600, suits most jobs",
        )
    if args.tensorboard:
        require_tensorboard()
    table = lookup_table(args)
    dist_, device_name = setup(overrides.get("device") or "auto", timeout_s)
    finished = False
    made: dict[str, str] = {}  # the run directory, once made, for the message of a lost rank
    try:
        seeds = getattr(args, "seeds", None) or 1
        if seeds == 1 or args.resume:
            try:
                result = _search_once(args, console, overrides, dist_, device_name, table, made)
            except RuntimeError as error:  # a collective failed: a rank went silent
                if dist_ is None or not collective_failed(error):
                    raise
                where = made.get("run") or args.resume or "RUN_DIR"
                raise rank_lost(dist_, error, timeout_s, where) from None
            finished = True
            return [result] if result is not None else []
        first = overrides.get("seed") or 0
        stamp = time.strftime("%Y%m%d-%H%M%S")
        results = []
        for offset in range(seeds):
            overrides = {**overrides, "seed": first + offset}
            results.append(_search_once(args, console, overrides, dist_, device_name, table))
        if dist_ is None or dist_.main:
            summarise_seeds(
                console, unique_directory(Path(args.runs_dir), f"seeds-{stamp}"), results
            )
        finished = True
        return [result for result in results if result is not None]
    finally:
        shutdown(finished)


def search_overrides(given: dict) -> dict:
    """Every SearchConfig field but the strategy, with the value given (None: the preset's).

    Raises:
        NascUsageError: a name that is no field of the search config.
    """
    import attrs

    names = [field.name for field in attrs.fields(SearchConfig) if field.name != "strategy"]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise NascUsageError(
            f"unknown search setting `{unknown[0]}`", hint=f"known settings: {', '.join(names)}"
        )
    return {name: given.get(name) for name in names}


def _search_once(
    args, console, overrides, dist_, device_name, table=None, made=None
) -> dict | None:
    main = dist_ is None or dist_.main
    run = display = None
    try:
        if args.resume:
            run = RunDir.open(Path(args.resume)) if main else None
            saved, source = broadcast(
                (run.read_json("config.json"), read_source(run.path / "space.nas"))
                if main
                else None,
                dist_,
            )
            check_run_config(saved, Path(args.resume) / "config.json")
            # Before the space, which names their ops.
            load_plugins(saved.get("plugins"), Path(args.resume) / "config.json")
            defines = saved["defines"]
            strategy = saved["config"]["strategy"]
            if args.strategy and args.strategy != strategy:
                raise NascUsageError(
                    f"{args.resume} searched with {strategy}, not {args.strategy}",
                    hint="resume without --strategy, or start a new search",
                )
            changes = resume_changes(saved, overrides, args, dist_)
            values = {**saved["config"], **{k: v for k, v in overrides.items() if v is not None}}
            values.setdefault("measure_on", "train-sample")  # how runs measured before protocols
            config = SearchConfig(**values)
            data_spec, subset = saved["data"], saved.get("subset")
            where = str(Path(args.resume) / "space.nas")
            space = parse_space(source, where, catalog=catalog(), overrides=defines)
        else:
            load_plugins(args.plugins)  # the command line did already; a sweep job has not
            source = args.source if args.source is not None else read_source(find_space(args.space))
            user_defines = dict(args.defines)
            space = parse_space(source, str(args.space), catalog=catalog(), overrides=user_defines)
            strategy = args.strategy or "isdarts"
            config = make_config(args.preset or space.preset, strategy, overrides)
            data_spec, subset = args.data, args.subset
        validate(config)
        if config.partial_channels > 1:  # from the plan, before any data is read
            check_partial_channels(
                space, defines if args.resume else user_defines, config.partial_channels
            )
        device = torch.device(device_name) if dist_ is not None else resolve_device(config.device)
        data = load_data(data_spec, args.cache_dir, getattr(args, "image_size", None))
        if subset:
            data = data.subset(subset, seed=0)
        data = data.mixed(config.seed)  # no batch sees the order the files were found in
        if not args.resume:
            defines = bind_data(space, user_defines, data)
        if not args.no_memory_check:
            options = search_options(config)
            check_fits(space, defines, config.batch_size, options, device)
        # The searcher is built (strategy, supernet) before the run directory exists, so a
        # command that cannot start leaves no half-made run behind.
        searcher = Searcher(
            space,
            defines,
            config,
            data,
            device,
            fingerprint=fingerprint(
                source, defines, config.strategy, data_spec, config.seed, config.epochs
            ),
            dist=dist_,
        )
        searcher.settings = result_settings(config, data_spec, subset, dist_)
        if main and not args.resume:
            run = RunDir.create(Path(args.runs_dir), space.name, strategy)
            run.write_text("space.nas", source)
            run.write_json(
                "config.json",
                {
                    "space": str(args.space),
                    "space_name": space.name,
                    "defines": defines,
                    "data": data_spec,
                    "subset": subset,
                    "config": config.to_json(),
                    "world_size": dist_.world if dist_ else 1,
                    "plugins": plugins_recorded(args.plugins),
                    "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "host": platform.node(),
                    "environment": environment(device),
                },
            )
        display = Display(console, quiet=args.quiet) if main else None
        searcher.run, searcher.display = run, display
        if main and args.on_record is not None:
            searcher.display = Forwarding(display, args.on_record)
        minutes = getattr(args, "checkpoint_minutes", None)
        searcher.checkpoint_seconds = 60.0 * minutes if minutes else None
        if display is not None:
            display.print(f"run directory: {run.path}")
            if made is not None:
                made["run"] = str(run.path)
            if dist_ is not None:
                display.print(
                    f"{dist_.world} processes, {config.batch_size} images each per step "
                    f"(effective batch {config.batch_size * dist_.world}, "
                    f"learning rate {config.lr})"
                )
        finished = False
        if args.resume:
            searcher.overrides = set(changes) | recorded_overrides(saved, config)
            resumed = searcher.restore(warn=display.print if display else print)
            record_overrides(run, saved, changes, searcher, resumed)
            finished = searcher.epoch >= config.epochs
            if display is not None:
                said = f"resumed after epoch {searcher.epoch}"
                if searcher.partial is not None:
                    said = (
                        f"resumed in epoch {searcher.epoch + 1}, after step "
                        f"{searcher.partial['step']} of {len(searcher.train_batches)}"
                    )
                if finished:
                    said = "the search had finished; its results stand"
                if not resumed:
                    said = "no checkpoint yet: starting from the first epoch"
                display.print(said)
        if run is not None and (args.tensorboard or (run.path / "tensorboard").is_dir()):
            run.open_scalars(resumed=bool(args.resume))
        searcher.run_epochs()
        stop_at("stop", searcher.epoch + 1)  # fault injection: a rank silent after training
        previous = None
        if main and finished and (run.path / "result.json").is_file():
            previous = run.read_json("result.json")
        # Every rank evaluates, or none does: the evaluation sums over ranks.
        kept = broadcast(previous is not None if main else None, dist_)
        discretised = None if kept else discretised_accuracy(searcher)
        # What every rank ended with, for result.json: the masks and the derived architecture.
        ranks = gather(
            {
                "masks": searcher.net.arch.fingerprint(),
                "genotype": searcher.strategy.derive(searcher.net).to_json()["cells"],
            },
            dist_,
        )
        result = None
        if main:
            display.close()
            if previous is not None:
                result = keep_result(run, previous, args, table)
            else:
                result = finish(searcher, run, space, args, ranks, table, defines, discretised)
    finally:
        if display is not None:
            display.close()
        if run is not None:
            run.close()
    if main:
        show_result(console, run, result)
    return result


class Forwarding:
    """A display that also hands every metrics record to a callback (`SearchRequest.on_record`)."""

    def __init__(self, display: Display, callback):
        self.display, self.callback = display, callback

    def record(self, record: dict) -> None:
        self.display.record(record)
        self.callback(dict(record))

    def __getattr__(self, name):
        return getattr(self.display, name)


def discretised_accuracy(searcher: Searcher) -> float:
    """Test accuracy of the supernet restricted to the derived architecture, with the weights
    it searched with (not trained from scratch); the masks are put back afterwards."""
    arch = searcher.net.arch
    masks = {cell: arch.mask(cell).clone() for cell in arch.choices}
    arch.restrict(searcher.strategy.derive(searcher.net))
    try:
        return searcher.evaluate()["test_acc"]
    finally:
        with torch.no_grad():
            for cell, mask in masks.items():
                arch.mask(cell).copy_(mask)
        arch.version += 1


def summarise_seeds(console: Console, directory: Path, results: list[dict]) -> None:
    """One summary of the genotypes (and NB201 accuracies) that independent seeds found:
    `summary.json` and `report.html` with the found cells side by side, in `directory`.

    Every mean says how many seeds it covers: a seed whose cell is not in the table adds nothing
    to the NB201 figures, and the search time and supernet accuracies are summarised with or
    without a table."""
    count = len(results)
    spread, others = spread_over(results)
    directory.mkdir(parents=True, exist_ok=True)
    summary = directory / "summary.json"
    summary.write_text(
        json.dumps({"seeds": count, "runs": results, "nb201_accuracy": spread, **others}, indent=2)
        + "\n"
    )
    lines = [f"{count} seeds:"]
    for result in results:
        found = (
            result.get("nb201")
            or result.get("darts")
            or result.get("blocks")
            or json.dumps(result["genotype"])
        )
        extra = ""
        if result.get("nb201_accuracy"):
            extra = f"  cifar10 {result['nb201_accuracy'].get('cifar10', float('nan')):.2f}%"
        elif "nb201_accuracy" in result:
            extra = "  (not in the table)"
        lines.append(f"  seed {result['seed']}: {found}{extra}  ({result['run']})")
    labels = {
        "search_seconds": ("search time", " s"),
        "supernet_before_discretisation": ("supernet test accuracy before discretisation", "%"),
        "supernet_discretised": ("supernet test accuracy, discretised", "%"),
    }
    for key, (label, unit) in labels.items():
        if others.get(key):
            lines.append(f"  {label}: {spread_text(others[key], count, unit)}")
    for key, value in spread.items():
        lines.append(f"  NAS-Bench-201 {key}: {spread_text(value, count, '%')}")
    if any("nb201_accuracy" in r for r in results) and not spread:
        lines.append("  NAS-Bench-201: no seed's cell is in the table")
    lines.append(f"  summary: {summary}")
    try:
        from nasc.runtime.reports.pages import write_seeds_report

        lines.append(f"  report: {write_seeds_report(directory)}")
    except Exception as error:  # noqa: BLE001 - the summary is written; pictures are extra
        lines.append(f"  no report ({type(error).__name__}: {error}); try: nasc report {directory}")
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def spread_over(results: list[dict]) -> tuple[dict, dict]:
    """The mean and spread over searches (seeds) of the NB201 accuracies of their cells, and of
    their search time and supernet accuracies; each figure says how many searches it covers."""
    spread = accuracy_spread([r["nb201_accuracy"] for r in results if r.get("nb201_accuracy")])
    measured = {
        "search_seconds": [r.get("search_seconds") for r in results],
        "supernet_before_discretisation": [
            (r.get("supernet_test_acc") or {}).get("before_discretisation") for r in results
        ],
        "supernet_discretised": [
            (r.get("supernet_test_acc") or {}).get("discretised") for r in results
        ],
    }
    others = {
        key: accuracy_spread([{"value": v} for v in values if v is not None]).get("value")
        for key, values in measured.items()
    }
    return spread, others


def spread_text(value: dict, seeds: int, unit: str) -> str:
    """`mean +- std unit (over k of n seeds)`; one value has no spread to show."""
    digits = 1 if unit == " s" else 2
    covered = value["runs"]
    over = f"all {seeds} seeds" if covered == seeds else f"{covered} of {seeds} seeds"
    if covered < 2:
        return f"{value['mean']:.{digits}f}{unit} ({over}; no spread from one)"
    return f"{value['mean']:.{digits}f} +- {value['std']:.{digits}f}{unit} (over {over})"


def validate(config: SearchConfig) -> None:
    """Refuse settings that cannot run, naming the flag and what to pass instead."""
    problems = []
    if config.epochs < 1:
        problems.append(("--epochs", "must be at least 1", None))
    if config.batch_size < 1:
        problems.append(("--batch-size", "must be at least 1", None))
    if config.strategy == "isdarts":
        steps, interval, epochs = config.shrink_steps, config.shrink_interval, config.epochs
        if steps < 1 or interval < 1:
            problems.append(("--shrink-steps/--shrink-interval", "must be at least 1", None))
        elif steps * interval >= epochs:
            # The first shrink follows epoch `epochs - steps * interval`, which must be >= 1.
            fits = (epochs - 1) // interval
            hint = f"pass --epochs {steps * interval + 1} (or more)"
            if fits >= 1:
                hint += f", or --shrink-steps {fits} (the most that fit in {epochs} epochs)"
            elif epochs > 1:
                hint += f", or --shrink-steps {epochs - 1} --shrink-interval 1"
            problems.append(
                (
                    "--shrink-steps",
                    f"{steps} steps every {interval} epochs need at least "
                    f"{steps * interval + 1} epochs, not {epochs}",
                    hint,
                )
            )
        if config.measure_on not in MEASURE_PROTOCOLS:
            problems.append(
                ("--measure-on", f"must be one of {', '.join(MEASURE_PROTOCOLS)}", None)
            )
        if config.measure_samples < 2:
            problems.append(("--measure-samples", "must be at least 2", None))
        if config.mixing not in ("mean", "live_mean"):
            problems.append(("--mixing", "must be mean or live_mean", None))
        # IS-DARTS measures each candidate's output over all of an edge's channels.
        for flag, on in (
            ("--partial-channels", config.partial_channels != 1),
            ("--edge-normalisation", config.edge_normalisation),
            ("--latency-weight", config.latency_weight != 0),
        ):
            if on:
                problems.append(
                    (
                        flag,
                        "is a DARTS-family option: IS-DARTS ranks candidates by the information "
                        "of their full-channel outputs and has no architecture loss",
                        "use it with --strategy darts-1st, darts-2nd or single-darts",
                    )
                )
    if config.partial_channels < 1:
        problems.append(("--partial-channels", "must be at least 1", None))
    if not config.latency_weight >= 0:  # NaN too
        problems.append(("--latency-weight", "must be zero or positive", None))
    elif config.latency_weight > 0 and not config.latency_table:
        problems.append(
            ("--latency-weight", "needs --latency-table FILE", "make one with `nasc profile SPACE`")
        )
    if config.strategy == "gdas" and not 0 < config.gdas_tau_min <= config.gdas_tau_max:
        problems.append(
            ("--gdas-tau-min/--gdas-tau-max", "must satisfy 0 < tau-min <= tau-max", None)
        )
    if config.strategy == "drnas":
        if config.drnas_reg not in ("l2", "kl"):
            problems.append(("--drnas-reg", "must be l2 or kl", None))
        if config.drnas_reg_scale < 0:
            problems.append(("--drnas-reg-scale", "must not be negative", None))
        if not 0 <= config.drnas_prune_epoch < config.epochs:
            problems.append(
                (
                    "--drnas-prune-epoch",
                    f"must lie in 0..{config.epochs - 1} (0: no pruning)",
                    f"the reference prunes halfway: --drnas-prune-epoch {config.epochs // 2}",
                )
            )
        if config.drnas_keep < 1:
            problems.append(("--drnas-keep", "must be at least 1", None))
    if config.strategy == "ms-darts":
        if config.ms_bandwidth < 0:
            problems.append(("--ms-bandwidth", "must not be negative", None))
        if config.ms_samples < 1:
            problems.append(("--ms-samples", "must be at least 1", None))
    if not 0.0 < config.train_portion < 1.0:
        problems.append(("--train-portion", "must lie between 0 and 1", None))
    if config.lr <= 0 or config.lr_min < 0:
        problems.append(("--lr/--lr-min", "must be positive", None))
    if config.device not in ("auto", "cpu", "cuda"):
        problems.append(("--device", "must be auto, cpu or cuda", None))
    if problems:
        flag, what, hint = problems[0]
        raise NascUsageError(f"{flag} {what}", hint=hint or "see nasc search --help")


def searched_values(space: SpaceIR, defines: dict[str, int]) -> dict[str, int]:
    """The network parameters the search ran with (defaults and -D values, data bound)."""
    plan = instantiate(space, defines, catalog())
    return dict(plan.params)


def finish(
    searcher: Searcher,
    run: RunDir,
    space: SpaceIR,
    args,
    ranks: list[dict],
    table: NB201Table | None,
    defines: dict[str, int],
    discretised: float | None,
) -> dict:
    """Write the found architecture in every form, look it up in NB201, and summarise."""
    genotype = searcher.strategy.derive(searcher.net)
    run.write_json("genotype.json", genotype.to_json())
    searched = searched_values(space, defines)
    values = ", ".join(f"{name}={value}" for name, value in searched.items())
    defaults = "keeps the space's defaults (override them with -D, or let `nasc train --preset` "
    defaults += "set them)."
    if space.block_choices:
        # Its layers were chosen one by one, for these values: they become the defaults.
        space = space.for_values(searched)
        defaults = "has these values as its defaults: its layers were chosen for them."
    run.write_text(
        "arch.nas",
        fixed_source(
            space,
            genotype,
            header=f"Found by nasc search ({searcher.config.strategy}) in {space.name}; "
            f"run {run.path.name}.\n"
            f"Searched with {values}; the network below {defaults}",
        ),
    )
    strings = genotype_strings(space, genotype)
    if "nb201" in strings:
        run.write_text("nb201.txt", strings["nb201"] + "\n")
    if "darts" in strings:
        run.write_text("darts.txt", strings["darts"] + "\n")
    history = getattr(searcher.strategy, "history", None)
    if history is not None:
        run.write_json("importance.json", history)
    metrics = run.metrics_lines()
    epochs = [line for line in metrics if line.get("event") == "epoch"]
    shrinks = [line["epoch"] for line in metrics if line.get("event") == "shrink"]
    # Before discretisation: the supernet evaluated just before the last shrink step (IS-DARTS),
    # or at the end (the DARTS family, whose supernet stays mixed until derivation).
    before = [m for m in epochs if not shrinks or m["epoch"] <= shrinks[-1]]
    result = {
        "space": space.name,
        "strategy": searcher.config.strategy,
        "genotype": genotype.to_json()["cells"],
        **strings,
        "searched_with": searched,
        "final_test_acc": epochs[-1]["test_acc"] if epochs else None,
        "supernet_test_acc": {
            "before_discretisation": before[-1]["test_acc"] if before else None,
            "before_epoch": before[-1]["epoch"] if before else None,
            "discretised": discretised,
            "note": "the supernet's shared weights on the test split, not the found network "
            "trained from scratch",
        },
        "search_seconds": searcher.seconds,
        "epochs": searcher.epoch,
        "seed": searcher.config.seed,
        "run": str(run.path),
        "ranks": ranks,
        "environment": environment(searcher.device),
    }
    measured = [line for line in metrics if line.get("event") == "shrink"]
    if any("measure_seconds" in line for line in measured):
        result["measure_on"] = searcher.config.measure_on
        result["measure_seconds"] = sum(line.get("measure_seconds", 0.0) for line in measured)
    previous = run.read_json("result.json") if (run.path / "result.json").is_file() else {}
    looked_up = lookup(result, args, table)
    if not looked_up:  # what an earlier look-up of this run knew, it keeps
        for key in ("nb201_table", "nb201_accuracy", "nb201_rank"):
            if key in previous and previous.get("nb201") == result.get("nb201"):
                result[key] = previous[key]
    run.write_json("result.json", result)
    _write_report(run, result)
    return result


def lookup(result: dict, args, table: NB201Table | None) -> bool:
    """Add the NB201 accuracies (and ranks) of the found cell to `result`; False when no
    look-up was asked for or the space has no NB201 string."""
    if "nb201" not in result:
        return False
    if table is not None:
        result["nb201_table"] = str(Path(table.path).resolve())
        found = table.lookup(result["nb201"])
        result["nb201_accuracy"] = found
        result["nb201_rank"] = (
            {key: table.rank(result["nb201"], key) for key in found} if found else None
        )
        return True
    if getattr(args, "nats_bench", None) is not None:
        result["nb201_accuracy"] = lookup_nats(result["nb201"], args.nats_bench or None)
        return True
    return False


def keep_result(run: RunDir, previous: dict, args, table: NB201Table | None) -> dict:
    """A resumed run that had already finished: its results stand; only a new look-up is
    added."""
    result = dict(previous)
    if lookup(result, args, table) and result != previous:
        run.write_json("result.json", result)
        _write_report(run, result)
    elif (run.path / "report.html").is_file():
        result["report"] = str(run.path / "report.html")
    return result


def _write_report(run: RunDir, result: dict) -> None:
    result.pop("report_error", None)
    try:
        from nasc.runtime.reports.pages import write_report

        result["report"] = str(write_report(run.path))
    except Exception as error:  # noqa: BLE001 - the search's results are written; pictures are extra
        result["report"] = None
        result["report_error"] = f"{type(error).__name__}: {error}"


def accuracy_lines(result: dict) -> list[str]:
    """What each accuracy of a search is, labelled: the supernet's (shared weights) before and
    after discretisation, and the found cell's own where a table knows it."""
    lines = []
    supernet = result.get("supernet_test_acc") or {}
    if supernet.get("before_discretisation") is not None or supernet.get("discretised"):
        parts = []
        if supernet.get("before_discretisation") is not None:
            parts.append(
                f"{supernet['before_discretisation']:.2f}% before discretisation "
                f"(epoch {supernet.get('before_epoch')})"
            )
        if supernet.get("discretised") is not None:
            parts.append(f"{supernet['discretised']:.2f}% discretised to the found architecture")
        lines.append(
            "supernet test accuracy (shared weights, not trained from scratch): " + ", ".join(parts)
        )
    elif result.get("final_test_acc") is not None:
        lines.append(f"supernet test accuracy (last epoch): {result['final_test_acc']:.2f}%")
    accuracy = result.get("nb201_accuracy")
    if accuracy:
        ranks = result.get("nb201_rank") or {}
        lines.append(
            "NAS-Bench-201 test accuracy of the found cell (trained from scratch): "
            + ", ".join(
                f"{k} {v:.2f}%" + (f" (rank {ranks[k]:,} of 15,625)" if ranks.get(k) else "")
                for k, v in accuracy.items()
            )
        )
    elif "nb201_accuracy" in result:
        lines.append("NAS-Bench-201: the cell is not in the table")
    return lines


def show_result(console: Console, run: RunDir, result: dict) -> None:
    """Print what the search found; long strings stay on one line so they can be copied."""
    lines = [f"found by {result['strategy']} in {result['search_seconds']:.0f} s of search"]
    for key in ("blocks", "nb201", "darts"):
        if key in result:
            lines.append(f"  {key}: {result[key]}")
    decided = {pair.split("=")[0] for pair in result.get("blocks", "").split()}
    if "nb201" not in result and "darts" not in result:
        for cell, edges in result["genotype"].items():
            if cell in decided:
                continue  # the blocks string above names it
            chosen = ", ".join(f"{e}:{'+'.join(ops) or '-'}" for e, ops in edges.items())
            lines.append(f"  {cell}: {chosen}")
    lines.extend(f"  {line}" for line in accuracy_lines(result))
    if result.get("measure_seconds") is not None and result["search_seconds"] > 0:
        share = 100.0 * result["measure_seconds"] / result["search_seconds"]
        lines.append(
            f"  information measured on `{result['measure_on']}` data: "
            f"{result['measure_seconds']:.0f} s, {share:.0f}% of the search"
        )
    lines.append(f"  run directory: {run.path} (arch.nas, genotype.json, result.json)")
    if result.get("report"):
        lines.append(f"  report: {result['report']}")
    elif result.get("report_error"):
        lines.append(f"  no report ({result['report_error']}); try: nasc report {run.path}")
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)


# --- resumes that keep their settings -------------------------------------------------------------


def check_run_config(saved, where: Path, cls=SearchConfig) -> None:
    """Refuse a run's config.json that is not what `nasc search` (or, with `cls` TrainConfig,
    `nasc train`) wrote, naming the key.

    Raises:
        NascUsageError: not an object, a missing or mistyped field, an unknown setting.
    """
    from nasc.runtime.search.config import check_values

    if not isinstance(saved, dict):
        raise NascUsageError(
            f"{where} must hold a JSON object, not {type(saved).__name__}",
            hint="restore the file, or start a new search",
        )
    for key, kind in (("defines", dict), ("data", str), ("config", dict)):
        if key not in saved:
            raise NascUsageError(
                f"{where} has no `{key}`", hint="restore the file, or start a new search"
            )
        if not isinstance(saved[key], kind):
            raise NascUsageError(
                f"{where}: `{key}` must be a JSON {'object' if kind is dict else 'string'}",
                hint="restore the file, or start a new search",
            )
    for name, value in saved["defines"].items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise NascUsageError(
                f"{where}: the value of `{name}` in `defines` must be an integer, not {value!r}",
                hint="restore the file, or start a new search",
            )
    for key in ("subset", "world_size"):
        value = saved.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise NascUsageError(
                f"{where}: `{key}` must be an integer or null, not {value!r}",
                hint="restore the file, or start a new search",
            )
    check_values(saved["config"], cls, str(where))
    if cls is SearchConfig and "strategy" not in saved["config"]:
        raise NascUsageError(f"{where}: `config` has no `strategy`", hint="restore the file")
    plugins = saved.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(name, str) for name in plugins):
        raise NascUsageError(
            f"{where}: `plugins` must be a list of module names or .py paths",
            hint="restore the file, or start a new search",
        )
    if not isinstance(saved.get("overrides", []), list):
        raise NascUsageError(f"{where}: `overrides` must be a list", hint="restore the file")


def resume_changes(
    saved: dict, overrides: dict, args, dist_, allowed=RESUME_OVERRIDES, noun: str = "search"
) -> dict:
    """The settings a resume's flags change, refusing those that cannot change on resume
    (all but `allowed`); `noun` names the kind of run in the hints.

    Returns:
        {setting: new value} for the accepted overrides (see `trainer.RESUME_OVERRIDES`).

    Raises:
        NascUsageError: naming the setting (epochs, batch_size, seed, subset, -D, world size...).
    """
    changes = {}
    for key, value in overrides.items():
        if value is None or saved["config"].get(key) == value:
            continue
        flag = "--" + key.replace("_", "-")
        if key not in allowed:
            raise NascUsageError(
                f"{flag} {value}: this run has {key} = {saved['config'].get(key)!r}, and {key} "
                "cannot change on resume (it changes what the run computes)",
                hint=f"resume without {flag}, or start a new {noun} with it",
            )
        changes[key] = value
    if args.subset is not None and args.subset != saved.get("subset"):
        raise NascUsageError(
            f"--subset {args.subset}: this run used subset = {saved.get('subset')!r}, and "
            "the data cannot change on resume",
            hint=f"resume without --subset, or start a new {noun} with it",
        )
    if args.defines and dict(args.defines) != {
        k: v for k, v in saved["defines"].items() if k in args.defines
    }:
        given = " -D ".join(f"{name}={value}" for name, value in args.defines.items())
        raise NascUsageError(
            f"-D {given}: this run used {saved['defines']}; "
            "network parameters cannot change on resume",
            hint=f"resume without -D, or start a new {noun} with it",
        )
    world = dist_.world if dist_ is not None else 1
    if saved.get("world_size", 1) != world:
        was = saved.get("world_size", 1)
        raise NascUsageError(
            f"this run was searched by {was} process{'es' if was != 1 else ''}, not {world}; "
            "the world size cannot change on resume (each step's batch is split across them)",
            hint=f"resume with torchrun --nproc-per-node {was} ... --resume RUN"
            if was > 1
            else "resume without torchrun",
        )
    return changes


def result_settings(config: SearchConfig, data_spec, subset, dist_) -> dict:
    """The settings that change what a search computes, as checkpoints record them."""
    values = {k: v for k, v in config.to_json().items() if k != "device"}
    return {
        **values,
        "data": data_spec,
        "subset": subset,
        "world_size": dist_.world if dist_ is not None else 1,
    }


def recorded_overrides(saved: dict, config: SearchConfig) -> set[str]:
    """Settings an earlier resume changed explicitly (recorded in config.json), still in force."""
    last = {}
    for entry in saved.get("overrides", []):
        if isinstance(entry, dict) and isinstance(entry.get("settings"), dict):
            last.update(entry["settings"])
    current = config.to_json()
    return {key for key, value in last.items() if current.get(key) == value}


def record_overrides(run, saved: dict, changes: dict, searcher, resumed: bool) -> None:
    """Record a resume's accepted overrides: in config.json (so a later plain --resume keeps
    them) and, where they differ from the checkpoint's, as an `override` line in the metrics."""
    recorded = searcher.settings or {}
    differ = {}
    if resumed and searcher.last_settings is not None:
        differ = {
            key: recorded[key]
            for key in sorted(searcher.overrides)
            if key in recorded and searcher.last_settings.get(key) != recorded[key]
        }
    if changes and run is not None:
        saved = {**saved, "config": {**saved["config"], **changes}}
        saved["overrides"] = [
            *saved.get("overrides", []),
            {
                "after_epoch": searcher.epoch,
                "settings": changes,
                "at": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        ]
        run.write_json("config.json", saved)
    if differ or (changes and not resumed):
        searcher._log({"event": "override", "epoch": searcher.epoch, "settings": differ or changes})
