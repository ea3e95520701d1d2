"""Orchid: workflow orchestration for data-intensive science.

Workflows are graphs of works, each a group of jobs, kept in a relational
database and run by stateless agents. Start with ``orchid run TEMPLATE``.
"""

from typing import TYPE_CHECKING, Any

from orchid.errors import OrchidError, TemplateError

if TYPE_CHECKING:
    from orchid.fat.decorators import task, workflow
    from orchid.fat.errors import TaskFailed

__version__ = "0.1.0"
__all__ = ["OrchidError", "TaskFailed", "TemplateError", "__version__", "task", "workflow"]


def __getattr__(name: str) -> Any:
    """``orchid.task``, ``orchid.workflow``, ``orchid.TaskFailed``: imported on first use, so
    that ``import orchid`` stays light (every job imports it)."""
    if name in ("task", "workflow", "TaskFailed"):
        import orchid.fat

        return getattr(orchid.fat, name)
    raise AttributeError(f"module 'orchid' has no attribute {name!r}")
