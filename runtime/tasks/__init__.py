"""Tasks: what the search and training loops must not know (how data loads and batches, what
the network's head must produce, the loss, the metrics, how a prediction is drawn).

`get_task(name)` finds a registered task; `@register_task("name")` on a `Task` subclass adds one
(see `base.Task`). Image classification (`classification`) is the first and the default;
semantic segmentation (`segmentation`) scores a label per pixel; language modelling
(`language-model`) scores the next token of a stream.
"""

from nasc.runtime.tasks import (  # noqa: F401 - registers the built-in tasks
    circuits,
    classification,
    language_model,
    segmentation,
)
from nasc.runtime.tasks.base import Task, TaskLoss
from nasc.runtime.tasks.registry import DEFAULT_TASK, TASKS, get_task, register_task

__all__ = ["DEFAULT_TASK", "TASKS", "Task", "TaskLoss", "bind_data", "get_task", "register_task"]


def bind_data(space, defines: dict[str, int], data, task: str | None = None) -> dict[str, int]:
    """The -D values with what the data fixes bound to the space, as `task` (None: image
    classification) binds them; see `Task.bind`."""
    return get_task(task).bind(space, defines, data)
