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


def _add_data(parser: argparse.ArgumentParser, data_help: str) -> None:
    """The data flags of the commands that train: the set, a subset, a size, the cache."""
    parser.add_argument("--data", default="cifar10", help=data_help)
    parser.add_argument("--subset", type=int, help="use N training images (and N/4 test images)")
    parser.add_argument("--image-size", type=int, help="resize ImageFolder images to N x N")
    parser.add_argument("--cache-dir", help="where datasets download (default: ~/.cache/nasc)")


def _add_checkpoint_minutes(parser: argparse.ArgumentParser, why: str) -> None:
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=10.0,
        metavar="M",
        help=f"inside an epoch, also checkpoint every M minutes, {why}",
    )


def _add_ops(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ops",
        dest="plugins",
        action="append",
        metavar="MODULE",
        help="import a Python module (a name on the path, or a .py file) that registers ops "
        "with nasc.compiler.register_op before the space is read (repeatable)",
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
    _add_ops(check)

    show = commands.add_parser("show", help="summarise a space: cells, subsets, macro, size")
    show.add_argument("file", metavar="FILE", help="a .nas file or a built-in space")
    _add_defines(show)
    _add_ops(show)
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

    test = commands.add_parser(
        "test",
        help="property-test a space's masks and exports with hypothesis; exit 1 on a failure",
    )
    test.add_argument("file", metavar="FILE", help="a .nas file or a built-in space")
    _add_defines(test)
    test.add_argument(
        "--examples",
        type=int,
        default=20,
        metavar="N",
        help="hypothesis examples per property (default: 20)",
    )
    test.add_argument("--seed", type=int, default=0, help="hypothesis' seed (default: 0)")

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
    _add_ops(export)
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
    _add_ops(search)
    search.add_argument(
        "--strategy",
        help="isdarts (default), darts-1st, darts-2nd, single-darts, gdas, drnas, ms-darts",
    )
    search.add_argument("--preset", help="hyperparameter preset (default: the space's `preset`)")
    search.add_argument(
        "--task", default="classification", help="a registered task (default: classification)"
    )
    _add_data(
        search,
        "digits (embedded, no download), cifar10, cifar100, or an ImageFolder "
        "path with train/ and test/ (default: cifar10)",
    )
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
    _add_checkpoint_minutes(
        search,
        "so a long epoch killed midway resumes where it was (0: at epoch ends only; not under "
        "torchrun; default: 10)",
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
        dest="memory_check",
        action="store_false",
        help="start even when the memory estimate exceeds the free memory",
    )
    from nasc.runtime.search.config import add_config_flags, add_flags_of

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
    _add_ops(train)
    train.add_argument(
        "--preset", help="darts-cifar, darts-imagenet or nb201 (default: from the space's preset)"
    )
    train.add_argument(
        "--task", default="classification", help="a registered task (default: classification)"
    )
    train.add_argument(
        "--keep-macro",
        action="store_true",
        help="keep the file's own network even when the preset names another",
    )
    _add_data(train, "digits, cifar10, cifar100 or a folder")
    train.add_argument("--runs-dir", default="runs", help="where run directories go")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or killed run")
    train.add_argument("--quiet", action="store_true", help="plain log lines instead of bars")
    _add_checkpoint_minutes(
        train,
        "so a long epoch killed midway resumes where it was (0: at epoch ends only; default: 10)",
    )
    train.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write the metrics as TensorBoard event files in <run>/tensorboard/",
    )
    train.add_argument(
        "--no-memory-check",
        dest="memory_check",
        action="store_false",
        help="start even when the memory estimate exceeds the free memory",
    )
    from nasc.runtime.train.config import TrainConfig

    add_flags_of(train, TrainConfig)

    profile = commands.add_parser(
        "profile", help="measure every candidate's latency on this device into a table"
    )
    profile.add_argument("space", metavar="FILE", help="a .nas file or a built-in space")
    _add_defines(profile)
    profile.add_argument("--data", help="bind channels, size and classes to this data set")
    profile.add_argument("--cache-dir", help="where datasets download (default: ~/.cache/nasc)")
    profile.add_argument("--device", default="auto", help="auto, cpu or cuda")
    profile.add_argument("--batch-size", type=int, default=1, help="images per call (default 1)")
    profile.add_argument("--min-run-time", type=float, default=0.05, help="seconds per timing")
    profile.add_argument("--repeats", type=int, default=3, help="timings per op; the least counts")
    profile.add_argument(
        "--predictor", type=int, metavar="N", help="also fit a latency MLP on N sampled networks"
    )
    profile.add_argument("--seed", type=int, default=0, help="seed of the sampled networks")
    profile.add_argument("-o", "--output", help="default: RUNS_DIR/profiles/SPACE-DEVICE.json")
    profile.add_argument("--runs-dir", default="runs", help="(default: runs)")

    _add_sweep(commands, add_config_flags)

    report = commands.add_parser("report", help="write report.html and figures for a search run")
    _add_ops(report)
    report.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help="a finished search run directory, the seeds-<time> directory of --seeds N, or a "
        "sweep's directory",
    )

    evaluate = commands.add_parser("eval", help="test accuracy of a trained network")
    _add_ops(evaluate)
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


def _add_sweep(commands, add_config_flags) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="run a grid of spaces x strategies x seeds x settings through submitit",
        description="Submit one search per point of a grid (a SLURM job array, or local "
        "processes), then gather the results into one table and report. Run again, the same "
        "sweep skips finished searches and resumes killed ones.",
    )
    sweep.add_argument("spaces", nargs="+", metavar="FILE", help="a .nas file or built-in space")
    _add_defines(sweep)
    sweep.add_argument(
        "--strategy",
        dest="strategies",
        action="append",
        metavar="NAME[,NAME...]",
        help="strategies to sweep (repeatable or comma-separated; default: isdarts)",
    )
    sweep.add_argument(
        "--seeds", type=int, default=1, metavar="N", help="seeds seed, seed+1, ... (default: 1)"
    )
    sweep.add_argument(
        "--grid",
        action="append",
        metavar="FIELD=V1,V2,...",
        help="a setting to sweep, e.g. --grid lr=0.01,0.025 (repeatable)",
    )
    _add_data(sweep, "digits, cifar10, cifar100 or a folder")
    sweep.add_argument(
        "--runs-dir", default="runs", help="where the sweep's folder goes (default: runs)"
    )
    sweep.add_argument(
        "--sweep-dir",
        metavar="DIR",
        help="the sweep's folder (default: RUNS_DIR/sweep-<hash of the grid>, so the same "
        "command finds it again)",
    )
    sweep.add_argument(
        "--executor",
        choices=["slurm", "local", "debug"],
        help="slurm (job arrays), local (one process per search) or debug (in this process); "
        "default: slurm where sbatch is on the PATH, else local",
    )
    sweep.add_argument("--partition", help="SLURM partition")
    sweep.add_argument("--timeout-min", type=int, help="minutes per job (SLURM requeues after)")
    sweep.add_argument("--gpus-per-node", type=int, help="GPUs per job")
    sweep.add_argument("--cpus-per-task", type=int, help="CPU cores per job")
    sweep.add_argument("--mem-gb", type=int, help="memory per job")
    sweep.add_argument("--max-parallel", type=int, help="SLURM: jobs of the array at once")
    sweep.add_argument(
        "--no-wait", action="store_true", help="submit and return; run again to gather"
    )
    sweep.add_argument(
        "--nb201-table", metavar="CSV", help="NB201 accuracy table to look the found cells up in"
    )
    sweep.add_argument("--nb201-columns", metavar="KEY=COL,...", help="as for nasc search")
    sweep.add_argument(
        "--nats-bench", nargs="?", const="", metavar="PATH", help="as for nasc search"
    )
    _add_checkpoint_minutes(sweep, "so a preempted job resumes near where it was (default: 10)")
    add_config_flags(sweep)


def sweep_request(args):
    """The SweepRequest that `nasc sweep` flags describe."""
    import attrs

    from nasc.runtime.integrations.sweep import SweepRequest, default_executor
    from nasc.runtime.requests import SearchRequest, request_from
    from nasc.runtime.search.config import SearchConfig, config_overrides

    validate = {"--seeds": args.seeds, "--max-parallel": args.max_parallel}
    for flag, value in validate.items():
        if value is not None and value < 1:
            raise NascUsageError(f"{flag} {value}: must be at least 1", hint=f"leave {flag} out")
    kinds = {f.name: f.type for f in attrs.fields(SearchConfig)}
    grid = {}
    for item in args.grid or []:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values.strip():
            raise NascUsageError(
                f"--grid {item}: expected FIELD=V1,V2", hint="e.g. --grid lr=0.01,0.025"
            )
        grid[name] = [_grid_value(name, v.strip(), kinds.get(name)) for v in values.split(",")]
    overrides = config_overrides(args)
    first = overrides.pop("seed", None) or 0
    strategies = [s.strip() for item in args.strategies or ["isdarts"] for s in item.split(",")]
    parameters = {
        "timeout_min": args.timeout_min,
        "slurm_partition": args.partition,
        "gpus_per_node": args.gpus_per_node,
        "cpus_per_task": args.cpus_per_task,
        "mem_gb": args.mem_gb,
        "slurm_array_parallelism": args.max_parallel,
    }
    base = request_from(
        SearchRequest, args, defines=parse_defines(args.defines), overrides=overrides, quiet=True
    )
    base = attrs.evolve(base, seeds=None)
    return SweepRequest(
        spaces=args.spaces,
        strategies=[s for s in strategies if s],
        seeds=range(first, first + args.seeds),
        grid=grid,
        base=base,
        directory=args.sweep_dir,
        executor=args.executor or default_executor(),
        parameters={k: v for k, v in parameters.items() if v is not None},
        wait=not args.no_wait,
    )


def _grid_value(name: str, text: str, kind):
    """A --grid value as its field's type."""
    kind = str(kind)
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise NascUsageError(
            f"--grid {name}: `{text}` is not a{'n int' if kind == 'int' else ' number'}",
            hint=f"e.g. --grid {name}=1,2",
        ) from None
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise NascUsageError(f"--grid {name}: `{text}` is not true or false", hint="")
        return text.lower() == "true"
    return text


def _load(path: str, defines):
    from nasc.dsl import load_space
    from nasc.runtime.catalog import language_catalog

    overrides = parse_defines(defines)
    # Block choices decide per instance: a space's -D values decide how many decisions it has.
    return load_space(path, catalog=language_catalog(), overrides=overrides).for_values(overrides)


def cmd_check(args, console: Console) -> int:
    """Check files without importing PyTorch (the op names come from `optable`)."""
    from nasc.dsl import NasSemanticError, find_space, load_space, read_source
    from nasc.runtime.catalog import language_catalog as catalog
    from nasc.runtime.search.config import PRESETS

    overrides = parse_defines(args.defines)
    for file in args.files:
        space = load_space(file, catalog=catalog(), overrides=overrides).for_values(overrides)
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
    from nasc.runtime.reports.describe import describe, render

    space = _load(args.file, args.defines)
    genotype = parse_arch(space, args.arch) if args.arch else None
    if args.code:
        from nasc.compiler import compile_space
        from nasc.dsl import apply_genotype
        from nasc.runtime.hardware.memory import check_builds

        fixed = apply_genotype(space, genotype) if genotype else space
        check_builds(fixed, parse_defines(args.defines))
        print(compile_space(fixed, parse_defines(args.defines)).code)
        return 0
    if args.draw:
        from nasc.dsl import apply_genotype
        from nasc.dsl.macro import instantiate
        from nasc.runtime.catalog import language_catalog as catalog
        from nasc.runtime.reports.pages import draw_space

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


def cmd_test(args, console: Console) -> int:
    """Run nasc.testing's properties on a space; 1 when one fails, with its counterexample."""
    from nasc.dsl import find_space, read_source

    try:
        from nasc.testing import check_space, render_report
    except ImportError as error:
        raise NascUsageError(
            f"nasc test needs hypothesis ({error})",
            hint="pip install 'nasc[testing]' (or hypothesis)",
        ) from None
    if args.examples < 1:
        raise NascUsageError(f"--examples {args.examples}: must be at least 1")
    space = _load(args.file, args.defines)
    source = read_source(find_space(args.file))
    report = check_space(
        space, parse_defines(args.defines), examples=args.examples, seed=args.seed, source=source
    )
    print(render_report(report))
    return 0 if report.ok else 1


def cmd_export(args, console: Console) -> int:
    from nasc.runtime.exporting import export

    text = export(args.source, args.arch, args.format, args.output, parse_defines(args.defines))
    if text is not None:
        print(text, end="" if text.endswith("\n") else "\n")
    elif args.output or args.format == "torchscript":
        console.print(f"wrote {args.output or Path(args.source) / 'arch.pt'}", highlight=False)
    return 0


def search_request(args):
    """The SearchRequest that `nasc search` flags describe."""
    from nasc.runtime.requests import SearchRequest, request_from
    from nasc.runtime.search.config import config_overrides

    return request_from(
        SearchRequest,
        args,
        defines=parse_defines(args.defines),
        overrides=config_overrides(args),
    )


def cmd_search(args, console: Console) -> int:
    from nasc.runtime.cli.progress import Display
    from nasc.runtime.search.run import run_search

    if not args.space and not args.resume:
        raise NascUsageError(
            "nasc search needs a space (FILE) or --resume RUN_DIR",
            hint="e.g. nasc search spaces/nb201.nas --data digits",
        )
    request = search_request(args)
    display = Display(console, quiet=request.quiet)
    try:
        run_search(request, display)
    finally:
        display.close()
    return 0


def cmd_train(args, console: Console) -> int:
    import attrs

    from nasc.runtime.cli.progress import Display
    from nasc.runtime.requests import TrainRequest, request_from
    from nasc.runtime.train.config import TrainConfig
    from nasc.runtime.train.run import run_train

    if not args.arch_file and not args.resume:
        raise NascUsageError(
            "nasc train needs an architecture (ARCH.nas) or --resume RUN_DIR",
            hint="e.g. nasc train runs/nb201-isdarts-.../arch.nas --data cifar10",
        )
    overrides = {f.name: getattr(args, f.name, None) for f in attrs.fields(TrainConfig)}
    request = request_from(
        TrainRequest,
        args,
        defines=parse_defines(args.defines),
        overrides=overrides,
    )
    display = Display(console, quiet=request.quiet)
    try:
        trained = run_train(request, display)
    finally:
        display.close()
    result = trained.result
    console.print(
        f"test accuracy {result['final_test_acc']:.2f}% (best {result['best_test_acc']:.2f}%), "
        f"{result['parameters']:,} parameters, {result['flops'] / 1e6:.1f} M multiply-adds, "
        f"{result['train_seconds']:.0f} s of training; "
        f"run directory {trained.run_dir} (model.pt, result.json, metrics.jsonl)",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    return 0


def cmd_sweep(args, console: Console) -> int:
    from nasc.runtime.integrations.sweep import run_sweep

    gathered = run_sweep(sweep_request(args), console)
    return 0 if all(row["status"] != "failed" for row in gathered["runs"]) else 1


def cmd_report(args, console: Console) -> int:
    from nasc.runtime.reports.pages import (
        write_report,
        write_seeds_report,
        write_sweep_report,
        write_train_report,
    )

    run = Path(args.run_dir)
    if (run / "results.json").is_file() and (run / "sweep.json").is_file():
        console.print(f"wrote {write_sweep_report(run)}", highlight=False)
        return 0
    if (run / "summary.json").is_file():
        console.print(f"wrote {write_seeds_report(run)}", highlight=False)
        return 0
    if not (run / "result.json").is_file():
        raise NascUsageError(
            f"{run} is not a finished search or training run (it has no result.json)",
            hint="give a run directory that `nasc search` or `nasc train` completed, or the "
            "seeds-<time> directory of a `--seeds N` search",
        )
    trained = (run / "arch.nas").is_file() and not (run / "space.nas").is_file()
    console.print(
        f"wrote {(write_train_report if trained else write_report)(run)}", highlight=False
    )
    return 0


def cmd_profile(args, console: Console) -> int:
    from nasc.runtime.hardware.latency import run_profile

    return run_profile(args, parse_defines(args.defines), console)


def cmd_eval(args, console: Console) -> int:
    from nasc.runtime.requests import EvalRequest, request_from
    from nasc.runtime.train.run import run_eval

    result = run_eval(request_from(EvalRequest, args))
    console.print(
        f"test accuracy {result['test_acc']:.2f}% (loss {result['test_loss']:.4f}) on "
        f"{result['images']} {result['data']} images",
        highlight=False,
    )
    return 0


COMMANDS = {
    "check": cmd_check,
    "show": cmd_show,
    "test": cmd_test,
    "export": cmd_export,
    "search": cmd_search,
    "train": cmd_train,
    "eval": cmd_eval,
    "report": cmd_report,
    "profile": cmd_profile,
    "sweep": cmd_sweep,
}


def main(argv: list[str] | None = None) -> int:
    """Run `nasc`; returns the exit status (0 ok, 2 on an error in the input, 130 on Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(stderr=False, highlight=False)
    errors = Console(stderr=True, highlight=False)
    handler = COMMANDS[args.command]
    try:
        from nasc.runtime.plugins import load_plugins

        load_plugins(getattr(args, "plugins", None))
        return handler(args, console)
    except NascError as error:
        errors.print(error.render(), markup=False, highlight=False, soft_wrap=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        errors.print("interrupted", markup=False)
        return 130


if __name__ == "__main__":  # python -m nasc.runtime.cli.commands
    sys.exit(main())
