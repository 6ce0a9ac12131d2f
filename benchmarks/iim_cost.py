"""The cost of the IS-DARTS importance measurement as a share of one training epoch.

Measured side by side in one run: the median time of a training step (forward, backward, SGD) of
the supernet with every candidate live, and the time of one measurement (eval-mode forward with
the F hooks on every live candidate) over the paper's sample counts: 200 images for NB201, 600 for
DARTS, once with nasc's F (per-pixel channel variances, one reduction) and once with the paper's
element-wise formula, as the reference code computes it. An epoch is the step time times the
steps of one CIFAR-10 epoch (50,000 images / batch 64): timing whole epochs on a CPU would take
hours, and the step time is what an epoch is made of. The `reference` protocol measures all
50,000 training images per shrink step; its column scales the per-image measurement time to that.

    python benchmarks/iim_cost.py            # both spaces, CIFAR-sized inputs (32x32)
    python benchmarks/iim_cost.py --quick    # smaller widths, fewer repeats
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.dsl import load_space
from nasc.runtime.strategies import isdarts
from nasc.runtime.strategies.isdarts import measure

CIFAR_TRAIN = 50_000


def step_time(net, batch, device, repeats):
    optimizer = torch.optim.SGD(net.weights(), lr=0.025, momentum=0.9, nesterov=True)
    criterion = torch.nn.CrossEntropyLoss()
    images = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    times = []
    for index in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(net(images), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.weights(), 5.0)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if index >= 2:  # warm-up
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def elementwise_information(output: torch.Tensor) -> torch.Tensor:
    """The paper's formula element by element (the baseline the closed form replaced)."""
    x = output.detach().float()
    mu = x.mean(dim=1, keepdim=True)
    sigma = x.std(dim=1, keepdim=True)
    f = 3.0 * (x - mu).pow(2) / sigma.pow(6)
    f = torch.where(torch.isnan(f), torch.full_like(f, float("inf")), f)
    return f.mean(dim=(1, 2, 3))


def measurement_time(net, samples, batch, device, repeats):
    images = torch.randn(samples, 3, 32, 32, device=device)
    batches = [(images[i : i + batch], None) for i in range(0, samples, batch)]
    times = []
    for index in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        measure(net, batches)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if index >= 1:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small widths and few repeats")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats = 2 if args.quick else args.repeats
    cases = [
        ("nb201", {"C": 8 if args.quick else 16, "N": 1 if args.quick else 5}, 200),
        ("darts", {"C": 8 if args.quick else 16, "layers": 5 if args.quick else 8}, 600),
    ]
    batch = 64
    print(f"device {device}, batch {batch}, threads {torch.get_num_threads()}")
    print(
        f"{'space':<8}{'values':<22}{'step s':>9}{'epoch s':>11}{'samples':>9}"
        f"{'measure s':>11}{'share':>9}{'formula s':>11}{'speed-up':>10}{'reference':>11}"
    )
    for name, values, samples in cases:
        space = load_space(name, catalog=catalog(), overrides=values)
        net = compile_space(space, values, CompileOptions(search=True, track_running_stats=False))
        net = net.to(device)
        net.arch.set_mixing("mean")
        step = step_time(net, batch, device, repeats)
        epoch = step * (CIFAR_TRAIN // batch)
        cost = measurement_time(net, samples, batch, device, repeats)
        closed_form = isdarts.information
        isdarts.information = elementwise_information
        try:
            formula = measurement_time(net, samples, batch, device, repeats)
        finally:
            isdarts.information = closed_form
        reference = cost * CIFAR_TRAIN / samples
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        print(
            f"{name:<8}{shown:<22}{step:>9.3f}{epoch:>11.1f}{samples:>9}{cost:>11.3f}"
            f"{100 * cost / epoch:>8.2f}%{formula:>11.3f}{formula / cost:>9.1f}x"
            f"{reference / epoch:>10.2f}ep"
        )
    print(
        "share = one measurement / one CIFAR-10 epoch of the all-live supernet (target < 5%); "
        "formula = the same with the element-wise F; reference = one measurement of all "
        "50,000 training images, in epochs"
    )


if __name__ == "__main__":
    main()
