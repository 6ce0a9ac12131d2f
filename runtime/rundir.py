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

import fcntl
import json
import os
import platform
import time
from pathlib import Path

from nasc.dsl import NascUsageError

from .checkpoint import write_atomic
from .scalars import ScalarLog


def nasc_version() -> str:
    """The installed nasc's version (`unknown` when it runs from a tree that is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("nasc")
    except metadata.PackageNotFoundError:
        return "unknown"


def environment(device=None) -> dict:
    """What ran a command: the versions of nasc, PyTorch and Python, and the device."""
    import torch

    facts = {
        "nasc": nasc_version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device) if device is not None else "cpu",
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
        if not path.is_dir() or not (path / "config.json").is_file():
            raise NascUsageError(
                f"{path} is not a search run directory (it has no config.json)",
                hint="give a folder that `nasc search` created, e.g. runs/nb201-isdarts-...",
            )
        run = cls(path)
        run.lock()
        (path / "checkpoints").mkdir(exist_ok=True)
        return run

    def lock(self) -> None:
        """Hold an exclusive lock on the folder; a second `nasc` on it is refused."""
        path = self.path / ".lock"
        while True:
            handle = open(path, "a+")
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
            return json.loads((self.path / name).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise NascUsageError(f"cannot read {self.path / name}: {error}") from None

    # --- metrics ---------------------------------------------------------------------------------

    def metrics_lines(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        lines = []
        for line in path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line from a killed run
        return lines

    def truncate_metrics(self, count: int) -> None:
        """Keep the first `count` metric lines: those the resumed checkpoint had seen."""
        lines = self.metrics_lines()[:count]
        self.write_text("metrics.jsonl", "".join(json.dumps(line) + "\n" for line in lines))

    def log_metrics(self, record: dict) -> None:
        try:
            with open(self.path / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
        except OSError as error:
            raise NascUsageError(
                f"cannot write {self.path / 'metrics.jsonl'}: {error.strerror or error}",
                hint="free disk space or make the run directory writable, then --resume",
            ) from None
        if self.scalars is not None:
            self.scalars.record(record)
