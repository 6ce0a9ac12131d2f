"""Memory, parameters and step time of an all-live DARTS-family supernet step with PC-DARTS'
partial channel connections (K = 1, 2, 4), on NB201 and the DARTS space.

    python benchmarks/partial_channels.py            # NB201 C=16 N=5, DARTS C=16 8 cells, batch 64
    python benchmarks/partial_channels.py --quick    # C=8, fewer cells, batch 16
    python benchmarks/partial_channels.py --spaces nb201

A step is forward, backward and an SGD step of the weights on one fixed batch of random
32x32 images, softmax mixing (every candidate live), edge normalisation on for K > 1 as PC-DARTS
runs. `saved MB` is what the forward keeps for its backward (the distinct storages autograd
saves, counted exactly); on CUDA `peak MB` is `torch.cuda.max_memory_allocated` over a step.
`candidate params` counts the weights of the choice edges' candidates (what K divides).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.dsl import load_space

SIZES = {
    "full": {"nb201": {"C": 16, "N": 5}, "darts": {"C": 16, "layers": 8}, "batch": 64},
    "quick": {"nb201": {"C": 8, "N": 2}, "darts": {"C": 8, "layers": 5}, "batch": 16},
}


def saved_bytes(net, images, labels) -> int:
    """Bytes of the distinct storages one forward saves for its backward."""
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = functional.cross_entropy(logits(net(images)), labels)
    loss.backward()
    net.zero_grad(set_to_none=True)
    return sum(storages.values())


def logits(output):
    return output[0] if isinstance(output, tuple) else output


def candidate_parameters(net) -> int:
    return sum(
        p.numel()
        for cell in net.cells()
        for edge in net.space.cell(cell.cell_type).choices
        for op in edge.candidates
        for p in cell.edges[edge.key][op].parameters()
    )


def measure(name: str, values: dict, k: int, batch: int, device: torch.device, steps: int):
    space = load_space(name, catalog=catalog(), overrides=values)
    torch.manual_seed(0)
    options = CompileOptions(partial_channels=k, edge_normalisation=k > 1)
    net = compile_space(space, values, options, seed=0).to(device).train()
    net.arch.set_mixing("softmax")
    images = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    optimizer = torch.optim.SGD(net.weights(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    saved = saved_bytes(net, images, labels)
    times = []
    peak = None
    for index in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        functional.cross_entropy(logits(net(images)), labels).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2**20
        if index:  # the first step warms up
            times.append(time.perf_counter() - started)
    return {
        "space": name,
        "k": k,
        "saved_mb": saved / 2**20,
        "peak_mb": peak,
        "candidate_params": candidate_parameters(net),
        "step_s": statistics.median(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--spaces", default="nb201,darts", help="comma-separated")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    sizes = SIZES["quick" if args.quick else "full"]
    device = torch.device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, batch {sizes['batch']}")
    header = f"{'space':<7} {'K':>2} {'saved MB':>9} {'ratio':>6} {'peak MB':>8}"
    print(header + f" {'candidate params':>17} {'step s':>7}")
    for name in args.spaces.split(","):
        base = None
        for k in (1, 2, 4):
            row = measure(name, sizes[name], k, sizes["batch"], device, args.steps)
            base = base or row
            peak = f"{row['peak_mb']:.0f}" if row["peak_mb"] is not None else "-"
            print(
                f"{name:<7} {k:>2} {row['saved_mb']:>9.1f} "
                f"{row['saved_mb'] / base['saved_mb']:>6.3f} {peak:>8} "
                f"{row['candidate_params']:>17,} {row['step_s']:>7.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
