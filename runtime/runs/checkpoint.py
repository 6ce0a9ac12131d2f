"""Checkpoints that survive being killed: written atomically, checked by a checksum, the last two
kept, and loaded with `torch.load(weights_only=True)`."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import stat
from pathlib import Path

import torch

from nasc.dsl import NascUsageError
from nasc.runtime.runs.faults import die_writing

MAGIC = b"NASCKPT1"
KEEP = 2
# ckpt-<epochs done>.pt at the end of an epoch; ckpt-<epochs done>-s<steps>.pt inside the next one.
_NAME = re.compile(r"ckpt-(\d+)(?:-s(\d+))?\.pt$")


class CorruptCheckpoint(NascUsageError):
    """A checkpoint whose bytes do not match their checksum (torn write, disk damage)."""


def write_atomic(path: Path, data: bytes, fault=None, hint: str | None = None) -> None:
    """Write bytes so that `path` is either the old file or the whole new one, never a torn one:
    they go to a temporary file in the same folder, are synced, and the temporary is renamed
    onto `path`. Every file nasc writes goes through here or `atomic_path`.

    Args:
        fault: called halfway through the write (fault injection for the reliability tests;
            `NASC_FAULT=write@NAME` kills the process there too).
        hint: what to do when the write fails (default: what a run directory's file needs).

    Raises:
        NascUsageError: the folder is read-only or the disk is full; the old file is untouched.
    """
    path = Path(path)
    temporary = _temporary(path)
    try:
        with open(temporary, "wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            if fault is not None:
                fault()
            die_writing(path.name)
            handle.write(data[len(data) // 2 :])
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:  # a full disk, or a second Ctrl-C while writing
        _remove(temporary)
        if isinstance(error, OSError):
            raise _cannot_write(path, error, hint) from None
        raise
    _sync_folder(path.parent)


@contextlib.contextmanager
def atomic_path(path: Path, hint: str | None = None):
    """A temporary file name beside `path`, for writers that want a name rather than bytes
    (TorchScript's save): when the block ends, the file is synced and renamed onto `path`.
    When the block raises, `path` is as it was and the temporary is removed; after a kill the
    temporary is left (a hidden `.NAME.tmp-PID`, which a resumed run removes). `hint`: as for
    `write_atomic`.

    Raises:
        NascUsageError: the folder is read-only or the disk is full; the old file is untouched.
    """
    path = Path(path)
    temporary = _temporary(path)
    try:
        yield temporary
        die_writing(path.name)  # fault injection: the new bytes are down, not yet renamed
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        _remove(temporary)
        if isinstance(error, OSError):
            raise _cannot_write(path, error, hint) from None
        raise
    _sync_folder(path.parent)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _remove(temporary: Path) -> None:
    try:
        temporary.unlink(missing_ok=True)
    except OSError:
        pass


def _cannot_write(path: Path, error: OSError, hint: str | None) -> NascUsageError:
    return NascUsageError(
        f"cannot write {path}: {error.strerror or error}", hint=hint or _write_hint(path)
    )


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (where the file system allows it)."""
    try:
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass


def save_checkpoint(
    folder: Path, index: int, state: dict, fault=None, step: int | None = None
) -> Path:
    """Write `ckpt-<index>.pt` (magic, sha256, payload) atomically and keep the last two; with
    `step`, `ckpt-<index>-s<step>.pt`, `step` training steps into the epoch after `index`."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    path = folder / (f"ckpt-{index:05d}.pt" if step is None else f"ckpt-{index:05d}-s{step:06d}.pt")
    if path.is_dir() and not path.is_symlink():  # a folder in its place: kept, but moved aside
        os.replace(path, path.with_name(f"{path.name}.not-a-checkpoint-{os.getpid()}"))
    write_atomic(path, MAGIC + hashlib.sha256(payload).digest() + payload, fault)
    for old in checkpoints(folder)[:-KEEP]:
        try:
            old.unlink()
        except OSError:
            pass
    return path


def checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files in a folder, oldest first."""
    if not folder.is_dir():
        return []
    found = [
        ((int(m[1]), int(m[2] or 0)), p) for p in folder.iterdir() if (m := _NAME.search(p.name))
    ]
    return [path for _, path in sorted(found)]


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read and verify one checkpoint.

    Raises:
        CorruptCheckpoint: not a regular file, larger than `MAX_CHECKPOINT_BYTES`, a short file,
            a wrong header, a checksum mismatch, or a payload that is not a dict.
    """
    try:
        data = read_regular(path, MAX_CHECKPOINT_BYTES)
    except NascUsageError as error:
        raise CorruptCheckpoint(error.message) from None
    header = len(MAGIC) + 32
    if len(data) < header or not data.startswith(MAGIC):
        raise CorruptCheckpoint(
            f"{path} is not a nasc checkpoint or is truncated ({len(data)} bytes)"
        )
    payload = data[header:]
    if hashlib.sha256(payload).digest() != data[len(MAGIC) : header]:
        raise CorruptCheckpoint(f"{path} is damaged: its checksum does not match")
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - unpickling errors of any kind mean a bad file
        raise CorruptCheckpoint(f"{path} cannot be read: {error}") from None
    if not isinstance(state, dict):
        raise CorruptCheckpoint(f"{path} holds a {type(state).__name__}, not a checkpoint")
    return state


def load_latest(
    folder: Path, warn=print, map_location="cpu", check=None
) -> tuple[Path, dict] | None:
    """The newest checkpoint that verifies; damaged ones are reported with `warn` and skipped.

    Args:
        check: called with (path, state); raises `CorruptCheckpoint` for a state that verifies
            but cannot be used (another structure, non-finite values): it is skipped too.
    """
    for path in reversed(checkpoints(folder)):
        try:
            state = load_checkpoint(path, map_location)
            if check is not None:
                check(path, state)
            return path, state
        except CorruptCheckpoint as error:
            warn(f"warning: {error.message}; trying the previous checkpoint")
    return None


# --- hardening ------------------------------------------------------------------------------------

MAX_CHECKPOINT_BYTES = int(os.environ.get("NASC_MAX_CHECKPOINT_BYTES", str(64 << 30)))
MAX_JSON_BYTES = 64 << 20
_TEMPORARY = re.compile(r"^\..+\.tmp-\d+$")
# What a new run directory writes before its config.json.
_RUN_START = ("space.nas", "arch.nas", "config.json")


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (symlinks to one are followed).

    A directory, FIFO, socket or device (`/dev/zero`) in its place is refused without blocking.

    Raises:
        NascUsageError: naming the file and what it is instead.
    """
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise NascUsageError(f"{path} is a directory, not a file") from None
    except OSError as error:
        raise NascUsageError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            kind = _file_kind(info.st_mode)
            raise NascUsageError(f"{path} is {kind}, not a regular file")
        if info.st_size > limit:
            raise NascUsageError(
                f"{path} is {info.st_size:,} bytes, more than the {limit:,} a file of its kind "
                "can be"
            )
        chunks, total = [], 0
        while chunk := os.read(handle, min(1 << 24, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise NascUsageError(f"{path} grew past {limit:,} bytes while being read")
        return b"".join(chunks)
    except OSError as error:
        raise NascUsageError(f"cannot read {path}: {error.strerror or error}") from None
    finally:
        os.close(handle)


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def _write_hint(path: Path) -> str:
    """What to do after a failed write of `path`, true to what is on disk."""
    if path.parent.name == "checkpoints":
        return (
            "free disk space or make the run directory writable, then --resume the run; "
            "the previous checkpoint is intact"
        )
    if not (path.parent / "config.json").is_file():
        if path.name not in _RUN_START and not (path.parent / "checkpoints").is_dir():
            # Not a run directory: an export, a drawing, a seeds summary.
            return f"free disk space or make {path.parent} writable, then run the command again"
        return (
            f"free disk space or make the folder writable, then start again: {path.parent} "
            "has no config.json, so it cannot be resumed (remove it)"
        )
    return (
        "free disk space or make the run directory writable, then --resume the run; "
        f"the previous {path.name} and the checkpoints are intact"
    )


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files (`.NAME.tmp-PID`) that killed writes left in `folder`.

    Call only while holding the run directory's lock: no other writer is alive then.
    """
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if _TEMPORARY.match(entry.name) and entry.is_file() and not entry.is_symlink():
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def nonfinite(value, prefix: str = "") -> list[str]:
    """The names of floating-point tensors in a nested state (dicts, lists) holding NaN or inf."""
    found = []
    if isinstance(value, torch.Tensor):
        if (value.is_floating_point() or value.is_complex()) and value.numel():
            if not bool(torch.isfinite(value).all()):
                found.append(prefix or "value")
    elif isinstance(value, dict):
        for key, item in value.items():
            found.extend(nonfinite(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found.extend(nonfinite(item, f"{prefix}[{index}]"))
    elif isinstance(value, float) and not (value == value and abs(value) != float("inf")):
        found.append(prefix or "value")
    return found
