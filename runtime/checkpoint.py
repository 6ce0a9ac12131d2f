"""Checkpoints that survive being killed: written atomically, checked by a checksum, the last two
kept, and loaded with `torch.load(weights_only=True)`."""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import torch

from nasc.dsl import NascUsageError

MAGIC = b"NASCKPT1"
KEEP = 2
# ckpt-<epochs done>.pt at the end of an epoch; ckpt-<epochs done>-s<steps>.pt inside the next one.
_NAME = re.compile(r"ckpt-(\d+)(?:-s(\d+))?\.pt$")


class CorruptCheckpoint(NascUsageError):
    """A checkpoint whose bytes do not match their checksum (torn write, disk damage)."""


def write_atomic(path: Path, data: bytes, fault=None) -> None:
    """Write bytes so that `path` is either the old file or the whole new one, never a torn one.

    Args:
        fault: called halfway through the write (fault injection for the reliability tests).

    Raises:
        NascUsageError: the folder is read-only or the disk is full; the old file is untouched.
    """
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data[: len(data) // 2])
            if fault is not None:
                handle.flush()
                fault()
            handle.write(data[len(data) // 2 :])
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        raise NascUsageError(
            f"cannot write {path}: {error.strerror or error}",
            hint="free disk space or make the run directory writable, then --resume the run; "
            "the previous checkpoint is intact",
        ) from None
    try:  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
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
        CorruptCheckpoint: a short file, a wrong header or a checksum mismatch.
    """
    data = path.read_bytes()
    header = len(MAGIC) + 32
    if len(data) < header or not data.startswith(MAGIC):
        raise CorruptCheckpoint(
            f"{path} is not a nasc checkpoint or is truncated ({len(data)} bytes)"
        )
    payload = data[header:]
    if hashlib.sha256(payload).digest() != data[len(MAGIC) : header]:
        raise CorruptCheckpoint(f"{path} is damaged: its checksum does not match")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - unpickling errors of any kind mean a bad file
        raise CorruptCheckpoint(f"{path} cannot be read: {error}") from None


def load_latest(folder: Path, warn=print, map_location="cpu") -> tuple[Path, dict] | None:
    """The newest checkpoint that verifies; damaged ones are reported with `warn` and skipped."""
    for path in reversed(checkpoints(folder)):
        try:
            return path, load_checkpoint(path, map_location)
        except CorruptCheckpoint as error:
            warn(f"warning: {error.message}; trying the previous checkpoint")
    return None
