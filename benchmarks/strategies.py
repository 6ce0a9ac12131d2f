"""Every search strategy on the same NB201 space, data and reduced budget, with the NB201
accuracies of the cells they find (mean and spread over seeds).

    python benchmarks/strategies.py --log /work/bench/strategies.jsonl
    python benchmarks/strategies.py --summarise /work/bench/strategies.jsonl [more logs]

The budget fits a shared two-core CPU: the NB201 space at C=4 and N=1 (the benchmark searches at
C=16, N=5), 2,000 CIFAR-10 training images and 500 test images (the JPEG copy in ../shared/data),
10 epochs at batch 64, each strategy with its preset otherwise (IS-DARTS: 4 shrink steps every 2
epochs, measured as the reference code does, on the whole training split; the DARTS family:
half the images for the weights, half for the alphas). The found cells are then looked up in the
table of all 15,625 cells trained at full size by the benchmark's authors; that look-up is what
the papers compare, and a cell found by a cut-down search can do well or badly in it.

Each search runs in its own process on a small file of the chosen images, so its peak memory is
the search's: the growth of the peak resident set over the resident set before the supernet is
built. Search time is the searcher's own (training, evaluation, measurement). Every finished
search appends one JSON line to `--log`; the summary reads that file, so a partial run (or one
split over several invocations) still makes a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARAMETER_FREE = ("none", "skip_connect", "avg_pool_3x3", "max_pool_3x3")
DEFAULT_PLAN = "isdarts:3,darts-1st:3,gdas:3,drnas:1,ms-darts:1"


def peak_resident_bytes() -> int:
    """The peak resident set of this process image (VmHWM; ru_maxrss would carry over the
    parent's peak through fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- in the child process: one search ------------------------------------------------------------


def child(data_file: Path, strategy: str, seed: int, args) -> dict:
    import torch

    from nasc.compiler import catalog
    from nasc.dsl import load_space
    from nasc.dsl.genotype import genotype_strings
    from nasc.runtime.data.images import ImageData
    from nasc.runtime.search.config import make_config
    from nasc.runtime.search.loop import Searcher
    from nasc.runtime.tasks import bind_data

    data = ImageData(**torch.load(data_file, weights_only=False))
    space = load_space("nb201", catalog=catalog())
    defines = bind_data(space, {"C": args.C, "N": args.N}, data)
    values = dict(epochs=args.epochs, batch_size=args.batch_size, device="cpu", seed=seed)
    config = make_config(space.preset, strategy, values)
    before = resident_bytes()
    searcher = Searcher(space, defines, config, data, torch.device("cpu"), fingerprint="bench")
    started = time.perf_counter()
    searcher.run_epochs()
    wall = time.perf_counter() - started
    genotype = searcher.strategy.derive(searcher.net)
    epochs = [r for r in searcher.metric_records if r.get("event") == "epoch"]
    return {
        "strategy": strategy,
        "seed": seed,
        "nb201": genotype_strings(space, genotype)["nb201"],
        "search_seconds": searcher.seconds,
        "wall_seconds": wall,
        "peak_memory_bytes": peak_resident_bytes() - before,
        "supernet_test_acc": epochs[-1]["test_acc"] if epochs else None,
        "budget": budget(args),
    }


# --- in the parent --------------------------------------------------------------------------------


def budget(args) -> dict:
    return {
        "space": "nb201",
        "C": args.C,
        "N": args.N,
        "train_images": args.subset,
        "test_images": args.subset // 4,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
    }


def prepare(args, folder: Path) -> Path:
    """The chosen images, in a file every search process loads (small, unlike the folder)."""
    import attrs
    import torch

    from nasc.runtime.data.images import load_data

    data = load_data(str(folder)).subset(args.subset, seed=0)
    path = Path(tempfile.mkdtemp(prefix="nasc-bench-")) / "data.pt"
    fields = attrs.asdict(data, recurse=False)
    fields = {k: (v.clone() if hasattr(v, "clone") else v) for k, v in fields.items()}
    torch.save(fields, path)
    return path


def plan(text: str) -> list[tuple[str, int]]:
    """`name:N` (seeds 0..N-1) or `name:A-B` (seeds A..B), comma-separated, as (strategy, seed)
    pairs, seed by seed, so an early stop covers every strategy."""
    wanted = []
    for item in text.split(","):
        name, seeds = item.split(":")
        first, _, last = seeds.partition("-")
        wanted.append((name, range(int(first), int(last) + 1) if last else range(int(first))))
    every = sorted({seed for _, seeds in wanted for seed in seeds})
    return [(name, seed) for seed in every for name, seeds in wanted if seed in seeds]


def free_edges(arch: str) -> int:
    ops = arch.replace("|", " ").replace("+", " ").split()
    return sum(op.split("~")[0] in PARAMETER_FREE for op in ops)


def summarise(logs: list[Path], table_path: Path) -> str:
    from nasc.runtime.reports.nb201 import NB201Table, accuracy_spread

    table = NB201Table.load(table_path)
    runs = [
        json.loads(line)
        for log in logs
        if log.is_file()
        for line in log.read_text().splitlines()
        if line.strip()
    ]
    if not runs:
        return "no finished searches yet"
    lines = []
    shape = runs[0]["budget"]
    lines.append(
        f"NB201 space, C={shape['C']}, N={shape['N']}, {shape['train_images']} CIFAR-10 training "
        f"images ({shape['test_images']} test), {shape['epochs']} epochs, batch "
        f"{shape['batch_size']}, CPU"
    )
    lines.append(
        "| strategy | seeds | found cells | NB201 CIFAR-10 | CIFAR-100 | ImageNet16-120 "
        "| param-free edges | search time | peak memory |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for strategy in dict.fromkeys(run["strategy"] for run in runs):
        mine = [run for run in runs if run["strategy"] == strategy]
        found = [table.lookup(run["nb201"]) or {} for run in mine]
        spread = accuracy_spread([f for f in found if f])

        def cell(key, spread=spread):
            value = spread.get(key)
            if not value:
                return "-"
            if value["runs"] < 2:
                return f"{value['mean']:.2f}"
            return f"{value['mean']:.2f} ± {value['std']:.2f}"

        free = [free_edges(run["nb201"]) for run in mine]
        seconds = [run["search_seconds"] for run in mine]
        memory = [run["peak_memory_bytes"] / 2**20 for run in mine]
        # Markdown tables split cells at every `|`, code spans included.
        cells = "<br>".join(run["nb201"].replace("|", "\\|") for run in mine)
        lines.append(
            f"| {strategy} | {len(mine)} | {cells} | {cell('cifar10')} | {cell('cifar100')} "
            f"| {cell('ImageNet16-120')} | {sum(free) / len(free):.1f} of 6 "
            f"| {sum(seconds) / len(seconds) / 60:.1f} min | {max(memory):.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=Path("../shared/data/cifar10-jpg.tar.gz"))
    parser.add_argument("--table", type=Path, default=Path("../shared/data/nb201_accuracies.csv"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "nasc-data")
    parser.add_argument("--plan", default=DEFAULT_PLAN, help="strategy:seeds,... (seeds from 0)")
    parser.add_argument("-C", type=int, default=4)
    parser.add_argument("-N", type=int, default=1)
    parser.add_argument("--subset", type=int, default=2000, help="training images")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--log", type=Path, default=Path("runs/strategies.jsonl"))
    parser.add_argument(
        "--summarise", type=Path, nargs="+", help="print the table of these logs and stop"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("DATA", "STRATEGY", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    if args.child:
        data_file, strategy, seed = args.child
        print(json.dumps(child(Path(data_file), strategy, int(seed), args)))
        return
    if args.summarise:
        print(summarise(args.summarise, args.table))
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from cifar_search import unpack

    data_file = prepare(args, unpack(args.archive, args.cache))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    shape = ["-C", str(args.C), "-N", str(args.N), "--subset", str(args.subset)]
    shape += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    for strategy, seed in plan(args.plan):
        command = [sys.executable, __file__, *shape, "--child", str(data_file), strategy, str(seed)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{strategy} seed {seed} failed:\n{done.stderr[-2000:]}", flush=True)
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        with open(args.log, "a") as log:
            log.write(json.dumps(result) + "\n")
        print(
            f"{strategy} seed {seed}: {result['nb201']} in {result['search_seconds'] / 60:.1f} "
            f"min ({(time.perf_counter() - started) / 60:.1f} min with start-up)",
            flush=True,
        )
    print()
    print(summarise([args.log], args.table))


if __name__ == "__main__":
    main()
