"""Function-as-a-Task: write a workflow as plain Python functions.

``@task`` makes a function's calls run as jobs; ``@workflow`` makes a function a workflow,
whose task calls add works and return futures. See :mod:`orchid.fat.decorators`.
Imported lazily, so that ``orchid-job`` (which imports this package) starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchid.fat.decorators import Task, Workflow, WorkflowRun, task, workflow
    from orchid.fat.errors import (
        FatError,
        SerializationError,
        TaskFailed,
        UsageError,
        WorkflowFailed,
    )
    from orchid.fat.futures import MapFuture, TaskFuture

_WHERE = {
    "Task": "decorators",
    "Workflow": "decorators",
    "WorkflowRun": "decorators",
    "task": "decorators",
    "workflow": "decorators",
    "FatError": "errors",
    "SerializationError": "errors",
    "TaskFailed": "errors",
    "UsageError": "errors",
    "WorkflowFailed": "errors",
    "MapFuture": "futures",
    "TaskFuture": "futures",
}
__all__ = [
    "FatError",
    "MapFuture",
    "SerializationError",
    "Task",
    "TaskFailed",
    "TaskFuture",
    "UsageError",
    "Workflow",
    "WorkflowFailed",
    "WorkflowRun",
    "task",
    "workflow",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'orchid.fat' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"orchid.fat.{module}"), name)
