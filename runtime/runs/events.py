"""What a run tells as it goes: a set of callbacks the loops call (epochs, steps, metrics
records, messages, the result). The base class does nothing; `LoggedEvents` logs through
`logging` (the `nasc` logger); the command line's rich display (`cli/progress.py`) subscribes
by subclassing `RunEvents`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("nasc")


class RunEvents:
    """Callbacks of a search or training run; override those you need."""

    def message(self, text: str) -> None:
        """A line of news: the run directory, a resume, a warning (starting `warning:`)."""

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        """Epoch `epoch` of `epochs` starts; `done` of its `steps` ran before a resume."""

    def step(self, step: int, steps: int, loss: float | None) -> None:
        """A training step ran; `loss` is the epoch's mean so far, every tenth step."""

    def record(self, record: dict) -> None:
        """A metrics record, as metrics.jsonl gets it (`event`: epoch, shrink, ...)."""

    def finished(self, result: Any) -> None:
        """The run's result (a `SearchResult`, or a training run's `TrainResult`)."""

    def close(self) -> None:
        """The run stopped (finished or not): release what the callbacks hold."""


class LoggedEvents(RunEvents):
    """Messages at INFO (warnings at WARNING) and metrics records at DEBUG, on `nasc`."""

    def message(self, text: str) -> None:
        level = logging.WARNING if text.startswith("warning") else logging.INFO
        logger.log(level, "%s", text)

    def record(self, record: dict) -> None:
        logger.debug("%s", record)


class WithRecords(RunEvents):
    """`events`, and `callback` called with a copy of every metrics record as well."""

    def __init__(self, events: RunEvents, callback: Callable[[dict], Any]):
        self.events, self.callback = events, callback

    def message(self, text: str) -> None:
        self.events.message(text)

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        self.events.start_epoch(epoch, epochs, steps, done)

    def step(self, step: int, steps: int, loss: float | None) -> None:
        self.events.step(step, steps, loss)

    def record(self, record: dict) -> None:
        self.events.record(record)
        self.callback(dict(record))

    def finished(self, result: Any) -> None:
        self.events.finished(result)

    def close(self) -> None:
        self.events.close()
