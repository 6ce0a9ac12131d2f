"""Latency: a table of every live candidate's measured latency (`nasc profile`), the expected
latency the DARTS family adds to its architecture loss, and a learned predictor of end-to-end
latency from the architecture.

The table's latencies are of the candidate ops in eval mode, without gradients, on the inputs
they get inside the network (one forward of the supernet with every candidate live), timed with
`torch.utils.benchmark` (on a GPU, with CUDA events: `cuda_time_call`). A cell type's entry sums
its instances, since they share one decision.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from nasc.compiler import CellModule, CompileOptions, Supernet, compile_space, export_network
from nasc.compiler.ops import get_op
from nasc.dsl import Genotype, NascUsageError, SpaceIR

FORMAT = "nasc-latency-1"
REPEATS = 3
WARMUP = 3  # untimed calls before timing on a GPU


class _Counter:
    """Progress over `total` items: a bar on a terminal; elsewhere (a log, CI), where a live bar
    shows nothing, a line every `every` seconds and one at the end."""

    def __init__(self, console: Console, description: str, total: int, every: float = 30.0):
        self.console, self.description, self.total, self.every = console, description, total, every
        self.done = 0
        self.bar = None
        if console.is_terminal:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )

    def __enter__(self) -> _Counter:
        self.started = self.shown = time.perf_counter()
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=self.total)
        return self

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.advance(self.task)
        elif time.perf_counter() - self.shown >= self.every:
            self.shown = time.perf_counter()
            self._line()

    def _line(self) -> None:
        seconds = time.perf_counter() - self.started
        self.console.print(f"{self.description}: {self.done}/{self.total} ({seconds:.0f} s)")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif exc[0] is None:
            self._line()


def time_call(function, *args, min_run_time: float, repeats: int = REPEATS) -> float:
    """The time of `function(*args)` in milliseconds: the least of `repeats` medians of
    `blocked_autorange`, since other processes on the machine only ever add time (on a shared CPU
    one median of a 50 ms network varied by 30%); on CUDA inputs, `cuda_time_call`."""
    if any(isinstance(arg, torch.Tensor) and arg.is_cuda for arg in args):
        return cuda_time_call(function, *args, min_run_time=min_run_time, repeats=repeats)
    from torch.utils import benchmark  # here: importing it warns on a machine without CUDA

    timer = benchmark.Timer(
        stmt="function(*args)",
        globals={"function": function, "args": args},
        num_threads=torch.get_num_threads(),
    )
    return (
        min(timer.blocked_autorange(min_run_time=min_run_time).median for _ in range(repeats)) * 1e3
    )


def cuda_time_call(
    function, *args, min_run_time: float, repeats: int = REPEATS, warmup: int = WARMUP
) -> float:
    """The time of `function(*args)` on a GPU in milliseconds, by CUDA events: after `warmup`
    calls (kernel choices, allocations), `repeats` blocks of as many back-to-back calls as fill
    `min_run_time`, each block timed by a pair of events on the stream (no synchronisation
    inside it, so launch gaps count as they would in a network); the least block mean."""
    for _ in range(warmup):
        function(*args)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    function(*args)
    end.record()
    end.synchronize()
    calls = max(1, math.ceil(min_run_time * 1e3 / max(start.elapsed_time(end), 1e-3)))
    best = math.inf
    for _ in range(max(repeats, 1)):
        start.record()
        for _ in range(calls):
            function(*args)
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / calls)
    return best


def candidate_inputs(net: Supernet, image: torch.Tensor) -> dict[tuple[int, str, str], tuple]:
    """The input of every live, computing candidate of every cell instance, keyed by (stage,
    edge, op), from one eval-mode forward (hooks make each candidate run on its own input)."""
    inputs: dict[tuple[int, str, str], tuple] = {}
    handles = []
    for index, module in enumerate(net.stages):
        if not isinstance(module, CellModule):
            continue
        cell = net.space.cell(module.cell_type)
        for edge in cell.choices:
            for op in net.arch.live(cell.name, edge.key):
                if get_op(op, net.space.opdefs).zero:
                    continue

                def keep(_, args, key=(index, edge.key, op)):
                    inputs[key] = tuple(a.detach() for a in args)

                handles.append(module.edges[edge.key][op].register_forward_pre_hook(keep))
    try:
        with torch.no_grad():
            net(image)
    finally:
        for handle in handles:
            handle.remove()
    return inputs


def profile(
    space: SpaceIR,
    defines: Mapping[str, int],
    device: torch.device,
    batch_size: int = 1,
    min_run_time: float = 0.05,
    console: Console | None = None,
    repeats: int = REPEATS,
) -> dict:
    """Measure every live candidate of every cell instance; returns the table (see the module)."""
    net = compile_space(space, defines, CompileOptions(search=True)).to(device).eval()
    plan = net.plan
    image = torch.randn(batch_size, plan.channels, plan.size, plan.size, device=device)
    inputs = candidate_inputs(net, image)
    instances: dict[int, dict] = {}
    cells: dict[str, dict[str, dict[str, float]]] = {}
    for index, module in enumerate(net.stages):
        if isinstance(module, CellModule) and module.cell_type in net.arch.choices:
            cell = net.space.cell(module.cell_type)
            instances[index] = {"stage": index, "cell": cell.name, "width": module.width}
            instances[index]["ops"] = {
                e.key: {op: 0.0 for op in e.candidates} for e in cell.choices
            }
            cells.setdefault(
                cell.name, {e.key: dict.fromkeys(e.candidates, 0.0) for e in cell.choices}
            )
    console = console or Console(stderr=True)
    with torch.no_grad(), _Counter(console, "profiling candidates", len(inputs)) as bar:
        for (index, edge, op), args in inputs.items():
            module = net.stages[index].edges[edge][op]
            ms = time_call(module, *args, min_run_time=min_run_time, repeats=repeats)
            instances[index]["ops"][edge][op] = ms
            cells[instances[index]["cell"]][edge][op] += ms
            bar.advance()
    return {
        "format": FORMAT,
        "repeats": repeats,
        "space": space.name,
        "params": dict(plan.params),
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "unit": "ms",
        "cells": cells,
        "instances": list(instances.values()),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


# --- the table in a search --------------------------------------------------------------------


def load_table(path: str) -> dict:
    """Read a latency table written by `nasc profile`.

    Raises:
        NascUsageError: a missing file, or one that is not such a table.
    """
    file = Path(path)
    if not file.is_file():
        raise NascUsageError(
            f"--latency-table {path}: no such file", hint="make one with `nasc profile SPACE`"
        )
    try:
        table = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise NascUsageError(
            f"{path}: not a latency table ({error})", hint="make one with `nasc profile SPACE`"
        ) from None
    if not isinstance(table, dict) or table.get("format") != FORMAT:
        raise NascUsageError(
            f"{path}: not a latency table (no `format: {FORMAT}`)",
            hint="make one with `nasc profile SPACE`",
        )
    return table


def check_table(table: dict, net: Supernet, path: str) -> None:
    """Refuse a table made for another space, other parameter values, or with a candidate of
    the space missing, naming the file and the entry.

    Raises:
        NascUsageError: the first mismatch.
    """
    hint = f"profile this space: nasc profile {net.space.name} (with the search's -D values)"
    if table.get("space") != net.space.name:
        raise NascUsageError(
            f"{path}: the table is for the space `{table.get('space')}`, not `{net.space.name}`",
            hint=hint,
        )
    params = dict(net.plan.params)
    for name, value in params.items():
        if table.get("params", {}).get(name) != value:
            raise NascUsageError(
                f"{path}: params.{name} is {table.get('params', {}).get(name)}, but the search "
                f"runs with {name}={value}",
                hint=hint,
            )
    cells = table.get("cells")
    for cell, choices in net.arch.choices.items():
        for edge, candidates in zip(choices.edges, choices.candidates):
            row = cells.get(cell, {}).get(edge) if isinstance(cells, dict) else None
            for op in candidates:
                value = row.get(op) if isinstance(row, dict) else None
                if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                    raise NascUsageError(
                        f"{path}: cells.{cell}.{edge}.{op}: no latency for this candidate",
                        hint=hint,
                    )


class LatencyTerm:
    """The expected latency of the architecture: per cell type, the sum over edges and live
    candidates of the softmax weight of the candidate (of its alphas, over its edge) times its
    latency in the table, in milliseconds; differentiable in the alphas."""

    def __init__(self, table: dict, net: Supernet, path: str):
        check_table(table, net, path)
        self.latencies: dict[str, torch.Tensor] = {}
        for cell, choices in net.arch.choices.items():
            matrix = torch.zeros(len(choices.edges), choices.width)
            for row, (edge, candidates) in enumerate(zip(choices.edges, choices.candidates)):
                for column, op in enumerate(candidates):
                    matrix[row, column] = float(table["cells"][cell][edge][op])
            self.latencies[cell] = matrix

    def __call__(self, net: Supernet) -> torch.Tensor:
        total = 0.0
        for cell, matrix in self.latencies.items():
            weights = net.arch.op_weights(cell)
            total = total + (weights * matrix.to(weights.device)).sum()
        return total


# --- the learned predictor --------------------------------------------------------------------


def sample_genotype(net: Supernet, rng: random.Random) -> Genotype:
    """A random architecture of the space: k random members of every comparison subset."""
    cells = {}
    for cell, choices in net.arch.choices.items():
        edges: dict[str, list[str]] = {edge: [] for edge in choices.edges}
        for k, members in choices.subsets:
            for row, column in sorted(rng.sample(list(members), k)):
                edges[choices.edges[row]].append(choices.candidates[row][column])
        cells[cell] = edges
    return Genotype(cells)


def features(net: Supernet, genotype: Genotype) -> torch.Tensor:
    """The architecture as a 0/1 vector: one entry per (cell type, edge, candidate)."""
    values = []
    for cell, choices in net.arch.choices.items():
        for edge, candidates in zip(choices.edges, choices.candidates):
            kept = set(genotype.cells.get(cell, {}).get(edge, ()))
            values.extend(1.0 if op in kept else 0.0 for op in candidates)
    return torch.tensor(values)


def fit_predictor(
    x: torch.Tensor, y: torch.Tensor, seed: int = 0, steps: int = 2000, hidden: int = 64
) -> nn.Module:
    """An MLP from architecture features to latency, fitted to log-latencies (scaled) by Adam."""
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    target = torch.log(y)
    shift, scale = target.mean(), target.std().clamp_min(1e-6)
    model = nn.Sequential(
        nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
    )
    model.append(nn.Linear(hidden, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((model((x - mean) / std).squeeze(1) - (target - shift) / scale) ** 2).mean()
        loss.backward()
        optimizer.step()

    class Predictor(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)
            self.register_buffer("shift", shift)
            self.register_buffer("scale", scale)

        def forward(self, features):
            out = self.model((features - self.mean) / self.std).squeeze(-1)
            return torch.exp(out * self.scale + self.shift)

    return Predictor().eval()


def relative_error(predicted: torch.Tensor, measured: torch.Tensor) -> float:
    """Mean of |predicted - measured| / measured."""
    return float(((predicted - measured).abs() / measured).mean())


def train_predictor(
    space: SpaceIR,
    defines: Mapping[str, int],
    device: torch.device,
    samples: int,
    batch_size: int = 1,
    min_run_time: float = 0.05,
    held_out: float = 0.2,
    seed: int = 0,
    console: Console | None = None,
    repeats: int = REPEATS,
) -> dict:
    """Measure `samples` random architectures end to end (each exported as a standalone network,
    eval mode, no gradients), fit the MLP on 1 - `held_out` of them and report its relative error
    on the rest. Returns the predictor's record for the table."""
    if samples < 5:
        raise NascUsageError(
            f"--predictor {samples}: too few architectures to fit and test on",
            hint="measure at least 5 (the more, the better the fit: 100 is a fair start)",
        )
    rng = random.Random(seed)
    supernet = compile_space(space, defines, CompileOptions(search=True))
    plan = supernet.plan
    image = torch.randn(batch_size, plan.channels, plan.size, plan.size, device=device)
    rows, latencies, seen = [], [], set()
    started = time.perf_counter()
    with _Counter(console or Console(stderr=True), "measuring architectures", samples) as bar:
        attempts = 0
        while len(rows) < samples and attempts < 20 * samples:
            attempts += 1
            genotype = sample_genotype(supernet, rng)
            vector = features(supernet, genotype)
            if tuple(vector.tolist()) in seen:
                continue
            seen.add(tuple(vector.tolist()))
            network = export_network(space, genotype, defines).to(device).eval()
            with torch.no_grad():
                ms = time_call(network, image, min_run_time=min_run_time, repeats=repeats)
            rows.append(vector)
            latencies.append(ms)
            bar.advance()
    x, y = torch.stack(rows), torch.tensor(latencies)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = max(1, int(round(len(y) * held_out)))
    test, train = order[:cut], order[cut:]
    predictor = fit_predictor(x[train], y[train], seed=seed)
    with torch.no_grad():
        error = relative_error(predictor(x[test]), y[test])
        train_error = relative_error(predictor(x[train]), y[train])
    return {
        "samples": len(y),
        "held_out": len(test),
        "relative_error": error,
        "train_relative_error": train_error,
        "latency_ms": {"min": float(y.min()), "max": float(y.max()), "mean": float(y.mean())},
        # The measurements, to refit or compare predictors: features (see `features`) and ms.
        "measured": [[row.tolist(), float(ms)] for row, ms in zip(x, y)],
        "seconds": time.perf_counter() - started,
        "batch_size": batch_size,
    }
