"""Memory estimates, so a search or training run too large for the machine is refused early.

The estimate walks the resolved macro: every op the all-live supernet holds is built once per
distinct shape on PyTorch's `meta` device (shapes without storage) to count its parameters and
layers; each layer keeps about one output of the op's size for the backward pass.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from nasc.compiler import CompileOptions, catalog, get_op
from nasc.dsl import NascUsageError, SpaceIR
from nasc.dsl.macro import instantiate

BYTES = 4  # float32
STATE_COPIES = 4  # weights, gradients, momentum, and the clipping's temporaries


@functools.cache
def _op_profile(
    op: str, c_in: int, c_out: int, stride: int, defs: tuple = (), up: int = 1
) -> tuple[int, int]:
    """(parameters, layers with an output) of one op at one shape (`up`: a resampling
    adapter's upsampling factor)."""
    extra = {"up": up} if up > 1 else {}
    with torch.device("meta"):
        module = get_op(op, defs).build(c_in, c_out, stride, False, **extra)
    parameters = sum(p.numel() for p in module.parameters())
    layers = sum(
        1 for m in module.modules() if not list(m.children()) and not isinstance(m, nn.Identity)
    )
    return parameters, max(layers, 1)


def _walk(
    space: SpaceIR,
    overrides: Mapping[str, int],
    batch: int,
    options: CompileOptions,
    phase: str = "search",
):
    """(parameters, activation elements) of the all-live network at this batch size."""
    plan = instantiate(space, overrides, catalog(), phase=phase)
    parameters = activations = 0

    def add(op, c_in, c_out, stride, size, up=1):
        nonlocal parameters, activations
        count, layers = _op_profile(op, c_in, c_out, stride, space.opdefs, up)
        parameters += count
        activations += layers * batch * c_out * size * size

    for stage in plan.stages:
        if stage.kind != "cell":
            if stage.kind != "aux" or options.auxiliary:
                add(stage.name, stage.in_channels[0], stage.width, stage.stride, stage.out_size)
            continue
        cell = space.cell(stage.name)
        for slot, _, c_in, stride, up in stage.reads():  # one per source (`from all`: many)
            item = cell.inputs[slot]
            if item.adapter:
                add(item.adapter, c_in, stage.width, stride, stage.in_size, up)
        inputs = set(cell.input_names)
        for edge in cell.edges:
            stride = 2 if cell.reduction and edge.source in inputs else 1
            channels = stage.node_channels[edge.source]
            for op in edge.ops:
                add(op, channels, stage.width, stride, stage.out_size)
            # PC-DARTS' candidates see 1/K of the channels; the edge's concatenation and
            # shuffle keep two full-width maps.
            split = options.partial_channels if edge.is_choice and cell.block is None else 1
            for op in edge.candidates:
                add(op, channels // split, stage.width // split, stride, stage.out_size)
            if split > 1:
                activations += 2 * batch * stage.width * stage.out_size**2
    return parameters, activations


def estimate_training_bytes(
    space: SpaceIR,
    overrides: Mapping[str, int],
    batch: int,
    options: CompileOptions,
    phase: str = "search",
) -> int:
    """Bytes a training step needs at this batch size, roughly (on top of what the process
    already holds): of the all-live supernet, or with `phase="train"` of the fixed network
    `nasc train` builds."""
    parameters, activations = _walk(space, overrides, batch, options, phase)
    return BYTES * (STATE_COPIES * parameters + activations)


def estimate_build_bytes(space: SpaceIR, overrides: Mapping[str, int]) -> int:
    """Bytes to build the network and run one image through it (what `nasc show` measures):
    a space as its search supernet, a fixed architecture as the network one would train."""
    search = not space.is_fixed
    phase = "search" if search else "train"
    parameters, activations = _walk(space, overrides, 1, CompileOptions(search=search), phase)
    return BYTES * (parameters + activations)


def process_bytes() -> int:
    """Memory this process holds now (its resident set: PyTorch alone is most of a GiB)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def check_builds(space: SpaceIR, overrides: Mapping[str, int]) -> int:
    """Refuse to build a network (for `nasc show`'s sizes or code) that cannot fit in memory.

    Raises:
        NascUsageError: with the estimate and what to lower.
    """
    need = estimate_build_bytes(space, overrides)
    free = available_bytes(torch.device("cpu"))
    if free is not None and need > free:
        raise NascUsageError(
            f"building `{space.name}` needs about {_gib(need)} GiB for its weights alone, but only "
            f"{_gib(free)} GiB is free",
            hint="lower the width or depth (-D C=..., -D N=..., -D layers=...); "
            "--no-measure shows the space without building it",
        )
    return need


def _gib(count: int) -> str:
    value = count / (1 << 30)
    return f"{value:,.1f}" if value < 1e6 else f"{value:.2g}"


def available_bytes(device: torch.device) -> int | None:
    """Free memory on the device: CUDA's free memory, or MemAvailable of /proc/meminfo."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits(
    space: SpaceIR,
    overrides: Mapping[str, int],
    batch: int,
    options: CompileOptions,
    device: torch.device,
    phase: str = "search",
) -> int:
    """Refuse a search (or with `phase="train"`, a training run) whose estimate exceeds the
    free memory; returns the estimate, including what the process holds already (on the CPU,
    where that memory is counted as used).

    Raises:
        NascUsageError: with the estimate, what is free, and what to lower.
    """
    need = estimate_training_bytes(space, overrides, batch, options, phase)
    held = process_bytes() if device.type == "cpu" else 0
    free = available_bytes(device)
    if free is not None and need > free:
        baseline = f" (this process holds {_gib(held)} GiB besides)" if held else ""
        what = "the supernet" if phase == "search" else "the network"
        raise NascUsageError(
            f"{what} needs about {_gib(need + held)} GiB to train at batch {batch}: "
            f"{_gib(need)} GiB more than this process holds, but only {_gib(free)} GiB is free "
            f"on {device}{baseline}",
            hint="lower the width or depth (-D C=..., -D N=..., -D layers=...) or --batch-size; "
            "--no-memory-check skips this check",
        )
    return need + held
