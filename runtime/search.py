"""`nasc search`: prepare a run directory, run the search, export what it found."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path

import torch
from rich.console import Console

from nasc.compiler import CompileOptions, catalog, fixed_source, genotype_strings
from nasc.dsl import NascUsageError, SpaceIR, find_space, parse_space, read_source
from nasc.dsl.macro import instantiate

from .config import MEASURE_PROTOCOLS, SearchConfig, make_config
from .data import ImageData, load_data
from .distributed import broadcast, collective_failed, gather, rank_lost, setup, shutdown
from .faults import stop_at
from .memory import check_fits
from .nb201 import NB201Table, accuracy_spread, lookup_nats, parse_columns
from .progress import Display
from .rundir import RunDir, unique_directory
from .scalars import require_tensorboard
from .trainer import RESUME_OVERRIDES, Searcher, resolve_device

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


def run_search(args, console: Console) -> int:
    """Run or resume a search (or `--seeds N` independent searches) from parsed arguments.

    Under torchrun every rank runs this; rank 0 alone writes the run directory and prints.
    """
    from .config import config_overrides

    overrides = config_overrides(args)
    if args.tensorboard:
        require_tensorboard()
    timeout_s = getattr(args, "dist_timeout", None)
    dist_, device_name = setup(overrides.get("device") or "auto", timeout_s)
    try:
        seeds = getattr(args, "seeds", None) or 1
        if seeds == 1 or args.resume:
            try:
                _search_once(args, console, overrides, dist_, device_name)
            except RuntimeError as error:  # a collective failed: a rank went silent
                if dist_ is None or not collective_failed(error):
                    raise
                where = getattr(args, "run_dir_made", None) or args.resume or "RUN_DIR"
                raise rank_lost(dist_, error, timeout_s, where) from None
            return 0
        first = overrides.get("seed") or 0
        stamp = time.strftime("%Y%m%d-%H%M%S")
        results = []
        for offset in range(seeds):
            overrides = {**overrides, "seed": first + offset}
            results.append(_search_once(args, console, overrides, dist_, device_name))
        if dist_ is None or dist_.main:
            summarise_seeds(
                console, unique_directory(Path(args.runs_dir), f"seeds-{stamp}"), results
            )
        return 0
    finally:
        shutdown()


def _search_once(args, console, overrides, dist_, device_name) -> dict | None:
    from .cli import parse_defines

    main = dist_ is None or dist_.main
    run = None
    if args.resume:
        run = RunDir.open(Path(args.resume)) if main else None
        saved, source = broadcast(
            (run.read_json("config.json"), read_source(run.path / "space.nas")) if main else None,
            dist_,
        )
        check_run_config(saved, Path(args.resume) / "config.json")
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
        source = read_source(find_space(args.space))
        user_defines = parse_defines(args.defines)
        space = parse_space(source, str(args.space), catalog=catalog(), overrides=user_defines)
        strategy = args.strategy or "isdarts"
        config = make_config(args.preset or space.preset, strategy, overrides)
        data_spec, subset = args.data, args.subset
    validate(config)
    device = torch.device(device_name) if dist_ is not None else resolve_device(config.device)
    data = load_data(data_spec, args.cache_dir, getattr(args, "image_size", None))
    if subset:
        data = data.subset(subset, seed=0)
    if not args.resume:
        defines = bind_data(space, user_defines, data)
        if main:
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
                    "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "host": platform.node(),
                },
            )
    if not args.no_memory_check:
        options = CompileOptions(search=True, track_running_stats=config.track_running_stats)
        check_fits(space, defines, config.batch_size, options, device)
    display = Display(console, quiet=args.quiet) if main else None
    if display is not None:
        display.print(f"run directory: {run.path}")
        args.run_dir_made = str(run.path)  # for the message of a lost rank
        if dist_ is not None:
            display.print(
                f"{dist_.world} processes, {config.batch_size} images each per step "
                f"(effective batch {config.batch_size * dist_.world}, learning rate {config.lr})"
            )
    try:
        searcher = Searcher(
            space,
            defines,
            config,
            data,
            device,
            run=run,
            display=display,
            fingerprint=fingerprint(
                source, defines, config.strategy, data_spec, config.seed, config.epochs
            ),
            dist=dist_,
        )
        searcher.settings = result_settings(config, data_spec, subset, dist_)
        if args.resume:
            searcher.overrides = set(changes) | recorded_overrides(saved, config)
            resumed = searcher.restore(warn=display.print if display else print)
            record_overrides(run, saved, changes, searcher, resumed)
            if display is not None:
                display.print(
                    f"resumed after epoch {searcher.epoch}"
                    if resumed
                    else "no checkpoint yet: starting from the first epoch"
                )
        if run is not None and (args.tensorboard or (run.path / "tensorboard").is_dir()):
            run.open_scalars(resumed=bool(args.resume))
        started = time.perf_counter()
        searcher.run_epochs()
        stop_at("stop", searcher.epoch + 1)  # fault injection: a rank silent after training
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
            result = finish(
                searcher, run, space, source, args, time.perf_counter() - started, ranks
            )
    finally:
        if display is not None:
            display.close()
        if run is not None:
            run.close()
    if main:
        show_result(console, run, result)
    return result


def summarise_seeds(console: Console, directory: Path, results: list[dict]) -> None:
    """One summary of the genotypes (and NB201 accuracies) that independent seeds found:
    `summary.json` and `report.html` with the found cells side by side, in `directory`."""
    spread = accuracy_spread([r["nb201_accuracy"] for r in results if r.get("nb201_accuracy")])
    directory.mkdir(parents=True, exist_ok=True)
    summary = directory / "summary.json"
    summary.write_text(json.dumps({"runs": results, "nb201_accuracy": spread}, indent=2) + "\n")
    lines = [f"{len(results)} seeds:"]
    for result in results:
        found = result.get("nb201") or result.get("darts") or json.dumps(result["genotype"])
        extra = ""
        if result.get("nb201_accuracy"):
            extra = f"  cifar10 {result['nb201_accuracy'].get('cifar10', float('nan')):.2f}%"
        lines.append(f"  seed {result['seed']}: {found}{extra}  ({result['run']})")
    for key, value in spread.items():
        lines.append(f"  NAS-Bench-201 {key}: {value['mean']:.2f} +- {value['std']:.2f}%")
    lines.append(f"  summary: {summary}")
    try:
        from .report import write_seeds_report

        lines.append(f"  report: {write_seeds_report(directory)}")
    except Exception as error:  # noqa: BLE001 - the summary is written; pictures are extra
        lines.append(f"  no report ({type(error).__name__}: {error}); try: nasc report {directory}")
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def validate(config: SearchConfig) -> None:
    """Refuse settings that cannot run, naming the flag."""
    problems = []
    if config.epochs < 1:
        problems.append(("--epochs", "must be at least 1"))
    if config.batch_size < 1:
        problems.append(("--batch-size", "must be at least 1"))
    if config.strategy == "isdarts":
        if config.shrink_steps < 1 or config.shrink_interval < 1:
            problems.append(("--shrink-steps/--shrink-interval", "must be at least 1"))
        elif config.shrink_steps * config.shrink_interval >= config.epochs:
            # The first shrink follows epoch `epochs - steps * interval`, which must be >= 1.
            problems.append(
                (
                    "--shrink-steps",
                    f"{config.shrink_steps} steps every {config.shrink_interval} "
                    f"epochs need at least "
                    f"{config.shrink_steps * config.shrink_interval + 1} epochs",
                )
            )
        if config.measure_on not in MEASURE_PROTOCOLS:
            problems.append(("--measure-on", f"must be one of {', '.join(MEASURE_PROTOCOLS)}"))
        if config.measure_samples < 2:
            problems.append(("--measure-samples", "must be at least 2"))
        if config.mixing not in ("mean", "live_mean"):
            problems.append(("--mixing", "must be mean or live_mean"))
    if not 0.0 < config.train_portion < 1.0:
        problems.append(("--train-portion", "must lie between 0 and 1"))
    if config.lr <= 0 or config.lr_min < 0:
        problems.append(("--lr/--lr-min", "must be positive"))
    if config.device not in ("auto", "cpu", "cuda"):
        problems.append(("--device", "must be auto, cpu or cuda"))
    if problems:
        flag, what = problems[0]
        raise NascUsageError(f"{flag} {what}", hint="see nasc search --help")


def finish(
    searcher: Searcher,
    run: RunDir,
    space: SpaceIR,
    source: str,
    args,
    seconds: float,
    ranks: list[dict],
) -> dict:
    """Write the found architecture in every form, look it up in NB201, and summarise."""
    genotype = searcher.strategy.derive(searcher.net)
    run.write_json("genotype.json", genotype.to_json())
    run.write_text(
        "arch.nas",
        fixed_source(
            space,
            genotype,
            header=f"Found by nasc search ({searcher.config.strategy}) in {space.name}; "
            f"run {run.path.name}.",
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
    metrics = [line for line in run.metrics_lines() if line.get("event") == "epoch"]
    result = {
        "space": space.name,
        "strategy": searcher.config.strategy,
        "genotype": genotype.to_json()["cells"],
        **strings,
        "final_test_acc": metrics[-1]["test_acc"] if metrics else None,
        "search_seconds": seconds,
        "seed": searcher.config.seed,
        "run": str(run.path),
        "ranks": ranks,
    }
    shrinks = [line for line in run.metrics_lines() if line.get("event") == "shrink"]
    if any("measure_seconds" in line for line in shrinks):
        result["measure_on"] = searcher.config.measure_on
        result["measure_seconds"] = sum(line.get("measure_seconds", 0.0) for line in shrinks)
    if "nb201" in strings and (args.nb201_table or args.nats_bench):
        if args.nb201_table:
            table = NB201Table.load(args.nb201_table, parse_columns(args.nb201_columns))
            result["nb201_table"] = str(Path(args.nb201_table).resolve())
            found = table.lookup(strings["nb201"])
            result["nb201_accuracy"] = found
            result["nb201_rank"] = (
                {key: table.rank(strings["nb201"], key) for key in found} if found else None
            )
        else:
            result["nb201_accuracy"] = lookup_nats(strings["nb201"], args.nats_bench)
    run.write_json("result.json", result)
    try:
        from .report import write_report

        result["report"] = str(write_report(run.path))
    except Exception as error:  # noqa: BLE001 - the search's results are written; pictures are extra
        result["report_error"] = f"{type(error).__name__}: {error}"
    return result


def show_result(console: Console, run: RunDir, result: dict) -> None:
    """Print what the search found; long strings stay on one line so they can be copied."""
    lines = [f"found by {result['strategy']} in {result['search_seconds']:.0f} s"]
    for key in ("nb201", "darts"):
        if key in result:
            lines.append(f"  {key}: {result[key]}")
    if "nb201" not in result and "darts" not in result:
        for cell, edges in result["genotype"].items():
            chosen = ", ".join(f"{e}:{'+'.join(ops) or '-'}" for e, ops in edges.items())
            lines.append(f"  {cell}: {chosen}")
    if result.get("final_test_acc") is not None:
        lines.append(f"  supernet test accuracy: {result['final_test_acc']:.2f}%")
    if result.get("measure_seconds") is not None and result["search_seconds"] > 0:
        share = 100.0 * result["measure_seconds"] / result["search_seconds"]
        lines.append(
            f"  information measured on `{result['measure_on']}` data: "
            f"{result['measure_seconds']:.0f} s, {share:.0f}% of the search"
        )
    accuracy = result.get("nb201_accuracy")
    if accuracy:
        ranks = result.get("nb201_rank") or {}
        lines.append(
            "  NAS-Bench-201 test accuracy: "
            + ", ".join(
                f"{k} {v:.2f}%" + (f" (rank {ranks[k]:,} of 15,625)" if ranks.get(k) else "")
                for k, v in accuracy.items()
            )
        )
    elif "nb201_accuracy" in result:
        lines.append("  NAS-Bench-201: the cell is not in the table")
    lines.append(f"  run directory: {run.path} (arch.nas, genotype.json, result.json)")
    if result.get("report"):
        lines.append(f"  report: {result['report']}")
    elif result.get("report_error"):
        lines.append(f"  no report ({result['report_error']}); try: nasc report {run.path}")
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)


# --- resumes that keep their settings -------------------------------------------------------------


def check_run_config(saved, where: Path) -> None:
    """Refuse a run's config.json that is not what `nasc search` wrote, naming the key.

    Raises:
        NascUsageError: not an object, a missing or mistyped field, an unknown setting.
    """
    from .config import check_values

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
    check_values(saved["config"], SearchConfig, str(where))
    if "strategy" not in saved["config"]:
        raise NascUsageError(f"{where}: `config` has no `strategy`", hint="restore the file")
    if not isinstance(saved.get("overrides", []), list):
        raise NascUsageError(f"{where}: `overrides` must be a list", hint="restore the file")


def resume_changes(saved: dict, overrides: dict, args, dist_) -> dict:
    """The settings a resume's flags change, refusing those that cannot change on resume.

    Returns:
        {setting: new value} for the accepted overrides (see `trainer.RESUME_OVERRIDES`).

    Raises:
        NascUsageError: naming the setting (epochs, batch_size, seed, subset, -D, world size...).
    """
    from .cli import parse_defines

    changes = {}
    for key, value in overrides.items():
        if value is None or saved["config"].get(key) == value:
            continue
        flag = "--" + key.replace("_", "-")
        if key not in RESUME_OVERRIDES:
            raise NascUsageError(
                f"{flag} {value}: this run has {key} = {saved['config'].get(key)!r}, and {key} "
                "cannot change on resume (it changes what the run computes)",
                hint=f"resume without {flag}, or start a new search with it",
            )
        changes[key] = value
    if args.subset is not None and args.subset != saved.get("subset"):
        raise NascUsageError(
            f"--subset {args.subset}: this run searched on subset = {saved.get('subset')!r}, and "
            "the data cannot change on resume",
            hint="resume without --subset, or start a new search with it",
        )
    if args.defines and parse_defines(args.defines) != {
        k: v for k, v in saved["defines"].items() if k in parse_defines(args.defines)
    }:
        raise NascUsageError(
            f"-D {' -D '.join(args.defines)}: this run searched with {saved['defines']}; "
            "network parameters cannot change on resume",
            hint="resume without -D, or start a new search with it",
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
