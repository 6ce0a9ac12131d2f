"""The checks of the macro network: its parameters and statements (one input, one head last),
the calls of stems, blocks and heads, cells placed by name, and block choices."""

from __future__ import annotations

from .ast import Num, evaluate, expr_names, width_sets
from .errors import NasSemanticError
from .ir import OpInfo, SpaceIR, resolve_params
from .opcheck import check_op, known_list, suggest
from .printer import format_expr

WIDTH_HINT = (
    "a choice among widths stands where a width is taken: a block's arguments (`resblock({16, "
    "32}, stride = 2)`), a cell's width (`c @ {8, 16}`), a block choice's width, or a "
    "parameter's default that those use (`network n(C = {8, 16})`); repeat counts, strides, "
    "resolutions and the input are fixed integers"
)


def _check_width_choices(space: SpaceIR) -> None:
    """Choices among widths: two or more distinct positive widths, no set inside a set, and
    only where a width is taken (not a repeat count, a stride, an `at`, the input)."""
    network = space.network
    base = f"{space.name}.network"
    labels = set()
    for param in network.params:
        for found in width_sets(param.default):
            if found.label != param.name:
                raise NasSemanticError(
                    f"a choice among widths inside a choice among widths, in `{param.name}`",
                    span=found.span,
                    path=f"{space.name}.params.{param.name}",
                    hint="list the widths in one set: `{8, 16, 32}`",
                )
            labels.add(param.name)
    for item in network.items:
        fixed = [("the input's shape", arg) for arg in item.args]
        fixed += [("a repeat count", item.repeat), ("a stride", item.stride), ("`at`", item.at)]
        if item.call is not None:
            fixed += [("a stride", v) for k, v in item.call.kwargs if k == "stride"]
        if item.kind == "head" and item.call is not None:
            fixed += [("a head's class count", arg) for arg in item.call.args]
        for what, expr in fixed:
            if expr is None:
                continue
            found = width_sets(expr)
            refs = [ref for ref in expr_names(expr) if ref.name in labels]
            if found or refs:
                name = f"`{refs[0].name}` (a choice among widths)" if refs else "a width choice"
                raise NasSemanticError(
                    f"{name} in {what}",
                    span=(found[0].span if found else refs[0].span) or item.span,
                    path=base,
                    hint=WIDTH_HINT,
                )
    env = resolve_params(space)
    for choice in space.width_choices:
        nested = [inner for value in choice.set.values for inner in width_sets(value)]
        if nested:
            raise NasSemanticError(
                f"a choice among widths inside the choice `{choice.label}`",
                span=nested[0].span,
                path=base,
                hint="list the widths in one set: `{8, 16, 32}`",
            )
        chosen = [ref for value in choice.set.values for ref in expr_names(value)]
        chosen = [ref for ref in chosen if ref.name in labels]
        if chosen:
            raise NasSemanticError(
                f"the width choice `{choice.label}` reads `{chosen[0].name}`, itself a choice "
                "among widths",
                span=chosen[0].span or choice.set.span,
                path=base,
                hint="list fixed widths, or expressions of parameters that are not choices",
            )
        seen = set()
        for value in choice.set.values:
            width = evaluate(value, env, what=f"a width of `{choice.label}`", path=base)
            if width < 1:
                raise NasSemanticError(
                    f"the width choice `{choice.label}` lists {width}, not a positive width",
                    span=getattr(value, "span", None) or choice.set.span,
                    path=base,
                    hint="widths are channel counts: positive integers",
                )
            if width in seen:
                raise NasSemanticError(
                    f"the width choice `{choice.label}` lists {width} twice",
                    span=getattr(value, "span", None) or choice.set.span,
                    path=base,
                    hint="list each width once",
                )
            seen.add(width)


def _check_statements(space: SpaceIR, items, phase: str | None) -> None:
    """One input, one head that comes last and at most one auxiliary head, in each phase."""
    network = space.network
    base = f"{space.name}.network"
    where = f"{phase} network " if phase else "network "
    inputs = [item for item in items if item.kind == "input"]
    if len(inputs) != 1:
        raise NasSemanticError(
            f"the {where}needs exactly one `input(channels, size)` statement"
            if not inputs
            else f"the {where}has two `input` statements",
            span=inputs[1].span if inputs else network.span,
            path=base,
            hint="write `input(channels, size)` first, e.g. `input(3, 32)` for CIFAR-10",
        )
    heads = [item for item in items if item.kind == "head"]
    if len(heads) != 1:
        raise NasSemanticError(
            f"the {where}needs exactly one `head`" if not heads else f"the {where}has two heads",
            span=heads[1].span if heads else network.span,
            path=base,
            hint="give each phase one head: an unmarked `head ...`, or a `search head ...` and a "
            "`train head ...`"
            if phase
            else "end the network with a head, e.g. `head pool_linear(classes)`",
        )
    if items[-1].kind != "head":
        raise NasSemanticError(
            f"statements after the head of the {phase} network"
            if phase
            else "statements after the head",
            span=items[-1].span,
            path=base,
            hint="the head ends the network; move it last",
        )
    if sum(item.kind == "aux" for item in items) > 1:
        raise NasSemanticError(
            f"the {where}has two auxiliary heads",
            span=[item for item in items if item.kind == "aux"][1].span,
            path=base,
            hint="keep one `aux` statement",
        )


def check_network(space: SpaceIR, catalog) -> None:
    network = space.network
    base = f"{space.name}.network"
    seen = set()
    for param in network.params:
        if param.name in seen:
            raise NasSemanticError(
                f"duplicate parameter `{param.name}`",
                span=param.span,
                path=f"{space.name}.params.{param.name}",
                hint="declare each parameter once",
            )
        seen.add(param.name)
    for phase in ("search", "train") if network.phased else (None,):
        _check_statements(space, network.items_for(phase or "search"), phase)
    _check_width_choices(space)
    cells = {cell.name for cell in space.cells}
    _check_block_choices(space, catalog, cells)
    for item in network.items:
        if item.kind == "choice":
            continue
        if item.kind == "cells":
            if item.cell not in cells:
                raise NasSemanticError(
                    f"unknown cell `{item.cell}`",
                    span=item.cell_span or item.span,
                    path=base,
                    hint=_op_as_cell_hint(item, catalog)
                    or f"{suggest(item.cell, cells)}cells in this file: {known_list(cells)}",
                )
            continue
        if item.kind == "input":
            continue
        call = item.call
        role = "head" if item.kind in ("head", "aux") else "op"
        check_op(space, catalog, call.op, call.span, f"{base}.{call.op}", role=role, arity=False)
        _check_call_args(space, call, (catalog or {}).get(call.op), role)


def _op_as_cell_hint(item, catalog) -> str | None:
    """The hint for an op placed with `OP @ WIDTH`, the syntax of cells."""
    if catalog is None or item.cell not in catalog:
        return None
    call = f"{item.cell}({format_expr(item.width)})"
    if item.repeat != Num(value=1):
        call = f"repeat {format_expr(item.repeat)} {call}"
    return (
        f"`{item.cell}` is an op, not a cell: place it as a block with its width in "
        f"parentheses, `{call}`; `CELL @ WIDTH` places cells"
    )


def _check_call_args(space: SpaceIR, call, info: OpInfo | None, role: str) -> None:
    """The arguments of a stem, block or head: known keywords, each parameter once, and the
    width (or class count) first, then the op's own parameters."""
    path = f"{space.name}.network.{call.op}"
    params = info.params if info is not None else ()
    allowed = ("stride",) if role == "op" and (info is None or info.stride is None) else ()
    allowed += params
    by_position = params[: max(0, len(call.args) - 1)]
    for key, _ in call.kwargs:
        if key not in allowed:
            what = "class count" if role == "head" else "width"
            raise NasSemanticError(
                f"`{call.op}` takes no argument `{key}`",
                span=call.span,
                path=path,
                hint=suggest(key, allowed)
                + (
                    f"`{call.op}` takes its {what}, then the keywords: {', '.join(allowed)}"
                    if allowed
                    else f"`{call.op}` takes only its {what}"
                ),
            )
        if key in by_position:
            raise NasSemanticError(
                f"`{call.op}` gets `{key}` twice: by position and by keyword",
                span=call.kwarg_span(key),
                path=path,
                hint=f"give `{key}` once: `{call.op}(width, {', '.join(params)})` by position, "
                f"or `{key} = ...` by keyword",
            )
    named = {key for key, _ in call.kwargs if key in params}
    if len(call.args) + len(named) != 1 + len(params) or len(call.args) < 1:
        what = "class count" if role == "head" else "output width"
        if params:
            raise NasSemanticError(
                f"`{call.op}` takes its {what} and its parameters "
                f"{', '.join(params)}; got {len(call.args) + len(named)} arguments",
                span=call.span,
                path=path,
                hint=f"e.g. `{call.op}(C, {', '.join(params)})`: the {what} first",
            )
        raise NasSemanticError(
            f"`{call.op}` takes one positional argument, its {what}; got {len(call.args)}",
            span=call.span,
            path=path,
            hint=f"e.g. `{call.op}(classes)`"
            if role == "head"
            else f"e.g. `{call.op}(2C, stride = 2)`",
        )


def _check_block_choices(space: SpaceIR, catalog, cells: set[str]) -> None:
    """Each `choose` statement: known candidates that build as blocks, a stride of 1 or 2, and
    decision names that no cell type or other choice uses."""
    taken: dict[str, str] = {name: f"cell `{name}`" for name in cells}
    for choice in space.block_choices:
        item = choice.item
        path = f"{space.name}.network.{choice.label}"
        if item.opset is not None and space.opset(item.opset) is None:
            sets = [opset.name for opset in space.opsets]
            is_op = catalog is not None and item.opset in catalog
            raise NasSemanticError(
                f"unknown candidate set `{item.opset}`",
                span=item.cell_span or item.span,
                path=path,
                hint=f"a choice needs candidates: write them in braces, `choose {{{item.opset}, "
                "skip_connect}} @ C`"
                if is_op
                else f"{suggest(item.opset, sets)}candidate sets in this file: "
                f"{known_list(sets)}; or list the candidates: `choose {{resblock, skip_connect}}"
                " @ C`",
            )
        spans = item.op_spans if item.opset is None else ()
        seen = set()
        for index, op in enumerate(choice.candidates):
            span = (spans[index] if index < len(spans) else None) or item.cell_span or item.span
            if op == "none":
                raise NasSemanticError(
                    "`none` cannot be a candidate of a block choice: it would zero the features "
                    "of every later layer",
                    span=span,
                    path=path,
                    hint="to make the layer skippable (searchable depth), offer `skip_connect`",
                )
            if op in seen:
                raise NasSemanticError(
                    f"`{op}` is listed twice in the block choice `{choice.label}`",
                    span=span,
                    path=path,
                    hint="list each candidate block once",
                )
            seen.add(op)
            check_op(space, catalog, op, span, path, in_cell=True)
        if choice.stride not in (1, 2):
            raise NasSemanticError(
                f"the stride of `{choice.label}` must be 1 or 2, not {choice.stride}",
                span=getattr(item.stride, "span", None) or item.span,
                path=path,
                hint="stack two stride-2 choices to reduce by 4",
            )
        if f"the block choice `{choice.label}`" in taken.values():
            raise NasSemanticError(
                f"two block choices are named `{choice.label}`",
                span=item.span,
                path=path,
                hint="give each `choose` statement its own name; instances of one statement "
                "share a decision with `choose shared`",
            )
        for cell in choice.cells:
            if cell.name in taken:
                raise NasSemanticError(
                    f"the block choice `{choice.label}` names its decision `{cell.name}`, "
                    f"which {taken[cell.name]} already uses",
                    span=item.span,
                    path=path,
                    hint="name the choice apart: `choose stage2 = {...} @ C`",
                )
            taken[cell.name] = f"the block choice `{choice.label}`"
