"""The search loop of circuit spaces, reached from `nasc search` (`run_search`) when the space
declares a `circuit`: a circuit task has no data and no epochs, so the `Searcher` of networks
of cells does not fit it; this loop is short instead.

A search runs `steps` updates of a circuit strategy (`strategies/circuits.py`), derives the most
probable structure, fine-tunes that circuit's angles alone for `finetune` steps (DQAS retrains
the found circuit the same way), and measures it against the task's exact reference. The run
directory holds config.json, space.nas, metrics.jsonl, genotype.json (the decisions, as
{"cells": {"circuit": {placeholder: [candidate]}}}), arch.nas (the fixed circuit), arch.qasm
(OpenQASM 2 with the trained angles), circuit.pt (the standalone module's state) and
result.json. Flags: --epochs is the number of steps, --batch-size the structures drawn per
step, --lr the angles' Adam rate, --arch-lr the logits', --seed the seed.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import attrs
import torch

from nasc.compiler.circuits import FixedCircuit, SuperCircuit
from nasc.dsl import (
    CircuitSpace,
    Genotype,
    NascUsageError,
    find_space,
    format_space,
    parse_space,
    read_source,
)
from nasc.dsl.circuits import is_circuit
from nasc.dsl.syntax import parse_module
from nasc.runtime.reports.circuits import write_circuit_report
from nasc.runtime.runs.checkpoint import write_atomic
from nasc.runtime.runs.events import LoggedEvents, RunEvents
from nasc.runtime.runs.rundir import unique_directory
from nasc.runtime.search.result import SearchResult
from nasc.runtime.strategies.circuits import circuit_strategy
from nasc.runtime.tasks import DEFAULT_TASK, get_task
from nasc.runtime.tasks.circuits import CircuitTask


@attrs.frozen(kw_only=True)
class CircuitSettings:
    """The settings of a circuit search (see the module doc for the flags that set them)."""

    steps: int = 150
    batch: int = 64
    lr: float = 0.05
    arch_lr: float = 0.1
    finetune: int = 150
    seed: int = 0
    init_scale: float = 0.1
    double: bool = False  # complex128 instead of complex64
    log_every: int = 10


SMALL_QUBITS = 10  # up to here a search runs on one CPU thread
# A noisy circuit is measured on this many trajectories: the standard error of a fidelity or a
# ratio is then below 0.5 / sqrt(8192) = 0.006.
MEASURED_TRAJECTORIES = 8192
FLAGS = {"epochs": "steps", "batch_size": "batch", "lr": "lr", "arch_lr": "arch_lr", "seed": "seed"}


def settings_from(overrides: dict) -> CircuitSettings:
    """The settings the `nasc search` flags give (unset flags keep the defaults).

    Raises:
        NascUsageError: a count below 1.
    """
    values = {FLAGS[k]: v for k, v in overrides.items() if k in FLAGS and v is not None}
    settings = CircuitSettings(**values)
    for name in ("steps", "batch"):
        if getattr(settings, name) < 1:
            raise NascUsageError(
                f"a circuit search needs {name} >= 1, not {getattr(settings, name)}"
            )
    return settings


@attrs.frozen(kw_only=True)
class CircuitFound:
    """What a circuit search found: the decisions, the fixed circuit (space and module), the
    metrics before and after fine-tuning, the task's exact reference and the step records."""

    decisions: dict[str, str]
    fixed: CircuitSpace
    circuit: FixedCircuit
    searched: dict[str, float]
    final: dict[str, float]
    reference: dict[str, float]
    records: list[dict]
    seconds: float


def circuit_task(space: CircuitSpace, plan, name: str | None) -> CircuitTask:
    """The task a circuit is searched for: `name`, else the circuit's `task` line.

    Raises:
        NascUsageError: neither names one, or the task is not a circuit task.
    """
    name = name or plan.task
    if name is None:
        raise NascUsageError(
            f"the circuit `{space.name}` names no task",
            hint="add a `task ghz` line (ghz, tfim, maxcut) or give --task",
        )
    task = get_task(name)
    if not isinstance(task, CircuitTask):
        raise NascUsageError(
            f"the task `{name}` does not score circuits",
            hint="circuit tasks: ghz, tfim, maxcut",
        )
    task.prepare(plan, plan.task_args)
    return task


def search_circuit(
    space: CircuitSpace,
    *,
    strategy: str = "dqas",
    task: str | None = None,
    defines: dict[str, int] | None = None,
    settings: CircuitSettings | None = None,
    events: RunEvents | None = None,
) -> CircuitFound:
    """Search a circuit space (see the module doc)."""
    settings = settings or CircuitSettings()
    events = events or LoggedEvents()
    space = space.for_values(defines)
    plan = space.plan()
    threads = torch.get_num_threads()
    if plan.qubits <= SMALL_QUBITS:
        torch.set_num_threads(1)  # small statevectors: threads cost more than they give
    try:
        return _search(space, plan, strategy, task, settings, events)
    finally:
        torch.set_num_threads(threads)


def _search(space, plan, strategy, task, settings, events) -> CircuitFound:
    scorer = circuit_task(space, plan, task)
    generator = torch.Generator().manual_seed(settings.seed)
    dtype = torch.complex128 if settings.double else torch.complex64
    net = SuperCircuit(plan, dtype, settings.init_scale, generator)
    searcher = circuit_strategy(strategy, net, scorer, settings, generator)
    started, records = time.perf_counter(), []
    for step in range(1, settings.steps + 1 if plan.choices else 1):
        record = searcher.step()
        if step % settings.log_every == 0 or step == settings.steps:
            probabilities = searcher.probabilities()
            record = {"event": "step", "step": step, **record}
            record["top_probability"] = float(probabilities.max(dim=-1).values.mean())
            record["structure"] = searcher.derive()
            record["probabilities"] = {
                slot.label: {
                    candidate.name: round(float(p), 6)
                    for candidate, p, live in zip(slot.candidates, row, net.mask[index])
                    if live
                }
                for index, (slot, row) in enumerate(zip(net.choices, probabilities))
            }
            records.append(record)
            events.record(record)
    decisions = searcher.derive()
    circuit = net.circuit(decisions)
    rows = MEASURED_TRAJECTORIES if plan.noise > 0 else 1
    with torch.no_grad():
        searched = scorer.measure(circuit(rows))
    tune(circuit, scorer, settings.finetune, settings.lr, settings.batch)
    with torch.no_grad():
        final = scorer.measure(circuit(rows))
    return CircuitFound(
        decisions=decisions,
        fixed=space.decide(decisions),
        circuit=circuit,
        searched=searched,
        final=final,
        reference=scorer.reference(),
        records=records,
        seconds=time.perf_counter() - started,
    )


def tune(circuit: FixedCircuit, task: CircuitTask, steps: int, lr: float, rows: int = 1) -> None:
    """Train a fixed circuit's angles alone on the task's objective (Adam); a noisy circuit's
    objective is the mean over `rows` trajectories per step."""
    if not circuit.angles.numel():
        return
    rows = rows if circuit.noise > 0 else 1
    optimizer = torch.optim.Adam(circuit.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        task.objective(circuit(rows)).mean().backward()
        optimizer.step()


def is_circuit_request(request) -> bool:
    """Whether a search request names a circuit space (a new search, not a resume)."""
    if request.resume or (request.space is None and request.source is None):
        return False
    text = request.source if request.source is not None else read_source(find_space(request.space))
    return is_circuit(parse_module(text, str(request.space or "<source>")))


def run_circuit_search(request, events: RunEvents) -> list[SearchResult]:
    """`nasc search` of a circuit space: one search per seed, each with its run directory."""
    name = str(request.space or "<source>")
    text = request.source if request.source is not None else read_source(find_space(request.space))
    space = parse_space(text, name)
    settings = settings_from(request.overrides)
    strategy = request.strategy or "dqas"
    task = None if request.task == DEFAULT_TASK else request.task
    results = []
    for offset in range(request.seeds or 1):
        seeded = attrs.evolve(settings, seed=settings.seed + offset)
        found = search_circuit(
            space,
            strategy=strategy,
            task=task,
            defines=request.defines,
            settings=seeded,
            events=events,
        )
        results.append(_write_run(request, space, text, strategy, seeded, found, events))
    return results


def _write_run(request, space, text, strategy, settings, found: CircuitFound, events):
    genotype = Genotype({"circuit": {label: [name] for label, name in found.decisions.items()}})
    header = (
        f"Found by nasc search {request.space} --strategy {strategy} (seed {settings.seed}); "
        f"{found.circuit.gate_count()} gates"
    )
    arch = format_space(found.fixed, header=header)
    result = {
        "space": space.name,
        "strategy": strategy,
        "task": found.fixed.plan().task,
        "decisions": found.decisions,
        "gates": found.circuit.gate_count(),
        "searched": found.searched,
        "final": found.final,
        "reference": found.reference,
        "search_seconds": found.seconds,
    }
    facts = ", ".join(f"{key} {value:.4f}" for key, value in found.final.items())
    events.message(f"found {json.dumps(found.decisions)}: {facts} ({found.seconds:.1f}s)")
    run_dir, report, report_error = None, None, None
    if request.runs_dir is not None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = unique_directory(Path(request.runs_dir), f"{space.name}-{strategy}-{stamp}")
        files = {
            "config.json": json.dumps(
                {
                    "space": str(request.space),
                    "strategy": strategy,
                    "defines": request.defines,
                    "settings": attrs.asdict(settings),
                },
                indent=2,
            ),
            "space.nas": text,
            "metrics.jsonl": "".join(json.dumps(record) + "\n" for record in found.records),
            "genotype.json": json.dumps(genotype.to_json(), indent=2),
            "arch.nas": arch,
            "arch.qasm": found.circuit.qasm(),
            "result.json": json.dumps(result, indent=2),
        }
        for file, content in files.items():
            write_atomic(run_dir / file, content.encode())
        buffer = io.BytesIO()
        torch.save(found.circuit.state_dict(), buffer)
        write_atomic(run_dir / "circuit.pt", buffer.getvalue())
        events.message(f"wrote {run_dir}/arch.nas and {run_dir}/arch.qasm")
        report, report_error = _report(run_dir)
        if report_error:
            events.message(f"no report ({report_error}); the search's results stand")
    return SearchResult(
        genotype=genotype,
        run_dir=run_dir,
        result=result,
        metrics=found.records,
        arch=arch,
        report=report,
        report_error=report_error,
    )


def _report(run_dir: Path) -> tuple[Path | None, str | None]:
    """The run's report page, and why there is none when drawing it failed."""
    try:
        return write_circuit_report(run_dir), None
    except Exception as error:  # noqa: BLE001 - the results are written; pictures are extra
        return None, f"{type(error).__name__}: {error}"
