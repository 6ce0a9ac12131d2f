"""What a finished search found, in every form: the genotype, the fixed `.nas` text, the NB201
and DARTS strings, the result (what result.json holds, with the NB201 look-up) and, where the
search has a run directory, the files and the report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from nasc.compiler import catalog, fixed_source, genotype_strings
from nasc.dsl import NascUsageError, SpaceIR
from nasc.dsl.macro import instantiate
from nasc.runtime.exporting import SINGLE_STAGE_NETWORK, write_torchscript
from nasc.runtime.reports.nb201 import NB201Table, lookup_nats, parse_columns
from nasc.runtime.runs.rundir import RunDir, environment, metric_line
from nasc.runtime.search.config import EXECUTION_SETTINGS, SearchConfig
from nasc.runtime.search.loop import Searcher
from nasc.runtime.search.result import SearchResult


def result_settings(config: SearchConfig, data_spec, subset, dist_) -> dict:
    """The settings that change what a search computes, as checkpoints record them."""
    values = {k: v for k, v in config.to_json().items() if k not in EXECUTION_SETTINGS}
    return {
        **values,
        "data": data_spec,
        "subset": subset,
        "world_size": dist_.world if dist_ is not None else 1,
    }


def discretised_accuracy(searcher: Searcher) -> float:
    """Test accuracy (the task's metric) of the supernet restricted to the derived
    architecture, with the weights it searched with (not trained from scratch); the masks are
    put back afterwards."""
    arch = searcher.net.arch
    masks = {cell: arch.mask(cell).clone() for cell in arch.choices}
    arch.restrict(searcher.strategy.derive(searcher.net))
    try:
        return searcher.evaluate()[f"test_{searcher.task.metric}"]
    finally:
        with torch.no_grad():
            for cell, mask in masks.items():
                arch.mask(cell).copy_(mask)
        arch.version += 1


def searched_values(space: SpaceIR, defines: dict[str, int]) -> dict[str, int]:
    """The network parameters the search ran with (defaults and -D values, data bound)."""
    plan = instantiate(space, defines, catalog())
    return dict(plan.params)


def found_architecture(searcher: Searcher, space: SpaceIR, defines, run: RunDir | None):
    """The derived genotype, the found network as fixed `.nas` text, its strings (`nb201`,
    `darts`, `blocks` where they apply) and the parameter values it was searched with."""
    genotype = searcher.strategy.derive(searcher.net)
    searched = searched_values(space, defines)
    values = ", ".join(f"{name}={value}" for name, value in searched.items())
    defaults = "keeps the space's defaults (override them with -D, or let `nasc train --preset` "
    defaults += "set them)."
    if space.block_choices:
        # Its layers were chosen one by one, for these values: they become the defaults.
        space = space.for_values(searched)
        defaults = "has these values as its defaults: its layers were chosen for them."
    where = f"; run {run.path.name}" if run is not None else ""
    arch = fixed_source(
        space,
        genotype,
        header=f"Found by nasc search ({searcher.config.strategy}) in {space.name}{where}.\n"
        f"Searched with {values}; the network below {defaults}",
    )
    return genotype, arch, genotype_strings(space, genotype), searched


def summarise(searcher: Searcher, space_name: str, found, metrics, ranks, discretised, run):
    """What result.json holds for a search that ran to its end (`found`: what
    `found_architecture` returned; `metrics`: the run's records)."""
    genotype, _, strings, searched = found
    epochs = [line for line in metrics if line.get("event") == "epoch"]
    shrinks = [line["epoch"] for line in metrics if line.get("event") == "shrink"]
    # Before discretisation: the supernet evaluated just before the last shrink step (IS-DARTS),
    # or at the end (the DARTS family, whose supernet stays mixed until derivation).
    before = [m for m in epochs if not shrinks or m["epoch"] <= shrinks[-1]]
    score = f"test_{searcher.task.metric}"  # what the task calls accuracy
    result = {
        "space": space_name,
        "strategy": searcher.config.strategy,
        "genotype": genotype.to_json()["cells"],
        **strings,
        "searched_with": searched,
        "final_test_acc": epochs[-1][score] if epochs else None,
        **searcher.task.metric_fields(epochs[-1][score] if epochs else None),
        "supernet_test_acc": {
            "before_discretisation": before[-1][score] if before else None,
            "before_epoch": before[-1]["epoch"] if before else None,
            "discretised": discretised,
            "note": "the supernet's shared weights on the test split, not the found network "
            "trained from scratch",
        },
        "protocol": searcher.config.protocol,
        "search_seconds": searcher.seconds,
        "epochs": searcher.epoch,
        "seed": searcher.config.seed,
        "run": str(run.path) if run is not None else None,
        "ranks": ranks,
        "environment": environment(searcher.device),
    }
    if searcher.config.protocol == "single-stage":
        frozen = [m for m in epochs if m.get("frozen")]
        result["single_stage"] = {
            "network": SINGLE_STAGE_NETWORK,
            "frozen_from_epoch": frozen[0]["epoch"] if frozen else None,
            "note": "the found network is the supernet with its architecture frozen and its "
            "own weights (final_test_acc is its score): no derivation, no retraining; the "
            "genotype is what a two-stage search would derive",
        }
    measured = [line for line in metrics if line.get("event") == "shrink"]
    if any("measure_seconds" in line for line in measured):
        result["measure_on"] = searcher.config.measure_on
        result["measure_seconds"] = sum(line.get("measure_seconds", 0.0) for line in measured)
    return result


def finish(searcher: Searcher, space: SpaceIR, defines, request, table, ranks, discretised, run):
    """The result of a search that ran to its end: the architecture in every form, looked up
    in NB201 as asked, and written into `run` (with the report) where there is one."""
    found = found_architecture(searcher, space, defines, run)
    genotype, arch, strings, _ = found
    # The records as metrics.jsonl holds them (strict JSON: non-finite values are null).
    metrics = [json.loads(metric_line(record)) for record in searcher.metric_records]
    result = summarise(searcher, space.name, found, metrics, ranks, discretised, run)
    previous = {}
    if run is not None and (run.path / "result.json").is_file():
        previous = run.read_json("result.json")
    if not lookup(result, request, table):  # what an earlier look-up of this run knew, it keeps
        for key in ("nb201_table", "nb201_accuracy", "nb201_rank"):
            if key in previous and previous.get("nb201") == result.get("nb201"):
                result[key] = previous[key]
    report = error = None
    if run is not None:
        run.write_json("genotype.json", genotype.to_json())
        run.write_text("arch.nas", arch)
        for key in ("nb201", "darts"):
            if key in strings:
                run.write_text(f"{key}.txt", strings[key] + "\n")
        history = getattr(searcher.strategy, "history", None)
        if history is not None:
            run.write_json("importance.json", history)
        if searcher.config.protocol == "single-stage":
            write_torchscript(searcher.net, run.path / SINGLE_STAGE_NETWORK)
        run.write_json("result.json", result)
        report, error = write_report(run)
    return SearchResult(
        genotype=genotype,
        run_dir=run.path if run is not None else None,
        result=result,
        metrics=metrics,
        arch=arch,
        report=report,
        report_error=error,
    )


def lookup(result: dict, request, table: NB201Table | None) -> bool:
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
    if getattr(request, "nats_bench", None) is not None:
        result["nb201_accuracy"] = lookup_nats(result["nb201"], request.nats_bench or None)
        return True
    return False


def keep_result(run: RunDir, request, table: NB201Table | None) -> SearchResult:
    """A resumed run that had already finished: its results stand; only a new look-up is
    added, and a report that was never finished (killed while drawn) is drawn."""
    previous = run.read_json("result.json")
    result = dict(previous)
    error = None
    changed = lookup(result, request, table) and result != previous
    if changed:
        run.write_json("result.json", result)
    if changed or not (run.path / "report.html").is_file():
        _, error = write_report(run)
    kept = SearchResult.from_run(run.path)
    return SearchResult(
        genotype=kept.genotype,
        run_dir=kept.run_dir,
        result=result,
        metrics=kept.metrics,
        arch=kept.arch,
        report=kept.report,
        report_error=error,
    )


def write_report(run: RunDir) -> tuple[Path | None, str | None]:
    """The run's report page, and why there is none when writing it failed."""
    try:
        from nasc.runtime.reports.pages import write_report as write

        return Path(write(run.path)), None
    except Exception as error:  # noqa: BLE001 - the search's results are written; pictures are extra
        return None, f"{type(error).__name__}: {error}"


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
    if isinstance(getattr(args, "nb201_table", None), NB201Table):
        return args.nb201_table  # loaded by the caller, columns and all
    if getattr(args, "nb201_table", None):
        return NB201Table.load(args.nb201_table, parse_columns(args.nb201_columns))
    return None
