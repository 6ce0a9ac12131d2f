"""The nasc language: parse `.nas` text into a checked `SpaceIR`, and print it back."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from .checks import lint_space
from .circuits import CircuitSpace, is_circuit, lower_circuit
from .errors import NascError, NascUsageError, NasSemanticError, NasSyntaxError, Span
from .genotype import Genotype, apply_genotype, parse_arch
from .ir import OpInfo, SpaceIR, format_count
from .lower import lower
from .printer import format_space
from .syntax import parse_module

MAX_SOURCE_BYTES = 1 << 20  # a search space is a page of text; refuse what cannot be one
MAX_NESTING = 64


def _check_size_and_nesting(text: str, file: str) -> None:
    if len(text) > MAX_SOURCE_BYTES:
        raise NasSyntaxError(
            f"the file is {len(text) / 1e6:.1f} MB; "
            f"a .nas file is at most {MAX_SOURCE_BYTES >> 10} KiB",
            span=Span(file=file),
            hint="is this the right file? search spaces are a few dozen lines",
        )
    depth, line, column, in_comment = 0, 1, 0, False
    for char in text:
        column += 1
        if char == "\n":
            line, column, in_comment = line + 1, 0, False
        elif in_comment or char == "#":
            in_comment = True  # brackets in comments are prose, not nesting
        elif char in "({[":
            depth += 1
            if depth > MAX_NESTING:
                raise NasSyntaxError(
                    f"brackets nest more than {MAX_NESTING} deep",
                    span=Span(file=file, line=line, column=column),
                    hint="simplify the expression",
                )
        elif char in ")}]":
            depth = max(0, depth - 1)


def parse_space(
    text: str,
    file: str = "<string>",
    *,
    catalog: Mapping[str, OpInfo] | None = None,
    overrides: Mapping[str, int] | None = None,
) -> SpaceIR | CircuitSpace:
    """Parse, lower and lint `.nas` text.

    Args:
        text: the source.
        file: the name errors report.
        catalog: the registered ops (`nasc.compiler.catalog()`); None skips op-name checks.
        overrides: `-D` parameter values checked against the network's parameters.

    Raises:
        NascError: syntax and semantic errors, each with the source attached for display.
    """
    try:
        _check_size_and_nesting(text, file)
        module = parse_module(text, file)
        if is_circuit(module):  # a circuit space (docs/circuits.md), checked as it lowers
            space = lower_circuit(module)
            space.plan(overrides)
        else:
            space = lower(module)
            lint_space(space, catalog, overrides)
    except NascError as error:
        if error.source is None:
            error.source = text
        raise
    return space


def builtin_spaces() -> dict[str, Path]:
    """The reference spaces shipped with nasc, by name (`nb201`, `darts`, ...)."""
    folder = resources.files("nasc.spaces")
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".nas")
    }


def find_space(name_or_path: str | Path) -> Path:
    """Resolve a `.nas` path, or the name of a built-in space.

    Raises:
        NascUsageError: the path does not exist, is a folder, or names no built-in space.
    """
    path = Path(name_or_path)
    if path.is_dir():
        raise NascUsageError(
            f"{path} is a folder, not a .nas file",
            hint=f"name a file inside it, e.g. {path}/space.nas",
        )
    if path.exists():
        return path
    spaces = builtin_spaces()
    if str(name_or_path) in spaces:
        return spaces[str(name_or_path)]
    raise NascUsageError(
        f"{path}: no such file",
        hint=f"give the path of a .nas file, or a built-in space: {', '.join(sorted(spaces))}",
    )


def read_source(path: Path) -> str:
    """Read a `.nas` file, turning OS and encoding failures into `NascUsageError`.

    Only a regular file is read (a FIFO, a device such as `/dev/zero` or a directory is refused
    without blocking), and never more than `MAX_SOURCE_BYTES`, even of a file that grows while
    it is read: the one open handle is checked, then read up to one byte past the cap.
    """
    import os

    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            _require_regular(path, os.fstat(handle).st_mode)
        except NascUsageError:
            os.close(handle)
            raise
        with os.fdopen(handle, "rb") as file:
            data = file.read(MAX_SOURCE_BYTES + 1)
        if len(data) > MAX_SOURCE_BYTES:
            size = max(len(data), path.stat().st_size)
            raise NasSyntaxError(
                f"the file is {size / 1e6:.1f} MB; "
                f"a .nas file is at most {MAX_SOURCE_BYTES >> 10} KiB",
                span=Span(file=str(path)),
                hint="is this the right file? search spaces are a few dozen lines",
            )
        return data.decode("utf-8")
    except PermissionError:
        raise NascUsageError(
            f"{path}: permission denied", hint="check the file's permissions"
        ) from None
    except UnicodeDecodeError as error:
        raise NascUsageError(
            f"{path} is not UTF-8 text (byte {error.start})", hint="a .nas file is plain text"
        ) from None
    except OSError as error:
        raise NascUsageError(f"{path}: {error.strerror or error}") from None


def _require_regular(path: Path, mode: int) -> None:
    """Refuse what is not a regular file: a FIFO, a device (`/dev/zero`, whose reported size of
    0 says nothing of what reading it gives), a directory."""
    import stat

    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a directory"
            if stat.S_ISDIR(mode)
            else "not a plain file"
        )
        raise NascUsageError(
            f"{path}: {kind}, not a regular file", hint="give a .nas file (plain text)"
        )


def load_space(
    name_or_path: str | Path,
    *,
    catalog: Mapping[str, OpInfo] | None = None,
    overrides: Mapping[str, int] | None = None,
) -> SpaceIR | CircuitSpace:
    """Read and check a `.nas` file or a built-in space; see `parse_space`."""
    path = find_space(name_or_path)
    return parse_space(read_source(path), str(name_or_path), catalog=catalog, overrides=overrides)


__all__ = [
    "CircuitSpace",
    "Genotype",
    "NascError",
    "NascUsageError",
    "NasSemanticError",
    "NasSyntaxError",
    "OpInfo",
    "SpaceIR",
    "apply_genotype",
    "builtin_spaces",
    "find_space",
    "format_count",
    "format_space",
    "lint_space",
    "load_space",
    "parse_arch",
    "parse_space",
]
