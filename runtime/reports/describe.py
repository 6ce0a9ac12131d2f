"""`nasc show`: the facts of a space (cells, subsets, macro, size) as a dict and as rich output."""

from __future__ import annotations

from collections.abc import Mapping

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from nasc.dsl import Genotype, SpaceIR, apply_genotype
from nasc.dsl.genotype import genotype_strings
from nasc.dsl.ir import count_value, format_count
from nasc.dsl.macro import Plan, instantiate
from nasc.runtime.catalog import language_catalog


def describe(
    space: SpaceIR,
    overrides: Mapping[str, int] | None = None,
    genotype: Genotype | None = None,
    measure: bool = True,
) -> dict:
    """Everything `nasc show` reports, as one JSON-ready dict.

    Args:
        genotype: decisions to apply (`--arch`); the facts are then those of the fixed network.
        measure: compile the network to count `parameters` and `flops` (only this imports
            PyTorch; a network too large for the memory is refused before it is built).
    """
    space = space.for_values(overrides)
    searched = space
    if genotype is not None:
        space = apply_genotype(space, genotype)
    # A fixed architecture is reported as the network one would train (affine BNs, no aux, the
    # `train` statements); a space as its supernet (the `search` statements).
    search = not space.is_fixed
    plan = instantiate(space, overrides, language_catalog(), phase="search" if search else "train")
    facts: dict = {
        "space": space.name,
        "file": space.file,
        "preset": space.preset,
        "params": dict(plan.params),
        "input": {"channels": plan.channels, "size": plan.size},
        "fixed": space.is_fixed,
        "architectures": count_value(space.architectures()),
        "opsets": {opset.name: list(opset.ops) for opset in space.opsets},
        "op_definitions": {
            defn.name: {"params": list(defn.params), "role": defn.role, "doc": defn.doc}
            for defn in space.opdefs
        },
        "cells": {
            cell.name: _cell_facts(cell, plan) for cell in space.used_cells() if cell.block is None
        },
        "choices": {choice.label: _choice_facts(choice) for choice in space.block_choices},
        "widths": {choice.label: list(choice.widths) for choice in space.width_choices},
        "macro": [
            {
                "index": stage.index,
                "kind": _stage_kind(space, stage),
                "name": stage.name,
                "inputs": list(stage.inputs),
                "in_channels": list(stage.in_channels),
                "out_channels": stage.out_channels,
                "width": stage.width,
                "in_size": stage.in_size,
                "out_size": stage.out_size,
                "stride": stage.stride,
                "per_pixel": stage.per_pixel,
            }
            for stage in plan.stages
        ],
    }
    if genotype is not None:
        facts["arch"] = {
            "genotype": genotype.to_json()["cells"],
            **genotype_strings(searched, genotype),
        }
    elif space.is_fixed:
        facts["arch"] = genotype_strings(space, Genotype({}))
    if measure:
        from nasc.compiler import CompileOptions, compile_space, count_flops
        from nasc.runtime.hardware.memory import check_builds

        check_builds(space, overrides or {})
        network = compile_space(space, overrides, CompileOptions(search=search))
        facts["parameters"] = network.num_parameters()
        facts["flops"] = count_flops(network, plan.channels, plan.size)
    return facts


def _stage_kind(space: SpaceIR, stage) -> str:
    if stage.kind == "cell" and space.cell(stage.name).block is not None:
        return "choice"
    return stage.kind


def _choice_facts(choice) -> dict:
    # `describe` took the values as defaults, so the decisions are those of this network.
    decisions = [cell.name for cell in choice.cells]
    return {
        "candidates": list(choice.candidates),
        "shared": not choice.unshared,
        "stride": choice.stride,
        "instances": choice.count,
        "decisions": decisions,
        "architectures": count_value(len(choice.candidates) ** len(decisions)),
    }


def _cell_facts(cell, plan: Plan) -> dict:
    return {
        "inputs": [{"name": i.name, "adapter": i.adapter} for i in cell.inputs],
        "flags": list(cell.flags),
        "nodes": [
            {
                "name": node.name,
                "combine": node.combine,
                "edges": [
                    {
                        "source": edge.source,
                        "ops": list(edge.ops),
                        "choice": edge.choice,
                        "candidates": list(edge.candidates),
                    }
                    for edge in cell.edges_into(node.name)
                ],
            }
            for node in cell.nodes
        ],
        "output": list(cell.output),
        "concat": cell.concat,
        "subsets": [
            {"label": s.label, "k": s.k, "candidates": len(s.members)} for s in cell.subsets
        ],
        "choices": len(cell.choices),
        "architectures": count_value(cell.architectures()),
        "instances": len(plan.cells_of(cell.name)),
    }


def render(facts: dict, console: Console) -> None:
    """Print the facts as panels and tables."""
    params = ", ".join(f"{k}={v}" for k, v in facts["params"].items())
    title = Text.assemble((facts["space"], "bold"), f"  ({facts['file']})")
    summary = Table.grid(padding=(0, 2))
    summary.add_row("parameters", params)
    summary.add_row(
        "input",
        f"{facts['input']['channels']} x {facts['input']['size']} x {facts['input']['size']}",
    )
    if facts.get("preset"):
        summary.add_row("preset", facts["preset"])
    fixed = "  (fixed)" if facts["fixed"] else ""
    summary.add_row("architectures", format_count(facts["architectures"]) + fixed)
    if "parameters" in facts:
        what = "network" if facts["fixed"] else "supernet"
        summary.add_row("weights", f"{facts['parameters']:,} ({what})")
        summary.add_row("FLOPs", f"{facts['flops'] / 1e6:,.2f} M multiply-adds per image")
    for key in ("blocks", "nb201", "darts"):
        if key in facts.get("arch", {}):
            summary.add_row(key, facts["arch"][key])
    console.print(Panel(summary, title=title, box=box.ROUNDED, expand=False))

    for name, defn in facts.get("op_definitions", {}).items():
        params = f"({', '.join(defn['params'])})" if defn["params"] else ""
        doc = f": {defn['doc']}" if defn["doc"] else ""
        console.print(Text.assemble(("op", "bold"), f" {name}{params}{doc}"))
    for name, ops in facts["opsets"].items():
        console.print(f"[bold]ops[/bold] {name} = {{{', '.join(ops)}}}")
    for name, cell in facts["cells"].items():
        console.print(_cell_panel(name, cell))
    if facts.get("choices"):
        console.print(_choices_table(facts["choices"]))
    for label, widths in facts.get("widths", {}).items():
        console.print(
            f"[bold]widths[/bold] {label} = {{{', '.join(map(str, widths))}}}  (keep 1, entangled)"
        )
    console.print(_macro_table(facts["macro"]))


def _choices_table(choices: dict) -> Table:
    table = Table(title="block choices (keep 1 per decision)", box=box.SIMPLE_HEAD)
    for column in ("choice", "candidates", "stride", "instances", "decisions"):
        table.add_column(column)
    for label, choice in choices.items():
        decided = ", ".join(choice["decisions"])
        if choice["shared"] and choice["instances"] > 1:
            decided += " (shared)"
        table.add_row(
            label,
            ", ".join(choice["candidates"]),
            str(choice["stride"]),
            str(choice["instances"]),
            decided,
        )
    return table


def _cell_panel(name: str, cell: dict) -> Panel:
    edges = Table(box=box.SIMPLE_HEAD, show_edge=False)
    edges.add_column("node")
    edges.add_column("combine")
    edges.add_column("edge")
    edges.add_column("op / candidates")
    for node in cell["nodes"]:
        for index, edge in enumerate(node["edges"]):
            what = list(edge["ops"])
            if edge["choice"]:
                what.append(f"choice {edge['choice']} ({len(edge['candidates'])})")
            edges.add_row(
                node["name"] if index == 0 else "",
                node["combine"] if index == 0 else "",
                f"{edge['source']} -> {node['name']}",
                " + ".join(what),
            )
    inputs = ", ".join(
        f"{i['name']}:{i['adapter']}" if i["adapter"] else i["name"] for i in cell["inputs"]
    )
    output = f"concat({', '.join(cell['output'])})" if cell["concat"] else cell["output"][0]
    lines = [
        Text(
            f"inputs {inputs}   output {output}   flags {', '.join(cell['flags']) or '-'}   "
            f"instances {cell['instances']}"
        ),
        edges,
    ]
    if cell["subsets"]:
        subsets = Table(box=box.SIMPLE_HEAD, show_edge=False)
        subsets.add_column("comparison subset")
        subsets.add_column("keep", justify="right")
        subsets.add_column("of", justify="right")
        for subset in cell["subsets"]:
            subsets.add_row(subset["label"], str(subset["k"]), str(subset["candidates"]))
        lines.append(subsets)
        lines.append(Text(f"{format_count(cell['architectures'])} decisions"))
    return Panel(Group(*lines), title=f"cell {name}", box=box.ROUNDED, expand=False)


def _macro_table(stages: list[dict]) -> Table:
    table = Table(title="network", box=box.SIMPLE_HEAD)
    for column in ("#", "stage", "name", "reads", "channels", "resolution"):
        table.add_column(column, justify="right" if column in ("#",) else "left")
    for stage in stages:
        reads = ", ".join("image" if i < 0 else str(i) for i in stage["inputs"])
        channels = f"{'+'.join(map(str, stage['in_channels']))} -> {stage['out_channels']}"
        resolution = f"{stage['in_size']} -> {stage['out_size']}"
        if stage["kind"] in ("head", "aux"):
            channels = f"{stage['in_channels'][0]} -> {stage['out_channels']} classes"
            resolution = f"{stage['in_size']} -> scores"
            if stage.get("per_pixel"):  # class scores per pixel, resized to the input
                resolution = f"{stage['in_size']} -> {stage['out_size']} per pixel"
        table.add_row(
            str(stage["index"]), stage["kind"], stage["name"], reads, channels, resolution
        )
    return table
