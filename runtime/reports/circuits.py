"""`nasc show` for circuit spaces: qubits, task, graph, placeholders and their candidates."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from nasc.dsl import CircuitSpace
from nasc.dsl.ir import count_value, format_count


def describe_circuit(
    space: CircuitSpace, overrides: Mapping[str, int] | None = None, decisions=None
) -> dict:
    """Everything `nasc show` reports of a circuit space, as one JSON-ready dict.

    Args:
        decisions: {placeholder: candidate} to apply (`--arch` as JSON); the facts are then
            those of the fixed circuit.
    """
    space = space.for_values(overrides)
    if decisions:
        space = space.decide(decisions)
    plan = space.plan()
    slots = []
    for slot in plan.slots:
        slots.append(
            {
                "label": slot.label,
                "placeholder": slot.choice,
                "candidates": [candidate.name for candidate in slot.candidates],
                "angles": max(candidate.params for candidate in slot.candidates),
            }
        )
    return {
        "space": space.name,
        "kind": "circuit",
        "file": space.file,
        "params": dict(plan.values),
        "qubits": plan.qubits,
        "task": plan.task,
        "task_args": dict(plan.task_args),
        "graph": [list(edge) for edge in plan.edges],
        "placeholders": len(plan.choices),
        "architectures": count_value(plan.architectures()),
        "fixed": not plan.choices,
        "slots": slots,
    }


def render_circuit(facts: dict, console: Console) -> None:
    """Print the facts of a circuit space."""
    params = ", ".join(f"{k}={v}" for k, v in facts["params"].items())
    summary = Table.grid(padding=(0, 2))
    summary.add_row("parameters", params)
    summary.add_row("qubits", str(facts["qubits"]))
    task = facts["task"] or "(none: give --task)"
    if facts["task_args"]:
        task += "(" + ", ".join(f"{k}={v:g}" for k, v in facts["task_args"].items()) + ")"
    summary.add_row("task", task)
    if facts["graph"]:
        summary.add_row("graph", " ".join(f"{a}-{b}" for a, b in facts["graph"]))
    fixed = "  (fixed)" if facts["fixed"] else ""
    summary.add_row("architectures", format_count(facts["architectures"]) + fixed)
    title = Text.assemble((facts["space"], "bold"), f"  (circuit, {facts['file']})")
    console.print(Panel(summary, title=title, box=box.ROUNDED, expand=False))
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("slot", "kind", "candidates", "angles"):
        table.add_column(column)
    for slot in facts["slots"]:
        kind = "place" if slot["placeholder"] else "apply"
        table.add_row(slot["label"], kind, ", ".join(slot["candidates"]), str(slot["angles"]))
    console.print(table)


# --- report.html of a circuit search ------------------------------------------------------------


def draw_circuit(circuit, path: Path, title: str) -> dict:
    """The found circuit as a wire diagram: one line per qubit, gates left to right, each in the
    first column free on every qubit it spans; CNOT as a control dot and a target circle, other
    gates as labelled boxes (rotations with their angle)."""
    from nasc.runtime.reports.pages import _pyplot, save_figure

    plt = _pyplot()
    columns, placed = [0] * circuit.qubits, []
    for gate, qubits, slot in circuit.gates:
        span = range(min(qubits), max(qubits) + 1)
        column = max(columns[q] for q in span)
        for q in span:
            columns[q] = column + 1
        angle = float(circuit.angles[slot].detach()) if slot is not None else None
        placed.append((column, gate, qubits, angle))
    width = max(columns, default=0)
    figure, ax = plt.subplots(figsize=(min(2 + 0.7 * width, 40), 0.6 + 0.5 * circuit.qubits))
    for qubit in range(circuit.qubits):
        ax.plot([-0.6, width - 0.4], [qubit, qubit], color="#555555", lw=0.8, zorder=0)
        ax.text(-0.8, qubit, f"q{qubit}", ha="right", va="center", fontsize=8)
    for column, gate, qubits, angle in placed:
        if len(qubits) == 2:
            ax.plot([column, column], list(qubits), color="#1f77b4", lw=1.2, zorder=1)
        if gate == "cnot":
            control, target = qubits
            ax.plot(column, control, "o", color="#1f77b4", ms=5, zorder=2)
            ax.plot(column, target, "o", mfc="white", mec="#1f77b4", ms=11, zorder=2)
            ax.plot([column, column], [target - 0.16, target + 0.16], color="#1f77b4", lw=1.2)
            continue
        label = gate if angle is None else f"{gate}\n{angle:.2f}"
        for qubit in qubits:
            ax.text(
                column,
                qubit,
                label,
                ha="center",
                va="center",
                fontsize=6.5,
                zorder=3,
                bbox={"boxstyle": "round,pad=0.25", "fc": "#e8f0fa", "ec": "#1f77b4", "lw": 0.8},
            )
    ax.set_xlim(-1.4, max(width, 1) - 0.2)
    ax.set_ylim(circuit.qubits - 0.4, -0.6)
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    figure.tight_layout()
    save_figure(figure, path, dpi=120)
    plt.close(figure)
    return {"panels": 1, "path": str(path), "columns": width, "gates": len(placed)}


def draw_distribution(records: list[dict], path: Path, most: int = 16) -> dict | None:
    """The structure distribution over the search: per placeholder (the first `most`), the
    probability of each candidate at every logged step; the three likeliest at the end are
    named. None when the records hold no probabilities (a fixed circuit)."""
    from nasc.runtime.reports.pages import _pyplot, save_figure

    logged = [r for r in records if r.get("probabilities")]
    if not logged:
        return None
    labels = list(logged[-1]["probabilities"])[:most]
    steps = [r["step"] for r in logged]
    plt = _pyplot()
    across = min(4, len(labels))
    down = math.ceil(len(labels) / across)
    figure, axes = plt.subplots(
        down, across, figsize=(3.2 * across, 2.2 * down), squeeze=False, sharey=True
    )
    for ax, label in zip(axes.flat, labels):
        final = logged[-1]["probabilities"][label]
        top = sorted(final, key=final.get, reverse=True)[:3]
        for candidate in final:
            values = [r["probabilities"][label].get(candidate, 0.0) for r in logged]
            named = candidate in top
            ax.plot(
                steps,
                values,
                lw=1.4 if named else 0.6,
                color=None if named else "#cccccc",
                label=candidate if named else None,
            )
        ax.set_title(label, fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[len(labels) :]:
        ax.axis("off")
    figure.supxlabel("step", fontsize=8)
    figure.supylabel("probability", fontsize=8)
    figure.tight_layout()
    save_figure(figure, path, dpi=110)
    plt.close(figure)
    return {"panels": len(labels), "path": str(path)}


def write_circuit_report(run_dir: Path) -> Path:
    """Write `report.html` and its figures into a circuit search's run directory: the found
    circuit (arch.nas with circuit.pt's tuned angles) drawn, the structure distribution over
    the search, the metrics against the exact reference, OpenQASM and the settings."""
    import html
    import json

    import torch

    from nasc.compiler.circuits import SuperCircuit
    from nasc.dsl import parse_space, read_source
    from nasc.runtime.reports.pages import _row, _run_page
    from nasc.runtime.runs.checkpoint import write_atomic

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    result = json.loads((run_dir / "result.json").read_text())
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    figures = run_dir / "figures"
    figures.mkdir(exist_ok=True)
    fixed = parse_space(read_source(run_dir / "arch.nas"), str(run_dir / "arch.nas"))
    circuit = SuperCircuit(fixed.plan()).circuit({})  # the same gates, angles and sharing
    circuit.load_state_dict(torch.load(run_dir / "circuit.pt", weights_only=True))
    title = f"found circuit: {circuit.gate_count()} gates"
    drawn = {"circuit": draw_circuit(circuit, figures / "circuit.png", title)}
    distribution = draw_distribution(records, figures / "distribution.png")
    if distribution:
        drawn["distribution"] = distribution
    summary = [
        _row("space", result["space"]),
        _row("strategy", result["strategy"]),
        _row("task", result["task"]),
        _row("decisions", ", ".join(f"{k}: {v}" for k, v in result["decisions"].items())),
        *(_row(f"{key} (found, tuned)", f"{value:.6g}") for key, value in result["final"].items()),
        *(_row(f"{key} (exact reference)", f"{v:.6g}") for key, v in result["reference"].items()),
        _row("search seconds", f"{result['search_seconds']:.1f}"),
    ]
    settings = [_row(key, value) for key, value in config.get("settings", {}).items()]
    captions = {
        "circuit": "The found circuit (arch.nas) with its tuned angles; arch.qasm below "
        "writes rzz, rxx and ryy as qelib1.inc gates.",
        "distribution": "The structure distribution during the search: per placeholder, the "
        "probability of each candidate (the three likeliest at the end named).",
    }
    page = _run_page("nasc search (circuit)", run_dir, summary, drawn, captions, settings)
    qasm = html.escape((run_dir / "arch.qasm").read_text())
    qasm_section = f"<h2>OpenQASM 2 (arch.qasm)</h2>\n<pre>{qasm}</pre>\n<h2>Settings</h2>"
    page = page.replace("<h2>Settings</h2>", qasm_section)
    write_atomic(run_dir / "report.html", page.encode())
    return run_dir / "report.html"
