"""TensorBoard event files (`--tensorboard`): the scalars of metrics.jsonl, plus what a strategy
adds (IS-DARTS: the information F of every candidate at each shrink step; the DARTS family: the
softmax weight of every live candidate each epoch), in `<run>/tensorboard/`.

    tensorboard --logdir runs/
"""

from __future__ import annotations

import math
from pathlib import Path

from nasc.dsl import NascUsageError

SKIPPED = {"event", "epoch", "step", "steps"}  # the x axis and bookkeeping, not curves


def require_tensorboard() -> None:
    """Refuse `--tensorboard` before any work when the package is missing."""
    try:
        import tensorboard  # noqa: F401 - torch.utils.tensorboard needs it
    except ImportError:
        raise NascUsageError(
            "--tensorboard needs the tensorboard package",
            hint='pip install "nasc[tensorboard]" (or pip install tensorboard)',
        ) from None


class ScalarLog:
    """One run's TensorBoard writer; the step of every scalar is the epoch it belongs to."""

    def __init__(self, folder: Path):
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder))

    def record(self, record: dict) -> None:
        """The numbers of one metrics line, as `<event>/<key>` (e.g. `epoch/test_acc`)."""
        step = record.get("epoch")
        if step is None:
            return
        values = {
            f"{record.get('event', 'metrics')}/{key}": value
            for key, value in record.items()
            if key not in SKIPPED
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        }
        if record.get("event") == "shrink" and isinstance(record.get("discarded"), list):
            values["shrink/discarded"] = len(record["discarded"])
        self.add(values, step)

    def add(self, values: dict[str, float], step: int) -> None:
        """Named scalars at one epoch; infinities and NaNs are left out (TensorBoard drops them
        from plots but keeps them in ranges, flattening every curve)."""
        for tag, value in values.items():
            if math.isfinite(value):
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
