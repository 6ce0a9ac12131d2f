"""Checks of the settings every run takes (device, counts, checkpoint minutes), naming the flag."""

from __future__ import annotations

import torch

from nasc.dsl import NascUsageError


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from nasc.dsl import NascUsageError

        raise NascUsageError("--device cuda: no CUDA device is available", hint="use --device cpu")
    return torch.device(name)


def validate_counts(**counts: int | None) -> None:
    """Refuse counts given as zero or less (`--subset 0` would otherwise mean all the data).

    Raises:
        NascUsageError: naming the flag.
    """
    for name, value in counts.items():
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise NascUsageError(
                f"{flag} {value}: must be at least 1",
                hint=f"leave {flag} out to use the default, or give a positive number",
            )


def validate_minutes(minutes: float | None) -> None:
    if minutes is not None and minutes < 0:
        raise NascUsageError(
            f"--checkpoint-minutes {minutes:g}: must not be negative",
            hint="0 checkpoints at epoch ends only",
        )
