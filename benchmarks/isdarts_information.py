"""IS-DARTS' information F under several definitions, on briefly trained supernets.

    python benchmarks/isdarts_information.py spaces/nb101.nas -D C=8 -D N=1
    python benchmarks/isdarts_information.py spaces/inception_time.nas -D C=8 -D N=2

Trains the supernet of a space for a few epochs on the embedded digits (IS-DARTS' training, no
shrinking), then measures every live candidate on the same images under each definition and
prints, per op, how many measurements are infinite and the range of the finite ones:

- `paper`: the paper's F of the candidate's output (a constant pixel makes the sample infinite);
- `tap`: the paper's F of the tensor before trailing activations (`measured_module`);
- `exclude`: the candidate's output, pixels with no spread across channels left out
  (`information_sums`);
- `tap+exclude`: both, what nasc measures;
- `floor`, `tap+floor`: a pixel's variance raised to at least 1% of its sample's mean variance.

docs/isdarts.md reports and discusses its numbers.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from nasc.runtime.strategies.isdarts import information, information_sums, measured_module


def paper(output):
    values = information(output)
    return float(values.double().sum()), values.numel()


def excluded(output):
    total, count = information_sums(output)
    return float(total.sum()), int(count.sum())


def floored(output, fraction: float = 1e-2):
    x = output.detach().float().flatten(2)
    channels = x.shape[1]
    variance = x.var(dim=1)
    variance = torch.maximum(variance, fraction * variance.mean(dim=1, keepdim=True))
    values = (3 * (channels - 1) / channels / variance.pow(2)).mean(dim=1)
    values = torch.where(torch.isnan(values), math.inf, values)
    return float(values.double().sum()), values.numel()


DEFINITIONS = {
    "paper": (False, paper),
    "tap": (True, paper),
    "exclude": (False, excluded),
    "tap+exclude": (True, excluded),
    "floor": (False, floored),
    "tap+floor": (True, floored),
}


def measure_all(net, batches, tap: bool, definition) -> dict:
    """F per (cell, edge, op) under one definition, averaged over samples and instances."""
    sums, owners, handles = {}, {}, []

    def hook(module, inputs, output):
        total, count = definition(output)
        entry = sums.setdefault(id(module), [0.0, 0])
        entry[0] += total
        entry[1] += count

    for cell in net.cells():
        table = net.arch.choices.get(cell.cell_type)
        if table is None:
            continue
        for edge in table.edges:
            for op in net.arch.live(cell.cell_type, edge):
                module = cell.edges[edge][op]
                module = measured_module(module) if tap else module
                owners[id(module)] = (cell.cell_type, edge, op)
                handles.append(module.register_forward_hook(hook))
    net.eval()
    try:
        with torch.no_grad():
            for images, _ in batches:
                net(images)
    finally:
        for handle in handles:
            handle.remove()
    per_instance = {}
    for key, member in owners.items():
        total, count = sums.get(key, (0.0, 0))
        per_instance.setdefault(member, []).append(total / count if count else math.inf)
    return {member: sum(v) / len(v) for member, v in per_instance.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space", type=Path)
    parser.add_argument("-D", dest="defines", action="append", default=[], help="NAME=VALUE")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from nasc.compiler import catalog
    from nasc.dsl import parse_space
    from nasc.runtime.data.images import load_digits
    from nasc.runtime.search.config import make_config
    from nasc.runtime.search.loop import Searcher
    from nasc.runtime.tasks import bind_data

    space = parse_space(args.space.read_text(), str(args.space), catalog=catalog())
    data = load_digits().subset(args.images, seed=0).mixed(args.seed)
    given = {k: int(v) for k, v in (item.split("=") for item in args.defines)}
    defines = bind_data(space, given, data)
    values = dict(
        epochs=args.epochs,
        batch_size=32,
        shrink_steps=1,
        shrink_interval=1,
        device="cpu",
        seed=args.seed,
        measure_on="train-sample",
        measure_samples=128,
    )
    searcher = Searcher(space, defines, make_config(space.preset, "isdarts", values), data, "cpu")
    for _ in range(args.epochs - 1):  # the last epoch would shrink
        searcher.train_epoch()
        searcher.epoch += 1
    print(f"{args.space}: supernet test accuracy {searcher.evaluate()['test_acc']:.1f}%")
    batches = list(searcher.measurement_batches(0)[1])
    for name, (tap, definition) in DEFINITIONS.items():
        table = measure_all(searcher.net, batches, tap, definition)
        measured = {m: v for m, v in table.items() if m[2] != "none"}
        infinite = sum(1 for v in measured.values() if not math.isfinite(v))
        print(f"{name}: {infinite} of {len(measured)} measurements infinite")
        by_op = {}
        for (_, _, op), value in measured.items():
            by_op.setdefault(op, []).append(value)
        for op, found in sorted(by_op.items()):
            finite = [v for v in found if math.isfinite(v)]
            spread = f"{min(finite):.3g} .. {max(finite):.3g}" if finite else "-"
            print(f"    {op:20s} {len(found)} measured, {len(found) - len(finite)} inf, {spread}")


if __name__ == "__main__":
    main()
