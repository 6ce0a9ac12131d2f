"""NAS-Bench-201 look-up: the published accuracies of a found cell, from a CSV table of all 15,625
cells (e.g. `../shared/data/nb201_accuracies.csv`) or from the official benchmark through the
`nats_bench` package where it is installed."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import attrs

from nasc.dsl import NascUsageError

DEFAULT_COLUMNS = {
    "arch": "ArchitectureString",
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "ImageNet16-120": "ImageNetTestAccuracy200Epochs",
}


def parse_columns(text: str | None) -> dict[str, str]:
    """`arch=COL,cifar10=COL,...` on top of the defaults.

    Raises:
        NascUsageError: a malformed item.
    """
    columns = dict(DEFAULT_COLUMNS)
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise NascUsageError(
                f"--nb201-columns: `{item}` is not KEY=COLUMN",
                hint="e.g. --nb201-columns "
                "arch=ArchitectureString,cifar10=CIFAR10TestAccuracy200Epochs",
            )
        columns[key.strip()] = value.strip()
    return columns


def canonical(arch: str) -> str:
    """An NB201 string without spaces, so equal cells compare equal."""
    return re.sub(r"\s+", "", arch)


@attrs.frozen
class NB201Table:
    """Accuracies by architecture string; `ranks` orders every cell by each accuracy."""

    path: str
    rows: dict[str, dict[str, float]]

    @classmethod
    def load(cls, path: str | Path, columns: dict[str, str] | None = None) -> NB201Table:
        """Read the CSV.

        Raises:
            NascUsageError: a missing file, missing columns, or values that are not numbers.
        """
        columns = columns or dict(DEFAULT_COLUMNS)
        path = Path(path)
        try:
            handle = open(path, newline="")
        except OSError as error:
            raise NascUsageError(
                f"--nb201-table {path}: {error.strerror or error}",
                hint="give the CSV of NB201 accuracies",
            ) from None
        with handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [name for name in columns.values() if name not in header]
            if missing:
                raise NascUsageError(
                    f"--nb201-table {path} has no column {', '.join(missing)}",
                    hint=f"its columns are {', '.join(header) or '(none)'}; name yours with "
                    "--nb201-columns arch=...,cifar10=...",
                )
            rows = {}
            for number, row in enumerate(reader, start=2):
                try:
                    values = {
                        key: float(row[name]) for key, name in columns.items() if key != "arch"
                    }
                except (TypeError, ValueError):
                    raise NascUsageError(
                        f"{path}:{number}: an accuracy is not a number",
                        hint="every accuracy column must hold numbers",
                    ) from None
                rows[canonical(row[columns["arch"]])] = values
        if not rows:
            raise NascUsageError(f"--nb201-table {path} has no rows")
        return cls(path=str(path), rows=rows)

    def lookup(self, arch: str) -> dict[str, float] | None:
        return self.rows.get(canonical(arch))

    def rank(self, arch: str, key: str) -> int | None:
        """1 for the best cell by `key`; None when the cell is not in the table."""
        value = (self.lookup(arch) or {}).get(key)
        if value is None:
            return None
        return 1 + sum(1 for row in self.rows.values() if row.get(key, -1) > value)


def lookup_nats(arch: str, path: str | None = None) -> dict[str, float]:
    """Test accuracies (200 epochs) from the official benchmark via `nats_bench`.

    Raises:
        NascUsageError: the package or its benchmark file is not available.
    """
    try:
        from nats_bench import create
    except ImportError:
        raise NascUsageError(
            "the nats_bench package is not installed",
            hint="pip install nats_bench and download its benchmark file, or use --nb201-table",
        ) from None
    api = create(path, "tss", fast_mode=True, verbose=False)
    index = api.query_index_by_arch(arch)
    results = {}
    for dataset in ("cifar10", "cifar100", "ImageNet16-120"):
        info = api.get_more_info(index, dataset, hp="200", is_random=False)
        results[dataset] = float(info["test-accuracy"])
    return results


def accuracy_spread(accuracies: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of each dataset's accuracy over several found cells
    (the papers report searches as mean +- std over seeds)."""
    spread = {}
    for key in dict.fromkeys(k for found in accuracies for k in found):
        values = [found[key] for found in accuracies if key in found]
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
        spread[key] = {"mean": mean, "std": std, "runs": len(values)}
    return spread
