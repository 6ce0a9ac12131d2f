"""`nasc profile SPACE`: measure every live candidate's latency into a table (and fit a latency
predictor), with the functions of `hardware/latency.py`."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from nasc.compiler import catalog
from nasc.dsl import NascUsageError, find_space, parse_space, read_source
from nasc.runtime.data.images import load_data
from nasc.runtime.hardware.latency import profile, train_predictor
from nasc.runtime.runs.checkpoint import write_atomic
from nasc.runtime.runs.settings import resolve_device
from nasc.runtime.tasks import bind_data


def run_profile(args, defines: dict[str, int], console: Console) -> int:
    """`nasc profile SPACE`: write the latency table (and the predictor's error) to a JSON file.

    Args:
        defines: the `-D` values, parsed by the command line.
    """
    source = read_source(find_space(args.space))
    space = parse_space(source, str(args.space), catalog=catalog(), overrides=defines)
    space = space.for_values(defines)  # block choices: one decision per instance
    if not any(cell.choices for cell in space.used_cells()):
        raise NascUsageError(
            f"{args.space} has no choices left: there is nothing to profile",
            hint="profile a search space, e.g. nasc profile spaces/nb201.nas",
        )
    if args.data:
        defines = bind_data(space, defines, load_data(args.data, args.cache_dir))
    checked = (
        ("--batch-size", args.batch_size),
        ("--min-run-time", args.min_run_time),
        ("--repeats", args.repeats),
    )
    for flag, value in checked:
        if not value > 0:
            raise NascUsageError(f"{flag} {value}: must be positive", hint="e.g. --batch-size 1")
    device = resolve_device(args.device)
    table = profile(
        space, defines, device, args.batch_size, args.min_run_time, console, args.repeats
    )
    if args.predictor:
        table["predictor"] = train_predictor(
            space,
            defines,
            device,
            args.predictor,
            args.batch_size,
            args.min_run_time,
            seed=args.seed,
            console=console,
            repeats=args.repeats,
        )
    out = (
        Path(args.output)
        if args.output
        else (Path(args.runs_dir) / "profiles" / f"{space.name}-{device.type}.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, (json.dumps(table, indent=1) + "\n").encode())
    render_table(table, console)
    if "predictor" in table:
        found = table["predictor"]
        console.print(
            f"latency predictor: {found['samples'] - found['held_out']} architectures to fit, "
            f"{found['held_out']} held out; relative error on the held-out ones "
            f"{100 * found['relative_error']:.1f}% (on the fitted ones "
            f"{100 * found['train_relative_error']:.1f}%)"
        )
    console.print(f"wrote {out}")
    return 0


def render_table(table: dict, console: Console) -> None:
    """Print a latency table, per cell type a row per edge and a column per op: as many op
    columns to a table as the console's width holds (the edge column starts each), so no name
    or time is cut short on a narrow terminal."""
    for cell, edges in table["cells"].items():
        ops = list(dict.fromkeys(op for row in edges.values() for op in row))
        timing = (
            f"ms per batch of {table['batch_size']} on {table['device']}, summed over instances"
        )
        parts: list[list[str]] = []
        for op in ops:
            if parts and _width(console, edges, [*parts[-1], op]) <= console.width:
                parts[-1].append(op)
            else:
                parts.append([op])
        for part in parts:
            first, last = ops.index(part[0]) + 1, ops.index(part[-1]) + 1
            which = f", ops {first}-{last} of {len(ops)}" if len(parts) > 1 else ""
            title = f"{table['space']} `{cell}`{which}: {timing}"
            console.print(_latency_table(edges, part, title))


def _latency_table(edges: dict, ops: list[str], title: str | None = None) -> Table:
    """The rows of `edges` in the columns of `ops`; a name or time too wide folds, never cut."""
    shown = Table(title=title)
    shown.add_column("edge", overflow="fold")
    for op in ops:
        shown.add_column(op, justify="right", overflow="fold")
    for edge, row in edges.items():
        shown.add_row(edge, *(f"{row[op]:.3f}" if op in row else "" for op in ops))
    return shown


def _width(console: Console, edges: dict, ops: list[str]) -> int:
    """The width the table of these op columns takes when nothing is folded."""
    wide = console.options.update_width(1 << 16)
    return Measurement.get(console, wide, _latency_table(edges, ops)).maximum
