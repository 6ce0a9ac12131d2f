"""Generated forward code: one readable Python function per cell type, made from the live ops.

Masked-out candidates and `none` never appear in the code, so they cost nothing; nodes whose
value nothing needs are not computed. The code is registered in `linecache`, so tracebacks show
the generated lines (as torch.fx's GraphModule does).
"""

from __future__ import annotations

import builtins
import itertools
import keyword
import linecache
from collections.abc import Sequence

import torch
from torch.nn import functional

from nasc.dsl.ir import Cell

from . import passes as passes_module
from .archstate import ArchState
from .ops import get_op

_counter = itertools.count()


def zeros(like: torch.Tensor, channels: int, stride: int) -> torch.Tensor:
    """A zero feature map for a node whose every edge is `none` or masked out."""
    height = (like.shape[2] + stride - 1) // stride
    width = (like.shape[3] + stride - 1) // stride
    return like.new_zeros((like.shape[0], channels, height, width))


def drop_path(x: torch.Tensor, probability: float, training: bool) -> torch.Tensor:
    """Zero whole samples with the given probability, rescaling the rest (DARTS' drop path)."""
    if not training or probability <= 0.0:
        return x
    keep = 1.0 - probability
    mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask


def partial_channels(
    x: torch.Tensor,
    mixed: torch.Tensor | None,
    groups: int,
    stride: int,
    bypass_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """A PC-DARTS edge (Xu et al., ICLR 2020): the edge's mixed ops ran on the first 1/groups of
    `x`'s channels (`mixed`, None when only `none` is live); the other channels bypass them,
    max-pooled 2x2 when the edge strides, as the reference code does. The two are concatenated
    and the channels shuffled in `groups` groups (ShuffleNet's shuffle, as the paper).

    Args:
        bypass_weight: the edge's weight under edge normalisation, which scales the whole edge
            output (the mixed part already carries it in its op weights).
    """
    part = x.shape[1] // groups
    rest = x[:, part:]
    if stride > 1:
        rest = functional.max_pool2d(rest, 2, 2, ceil_mode=True)  # ceil: the ops' output size
    if bypass_weight is not None:
        rest = rest * bypass_weight
    if mixed is None:
        mixed = rest.new_zeros((rest.shape[0], part, *rest.shape[2:]))
    return functional.channel_shuffle(torch.cat([mixed, rest], dim=1), groups)


GLOBALS = {
    "torch": torch,
    "_zeros": zeros,
    "_drop_path": drop_path,
    "_partial": partial_channels,
    **passes_module.GLOBALS,
}


def compile_source(source: str, name: str, tag: str):
    """Execute generated source and return the function `name`, keeping the text for tracebacks."""
    filename = f"<nasc-generated {tag} #{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace = dict(GLOBALS)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace[name]


# Names a user's name must not become: the generated code's own, and Python's.
_RESERVED = frozenset(
    [*keyword.kwlist, *keyword.softkwlist, *dir(builtins), *GLOBALS]
    + ["self", "w", "e", "image", "logits", "forward"]
)


def _identifier(name: str) -> str:
    """A user's name as a Python name that collides with nothing: kept as written when it is safe,
    else prefixed with `v_` (a keyword such as `import` or `None`, a builtin, a name of the
    generated code such as `self`, `w`, `e` or `torch`, a private `_name`, `s0`). Names that
    start with `v_` are always prefixed, so two user names never meet."""
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    if (
        safe == name
        and name.isidentifier()
        and name not in _RESERVED
        and not name.startswith(("_", "v_"))
        and not (name[:1] == "s" and name[1:].isdigit())
    ):
        return name
    return "v_" + safe


def cell_source(
    cell: Cell,
    arch: ArchState,
    drop: bool = False,
    passes: Sequence[str] = (),
    instances: Sequence | None = None,
    defs: tuple = (),
    partial: int = 1,
) -> tuple[str, str]:
    """The forward function of a cell type under the current masks and mixing mode.

    The function is `def NAME(self, *inputs, w)`: `self` is a `CellModule`, `w` the cell type's
    mixing weights (softmax mode) or None.

    Args:
        passes: the optimisation passes to run (`passes.PASSES`); none gives one call per op.
        instances: the cell type's `CellModule`s, whose op modules the passes read.
        partial: PC-DARTS' partial channels: on a choice edge with a live candidate, the mixed
            candidates read 1/`partial` of the source's channels (see `partial_channels`).

    Returns:
        (function name, source).
    """
    table = arch.choices.get(cell.name)
    mode = arch.mixing
    var = {name: _identifier(name) for name in (*cell.input_names, *cell.node_names)}

    def live_ops(edge) -> tuple[list[str], list[str]]:
        """The edge's fixed and live mixed ops that compute something."""
        fixed = [op for op in edge.ops if not get_op(op, defs).zero]
        if not edge.is_choice:
            return fixed, []
        return fixed, [op for op in arch.live(cell.name, edge.key) if not get_op(op, defs).zero]

    def edge_scale(edge, mixed) -> str | None:
        if not mixed or mode not in ("mean", "live_mean"):
            return None
        live = arch.live(cell.name, edge.key)
        return repr(1.0 / (len(edge.candidates) if mode == "mean" else len(live)))

    ops = {edge.key: live_ops(edge) for edge in cell.edges}
    # PC-DARTS edges: their bypassed channels flow even when only `none` is live.
    partial_edges = set()
    if partial > 1:
        partial_edges = {e.key for e in cell.choices if arch.live(cell.name, e.key)}
    fresh = passes_module.namer({*var.values(), "e", "w", "self", "torch"})
    # The variable holding the slice of a source that its partial-channel candidates read.
    sliced = {
        source: fresh(f"{var[source]}_part")
        for source in dict.fromkeys(cell.edge(key).source for key in sorted(partial_edges))
    }
    blocks: dict[tuple[str, str], passes_module.Term] = {}

    def reads(edge, op: str) -> str:
        mixed = edge.key in partial_edges and op in ops[edge.key][1]
        return sliced[edge.source] if mixed else var[edge.source]

    def op_term(edge, op: str) -> tuple[str, bool]:
        term = blocks.get((edge.key, op))
        if term is None:
            return _op_call(edge.key, op, reads(edge, op), drop, defs), False
        expr = term.expr
        if drop and not get_op(op, defs).identity:
            expr = f"_drop_path({expr}, self.drop_prob, self.training)"
        return expr, term.scaled

    def live_terms(edge) -> tuple[list[str], list[tuple[str, bool]], str | None]:
        """The edge's live, nonzero ops as (fixed terms, mixed terms, the mixed terms' scale);
        a mixed term is (expression, whether the scale is already in it)."""
        fixed_ops, mixed_ops = ops[edge.key]
        fixed = [op_term(edge, op)[0] for op in fixed_ops]
        if not edge.is_choice:
            return fixed, [], None
        row = table.edges.index(edge.key)
        mixed = []
        for op in mixed_ops:
            call, ready = op_term(edge, op)
            if mode == "softmax":
                call = f"w[{row}, {table.candidates[row].index(op)}] * {call}"
            mixed.append((call, ready))
        if edge.key in partial_edges:
            inner = " + ".join(scaled(mixed, edge_scale(edge, mixed))) or "None"
            stride = 2 if cell.reduction and edge.source in cell.input_names else 1
            weight = f"w[{row}].sum()" if mode == "softmax" and arch.edge_normalised else "None"
            # Under edge normalisation a row of `w` sums to its edge's weight.
            call = f"_partial({var[edge.source]}, {inner}, {partial}, {stride}, {weight})"
            return fixed, [(call, True)], None
        return fixed, mixed, edge_scale(edge, mixed)

    # The `accumulate` pass: a sum of several terms is one new tensor that the others are added
    # into in place (`torch.add(a, b).add_(c)`), so a node costs one buffer, not one per `+`.
    # In-place adds and scalar products on a fresh tensor save nothing for the backward.
    accumulate = "accumulate" in passes and bool(instances)

    def total(items: list[str]) -> str:
        if not accumulate or len(items) < 2:
            return " + ".join(items)
        return f"torch.add({items[0]}, {items[1]})" + "".join(f".add_({t})" for t in items[2:])

    def scaled(terms: list[tuple[str, bool]], scale: str | None) -> list[str]:
        if scale is None:
            return [term for term, _ in terms]
        ready = [term for term, done in terms if done]
        rest = [term for term, done in terms if not done]
        if not rest:
            return ready
        if len(rest) > 1:
            product = f"{total(rest)}.mul_({scale})" if accumulate else f"({total(rest)}) * {scale}"
        else:
            product = f"{rest[0]} * {scale}"
        return [*ready, product]

    def edge_terms(key: str) -> list[str]:
        fixed, mixed, scale = terms[key]
        return fixed + scaled(mixed, scale)

    def has_terms(key: str) -> bool:
        fixed, mixed = ops[key]
        return bool(fixed or mixed) or key in partial_edges

    # Which nodes does the output need? Walk back from the output through edges with live ops.
    needed = set(cell.output)
    used: set[str] = set()  # edges whose terms the code reads
    for node in reversed(cell.nodes):
        if node.name not in needed:
            continue
        into = cell.edges_into(node.name)
        if node.combine == "product" and not all(has_terms(e.key) for e in into):
            continue  # one dead factor makes the product zero: its other sources go unread
        used.update(e.key for e in into if has_terms(e.key))
        needed.update(e.source for e in into if has_terms(e.key))

    # The passes plan, per source, how its readers run; each block follows its source.
    source_lines: dict[str, list[str]] = {}
    for source in cell.input_names + cell.node_names:
        # Candidates reading the whole source, and those reading its partial-channel slice.
        readers = {var[source]: ([], {})}
        if source in sliced and any(
            key in used and cell.edge(key).source == source for key in partial_edges
        ):
            part = sliced[source]
            source_lines[source] = [
                f"    {part} = {var[source]}[:, : {var[source]}.shape[1] // {partial}]"
            ]
            readers[part] = ([], {})
        if not (passes and instances):
            continue
        for edge in cell.edges:
            if edge.source != source or edge.key not in used:
                continue
            fixed_ops, mixed_ops = ops[edge.key]
            scale = edge_scale(edge, mixed_ops)
            for op in fixed_ops + mixed_ops:
                modules = [instance.edges[edge.key][op] for instance in instances]
                steps = passes_module.op_steps(modules, (edge.key, op))
                group, factors = readers[reads(edge, op)]
                group.append(passes_module.Candidate(edge=edge.key, op=op, steps=steps))
                if scale is not None and op in mixed_ops and mode != "softmax":
                    factors[(edge.key, op)] = float(scale)
        for value, (group, factors) in readers.items():
            if group:
                block = passes_module.SourceBlock(value, group, factors, passes, fresh)
                blocks.update(block.terms)
                source_lines.setdefault(source, []).extend(block.lines)

    terms = {edge.key: live_terms(edge) for edge in cell.edges}

    stride = 2 if cell.reduction else 1
    reference = var[cell.inputs[-1].name]
    lines = []
    for item in cell.inputs:
        if item.name in needed and item.adapter:
            lines.append(f"    {var[item.name]} = self.adapters[{item.name!r}]({var[item.name]})")
    for item in cell.inputs:
        lines.extend(source_lines.get(item.name, ()))
    zero_nodes: set[str] = set()
    for node in cell.nodes:
        if node.name not in needed:
            continue
        # A source that is known to be zero is materialised before an op reads it.
        for edge in cell.edges_into(node.name):
            if edge_terms(edge.key) and edge.source in zero_nodes:
                lines.append(
                    f"    {var[edge.source]} = _zeros({reference}, "
                    f"self.node_channels[{edge.source!r}], {stride})"
                )
                zero_nodes.discard(edge.source)
        parts = [edge_terms(e.key) for e in cell.edges_into(node.name)]
        target = var[node.name]
        if node.combine == "sum":
            # Mixed terms that share a scale are summed first and scaled once, so a cell with
            # one live op per edge pays one multiplication per node, not one per edge.
            flat, by_scale = [], {}
            for edge in cell.edges_into(node.name):
                fixed, mixed, scale = terms[edge.key]
                flat.extend(fixed)
                by_scale.setdefault(scale, []).extend(mixed)
            for scale, mixed in by_scale.items():
                flat.extend(scaled(mixed, scale))
            value = total(flat) if flat else None
        elif node.combine == "product":
            value = (
                None
                if any(not part for part in parts)
                else " * ".join(
                    f"({' + '.join(part)})" if len(part) > 1 else part[0] for part in parts
                )
            )
        else:
            pieces = [
                " + ".join(part) if part else f"_zeros({reference}, self.width, {stride})"
                for part in parts
            ]
            value = f"torch.cat([{', '.join(pieces)}], dim=1)"
        if value is None:
            zero_nodes.add(node.name)
            lines.append(f"    # {node.name}: every edge is none or masked out")
        elif node.combine == "sum" and accumulate and len(flat) > 1 and len(value) > 80:
            lines.append(f"    {target} = (")
            lines.append(f"        torch.add({flat[0]}, {flat[1]})")
            lines.extend(f"        .add_({term})" for term in flat[2:])
            lines.append("    )")
        elif node.combine == "sum" and len(flat) > 1 and len(value) > 80:
            lines.append(f"    {target} = (")
            lines.append(f"        {flat[0]}")
            lines.extend(f"        + {term}" for term in flat[1:])
            lines.append("    )")
        else:
            lines.append(f"    {target} = {value}")
        if source_lines.get(node.name):
            if node.name in zero_nodes:
                lines.append(
                    f"    {target} = _zeros({reference}, "
                    f"self.node_channels[{node.name!r}], {stride})"
                )
                zero_nodes.discard(node.name)
            lines.extend(source_lines[node.name])

    def output(name: str) -> str:
        if name in zero_nodes:
            return f"_zeros({reference}, self.node_channels[{name!r}], {stride})"
        return var[name]

    if cell.concat:
        lines.append(f"    return torch.cat([{', '.join(output(n) for n in cell.output)}], dim=1)")
    else:
        lines.append(f"    return {output(cell.output[0])}")
    name = f"cell_{_identifier(cell.name)}"
    args = ", ".join(var[n] for n in cell.input_names)
    optimised = f", passes: {', '.join(passes)}" if passes and instances else ""
    header = [
        f"def {name}(self, {args}, w=None):",
        f'    """Cell `{cell.name}`, mixing: {mode if table else "fixed"}{optimised}."""',
        "    e = self.edges",
    ]
    return name, "\n".join(header + lines) + "\n"


def _op_call(edge: str, op: str, source: str, drop: bool, defs: tuple = ()) -> str:
    call = f"e[{edge!r}][{op!r}]({source})"
    if drop and not get_op(op, defs).identity:
        call = f"_drop_path({call}, self.drop_prob, self.training)"
    return call


def network_source(supernet) -> str:
    """The network's forward: stages in order, each reading the outputs the plan wires to it."""
    arch: ArchState = supernet.arch
    lines = ["def forward(self, image):"]
    if supernet.channels_last:
        lines.append("    image = image.contiguous(memory_format=torch.channels_last)")
    if arch.mixing == "softmax":
        for cell in arch.choices:
            lines.append(f"    w_{_identifier(cell)} = self.arch.mixing_weights({cell!r})")
    names = {-1: "image"}
    aux = None
    for stage in supernet.plan.stages:
        module = f"self.stages[{stage.index}]"
        args = ", ".join(names[i] for i in stage.inputs)
        if stage.kind == "cell":
            weights = (
                f"w_{_identifier(stage.name)}"
                if arch.mixing == "softmax" and stage.name in arch.choices
                else "None"
            )
            lines.append(f"    s{stage.index} = {module}({args}, {weights})  # {stage.name}")
        elif stage.kind == "aux":
            if not supernet.options.auxiliary:
                continue
            aux = f"s{stage.index}"
            lines.append(
                f"    {aux} = {module}({args}) if self.training else None  # aux {stage.name}"
            )
        elif stage.kind == "head":
            lines.append(f"    logits = {module}({args})  # head {stage.name}")
        else:
            lines.append(f"    s{stage.index} = {module}({args})  # {stage.kind} {stage.name}")
        names[stage.index] = f"s{stage.index}"
    lines.append(f"    return logits, {aux}" if supernet.options.auxiliary else "    return logits")
    return "\n".join(lines) + "\n"
