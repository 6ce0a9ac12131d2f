"""Checks of the settings every run takes (device, counts, checkpoint minutes), naming the flag,
and the settings of torch that change a run's results in their last digits (threads,
deterministic algorithms), which a run records and a resume compares."""

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


def compute_settings() -> dict:
    """What changes a run's floating-point results besides its own settings: torch's thread
    count (the order of reductions) and whether deterministic algorithms are on."""
    return {
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }


def compute_changes(recorded) -> list[str]:
    """Warnings for a resume whose torch settings differ from those the run recorded
    (`environment` in its config.json; nothing for runs that recorded none)."""
    if not isinstance(recorded, dict):
        return []
    now, lines = compute_settings(), []
    was = recorded.get("threads")
    if isinstance(was, int) and not isinstance(was, bool) and was != now["threads"]:
        lines.append(
            f"warning: this run was computed with {was} threads and this resume has "
            f"{now['threads']} (torch.get_num_threads()): sums are reduced in another order, so "
            "the results will differ from an uninterrupted run's in the last digits; for the "
            f"same result set the thread count back (OMP_NUM_THREADS={was}, or "
            f"torch.set_num_threads({was}))"
        )
    was = recorded.get("deterministic")
    if isinstance(was, bool) and was != now["deterministic"]:
        state = {True: "on", False: "off"}
        lines.append(
            f"warning: this run was computed with deterministic algorithms {state[was]} and this "
            f"resume has them {state[now['deterministic']]} "
            "(torch.are_deterministic_algorithms_enabled()): the results will differ from an "
            "uninterrupted run's in the last digits; for the same result call "
            f"torch.use_deterministic_algorithms({was}) before resuming (from Python)"
        )
    return lines
