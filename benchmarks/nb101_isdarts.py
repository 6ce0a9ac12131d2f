"""IS-DARTS on the NAS-Bench-101-style space: what it finds, retrained briefly on CIFAR-10 JPEGs,
against the architecture listing order picks and random architectures of the space.

    python benchmarks/nb101_isdarts.py --log /work/bench/nb101.jsonl
    python benchmarks/nb101_isdarts.py --summarise /work/bench/nb101.jsonl

Rows of the table:
- `IS-DARTS`: the architecture an IS-DARTS search of `spaces/nb101.nas` finds, one search and one
  retraining per seed;
- `listing order`: in every comparison subset the k candidates listed last, what shrinking picks
  when every F ties and ties go by listing order (the old code on this space, whose F was
  infinite for every conv-BN-ReLU vertex and for skips of ReLU outputs): `max_pool_3x3` on every
  vertex and the last-listed edges; retrained with the same seeds;
- `random`: architectures drawn uniformly per subset (k of its candidates), one seed each.

The budget fits a shared CPU, one thread: the space at a small width and one cell per stage, a
few thousand training images (the JPEG copy of CIFAR-10 in ../shared/data), a short search with
the NB201 preset's schedule (4 shrink steps every 2 epochs at the end) and a short retraining
(SGD, Nesterov momentum 0.9, cosine learning rate, weight decay 3e-4, crops and flips). Every
finished search or retraining appends one JSON line to `--log`, so a partial run still makes a
table; `--genotypes-from LOG` retrains the architectures an earlier run's searches found (for a
longer retraining) instead of searching again.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SPACE = HERE.parent / "spaces" / "nb101.nas"


def listing_genotype(space):
    """In every subset, the k candidates listed last."""
    from nasc.compiler import ArchState
    from nasc.dsl import Genotype

    arch = ArchState(space)
    cells = {}
    for name, table in arch.choices.items():
        edges = {edge: [] for edge in table.edges}
        for k, members in table.subsets:
            for row, column in members[-k:]:
                edges[table.edges[row]].append(table.candidates[row][column])
        cells[name] = edges
    return Genotype(cells)


def random_genotype(space, seed: int):
    """k candidates drawn uniformly in every subset."""
    from nasc.compiler import ArchState
    from nasc.dsl import Genotype

    rng = random.Random(seed)
    arch = ArchState(space)
    cells = {}
    for name, table in arch.choices.items():
        edges = {edge: [] for edge in table.edges}
        for k, members in table.subsets:
            for row, column in rng.sample(list(members), k):
                edges[table.edges[row]].append(table.candidates[row][column])
        cells[name] = edges
    return Genotype(cells)


def edges_kept(genotype) -> int:
    """How many of the optional (`link`) edges keep a skip."""
    return sum(
        1
        for edges in genotype.cells.values()
        for edge, ops in edges.items()
        if "skip_connect" in ops
    )


def retrain(space, genotype, defines, data, seed: int, args) -> dict:
    """Train the genotype's standalone network from scratch and test it."""
    from torch import nn

    from nasc.compiler import export_network
    from nasc.runtime.data.images import Batches
    from nasc.runtime.search.loop import cosine_lr, epoch_seed

    torch.manual_seed(seed)
    net = export_network(space, genotype, defines)
    optimizer = torch.optim.SGD(
        net.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=3e-4
    )
    mixed = data.mixed(seed)
    train = Batches(mixed, mixed.train_images, mixed.train_labels, 64, "cpu", True, True)
    test = Batches(mixed, mixed.test_images, mixed.test_labels, 256, "cpu", False, False)
    criterion = nn.CrossEntropyLoss()
    started = time.perf_counter()
    for epoch in range(args.train_epochs):
        net.train()
        steps = len(train)
        for step, (images, labels) in enumerate(train.epoch(epoch_seed(seed, epoch, 0))):
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(args.lr, 0.0, args.train_epochs, epoch + step / steps)
            optimizer.zero_grad(set_to_none=True)
            output = net(images)
            loss = criterion(output[0] if isinstance(output, tuple) else output, labels)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
    net.eval()
    correct = seen = 0
    with torch.no_grad():
        for images, labels in test.epoch(None):
            output = net(images)
            logits = output[0] if isinstance(output, tuple) else output
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
    return {
        "test_acc": 100.0 * correct / seen,
        "weights": sum(p.numel() for p in net.parameters()),
        "train_seconds": time.perf_counter() - started,
    }


def searched(folder: Path, seed: int, args) -> tuple[dict, dict]:
    """One IS-DARTS search; its genotype and what its measurement saw."""
    import nasc

    started = time.perf_counter()
    found = nasc.search(
        str(SPACE),
        data=str(folder),
        subset=args.subset,
        defines={"C": args.C, "N": args.N},
        epochs=args.search_epochs,
        shrink_steps=4,
        shrink_interval=1,
        seed=seed,
        device="cpu",
        runs_dir=args.runs_dir,
        checkpoint_minutes=None,
    )
    steps = json.loads((found.run_dir / "importance.json").read_text())
    values = [
        c for step in steps for s in step["subsets"] for c in s["candidates"] if c["op"] != "none"
    ]
    infinite = sum(1 for c in values if not isinstance(c["F"], (int, float)))
    ties = sum(1 for m in found.metrics if m.get("event") == "tie")
    seen = {
        "measurements": len(values),
        "infinite": infinite,
        "ties": ties,
        "search_seconds": time.perf_counter() - started,
        "supernet_test_acc": found.result["supernet_test_acc"]["before_discretisation"],
        "run": str(found.run_dir),
    }
    return found.genotype, seen


def log(path: Path, record: dict) -> None:
    with path.open("a") as file:
        file.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def summarise(logs: list[Path]) -> str:
    records = [json.loads(line) for path in logs for line in path.read_text().splitlines()]
    budget = next((r["budget"] for r in records if "budget" in r), {})
    lines = [
        "| architecture | runs | CIFAR-10 test accuracy (%) | optional edges kept | weights |",
        "|---|---|---|---|---|",
    ]
    for kind in ("IS-DARTS", "listing order", "random"):
        mine = [r for r in records if r.get("kind") == kind]
        if not mine:
            continue
        accs = [r["test_acc"] for r in mine]
        spread = f" ± {statistics.stdev(accs):.1f}" if len(accs) > 1 else ""
        edges = sorted({r["edges_kept"] for r in mine})
        weights = sorted({r["weights"] for r in mine})
        lines.append(
            f"| {kind} | {len(mine)} | {statistics.mean(accs):.1f}{spread} | "
            f"{', '.join(map(str, edges))} | {weights[0]:,}"
            + (f"-{weights[-1]:,}" if len(weights) > 1 else "")
            + " |"
        )
    searches = [r for r in records if r.get("kind") == "IS-DARTS"]
    if searches:
        infinite = sum(r["infinite"] for r in searches)
        total = sum(r["measurements"] for r in searches)
        ties = sum(r["ties"] for r in searches)
        minutes = sum(r["search_seconds"] for r in searches) / 60
        lines.append("")
        lines.append(
            f"IS-DARTS measured {total} F values of candidates other than `none` over "
            f"{len(searches)} searches: {infinite} infinite, {ties} tie reports; "
            f"searches took {minutes:.1f} min in all."
        )
    if budget:
        lines.append(
            "Budget: " + ", ".join(f"{k} {v}" for k, v in budget.items()) + " (one CPU thread)."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=Path("../shared/data/cifar10-jpg.tar.gz"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "nasc-data")
    parser.add_argument("-C", type=int, default=8)
    parser.add_argument("-N", type=int, default=1)
    parser.add_argument("--subset", type=int, default=1000, help="training images")
    parser.add_argument(
        "--retrain-subset", type=int, help="training images to retrain on (default: --subset)"
    )
    parser.add_argument("--search-epochs", type=int, default=6)
    parser.add_argument("--train-epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--randoms", type=int, default=3)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/nb101-benchmark"))
    parser.add_argument("--log", type=Path, default=Path("nb101_isdarts.jsonl"))
    parser.add_argument("--summarise", type=Path, nargs="*")
    parser.add_argument(
        "--genotypes-from", type=Path, help="a log whose IS-DARTS genotypes to retrain (no search)"
    )
    args = parser.parse_args()
    if args.summarise:
        print(summarise(args.summarise))
        return
    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    from cifar_search import unpack

    from nasc.compiler import catalog
    from nasc.dsl import Genotype, parse_space
    from nasc.runtime.data.images import load_data
    from nasc.runtime.tasks import bind_data

    folder = unpack(args.archive, args.cache)
    data = load_data(str(folder)).subset(args.retrain_subset or args.subset, seed=0)
    space = parse_space(SPACE.read_text(), str(SPACE), catalog=catalog())
    defines = bind_data(space, {"C": args.C, "N": args.N}, data)
    budget = {
        "C": args.C,
        "N": args.N,
        "search images": args.subset,
        "retraining images": len(data.train_labels),
        "test images": len(data.test_labels),
        "search epochs": args.search_epochs,
        "shrink steps": "4, one per epoch at the end",
        "retraining epochs": args.train_epochs,
    }
    earlier = {}
    if args.genotypes_from:  # retrain what an earlier run's searches found, e.g. for longer
        for line in args.genotypes_from.read_text().splitlines():
            record = json.loads(line)
            if record.get("kind") == "IS-DARTS":
                earlier[record["seed"]] = record
        budget["searches"] = f"from {args.genotypes_from.name}"
    log(args.log, {"budget": budget})
    for seed in range(args.seeds):
        if seed in earlier:
            record = earlier[seed]
            genotype = Genotype.from_json({"cells": record["genotype"]})
            names = ("measurements", "infinite", "ties", "search_seconds", "supernet_test_acc")
            seen = {name: record[name] for name in names}
        else:
            genotype, seen = searched(folder, seed, args)
        trained = retrain(space, genotype, defines, data, seed, args)
        kept = edges_kept(genotype)
        log(
            args.log,
            {
                "kind": "IS-DARTS",
                "seed": seed,
                "edges_kept": kept,
                **seen,
                **trained,
                "genotype": genotype.to_json()["cells"],
            },
        )
        listing = listing_genotype(space)
        trained = retrain(space, listing, defines, data, seed, args)
        log(
            args.log,
            {
                "kind": "listing order",
                "seed": seed,
                "edges_kept": edges_kept(listing),
                **trained,
                "genotype": listing.to_json()["cells"],
            },
        )
    for draw in range(args.randoms):
        genotype = random_genotype(space, 1000 + draw)
        trained = retrain(space, genotype, defines, data, draw, args)
        log(
            args.log,
            {
                "kind": "random",
                "seed": draw,
                "edges_kept": edges_kept(genotype),
                **trained,
                "genotype": genotype.to_json()["cells"],
            },
        )
    print(summarise([args.log]))


if __name__ == "__main__":
    main()
