"""What a training run returns: its result (what result.json holds) and its run directory."""

from __future__ import annotations

from pathlib import Path

import attrs

from nasc.dsl import NascUsageError


@attrs.frozen(kw_only=True)
class TrainResult:
    """A finished training run: its directory (None when none was written) and result.json."""

    run_dir: Path | None
    result: dict

    @property
    def test_acc(self) -> float:
        return self.result["final_test_acc"]

    @property
    def parameters(self) -> int:
        return self.result["parameters"]

    @property
    def model_path(self) -> Path:
        """The trained network as TorchScript (`torch.jit.load` it)."""
        if self.run_dir is None:
            raise NascUsageError(
                "this training run wrote no run directory (runs_dir=None)",
                hint="train with runs_dir=FOLDER to keep the trained network",
            )
        return self.run_dir / "model.pt"
