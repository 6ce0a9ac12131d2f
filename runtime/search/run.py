"""`nasc search` as a library call: read the request, prepare the data and the run directory,
run the search, and return what it found on every rank (`run_search`)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import attrs
import torch

from nasc.compiler import catalog, check_partial_channels
from nasc.dsl import NascUsageError, SpaceIR, find_space, parse_space, read_source
from nasc.dsl.lower import lower
from nasc.dsl.syntax import parse_module
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
from nasc.runtime.reports.nb201 import accuracy_spread
from nasc.runtime.requests import SearchRequest, check_overrides
from nasc.runtime.runs.checkpoint import write_atomic
from nasc.runtime.runs.events import LoggedEvents, RunEvents, WithRecords
from nasc.runtime.runs.faults import stop_at
from nasc.runtime.runs.resume import (
    check_resumable,
    check_run_config,
    fingerprint,
    record_overrides,
    resume_changes,
    resume_overrides,
)
from nasc.runtime.runs.rundir import RunDir, environment, unique_directory
from nasc.runtime.runs.scalars import require_tensorboard
from nasc.runtime.runs.settings import resolve_device, validate_counts, validate_minutes
from nasc.runtime.search.config import SearchConfig, make_config, validate
from nasc.runtime.search.found import (
    discretised_accuracy,
    finish,
    keep_result,
    lookup_table,
    result_settings,
)
from nasc.runtime.search.loop import RESUME_OVERRIDES, Searcher, search_options
from nasc.runtime.search.result import SearchResult
from nasc.runtime.strategies.registry import strategy_class
from nasc.runtime.tasks import DEFAULT_TASK, Task, get_task


def run_search(request: SearchRequest, events: RunEvents | None = None) -> list[SearchResult]:
    """Run or resume a search (or `seeds` independent searches) as `request` asks.

    Under torchrun every rank runs this; rank 0 alone writes the run directory and reports
    progress, and every rank returns the same results. Every input is checked before the first
    epoch.

    Args:
        events: progress callbacks (None: messages go to the `nasc` logger).

    Returns:
        The result of each search.
    """
    events = events if events is not None else LoggedEvents()
    if request.on_record is not None:
        events = WithRecords(events, request.on_record)
    from nasc.runtime.search.circuits import is_circuit_request, run_circuit_search

    if is_circuit_request(request):  # a circuit space runs its own short loop
        return run_circuit_search(request, events)
    overrides = search_overrides(request.overrides)
    check_request(request)
    table = lookup_table(request)
    timeout_s = request.dist_timeout
    dist_, device_name = setup(overrides.get("device") or "auto", timeout_s)
    finished = False
    made: dict[str, str] = {}  # the run directory, once made, for the message of a lost rank
    try:
        seeds = request.seeds or 1
        if seeds == 1 or request.resume:
            try:
                found = _search_once(request, events, overrides, dist_, device_name, table, made)
            except RuntimeError as error:  # a collective failed: a rank went silent
                if dist_ is None or not collective_failed(error):
                    raise
                where = made.get("run") or request.resume or "RUN_DIR"
                raise rank_lost(dist_, error, timeout_s, where) from None
            finished = True
            return [found]
        first = overrides.get("seed") or 0
        stamp = time.strftime("%Y%m%d-%H%M%S")
        results = []
        for offset in range(seeds):
            overrides = {**overrides, "seed": first + offset}
            results.append(_search_once(request, events, overrides, dist_, device_name, table))
        if (dist_ is None or dist_.main) and request.runs_dir is not None:
            folder = unique_directory(Path(request.runs_dir), f"seeds-{stamp}")
            for line in seeds_summary(folder, [found.result for found in results]):
                events.message(line)
        finished = True
        return results
    finally:
        shutdown(finished)


def check_request(request: SearchRequest) -> None:
    """Refuse a request whose counts, checkpoint minutes or torchrun timeout cannot run, and
    TensorBoard asked for without its package, before anything starts.

    Raises:
        NascUsageError: naming the setting.
    """
    validate_counts(seeds=request.seeds, subset=request.subset, image_size=request.image_size)
    validate_minutes(request.checkpoint_minutes)
    timeout_s = request.dist_timeout
    if timeout_s is not None and not timeout_s > 0:  # NaN too
        raise NascUsageError(
            f"--dist-timeout {timeout_s:g}: must be a positive number of seconds",
            hint="the default, 600, suits most jobs",
        )
    if request.tensorboard:
        require_tensorboard()


def search_overrides(given: dict) -> dict:
    """Every SearchConfig field but the strategy, with the value given (None: the preset's).

    Raises:
        NascUsageError: a name that is no field of the search config, or a value of the
            wrong type.
    """
    import attrs

    names = [field.name for field in attrs.fields(SearchConfig) if field.name != "strategy"]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise NascUsageError(
            f"unknown search setting `{unknown[0]}`", hint=f"known settings: {', '.join(names)}"
        )
    given = check_overrides(SearchConfig, given)
    return {name: given.get(name) for name in names}


@attrs.define
class SearchPlan:
    """What a search is built from, once its request (and, on resume, its run directory) is
    read: the space, its text and -D values, the settings, the data, the task."""

    space: SpaceIR
    source: str
    defines: dict[str, int]
    config: SearchConfig
    data_spec: str
    subset: int | None
    task: Task
    image_size: int | None = None  # `--image-size`: the size folders (and shapes) are read at
    origin: str | None = None  # where the space came from, as config.json records it
    run: RunDir | None = None  # a resumed run's directory (rank 0)
    saved: dict | None = None  # a resumed run's config.json
    changes: dict = attrs.field(factory=dict)  # the settings a resume changes
    notes: list[str] = attrs.field(factory=list)  # what fitting the settings to the space did


def _search_once(
    request, events, overrides, dist_, device_name, table=None, made=None
) -> SearchResult:
    """One search, in phases: read the request (resume or new), load the data, check memory,
    build the searcher (and the run directory), restore, run the epochs, and conclude on every
    rank."""
    main = dist_ is None or dist_.main
    told = events if main else RunEvents()  # rank 0 alone reports progress
    plan = None
    try:
        if request.resume:
            plan = resumed_plan(request, overrides, dist_)
        else:
            plan = new_plan(request, overrides)
        check_plan(plan, request)
        for note in plan.notes:
            told.message(note)
        device = (
            torch.device(device_name) if dist_ is not None else resolve_device(plan.config.device)
        )
        data = load_bound_data(plan, request)
        if request.memory_check:
            check_fits(
                plan.space,
                plan.defines,
                plan.config.batch_size,
                search_options(plan.config),
                device,
            )
        searcher = build_searcher(plan, request, data, device, dist_, told, create=main)
        if main and searcher.run is not None:
            announce(searcher, plan, told, dist_, made)
        finished = restore(searcher, plan, told) if request.resume else False
        run = searcher.run
        if run is not None and (request.tensorboard or (run.path / "tensorboard").is_dir()):
            run.open_scalars(resumed=bool(request.resume))
        searcher.run_epochs()
        stop_at("stop", searcher.epoch + 1)  # fault injection: a rank silent after training
        found = conclude(searcher, plan, request, table, dist_, finished)
    finally:
        told.close()
        run = plan.run if plan is not None else None
        if run is not None:
            run.close()
    told.finished(found)
    return found


def resumed_plan(request, overrides: dict, dist_) -> SearchPlan:
    """Phase 1 of a resume: the run's config.json and space (read by rank 0, handed to every
    rank), checked, with the settings the request changes."""
    main = dist_ is None or dist_.main
    where = Path(request.resume)
    run = RunDir.open(where) if main else None
    try:
        return _read_resumed(request, overrides, dist_, where, run)
    except BaseException:
        if run is not None:
            run.close()
        raise


def _read_resumed(request, overrides: dict, dist_, where: Path, run) -> SearchPlan:
    main = dist_ is None or dist_.main
    if main:
        check_resumable(run, "space.nas", "nasc search")
    saved, source = broadcast(
        (run.read_json("config.json"), read_source(run.path / "space.nas")) if main else None,
        dist_,
    )
    check_run_config(saved, where / "config.json", SearchConfig, ("strategy",))
    load_plugins(saved.get("plugins"), where / "config.json")  # before the space names their ops
    check_resumed_space(request, source, where)
    strategy = saved["config"]["strategy"]
    if request.strategy and request.strategy != strategy:
        raise NascUsageError(
            f"{request.resume} searched with {strategy}, not {request.strategy}",
            hint="resume without --strategy, or start a new search",
        )
    changes = resume_changes(saved, overrides, request, dist_, RESUME_OVERRIDES)
    values = {**saved["config"], **{k: v for k, v in overrides.items() if v is not None}}
    values.setdefault("measure_on", "train-sample")  # how runs measured before protocols
    defines = saved["defines"]
    return SearchPlan(
        space=parse_space(source, str(where / "space.nas"), catalog=catalog(), overrides=defines),
        source=source,
        defines=defines,
        config=SearchConfig(**values),
        data_spec=saved["data"],
        subset=saved.get("subset"),
        task=get_task(saved.get("task", DEFAULT_TASK)),
        image_size=saved.get("image_size"),
        run=run,
        saved=saved,
        changes=changes,
    )


def check_resumed_space(request, source: str, where: Path) -> None:
    """Refuse a resume that names a space (a file, or a `Space` in Python) other than the one
    the run searched, its space.nas; the same network written otherwise (comments, spacing)
    is the same space.

    Raises:
        NascUsageError: naming both spaces.
    """
    if request.source is None and request.space is None:
        return
    named = request.source
    if named is None:
        named = read_source(find_space(request.space))
    if named == source:
        return
    own = lower(parse_module(source, str(where / "space.nas")))
    other = lower(parse_module(named, str(request.space)))
    if own == other:
        return
    raise NascUsageError(
        f"{request.resume} searched the space in {where / 'space.nas'} (`{own.name}`), not "
        f"{request.space} (`{other.name}`)",
        hint=f"resume without naming a space (the run keeps its own): nasc search --resume "
        f"{request.resume}; or search {request.space} anew, without --resume",
    )


def new_plan(request, overrides: dict) -> SearchPlan:
    """Phase 1 of a new search: the space read and checked, its preset's settings with
    `overrides` (the request's, the seed of `seeds` included) on top."""
    load_plugins(request.plugins)  # the command line did already; a sweep job has not
    source = (
        request.source if request.source is not None else read_source(find_space(request.space))
    )
    defines = dict(request.defines)
    space = parse_space(source, str(request.space), catalog=catalog(), overrides=defines)
    strategy = request.strategy or "isdarts"
    return SearchPlan(
        space=space,
        source=source,
        defines=defines,
        config=make_config(request.preset or space.preset, strategy, overrides),
        data_spec=request.data,
        subset=request.subset,
        task=get_task(request.task),
        image_size=request.image_size,
        origin=str(request.space),
    )


def check_plan(plan: SearchPlan, request) -> None:
    """Phase 2: refuse settings that cannot run, from the plan, before any data is read: a new
    search needs a space with choices, and settings the space can use (`Strategy.fit_space`:
    a preset's value may be lowered, with a note)."""
    if plan.saved is None:
        if plan.space.is_fixed:
            raise NascUsageError(
                f"the network `{plan.space.name}` places no cell with choices: there is "
                "nothing to search",
                hint=f"train it as it is with `nasc train {plan.origin}`, or place a cell whose "
                "edges choose from a candidate set (`n1 = x:ops` and a `keep` rule)",
            )
        given = {name for name, value in request.overrides.items() if value is not None}
        strategy = strategy_class(plan.config.strategy)
        plan.config, notes = strategy.fit_space(plan.config, plan.space, given)
        plan.notes.extend(notes)
    validate(plan.config)
    if plan.config.partial_channels > 1:
        check_partial_channels(plan.space, plan.defines, plan.config.partial_channels)


def load_bound_data(plan: SearchPlan, request):
    """Phase 3: the data, as the task loads it (a subset where asked), with what it fixes of
    the network bound into the plan's -D values (a new search's; a resume's are recorded)."""
    data = plan.task.load(plan.data_spec, request.cache_dir, plan.image_size)
    if plan.subset:
        data = plan.task.subset(data, plan.subset)
    data = plan.task.mix(data, plan.config.seed)  # no batch sees the order files were found in
    if plan.saved is None:
        plan.defines = plan.task.bind(plan.space, plan.defines, data)
        # The shape checks again, at the data's sizes (the space was read with its defaults).
        parse_space(plan.source, str(plan.origin), catalog=catalog(), overrides=plan.defines)
    return data


def build_searcher(plan, request, data, device, dist_, events, create: bool) -> Searcher:
    """Phase 4: the searcher, complete, its network run once on the data
    (`Task.check_network`); only then, for a new search on rank 0 with a run folder, is the run
    directory made, so a search that cannot start leaves no run behind."""
    config = plan.config
    minutes = request.checkpoint_minutes
    searcher = Searcher(
        plan.space,
        plan.defines,
        config,
        data,
        device,
        run=plan.run,
        events=events,
        fingerprint=fingerprint(
            plan.source,
            plan.defines,
            config.strategy,
            plan.data_spec,
            config.seed,
            config.epochs,
            plan.task.name,
        ),
        dist=dist_,
        task=plan.task,
        settings=result_settings(config, plan.data_spec, plan.subset, dist_),
        resume_overrides=resume_overrides(plan, config),
        checkpoint_seconds=60.0 * minutes if minutes else None,
    )
    plan.task.check_network(searcher.net, data, device)
    if create and plan.saved is None and request.runs_dir is not None:
        run = RunDir.create(Path(request.runs_dir), plan.space.name, config.strategy)
        plan.run = searcher.run = run
        write_run_config(run, plan, request, dist_, device)
    return searcher


def write_run_config(run: RunDir, plan: SearchPlan, request, dist_, device) -> None:
    """A new run directory's space.nas and config.json (what a resume reads back)."""
    run.write_text("space.nas", plan.source)
    run.write_json(
        "config.json",
        {
            "space": plan.origin,
            "space_name": plan.space.name,
            "defines": plan.defines,
            "data": plan.data_spec,
            "subset": plan.subset,
            "image_size": plan.image_size,
            "task": plan.task.name,
            "config": plan.config.to_json(),
            "world_size": dist_.world if dist_ else 1,
            "plugins": plugins_recorded(request.plugins),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "host": platform.node(),
            "environment": environment(device),
        },
    )


def announce(searcher: Searcher, plan: SearchPlan, events: RunEvents, dist_, made) -> None:
    """Say where the run goes (and, under torchrun, how the batch is split)."""
    run, config = searcher.run, plan.config
    events.message(f"run directory: {run.path}")
    if made is not None:
        made["run"] = str(run.path)
    if dist_ is not None:
        events.message(
            f"{dist_.world} processes, {config.batch_size} images each per step "
            f"(effective batch {config.batch_size * dist_.world}, learning rate {config.lr})"
        )


def restore(searcher: Searcher, plan: SearchPlan, events: RunEvents) -> bool:
    """Phase 5 of a resume: continue from the newest good checkpoint, record the accepted
    overrides, and say where the search goes on from. True when it had already finished."""
    resumed = searcher.restore(warn=events.message)
    record_overrides(plan.run, plan.saved, plan.changes, searcher, resumed)
    finished = searcher.epoch >= plan.config.epochs
    said = f"resumed after epoch {searcher.epoch}"
    if searcher.partial is not None:
        said = (
            f"resumed in epoch {searcher.epoch + 1}, after step "
            f"{searcher.partial['step']} of {len(searcher.epoch_batches()[0])}"
        )
    if finished:
        said = "the search had finished; its results stand"
    if not resumed:
        said = "no checkpoint yet: starting from the first epoch"
    events.message(said)
    return finished


def conclude(searcher, plan: SearchPlan, request, table, dist_, finished: bool) -> SearchResult:
    """Phase 6, on every rank: evaluate the discretised supernet (every rank or none: the
    evaluation sums over ranks), gather what each rank ended with, let rank 0 write the result,
    and hand it to every rank."""
    main = dist_ is None or dist_.main
    run = plan.run
    kept = main and finished and run is not None and (run.path / "result.json").is_file()
    kept = broadcast(kept if main else None, dist_)
    discretised = None if kept else discretised_accuracy(searcher)
    # What every rank ended with, for result.json: the masks and the derived architecture.
    ranks = gather(
        {
            "masks": searcher.net.arch.fingerprint(),
            "genotype": searcher.strategy.derive(searcher.net).to_json()["cells"],
        },
        dist_,
    )
    found = None
    if main:
        if kept:
            found = keep_result(run, request, table)
        else:
            found = finish(
                searcher, plan.space, plan.defines, request, table, ranks, discretised, run
            )
    return broadcast(found, dist_)


def summarise_seeds(out, directory: Path, results: list[dict]) -> None:
    """`seeds_summary`, its lines printed on `out` (a rich Console, or anything with such a
    `print`)."""
    for line in seeds_summary(directory, results):
        out.print(line, soft_wrap=True, highlight=False, markup=False)


def seeds_summary(directory: Path, results: list[dict]) -> list[str]:
    """One summary of the genotypes (and NB201 accuracies) that independent seeds found:
    `summary.json` and `report.html` with the found cells side by side, in `directory`; returns
    its lines.

    Every mean says how many seeds it covers: a seed whose cell is not in the table adds nothing
    to the NB201 figures, and the search time and supernet accuracies are summarised with or
    without a table."""
    count = len(results)
    spread, others = spread_over(results)
    directory.mkdir(parents=True, exist_ok=True)
    summary = directory / "summary.json"
    record = {"seeds": count, "runs": results, "nb201_accuracy": spread, **others}
    write_atomic(summary, (json.dumps(record, indent=2) + "\n").encode())
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
    return lines


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
