"""What a search returns: the genotype, the found architecture, its records and, where one was
written, the run directory (`nasc.search` returns it; `SearchResult.from_run` reads one back)."""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from nasc.dsl import Genotype, NascUsageError


@attrs.frozen(kw_only=True)
class SearchResult:
    """What a search found: the genotype, the run directory (None when none was written) and
    its records.

    `result` is what the run's result.json holds (the NB201 string and DARTS genotype where they
    apply, the supernet's accuracies, the NB201 look-up); `metrics` its metrics.jsonl lines;
    `arch` the found architecture as fixed `.nas` text (what arch.nas holds); `report` the
    report page, where one was written.
    """

    genotype: Genotype
    run_dir: Path | None
    result: dict
    metrics: list[dict]
    arch: str | None = None
    report: Path | None = None
    report_error: str | None = attrs.field(default=None, eq=False)  # why there is no report

    @classmethod
    def from_run(cls, run_dir: str | Path) -> SearchResult:
        """The result of a finished search run directory.

        Raises:
            NascUsageError: the directory holds no finished search.
        """
        run_dir = Path(run_dir)
        if not (run_dir / "result.json").is_file() or not (run_dir / "genotype.json").is_file():
            raise NascUsageError(
                f"{run_dir} is not a finished search run (it has no result.json)",
                hint="give a run directory that a search completed",
            )
        genotype = Genotype.from_json(
            json.loads((run_dir / "genotype.json").read_text()), source=str(run_dir)
        )
        metrics = [
            json.loads(line)
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if line.strip()
        ]
        result = json.loads((run_dir / "result.json").read_text())
        arch = (run_dir / "arch.nas").read_text() if (run_dir / "arch.nas").is_file() else None
        report = run_dir / "report.html"
        return cls(
            genotype=genotype,
            run_dir=run_dir,
            result=result,
            metrics=metrics,
            arch=arch,
            report=report if report.is_file() else None,
        )

    def require_run_dir(self) -> Path:
        """The run directory; a search that wrote none (runs_dir=None) is refused.

        Raises:
            NascUsageError: the search wrote no run directory.
        """
        if self.run_dir is None:
            raise NascUsageError(
                "this search wrote no run directory (runs_dir=None)",
                hint="search with runs_dir=FOLDER to keep its files, or use `arch` (the found "
                "architecture as .nas text)",
            )
        return self.run_dir

    @property
    def arch_path(self) -> Path:
        """The found architecture as a fixed `.nas` file, for `nasc.train`."""
        return self.require_run_dir() / "arch.nas"

    @property
    def nb201(self) -> str | None:
        """The NB201 architecture string, for NB201-shaped cells."""
        return self.result.get("nb201")

    @property
    def darts(self) -> str | None:
        """The DARTS-style genotype, for DARTS-shaped cells."""
        return self.result.get("darts")

    @property
    def nb201_accuracy(self) -> dict[str, float] | None:
        """NAS-Bench-201's test accuracies of the found cell, where a table knows it."""
        return self.result.get("nb201_accuracy")

    @property
    def epochs(self) -> list[dict]:
        """The metrics of each epoch (loss, accuracy, live ops, ...)."""
        return [line for line in self.metrics if line.get("event") == "epoch"]

    def export(self, format: str, output: str | Path | None = None, **params: int):
        """See `nasc.export`."""
        from nasc.runtime.api import export

        return export(self, format, output=output, **params)
