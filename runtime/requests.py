"""What one `nasc search` or `nasc train` is asked to do, as attrs objects: the command line builds
them from argv, and the Python API (`nasc.search`, `nasc.train`) from keyword arguments, so both
reach the same functions. Torch-free, like `config.py`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs


def _dict(value) -> dict:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class _RunRequest:
    """What a search and a training run are both given: the space's text and `-D` values, the
    preset and its explicit fields (`overrides`; None or absent takes the preset's value), the
    data, and where the run goes."""

    source: str | None = None  # the space's text, when it comes from Python rather than a file
    defines: dict[str, int] = attrs.field(factory=dict, converter=_dict)
    preset: str | None = None
    overrides: dict[str, Any] = attrs.field(factory=dict, converter=_dict)
    data: str = "cifar10"
    task: str = "classification"  # a registered task (`nasc.runtime.tasks`)
    subset: int | None = None
    image_size: int | None = None
    cache_dir: str | None = None
    runs_dir: str | None = "runs"  # None: write no run directory
    resume: str | None = None
    quiet: bool = False  # the command line's: plain lines instead of bars (the core reports
    # progress through callbacks, `runs.events`, and never reads it)
    tensorboard: bool = False
    # Refuse a run whose estimated memory exceeds the free memory (`--no-memory-check` turns it
    # off on the command line).
    memory_check: bool = True
    checkpoint_minutes: float | None = 10.0  # also checkpoint inside epochs this often
    # `--ops` modules (names or .py files) that register Python ops; the run records them, so a
    # resume, or a sweep job in another process, imports them again.
    plugins: list[str] = attrs.field(factory=list, converter=lambda v: list(v or []))


@attrs.frozen(kw_only=True)
class SearchRequest(_RunRequest):
    """One search (or `seeds` searches); `overrides` are SearchConfig fields."""

    space: str | None = None  # a path or a built-in name; the name config.json records
    strategy: str | None = None
    seeds: int | None = None
    # An NB201 accuracy table to look the found cell up in: a CSV path (with `nb201_columns`,
    # the command line's `--nb201-columns` text, naming its columns) or an `NB201Table`.
    nb201_table: Any = None
    nb201_columns: str | None = None
    nats_bench: str | None = None  # "" looks in nats_bench's default place
    dist_timeout: float | None = None
    # Called with every metrics record (`event`: epoch, shrink, ...) as the run logs it: per-epoch
    # metrics for a tuner such as Ray Tune's schedulers. Not part of what the run records.
    on_record: Callable[[dict], Any] | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class TrainRequest(_RunRequest):
    """One training run of a fixed architecture; `overrides` are TrainConfig fields."""

    arch_file: str | None = None
    arch: str | None = None
    keep_macro: bool = False


@attrs.frozen(kw_only=True)
class EvalRequest:
    """One `nasc eval`: a training run, one of its checkpoints, or a TorchScript file."""

    checkpoint: str
    data: str = "cifar10"
    task: str = "classification"  # for a TorchScript file; a run directory records its own
    image_size: int | None = None
    cache_dir: str | None = None
    batch_size: int = 256
    device: str = "auto"


def request_from(cls, args, **fields):
    """A request from an argparse namespace: every attribute named like a field, plus `fields`."""
    names = {field.name for field in attrs.fields(cls)}
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return cls(**{**given, **fields})
