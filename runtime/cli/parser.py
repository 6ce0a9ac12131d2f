"""The `nasc` command line's parser: one function per command, and the flags of the search
settings, derived from the shared configuration and the strategy registry."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import attrs

# Commands whose parsers carry the search settings' flags (`--epochs`, every strategy's options):
# building those imports the strategies, and with them PyTorch, which the other commands avoid.
SEARCHING_COMMANDS = ("search", "sweep")


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


def add_flags(parser, fields, skip=()) -> None:
    """A `--field` flag per attrs field (`gdas_tau_max` -> `--gdas-tau-max`), defaulting to None
    (the preset's value); a bool field gets `--field/--no-field`."""
    for field in fields:
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata.get("help", "") + " (default: from the preset)"
        if field.type in (bool, "bool"):
            parser.add_argument(
                flag,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(field.type), str)
            parser.add_argument(flag, dest=field.name, type=kind, default=None, help=help_text)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """The search settings' flags: the shared ones, then a group per strategy family with its
    options, from the registry (`--strategy` is the caller's)."""
    from nasc.runtime.search.config import SharedConfig
    from nasc.runtime.strategies.registry import option_groups

    add_flags(parser, attrs.fields(SharedConfig), skip=("strategy",))
    for title, fields in option_groups():
        add_flags(parser.add_argument_group(title), fields)


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The search settings the flags gave (None: not given), by field name."""
    from nasc.runtime.search.config import SearchConfig

    return {
        field.name: getattr(args, field.name, None)
        for field in attrs.fields(SearchConfig)
        if field.name != "strategy"
    }


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


def build_parser(config_flags: bool = True) -> argparse.ArgumentParser:
    """The parser of `nasc` and its commands.

    Args:
        config_flags: give `search` and `sweep` the search settings' flags (which imports the
            strategies, and PyTorch); `main` leaves them out for the other commands.
    """
    parser = argparse.ArgumentParser(
        prog="nasc",
        description="Search neural architectures in spaces written in the .nas language.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_check(commands)
    _add_show(commands)
    _add_test(commands)
    _add_export(commands)
    search = _add_search(commands, strategy_names() if config_flags else "the search strategy")
    _add_train(commands)
    _add_profile(commands)
    sweep = _add_sweep(commands)
    _add_report(commands)
    _add_eval(commands)
    if config_flags:
        add_config_flags(search)
        add_config_flags(sweep)
    return parser


def strategy_names() -> str:
    """The registered strategies, as `--strategy` lists them: the default first."""
    from nasc.runtime.search.config import SharedConfig
    from nasc.runtime.strategies import STRATEGIES

    default = attrs.fields(SharedConfig).strategy.default
    others = [name for name in STRATEGIES if name != default]
    return ", ".join([f"{default} (default)", *others])


def needs_config_flags(argv: list[str]) -> bool:
    """Whether the command `argv` names (its first word that is no option) searches."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return command in SEARCHING_COMMANDS


def _add_check(commands) -> None:
    """`nasc check FILE...`."""
    check = commands.add_parser("check", help="check .nas files; exit 2 on the first error")
    check.add_argument("files", nargs="+", metavar="FILE", help="a .nas file or a built-in space")
    _add_defines(check)
    _add_ops(check)


def _add_show(commands) -> None:
    """`nasc show FILE`."""
    show = commands.add_parser("show", help="summarise a space: cells, subsets, macro, size")
    show.add_argument("file", metavar="FILE", help="a .nas file or a built-in space")
    _add_defines(show)
    _add_ops(show)
    show.add_argument(
        "--arch", help="apply decisions: an NB201 string, a DARTS genotype or a JSON file"
    )
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--code", action="store_true", help="print the generated forward code")
    show.add_argument(
        "--strategy",
        help="with --code: the supernet as this search strategy compiles and mixes it",
    )
    show.add_argument("--no-measure", action="store_true", help="skip counting weights and FLOPs")
    show.add_argument(
        "--draw",
        metavar="OUT.png|OUT.svg",
        help="draw the cell types and the network into an image",
    )


def _add_test(commands) -> None:
    """`nasc test FILE`."""
    test = commands.add_parser(
        "test",
        help="property-test a space's masks and exports with hypothesis; exit 1 on a failure",
    )
    test.add_argument("file", metavar="FILE", help="a .nas file or a built-in space")
    _add_defines(test)
    _add_ops(test)
    test.add_argument(
        "--examples",
        type=int,
        default=20,
        metavar="N",
        help="hypothesis examples per property (default: 20)",
    )
    test.add_argument("--seed", type=int, default=0, help="hypothesis' seed (default: 0)")


def _add_export(commands) -> None:
    """`nasc export RUN_DIR|FILE`."""
    export = commands.add_parser(
        "export", help="write a found architecture as .nas, genotype, NB201 string or TorchScript"
    )
    export.add_argument(
        "source", metavar="RUN_DIR|FILE", help="a search run directory, or a .nas file with --arch"
    )
    from nasc.runtime.requests import EXPORT_FORMATS

    export.add_argument("--arch", help="the decisions, when SOURCE is a .nas file")
    export.add_argument(
        "--format", required=True, choices=[f for f in EXPORT_FORMATS if f != "module"]
    )
    export.add_argument(
        "-o",
        "--output",
        help="the file to write (default: standard output, or arch.pt for TorchScript)",
    )
    _add_defines(export)
    _add_ops(export)


def _add_search(commands, strategies: str) -> argparse.ArgumentParser:
    """`nasc search FILE`, without the search settings' flags (`add_config_flags`); `strategies`
    is the help of `--strategy`."""
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
        help=strategies,
    )
    search.add_argument("--preset", help="hyperparameter preset (default: the space's `preset`)")
    _add_data(
        search,
        "digits (embedded, no download), cifar10, cifar100, or an ImageFolder "
        "path with train/ and test/ (default: cifar10)",
    )
    search.add_argument(
        "--task", default="classification", help="a registered task (default: classification)"
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
    return search


def _add_train(commands) -> None:
    """`nasc train ARCH.nas`, with a flag per `TrainConfig` field."""
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
        "--keep-macro",
        action="store_true",
        help="keep the file's own network even when the preset names another",
    )
    _add_data(train, "digits, cifar10, cifar100 or a folder")
    train.add_argument(
        "--task", default="classification", help="a registered task (default: classification)"
    )
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

    add_flags(train, attrs.fields(TrainConfig))


def _add_profile(commands) -> None:
    """`nasc profile FILE`."""
    profile = commands.add_parser(
        "profile", help="measure every candidate's latency on this device into a table"
    )
    profile.add_argument("space", metavar="FILE", help="a .nas file or a built-in space")
    _add_defines(profile)
    _add_ops(profile)
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


def _add_sweep(commands) -> argparse.ArgumentParser:
    """`nasc sweep FILE...`, without the search settings' flags (`add_config_flags`)."""
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
    return sweep


def _add_report(commands) -> None:
    """`nasc report RUN_DIR`."""
    report = commands.add_parser("report", help="write report.html and figures for a search run")
    _add_ops(report)
    report.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help="a finished search run directory, the seeds-<time> directory of --seeds N, or a "
        "sweep's directory",
    )


def _add_eval(commands) -> None:
    """`nasc eval RUN_DIR|CHECKPOINT|MODEL.pt`."""
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
