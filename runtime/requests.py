"""What one `nasc search` or `nasc train` is asked to do, as attrs objects: the command line builds
them from argv, and the Python API (`nasc.search`, `nasc.train`) from keyword arguments, so both
reach the same functions. Torch-free, like `config.py`."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from nasc.dsl import NascUsageError


def _dict(value) -> dict:
    return dict(value or {})


def _names(value) -> list:
    """A list of names; a lone string is left as it is, for the type check to refuse (a list of
    its characters would name modules nobody meant)."""
    if isinstance(value, str):
        return value
    return list(value or [])


# --- checking values against the types of attrs fields ----------------------------------------

_ARTICLE = {"int": "an int", "float": "a float", "str": "a str", "bool": "a bool"}


def _split(text: str, separator: str) -> list[str]:
    """`text` split at `separator` outside brackets, each part stripped."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += (char == "[") - (char == "]")
        if char == separator and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    return [*parts, text[start:].strip()]


def _alternatives(kind) -> list[str]:
    """A field's type as the names of its alternatives: `int | None` -> ["int", "None"]."""
    return _split(kind.__name__ if isinstance(kind, type) else str(kind), "|")


def _arguments(kind: str) -> list[str]:
    """The arguments of a generic type's name: `dict[str, int]` -> ["str", "int"]."""
    return _split(kind[kind.index("[") + 1 : -1], ",")


def _a(value) -> str:
    name = type(value).__name__
    return _ARTICLE.get(name, f"an {name}" if name[0] in "aeiou" else f"a {name}")


def _fit(value, kind: str):
    """`value` as a value of the type named `kind`, or a reason (a `_Misfit`) why it is not."""
    if kind in ("Any", "object"):
        return value
    if kind == "None":
        return value if value is None else _Misfit("None")
    if kind == "bool":
        return value if isinstance(value, bool) else _Misfit("a bool")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _Misfit("an int")
        if isinstance(value, float):
            if not math.isfinite(value):
                return _Misfit("an int")
            if not value.is_integer():
                return _Misfit("an int", ", not a float with a fraction")
            return int(value)
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _Misfit("a float")
        if not math.isfinite(value):
            return _Misfit("a finite number", "")
        return value
    if kind == "str":
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        return value if isinstance(value, str) else _Misfit("a str")
    if kind.startswith(("list[", "tuple[")):
        item = _arguments(kind)[0]
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
            return _Misfit(f"a list of {item}")
        items = [_fit(v, item) for v in value]
        bad = next((v for v, fitted in zip(value, items) if isinstance(fitted, _Misfit)), None)
        if any(isinstance(v, _Misfit) for v in items):
            return _Misfit(f"a list of {item}", f" (it holds {bad!r})")
        return items
    if kind.startswith("dict["):
        key, item = _arguments(kind)
        if not isinstance(value, Mapping):
            return _Misfit(f"a dict of {key} to {item}")
        pairs = {}
        for k, v in value.items():
            pair = _fit(k, key), _fit(v, item)
            if any(isinstance(x, _Misfit) for x in pair):
                return _Misfit(f"a dict of {key} to {item}", f" ({k!r} is {v!r})")
            pairs[pair[0]] = pair[1]
        return pairs
    if kind.startswith("Callable"):
        return value if callable(value) else _Misfit("callable")
    return value  # a type this check does not know: left to the code that reads it


@attrs.frozen
class _Misfit:
    """Why a value does not fit a type: what the type takes, and what to say of the value after
    that (None: `, not ` and its type)."""

    wanted: str
    detail: str | None = None


def check_values(fields, values: Mapping[str, Any], names: Mapping[str, str] | None = None):
    """`values` checked against the types of the attrs `fields` of the same names: a whole float
    is taken as an int, a path as a str; a float must be finite. Names no field has pass
    unchecked (the code that reads them refuses unknown names).

    Args:
        names: how the caller names a field, where that differs (`plugins` -> `ops`).

    Returns:
        The values, those that needed it converted.

    Raises:
        NascUsageError: naming the keyword, the value and the type it takes.
    """
    kinds = {field.name: field for field in fields}
    checked = dict(values)
    for name, value in values.items():
        field = kinds.get(name)
        if field is None or field.type is None:
            continue
        misfits = []
        for kind in _alternatives(field.type):
            fitted = _fit(value, kind)
            if not isinstance(fitted, _Misfit):
                checked[name] = fitted
                break
            misfits.append(fitted)
        else:
            raise _refusal((names or {}).get(name, name), value, field, misfits)
    return checked


def _refusal(name: str, value, field, misfits: list[_Misfit]) -> NascUsageError:
    wanted = " or ".join(dict.fromkeys(m.wanted for m in misfits if m.wanted != "None"))
    detail = next((m.detail for m in misfits if m.detail is not None), None)
    detail = f", not {_a(value)}" if detail is None else detail
    said = f"{name}={value!r}: must be {wanted}{detail}"
    hints = []
    default = field.default
    if not isinstance(default, attrs.Factory) and default not in (None, attrs.NOTHING):
        hints.append(f"e.g. {name}={default!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            hints[-1] += f" (--{name.replace('_', '-')} {default} on the command line)"
    if isinstance(value, str) and any(m.wanted.startswith("a list") for m in misfits):
        hints.append(f"a list, even of one: {name}=[{value!r}]")
    if any(m.wanted == "None" for m in misfits):
        hints.append("leave it out (None) for the default")
    return NascUsageError(said, hint="; ".join(hints) or "see the function's documentation")


def _check_fields(request, config_class: Callable[[], type] | None = None) -> None:
    """Check a request's fields (and, given the config class, its `overrides`) against their
    types, converting in place what needs it (a frozen instance: set once, while it is made)."""
    cls = type(request)
    fields = attrs.fields(cls)
    given = {f.name: getattr(request, f.name) for f in fields if f.name != "overrides"}
    keywords = {f.name: f.metadata["keyword"] for f in fields if "keyword" in f.metadata}
    for name, value in check_values(fields, given, keywords).items():
        if value is not given[name]:
            object.__setattr__(request, name, value)
    if config_class is None:
        return
    given = {name: value for name, value in request.overrides.items() if value is not None}
    if given:  # None takes the preset's value
        checked = check_values(attrs.fields(config_class()), given)
        object.__setattr__(request, "overrides", {**request.overrides, **checked})


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
    plugins: list[str] = attrs.field(factory=list, converter=_names, metadata={"keyword": "ops"})

    def __attrs_post_init__(self) -> None:
        """Every field, and every preset field in `overrides`, checked against its type."""
        _check_fields(self, self.config_class)

    @staticmethod
    def config_class() -> type:
        """The config whose fields `overrides` sets."""
        raise NotImplementedError


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

    @staticmethod
    def config_class() -> type:
        from nasc.runtime.search.config import SearchConfig  # imports the strategies (torch)

        return SearchConfig


@attrs.frozen(kw_only=True)
class TrainRequest(_RunRequest):
    """One training run of a fixed architecture; `overrides` are TrainConfig fields."""

    arch_file: str | None = None
    arch: str | None = None
    keep_macro: bool = False

    @staticmethod
    def config_class() -> type:
        from nasc.runtime.train.config import TrainConfig

        return TrainConfig


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

    def __attrs_post_init__(self) -> None:
        """Every field checked against its type."""
        _check_fields(self)


def request_from(cls, args, **fields):
    """A request from an argparse namespace: every attribute named like a field, plus `fields`."""
    names = {field.name for field in attrs.fields(cls)}
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return cls(**{**given, **fields})
