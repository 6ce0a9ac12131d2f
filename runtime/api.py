"""nasc as a library: load a space, compile it, search it, train and export what a search found.

`import nasc` exposes these (see docs/python.md). The command line is a layer over the same
functions: it builds a `SearchRequest` or `TrainRequest` from argv where these build one from
keyword arguments. Loading and checking a space stays torch-free (the op names come from
`optable`); PyTorch is imported when something is compiled, searched or trained.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from nasc.dsl import Genotype, NascUsageError, SpaceIR, find_space, format_space, read_source
from nasc.dsl import parse_space as _parse_space
from nasc.runtime.catalog import language_catalog
from nasc.runtime.requests import (  # noqa: F401 - EXPORT_FORMATS: what `export` takes
    EXPORT_FORMATS,
    EvalRequest,
    SearchRequest,
    TrainRequest,
)
from nasc.runtime.runs.events import RunEvents
from nasc.runtime.search.result import SearchResult
from nasc.runtime.train.result import TrainResult


@attrs.frozen(kw_only=True)
class Space:
    """A checked space: its IR, its text, where it came from and the parameter values given.

    `defines` are the `-D` values (`nasc.load_space("nb201", C=8)`); searching, compiling and
    training use them unless told otherwise.
    """

    ir: SpaceIR
    source: str
    origin: str
    defines: dict[str, int] = attrs.field(factory=dict, converter=dict)

    @property
    def name(self) -> str:
        return self.ir.name

    @property
    def is_fixed(self) -> bool:
        """True for an architecture: a space with no choices left."""
        return self.ir.is_fixed

    def architectures(self) -> int:
        """How many architectures the space holds (`genotypes` lists them, `sample` draws)."""
        return self.ir.architectures()

    def genotypes(self) -> Iterator[Genotype]:
        """Every architecture of the space, once each, as a `Genotype` (`with_arch` makes it a
        fixed space), in a fixed order: lazily, so the first of DARTS' ~10^18 comes at once.
        A fixed space has one, which decides nothing."""
        cells = [cell for cell in self.ir.used_cells() if cell.choices]
        subsets = [(cell.name, subset) for cell in cells for subset in cell.subsets]
        picks = [list(itertools.combinations(subset.members, subset.k)) for _, subset in subsets]
        for chosen in itertools.product(*picks):
            kept = set()
            for (name, _), members in zip(subsets, chosen):
                kept.update((name, edge, op) for edge, op in members)
            yield _genotype(cells, kept)

    def sample(self, count: int, *, seed: int = 0) -> list[Genotype]:
        """`count` architectures drawn at random, each uniformly from the whole space and
        independently of the others (one may come twice); the same seed draws the same.

        Raises:
            NascUsageError: a count that is not a whole number of zero or more.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise NascUsageError(
                f"sample: count must be a whole number of zero or more, not {count!r}",
                hint="e.g. space.sample(10, seed=0)",
            )
        draw = random.Random(seed)
        cells = [cell for cell in self.ir.used_cells() if cell.choices]
        drawn = []
        for _ in range(count):
            kept = set()
            for cell in cells:
                for subset in cell.subsets:
                    chosen = draw.sample(subset.members, subset.k)
                    kept.update((cell.name, edge, op) for edge, op in chosen)
            drawn.append(_genotype(cells, kept))
        return drawn

    def compile(self, search: bool = True, **options: Any):
        """The supernet (an `nn.Module`, masks and all); `options` are `CompileOptions` fields."""
        from nasc.compiler import CompileOptions, compile_space

        return compile_space(self.ir, self.defines, CompileOptions(search=search, **options))

    def with_arch(self, arch: str | Genotype) -> Space:
        """The fixed space that `arch` decides (an NB201 string, a DARTS genotype name or text,
        a genotype JSON file, or a `Genotype`)."""
        from nasc.dsl import apply_genotype, parse_arch

        genotype = arch if isinstance(arch, Genotype) else parse_arch(self.ir, arch)
        fixed = apply_genotype(self.ir, genotype)
        return Space(ir=fixed, source=format_space(fixed), origin=self.origin, defines=self.defines)


def _genotype(cells, kept: set[tuple[str, str, str]]) -> Genotype:
    """The genotype that keeps the (cell, edge, op) triples `kept` of these cells, each edge's
    ops in the order of its candidates."""
    return Genotype(
        {
            cell.name: {
                edge.key: [op for op in edge.candidates if (cell.name, edge.key, op) in kept]
                for edge in cell.choices
            }
            for cell in cells
        }
    )


def _looks_like_text(value: str) -> bool:
    return "\n" in value or "{" in value


def load_space(path_or_text: str | Path | Space, **params: int) -> Space:
    """Read and check a space: a `.nas` path, a built-in name (`nb201`, `darts`, ...) or `.nas`
    text. `params` override the network's parameters, as `-D` does (`C=8, N=1`).

    Raises:
        NascError: a syntax or semantic error, located in the source; an unknown parameter.
    """
    if isinstance(path_or_text, Space):
        return load_space(path_or_text.source, **{**path_or_text.defines, **params})
    if not isinstance(path_or_text, (str, Path)):
        raise NascUsageError(
            f"load_space takes a path, a built-in name, .nas text or a Space, not "
            f"{type(path_or_text).__name__}",
            hint='e.g. nasc.load_space("nb201") or nasc.load_space("my_space.nas")',
        )
    if isinstance(path_or_text, str) and not path_or_text.strip():
        raise NascUsageError(
            "the space's path is empty",
            hint='give a .nas path, a built-in name (e.g. nasc.load_space("nb201")) or .nas text',
        )
    for name, value in params.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise NascUsageError(
                f"parameter `{name}` must be an integer, not {value!r}", hint=f"e.g. {name}=16"
            )
    if isinstance(path_or_text, str) and _looks_like_text(path_or_text):
        source, origin = path_or_text, "<string>"
    else:
        source, origin = read_source(find_space(path_or_text)), str(path_or_text)
    ir = _parse_space(source, origin, catalog=language_catalog(), overrides=params)
    return Space(ir=ir, source=source, origin=origin, defines=params)


def _as_space(space) -> Space:
    if isinstance(space, Space):
        return space
    if isinstance(space, SpaceIR):
        return Space(ir=space, source=format_space(space), origin=space.name)
    return load_space(space)


def _space_fields(space: Space | None, defines: dict | None, key: str) -> dict:
    """A request's space fields: where the space came from (under `key`), its text, and its
    `-D` values with `defines` on top."""
    if space is None:
        return {key: None, "source": None, "defines": dict(defines or {})}
    return {
        key: space.origin,
        "source": space.source,
        "defines": {**space.defines, **(defines or {})},
    }


def search(
    space: Space | SpaceIR | str | Path | None = None,
    *,
    data: str = "cifar10",
    task: str = "classification",
    strategy: str | None = None,
    preset: str | None = None,
    defines: dict[str, int] | None = None,
    subset: int | None = None,
    image_size: int | None = None,
    cache_dir: str | None = None,
    runs_dir: str | Path | None = "runs",
    resume: str | Path | None = None,
    nb201_table=None,
    nats_bench: str | None = None,
    checkpoint_minutes: float | None = 10.0,
    tensorboard: bool = False,
    memory_check: bool = True,
    ops: list[str] | None = None,
    on_record=None,
    events: RunEvents | None = None,
    **preset_fields: Any,
) -> SearchResult:
    """Search a space, as `nasc search` does, and return what it found.

    Args:
        space: a `Space` from `load_space`, a path, a built-in name or `.nas` text (None with
            `resume`).
        data: `digits` (embedded), `cifar10`, `cifar100` or an ImageFolder path (what the
            task loads).
        task: a registered task (`nasc.runtime.tasks`): how data loads, the loss, the metrics.
        strategy: `isdarts` (default), `darts-1st`, `darts-2nd`, `single-darts`, ...
        preset: the hyperparameter preset (default: the space's `preset`).
        defines: parameter values on top of the space's own (`{"C": 4}`).
        runs_dir: where the run directory goes; None writes none (the result is in memory).
        nb201_table: look the found cell up in an NB201 accuracy table: a CSV path, or a
            `nasc.runtime.reports.nb201.NB201Table` (loaded with its own column names).
        memory_check: refuse a search whose estimated memory exceeds the free memory.
        ops: `--ops` plugins (module names or .py files registering Python ops), recorded in
            the run so a resume imports them again.
        on_record: called with each metrics record as the run logs it (`record["event"]` is
            `epoch`, with `train_loss`, `test_acc`, ..., or `shrink`, ...): per-epoch metrics
            for a tuner or a plot.
        events: progress callbacks (a `nasc.runtime.runs.events.RunEvents`); None logs the
            run's messages on the `nasc` logger.
        preset_fields: fields of `SearchConfig` (`epochs=3, seed=1, batch_size=16, ...`).

    Returns:
        The result, the same on every rank under torchrun.

    Raises:
        NascError: bad input, refused before the first epoch, with a hint.
    """
    from nasc.runtime.search.run import run_search

    if space is None and resume is None:
        raise NascUsageError("nasc.search needs a space or resume=RUN_DIR", hint="see docs")
    space = None if space is None else _as_space(space)
    request = SearchRequest(
        **_space_fields(space, defines, key="space"),
        strategy=strategy,
        preset=preset,
        overrides=preset_fields,
        data=data,
        task=task,
        subset=subset,
        image_size=image_size,
        cache_dir=cache_dir,
        runs_dir=None if runs_dir is None else str(runs_dir),
        resume=None if resume is None else str(resume),
        nb201_table=nb201_table,
        nats_bench=nats_bench,
        checkpoint_minutes=checkpoint_minutes,
        tensorboard=tensorboard,
        memory_check=memory_check,
        plugins=ops,
        on_record=on_record,
    )
    return run_search(request, events)[0]


def train(
    arch: Space | SearchResult | str | Path | None = None,
    *,
    data: str = "cifar10",
    task: str = "classification",
    preset: str | None = None,
    decisions: str | Genotype | None = None,
    defines: dict[str, int] | None = None,
    keep_macro: bool = False,
    subset: int | None = None,
    image_size: int | None = None,
    cache_dir: str | None = None,
    runs_dir: str | Path | None = "runs",
    resume: str | Path | None = None,
    tensorboard: bool = False,
    memory_check: bool = True,
    checkpoint_minutes: float | None = 10.0,
    ops: list[str] | None = None,
    events: RunEvents | None = None,
    **fields: Any,
) -> TrainResult:
    """Train a fixed architecture from scratch, as `nasc train` does.

    Args:
        arch: a `SearchResult` (its arch.nas), a fixed `Space`, a `.nas` path or text; a space
            with choices needs `decisions` (what `--arch` takes).
        preset: `darts-cifar`, `darts-imagenet` or `nb201` (default: from the space's preset).
        runs_dir: where the run directory goes; None writes none (no model.pt either).
        ops: `--ops` plugins, as for `search` (those of the search that wrote an arch.nas are
            imported by themselves).
        memory_check, events: as for `search`.
        fields: fields of `TrainConfig` (`epochs=1, batch_size=32, cutout=0, ...`).

    Raises:
        NascError: bad input, refused before the first epoch, with a hint.
    """
    from nasc.runtime.train.run import run_train

    if isinstance(arch, SearchResult):
        arch = arch.arch_path if arch.run_dir is not None else arch.arch
    space = None if arch is None else _as_space(arch)
    if space is not None and decisions is not None:
        space = space.with_arch(decisions)
    request = TrainRequest(
        **_space_fields(space, defines, key="arch_file"),
        preset=preset,
        keep_macro=keep_macro,
        overrides=fields,
        data=data,
        task=task,
        subset=subset,
        image_size=image_size,
        cache_dir=cache_dir,
        runs_dir=None if runs_dir is None else str(runs_dir),
        resume=None if resume is None else str(resume),
        tensorboard=tensorboard,
        memory_check=memory_check,
        checkpoint_minutes=checkpoint_minutes,
        plugins=ops,
    )
    return run_train(request, events)


def evaluate(
    model: TrainResult | str | Path,
    *,
    data: str = "cifar10",
    image_size: int | None = None,
    cache_dir: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
    task: str = "classification",
) -> dict:
    """The test accuracy of a trained network, as `nasc eval` measures it.

    Args:
        model: a `TrainResult`, a training run directory, one of its checkpoints, or a
            TorchScript file.

        task: the task of a TorchScript file (a run directory records its own).

    Returns:
        `test_acc` (percent), `test_loss`, `images` (how many test images) and `data` (their
        name).
    """
    from nasc.runtime.train.run import run_eval

    target = model.run_dir if isinstance(model, TrainResult) else model
    request = EvalRequest(
        checkpoint=str(target),
        data=data,
        image_size=image_size,
        cache_dir=cache_dir,
        batch_size=batch_size,
        device=device,
        task=task,
    )
    return run_eval(request)


def export(
    source: SearchResult | str | Path,
    format: str,
    *,
    arch: str | None = None,
    output: str | Path | None = None,
    **params: int,
):
    """The found architecture in `format`, as `nasc export` writes it.

    Args:
        source: a `SearchResult`, a search run directory, or a `.nas` file with `arch`.
        format: `nas`, `genotype`, `nb201`, `darts`, `torchscript` (a file), or `module` (the
            standalone `nn.Module`, freshly initialised).
        output: write there instead of returning text.
        params: parameter values, as `-D` gives them.

    Returns:
        The text; the `nn.Module` for `module`; the written path for `torchscript` or `output`.
    """
    from nasc.runtime.exporting import export_as

    where = source.require_run_dir() if isinstance(source, SearchResult) else source
    return export_as(where, format, arch=arch, output=output, params=params)
