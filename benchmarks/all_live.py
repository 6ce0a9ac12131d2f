"""Training-step time and memory of the optimised supernet against the unoptimised one, for NB201
and DARTS at every IS-DARTS shrink level and for the standalone subnet.

    python benchmarks/all_live.py            # the reference search sizes: about ten minutes
    python benchmarks/all_live.py --quick    # small networks: about a minute

The optimised network is compiled with the default options (every pass of
`CompileOptions().passes`, channels-last), the unoptimised one with `passes=()` and NCHW, as
before the passes existed; both have the same weights. A step is forward, backward and an
SGD step (Nesterov momentum, weight decay) on one fixed batch of random images, with the
IS-DARTS conventions (`mean` mixing, BatchNorm without affine parameters, batch statistics). The
shrink levels are those of `supernet_step.py` (NB201: 5, 4, 3, 2, 1 live ops per edge; DARTS: 7
steps down to DARTS_V2).

Time: for each row one process builds both networks and alternates their steps (ABBA), so both
see the same machine load; the ratio is the median of the per-pair ratios, the step times the
medians of each side. Memory: `saved MB` is what the forward keeps for the backward (distinct
storages of the tensors autograd saves, counted exactly in the same process); `peak RSS` is the
growth of the peak resident set over a step, in a fresh process per network, for the all-live
rows only (a process per row and network would double the run time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from supernet_step import (  # noqa: E402 - a sibling script, found through the path above
    SHRINK_STEPS,
    Bench,
    child_settings,
    peak_resident_bytes,
    resident_bytes,
    shrink_levels,
    sizes,
    sizes_line,
)

CELLS = {"nb201": "A", "darts": "V2"}
FINALS = {
    "A": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|",
    "V2": "DARTS_V2",
}


def build(bench: Bench, level: int | None, optimised: bool):
    """A network of the bench's space: a shrink level of the supernet, or the subnet (None)."""
    import attrs

    from nasc.compiler import compile_space, export_network

    options = bench.options
    if not optimised:
        options = attrs.evolve(options, passes=(), channels_last=False)
    bench.torch.manual_seed(0)
    if level is None:
        net = export_network(bench.space, bench.final, bench.overrides, options)
    else:
        net = compile_space(bench.space, bench.overrides, options, seed=0)
        steps = SHRINK_STEPS[bench.config["space"]]
        net.arch.restrict(shrink_levels(net.arch, bench.final, steps)[level])
        net.arch.set_mixing("mean")
    return net.to(bench.device).train()


def saved_bytes(bench: Bench, net) -> int:
    """Bytes of the distinct storages that one forward saves for its backward."""
    torch = bench.torch
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = torch.nn.functional.cross_entropy(net(bench.images), bench.labels)
    loss.backward()
    net.zero_grad(set_to_none=True)
    return sum(storages.values())


def pair(config: dict) -> dict:
    """Alternate steps of the unoptimised and the optimised network (ABBA)."""
    bench = Bench(config)
    plain = build(bench, config["level"], optimised=False)
    fast = build(bench, config["level"], optimised=True)
    fast.load_state_dict(plain.state_dict())
    memory = (saved_bytes(bench, plain), saved_bytes(bench, fast))
    steps = (bench.stepper(plain), bench.stepper(fast))
    for _ in range(config["warmup"]):
        steps[0]()
        steps[1]()
    pairs: list[tuple[float, float]] = []
    began = time.perf_counter()
    while not bench.enough(len(pairs), began):
        if len(pairs) % 2 == 0:
            first = steps[0]()
            pairs.append((first, steps[1]()))
        else:
            second = steps[1]()
            pairs.append((steps[0](), second))
    return {
        "plain_ms": 1e3 * statistics.median(a for a, _ in pairs),
        "fast_ms": 1e3 * statistics.median(b for _, b in pairs),
        "ratio": statistics.median(b / a for a, b in pairs),
        "pairs": len(pairs),
        "plain_saved_mb": memory[0] / 2**20,
        "fast_saved_mb": memory[1] / 2**20,
    }


def peak(config: dict) -> dict:
    """Peak resident-set growth over building one network and two training steps."""
    bench = Bench(config)
    baseline = resident_bytes()
    net = build(bench, config["level"], optimised=config["optimised"])
    step = bench.stepper(net)
    step()
    step()
    return {"rss_mb": (peak_resident_bytes() - baseline) / 2**20}


def run_child(mode: str, config: dict) -> dict:
    command = [sys.executable, os.path.abspath(__file__), f"--{mode}", json.dumps(config)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small networks, few steps")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, help="timed pairs per row, at most")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds of pairs per row")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--spaces", default="nb201,darts", help="comma-separated")
    parser.add_argument(
        "--levels", help="comma-separated shrink levels to run, `subnet` for the standalone one"
    )
    parser.add_argument("--pair", help=argparse.SUPPRESS)
    parser.add_argument("--peak", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pair or args.peak:
        work = pair if args.pair else peak
        print(json.dumps(work(json.loads(args.pair or args.peak))))
        return 0
    if args.repeats is None:
        args.repeats = 3 if args.quick else 9
    if args.quick:
        args.batch = min(args.batch, 16)
    common = child_settings(args, warmup=1 if args.device == "cpu" else 3)
    print(
        f"optimised vs unoptimised supernet step: batch {args.batch}, {args.size}x{args.size}, "
        f"device {args.device}, {args.threads} threads, paired ABBA rounds (median), sizes "
        + sizes_line(args.quick)
        + f"; load average {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"{'space':6} {'network':24} {'plain ms':>9} {'opt ms':>9} {'ratio':>6} {'pairs':>5} "
        f"{'saved MB':>15} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    summary = []
    failed = False
    for space in args.spaces.split(","):
        cell = CELLS[space]
        base = dict(
            common, space=space, cell=cell, final=FINALS[cell], overrides=sizes(args.quick)[space]
        )
        steps = SHRINK_STEPS[space]
        levels = [0, steps, None] if args.quick else [*range(steps + 1), None]
        if args.levels:
            chosen = args.levels.split(",")
            levels = [
                level for level in levels if str(level if level is not None else "subnet") in chosen
            ]
        for level in levels:
            result = run_child("pair", dict(base, level=level))
            name = "standalone subnet" if level is None else f"shrink level {level}/{steps}"
            if level == 0:
                name = "all live (level 0)"
            if "error" in result:
                failed = True
                print(f"{space:6} {name:24} failed: {result['error']}", flush=True)
                continue
            memory = result["fast_saved_mb"] / result["plain_saved_mb"]
            saved = f"{result['plain_saved_mb']:.0f}->{result['fast_saved_mb']:.0f}"
            print(
                f"{space:6} {name:24} {result['plain_ms']:>9.1f} {result['fast_ms']:>9.1f} "
                f"{result['ratio']:>6.3f} {result['pairs']:>5} {saved:>15} {memory:>6.3f}",
                flush=True,
            )
            summary.append((space, name, result["ratio"], memory))
        for optimised in (False, True):
            result = run_child("peak", dict(base, level=0, optimised=optimised))
            base[f"rss_{optimised}"] = result.get("rss_mb")
        summary.append((space, "peak RSS", base["rss_True"], base["rss_False"]))

    print()
    print("ratios, optimised / unoptimised (time: median of paired steps; memory: saved for")
    print("the backward, and peak RSS growth of the all-live step in fresh processes)")
    for space, name, first, second in summary:
        if name == "peak RSS":
            if first is None or second is None:
                print(f"  {space}: peak RSS failed")
                continue
            print(
                f"  {space}: all-live peak RSS {second:.0f} -> {first:.0f} MB = "
                f"{first / second:.3f} (target <= 0.7)"
            )
        elif name.startswith("all live"):
            print(
                f"  {space}: all-live step {first:.3f} (target <= 0.6), saved memory "
                f"{second:.3f} (target <= 0.7)"
            )
        else:
            verdict = "ok" if first <= 1.05 else "SLOWER"
            print(f"  {space}: {name} step {first:.3f} ({verdict}), saved memory {second:.3f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
