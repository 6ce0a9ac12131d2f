"""The `nasc` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from nasc.dsl import NascError, NascUsageError

EXIT_ERROR = 2


def parse_defines(defines: list[str] | None) -> dict[str, int]:
    """`-D name=value` pairs as a dict of integers.

    Raises:
        NascUsageError: a pair without `=` or with a value that is not an integer.
    """
    values: dict[str, int] = {}
    for item in defines or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise NascUsageError(f"-D {item}: expected NAME=VALUE", hint="e.g. -D C=16 -D N=5")
        try:
            values[name.strip()] = int(value.strip())
        except ValueError:
            raise NascUsageError(
                f"-D {item}: parameter `{name.strip()}` must be an integer, not `{value.strip()}`",
                hint=f"e.g. -D {name.strip()}=16",
            ) from None
    return values


def _add_defines(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-D",
        dest="defines",
        action="append",
        metavar="NAME=VALUE",
        help="override a network parameter, e.g. -D C=8 (repeatable)",
    )


def _version() -> str:
    """`nasc X (torch Y)`, without importing PyTorch to learn its version."""
    from importlib import metadata

    versions = {}
    for package in ("nasc", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    python = sys.version.split()[0]
    return f"nasc {versions['nasc']} (torch {versions['torch']}, Python {python})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasc",
        description="Search neural architectures in spaces written in the .nas language.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="check .nas files; exit 2 on the first error")
    check.add_argument("files", nargs="+", metavar="FILE", help="a .nas file or a built-in space")
    _add_defines(check)

    show = commands.add_parser("show", help="summarise a space: cells, subsets, macro, size")
    show.add_argument("file", metavar="FILE", help="a .nas file or a built-in space")
    _add_defines(show)
    show.add_argument(
        "--arch", help="apply decisions: an NB201 string, a DARTS genotype or a JSON file"
    )
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--code", action="store_true", help="print the generated forward code")
    show.add_argument("--no-measure", action="store_true", help="skip counting weights and FLOPs")
    show.add_argument(
        "--draw",
        metavar="OUT.png|OUT.svg",
        help="draw the cell types and the network into an image",
    )

    export = commands.add_parser(
        "export", help="write a found architecture as .nas, genotype, NB201 string or TorchScript"
    )
    export.add_argument(
        "source", metavar="RUN_DIR|FILE", help="a search run directory, or a .nas file with --arch"
    )
    export.add_argument("--arch", help="the decisions, when SOURCE is a .nas file")
    export.add_argument(
        "--format", required=True, choices=["nas", "genotype", "nb201", "darts", "torchscript"]
    )
    export.add_argument(
        "-o",
        "--output",
        help="the file to write (default: standard output, or arch.pt for TorchScript)",
    )
    _add_defines(export)
    search = commands.add_parser(
        "search",
        help="search a space: IS-DARTS (default) or the DARTS family",
        description="Search a space and export what it finds into a run directory.",
    )
    search.add_argument(
        "space",
        nargs="?",
        metavar="FILE",
        help="a .nas file or a built-in space (not needed with --resume)",
    )
    _add_defines(search)
    search.add_argument(
        "--strategy",
        help="isdarts (default), darts-1st, darts-2nd, single-darts, gdas, drnas, ms-darts",
    )
    search.add_argument("--preset", help="hyperparameter preset (default: the space's `preset`)")
    search.add_argument(
        "--data",
        default="cifar10",
        help="digits (embedded, no download), cifar10, cifar100, or an ImageFolder "
        "path with train/ and test/ (default: cifar10)",
    )
    search.add_argument("--subset", type=int, help="use N training images (and N/4 test images)")
    search.add_argument("--image-size", type=int, help="resize ImageFolder images to N x N")
    search.add_argument("--cache-dir", help="where datasets download (default: ~/.cache/nasc)")
    search.add_argument(
        "--runs-dir", default="runs", help="where run directories go (default: runs)"
    )
    search.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or killed run")
    search.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="run N independent searches (seeds seed, seed+1, ...) and summarise",
    )
    search.add_argument(
        "--nb201-table", metavar="CSV", help="NB201 accuracy table to look the found cell up in"
    )
    search.add_argument(
        "--nb201-columns",
        metavar="KEY=COL,...",
        help="column names of the table: arch=...,cifar10=...,cifar100=...,ImageNet16-120=...",
    )
    search.add_argument(
        "--nats-bench",
        nargs="?",
        const="",
        metavar="PATH",
        help="look the found cell up with the nats_bench package",
    )
    search.add_argument("--quiet", action="store_true", help="plain log lines instead of bars")
    search.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=10.0,
        metavar="M",
        help="inside an epoch, also checkpoint every M minutes, so a long epoch killed midway "
        "resumes where it was (0: at epoch ends only; not under torchrun; default: 10)",
    )
    search.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write the metrics as TensorBoard event files in <run>/tensorboard/",
    )
    search.add_argument(
        "--dist-timeout",
        type=float,
        metavar="SECONDS",
        help="under torchrun: how long a rank waits for a silent one before the job ends, "
        "naming it (default: 600)",
    )
    search.add_argument(
        "--no-memory-check",
        action="store_true",
        help="start even when the memory estimate exceeds the free memory",
    )
    from .config import add_config_flags, add_flags_of

    add_config_flags(search)

    train = commands.add_parser(
        "train",
        help="train a found architecture from scratch with a paper's protocol",
        description="Train a fixed architecture (arch.nas of a search, or a space with --arch).",
    )
    train.add_argument(
        "arch_file",
        nargs="?",
        metavar="ARCH.nas",
        help="a fixed .nas file (not needed with --resume)",
    )
    train.add_argument("--arch", help="decisions to apply when ARCH.nas is a space")
    _add_defines(train)
    train.add_argument(
        "--preset", help="darts-cifar, darts-imagenet or nb201 (default: from the space's preset)"
    )
    train.add_argument(
        "--keep-macro",
        action="store_true",
        help="keep the file's own network even when the preset names another",
    )
    train.add_argument("--data", default="cifar10", help="digits, cifar10, cifar100 or a folder")
    train.add_argument("--subset", type=int, help="use N training images (and N/4 test images)")
    train.add_argument("--image-size", type=int, help="resize ImageFolder images to N x N")
    train.add_argument("--cache-dir", help="where datasets download (default: ~/.cache/nasc)")
    train.add_argument("--runs-dir", default="runs", help="where run directories go")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or killed run")
    train.add_argument("--quiet", action="store_true", help="plain log lines instead of bars")
    train.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write the metrics as TensorBoard event files in <run>/tensorboard/",
    )
    from .trainconfig import TrainConfig

    add_flags_of(train, TrainConfig)

    report = commands.add_parser("report", help="write report.html and figures for a search run")
    report.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help="a finished search run directory, or the seeds-<time> directory of --seeds N",
    )

    evaluate = commands.add_parser("eval", help="test accuracy of a trained network")
    evaluate.add_argument(
        "checkpoint",
        metavar="RUN_DIR|CHECKPOINT|MODEL.pt",
        help="a training run, one of its checkpoints, or an exported model.pt",
    )
    evaluate.add_argument("--data", default="cifar10", help="digits, cifar10, cifar100 or a folder")
    evaluate.add_argument("--image-size", type=int, help="resize ImageFolder images to N x N")
    evaluate.add_argument("--cache-dir", help="where datasets download (default: ~/.cache/nasc)")
    evaluate.add_argument("--batch-size", type=int, default=256)
    evaluate.add_argument("--device", default="auto", help="auto, cpu or cuda")
    return parser


def _load(path: str, defines):
    from nasc.dsl import load_space

    from .optable import language_catalog

    return load_space(path, catalog=language_catalog(), overrides=parse_defines(defines))


def cmd_check(args, console: Console) -> int:
    """Check files without importing PyTorch (the op names come from `optable`)."""
    from nasc.dsl import NasSemanticError, find_space, load_space, read_source

    from .config import PRESETS
    from .optable import language_catalog as catalog

    overrides = parse_defines(args.defines)
    for file in args.files:
        space = load_space(file, catalog=catalog(), overrides=overrides)
        if space.preset is not None and space.preset not in PRESETS:
            error = NasSemanticError(
                f"unknown preset `{space.preset}`",
                span=space.preset_span,
                hint=f"known presets: {', '.join(sorted(PRESETS))}",
            )
            error.source = read_source(find_space(file))
            raise error
        what = (
            "a fixed architecture" if space.is_fixed else f"{space.architectures():,} architectures"
        )
        console.print(f"{file}: ok ({what})")
    return 0


def cmd_show(args, console: Console) -> int:
    from nasc.dsl import parse_arch

    from .describe import describe, render

    space = _load(args.file, args.defines)
    genotype = parse_arch(space, args.arch) if args.arch else None
    if args.code:
        from nasc.compiler import compile_space
        from nasc.dsl import apply_genotype

        from .memory import check_builds

        fixed = apply_genotype(space, genotype) if genotype else space
        check_builds(fixed, parse_defines(args.defines))
        print(compile_space(fixed, parse_defines(args.defines)).code)
        return 0
    if args.draw:
        from nasc.dsl import apply_genotype
        from nasc.dsl.macro import instantiate

        from .optable import language_catalog as catalog
        from .report import draw_space

        drawn = apply_genotype(space, genotype) if genotype else space
        plan = instantiate(drawn, parse_defines(args.defines), catalog())
        draw_space(drawn, plan, Path(args.draw), title=f"{drawn.name} ({args.file})")
        console.print(f"wrote {args.draw}", highlight=False)
        return 0
    facts = describe(space, parse_defines(args.defines), genotype, measure=not args.no_measure)
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        render(facts, console)
    return 0


def cmd_export(args, console: Console) -> int:
    from .exporting import export

    text = export(args.source, args.arch, args.format, args.output, parse_defines(args.defines))
    if text is not None:
        print(text, end="" if text.endswith("\n") else "\n")
    elif args.output or args.format == "torchscript":
        console.print(f"wrote {args.output or Path(args.source) / 'arch.pt'}", highlight=False)
    return 0


def cmd_search(args, console: Console) -> int:
    from .search import run_search

    if not args.space and not args.resume:
        raise NascUsageError(
            "nasc search needs a space (FILE) or --resume RUN_DIR",
            hint="e.g. nasc search spaces/nb201.nas --data digits",
        )
    return run_search(args, console)


def cmd_train(args, console: Console) -> int:
    from .train import run_train

    if not args.arch_file and not args.resume:
        raise NascUsageError(
            "nasc train needs an architecture (ARCH.nas) or --resume RUN_DIR",
            hint="e.g. nasc train runs/nb201-isdarts-.../arch.nas --data cifar10",
        )
    return run_train(args, console)


def cmd_report(args, console: Console) -> int:
    from .report import write_report, write_seeds_report

    run = Path(args.run_dir)
    if (run / "summary.json").is_file():
        console.print(f"wrote {write_seeds_report(run)}", highlight=False)
        return 0
    if not (run / "result.json").is_file():
        raise NascUsageError(
            f"{run} is not a finished search run (it has no result.json)",
            hint="give a run directory that `nasc search` completed, or the seeds-<time> "
            "directory of a `--seeds N` search",
        )
    console.print(f"wrote {write_report(run)}", highlight=False)
    return 0


def cmd_eval(args, console: Console) -> int:
    from .train import run_eval

    return run_eval(args, console)


COMMANDS = {
    "check": cmd_check,
    "show": cmd_show,
    "export": cmd_export,
    "search": cmd_search,
    "train": cmd_train,
    "eval": cmd_eval,
    "report": cmd_report,
}


def main(argv: list[str] | None = None) -> int:
    """Run `nasc`; returns the exit status (0 ok, 2 on an error in the input, 130 on Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(stderr=False, highlight=False)
    errors = Console(stderr=True, highlight=False)
    handler = COMMANDS[args.command]
    try:
        return handler(args, console)
    except NascError as error:
        errors.print(error.render(), markup=False, highlight=False, soft_wrap=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        errors.print("interrupted", markup=False)
        return 130


if __name__ == "__main__":  # python -m nasc.runtime.cli, e.g. in a torchrun line
    sys.exit(main())
