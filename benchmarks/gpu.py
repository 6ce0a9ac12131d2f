"""One command that checks nasc on one CUDA device within a time budget (docs/gpu.md).

    python benchmarks/gpu.py --out $OUT/gpu               # on the GPU machine, 9 minutes
    python benchmarks/gpu.py --stages search --budget 590 # the papers' search alone
    python benchmarks/gpu.py --dry-run --out /tmp/gpu     # every stage on the CPU, toy sizes

Stages, in order (`gpu_stages.py`): 1. the environment and `pytest -m gpu`; 2. one training step
of the NB201 (C=16, N=5) and DARTS (C=16, 8 cells) supernets at batch 64, all live, masked to a
found cell and as the standalone found network, in fp32 and bf16 autocast, channels-last and
NCHW, eager, CUDA graphs per mask version and torch.compile; 3. the papers' NB201 IS-DARTS
search (CIFAR-10 JPEGs, 30 epochs, 4 shrink steps every 2 epochs, C=16, N=5, batch 64) for as
many seeds as fit; 4. `nasc profile` and the latency predictor's held-out relative error. Each
row goes to `results.json` and `results.md` under `--out` as soon as it is measured, and a
stage skips, saying so, what would not finish in its share of the budget.

The dry run takes the CPU, tiny networks, a few batches of the embedded digits, two epochs and
a made-up NB201 accuracy table, so that the script's every path runs in CI.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def use_this_checkout() -> None:
    """Make `import nasc` (here and in child processes) find this checkout, also where nasc is
    not installed (a bare GPU machine): a link named `nasc` to the repository's root, in a
    temporary folder put first on the path."""
    spec = importlib.util.find_spec("nasc")
    if spec is not None and spec.origin and Path(spec.origin).resolve().parent == ROOT:
        return
    folder = Path(tempfile.mkdtemp(prefix="nasc-path-"))
    (folder / "nasc").symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(folder))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(folder), os.environ.get("PYTHONPATH")])
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from gpu_stages import STAGES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=540.0, help="seconds in all (default 540)")
    parser.add_argument("--out", help="folder for results.json, results.md and the logs")
    parser.add_argument("--dry-run", action="store_true", help="every stage on the CPU, toy sizes")
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"the stages to run, comma-separated (default: {','.join(STAGES)})",
    )
    parser.add_argument(
        "--data-dir",
        help="the folder of cifar10-jpg.tar.gz and nb201_accuracies.csv (default: shared/data "
        "in the checkout if it is there, else ../shared/data)",
    )
    parser.add_argument(
        "--work",
        default=os.path.join(tempfile.gettempdir(), "nasc-gpu"),
        help="scratch folder: the unpacked images, their decoded cache, the search runs",
    )
    parser.add_argument(
        "--seeds", type=int, help="searches at most (default 3; in a dry run 2)"
    )
    parser.add_argument(
        "--search-config",
        default="auto",
        help="the search's GPU settings: auto (those of stage 2's fastest all-live NB201 step), "
        "eager, or some of bf16, nchw and cuda graphs or compile, comma-separated",
    )
    parser.add_argument(
        "--predictor-samples", type=int, help="networks for the latency predictor, at most"
    )
    args = parser.parse_args(argv)
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown or not stages:
        parser.error(f"--stages: unknown {', '.join(unknown) or '(none given)'}")
    args.stages = tuple(stage for stage in STAGES if stage in stages)
    if args.search_config != "auto":
        from gpu_stages import search_settings

        try:
            search_settings(args.search_config)
        except ValueError as error:
            parser.error(str(error))
    if args.data_dir is None:
        inside = ROOT / "shared" / "data"
        args.data_dir = str(inside if inside.is_dir() else ROOT.parent / "shared" / "data")
    if args.seeds is None:
        args.seeds = 2 if args.dry_run else 3
    if args.predictor_samples is None:
        args.predictor_samples = 10 if args.dry_run else 100
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from gpu_stages import (
        Clock,
        Results,
        environment_stage,
        gpu_tests_stage,
        profile_stage,
        search_stage,
        steps_stage,
    )

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: run it on a GPU machine, or pass --dry-run", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    if args.dry_run:
        # One thread, here and in the child processes: a shared CPU stalls more threads.
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    clock = Clock(args.budget, args.stages)
    out = Path(args.out) if args.out else None
    header = {
        "command": " ".join(["benchmarks/gpu.py", *(argv if argv is not None else sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "budget_s": args.budget,
        "dry_run": args.dry_run,
    }
    results = Results(out, header)
    if "environment" in args.stages:
        environment_stage(results, device)
        if clock.left("environment") > 5:
            gpu_tests_stage(results, clock.left("environment"), out)
        else:
            results.skip_for_time("environment", "pytest -m gpu", 5, clock.left("environment"))
    stages = {
        "steps": lambda: steps_stage(results, clock, device, args.dry_run),
        "search": lambda: search_stage(results, clock, device, args),
        "profile": lambda: profile_stage(results, clock, device, args),
    }
    least = {"steps": 5, "search": 30, "profile": 10}  # too little to start a stage's first part
    for stage, run in stages.items():
        if stage not in args.stages:
            continue
        if clock.left(stage) < least[stage]:
            results.skip_for_time(stage, stage, least[stage], clock.left(stage))
            continue
        try:
            run()
        except Exception as error:  # noqa: BLE001 - the next stages still run
            results.add(stage, stage, "failed", error=f"{type(error).__name__}: {error}")
    failed = [row["name"] for row in results.rows if row["status"] == "failed"]
    print(f"done in {time.monotonic() - clock.start:.0f} s; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    use_this_checkout()
    sys.exit(main())
