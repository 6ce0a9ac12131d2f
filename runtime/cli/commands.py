"""The `nasc` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from nasc.dsl import NascError, NascUsageError
from nasc.dsl.ast import parse_int
from nasc.runtime.cli.parser import build_parser, config_overrides, needs_config_flags

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
            values[name.strip()] = parse_int(value.strip())  # ASCII digits: not `1_6`, `１６`
        except ValueError:
            raise NascUsageError(
                f"-D {item}: parameter `{name.strip()}` must be an integer, not `{value.strip()}`",
                hint=f"e.g. -D {name.strip()}=16",
            ) from None
    return values


def sweep_request(args):
    """The SweepRequest that `nasc sweep` flags describe."""
    import attrs

    from nasc.runtime.integrations.sweep import SweepRequest, default_executor
    from nasc.runtime.requests import SearchRequest, request_from
    from nasc.runtime.search.config import SearchConfig

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
        SearchRequest, args, defines=parse_defines(args.defines), overrides=overrides
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
    from nasc.dsl import NasSemanticError, find_space, format_count, load_space, read_source
    from nasc.runtime.catalog import language_catalog as catalog
    from nasc.runtime.search.presets import PRESETS

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
            "a fixed architecture"
            if space.is_fixed
            else f"{format_count(space.architectures())} architectures"
        )
        console.print(f"{file}: ok ({what})")
    return 0


def cmd_show(args, console: Console) -> int:
    from nasc.dsl import CircuitSpace, parse_arch
    from nasc.runtime.reports.describe import describe, render

    space = _load(args.file, args.defines)
    if isinstance(space, CircuitSpace):  # a circuit space: docs/circuits.md
        from nasc.runtime.reports.circuits import describe_circuit, render_circuit

        try:
            decisions = json.loads(args.arch) if args.arch else None
        except json.JSONDecodeError:
            raise NascUsageError(
                f"--arch {args.arch}: a circuit's decisions are JSON",
                hint='e.g. --arch \'{"p1": "h@0", "p2": "cnot@0-1"}\'',
            ) from None
        facts = describe_circuit(space, None, decisions)
        if args.json:
            print(json.dumps(facts, indent=2))
        else:
            render_circuit(facts, console)
        return 0
    genotype = parse_arch(space, args.arch) if args.arch else None
    if args.code:
        from nasc.compiler import compile_space
        from nasc.dsl import apply_genotype
        from nasc.runtime.hardware.memory import check_builds

        fixed = apply_genotype(space, genotype) if genotype else space
        check_builds(fixed, parse_defines(args.defines))
        if not args.strategy:
            print(compile_space(fixed, parse_defines(args.defines)).code)
            return 0
        from nasc.runtime.search.config import SearchConfig
        from nasc.runtime.search.loop import search_options
        from nasc.runtime.strategies import make_strategy

        config = SearchConfig(strategy=args.strategy)
        strategy = make_strategy(args.strategy, config)
        net = compile_space(fixed, parse_defines(args.defines), search_options(config))
        strategy.setup(net)  # sets the strategy's mixing mode
        print(net.code)
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
        from nasc.runtime.testing import check_space, render_report
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
    label = result.get("metric_label", "accuracy")
    console.print(
        f"test {label} {result['final_test_acc']:.2f}% (best {result['best_test_acc']:.2f}%), "
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
    if (run / "arch.qasm").is_file():  # a circuit search
        from nasc.runtime.reports.circuits import write_circuit_report

        console.print(f"wrote {write_circuit_report(run)}", highlight=False)
        return 0
    config = run / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("task") == "segmentation":
        from nasc.runtime.reports.segmentation import write_segmentation_report

        console.print(f"wrote {write_segmentation_report(run)}", highlight=False)
        return 0
    trained = (run / "arch.nas").is_file() and not (run / "space.nas").is_file()
    console.print(
        f"wrote {(write_train_report if trained else write_report)(run)}", highlight=False
    )
    return 0


def cmd_profile(args, console: Console) -> int:
    from nasc.runtime.cli.profile import run_profile

    return run_profile(args, parse_defines(args.defines), console)


def cmd_eval(args, console: Console) -> int:
    from nasc.runtime.requests import EvalRequest, request_from
    from nasc.runtime.train.run import run_eval

    result = run_eval(request_from(EvalRequest, args))
    score = result["test_" + result["metric"]]
    console.print(
        f"test {result['metric_label']} {score:.2f}% "
        f"(loss {result['test_loss']:.4f}) on "
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
    """Run `nasc`; returns the exit status (0 ok, 2 on an error in the input, 130 on Ctrl-C,
    143 on SIGTERM)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(config_flags=needs_config_flags(argv))
    args = parser.parse_args(argv)
    console = Console(stderr=False, highlight=False)
    errors = Console(stderr=True, highlight=False)
    handler = COMMANDS[args.command]
    try:
        from nasc.runtime.plugins import load_plugins
        from nasc.runtime.runs.signals import stop_on_signals

        load_plugins(getattr(args, "plugins", None))
        with stop_on_signals():
            return handler(args, console)
    except NascError as error:
        errors.print(error.render(), markup=False, highlight=False, soft_wrap=True)
        return EXIT_ERROR
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM: runs.signals.Stopped
        errors.print(getattr(stop, "message", "interrupted"), markup=False, soft_wrap=True)
        return getattr(stop, "status", 130)


if __name__ == "__main__":  # python -m nasc.runtime.cli.commands
    sys.exit(main())
