"""A CPU-budget search on real images: IS-DARTS and DARTS (first order) on the NB201 space with
CIFAR-10, and the NAS-Bench-201 accuracies of the cells they find.

The budget is cut to fit about an hour on two CPU cores: fewer channels and cells than the
benchmark's C=16, N=5, and a subset of the training images; the schedule keeps the IS-DARTS
preset's shape (shrink steps every 2 epochs at the end). The found cells are then looked up in the
accuracy table of all 15,625 cells, trained at full size by the benchmark's authors.

    python benchmarks/cifar_search.py \\
        --archive ../shared/data/cifar10-jpg.tar.gz --table ../shared/data/nb201_accuracies.csv
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path


def unpack(archive: Path, cache: Path) -> Path:
    """Unpack the ImageFolder archive once; later runs reuse the folder."""
    target = cache / "cifar10-jpg"
    if not (target / "train").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"unpacking {archive} into {cache}", flush=True)
        with tarfile.open(archive) as tar:
            tar.extractall(cache, filter="data")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=Path("../shared/data/cifar10-jpg.tar.gz"))
    parser.add_argument("--table", type=Path, default=Path("../shared/data/nb201_accuracies.csv"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "nasc-data")
    parser.add_argument("--strategies", default="isdarts,darts-1st")
    parser.add_argument("-C", type=int, default=8, help="supernet width (benchmark: 16)")
    parser.add_argument("-N", type=int, default=1, help="cells per stage (benchmark: 5)")
    parser.add_argument("--subset", type=int, default=10000, help="training images")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/benchmark"))
    args = parser.parse_args()

    folder = unpack(args.archive, args.cache)
    rows = []
    for strategy in args.strategies.split(","):
        command = [
            sys.executable,
            "-m",
            "nasc.runtime",
            "search",
            "nb201",
            "--data",
            str(folder),
            "--subset",
            str(args.subset),
            "-D",
            f"C={args.C}",
            "-D",
            f"N={args.N}",
            "--epochs",
            str(args.epochs),
            "--strategy",
            strategy,
            "--seed",
            str(args.seed),
            "--nb201-table",
            str(args.table),
            "--runs-dir",
            str(args.runs_dir),
            "--quiet",
        ]
        print("$ " + " ".join(command), flush=True)
        started = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - started
        run = max(args.runs_dir.glob(f"nb201-{strategy}-*"), key=lambda p: p.stat().st_mtime)
        result = json.loads((run / "result.json").read_text())
        rows.append((strategy, result, seconds))

    print()
    print(
        f"NB201 space, C={args.C}, N={args.N}, {args.subset} CIFAR-10 training images, "
        f"{args.epochs} epochs, seed {args.seed}"
    )
    for strategy, result, seconds in rows:
        accuracy = result.get("nb201_accuracy") or {}
        ranks = result.get("nb201_rank") or {}
        print(f"{strategy:<12} {result['nb201']}")
        print(
            f"{'':<12} CIFAR-10 {accuracy.get('cifar10', float('nan')):.2f}% "
            f"(rank {ranks.get('cifar10', '-')}), "
            f"CIFAR-100 {accuracy.get('cifar100', float('nan')):.2f}%, "
            f"ImageNet16-120 {accuracy.get('ImageNet16-120', float('nan')):.2f}%; "
            f"supernet test {result['final_test_acc']:.1f}%, {seconds / 60:.1f} min"
        )
        ops = result["nb201"].replace("|", " ").replace("+", " ").split()
        free = sum(op.split("~")[0] in ("skip_connect", "none", "avg_pool_3x3") for op in ops)
        print(f"{'':<12} parameter-free ops: {free} of {len(ops)}")


if __name__ == "__main__":
    main()
