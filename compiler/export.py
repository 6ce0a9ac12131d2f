"""Export of a genotype: a standalone network (no masks, no dead modules), a fixed `.nas` file,
NB201 and DARTS strings, and TorchScript."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from nasc.dsl import Genotype, NascUsageError, SpaceIR, apply_genotype, format_space
from nasc.dsl.ir import BLOCK_EDGE

from .supernet import CompileOptions, Supernet, compile_space, example_input
from .widths import carried_state, sliced


def _carried_state(supernet: Supernet, genotype: Genotype) -> dict:
    """The supernet's state with each block choice's chosen block under the path the fixed
    network gives that block (`stages.3.edges.x->block.resblock.bn` becomes `stages.3.bn`)."""
    state = supernet.state_dict()
    for index, module in enumerate(supernet.stages):
        cell_type = getattr(module, "cell_type", None)
        if cell_type is None or supernet.space.cell(cell_type).block is None:
            continue
        for op in genotype.cells.get(cell_type, {}).get(BLOCK_EDGE, ()):
            prefix = f"stages.{index}.edges.{BLOCK_EDGE}.{op}."
            for key in [key for key in state if key.startswith(prefix)]:
                state[f"stages.{index}.{key[len(prefix) :]}"] = state[key]
    return state


def export_network(
    space: SpaceIR,
    genotype: Genotype,
    overrides: Mapping[str, int] | None = None,
    options: CompileOptions | None = None,
    supernet: Supernet | None = None,
) -> Supernet:
    """The standalone network a genotype selects.

    Args:
        options: evaluation conventions by default; pass the supernet's options to carry weights.
        supernet: when given, the standalone network starts from its weights. Module paths are
            the same in both (stage, edge, op), so the weights of the kept ops carry over 1:1.

    Raises:
        NascUsageError: the supernet was built with other options, so its modules differ.
    """
    if supernet is not None and options is None:
        options = supernet.options
    space = space.for_values(overrides)
    network = compile_space(
        apply_genotype(space, genotype), overrides, options or CompileOptions(search=False)
    )
    if supernet is not None:
        source = _carried_state(supernet, genotype)
        target = network.state_dict()
        if supernet.widths is not None:
            # Entangled widths: the chosen widths' slices of the shared weights.
            source = carried_state(supernet, genotype, source)
            for key, value in target.items():
                if torch.is_tensor(value) and key in source and source[key].shape != value.shape:
                    cut = sliced(source[key], value.shape)
                    if cut is not None:
                        source[key] = cut
        # Tensors must match in shape; other entries (the arch state's mixing mode) just carry.
        mismatched = [
            key
            for key, value in target.items()
            if key not in source or (torch.is_tensor(value) and source[key].shape != value.shape)
        ]
        if mismatched:
            raise NascUsageError(
                f"cannot carry weights: {len(mismatched)} tensors differ, e.g. `{mismatched[0]}`",
                hint="build the standalone network with the supernet's options and parameters",
            )
        network.load_state_dict({key: source[key] for key in target})
    return network


def fixed_source(space: SpaceIR, genotype: Genotype, header: str | None = None) -> str:
    """The `.nas` text of the architecture: the space with every choice decided."""
    return format_space(apply_genotype(space, genotype), header=header)


TRACE_LENGTH = 35  # the steps a traced network of sequences reads (DARTS' bptt)


def export_torchscript(network: Supernet, path: str | Path) -> Path:
    """Trace the network in eval mode at its input size and save it as TorchScript (a network
    of sequences is traced on sequences of `TRACE_LENGTH` steps: the trace unrolls the steps, so
    it reads sequences of that length)."""
    plan = network.plan
    was_training = network.training
    network.eval()
    device = next(network.parameters()).device
    example = example_input(plan, 2, TRACE_LENGTH, device=device)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # TorchScript is what the evaluation tools of the DARTS family load; this PyTorch
            # announces its deprecation in favour of torch.export.
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(network, example, check_trace=False)
        path = Path(path)
        traced.save(str(path))
    finally:
        network.train(was_training)
    return path
