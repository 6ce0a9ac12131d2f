"""Memory estimates, so a search too large for the machine is refused before it allocates.

The estimate walks the resolved macro: every op the all-live supernet holds is built once per
distinct shape on PyTorch's `meta` device (shapes without storage) to count its parameters and
layers; each layer keeps about one output of the op's size for the backward pass.
"""

from __future__ import annotations

import functools
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
def _op_profile(op: str, c_in: int, c_out: int, stride: int) -> tuple[int, int]:
    """(parameters, layers with an output) of one op at one shape."""
    with torch.device("meta"):
        module = get_op(op).build(c_in, c_out, stride, False)
    parameters = sum(p.numel() for p in module.parameters())
    layers = sum(
        1 for m in module.modules() if not list(m.children()) and not isinstance(m, nn.Identity)
    )
    return parameters, max(layers, 1)


def estimate_training_bytes(
    space: SpaceIR, overrides: Mapping[str, int], batch: int, options: CompileOptions
) -> int:
    """Bytes a training step of the all-live supernet needs at this batch size, roughly."""
    plan = instantiate(space, overrides, catalog())
    parameters = activations = 0

    def add(op, c_in, c_out, stride, size):
        nonlocal parameters, activations
        count, layers = _op_profile(op, c_in, c_out, stride)
        parameters += count
        activations += layers * batch * c_out * size * size

    for stage in plan.stages:
        if stage.kind != "cell":
            if stage.kind != "aux" or options.auxiliary:
                add(stage.name, stage.in_channels[0], stage.width, stage.stride, stage.out_size)
            continue
        cell = space.cell(stage.name)
        for item, c_in, stride in zip(cell.inputs, stage.in_channels, stage.input_strides):
            if item.adapter:
                add(item.adapter, c_in, stage.width, stride, stage.in_size)
        inputs = set(cell.input_names)
        for edge in cell.edges:
            stride = 2 if cell.reduction and edge.source in inputs else 1
            for op in (*edge.ops, *edge.candidates):
                add(op, stage.node_channels[edge.source], stage.width, stride, stage.out_size)
    return BYTES * (STATE_COPIES * parameters + activations)


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
) -> int:
    """Refuse a search whose estimate exceeds the free memory; returns the estimate.

    Raises:
        NascUsageError: with the estimate, what is free, and what to lower.
    """
    need = estimate_training_bytes(space, overrides, batch, options)
    free = available_bytes(device)
    if free is not None and need > free:
        gib = 1 << 30
        raise NascUsageError(
            f"the supernet needs about {need / gib:.1f} GiB to train at batch {batch}, but only "
            f"{free / gib:.1f} GiB is free on {device}",
            hint="lower the width or depth (-D C=..., -D N=..., -D layers=...) or --batch-size; "
            "--no-memory-check skips this check",
        )
    return need
