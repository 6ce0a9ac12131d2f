"""Pictures of spaces and searches: cell diagrams, the macro strip, the information of every
candidate across shrink steps, training curves, and an HTML report for every run directory."""

from __future__ import annotations

import html
import io
import json
import math
import os
from pathlib import Path

from nasc.dsl import Genotype, SpaceIR, apply_genotype, parse_space, read_source
from nasc.dsl.ir import Cell
from nasc.dsl.macro import Plan
from nasc.runtime.runs.checkpoint import write_atomic

SUBSET_COLOURS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
]


COMBINER_MARKS = {"product": "\u00d7", "concat": "\u2225"}  # x (Hadamard), parallel
LINE_STYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3))]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path, dpi: int) -> None:
    """Save a figure (in the format its file name says, PNG by default) through the atomic
    writer: a kill while drawing leaves the previous picture, never a torn or empty one."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix[1:].lower() or None, dpi=dpi)
    write_atomic(Path(path), buffer.getvalue())


# --- cells and the macro --------------------------------------------------------------------------


def _positions(cell: Cell) -> dict[str, tuple[float, float]]:
    """Inputs, nodes and the output on one line, in order; edges become arcs above and below."""
    names = [*cell.input_names, *cell.node_names, "out"]
    return {name: (float(index), 0.0) for index, name in enumerate(names)}


def draw_cell(ax, cell: Cell, title: str | None = None) -> None:
    """Draw a cell type as a DAG: edges labelled with their op or candidate set, choice edges
    coloured by their comparison subset."""
    positions = _positions(cell)
    colour_of = {}
    for index, subset in enumerate(cell.subsets):
        for edge in subset.edges:
            colour_of[edge] = SUBSET_COLOURS[index % len(SUBSET_COLOURS)]
    height = 0.6
    for number, edge in enumerate(cell.edges):
        (x0, _), (x1, _) = positions[edge.source], positions[edge.target]
        span = x1 - x0
        # Neighbours connect straight; longer edges arc, alternately above and below the line,
        # higher the farther they reach, so that their labels sit apart.
        apex = 0.0 if span <= 1 else (1 if number % 2 else -1) * 0.22 * (span**0.8)
        colour = colour_of.get(edge.key, "#444444")
        _arc(ax, x0, x1, apex, colour)
        label = "\n".join(edge.ops)
        if edge.is_choice:
            label = (label + "\n" if label else "") + f"{edge.choice} ({len(edge.candidates)})"
        height = max(height, abs(apex) + 0.35)
        ax.text(
            (x0 + x1) / 2,
            apex if apex else 0.13,
            label,
            fontsize=6.5,
            color=colour,
            ha="center",
            va="center",
            bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="none", alpha=0.9),
        )
    last = positions["out"][0]
    for name in cell.output:
        start = positions[name][0]
        _arc(
            ax,
            start,
            last,
            0.0 if last - start <= 1 else 0.12 * (last - start),
            "#999999",
            dashed=True,
        )
    combiners = {node.name: node.combine for node in cell.nodes}
    for name, (x, y) in positions.items():
        kind = "input" if name in cell.input_names else ("out" if name == "out" else "node")
        face = {"input": "#fde0c5", "node": "#d6e6f5", "out": "#e2f0d9"}[kind]
        text = ("concat" if cell.concat else "out") if kind == "out" else name
        if kind == "node" and combiners.get(name, "sum") != "sum":
            # Sum is the default and goes unmarked; a product (Hadamard) or concat node says so.
            text = f"{name} {COMBINER_MARKS.get(combiners[name], combiners[name])}"
            face = "#f6e7b4"
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=7.5,
            zorder=3,
            bbox=dict(boxstyle="round,pad=0.35", fc=face, ec="#333333"),
        )
        adapter = next((i.adapter for i in cell.inputs if i.name == name), None)
        if adapter:
            ax.text(x, y - 0.16, adapter, ha="center", va="top", fontsize=6, color="#8a5a00")
    ax.set_xlim(-0.6, len(positions) - 0.4)
    ax.set_ylim(-height, height)
    ax.axis("off")
    flags = f" [{', '.join(cell.flags)}]" if cell.flags else ""
    subsets = "; ".join(f"keep {s.k} of {s.label}" for s in cell.subsets[:4])
    if len(cell.subsets) > 4:
        subsets += f"; ... ({len(cell.subsets)} subsets)"
    ax.set_title(
        (title or f"cell {cell.name}") + flags + (f"\n{subsets}" if subsets else ""), fontsize=9
    )


def _arc(ax, x0: float, x1: float, apex: float, colour: str, dashed: bool = False) -> None:
    """A parabola from (x0, 0) to (x1, 0) peaking at `apex`, with an arrowhead at its end."""
    gap = 0.18  # keep clear of the node boxes
    steps = [i / 40 for i in range(41)]
    xs = [x0 + gap + (x1 - x0 - 2 * gap) * t for t in steps]
    ys = [4 * apex * t * (1 - t) for t in steps]
    ax.plot(xs, ys, color=colour, lw=1.2, ls="--" if dashed else "-")
    ax.annotate(
        "",
        xy=(xs[-1], ys[-1]),
        xytext=(xs[-3], ys[-3]),
        arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.2, shrinkA=0, shrinkB=0),
    )


def draw_macro(ax, plan: Plan, space: SpaceIR | None = None) -> None:
    """The network as a strip of stages with their widths and resolutions; with the space, a
    block choice's stage is marked and names its candidates."""
    colours = {
        "stem": "#fde0c5",
        "cell": "#d6e6f5",
        "block": "#f2d7e8",
        "choice": "#fff2b3",
        "aux": "#eeeeee",
        "head": "#e2f0d9",
    }
    for index, stage in enumerate(plan.stages):
        kind, name = stage.kind, stage.name
        if space is not None and kind == "cell" and space.cell(stage.name).block is not None:
            candidates = space.cell(stage.name).edges[0].candidates
            kind, name = "choice", f"{stage.name}: 1 of {len(candidates)}"
        ax.add_patch(_box(index, colours.get(kind, "#ffffff")))
        detail = (
            f"{stage.out_channels}ch\n{stage.out_size}px"
            if stage.kind not in ("head", "aux")
            else f"{stage.out_channels} cls"
        )
        ax.text(index + 0.5, 0.62, name, ha="center", va="center", fontsize=6.5, rotation=90)
        ax.text(index + 0.5, 0.12, detail, ha="center", va="center", fontsize=5.5)
    ax.set_xlim(-0.2, len(plan.stages) + 0.2)
    ax.set_ylim(-0.05, 1.05)
    ax.axis("off")
    ax.set_title(
        f"network: input {plan.channels} x {plan.size} x {plan.size}, {len(plan.stages)} stages",
        fontsize=9,
    )


def _box(index, colour):
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch(
        (index + 0.06, 0.0), 0.88, 1.0, boxstyle="round,pad=0.02", fc=colour, ec="#555555", lw=0.8
    )


def draw_space(space: SpaceIR, plan: Plan, path: Path, title: str | None = None) -> dict:
    """Draw every cell type the network uses and the macro strip into one figure (PNG or SVG).

    Returns:
        {"panels": number of cell panels, "path": the file}.
    """
    plt = _pyplot()
    # A block choice's decisions are one-edge cells: the macro strip shows them, not a panel.
    cells = [cell for cell in space.used_cells() if cell.block is None]
    columns = max(1, min(2, len(cells)))
    rows = math.ceil(len(cells) / columns)
    figure = plt.figure(figsize=(6.2 * columns, 3.6 * rows + (1.8 if rows else 2.6)))
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[3.6] * rows + [1.8])
    for index, cell in enumerate(cells):
        draw_cell(figure.add_subplot(grid[index // columns, index % columns]), cell)
    draw_macro(figure.add_subplot(grid[rows, :]), plan, space)
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    save_figure(figure, path, dpi=130)
    plt.close(figure)
    return {"panels": len(cells), "path": str(path)}


# --- a search run ---------------------------------------------------------------------------------


def _f(value) -> float:
    return math.inf if value == "inf" else float(value)


def draw_importance(history: list[dict], path: Path) -> dict:
    """F (information; larger = less informative) of every candidate at every shrink step, one
    panel per comparison subset; an x marks where a candidate was discarded."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    panels: dict[tuple[str, str], list] = {}
    for step in history:
        for subset in step["subsets"]:
            panels.setdefault((subset["cell"], subset["subset"]), []).append((step, subset))
    if not panels:
        return {"panels": 0, "path": None}
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.8 * rows), squeeze=False)
    finite = [
        _f(c["F"])
        for step in history
        for s in step["subsets"]
        for c in s["candidates"]
        if math.isfinite(_f(c["F"])) and _f(c["F"]) > 0
    ]
    ceiling = (max(finite) if finite else 1.0) * 8
    # One legend for the whole figure: colour names the op, line style the edge's source (in
    # panels that compare the candidates of several edges, e.g. DARTS' `keep 2 per node`).
    ops = list(
        dict.fromkeys(c["op"] for _, e in panels.items() for _, s in e for c in s["candidates"])
    )
    colour_of = {op: SUBSET_COLOURS[i % len(SUBSET_COLOURS)] for i, op in enumerate(ops)}
    sources = list(
        dict.fromkeys(
            c["edge"].split("->")[0]
            for (_, label), entries in panels.items()
            if "->" not in label
            for _, subset in entries
            for c in subset["candidates"]
        )
    )
    style_of = {source: LINE_STYLES[i % len(LINE_STYLES)] for i, source in enumerate(sources)}
    for ax, ((cell, label), entries) in zip(axes.flat, panels.items()):
        series: dict[tuple[str, str], list] = {}
        for step, subset in entries:
            for candidate in subset["candidates"]:
                value = _f(candidate["F"])
                series.setdefault((candidate["edge"], candidate["op"]), []).append(
                    (step["epoch"], min(value, ceiling), candidate["discarded"], math.isinf(value))
                )
        for (edge, op), points in series.items():
            xs = [p[0] for p in points]
            ys = [p[1] for p in points]
            style = "-" if "->" in label else style_of[edge.split("->")[0]]
            colour = colour_of[op]
            ax.plot(xs, ys, marker="o", ms=3, lw=1, color=colour, ls=style)
            for x, y, discarded, infinite in points:
                if discarded:
                    ax.plot([x], [y], marker="x", ms=9, mew=2, color=colour)
                if infinite:
                    ax.annotate(
                        "inf", (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points"
                    )
        ax.set_yscale("log")
        ax.set_title(f"{cell}: {label} (keep {entries[0][1]['k']})", fontsize=8)
        ax.set_xlabel("epoch of the shrink step", fontsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # shrink steps follow epochs
        ax.set_ylabel("F", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [Line2D([0], [0], color=colour_of[op], lw=2, label=op) for op in ops]
    handles += [
        Line2D([0], [0], color="#555555", lw=1.2, ls=style_of[s], label=f"edge from {s}")
        for s in sources
    ]
    handles.append(Line2D([0], [0], color="#555555", marker="x", ls="none", label="discarded"))
    columns_of_legend = min(len(handles), 6)
    legend_rows = math.ceil(len(handles) / columns_of_legend)
    height = 2.8 * rows + 0.25 * legend_rows + 0.4
    figure.set_size_inches(3.6 * columns, height)
    figure.legend(
        handles=handles, loc="lower center", ncol=columns_of_legend, fontsize=7, frameon=False
    )
    figure.suptitle(
        "information of every candidate at every shrink step (colour: op; x: discarded)",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, (0.25 * legend_rows + 0.15) / height, 1, 1))
    save_figure(figure, path, dpi=120)
    plt.close(figure)
    return {"panels": len(panels), "path": str(path), "legend_entries": len(handles)}


def draw_curves(
    metrics: list[dict], path: Path, metric: str = "acc", title: str = "top-1 accuracy (%)"
) -> dict:
    """Loss and the task's metric (`train_<metric>`, `test_<metric>`) per epoch; live
    candidates and images per second."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [m for m in metrics if m.get("event") == "epoch"]
    shrinks = [m["epoch"] for m in metrics if m.get("event") == "shrink"]
    x = [m["epoch"] for m in epochs]
    figure, (loss_ax, acc_ax, live_ax) = plt.subplots(1, 3, figsize=(13, 3.4))
    loss_ax.plot(x, [m["train_loss"] for m in epochs], label="train")
    loss_ax.plot(x, [m["test_loss"] for m in epochs], label="test")
    loss_ax.set_title("loss", fontsize=9)
    acc_ax.plot(x, [m[f"train_{metric}"] for m in epochs], label="train")
    acc_ax.plot(x, [m[f"test_{metric}"] for m in epochs], label="test")
    acc_ax.set_title(title, fontsize=9)
    searched = bool(epochs) and "live" in epochs[0]
    if searched:
        live_ax.step(x, [m["live"] for m in epochs], where="post", color="#2ca02c")
        live_ax.set_ylabel("live candidates", fontsize=8, color="#2ca02c")
    speed = live_ax.twinx()
    speed.plot(x, [m["images_per_s"] for m in epochs], color="#9467bd", marker=".")
    speed.set_ylabel("images / s", fontsize=8, color="#9467bd")
    live_ax.set_title("live candidates and speed" if searched else "speed", fontsize=9)
    for ax in (loss_ax, acc_ax, live_ax):
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for epoch in shrinks:
            ax.axvline(epoch, color="#cccccc", lw=0.8, ls=":")
    loss_ax.legend(fontsize=7)
    acc_ax.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path, dpi=120)
    plt.close(figure)
    return {"panels": 3, "path": str(path)}


def draw_nb201_rank(table_path: str, found: str, path: Path) -> dict | None:
    """Where the found cell's CIFAR-10 accuracy lies among all cells of the table."""
    from nasc.runtime.reports.nb201 import NB201Table

    try:
        table = NB201Table.load(table_path)
    except Exception:  # noqa: BLE001 - a table that cannot be read just means no figure
        return None
    values = [row["cifar10"] for row in table.rows.values() if "cifar10" in row]
    mine = (table.lookup(found) or {}).get("cifar10")
    if not values or mine is None:
        return None
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(6, 3))
    ax.hist(values, bins=80, color="#bbbbbb")
    ax.axvline(mine, color="#d62728", lw=2)
    ax.set_title(
        f"found cell: {mine:.2f}% on CIFAR-10, rank {table.rank(found, 'cifar10'):,} of "
        f"{len(values):,}",
        fontsize=9,
    )
    ax.set_xlabel("CIFAR-10 test accuracy (%)", fontsize=8)
    figure.tight_layout()
    save_figure(figure, path, dpi=120)
    plt.close(figure)
    return {"panels": 1, "path": str(path)}


def metric_names(result: dict) -> tuple[str, str, str]:
    """A run's metric as result.json names it: its key (`acc`), its label (`accuracy`), and
    the title of its curve (runs older than the `metric` field: top-1 accuracy)."""
    key, label = result.get("metric", "acc"), result.get("metric_label", "accuracy")
    return key, label, "top-1 accuracy (%)" if key == "acc" else f"{label} (%)"


def write_report(run_dir: Path, extra: dict | None = None) -> Path:
    """Write `report.html` and its figures (`figures/*.png`) into a search run directory;
    `extra`: more figures a task drew, {key: (what `draw_*` returned, caption)}."""
    from nasc.compiler import catalog
    from nasc.dsl.macro import instantiate

    run_dir = Path(run_dir)
    config, result, metrics = _read_run(run_dir)
    space = parse_space(
        read_source(run_dir / "space.nas"), str(run_dir / "space.nas"), catalog=catalog()
    )
    genotype = Genotype.from_json(json.loads((run_dir / "genotype.json").read_text()))
    figures = run_dir / "figures"
    figures.mkdir(exist_ok=True)
    defines = config.get("defines", {})
    space = space.for_values(defines)
    drawn = {}
    drawn["space"] = draw_space(
        space,
        instantiate(space, defines, catalog()),
        figures / "space.png",
        title=f"searched space: {space.name}",
    )
    found = apply_genotype(space, genotype)
    drawn["found"] = draw_space(
        found,
        instantiate(found, defines, catalog()),
        figures / "found.png",
        title="found architecture",
    )
    key, _, title = metric_names(result)
    drawn["curves"] = draw_curves(metrics, figures / "curves.png", key, title)
    importance = run_dir / "importance.json"
    if importance.is_file():
        drawn["importance"] = draw_importance(
            json.loads(importance.read_text()), figures / "importance.png"
        )
    if result.get("nb201_table") and result.get("nb201"):
        rank = draw_nb201_rank(result["nb201_table"], result["nb201"], figures / "nb201.png")
        if rank:
            drawn["nb201"] = rank
    page = _html(run_dir, config, result, drawn, extra or {})
    write_atomic(run_dir / "report.html", page.encode())
    return run_dir / "report.html"


def _read_run(run_dir: Path) -> tuple[dict, dict, list[dict]]:
    """A finished run's config.json, result.json and metrics."""
    config = json.loads((run_dir / "config.json").read_text())
    result = json.loads((run_dir / "result.json").read_text())
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return config, result, metrics


def _run_page(
    command: str, run_dir: Path, summary: list, drawn: dict, captions: dict, settings: list
) -> str:
    """A run's report page: the summary table, the drawn figures in the order of `captions`,
    and the settings."""
    sections = [
        f'<figure><img src="figures/{Path(drawn[key]["path"]).name}" alt="{key}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for key, caption in captions.items()
        if key in drawn and drawn[key].get("path")
    ]
    body = f"""<h1>{command}: {html.escape(run_dir.name)}</h1>
<table>{"".join(summary)}</table>
{"".join(sections)}
<h2>Settings</h2>
<table>{"".join(settings)}</table>
"""
    title = f"nasc report: {html.escape(run_dir.name)}"
    return _page(title, f'data-images="{len(sections)}"', body)


def _row(key, value) -> str:
    return f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(str(value))}</td></tr>"


def _versions(config: dict, result: dict) -> list[str]:
    """The versions and device a run recorded, as a table row (none for older runs)."""
    env = config.get("environment") or result.get("environment")
    if not env:
        return []
    return [
        _row(
            "versions",
            f"nasc {env.get('nasc')}, torch {env.get('torch')}, Python {env.get('python')}; "
            f"device {env.get('device')} ({env.get('device_name')})",
        )
    ]


def write_train_report(run_dir: Path, extra: dict | None = None) -> Path:
    """Write `report.html` and its figures into a `nasc train` run directory: the trained
    architecture, the loss and accuracy curves, and what the run recorded; `extra`: more
    figures a task drew, {key: (what `draw_*` returned, caption)}."""
    from nasc.compiler import catalog
    from nasc.dsl.macro import instantiate

    run_dir = Path(run_dir)
    config, result, metrics = _read_run(run_dir)
    space = parse_space(
        read_source(run_dir / "arch.nas"), str(run_dir / "arch.nas"), catalog=catalog()
    )
    defines = config.get("defines", {})
    figures = run_dir / "figures"
    figures.mkdir(exist_ok=True)
    key, label, title = metric_names(result)
    drawn = {
        "arch": draw_space(
            space,
            instantiate(space, defines, catalog()),
            figures / "arch.png",
            title=f"trained architecture: {space.name}",
        ),
        "curves": draw_curves(metrics, figures / "curves.png", key, title),
    }

    summary = [_row("architecture", result.get("arch"))]
    for name, what in (("final_test_acc", f"test {label}"), ("best_test_acc", "best test")):
        if result.get(name) is not None:
            summary.append(_row(f"{what} (trained from scratch)", f"{result[name]:.2f}%"))
    if result.get("parameters") is not None:
        summary.append(_row("parameters (without the auxiliary head)", f"{result['parameters']:,}"))
    if result.get("flops") is not None:
        summary.append(_row("multiply-adds", f"{result['flops'] / 1e6:.1f} M"))
    summary.append(_row("epochs", result.get("epochs")))
    summary.append(_row("training time", f"{result.get('train_seconds', 0) / 60:.1f} min"))
    summary.extend(_versions(config, result))
    settings = [
        _row(k, v)
        for k, v in {**config.get("config", {}), **defines, "data": config.get("data")}.items()
    ]
    captions = {
        "arch": "The trained architecture.",
        "curves": f"Loss and {label} per epoch, and training speed.",
    }
    for name, (figure, caption) in (extra or {}).items():
        drawn[name], captions[name] = figure, caption
    page = _run_page("nasc train", run_dir, summary, drawn, captions, settings)
    write_atomic(run_dir / "report.html", page.encode())
    return run_dir / "report.html"


def _found_space(run_dir: Path, cells: dict) -> SpaceIR:
    """The space a run searched with its found decisions applied."""
    from nasc.compiler import catalog

    space = parse_space(
        read_source(run_dir / "space.nas"), str(run_dir / "space.nas"), catalog=catalog()
    )
    defines = json.loads((run_dir / "config.json").read_text()).get("defines", {})
    space = space.for_values(defines)
    return apply_genotype(space, Genotype.from_json({"cells": cells}, str(run_dir)))


def write_seeds_report(directory: Path) -> Path:
    """Write `report.html` and `figures/found.png` for `--seeds N` searches (`summary.json` in
    `directory`): every seed's found cells side by side, one column per seed, and a table of
    the genotypes with their NB201 accuracies and the mean and spread over seeds."""
    directory = Path(directory)
    summary = json.loads((directory / "summary.json").read_text())
    runs = summary["runs"]
    found = [_found_space(Path(r["run"]), r["genotype"]) for r in runs]
    searched = [name for name in runs[0]["genotype"] if runs[0]["genotype"][name]]
    plt = _pyplot()
    figure, axes = plt.subplots(
        len(searched),
        len(runs),
        figsize=(5.2 * len(runs), 3.2 * len(searched)),
        squeeze=False,
    )
    for column, (result, space) in enumerate(zip(runs, found)):
        for row, name in enumerate(searched):
            draw_cell(axes[row][column], space.cell(name), title=f"seed {result['seed']}: {name}")
    figure.tight_layout()
    figures = directory / "figures"
    figures.mkdir(exist_ok=True)
    save_figure(figure, figures / "found.png", dpi=110)
    plt.close(figure)

    datasets = list(summary.get("nb201_accuracy") or {})
    header = [
        "seed",
        "found",
        *(f"NB201 {d}" for d in datasets),
        "supernet test (before discretisation)",
        "supernet test (discretised)",
        "run",
    ]
    rows = []
    for result in runs:
        accuracy = result.get("nb201_accuracy") or {}
        report = Path(result["run"]) / "report.html"
        link = os.path.relpath(report if report.is_file() else result["run"], directory)
        cells = [
            html.escape(str(result["seed"])),
            html.escape(
                result.get("nb201") or result.get("darts") or json.dumps(result["genotype"])
            ),
            *(f"{accuracy[d]:.2f}%" if d in accuracy else "" for d in datasets),
            _before_discretisation(result),
            _discretised(result),
            f'<a href="{html.escape(link)}">{html.escape(Path(result["run"]).name)}</a>',
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    count = len(runs)

    def mean(value, unit="%"):
        if not value:
            return ""
        over = f"{value['runs']} of {count} seeds"
        if value["runs"] < 2:
            return f"{value['mean']:.2f}{unit} ({over})"
        return f"{value['mean']:.2f} &plusmn; {value['std']:.2f}{unit} ({over})"

    spread = summary.get("nb201_accuracy") or {}
    cells = [
        "mean",
        "",
        *(mean(spread.get(d)) for d in datasets),
        mean(summary.get("supernet_before_discretisation")),
        mean(summary.get("supernet_discretised")),
        "search time " + mean(summary.get("search_seconds"), " s"),
    ]
    rows.append("<tr>" + "".join(f"<th>{cell}</th>" for cell in cells) + "</tr>")
    title = f"nasc search: {len(runs)} seeds of {html.escape(runs[0]['space'])}"
    body = f"""<h1>{title} ({html.escape(runs[0]["strategy"])})</h1>
<table><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in header)}</tr>{"".join(rows)}</table>
<figure><img src="figures/found.png" alt="found cells">
<figcaption>The cells every seed found, one column per seed.</figcaption></figure>
"""
    page = _page(title, f'data-seeds="{len(runs)}"', body)
    write_atomic(directory / "report.html", page.encode())
    return directory / "report.html"


def _before_discretisation(result: dict) -> str:
    value = (result.get("supernet_test_acc") or {}).get("before_discretisation")
    return f"{value:.2f}%" if value is not None else ""


def _discretised(result: dict) -> str:
    value = (result.get("supernet_test_acc") or {}).get("discretised")
    if value is None:
        value = result.get("final_test_acc")
    return f"{value:.2f}%" if value is not None else ""


def _html(run_dir: Path, config: dict, result: dict, drawn: dict, extra: dict) -> str:
    _, label, _ = metric_names(result)
    summary = [_row("space", result.get("space")), _row("strategy", result.get("strategy"))]
    for key in ("blocks", "nb201", "darts"):
        if key in result:
            summary.append(_row(key, result[key]))
    unit = result.get("metric_unit", "%")
    supernet = result.get("supernet_test_acc") or {}
    if supernet.get("before_discretisation") is not None:
        summary.append(
            _row(
                f"supernet test {label} before discretisation (shared weights)",
                f"{supernet['before_discretisation']:.2f}{unit} "
                f"(epoch {supernet.get('before_epoch')})",
            )
        )
    if supernet.get("discretised") is not None:
        summary.append(
            _row(
                f"supernet test {label} discretised to the found architecture (shared weights)",
                f"{supernet['discretised']:.2f}{unit}",
            )
        )
    if not supernet and result.get("final_test_acc") is not None:
        summary.append(
            _row(f"supernet test {label} (last epoch)", f"{result['final_test_acc']:.2f}{unit}")
        )
    if result.get("nb201_accuracy"):
        ranks = result.get("nb201_rank") or {}
        for key, value in result["nb201_accuracy"].items():
            rank = f" (rank {ranks[key]:,} of 15,625)" if ranks.get(key) else ""
            summary.append(
                _row(
                    f"NAS-Bench-201 {key} (the found cell trained from scratch)",
                    f"{value:.2f}%{rank}",
                )
            )
    elif "nb201_accuracy" in result:
        summary.append(_row("NAS-Bench-201", "the cell is not in the table"))
    summary.append(_row("search time", f"{result.get('search_seconds', 0) / 60:.1f} min"))
    if result.get("searched_with"):
        values = ", ".join(f"{k}={v}" for k, v in result["searched_with"].items())
        summary.append(_row("searched with", values))
    summary.extend(_versions(config, result))
    if result.get("measure_on"):
        share = result["measure_seconds"] / max(result.get("search_seconds") or 0, 1e-9)
        summary.append(
            _row(
                "information measured on",
                f"{result['measure_on']} protocol ({result['measure_seconds'] / 60:.1f} min, "
                f"{100 * min(share, 1.0):.0f}% of the search)",
            )
        )
    settings = [
        _row(k, v)
        for k, v in {
            **config.get("config", {}),
            **config.get("defines", {}),
            "data": config.get("data"),
        }.items()
    ]
    captions = {
        "found": "The architecture the search found.",
        "importance": "The information F of every live candidate at every shrink step, one "
        "panel per comparison subset (larger F: a less informative, more noise-like "
        "output; x: discarded at that step).",
        "curves": f"Supernet loss and {label} per epoch; live candidates and training speed "
        "(dotted lines: shrink steps).",
        "nb201": "The found cell among all 15,625 cells of NAS-Bench-201 (CIFAR-10).",
        "space": "The searched space (edge colours: comparison subsets).",
    }
    for name, (figure, caption) in extra.items():
        drawn[name], captions[name] = figure, caption
    return _run_page("nasc search", run_dir, summary, drawn, captions, settings)


PAGE_STYLE = """body { font-family: sans-serif; max-width: 1400px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { text-align: left; padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; font-size: 0.9em; }
td { font-family: monospace; word-break: break-all; }
figure { margin: 2em 0; } img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }"""

# Marks the page once its images have loaded, so a headless browser can count broken ones.
IMAGE_CHECK = """window.addEventListener("load", function () {
  var broken = Array.prototype.filter.call(document.images, function (img) {
    return !img.complete || img.naturalWidth === 0;
  });
  document.body.setAttribute("data-broken-images", String(broken.length));
});"""


def _page(title: str, body_attributes: str, body: str) -> str:
    """A self-contained HTML page (figures are linked PNGs beside it)."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
{PAGE_STYLE}
</style></head>
<body {body_attributes}>
{body}<script>
{IMAGE_CHECK}
</script>
</body></html>
"""


def write_sweep_report(directory: Path) -> Path:
    """Write `report.html` for a `nasc sweep` (`results.json` in `directory`): one row per group
    of the grid (everything but the seed) with the mean and spread over its seeds, then one row
    per search, linked to its own report."""
    directory = Path(directory)
    gathered = json.loads((directory / "results.json").read_text())
    datasets = list(
        dict.fromkeys(d for group in gathered["groups"] for d in group.get("nb201_accuracy") or {})
    )

    def mean(value, seeds, unit="%"):
        if not value:
            return ""
        over = f"{value['runs']} of {seeds} seeds"
        if value["runs"] < 2:
            return f"{value['mean']:.2f}{unit} ({over})"
        return f"{value['mean']:.2f} &plusmn; {value['std']:.2f}{unit} ({over})"

    def table(header, rows):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    groups = [
        [
            html.escape(group["group"]),
            f"{group['done']} of {group['seeds']}",
            *(mean((group.get("nb201_accuracy") or {}).get(d), group["seeds"]) for d in datasets),
            mean(group.get("supernet_discretised"), group["seeds"]),
            mean(group.get("search_seconds"), group["seeds"], " s"),
        ]
        for group in gathered["groups"]
    ]
    runs = []
    for row in gathered["runs"]:
        result = row.get("result") or {}
        found = result.get("nb201") or result.get("darts") or json.dumps(result.get("genotype"))
        link = ""
        if row.get("run"):
            report = Path(row["run"]) / "report.html"
            target = os.path.relpath(report if report.is_file() else row["run"], directory)
            link = f'<a href="{html.escape(target)}">{html.escape(Path(row["run"]).name)}</a>'
        runs.append(
            [
                html.escape(row["group"]),
                html.escape(str(row["seed"])),
                html.escape(row["status"] if row["status"] != "done" else found),
                _discretised(result) if result else html.escape(row.get("error", "")),
                link,
            ]
        )
    title = f"nasc sweep: {len(gathered['runs'])} searches in {len(gathered['groups'])} groups"
    body = (
        f"<h1>{html.escape(title)}</h1>"
        + table(
            [
                "group",
                "seeds done",
                *(f"NB201 {d}" for d in datasets),
                "supernet test (discretised)",
                "search time",
            ],
            groups,
        )
        + "<h2>Searches</h2>"
        + table(["group", "seed", "found", "supernet test (discretised)", "run"], runs)
    )
    page = _page(html.escape(title), f'data-searches="{len(gathered["runs"])}"', body)
    write_atomic(directory / "report.html", page.encode())
    return directory / "report.html"
