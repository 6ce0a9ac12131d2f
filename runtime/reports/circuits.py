"""`nasc show` for circuit spaces: qubits, task, graph, placeholders and their candidates."""

from __future__ import annotations

from collections.abc import Mapping

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
