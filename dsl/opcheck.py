"""Op names where a space uses them (a set, an edge, an adapter, a block choice, a network
statement): known, of the right role and arity, and usable in a cell; with the hint that says
what the name is when it is not an op."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from .ast import split_op_name
from .errors import NasSemanticError
from .ir import OpInfo, SpaceIR
from .opdefs import PLUGIN_HINT, PRIMITIVES


def suggest(name: str, known) -> str:
    """`did you mean `X`? ` for the known name closest to `name`, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean `{close[0]}`? " if close else ""


def known_list(known) -> str:
    """Known names, sorted and comma-separated."""
    names = sorted(known)
    return ", ".join(names) if names else "(none)"


def check_op(
    space: SpaceIR,
    catalog: Mapping[str, OpInfo] | None,
    name: str,
    span,
    path: str,
    role: str = "op",
    in_cell: bool = False,
    sets_allowed: bool = False,
    arity: bool = True,
) -> None:
    """Check that an op is registered for its role.

    Args:
        in_cell: the op sits on a cell edge or input, where ops must take the cell's stride.
        sets_allowed: a candidate set could stand here too (a cell edge), so the hint lists them.
    """
    if catalog is None:
        return
    base, values = _split(name, span, path)
    info = catalog.get(base)
    if arity and info is not None and len(values) != len(info.params):
        wanted = len(info.params)
        example = f"{base}({', '.join(info.params)})" if info.params else base
        raise NasSemanticError(
            f"`{base}` takes {wanted} argument{'s' if wanted != 1 else ''}, got {len(values)}",
            span=span,
            path=path,
            hint=f"write `{example}` with integers for its parameters",
        )
    if info is None:
        if any(cell.name == base for cell in space.cells):
            raise NasSemanticError(
                f"`{base}` is a cell, not an op",
                span=span,
                path=path,
                hint=f"a cell is placed in the network on its own, with its width: `{base} @ C` "
                f"or `repeat N {base} @ C`; candidates and blocks are ops (a choice among cells "
                "is written as choices on the cell's edges)",
            )
        if base in space.network.param_names:
            raise NasSemanticError(
                f"unknown op `{name}`",
                span=span,
                path=path,
                hint=f"`{base}` is a parameter of the network, not an op: a width follows `@` "
                f"(`choose {{resblock, skip_connect}} @ {base}`) or opens a block's arguments "
                f"(`resblock({base})`)",
            )
        primitive = (
            f"`{base}` is a primitive of op bodies, not an op: define one from it, e.g. "
            f"`op {base}_op = {base}`, and use `{base}_op`; "
            if base in PRIMITIVES
            else ""
        )
        choices = [op for op, item in catalog.items() if item.role == role]
        sets = [opset.name for opset in space.opsets] if sets_allowed else []
        extra = f"; candidate sets in this file: {', '.join(sets)}" if sets else ""
        raise NasSemanticError(
            f"unknown op `{name}`",
            span=span,
            path=path,
            hint=primitive
            + f"{suggest(name, choices + sets)}known ops: {known_list(choices)}; "
            + PLUGIN_HINT
            + extra,
        )
    if info.role != role:
        what = "a head (it ends in class scores)" if info.role == "head" else "a feature-map op"
        where = "`head`/`aux` statements" if role == "head" else "cells, stems and blocks"
        raise NasSemanticError(
            f"`{name}` is {what} and cannot be used in {where}",
            span=span,
            path=path,
            hint="use `head NAME(classes)` for heads and plain ops elsewhere",
        )
    if in_cell and info.stride is not None:
        raise NasSemanticError(
            f"`{name}` reduces the resolution by {info.stride} on its own and cannot be used in "
            "a cell",
            span=span,
            path=path,
            hint="use it as a stem or block of the network; cell ops take the cell's stride",
        )


def _split(name: str, span, path: str) -> tuple[str, tuple[int, ...]]:
    try:
        return split_op_name(name)
    except ValueError:
        raise NasSemanticError(
            f"`{name}` is not an op name", span=span, path=path, hint="write `op` or `op(1, 2)`"
        ) from None
