"""`nasc sweep`: a grid of spaces x strategies x seeds x preset fields, each point one search
submitted through submitit (a SLURM job array, or local processes), gathered into one table.

Every point has its own folder, `<sweep>/runs/<key>/`, named from its settings alone, so a
sweep run again finds its points: a finished one (result.json) is skipped, a killed or preempted
one resumes from its run directory through nasc's own `--resume`. On SLURM a preempted or
timed-out job is requeued by submitit (the job is checkpointable: requeued, it resumes).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console

from nasc.dsl import NascUsageError
from nasc.runtime.requests import SearchRequest
from nasc.runtime.runs.checkpoint import write_atomic
from nasc.runtime.search.config import SearchConfig

EXECUTORS = ("local", "slurm", "debug")


@attrs.frozen(kw_only=True)
class SweepPoint:
    """One search of the grid."""

    space: str
    strategy: str
    seed: int
    fields: dict[str, Any] = attrs.field(factory=dict, converter=lambda v: dict(sorted(v.items())))

    @property
    def key(self) -> str:
        """The point's folder name: readable, and unique within the sweep."""
        name = Path(self.space).stem if self.space.endswith(".nas") else self.space
        parts = [name, self.strategy, *(f"{k}={v}" for k, v in self.fields.items())]
        digest = hashlib.sha256(
            json.dumps([self.space, self.strategy, self.fields], sort_keys=True).encode()
        ).hexdigest()[:6]
        safe = "".join(c if c.isalnum() or c in "=.-_" else "_" for c in "-".join(parts))
        return f"{safe}-{digest}-seed{self.seed}"

    @property
    def group(self) -> str:
        """The label of the point's group: everything but the seed."""
        return " ".join([self.space, self.strategy, *(f"{k}={v}" for k, v in self.fields.items())])


@attrs.frozen(kw_only=True)
class SweepRequest:
    """A sweep: the grid, what every search shares (`base`: data, -D values, fixed preset
    fields), where it goes, and how it is submitted.

    `parameters` go to submitit's `update_parameters` (`timeout_min`, `slurm_partition`,
    `gpus_per_node`, `cpus_per_task`, `slurm_array_parallelism`, ...).
    """

    spaces: tuple[str, ...] = attrs.field(converter=tuple)
    strategies: tuple[str, ...] = attrs.field(default=("isdarts",), converter=tuple)
    seeds: tuple[int, ...] = attrs.field(default=(0,), converter=tuple)
    grid: dict[str, tuple] = attrs.field(
        factory=dict, converter=lambda v: {k: tuple(vals) for k, vals in v.items()}
    )
    base: SearchRequest = attrs.field(factory=SearchRequest)
    directory: str | None = None
    executor: str = "local"
    parameters: dict[str, Any] = attrs.field(factory=dict, converter=dict)
    wait: bool = True

    def points(self) -> list[SweepPoint]:
        names = sorted(self.grid)
        values = [self.grid[name] for name in names]
        return [
            SweepPoint(space=space, strategy=strategy, seed=seed, fields=dict(zip(names, combo)))
            for space, strategy, combo, seed in itertools.product(
                self.spaces, self.strategies, itertools.product(*values), self.seeds
            )
        ]

    def spec(self) -> dict:
        """What defines the sweep, as JSON (its default folder is named from it)."""
        base = attrs.asdict(self.base, filter=lambda field, _: field.name != "on_record")
        base.pop("runs_dir")
        return {
            "spaces": list(self.spaces),
            "strategies": list(self.strategies),
            "seeds": list(self.seeds),
            "grid": {k: list(v) for k, v in self.grid.items()},
            "base": base,
        }

    def folder(self) -> Path:
        if self.directory:
            return Path(self.directory)
        digest = hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()
        return Path(self.base.runs_dir) / f"sweep-{digest[:8]}"


def point_request(sweep: SweepRequest, point: SweepPoint, folder: Path) -> SearchRequest:
    overrides = {**sweep.base.overrides, **point.fields, "seed": point.seed}
    return attrs.evolve(
        sweep.base,
        space=point.space,
        strategy=point.strategy,
        overrides=overrides,
        runs_dir=str(folder / "runs" / point.key),
        seeds=None,
        resume=None,
        quiet=True,
    )


def run_directory(point_dir: Path) -> Path | None:
    """The search run inside a point's folder (the newest, should there be several)."""
    if not point_dir.is_dir():
        return None
    runs = sorted(p for p in point_dir.iterdir() if (p / "config.json").is_file())
    return runs[-1] if runs else None


def finished(point_dir: Path) -> dict | None:
    run = run_directory(point_dir)
    if run is None or not (run / "result.json").is_file():
        return None
    return json.loads((run / "result.json").read_text())


class SearchJob:
    """What each job runs: the point's search, resumed from its run directory where one exists.

    submitit calls `checkpoint` when SLURM preempts the job or its time runs out, and requeues
    what it returns: the same call, which resumes from the last checkpoint nasc wrote.
    """

    def __call__(self, request: SearchRequest) -> dict:
        from nasc.runtime.search.run import run_search

        point_dir = Path(request.runs_dir)
        done = finished(point_dir)
        if done is not None:
            return done
        run = run_directory(point_dir)
        if run is not None:
            request = attrs.evolve(request, resume=str(run))
        return run_search(request)[0].result

    def checkpoint(self, request: SearchRequest):
        import submitit

        return submitit.helpers.DelayedSubmission(self, request)


def check_sweep(sweep: SweepRequest) -> None:
    """Refuse a sweep that cannot run, before anything is submitted.

    Raises:
        NascError: an unknown executor, strategy or setting; a space that does not load.
    """
    from nasc.runtime.api import load_space
    from nasc.runtime.search.run import (
        lookup_table,
        search_overrides,
        validate_counts,
        validate_minutes,
    )
    from nasc.runtime.strategies import strategy_class

    if sweep.executor not in EXECUTORS:
        raise NascUsageError(
            f"--executor {sweep.executor}: unknown", hint=f"one of {', '.join(EXECUTORS)}"
        )
    if not sweep.spaces:
        raise NascUsageError("a sweep needs at least one space", hint="e.g. nasc sweep nb201")
    for strategy in sweep.strategies:
        strategy_class(strategy)  # an unknown name raises, listing the known ones
    names = {field.name for field in attrs.fields(SearchConfig)} - {"strategy", "seed"}
    for name, values in sweep.grid.items():
        if name not in names:
            raise NascUsageError(
                f"--grid {name}: not a setting a sweep can vary",
                hint=f"vary strategies with --strategy, seeds with --seeds; settings: "
                f"{', '.join(sorted(names))}",
            )
        if not values:
            raise NascUsageError(f"--grid {name}: no values", hint=f"e.g. --grid {name}=V1,V2")
    for space in sweep.spaces:
        load_space(space, **sweep.base.defines)
    search_overrides(sweep.base.overrides)
    for name, values in sweep.grid.items():  # every value of the grid, typed as its setting
        for value in values:
            search_overrides({name: value})
    validate_counts(subset=sweep.base.subset, image_size=sweep.base.image_size)
    validate_minutes(sweep.base.checkpoint_minutes)
    lookup_table(sweep.base)  # a bad table is refused once, here, not by every job


def _executor(sweep: SweepRequest, folder: Path):
    try:
        import submitit
    except ImportError:
        raise NascUsageError(
            "nasc sweep submits its searches through submitit, which is not installed",
            hint="pip install 'nasc[sweep]' (or pip install submitit)",
        ) from None
    executor = submitit.AutoExecutor(folder=str(folder / "submitit" / "%j"), cluster=sweep.executor)
    executor.update_parameters(**sweep.parameters)
    return executor


def run_sweep(sweep: SweepRequest, console: Console) -> dict:
    """Submit the points that have not finished, wait for them (unless `wait` is False), and
    write the table and report of every point.

    Returns:
        The gathered results (what `results.json` holds).
    """
    check_sweep(sweep)
    folder = sweep.folder()
    folder.mkdir(parents=True, exist_ok=True)
    points = sweep.points()
    spec = {**sweep.spec(), "points": [p.key for p in points], "executor": sweep.executor}
    write_atomic(folder / "sweep.json", (json.dumps(spec, indent=2) + "\n").encode())
    todo = [p for p in points if finished(folder / "runs" / p.key) is None]
    resumed = [p for p in todo if run_directory(folder / "runs" / p.key) is not None]
    console.print(
        f"sweep {folder}: {len(points)} searches, {len(points) - len(todo)} finished, "
        f"{len(todo)} to run" + (f" ({len(resumed)} resume)" if resumed else ""),
        highlight=False,
        soft_wrap=True,
    )
    errors: dict[str, str] = {}
    if todo:
        executor = _executor(sweep, folder)
        jobs = executor.map_array(SearchJob(), [point_request(sweep, p, folder) for p in todo])
        ids = ", ".join(str(job.job_id) for job in jobs[:3]) + (", ..." if len(jobs) > 3 else "")
        console.print(
            f"submitted {len(jobs)} jobs ({sweep.executor}: {ids})", highlight=False, soft_wrap=True
        )
        if not sweep.wait:
            console.print(
                f"run the same command again to gather them into {folder}", soft_wrap=True
            )
            return gather(folder, points, errors)
        for point, job in zip(todo, jobs):
            try:
                job.result()
            except Exception as error:  # noqa: BLE001 - one failed search does not end the sweep
                errors[point.key] = _last_line(error)
    gathered = gather(folder, points, errors)
    summarise_sweep(console, folder, gathered)
    return gathered


def _last_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[-1] if text else type(error).__name__)[:300]


def gather(folder: Path, points: list[SweepPoint], errors: dict[str, str]) -> dict:
    """Every point's state and result: done, failed (with the error), or pending."""
    from nasc.runtime.search.run import spread_over

    rows = []
    for point in points:
        row = {
            "key": point.key,
            "group": point.group,
            "space": point.space,
            "strategy": point.strategy,
            "seed": point.seed,
            "fields": point.fields,
        }
        result = finished(folder / "runs" / point.key)
        run = run_directory(folder / "runs" / point.key)
        if result is not None:
            row.update(status="done", result=result)
        elif point.key in errors:
            row.update(status="failed", error=errors[point.key])
        else:
            row.update(status="pending")
        row["run"] = str(run) if run is not None else None
        rows.append(row)
    groups = []
    for label in dict.fromkeys(row["group"] for row in rows):
        members = [row for row in rows if row["group"] == label]
        results = [row["result"] for row in members if row["status"] == "done"]
        spread, others = spread_over(results)
        first = members[0]
        groups.append(
            {
                "group": label,
                "space": first["space"],
                "strategy": first["strategy"],
                "fields": first["fields"],
                "seeds": len(members),
                "done": len(results),
                "nb201_accuracy": spread,
                **others,
            }
        )
    return {"runs": rows, "groups": groups}


def summarise_sweep(console: Console, folder: Path, gathered: dict) -> None:
    """Write results.json, summary.txt and report.html, and print the table."""
    from nasc.runtime.search.run import spread_text

    write_atomic(folder / "results.json", (json.dumps(gathered, indent=2) + "\n").encode())
    rows = gathered["runs"]
    done = sum(row["status"] == "done" for row in rows)
    lines = [f"{len(rows)} searches ({done} done):"]
    labels = {
        "search_seconds": ("search time", " s"),
        "supernet_before_discretisation": ("supernet test before discretisation", "%"),
        "supernet_discretised": ("supernet test discretised", "%"),
    }
    for group in gathered["groups"]:
        lines.append(f"  {group['group']} ({group['done']} of {group['seeds']} seeds done)")
        for key, (label, unit) in labels.items():
            if group.get(key):
                lines.append(f"    {label}: {spread_text(group[key], group['seeds'], unit)}")
        for key, value in (group.get("nb201_accuracy") or {}).items():
            lines.append(f"    NAS-Bench-201 {key}: {spread_text(value, group['seeds'], '%')}")
        for row in rows:
            if row["group"] != group["group"]:
                continue
            if row["status"] == "done":
                result = row["result"]
                found = result.get("nb201") or result.get("darts") or json.dumps(result["genotype"])
                lines.append(f"    seed {row['seed']}: {found}  ({row['run']})")
            else:
                lines.append(f"    seed {row['seed']}: {row['status']} {row.get('error', '')}")
    lines.append(f"  table: {folder / 'results.json'}")
    try:
        from nasc.runtime.reports.pages import write_sweep_report

        lines.append(f"  report: {write_sweep_report(folder)}")
    except Exception as error:  # noqa: BLE001 - the table is written; the page is extra
        lines.append(f"  no report ({type(error).__name__}: {error}); try: nasc report {folder}")
    write_atomic(folder / "summary.txt", ("\n".join(lines) + "\n").encode())
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def sweep(
    spaces,
    *,
    strategies=("isdarts",),
    seeds=(0,),
    grid: dict | None = None,
    data: str = "cifar10",
    defines: dict[str, int] | None = None,
    subset: int | None = None,
    directory: str | Path | None = None,
    runs_dir: str | Path = "runs",
    executor: str = "local",
    parameters: dict | None = None,
    wait: bool = True,
    console: Console | None = None,
    **preset_fields,
) -> dict:
    """Run a sweep from Python (see `nasc sweep`); returns what results.json holds."""
    request = SweepRequest(
        spaces=[spaces] if isinstance(spaces, str) else spaces,
        strategies=[strategies] if isinstance(strategies, str) else strategies,
        seeds=range(seeds) if isinstance(seeds, int) else seeds,
        grid=grid or {},
        base=SearchRequest(
            data=data,
            defines=defines or {},
            subset=subset,
            overrides=preset_fields,
            runs_dir=str(runs_dir),
        ),
        directory=None if directory is None else str(directory),
        executor=executor,
        parameters=parameters or {},
        wait=wait,
    )
    return run_sweep(request, console or Console(highlight=False))


def default_executor() -> str:
    """slurm where `sbatch` is on the PATH, else local processes."""
    return "slurm" if shutil.which("sbatch") else "local"
