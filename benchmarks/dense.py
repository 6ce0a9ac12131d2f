"""Segmentation on the embedded shapes: DARTS two-stage, DARTS single-stage and IS-DARTS on the
DCNAS-like space, and the masked supernet's step against the standalone found network.

    python benchmarks/dense.py --log dense.jsonl          # 3 seeds of 30 epochs, about an hour
    python benchmarks/dense.py --summarise dense.jsonl    # the table of a log
    python benchmarks/dense.py --step-only                              # the step ratio alone

Rows (`spaces/dcnas.nas` at its defaults, C=8 and five cells, on `--data shapes`, one thread):
- `DARTS two-stage`: `darts-1st` searches `--epochs` epochs, its architecture is derived and then
  trained from scratch by `nasc train` for the same number of epochs. The discretisation drop is
  the supernet's test mIoU before derivation against the supernet restricted to the derived
  architecture with its search weights (before any retraining).
- `DARTS single-stage`: `darts-1st` with `--protocol single-stage` for twice `--epochs` epochs,
  the second half frozen: the same number of training epochs as search plus retraining above,
  and its supernet is the found network (no derivation, no retraining).
- `IS-DARTS`: an IS-DARTS search of `--epochs` epochs (2 shrink steps), retrained as above.
Each search and each training runs in a child process of its own: its seconds, and its peak
resident memory (the child's maximum RSS).

The step row: one training step (per-pixel cross-entropy, SGD) of the supernet restricted to a
found architecture against the standalone network `nasc train` builds from it, alternated in one
process (ABBA pairs) so both see the same machine load; the ratio is the median of the per-pair
ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPACE = HERE.parent / "spaces" / "dcnas.nas"
ROWS = ("DARTS two-stage", "DARTS single-stage", "IS-DARTS")


def child(job: dict) -> dict:
    """Run one search or training (in this process) and say what it scored."""
    import torch

    import nasc

    torch.set_num_threads(1)
    common = dict(
        data="shapes", task="segmentation", subset=job["subset"], runs_dir=job["runs"],
        seed=job["seed"], batch_size=job["batch"], device="cpu", memory_check=False,
    )  # fmt: skip
    started = time.perf_counter()
    if job["kind"] == "search":
        result = nasc.search(
            str(SPACE), strategy=job["strategy"], epochs=job["epochs"], **job["extra"], **common
        ).result
        supernet = result["supernet_test_acc"]
        out = {
            "run": result["run"],
            "miou": result["final_test_miou"],
            "before": supernet["before_discretisation"],
            "discretised": supernet["discretised"],
            "genotype": result["genotype"],
        }
    else:
        result = nasc.train(
            Path(job["arch"]), epochs=job["epochs"], lr=0.025, nesterov=True, **common
        ).result
        out = {"miou": result["final_test_miou"]}
    out["seconds"] = time.perf_counter() - started
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(job: dict) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed: {job}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def seed_rows(args, seed: int, runs: str) -> list[dict]:
    """The three rows of one seed (each appended to the log as soon as it is known)."""
    base = {"seed": seed, "subset": args.subset, "batch": args.batch, "runs": runs}
    rows = []
    darts = run_child({**base, "kind": "search", "strategy": "darts-1st",
                       "epochs": args.epochs, "extra": {}})  # fmt: skip
    retrained = run_child({**base, "kind": "train", "epochs": args.epochs,
                           "arch": str(Path(darts["run"]) / "arch.nas")})  # fmt: skip
    rows.append({"row": ROWS[0], **darts, "search_seconds": darts["seconds"],
                 "search_peak_mb": darts["peak_mb"], "miou": retrained["miou"],
                 "train_seconds": retrained["seconds"]})  # fmt: skip
    single = run_child({**base, "kind": "search", "strategy": "darts-1st",
                        "epochs": 2 * args.epochs,
                        "extra": {"protocol": "single-stage", "frozen_epochs": args.epochs}})
    rows.append({"row": ROWS[1], **single, "search_seconds": single["seconds"],
                 "search_peak_mb": single["peak_mb"]})  # fmt: skip
    isdarts = run_child({**base, "kind": "search", "strategy": "isdarts", "epochs": args.epochs,
                         "extra": {"shrink_steps": 2, "shrink_interval": 1,
                                   "measure_samples": args.batch}})  # fmt: skip
    retrained = run_child({**base, "kind": "train", "epochs": args.epochs,
                           "arch": str(Path(isdarts["run"]) / "arch.nas")})  # fmt: skip
    rows.append({"row": ROWS[2], **isdarts, "search_seconds": isdarts["seconds"],
                 "search_peak_mb": isdarts["peak_mb"], "miou": retrained["miou"],
                 "train_seconds": retrained["seconds"]})  # fmt: skip
    return rows


def step_ratio(args, genotype: dict | None) -> dict:
    """Median per-pair ratio of the restricted supernet's training step to the standalone
    network's, on one fixed batch of random images and label maps."""
    import torch
    from torch.nn import functional

    import nasc
    from nasc.compiler import CompileOptions, catalog, compile_space, export_network
    from nasc.dsl import Genotype, load_space

    torch.set_num_threads(1)
    space = load_space(str(SPACE), catalog=catalog())
    overrides = {"classes": 5}
    options = CompileOptions(search=True, track_running_stats=False)
    torch.manual_seed(0)
    supernet = compile_space(space, overrides, options, seed=0)
    if genotype is None:  # no search in this run: an architecture drawn with seed 0
        decided = nasc.load_space(str(SPACE)).sample(1, seed=0)[0]
    else:
        decided = Genotype(genotype)
    supernet.arch.restrict(decided)
    supernet.arch.set_mixing("mean")
    standalone = export_network(space, decided, overrides, options)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 5, (args.batch, 32, 32), generator=generator)

    def stepper(net):
        net.train()
        optimizer = torch.optim.SGD(net.weights(), lr=0.025, momentum=0.9)

        def step() -> float:
            began = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            functional.cross_entropy(net(images), labels, ignore_index=255).backward()
            optimizer.step()
            return time.perf_counter() - began

        return step

    masked, alone = stepper(supernet), stepper(standalone)
    for _ in range(3):
        masked(), alone()
    pairs = []
    for index in range(args.pairs):
        if index % 2 == 0:
            first = masked()
            pairs.append((first, alone()))
        else:
            second = alone()
            pairs.append((masked(), second))
    return {
        "row": "step",
        "masked_ms": 1e3 * statistics.median(a for a, _ in pairs),
        "standalone_ms": 1e3 * statistics.median(b for _, b in pairs),
        "ratio": statistics.median(a / b for a, b in pairs),
        "pairs": len(pairs),
    }


def table(lines: list[dict]) -> str:
    """The Markdown table of a log: mean ± standard deviation over seeds."""

    def spread(values: list[float]) -> str:
        if not values:
            return "-"
        if len(values) == 1:
            return f"{values[0]:.1f}"
        return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"

    out = [
        "| row | seeds | test mIoU (%) | supernet before / after discretisation (%) "
        "| search s | search peak MB |",
        "|---|---|---|---|---|---|",
    ]
    for name in ROWS:
        rows = [line for line in lines if line.get("row") == name]
        if not rows:
            continue
        drop = "-"
        if name != ROWS[1]:
            drop = (f"{spread([r['before'] for r in rows])} / "
                    f"{spread([r['discretised'] for r in rows])}")  # fmt: skip
        out.append(
            f"| {name} | {len(rows)} | {spread([r['miou'] for r in rows])} | {drop} "
            f"| {spread([r['search_seconds'] for r in rows])} "
            f"| {spread([r['search_peak_mb'] for r in rows])} |"
        )
    for line in lines:
        if line.get("row") == "step":
            out.append(
                f"\nmasked DCNAS supernet step {line['masked_ms']:.1f} ms, standalone "
                f"{line['standalone_ms']:.1f} ms: ratio {line['ratio']:.3f} "
                f"(median of {line['pairs']} ABBA pairs)"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--epochs", type=int, default=30,
        help="search (and retraining) epochs; at 12 no protocol learned the shapes",
    )  # fmt: skip
    parser.add_argument("--subset", type=int, help="training images of shapes (default: all)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=20, help="ABBA pairs of the step ratio")
    parser.add_argument("--log", type=Path, help="append each row as a JSON line")
    parser.add_argument("--summarise", type=Path, help="print the table of a log and stop")
    parser.add_argument("--step-only", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if args.summarise:
        lines = [json.loads(x) for x in args.summarise.read_text().splitlines() if x.strip()]
        print(table(lines))
        return 0
    lines: list[dict] = []

    def keep(line: dict) -> None:
        lines.append(line)
        if args.log:
            with args.log.open("a") as log:
                log.write(json.dumps(line) + "\n")
        print(json.dumps({k: v for k, v in line.items() if k != "genotype"}), flush=True)

    genotype = None
    with tempfile.TemporaryDirectory() as runs:
        if not args.step_only:
            for seed in args.seeds:
                for row in seed_rows(args, seed, runs):
                    keep(row)
                    if row["row"] == ROWS[0] and genotype is None:
                        genotype = row["genotype"]
    keep(step_ratio(args, genotype))
    print(table(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
