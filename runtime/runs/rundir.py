"""Run directories: one folder per search holding everything needed to read or resume it.

runs/<space>-<strategy>-<time>/
    config.json       resolved configuration, data, -D values
    space.nas         the searched space's source, exactly as given
    metrics.jsonl     one line per epoch and per shrink step
    checkpoints/      ckpt-<epoch>.pt, atomic, checksummed, the last two kept
    importance.json   IS-DARTS: F and IIM of every candidate at every shrink step
    genotype.json     the found decisions
    arch.nas          the found architecture as a fixed .nas file
    nb201.txt         the NB201 string, for NB201-shaped spaces
    darts.txt         the DARTS genotype, for DARTS-shaped spaces
    result.json       a summary: genotype strings, accuracies, benchmark look-up, time
    tensorboard/      with --tensorboard: the same scalars as TensorBoard event files
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import platform
import stat
import time
from pathlib import Path

from nasc.dsl import NascUsageError
from nasc.runtime.runs.checkpoint import (
    MAX_JSON_BYTES,
    read_regular,
    remove_temporaries,
    write_atomic,
)
from nasc.runtime.runs.scalars import ScalarLog


def nasc_version() -> str:
    """The installed nasc's version (`unknown` when it runs from a tree that is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("nasc")
    except metadata.PackageNotFoundError:
        return "unknown"


def environment(device=None) -> dict:
    """What ran a command: the versions of nasc, PyTorch and Python, the device, and the torch
    settings that change results in their last digits (`settings.compute_settings`)."""
    import torch

    from nasc.runtime.runs.settings import compute_settings

    facts = {
        "nasc": nasc_version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device) if device is not None else "cpu",
        **compute_settings(),
    }
    if device is not None and getattr(device, "type", None) == "cuda":
        facts["device_name"] = torch.cuda.get_device_name(device)
        facts["cuda"] = torch.version.cuda
    else:
        facts["device_name"] = platform.processor() or platform.machine()
    return facts


class RunDir:
    """An open run directory, locked against a second process for as long as it is open; the
    lock file goes when the run closes."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = None
        self.scalars: ScalarLog | None = None  # TensorBoard mirror of the metrics, if asked

    def open_scalars(self, resumed: bool = False) -> None:
        """Mirror metrics (and strategy scalars) to TensorBoard files in `tensorboard/`.

        On resume the old files are replaced by a replay of the metrics the checkpoint kept:
        TensorBoard orders files by name, so purging re-run epochs in a new file is unreliable.
        """
        folder = self.path / "tensorboard"
        if resumed and folder.is_dir():
            for old in folder.glob("events.out.tfevents.*"):
                old.unlink()
        self.scalars = ScalarLog(folder)
        if resumed:
            for record in self.metrics_lines():
                self.scalars.record(record)

    @classmethod
    def create(cls, root: Path, space: str, strategy: str) -> RunDir:
        """A new, empty run directory under `root`."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = root / f"{space}-{strategy}-{stamp}"
        path, suffix = base, 1
        prepare_root(root)
        while True:
            try:
                path.mkdir(parents=True)
                break
            except FileExistsError:
                suffix += 1
                path = base.with_name(f"{base.name}-{suffix}")
            except OSError as error:
                raise NascUsageError(
                    f"cannot create the run directory {path}: {error.strerror or error}",
                    hint="choose a writable folder with --runs-dir",
                ) from None
        run = cls(path)
        run.lock()
        (path / "checkpoints").mkdir()
        return run

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """An existing run directory, for `--resume`.

        Raises:
            NascUsageError: the folder is not a run directory or another process holds it.
        """
        if (
            path.is_dir()
            and not (path / "config.json").exists()
            and list(path.glob(".config.json.tmp-*"))
        ):
            raise NascUsageError(
                f"{path} cannot be resumed: its search stopped while writing config.json, "
                "before any training",
                hint="start the search again (and remove this folder)",
            )
        if not path.is_dir() or not (path / "config.json").is_file():
            raise NascUsageError(
                f"{path} is not a search run directory (it has no config.json)",
                hint="give a folder that `nasc search` created, e.g. runs/nb201-isdarts-...",
            )
        run = cls(path)
        run.lock()
        (path / "checkpoints").mkdir(exist_ok=True)
        for folder in (path, path / "checkpoints"):  # what killed writes left behind
            remove_temporaries(folder)
        return run

    def lock(self) -> None:
        """Hold an exclusive lock on the folder; a second `nasc` on it is refused."""
        path = self.path / ".lock"
        while True:
            handle = open_lock_file(path)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                handle.close()
                raise NascUsageError(
                    f"{self.path} is in use by {owner}",
                    hint="wait for that run to end, or resume a different run directory",
                ) from None
            # The holder removes the file when it ends: a lock taken on a removed file is no lock.
            try:
                if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                    break
            except FileNotFoundError:
                pass
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(f"nasc process {os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def close(self) -> None:
        if self.scalars is not None:
            self.scalars.close()
            self.scalars = None
        if self._lock is not None:
            try:
                (self.path / ".lock").unlink()  # while still held, so no one else locks it
            except OSError:
                pass
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def discard(self) -> None:
        """Close and remove a run directory just created, before anything of a run was in it
        (a run that could not start leaves nothing behind)."""
        import shutil

        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        write_atomic(path, text.encode())
        return path

    def write_json(self, name: str, data) -> Path:
        return self.write_text(name, json.dumps(data, indent=2) + "\n")

    def read_json(self, name: str):
        try:
            return json.loads(read_regular(self.path / name, MAX_JSON_BYTES).decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise NascUsageError(f"cannot read {self.path / name}: {error}") from None

    # --- metrics ---------------------------------------------------------------------------------

    def metrics_lines(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        lines = []
        try:
            text = read_regular(path, MAX_JSON_BYTES << 2).decode("utf-8", errors="replace")
        except NascUsageError:
            return []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a killed run, or a garbled one: keep the rest
            if isinstance(record, dict):
                lines.append(record)
        return lines

    def truncate_metrics(self, count: int) -> None:
        """Keep the first `count` metric lines: those the resumed checkpoint had seen."""
        lines = self.metrics_lines()[:count]
        self.write_text("metrics.jsonl", "".join(metric_line(line) for line in lines))

    def rewrite_metrics(self, records: list[dict]) -> None:
        """Make metrics.jsonl exactly the lines a checkpoint kept (a deleted, garbled or longer
        file is rebuilt)."""
        self.write_text("metrics.jsonl", "".join(metric_line(record) for record in records))

    def set_aside_metrics(self) -> Path | None:
        """Move metrics.jsonl aside (to metrics-<time>.jsonl) before a restart from the first
        epoch, so no finished work is emptied; None when there is nothing to keep."""
        path = self.path / "metrics.jsonl"
        if not path.is_file() or path.stat().st_size == 0:
            return None
        kept = self.path / f"metrics-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        os.replace(path, kept)
        return kept

    def log_metrics(self, record: dict) -> None:
        try:
            with open(self.path / "metrics.jsonl", "a") as handle:
                handle.write(metric_line(record))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise NascUsageError(
                f"cannot write {self.path / 'metrics.jsonl'}: {error.strerror or error}",
                hint="free disk space or make the run directory writable, then --resume",
            ) from None
        if self.scalars is not None:
            self.scalars.record(record)


# --- hardening ------------------------------------------------------------------------------------


def _json_safe(value):
    """Non-finite floats as None (JSON null: strict readers refuse bare NaN), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def metric_line(record: dict) -> str:
    """One line of metrics.jsonl: strict JSON, NaN and infinities written as null."""
    return json.dumps(_json_safe(record), allow_nan=False) + "\n"


def prepare_root(root: Path) -> None:
    """Make the folder that run directories go in (`--runs-dir`).

    Raises:
        NascUsageError: it is a dangling symlink, a file, or cannot be made.
    """
    if root.is_symlink() and not root.exists():
        raise NascUsageError(
            f"--runs-dir {root} is a symlink to {os.readlink(root)}, which does not exist",
            hint="create the folder it points to, or choose another --runs-dir",
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NascUsageError(
            f"--runs-dir {root} exists but is not a folder",
            hint="choose a folder with --runs-dir",
        ) from None
    except OSError as error:
        raise NascUsageError(
            f"cannot create {root}: {error.strerror or error}",
            hint="choose a writable folder with --runs-dir",
        ) from None


def unique_directory(root: Path, name: str) -> Path:
    """Create and return a new folder `root/name` (or `name-2`, `name-3`, ...), never one that
    another process created first."""
    prepare_root(root)
    path, suffix = root / name, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            suffix += 1
            path = root / f"{name}-{suffix}"
        except OSError as error:
            raise NascUsageError(
                f"cannot create {path}: {error.strerror or error}",
                hint="choose a writable folder with --runs-dir",
            ) from None


def open_lock_file(path: Path):
    """Open a run directory's `.lock` for reading and writing, never through a symlink and never
    a FIFO or device in its place.

    Raises:
        NascUsageError: `.lock` is a symlink or not a regular file.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise NascUsageError(
                f"{path} is a symlink; nasc does not lock or write through links",
                hint=f"remove {path} (nasc makes its own), then run again",
            ) from None
        raise NascUsageError(f"cannot open {path}: {error.strerror or error}") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise NascUsageError(
            f"{path} is not a regular file", hint=f"remove {path} (nasc makes its own)"
        )
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "r+")
