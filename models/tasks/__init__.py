"""The tasks nextsweep can search: one object per task behind the `Task` base, looked up by name;
a new task registers itself with `register_task` (and its data with `data_io.register_kind`)."""

from models.config import ModelError, allow
from models.tasks._base import LossFn, Task, outputs
from models.tasks.category import CategoryTask
from models.tasks.location import LocationTask
from models.tasks.vector import VectorTask

TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Make `task` the task named `task.name` (a later registration of the name replaces it); its
    loss and metric names become valid config values (models.config.allow)."""
    allow(task.losses, task.metrics, task.minimized)
    TASKS[task.name] = task
    return task


for _task in (LocationTask(), CategoryTask(), VectorTask()):
    register_task(_task)


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ModelError(f"task {name!r}: not supported; use one of {', '.join(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "Task", "LossFn", "get_task", "outputs", "register_task"]
