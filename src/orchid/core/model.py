"""Runtime entities as the layers above the store see them (read models, immutable)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchid.core import expr
from orchid.core.states import FileStatus, JobStatus, WorkflowStatus, WorkStatus


@dataclass(frozen=True)
class Workflow:
    id: int
    name: str
    owner: str
    status: WorkflowStatus
    message: str
    params: Mapping[str, Any]
    created_at: float
    updated_at: float
    finished_at: float | None = None


@dataclass(frozen=True)
class Work:
    id: int
    workflow_id: int
    name: str
    iteration: int
    status: WorkStatus
    message: str = ""
    n_jobs: int = 0
    counts: Mapping[JobStatus, int] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class Job:
    id: int
    workflow_id: int
    work_id: int
    work_name: str
    name: str
    status: JobStatus
    args: Mapping[str, Any]
    attempt: int
    max_attempts: int
    exit_code: int | None = None
    result: Any = None
    error: str | None = None
    log_uri: str | None = None
    usage: Mapping[str, Any] | None = None
    ready_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class Collection:
    id: int
    workflow_id: int
    scope: str
    name: str
    manager: str


@dataclass(frozen=True)
class File:
    id: int
    collection_id: int
    name: str
    size: int
    status: FileStatus


@dataclass(frozen=True)
class Condition:
    """A predicate over run-time facts, written in Orchid's safe expression language."""

    source: str

    def holds(self, context: Mapping[str, Any]) -> bool:
        return bool(expr.evaluate(self.source, context))


@dataclass(frozen=True)
class Parameter:
    """A named input; ``value`` may hold ``${...}`` bindings resolved when its work starts."""

    name: str
    value: Any

    def bind(self, context: Mapping[str, Any]) -> Any:
        return expr.interpolate(self.value, context)
