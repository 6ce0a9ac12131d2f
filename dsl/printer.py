"""The printer: a `SpaceIR` back to canonical `.nas` text, so that `parse(print(ir)) == ir`."""

from __future__ import annotations

from . import ast
from .circuits import CircuitSpace, format_circuit
from .ir import Cell, Edge, Network, SpaceIR

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "//": 2}


def format_expr(expr: ast.Expr) -> str:
    """Print an integer expression with the fewest parentheses that keep its tree."""
    if isinstance(expr, ast.Num):
        return str(expr.value) if expr.value >= 0 else f"(-{-expr.value})"
    if isinstance(expr, ast.Decimal):
        return expr.text
    if isinstance(expr, ast.Ref):
        return expr.name
    if isinstance(expr, ast.WidthSet):
        return "{" + ", ".join(format_expr(value) for value in expr.values) + "}"
    if isinstance(expr, ast.Neg):
        inner = format_expr(expr.operand)
        return f"-{inner}" if _precedence(expr.operand) >= 3 else f"-({inner})"
    if (
        expr.op == "*"
        and isinstance(expr.left, ast.Num)
        and expr.left.value >= 0
        and isinstance(expr.right, ast.Ref)
        and len(expr.right.name) == 1  # `2C` reads well, `2layers` does not
        and expr.right.name not in "eE"  # `2e3` would read as a decimal
    ):
        return f"{expr.left.value}{expr.right.name}"
    level = _PRECEDENCE[expr.op]
    left = format_expr(expr.left)
    if _precedence(expr.left) < level:
        left = f"({left})"
    right = format_expr(expr.right)
    if _precedence(expr.right) <= level:
        right = f"({right})"
    return f"{left} {expr.op} {right}"


def _precedence(expr: ast.Expr) -> int:
    if isinstance(expr, ast.BinOp):
        return _PRECEDENCE[expr.op]
    if isinstance(expr, ast.Neg):
        return 3
    if isinstance(expr, ast.Num) and expr.value < 0:
        return 4  # printed in parentheses already
    return 4


def _terms(edge: Edge) -> list[str]:
    terms = [f"{edge.source}:{op}" for op in edge.ops]
    if edge.choice is not None:
        terms.append(f"{edge.source}:{edge.choice}")
    return terms


def format_cell(cell: Cell) -> str:
    inputs = ", ".join(f"{i.name}:{i.adapter}" if i.adapter else i.name for i in cell.inputs)
    flags = f" with {', '.join(cell.flags)}" if cell.flags else ""
    lines = [f"cell {cell.name}({inputs}){flags} {{"]
    for node in cell.nodes:
        terms = [term for edge in cell.edges_into(node.name) for term in _terms(edge)]
        if node.combine == "concat":
            value = f"concat({', '.join(terms)})"
        else:
            value = (" * " if node.combine == "product" else " + ").join(terms)
        lines.append(f"    {node.name} = {value}")
    for rule in cell.keeps:
        if rule.per is not None:
            lines.append(f"    keep {rule.k} per {rule.per}")
        else:
            lines.append(f"    keep {rule.k} of {{{', '.join(rule.edges)}}}")
    if cell.output:
        if cell.concat:
            lines.append(f"    out concat({', '.join(cell.output)})")
        elif cell.mean:
            lines.append(f"    out mean({', '.join(cell.output)})")
        else:
            lines.append(f"    out {cell.output[0]}")
    for state, node in cell.states:
        lines.append(f"    next {state} = {node}")
    lines.append("}")
    return "\n".join(lines)


def _format_call(call: ast.CallDecl) -> str:
    args = [format_expr(arg) for arg in call.args]
    args += [f"{key} = {format_expr(value)}" for key, value in call.kwargs]
    return f"{call.op}({', '.join(args)})"


def format_choice(item: ast.MacroDecl) -> str:
    """A `choose` statement: `repeat 4 choose shared stage = {a, b} @ 2C, stride = 2`."""
    words = []
    if item.repeat is not None:
        words += ["repeat", format_expr(item.repeat)]
    words.append("choose")
    if item.shared:
        words.append("shared")
    if item.label is not None:
        words += [item.label, "="]
    words.append(item.opset if item.opset is not None else "{" + ", ".join(item.ops) + "}")
    words += ["@", format_expr(item.width)]
    text = " ".join(words)
    if item.stride is not None:
        text += f", stride = {format_expr(item.stride)}"
    return text


def format_network(network: Network) -> str:
    params = ", ".join(f"{p.name} = {format_expr(p.default)}" for p in network.params)
    lines = [f"network {network.name}({params}) {{"]
    for item in network.items:
        indent = f"    {item.phase} " if item.phase else "    "
        if item.name is not None:
            indent += f"{item.name} = "
        if item.kind == "input" and item.label is not None:  # tokens or sequence
            lines.append(f"{indent}input {item.label}({format_expr(item.args[0])})")
            continue
        if item.kind == "input":
            lines.append(f"{indent}input({format_expr(item.args[0])}, {format_expr(item.args[1])})")
            continue
        if item.kind == "cells":
            text = f"{item.cell} @ {format_expr(item.width)}"
            if item.repeat != ast.Num(value=1):
                text = f"repeat {format_expr(item.repeat)} {text}"
            if item.at is not None:
                text += f" at {format_expr(item.at)}"
        elif item.kind == "choice":
            text = format_choice(item)
        elif item.kind == "block":
            again = "" if item.repeat is None else f"repeat {format_expr(item.repeat)} "
            text = f"{again}{_format_call(item.call)}"
        else:
            text = f"{item.kind} {_format_call(item.call)}"
        if item.sources:
            text += f" from {', '.join(item.sources)}"
        lines.append(f"{indent}{text}")
    lines.append("}")
    return "\n".join(lines)


def format_space(space: SpaceIR, header: str | None = None) -> str:
    """Print a space as canonical `.nas` text.

    Args:
        header: comment lines to put on top (without `#`).
    """
    blocks = []
    if header:
        blocks.append("\n".join(f"# {line}".rstrip() for line in header.splitlines()))
    if isinstance(space, CircuitSpace):
        return "\n\n".join([*blocks, format_circuit(space).rstrip("\n")]) + "\n"
    if space.preset:
        blocks.append(f"preset {space.preset}")
    blocks.extend((f"# {defn.doc}\n" if defn.doc else "") + defn.text for defn in space.opdefs)
    for opset in space.opsets:
        blocks.append(f"ops {opset.name} = {{{', '.join(opset.ops)}}}")
    blocks.extend(format_cell(cell) for cell in space.cells)
    blocks.append(format_network(space.network))
    return "\n\n".join(blocks) + "\n"
