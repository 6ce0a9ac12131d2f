"""Python ops checked where they are placed: an op that a plugin registers has no body the
language can read (`nasc check` takes it at its word), so the first build of a network runs each
such op once, on a dummy input of its place's shape, and compares what it gives with what the
place needs: `C_out` channels at ceil(size / stride), or `C_out` class scores for a head.

A mismatch is refused naming the op, where the `.nas` file places it, and both shapes, rather
than failing later inside PyTorch with the op never named.
"""

from __future__ import annotations

import torch

from nasc.dsl import NasSemanticError, SpaceIR
from nasc.dsl.macro import Plan, halve
from nasc.dsl.shapes import Placement, placements

from .registry import OPS, builtin_ops

_checked: set[tuple] = set()  # (builder, place) pairs already run in this process


def check_python_ops(space: SpaceIR, plan: Plan) -> None:
    """Run every op a plugin registered, once per distinct place, and check its output shape.

    The ops are built and run on the CPU, in eval mode and without gradients; torch's random
    state is left as it was, so the network's weights do not depend on the check.

    Raises:
        NasSemanticError: an op gives another shape than its place needs, or fails when run;
            located at its use in the `.nas` file.
    """
    builtin = builtin_ops()
    for place in placements(space, plan):
        entry = OPS.get(place.op)
        if entry is None or place.op in builtin:
            continue
        key = (entry.build, place.c_in, place.c_out, place.stride, place.size, place.head)
        if key in _checked:
            continue
        _probe(entry, place)
        _checked.add(key)


def expected_shape(place: Placement, batch: int) -> tuple[int, ...]:
    """The output shape the place needs of an op given `batch` inputs."""
    if place.head:
        return (batch, place.c_out)
    size = halve(place.size, place.stride)
    return (batch, place.c_out, size, size)


def _probe(entry, place: Placement) -> None:
    batch = 2
    given = (batch, place.c_in, place.size, place.size)
    expected = expected_shape(place, batch)
    where = (
        f"placed at {place.site.path} with C_in {place.c_in}, C_out {place.c_out}, "
        f"stride {place.stride}"
    )
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        try:
            module = entry.build(place.c_in, place.c_out, place.stride, bool(place.affines[-1]))
            module.eval()
            output = module(torch.randn(given))
        except Exception as error:  # noqa: BLE001 - the plugin's code failed; say where it is used
            raise NasSemanticError(
                f"the Python op `{place.op}` fails on a {_text(given)} input "
                f"({where}): {type(error).__name__}: {error}",
                span=place.site.span,
                path=place.site.path,
                hint=_hint(entry, place),
            ) from error
    real = tuple(output.shape) if isinstance(output, torch.Tensor) else None
    if real != expected:
        what = _text(real) if real is not None else f"a {type(output).__name__}, not a tensor"
        raise NasSemanticError(
            f"the Python op `{place.op}` gives {what} where its place needs {_text(expected)} "
            f"(from a {_text(given)} input; {where})",
            span=place.site.span,
            path=place.site.path,
            hint=_hint(entry, place),
        )


def _text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _hint(entry, place: Placement) -> str:
    build = f"{getattr(entry.build, '__module__', '?')}.{getattr(entry.build, '__qualname__', '?')}"
    if place.head:
        return (
            f"its builder {build} must map (B, C_in, H, W) to (B, C_out) class scores, with "
            "the C_out it is given"
        )
    return (
        f"its builder {build} must map (B, C_in, H, W) to (B, C_out, ceil(H / stride), "
        "ceil(W / stride)) with the C_out and stride it is given: pad its convolutions to keep "
        "the size, and stride only by `stride`"
    )
