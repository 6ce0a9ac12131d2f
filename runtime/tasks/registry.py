"""The task registry: `@register_task("name")` registers a `Task` subclass; `get_task` finds it.

A leaf: it imports nothing of the runtime, so the tasks import it and not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nasc.dsl import NascUsageError

if TYPE_CHECKING:
    from nasc.runtime.tasks.base import Task

TASKS: dict[str, type[Task]] = {}

DEFAULT_TASK = "classification"


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Register a `Task` subclass under `name` (what `--task` and `task=` take)."""

    def decorate(cls):
        cls.name = name
        TASKS[name] = cls
        return cls

    return decorate


def get_task(name: str | None = None) -> Task:
    """A fresh instance of the task registered under `name` (None: image classification).

    Raises:
        NascUsageError: an unknown name, listing the known ones.
    """
    name = DEFAULT_TASK if name is None else name
    if name not in TASKS:
        raise NascUsageError(
            f"unknown task `{name}`", hint=f"known tasks: {', '.join(sorted(TASKS))}"
        )
    return TASKS[name]()
