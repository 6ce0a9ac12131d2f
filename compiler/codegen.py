"""Generated forward code: the op graph of each cell type (`graph`), printed as one readable
Python function, one statement per graph node.

`cell_graph` runs the phases in order (`lowering.build`, `remove_dead_ops`, `mix`,
`split_channels`, `prune`, the optimisation passes, `materialise_zeros`) and lints the graph;
`print_graph` prints it. Masked-out candidates and `none` never appear in the code, so they cost
nothing; nodes whose value nothing needs are not computed. Modules are reached by name: `e` is
the cell's table of op modules and their submodules by path under each edge
(`e['x->n1']['nor_conv_3x3.1']`, `CellModule.named_ops`). The code is registered in `linecache`,
so tracebacks show the generated lines (as torch.fx's GraphModule does).
"""

from __future__ import annotations

import itertools
import linecache
from collections.abc import Sequence

import attrs

from nasc.dsl.ir import Cell

from . import lowering
from . import passes as passes_module
from .archstate import ArchState
from .graph import (
    Adapter,
    Call,
    Combine,
    Dead,
    Drop,
    Fused,
    Graph,
    Node,
    Output,
    Partial,
    Slice,
    Split,
    Term,
    Var,
    Weighted,
    Zeros,
)
from .kernels import GLOBALS
from .lowering import identifier

__all__ = [
    "cell_graph",
    "cell_source",
    "compile_source",
    "network_source",
    "print_graph",
]

_counter = itertools.count()
OUT = "out_"  # a recurrent cell's output, which its states may carry (a reserved name)


def compile_source(source: str, name: str, tag: str):
    """Execute generated source and return the function `name`, keeping the text for tracebacks."""
    filename = f"<nasc-generated {tag} #{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace = dict(GLOBALS)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace[name]


def cell_graph(
    cell: Cell,
    arch: ArchState,
    drop: bool = False,
    passes: Sequence[str] = (),
    instances: Sequence | None = None,
    defs: tuple = (),
    partial: int = 1,
) -> Graph:
    """The op graph of a cell type under the current masks and mixing mode, every phase run and
    the result linted.

    Args:
        drop: wrap every op that is no identity in drop path.
        passes: the optimisation passes to run (`passes.PASSES`); none gives one call per op.
        instances: the cell type's `CellModule`s, whose op modules the passes read.
        partial: PC-DARTS' partial channels: on a choice edge with a live candidate, the mixed
            candidates read 1/`partial` of the source's channels (`kernels.partial_channels`).
    """
    graph = lowering.build(cell, defs, drop)
    graph = lowering.remove_dead_ops(graph, cell, arch, defs)
    graph = lowering.mix(graph, cell, arch)
    graph = lowering.split_channels(graph, cell, arch, partial)
    graph = lowering.prune(graph)
    optimised = bool(passes and instances)
    if optimised:
        graph = passes_module.optimise(graph, instances, passes)
        if "accumulate" in passes:
            graph = passes_module.accumulate(graph)
    graph = lowering.materialise_zeros(graph, cell, defs)
    table = arch.choices.get(cell.name)
    doc = f"Cell `{cell.name}`, mixing: {arch.mixing if table else 'fixed'}"
    if optimised:
        doc += f", passes: {', '.join(passes)}"
    return attrs.evolve(graph, doc=doc + ".").lint()


def cell_source(
    cell: Cell,
    arch: ArchState,
    drop: bool = False,
    passes: Sequence[str] = (),
    instances: Sequence | None = None,
    defs: tuple = (),
    partial: int = 1,
) -> tuple[str, str]:
    """The forward function of a cell type, `def NAME(self, *inputs, w)`: `self` is a
    `CellModule`, `w` the cell type's mixing weights (softmax mode) or None. Arguments as
    `cell_graph`.

    Returns:
        (function name, source).
    """
    graph = cell_graph(cell, arch, drop, passes, instances, defs, partial)
    return graph.function, print_graph(graph)


# --- printing -------------------------------------------------------------------------------------


def print_graph(graph: Graph) -> str:
    """The graph as a Python function, one statement per node."""
    lines = [
        f"def {graph.function}(self, {', '.join(graph.inputs)}, w=None):",
        f'    """{graph.doc}"""',
        "    e = self.named_ops",
    ]
    for node in graph.nodes:
        lines.extend(_statement(node))
    return "\n".join(lines) + "\n"


def body(source: str) -> str:
    """A printed cell function without its first two lines (name and docstring)."""
    return source.split("\n", 2)[2]


def _module(path: tuple[str, ...]) -> str:
    return f"e[{path[0]!r}][{'.'.join(path[1:])!r}]"


def _expr(expr, accumulate: bool = False) -> str:
    """One expression as Python (a combination's terms summed in place when `accumulate`)."""
    if isinstance(expr, Var):
        return expr.name
    if isinstance(expr, Call):
        arg = _expr(expr.arg)
        if expr.fn in ("relu", "relu_"):
            return f"torch.{expr.fn}({arg})"
        if expr.fn == "pool":
            return f"_pool({_module(expr.module)}, {arg})"
        return f"{_module(expr.module)}({arg})"
    if isinstance(expr, Adapter):
        return f"self.adapters[{expr.input!r}]({_expr(expr.arg)})"
    if isinstance(expr, Drop):
        return f"_drop_path({_expr(expr.arg)}, self.drop_prob, self.training)"
    if isinstance(expr, Weighted):
        return f"w[{expr.row}, {expr.column}] * {_expr(expr.arg)}"
    if isinstance(expr, Slice):
        name = expr.arg.name
        return f"{name}[:, : {name}.shape[1] // {expr.groups}]"
    if isinstance(expr, Zeros):
        channels = "self.width" if expr.node is None else f"self.node_channels[{expr.node!r}]"
        return f"_zeros({expr.like}, {channels}, {expr.stride})"
    if isinstance(expr, Partial):
        inner = " + ".join(_scaled(expr.inner, expr.scale, accumulate)) or "None"
        weight = "None" if expr.row is None else f"w[{expr.row}].sum()"
        return f"_partial({expr.source}, {inner}, {expr.groups}, {expr.stride}, {weight})"
    raise TypeError(f"no expression printer for {type(expr).__name__}")


def _total(items: list[str], accumulate: bool) -> str:
    if not accumulate or len(items) < 2:
        return " + ".join(items)
    return f"torch.add({items[0]}, {items[1]})" + "".join(f".add_({t})" for t in items[2:])


def _scaled(terms: Sequence[Term], scale: float | None, accumulate: bool) -> list[str]:
    """The terms as summands: those without the scale in them summed and scaled once."""
    if scale is None:
        return [_expr(term.expr, accumulate) for term in terms]
    ready = [_expr(term.expr, accumulate) for term in terms if term.scaled]
    rest = [_expr(term.expr, accumulate) for term in terms if not term.scaled]
    if not rest:
        return ready
    if len(rest) > 1:
        total = _total(rest, accumulate)
        product = f"{total}.mul_({scale!r})" if accumulate else f"({total}) * {scale!r}"
    else:
        product = f"{rest[0]} * {scale!r}"
    return [*ready, product]


def _statement(node: Node) -> list[str]:
    expr = node.expr
    if isinstance(expr, Combine):
        return _combine(node.name, expr)
    if isinstance(expr, Dead):
        return [f"    # {expr.node}: every edge is none or masked out"]
    if isinstance(expr, Output):
        values = [_expr(value) for value in expr.values]
        if expr.concat:
            value = f"torch.cat([{', '.join(values)}], dim=1)"
        elif expr.mean:
            value = f"torch.stack([{', '.join(values)}]).mean(0)"
        else:
            value = values[0]
        if not expr.states:
            return [f"    return {value}"]
        # A recurrent cell returns its output and its next states (`next h = ...`).
        states = [OUT if state == "out" else _expr(state) for state in expr.states]
        return [f"    {OUT} = {value}", f"    return {OUT}, ({', '.join(states)},)"]
    if isinstance(expr, Fused):
        helper, extra = ("_conv", ", lanes=True" if expr.lanes else "")
        if expr.kind == "bn":
            helper, extra = "_bn", "" if expr.scale is None else f", scale={expr.scale!r}"
        return [
            f"    {node.name} = {helper}({expr.arg.name}, (",
            *(f"        {_module(path)}," for path in expr.modules),
            f"    ){extra})",
        ]
    if isinstance(expr, Split):
        targets = ", ".join(node.targets)
        if len(targets) + len(expr.arg.name) > 80:
            return [
                "    (",
                *(f"        {name}," for name in node.targets),
                f"    ) = {expr.arg.name}.chunk({expr.count}, 1)",
            ]
        return [f"    {targets} = {expr.arg.name}.chunk({expr.count}, 1)"]
    return [f"    {node.name} = {_expr(expr)}"]


def _combine(target: str, expr: Combine) -> list[str]:
    accumulate = expr.accumulate
    if expr.mode == "product":
        parts = []
        for edge in expr.edges:
            part = [_expr(t.expr) for t in edge.fixed] + _scaled(edge.mixed, edge.scale, accumulate)
            parts.append(f"({' + '.join(part)})" if len(part) > 1 else part[0])
        return [f"    {target} = {' * '.join(parts)}"]
    if expr.mode == "concat":
        pieces = []
        for edge in expr.edges:
            part = [_expr(t.expr) for t in edge.fixed] + _scaled(edge.mixed, edge.scale, accumulate)
            pieces.append(" + ".join(part) if part else _expr(expr.empty))
        return [f"    {target} = torch.cat([{', '.join(pieces)}], dim=1)"]
    # Mixed terms that share a scale are summed first and scaled once, so a cell with one live
    # op per edge pays one multiplication per node, not one per edge.
    flat: list[str] = []
    by_scale: dict[float | None, list[Term]] = {}
    for edge in expr.edges:
        flat.extend(_expr(term.expr, accumulate) for term in edge.fixed)
        by_scale.setdefault(edge.scale, []).extend(edge.mixed)
    for scale, mixed in by_scale.items():
        flat.extend(_scaled(mixed, scale, accumulate))
    value = _total(flat, accumulate)
    if len(flat) > 1 and len(value) > 80:
        if accumulate:
            return [
                f"    {target} = (",
                f"        torch.add({flat[0]}, {flat[1]})",
                *(f"        .add_({term})" for term in flat[2:]),
                "    )",
            ]
        return [
            f"    {target} = (",
            f"        {flat[0]}",
            *(f"        + {term}" for term in flat[1:]),
            "    )",
        ]
    return [f"    {target} = {value}"]


def network_source(supernet) -> str:
    """The network's forward: stages in order, each reading the outputs the plan wires to it (a
    list of them for a cell input that reads `from all`); a per-pixel head's map is resized to
    the image's size."""
    arch: ArchState = supernet.arch
    lines = ["def forward(self, image):"]
    if supernet.channels_last:
        lines.append("    image = image.contiguous(memory_format=torch.channels_last)")
    if arch.mixing == "softmax":
        for cell in arch.choices:
            lines.append(f"    w_{identifier(cell)} = self.arch.mixing_weights({cell!r})")
    names = {-1: "image"}
    aux = None
    for stage in supernet.plan.stages:
        module = f"self.stages[{stage.index}]"
        args = ", ".join(names[i] for i in stage.inputs)
        if stage.kind == "cell":
            args = _cell_args(stage, names)
            weights = (
                f"w_{identifier(stage.name)}"
                if arch.mixing == "softmax" and stage.name in arch.choices
                else "None"
            )
            lines.append(f"    s{stage.index} = {module}({args}, {weights})  # {stage.name}")
        elif stage.kind == "aux":
            if not supernet.options.auxiliary:
                continue
            aux = f"s{stage.index}"
            value = _per_pixel(f"{module}({args})", stage)
            lines.append(f"    {aux} = {value} if self.training else None  # aux {stage.name}")
        elif stage.kind == "head":
            value = _per_pixel(f"{module}({args})", stage)
            lines.append(f"    logits = {value}  # head {stage.name}")
        else:
            lines.append(f"    s{stage.index} = {module}({args})  # {stage.kind} {stage.name}")
        names[stage.index] = f"s{stage.index}"
    lines.append(f"    return logits, {aux}" if supernet.options.auxiliary else "    return logits")
    return "\n".join(lines) + "\n"


def _cell_args(stage, names: dict[int, str]) -> str:
    """A cell's arguments: one output per input, a list for an input that reads `from all`."""
    grouped: dict[int, list[str]] = {}
    for slot, source, *_ in stage.reads():
        grouped.setdefault(slot, []).append(names[source])
    return ", ".join(
        f"[{', '.join(values)}]" if slot in stage.fused else values[0]
        for slot, values in grouped.items()
    )


def _per_pixel(call: str, stage) -> str:
    """A head's call, resized bilinearly to the image's size when it is a per-pixel head."""
    return f"_to_input({call}, image)" if stage.per_pixel else call
