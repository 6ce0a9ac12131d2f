"""Training-step time and peak memory of the NB201, DARTS, macro-choice and ProxylessNAS-style
supernets as IS-DARTS shrinks them, against the standalone subnets they shrink to.

    python benchmarks/supernet_step.py                 # full sizes: several minutes on two cores
    python benchmarks/supernet_step.py --quick         # a smoke run of about a minute
    python benchmarks/supernet_step.py --device cuda --repeats 30
    python benchmarks/supernet_step.py --space macro_choice      # one space
    python benchmarks/supernet_step.py --widths --quick          # the NATS size space's widths

A step is forward, backward and an SGD step (Nesterov momentum, weight decay) on one fixed batch
of random images. Every configuration runs in a fresh subprocess with the same thread count, the
same batch and the same seed: it builds its network, runs warm-up steps, then times up to
`--repeats` steps (at least three; heavy networks stop after `--budget` seconds) and reports
their median. Memory is the growth of the peak resident set over the resident set before the
network was built (after a tiny priming step, so torch's own set-up is not counted), and the peak
of allocated CUDA memory on a GPU; one process per configuration keeps peaks from hiding each
other.

Supernets mix with `mean` (the IS-DARTS reference) and use its BatchNorm conventions (not
affine, batch statistics); the standalone subnet is `export_network` with the supernet's options.
The shrink levels follow IS-DARTS' schedule: step s of S discards ceil((live - k) / (S - s))
candidates of every comparison subset, `none` first (its information is infinite), the others in
a seeded order, never one the final cell keeps. NB201 (S = 4) goes 5, 4, 3, 2, 1 live ops per
edge; DARTS (S = 7, keep 2 per node) ends at the genotype; `spaces/macro_choice.nas` (S = 4, a
block choice per layer) ends with one live block per layer, against the fixed network of those
blocks; `spaces/proxyless.nas` (S = 4) likewise, with inverted-residual blocks of kernel 3/5/7 and
expansion 3/6 and skips.

Measured once (CPU, 1 thread, batch 64, 32x32, load average 4 to 5 on two shared cores): the
proxyless space at C=16 D=2 with one live block per layer steps in 1.001 times its standalone
network's time (paired medians 157.3 / 155.9 ms).

The supernet-over-subnet ratios come from a separate paired run per final cell: one process
builds both networks and alternates their steps (ABBA), so both see the same machine load; the
ratio is the median of the per-pair ratios. On a shared machine, load from other processes moves
single medians far more than the difference being measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time

NB201_CELLS = {
    "A": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|",
    "B": "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|skip_connect~1|"
    "avg_pool_3x3~2|",
}
DARTS_CELLS = {"V2": "DARTS_V2"}
# spaces/macro_choice.nas: the block of each layer, by choice; instances of an unshared repeat
# take the listed blocks in turn. Skips in both searched stages make the found network shallow.
MACRO_NETWORKS = {
    "P": "stage1=sep_conv_3x3,skip_connect,resblock down1=resblock "
    "stage2=nor_conv_3x3,skip_connect,sep_conv_3x3 down2=resblock stage3=resblock",
}
# spaces/proxyless.nas: an inverted-residual block of its own per layer, a skip in every stage
# that allows one (lists as above; a candidate's own commas stay inside its parentheses).
PROXYLESS_NETWORKS = {
    "M": "stage1_in=mbconv(6,3) stage1=mbconv(3,5),skip_connect stage2_in=mbconv(3,5) "
    "stage2=mbconv(6,3),skip_connect stage3_in=mbconv(6,7) stage3=skip_connect,mbconv(3,3) "
    "stage4_in=mbconv(6,5) stage4=mbconv(3,7),skip_connect stage5_in=mbconv(6,5) "
    "stage5=mbconv(3,3),skip_connect stage6_in=mbconv(6,3)",
}
SPACES = (
    ("nb201", NB201_CELLS),
    ("darts", DARTS_CELLS),
    ("macro_choice", MACRO_NETWORKS),
    ("proxyless", PROXYLESS_NETWORKS),
)
NETWORKS = {**MACRO_NETWORKS, **PROXYLESS_NETWORKS}  # spaces of block choices, not of cells
SHRINK_STEPS = {"nb201": 4, "darts": 7, "macro_choice": 4, "proxyless": 4}


def sizes(quick: bool) -> dict[str, dict[str, int]]:
    """The `-D` values of each space: the reference search sizes, or small ones for a smoke run."""
    if quick:
        return {
            "nb201": {"C": 4, "N": 1},
            "darts": {"C": 4, "layers": 4},
            "macro_choice": {"C": 4, "N": 1},
            "proxyless": {"C": 4, "D": 1},
        }
    return {
        "nb201": {"C": 16, "N": 5},
        "darts": {"C": 16, "layers": 8},
        "macro_choice": {"C": 16, "N": 3},
        "proxyless": {"C": 16, "D": 2},
    }


def sizes_line(quick: bool) -> str:
    """The `-D` values of every space, for a benchmark's header line."""
    return "; ".join(
        f"{space} " + " ".join(f"{k}={v}" for k, v in values.items())
        for space, values in sizes(quick).items()
    )


def child_settings(args, warmup: int) -> dict:
    """What every measuring child process is told: device, threads, batch and timing."""
    return {
        "device": args.device,
        "threads": args.threads,
        "batch": args.batch,
        "size": args.size,
        "warmup": warmup,
        "repeats": args.repeats,
        "budget": args.budget,
    }


def macro_arch(space, text: str) -> str:
    """The blocks string (`stage1_1=sep_conv_3x3 ...`) of a `MACRO_NETWORKS` entry."""
    picks = {
        label: re.split(r",(?![^(]*\))", ops)
        for label, ops in (pair.split("=", 1) for pair in text.split())
    }
    return " ".join(
        f"{cell.name}={picks[choice.label][index % len(picks[choice.label])]}"
        for choice in space.block_choices
        for index, cell in enumerate(choice.cells)
    )


# --- in the child process: build, step, time -----------------------------------------------------


def resident_bytes() -> int:
    """The current resident set of this process."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_resident_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def shrink_levels(arch, final, steps: int, seed: int = 0):
    """The live candidates before and after every shrink step, as genotypes; the last is final."""
    from nasc.dsl import Genotype

    rng = random.Random(seed)
    queues = []  # per comparison subset: its cell, k, size and the members to discard in order
    for cell, table in arch.choices.items():
        for k, members in table.subsets:
            named = [(table.edges[row], table.candidates[row][column]) for row, column in members]
            doomed = [(edge, op) for edge, op in named if op not in final.cells[cell][edge]]
            rng.shuffle(doomed)
            doomed.sort(key=lambda member: member[1] != "none")  # stable: `none` goes first
            queues.append((cell, k, len(named), doomed))
    discarded: set[tuple[str, str, str]] = set()
    taken = [0] * len(queues)

    def snapshot():
        return Genotype(
            {
                cell: {
                    edge: [op for op in ops if (cell, edge, op) not in discarded]
                    for edge, ops in zip(table.edges, table.candidates, strict=True)
                }
                for cell, table in arch.choices.items()
            }
        )

    levels = [snapshot()]
    for step in range(steps):
        for index, (cell, k, size, doomed) in enumerate(queues):
            count = math.ceil((size - taken[index] - k) / (steps - step))
            for edge, op in doomed[taken[index] : taken[index] + count]:
                discarded.add((cell, edge, op))
            taken[index] += count
        levels.append(snapshot())
    if levels[-1] != final:
        raise AssertionError("the shrink schedule did not end at the final cell")
    return levels


def ops_run(net) -> int:
    """Op modules one forward runs in cells (fixed ops and live candidates, `none` aside) and as
    blocks of the network (so a network of block choices compares with its fixed network)."""
    from nasc.compiler import get_op

    total = sum(1 for stage in net.plan.stages if stage.kind == "block")
    for cell in net.space.used_cells():
        for edge in cell.edges:
            ops = list(edge.ops)
            if edge.is_choice:
                ops += net.arch.live(cell.name, edge.key)
            total += sum(1 for op in ops if not get_op(op, net.space.opdefs).zero)
    return total


class Bench:
    """One child's set-up: the device, the batch, the space and the final cell."""

    def __init__(self, config: dict):
        import torch

        from nasc.compiler import CompileOptions, catalog
        from nasc.dsl import load_space, parse_arch

        self.torch = torch
        self.config = config
        torch.set_num_threads(config["threads"])
        self.device = torch.device(config["device"])
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        generator = torch.Generator().manual_seed(0)
        size = config["size"]
        self.images = torch.randn(config["batch"], 3, size, size, generator=generator)
        self.labels = torch.randint(0, 10, (config["batch"],), generator=generator)
        self.images = self.images.to(self.device)
        self.labels = self.labels.to(self.device)
        self.overrides = dict(config["overrides"], size=size)
        space = load_space(config["space"], catalog=catalog(), overrides=self.overrides)
        self.space = space.for_values(self.overrides)  # block choices decide per instance
        final = config["final"]
        if self.space.block_choices:
            final = macro_arch(self.space, final)
        self.final = parse_arch(self.space, final)
        self.options = CompileOptions(search=True, track_running_stats=False)
        self.prime()

    def prime(self) -> None:
        """One tiny training step, so torch's one-time set-up (thread pools, kernels, the CUDA
        context) is in the memory baseline rather than counted as the network's."""
        nn = self.torch.nn
        layer = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        layer = layer.to(self.device)
        optimizer = self.torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
        layer(self.torch.randn(2, 3, 8, 8, device=self.device)).sum().backward()
        optimizer.step()
        self.sync()

    def sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def network(self, level: int | None):
        """The supernet at a shrink level (mixing `mean`), or the standalone subnet for None."""
        from nasc.compiler import compile_space, export_network

        self.torch.manual_seed(0)
        if level is None:
            net = export_network(self.space, self.final, self.overrides, self.options)
        else:
            net = compile_space(self.space, self.overrides, self.options, seed=0)
            levels = shrink_levels(net.arch, self.final, SHRINK_STEPS[self.config["space"]])
            net.arch.restrict(levels[level])
            net.arch.set_mixing("mean")
        return net.to(self.device).train()

    def train_step(self, net, amp: bool = False):
        """A function that runs one training step of `net` (with `amp`, the forward and loss
        under bfloat16 autocast, as a search's weight steps with `--amp`), unsynchronised."""
        torch = self.torch
        optimizer = torch.optim.SGD(
            net.weights(), lr=0.025, momentum=0.9, nesterov=True, weight_decay=3e-4
        )
        loss_function = torch.nn.CrossEntropyLoss()
        kind = self.device.type

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(kind, dtype=torch.bfloat16, enabled=amp):
                loss = loss_function(net(self.images), self.labels)
            loss.backward()
            optimizer.step()

        return step

    def stepper(self, net):
        """A function that runs one training step of `net` and returns its seconds."""
        train_step = self.train_step(net)

        def step() -> float:
            start = time.perf_counter()
            train_step()
            self.sync()
            return time.perf_counter() - start

        return step

    def enough(self, count: int, began: float) -> bool:
        """Stop at `repeats` steps, or after `budget` seconds once three steps are timed."""
        if count >= self.config["repeats"]:
            return True
        return count >= 3 and time.perf_counter() - began > self.config["budget"]


def live_per_subset(net) -> list[int]:
    """Live candidates of each comparison subset of the first searched cell type (of every
    decision, for a network of block choices)."""
    tables = list(net.arch.choices.values())
    if net.space.cell(tables[0].cell).block is None:
        tables = tables[:1]
    live = []
    for table in tables:
        mask = net.arch.mask(table.cell)
        live += [int(sum(mask[r, c] for r, c in members)) for _, members in table.subsets]
    return live


def measure(config: dict) -> dict:
    """Time one configuration's training steps and measure its peak memory."""
    bench = Bench(config)
    torch = bench.torch
    if bench.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    baseline = resident_bytes()
    net = bench.network(config["level"])
    step = bench.stepper(net)
    for _ in range(config["warmup"]):
        step()
    times: list[float] = []
    began = time.perf_counter()
    while not bench.enough(len(times), began):
        times.append(step())
    quartiles = statistics.quantiles(times, n=4)
    return {
        "median_ms": 1e3 * statistics.median(times),
        "q1_ms": 1e3 * quartiles[0],
        "q3_ms": 1e3 * quartiles[2],
        "steps": len(times),
        "rss_mb": (peak_resident_bytes() - baseline) / 2**20,
        "cuda_mb": torch.cuda.max_memory_allocated() / 2**20
        if config["device"] == "cuda"
        else None,
        "parameters": net.num_parameters(),
        "ops": ops_run(net),
        "live": live_per_subset(net) if config["level"] is not None else None,
    }


def measure_pair(config: dict) -> dict:
    """Alternate steps of the fully shrunk supernet and the standalone subnet (ABBA)."""
    bench = Bench(config)
    supernet = bench.stepper(bench.network(SHRINK_STEPS[config["space"]]))
    subnet = bench.stepper(bench.network(None))
    for _ in range(config["warmup"]):
        supernet()
        subnet()
    pairs: list[tuple[float, float]] = []
    began = time.perf_counter()
    while not bench.enough(len(pairs), began):
        if len(pairs) % 2 == 0:
            first = supernet()
            pairs.append((first, subnet()))
        else:
            second = subnet()
            pairs.append((supernet(), second))
    return {
        "supernet_ms": 1e3 * statistics.median(a for a, _ in pairs),
        "subnet_ms": 1e3 * statistics.median(b for _, b in pairs),
        "ratio": statistics.median(a / b for a, b in pairs),
        "pairs": len(pairs),
    }


def measure_gdas(config: dict) -> dict:
    """GDAS weight steps (drawing the architecture included) against the standalone subnet of
    the final cell, the supernet masked to that cell (IS-DARTS after its last shrink step) and
    the all-live softmax supernet DARTS trains, in one process, rotating.

    `gdas fixed`: alphas that make the Gumbel sample the final cell at every step (so the code
    never changes): the cost of the mechanism against the same subnet. `gdas sampled`: uniform
    alphas, a new subnet (and new generated code) almost every step, as early in a search."""
    from nasc.compiler import compile_space
    from nasc.runtime.search.config import make_config
    from nasc.runtime.strategies.gdas import Gdas

    bench = Bench(config)
    torch = bench.torch

    def gdas_net(fixed: bool):
        torch.manual_seed(0)
        net = compile_space(bench.space, bench.overrides, bench.options, seed=0)
        strategy = Gdas(make_config("nb201", "gdas", {}))
        strategy.setup(net)
        if fixed:
            with torch.no_grad():
                for cell, edges in bench.final.cells.items():
                    table = net.arch.choices[cell]
                    alphas = net.arch.alphas[net.arch.alpha_key(cell)]
                    alphas.fill_(-30.0)
                    for edge, ops in edges.items():
                        for op in ops:
                            alphas[table.position(edge, op)] = 30.0
        net = net.to(bench.device).train()
        step = bench.stepper(net)

        def gdas_step() -> float:
            start = time.perf_counter()
            strategy.sample(net)
            return time.perf_counter() - start + step()

        return net, gdas_step

    def darts_net():
        torch.manual_seed(0)
        net = compile_space(bench.space, bench.overrides, bench.options, seed=0)
        net.arch.set_mixing("softmax")
        return bench.stepper(net.to(bench.device).train())

    subnet = bench.stepper(bench.network(None))
    fixed_net, fixed = gdas_net(True)
    _, sampled = gdas_net(False)
    # The supernet restricted to the final cell (mixing `mean`): masked execution on its own.
    masked = bench.stepper(bench.network(SHRINK_STEPS["nb201"]))
    steppers = {
        "subnet": subnet,
        "masked supernet": masked,
        "gdas fixed": fixed,
        "gdas sampled": sampled,
    }
    if not config.get("skip_darts"):
        steppers["darts supernet"] = darts_net()
    for _ in range(config["warmup"]):
        for step in steppers.values():
            step()
    versions = fixed_net.arch.version
    times: dict[str, list[float]] = {name: [] for name in steppers}
    names = list(steppers)
    rounds = 0
    began = time.perf_counter()
    while not bench.enough(rounds, began):
        order = names[rounds % len(names) :] + names[: rounds % len(names)]
        for name in order:
            times[name].append(steppers[name]())
        rounds += 1
    result = {f"{name}_ms": 1e3 * statistics.median(values) for name, values in times.items()}
    result["gdas_fixed_over_subnet"] = statistics.median(
        a / b for a, b in zip(times["gdas fixed"], times["subnet"])
    )
    result["masked_over_subnet"] = statistics.median(
        a / b for a, b in zip(times["masked supernet"], times["subnet"])
    )
    result["gdas_sampled_over_subnet"] = statistics.median(
        a / b for a, b in zip(times["gdas sampled"], times["subnet"])
    )
    result["rounds"] = rounds
    result["fixed_code_regenerations"] = fixed_net.arch.version - versions
    return result


# --- the driver ----------------------------------------------------------------------------------


def configurations(args) -> list[dict]:
    """Every network to measure: per space and final cell, each shrink level and the subnet."""
    common = child_settings(args, args.warmup)
    found = []
    for space, cells in SPACES:
        if args.space and space not in args.space:
            continue
        steps = SHRINK_STEPS[space]
        levels = [0, steps] if args.quick else list(range(steps + 1))
        for index, (name, arch) in enumerate(cells.items()):
            base = dict(
                common, space=space, cell=name, final=arch, overrides=sizes(args.quick)[space]
            )
            for level in levels:
                if level == 0 and index > 0:
                    continue  # all candidates live: the same network for every final cell
                found.append(dict(base, level=level))
            found.append(dict(base, level=None))
    return found


def run_child(mode: str, config: dict) -> dict:
    command = [sys.executable, os.path.abspath(__file__), f"--{mode}", json.dumps(config)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def describe(config: dict, result: dict) -> str:
    if config["level"] is None:
        return "standalone subnet"
    live = result["live"]
    if config["space"] == "nb201" and len(set(live)) == 1:
        return f"supernet, {live[0]} live/edge"
    if config["space"] in ("macro_choice", "proxyless"):
        steps = SHRINK_STEPS[config["space"]]
        return f"supernet, step {config['level']}/{steps}, {sum(live)} live"
    steps = SHRINK_STEPS[config["space"]]
    return f"supernet, step {config['level']}/{steps}, live/node {'/'.join(map(str, live))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small networks, few steps")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, help="timed steps per configuration, at most")
    parser.add_argument(
        "--budget",
        type=float,
        default=20.0,
        help="seconds of timed steps after which a configuration stops, once it has three",
    )
    parser.add_argument("--warmup", type=int, help="untimed steps before timing")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32, help="image height and width")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared machine, more threads stall "
        "at every op whenever another process holds a core)",
    )
    parser.add_argument(
        "--space",
        action="append",
        choices=[space for space, _ in SPACES],
        help="measure only this space (repeatable; default: all)",
    )
    parser.add_argument(
        "--gdas",
        action="store_true",
        help="only GDAS' weight step against the subnet of NB201 cell A (and DARTS' supernet)",
    )
    parser.add_argument(
        "--widths",
        action="store_true",
        help="the NATS size space: masked to one width per layer against the standalone network "
        "of those widths (paired), and the all-live step against the largest network",
    )
    parser.add_argument("--widths-child", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--pair", help=argparse.SUPPRESS)
    parser.add_argument("--gdas-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.widths_child:
        print(json.dumps(measure_widths(json.loads(args.widths_child))))
        return 0
    if args.child or args.pair or args.gdas_child:
        work = measure if args.child else measure_pair if args.pair else measure_gdas
        print(json.dumps(work(json.loads(args.child or args.pair or args.gdas_child))))
        return 0
    if args.repeats is None:
        args.repeats = 3 if args.quick else 11
    if args.warmup is None:
        args.warmup = 2 if args.device == "cuda" else 1
    if args.quick:
        args.batch = min(args.batch, 16)

    if args.gdas:
        return gdas_main(args)
    if args.widths:
        return widths_main(args)
    print(
        f"supernet training step: batch {args.batch}, {args.size}x{args.size} images, "
        f"device {args.device}, {args.threads} threads, {args.warmup} warm-up and 3 to "
        f"{args.repeats} timed steps (median), a fresh process per row; sizes "
        + sizes_line(args.quick)
        + f"; load average {os.getloadavg()[0]:.1f}"
    )
    for name, arch in {**NB201_CELLS, **DARTS_CELLS, **NETWORKS}.items():
        print(f"  {'network' if name in NETWORKS else 'cell'} {name}: {arch}")
    cuda = args.device == "cuda"
    header = (
        f"{'space':12} {'cell':4} {'network':44} {'ops':>4} {'params':>9} {'step ms':>9} "
        f"{'q1-q3 ms':>17} {'steps':>5} {'RSS +MB':>8}"
    )
    header += f" {'CUDA MB':>8}" if cuda else ""
    print(header)
    print("-" * len(header))
    results = []
    failed = False
    for config in configurations(args):
        result = run_child("child", config)
        results.append((config, result))
        if "error" in result:
            failed = True
            print(
                f"{config['space']:12} {config['cell']:4} level {config['level']}: failed: "
                f"{result['error']}",
                flush=True,
            )
            continue
        spread = f"{result['q1_ms']:.1f}-{result['q3_ms']:.1f}"
        print(
            f"{config['space']:12} {config['cell']:4} {describe(config, result):44} "
            f"{result['ops']:>4} {result['parameters']:>9,} {result['median_ms']:>9.1f} "
            f"{spread:>17} {result['steps']:>5} {result['rss_mb']:>8.1f}"
            + (f" {result['cuda_mb']:>8.1f}" if cuda else ""),
            flush=True,
        )

    def median_ms(space, cell, level):
        for config, result in results:
            if config["space"] == space and config["level"] == level and "error" not in result:
                if level == 0 or config["cell"] == cell:
                    return result["median_ms"]
        return None

    print()
    print(
        "ratios (one live op per edge: the supernet after its last shrink step; paired run: "
        "both networks in one process, steps alternating, median of per-pair ratios)"
    )
    for space, cells in SPACES:
        if args.space and space not in args.space:
            continue
        last = SHRINK_STEPS[space]
        for cell in cells:
            config = next(c for c, _ in results if c["space"] == space and c["cell"] == cell)
            # Paired steps are cheap next to the shrink levels: take at least nine pairs.
            pair = run_child("pair", dict(config, level=last, repeats=max(9, args.repeats)))
            if "error" in pair:
                failed = True
                print(f"  {space} cell {cell}: paired run failed: {pair['error']}")
            else:
                verdict = "ok" if pair["ratio"] <= 1.15 else "ABOVE TARGET"
                print(
                    f"  {space} cell {cell}: supernet one-live / standalone = "
                    f"{pair['ratio']:.3f} (target <= 1.15: {verdict}; paired medians "
                    f"{pair['supernet_ms']:.1f} / {pair['subnet_ms']:.1f} ms over "
                    f"{pair['pairs']} pairs)",
                    flush=True,
                )
        for cell in cells:
            everything, shrunk = median_ms(space, cell, 0), median_ms(space, cell, last)
            if everything and shrunk:
                print(
                    f"  {space} cell {cell}: supernet all live / one-live = "
                    f"{everything / shrunk:.2f} (table medians)"
                )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 1 if failed else 0


def gdas_main(args) -> int:
    """Print GDAS' weight step against the one-op-per-edge subnet it samples."""
    overrides = sizes(args.quick)["nb201"]
    config = {
        **child_settings(args, args.warmup),
        "space": "nb201",
        "cell": "A",
        "final": NB201_CELLS["A"],
        "overrides": overrides,
    }
    print(
        "GDAS weight step (draw + forward + backward + SGD), NB201 "
        + " ".join(f"{k}={v}" for k, v in overrides.items())
        + f", batch {args.batch}, {args.size}x{args.size}, device {args.device}, "
        f"{args.threads} threads, steps rotating in one process; load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    result = run_child("gdas-child", config)
    if "error" in result:
        print(f"failed: {result['error']}")
        return 1
    for key in (
        "subnet_ms",
        "masked supernet_ms",
        "gdas fixed_ms",
        "gdas sampled_ms",
        "darts supernet_ms",
    ):
        if key in result:
            print(f"  {key[:-3]:16} {result[key]:9.1f} ms (median)")
    print(
        f"  masked supernet / subnet {result['masked_over_subnet']:.2f}, "
        f"gdas fixed / subnet {result['gdas_fixed_over_subnet']:.2f}, gdas sampled / subnet "
        f"{result['gdas_sampled_over_subnet']:.2f} (medians of per-round ratios, "
        f"{result['rounds']} rounds; fixed sample regenerated the code "
        f"{result['fixed_code_regenerations']} times)"
    )
    return 0


# --- choices among widths: spaces/nats_sss.nas ----------------------------------------------

# The widths one masked run keeps (`nasc` blocks string), and the largest network of the space.
NATS_WIDTHS = "C1=16 C2=24 C3=32 C4=48 C5=64"
NATS_LARGEST = "C1=64 C2=64 C3=64 C4=64 C5=64"


def measure_widths(config: dict) -> dict:
    """In a child: `pair` alternates steps (ABBA) of the supernet masked to `arch` (sliced
    entangled weights) and the standalone network of those widths; `alone` times one network
    (`arch` None: the supernet with every width live, softmax mixing) and its peak memory."""
    from nasc.compiler import compile_space, export_network
    from nasc.dsl import parse_arch

    bench = Bench(dict(config, space="nats_sss", final=config["arch"] or NATS_LARGEST))
    torch = bench.torch
    baseline = resident_bytes()

    def supernet(arch):
        torch.manual_seed(0)
        net = compile_space(bench.space, bench.overrides, bench.options, seed=0)
        if arch is None:
            net.arch.set_mixing("softmax")
        else:
            net.arch.restrict(parse_arch(bench.space, arch))
            net.arch.set_mixing("mean")
        return net.to(bench.device).train()

    if config["mode"] == "alone":
        if config.get("standalone"):
            torch.manual_seed(0)
            net = export_network(bench.space, bench.final, bench.overrides, bench.options)
            net = net.to(bench.device).train()
        else:
            net = supernet(config["arch"])
        step = bench.stepper(net)
        for _ in range(config["warmup"]):
            step()
        times = []
        began = time.perf_counter()
        while not bench.enough(len(times), began):
            times.append(step())
        return {
            "median_ms": 1e3 * statistics.median(times),
            "rss_mb": (peak_resident_bytes() - baseline) / 2**20,
            "parameters": net.num_parameters(),
        }
    masked = bench.stepper(supernet(config["arch"]))
    torch.manual_seed(0)
    alone = export_network(bench.space, bench.final, bench.overrides, bench.options)
    alone = bench.stepper(alone.to(bench.device).train())
    for _ in range(config["warmup"]):
        masked()
        alone()
    pairs: list[tuple[float, float]] = []
    began = time.perf_counter()
    while not bench.enough(len(pairs), began):
        if len(pairs) % 2 == 0:
            first = masked()
            pairs.append((first, alone()))
        else:
            second = alone()
            pairs.append((masked(), second))
    return {
        "supernet_ms": 1e3 * statistics.median(a for a, _ in pairs),
        "subnet_ms": 1e3 * statistics.median(b for _, b in pairs),
        "ratio": statistics.median(a / b for a, b in pairs),
        "pairs": len(pairs),
    }


def widths_main(args) -> int:
    """The NATS size space's rows: one child process per row."""
    common = dict(child_settings(args, args.warmup), overrides={})
    print(
        f"nats_sss training step: batch {args.batch}, {args.size}x{args.size} images, device "
        f"{args.device}, {args.threads} threads; masked widths {NATS_WIDTHS}; load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    failed = False
    pair = run_child(
        "widths-child", dict(common, mode="pair", arch=NATS_WIDTHS, repeats=max(9, args.repeats))
    )
    if "error" in pair:
        failed = True
        print(f"  masked pair failed: {pair['error']}")
    else:
        verdict = "ok" if pair["ratio"] <= 1.15 else "ABOVE TARGET"
        print(
            f"  masked to {NATS_WIDTHS} / standalone network of those widths = "
            f"{pair['ratio']:.3f} (target <= 1.15: {verdict}; paired medians "
            f"{pair['supernet_ms']:.1f} / {pair['subnet_ms']:.1f} ms over {pair['pairs']} pairs)"
        )
    rows = [
        ("all widths live, entangled (softmax channel masks)", dict(arch=None)),
        ("largest network (64 everywhere), standalone", dict(arch=NATS_LARGEST, standalone=1)),
    ]
    for name, extra in rows:
        result = run_child("widths-child", dict(common, mode="alone", **extra))
        if "error" in result:
            failed = True
            print(f"  {name}: failed: {result['error']}")
            continue
        print(
            f"  {name:52} {result['median_ms']:8.1f} ms/step  peak RSS +{result['rss_mb']:.0f} "
            f"MB  {result['parameters']:,} weights"
        )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
