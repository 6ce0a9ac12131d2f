"""The four stages of `benchmarks/gpu.py`: the environment and the `gpu` tests; a training step of
the NB201 and DARTS supernets in every execution configuration; the papers' NB201 IS-DARTS
search; `nasc profile` and the latency predictor. Each writes its rows through `Results` as it
measures them and skips, saying why, what would not finish in its share of the budget."""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import attrs
import torch
from cifar_search import unpack
from supernet_step import DARTS_CELLS, NB201_CELLS, SHRINK_STEPS, Bench, shrink_levels

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("environment", "steps", "search", "profile")
# Each stage's share of the budget; a stage's deadline is the sum of its share and those before
# it (over the stages run), so time one leaves is the next one's.
SHARES = {"environment": 0.08, "steps": 0.27, "search": 0.5, "profile": 0.15}


class OutOfBudget(Exception):
    """A search stopped at an epoch's end: the rest would pass the stage's deadline."""

    def __init__(self, projected: float):
        super().__init__(f"the whole search would take about {projected:.0f} s")
        self.projected = projected


class Clock:
    """The run's budget, from its start: the seconds left before a stage's deadline."""

    def __init__(self, budget: float, stages: tuple[str, ...], now=time.monotonic):
        self.now = now
        self.start = now()
        total = sum(SHARES[stage] for stage in stages)
        ends, share = {}, 0.0
        for stage in stages:
            share += SHARES[stage] / total
            ends[stage] = budget * share
        self.ends = ends

    def left(self, stage: str) -> float:
        return self.start + self.ends[stage] - self.now()


class Results:
    """The rows measured so far, each written at once to `results.json` and `results.md` under
    `out` (None: printed only), so a run cut short leaves what it had."""

    def __init__(self, out: Path | None, header: dict):
        self.out, self.header, self.rows = out, header, []
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)

    def add(self, stage: str, name: str, status: str = "ok", **figures) -> None:
        row = {"stage": stage, "name": name, "status": status}
        row.update({key: value for key, value in figures.items() if value is not None})
        self.rows.append(row)
        shown = ", ".join(f"{k} {cell(v)}" for k, v in row.items() if k not in ("stage", "name"))
        print(f"[{stage}] {name}: {shown}", flush=True)
        self.write()

    def skip_for_time(self, stage: str, name: str, needed: float, left: float) -> None:
        reason = f"would not finish: about {needed:.0f} s needed, {max(left, 0):.0f} s left"
        self.add(stage, name, "skipped", reason=reason)

    def write(self) -> None:
        if self.out is None:
            return
        text = json.dumps({**self.header, "rows": self.rows}, indent=1, default=str)
        (self.out / "results.json").write_text(text + "\n")
        (self.out / "results.md").write_text(self.markdown())

    def markdown(self) -> str:
        """A heading, the run's facts, then a table per stage (a column per figure)."""
        lines = ["# benchmarks/gpu.py", ""]
        lines += [f"- {key}: {cell(value)}" for key, value in self.header.items()]
        for stage in STAGES:
            rows = [row for row in self.rows if row["stage"] == stage]
            if not rows:
                continue
            keys = list(dict.fromkeys(k for row in rows for k in row if k != "stage"))
            lines += ["", f"## {stage}", "", "| " + " | ".join(keys) + " |"]
            lines.append("|" + "---|" * len(keys))
            for row in rows:
                lines.append("| " + " | ".join(cell(row.get(key, "")) for key in keys) + " |")
        return "\n".join(lines) + "\n"


def cell(value) -> str:
    """A figure as a table shows it: floats to four significant digits, mappings compact."""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|")

# --- stage 1: the environment and the `gpu`-marked tests -----------------------------------------


def environment_stage(results: Results, device: torch.device) -> None:
    """The versions, the device and its memory."""
    from nasc.runtime.runs.rundir import environment

    facts = environment(device)
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        facts["memory_gib"] = properties.total_memory / 2**30
        facts["capability"] = f"{properties.major}.{properties.minor}"
        facts["multiprocessors"] = properties.multi_processor_count
        facts["cudnn"] = torch.backends.cudnn.version()
    facts["cpus"] = os.cpu_count()
    results.add("environment", "environment", **facts)


def gpu_test_files() -> list[str]:
    """The test files that hold `gpu`-marked tests (collecting only these keeps the run short and
    independent of the other tests' optional dependencies)."""
    return sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("test_*.py")
        if "mark.gpu" in path.read_text()
    )


def gpu_tests_stage(results: Results, seconds: float, out: Path | None) -> None:
    """`pytest -m gpu` over the files that hold such tests, its output in `pytest.txt`."""
    files = gpu_test_files()
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command + files,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as stopped:
        text = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else stopped.stdout
        results.add("environment", "pytest -m gpu", "cut", seconds=seconds, files=len(files))
        if out is not None:
            (out / "pytest.txt").write_text(text or "")
        return
    if out is not None:
        (out / "pytest.txt").write_text(done.stdout + done.stderr)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    results.add(
        "environment",
        "pytest -m gpu",
        "ok" if done.returncode in (0, 5) else "failed",  # 5: none collected, none failed
        summary=lines[-1] if lines else "",
        files=len(files),
        seconds=time.perf_counter() - started,
    )


# --- stage 2: one training step in every configuration -------------------------------------------

STEP_SIZES = {"nb201": {"C": 16, "N": 5}, "darts": {"C": 16, "layers": 8}}
TOY_SIZES = {"nb201": {"C": 2, "N": 1}, "darts": {"C": 2, "layers": 3}}
FINALS = {"nb201": NB201_CELLS["A"], "darts": DARTS_CELLS["V2"]}
NETWORKS = ("all live", "masked", "standalone")
# Execution: how the forward runs (`CompileOptions.cuda_compile`), as `--cuda-compile` names it.
EXECUTIONS = {"eager": "none", "cuda graphs": "reduce-overhead", "compile": "default"}
GUESS_SECONDS = {"eager": 10.0, "cuda graphs": 120.0, "compile": 120.0}  # before any was timed


@attrs.frozen
class StepVariant:
    """One configuration of stage 2."""

    space: str
    network: str
    precision: str  # fp32 or bf16 (autocast)
    layout: str  # channels-last or NCHW
    execution: str  # a key of EXECUTIONS

    @property
    def name(self) -> str:
        return f"{self.space} {self.network}, {self.precision}, {self.layout}, {self.execution}"


def step_variants() -> list[StepVariant]:
    """Every configuration, cheapest and most telling first: eager before the compiled ones,
    channels-last before NCHW, NB201 before DARTS; the masked supernet before its standalone
    network (their ratio is written when the second is measured)."""
    return [
        StepVariant(space, network, precision, layout, execution)
        for execution, layout, space, precision, network in itertools.product(
            EXECUTIONS, ("channels-last", "NCHW"), FINALS, ("fp32", "bf16"), NETWORKS
        )
    ]


def timed_steps(bench: Bench, step, count: int) -> list[float]:
    """Milliseconds of `count` steps: CUDA events around each (the launch gaps count), or the
    clock around each synchronised step on the CPU."""
    if bench.device.type == "cuda":
        pairs = [(torch.cuda.Event(True), torch.cuda.Event(True)) for _ in range(count)]
        for start, end in pairs:
            start.record()
            step()
            end.record()
        torch.cuda.synchronize()
        return [start.elapsed_time(end) for start, end in pairs]
    times = []
    for _ in range(count):
        started = time.perf_counter()
        step()
        times.append(1e3 * (time.perf_counter() - started))
    return times


def first_step_seconds(bench: Bench, step) -> float:
    started = time.perf_counter()
    step()
    bench.sync()
    return time.perf_counter() - started


def measure_variant(bench: Bench, variant: StepVariant, warmup: int, repeats: int) -> dict:
    """Build the variant's network afresh, time its steps; for a compiled one, the time its
    first step took beyond a steady one (compiling) and, for the all-live supernet, the first
    step after a shrink step (compiling the next mask version)."""
    cuda = bench.device.type == "cuda"
    mode = EXECUTIONS[variant.execution]
    bench.options = attrs.evolve(
        bench.options,
        channels_last=variant.layout == "channels-last",
        cuda_compile=None if mode == "none" else mode,
    )
    if cuda:
        torch._dynamo.reset()
        torch.cuda.reset_peak_memory_stats()
    level = {"all live": 0, "masked": SHRINK_STEPS[variant.space], "standalone": None}
    net = bench.network(level[variant.network])
    if cuda and net.channels_last:
        net = net.to(memory_format=torch.channels_last)
    step = bench.train_step(net, amp=variant.precision == "bf16")
    first = first_step_seconds(bench, step)
    for _ in range(warmup - 1):
        step()
    times = timed_steps(bench, step, repeats)
    median = statistics.median(times)
    found = {
        "step_ms": median,
        "min_ms": min(times),
        "max_ms": max(times),
        "steps": repeats,
        "parameters": net.num_parameters(),
    }
    if mode != "none":
        found["compile_s"] = first - median / 1e3
        if variant.network == "all live":
            levels = shrink_levels(net.arch, bench.final, SHRINK_STEPS[variant.space])
            net.arch.restrict(levels[1])
            found["recompile_s"] = first_step_seconds(bench, step) - median / 1e3
    if cuda:
        found["cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return found


def steps_stage(results: Results, clock, device: torch.device, dry_run: bool) -> None:
    """Stage 2: every `step_variants` configuration that fits in the stage's time."""
    cuda = device.type == "cuda"
    warmup, repeats = (1, 2) if dry_run else (3, 20)
    benches: dict[str, Bench] = {}
    spent: dict[tuple[str, str], float] = {}  # the last wall time by (space, execution)
    measured: dict[StepVariant, float] = {}
    for variant in step_variants():
        if variant.execution != "eager" and not cuda:
            results.add("steps", variant.name, "skipped", reason="compiled forwards run on CUDA")
            continue
        key = (variant.space, variant.execution)
        needed = spent.get(key, GUESS_SECONDS[variant.execution])
        if clock.left("steps") < needed:
            results.skip_for_time("steps", variant.name, needed, clock.left("steps"))
            continue
        if variant.space not in benches:
            benches[variant.space] = Bench(
                {
                    "device": device.type,
                    "threads": torch.get_num_threads(),
                    "batch": 4 if dry_run else 64,
                    "size": 8 if dry_run else 32,
                    "warmup": warmup,
                    "repeats": repeats,
                    "budget": 0,
                    "space": variant.space,
                    "final": FINALS[variant.space],
                    "overrides": (TOY_SIZES if dry_run else STEP_SIZES)[variant.space],
                }
            )
        started = time.perf_counter()
        try:
            found = measure_variant(benches[variant.space], variant, warmup, repeats)
        except Exception as error:  # noqa: BLE001 - a failing configuration is a figure too
            results.add("steps", variant.name, "failed", error=f"{type(error).__name__}: {error}")
            continue
        finally:
            spent[key] = time.perf_counter() - started
        results.add("steps", variant.name, **found)
        measured[variant] = found["step_ms"]
        masked = attrs.evolve(variant, network="masked")
        if variant.network == "standalone" and masked in measured:
            ratio = measured[masked] / found["step_ms"]
            name = masked.name.replace("masked", "masked / standalone")
            results.add("steps", name, ratio=ratio, target=1.1, meets=ratio <= 1.1)


def fastest_search_settings(results: Results) -> tuple[str, dict]:
    """The search settings of the fastest all-live NB201 step stage 2 measured, and its name;
    fp32 channels-last eager (the CPU's settings) when none was."""
    rows = [
        row
        for row in results.rows
        if row["stage"] == "steps"
        and row["status"] == "ok"
        and row["name"].startswith("nb201 all live,")
    ]
    if not rows:
        return "fp32, channels-last, eager (nothing measured)", search_settings("eager")
    best = min(rows, key=lambda row: row["step_ms"])
    _, precision, layout, execution = (part.strip() for part in best["name"].split(","))
    words = [w for w in (precision, layout, execution) if w not in ("fp32", "channels-last")]
    return best["name"], search_settings(",".join(words) or "eager")


def search_settings(text: str) -> dict:
    """`nasc search` settings from `--search-config`: `eager` (fp32, channels-last), or words
    among bf16, nchw, cuda graphs, compile, comma-separated."""
    words = {word.strip().lower() for word in text.split(",") if word.strip()}
    known = {"eager", "bf16", "nchw", "cuda graphs", "compile"}
    if words - known or {"cuda graphs", "compile"} <= words:
        raise ValueError(
            f"--search-config {text}: give auto, eager, or some of bf16, nchw and one of "
            "cuda graphs / compile, comma-separated"
        )
    execution = next((w for w in ("cuda graphs", "compile") if w in words), "eager")
    return {
        "amp": "bf16" in words,
        "channels_last": "nchw" not in words,
        "cuda_compile": EXECUTIONS[execution],
    }


# --- stage 3: the papers' NB201 IS-DARTS search --------------------------------------------------

# The papers' protocol (IS-DARTS on NB201): the nb201 preset's schedule, written out.
PROTOCOL = dict(epochs=30, batch_size=64, shrink_steps=4, shrink_interval=2)
TOY_PROTOCOL = dict(
    epochs=2, batch_size=16, shrink_steps=1, shrink_interval=1, measure_on="train-sample",
    measure_samples=16,
)  # fmt: skip
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def synthetic_table(path: Path) -> Path:
    """A stand-in NB201 accuracy table for the dry run (no `../shared` in CI): every cell, its
    figures made up from its ops (3x3 convolutions count most); the look-up path runs, the
    figures mean nothing."""
    worth = {"none": 0.0, "skip_connect": 1.0, "avg_pool_3x3": 1.0}
    worth.update(nor_conv_1x1=2.0, nor_conv_3x3=3.0)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs",
             "ImageNetTestAccuracy200Epochs", "ArchitectureString"]
        )  # fmt: skip
        for ops in itertools.product(NB201_OPS, repeat=6):
            a, b, c, d, e, f = ops
            arch = f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"
            score = sum(worth[op] for op in ops)
            writer.writerow([50 + 2.5 * score, 20 + 3 * score, 15 + 1.5 * score, arch])
    return path


class EpochWatch:
    """Writes a row per epoch as the search logs it, and stops the search (`OutOfBudget`) when
    the rest of it, at the pace of its latest epoch, would pass the stage's deadline."""

    def __init__(self, results: Results, clock, seed: int, epochs: int):
        self.results, self.clock, self.seed, self.epochs = results, clock, seed, epochs
        self.last = time.perf_counter()
        self.walls: list[tuple[int, float]] = []  # (live candidates, seconds) per epoch

    def __call__(self, record: dict) -> None:
        if record.get("event") != "epoch":
            return
        now = time.perf_counter()
        wall, self.last = now - self.last, now
        self.walls.append((record["live"], wall))
        epoch = record["epoch"]
        self.results.add(
            "search",
            f"seed {self.seed} epoch {epoch}",
            live=record["live"],
            epoch_s=wall,
            train_s=record["seconds"],
            images_per_s=record["images_per_s"],
            test_acc=record.get("test_acc"),
        )
        rest = (self.epochs - epoch) * wall
        # The first epoch holds one-time work (compiling, cuDNN's choices): decide from the second.
        if epoch >= 2 and rest > self.clock.left("search"):
            raise OutOfBudget(sum(w for _, w in self.walls) + rest)

    def per_level(self) -> dict[str, float]:
        """Mean epoch seconds by the number of live candidates (each shrink level)."""
        levels: dict[int, list[float]] = {}
        for live, wall in self.walls:
            levels.setdefault(live, []).append(wall)
        return {f"{live} live": statistics.mean(w) for live, w in sorted(levels.items())}


def search_stage(results: Results, clock, device: torch.device, args) -> None:
    """Stage 3: as many seeds of the papers' search as fit, through `nasc.search`."""
    import nasc
    from nasc.runtime.data.images import load_data

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        data, table = "digits", synthetic_table(work / "synthetic_nb201.csv")
        defines, protocol, subset = {"C": 2, "N": 1}, TOY_PROTOCOL, 64
    else:
        folder = Path(args.data_dir)
        data = str(unpack(folder / "cifar10-jpg.tar.gz", work / "data"))
        table = folder / "nb201_accuracies.csv"
        defines, protocol, subset = {"C": 16, "N": 5}, PROTOCOL, None
    started = time.perf_counter()
    loaded = load_data(data, work / "cache")  # decoded once; the searches read the cache
    results.add(
        "search",
        "data",
        source=data,
        table="made up (dry run)" if args.dry_run else str(table),
        train_images=len(loaded.train_labels),
        test_images=len(loaded.test_labels),
        decode_s=time.perf_counter() - started,
    )
    if args.search_config == "auto":
        chosen, settings = fastest_search_settings(results)
    else:
        chosen, settings = args.search_config, search_settings(args.search_config)
    results.add("search", "settings", chosen=chosen, **settings)
    last = None  # the last seed's seconds
    for seed in range(args.seeds):
        left = clock.left("search")
        if last is not None and left < last:
            results.skip_for_time("search", f"seed {seed}", last, left)
            break
        watch = EpochWatch(results, clock, seed, protocol["epochs"])
        started = time.perf_counter()
        try:
            found = nasc.search(
                "nb201", data=data, strategy="isdarts", preset="nb201", defines=defines,
                subset=subset, cache_dir=str(work / "cache"), runs_dir=str(work / "runs"),
                nb201_table=str(table), checkpoint_minutes=None, device=device.type, seed=seed,
                on_record=watch, **protocol, **settings,
            )  # fmt: skip
        except OutOfBudget as stop:
            results.add(
                "search",
                f"seed {seed}",
                "cut",
                epochs_done=len(watch.walls),
                projected_total_s=stop.projected,
                target_s=300,
                **watch.per_level(),
            )
            break
        last = time.perf_counter() - started
        result = found.result
        results.add(
            "search",
            f"seed {seed}",
            total_s=last,
            target_s=300,
            meets=last <= 300,
            cell=result.get("nb201"),
            accuracy=result.get("nb201_accuracy"),
            rank=result.get("nb201_rank"),
            supernet_test_acc=result.get("final_test_acc"),
            **watch.per_level(),
        )


# --- stage 4: `nasc profile` and the latency predictor -------------------------------------------


def profile_stage(results: Results, clock, device: torch.device, args) -> None:
    """Stage 4: `nasc profile` of the NB201 supernet's candidates, then the latency predictor
    on as many sampled networks as the stage's time allows."""
    from nasc.compiler import CompileOptions, catalog, compile_space, export_network
    from nasc.dsl import load_space
    from nasc.runtime.hardware.latency import sample_genotype, time_call, train_predictor

    defines = {"C": 2, "N": 1, "size": 8} if args.dry_run else {"C": 16, "N": 5}
    batch, min_run_time, repeats = (2, 0.001, 1) if args.dry_run else (64, 0.05, 5)
    out = Path(args.out) if args.out else Path(args.work)
    command = [sys.executable, "-m", "nasc", "profile", "nb201", "--device", device.type]
    command += [f"-D{name}={value}" for name, value in defines.items()]
    command += ["--batch-size", str(batch), "--min-run-time", str(min_run_time)]
    command += ["--repeats", str(repeats), "-o", str(out / "profile.json")]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=clock.left("profile")
        )
    except subprocess.TimeoutExpired:
        results.add("profile", "nasc profile", "cut", seconds=time.perf_counter() - started)
        return
    results.add(
        "profile",
        "nasc profile",
        "ok" if done.returncode == 0 else "failed",
        seconds=time.perf_counter() - started,
        error=(done.stderr.strip().splitlines() or [""])[-1] if done.returncode else None,
    )
    space = load_space("nb201", catalog=catalog(), overrides=defines).for_values(defines)
    # One network timed as the predictor times each, to size the sample to the time left.
    started = time.perf_counter()
    supernet = compile_space(space, defines, CompileOptions(search=True))
    net = export_network(space, sample_genotype(supernet, random.Random(0)), defines)
    plan = supernet.plan
    image = torch.randn(batch, plan.channels, plan.size, plan.size, device=device)
    with torch.no_grad():
        time_call(net.to(device).eval(), image, min_run_time=min_run_time, repeats=repeats)
    each = time.perf_counter() - started
    fitting = 15.0  # seconds to fit the MLP, and a margin
    samples = min(args.predictor_samples, int((clock.left("profile") - fitting) / (1.2 * each)))
    if samples < 10:
        results.skip_for_time("profile", "latency predictor", 10 * 1.2 * each + fitting,
                              clock.left("profile"))  # fmt: skip
        return
    found = train_predictor(
        space, defines, device, samples, batch_size=batch, min_run_time=min_run_time,
        repeats=repeats,
    )  # fmt: skip
    error = found["relative_error"]
    results.add(
        "profile",
        "latency predictor",
        samples=found["samples"],
        held_out=found["held_out"],
        relative_error=error,
        train_relative_error=found["train_relative_error"],
        target=0.10,
        meets=error < 0.10,
        latency_ms=found["latency_ms"],
        seconds=found["seconds"],
    )

