"""Explicit state machines: one transition table and one transition function per entity.

Nothing else in Orchid decides whether a status change is legal. The engine
calls these functions for single changes it decides (a workflow's status);
the store moves rows in bulk with set-based updates whose ``WHERE status ...``
guards allow only moves these tables list. The test suite enforces that: it
installs database triggers generated from these tables that abort any other
move (``tests/conftest.py``), on SQLite and PostgreSQL. See docs/architecture.md,
"State machines".
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Literal, TypeVar

from orchid.core.retry import RetryPolicy
from orchid.errors import InvalidTransition


class WorkflowStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUSPENDED = "suspended"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL = "partial"
    CANCELLED = "cancelled"


class WorkStatus(StrEnum):
    WAITING = "waiting"  # created; waiting for the works its jobs depend on to have jobs
    READY = "ready"  # may be turned into jobs
    RUNNING = "running"  # has jobs
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL = "partial"  # some jobs succeeded, some failed
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # its condition was false, or what it needed did not succeed


class JobStatus(StrEnum):
    WAITING = "waiting"  # parents not done
    READY = "ready"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # a parent failed or was skipped, so it can never run


class FileStatus(StrEnum):
    NEW = "new"
    STAGING = "staging"
    AVAILABLE = "available"
    PROCESSING = "processing"
    PROCESSED = "processed"
    DELETED = "deleted"
    FAILED = "failed"


W, K, J, F = WorkflowStatus, WorkStatus, JobStatus, FileStatus

WORKFLOW_TRANSITIONS: Mapping[WorkflowStatus, frozenset[WorkflowStatus]] = {
    W.PENDING: frozenset({W.RUNNING, W.CANCELLED, W.FAILED}),
    W.RUNNING: frozenset({W.SUSPENDED, W.SUCCEEDED, W.FAILED, W.PARTIAL, W.CANCELLED}),
    W.SUSPENDED: frozenset({W.RUNNING, W.CANCELLED}),
    # retry re-opens a finished workflow whose failed jobs are run again
    W.FAILED: frozenset({W.RUNNING}),
    W.PARTIAL: frozenset({W.RUNNING}),
    W.SUCCEEDED: frozenset(),
    W.CANCELLED: frozenset(),
}

WORK_TRANSITIONS: Mapping[WorkStatus, frozenset[WorkStatus]] = {
    # waiting → failed: its condition or bindings could not be evaluated, or `otherwise: fail`
    K.WAITING: frozenset({K.READY, K.CANCELLED, K.SKIPPED, K.FAILED}),
    K.READY: frozenset({K.RUNNING, K.CANCELLED, K.SKIPPED, K.FAILED}),
    K.RUNNING: frozenset({K.SUCCEEDED, K.FAILED, K.PARTIAL, K.CANCELLED}),
    # retry: a work that ran goes on running its reopened jobs; one that never ran waits again
    K.FAILED: frozenset({K.RUNNING, K.WAITING}),
    K.PARTIAL: frozenset({K.RUNNING}),
    K.SUCCEEDED: frozenset(),
    K.CANCELLED: frozenset(),
    K.SKIPPED: frozenset({K.WAITING}),  # retry: skipped because something upstream failed
}

JOB_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    J.WAITING: frozenset({J.READY, J.CANCELLED, J.SKIPPED}),
    J.READY: frozenset({J.SUBMITTED, J.CANCELLED, J.SKIPPED}),
    # submitted/running → ready: the executor lost it (agent restart, worker death)
    J.SUBMITTED: frozenset({J.RUNNING, J.SUCCEEDED, J.FAILED, J.CANCELLED, J.READY}),
    J.RUNNING: frozenset({J.SUCCEEDED, J.FAILED, J.CANCELLED, J.READY}),
    J.FAILED: frozenset({J.READY}),  # automatic retry while attempts remain, or user retry
    J.SUCCEEDED: frozenset(),
    J.CANCELLED: frozenset(),
    J.SKIPPED: frozenset({J.WAITING}),  # user retry re-opens jobs skipped behind a failure
}

FILE_TRANSITIONS: Mapping[FileStatus, frozenset[FileStatus]] = {
    F.NEW: frozenset({F.STAGING, F.AVAILABLE, F.FAILED}),
    F.STAGING: frozenset({F.AVAILABLE, F.FAILED}),
    F.AVAILABLE: frozenset({F.PROCESSING, F.DELETED}),
    F.PROCESSING: frozenset({F.PROCESSED, F.AVAILABLE, F.FAILED}),
    F.PROCESSED: frozenset({F.DELETED}),
    # a failed file is staged again while attempts remain; its job, if a retry reopened it,
    # processes it again
    F.FAILED: frozenset({F.STAGING, F.PROCESSING}),
    F.DELETED: frozenset(),
}

TERMINAL_WORKFLOW = frozenset({W.SUCCEEDED, W.FAILED, W.PARTIAL, W.CANCELLED})
TERMINAL_WORK = frozenset({K.SUCCEEDED, K.FAILED, K.PARTIAL, K.CANCELLED, K.SKIPPED})
TERMINAL_JOB = frozenset({J.SUCCEEDED, J.FAILED, J.CANCELLED, J.SKIPPED})
ACTIVE_JOB = frozenset({J.SUBMITTED, J.RUNNING})

# what a user may ask of a workflow (``orchid abort`` ..., the API's command routes, the UI's
# buttons); the conductor carries each out through the tables above
Action = Literal["abort", "suspend", "resume", "retry", "finish"]

S = TypeVar("S", WorkflowStatus, WorkStatus, JobStatus, FileStatus)


def _transition(kind: str, table: Mapping[S, frozenset[S]], current: S, target: S) -> S:
    if target == current:
        return target
    if target not in table[current]:
        allowed = ", ".join(sorted(table[current])) or "nothing (it is final)"
        raise InvalidTransition(
            f"{kind} cannot go from {current} to {target}; from {current} it may go to {allowed}"
        )
    return target


def workflow_transition(current: WorkflowStatus, target: WorkflowStatus) -> WorkflowStatus:
    """Return ``target`` if a workflow may move there from ``current``, else raise."""
    return _transition("workflow", WORKFLOW_TRANSITIONS, current, target)


def work_transition(current: WorkStatus, target: WorkStatus) -> WorkStatus:
    """Return ``target`` if a work may move there from ``current``, else raise."""
    return _transition("work", WORK_TRANSITIONS, current, target)


def job_transition(current: JobStatus, target: JobStatus) -> JobStatus:
    """Return ``target`` if a job may move there from ``current``, else raise."""
    return _transition("job", JOB_TRANSITIONS, current, target)


def file_transition(current: FileStatus, target: FileStatus) -> FileStatus:
    """Return ``target`` if a file may move there from ``current``, else raise."""
    return _transition("file", FILE_TRANSITIONS, current, target)


def sources(table: Mapping[S, frozenset[S]], target: S) -> frozenset[S]:
    """Every status from which ``target`` may be reached: the store's guard for bulk updates."""
    return frozenset(s for s, nexts in table.items() if target in nexts)


def work_outcome(counts: Mapping[JobStatus, int]) -> WorkStatus:
    """The terminal status of a work whose jobs are all terminal, from its job counts.

    A work with no jobs (an empty map) succeeded: there was nothing to do.
    Cancelled jobs make the work cancelled; otherwise any failure is a failure
    unless some jobs succeeded (partial). Skipped jobs follow a failure, so they
    do not count as success.
    """
    succeeded = counts.get(J.SUCCEEDED, 0)
    failed = counts.get(J.FAILED, 0) + counts.get(J.SKIPPED, 0)
    if counts.get(J.CANCELLED, 0):
        return K.CANCELLED
    if failed == 0:
        return K.SUCCEEDED
    return K.PARTIAL if succeeded else K.FAILED


def after_failure(
    attempt: int, max_attempts: int, policy: RetryPolicy, now: float
) -> tuple[JobStatus, float]:
    """A failed attempt: back to ``ready`` after the policy's (capped, exponential) delay
    while attempts remain. ``max_attempts`` is the job's own count (the policy's, plus
    what a user's retry granted).

    Returns the job's next status and the earliest time it may be submitted again.
    """
    if attempt < max_attempts:
        return J.READY, now + policy.delay(attempt)
    return J.FAILED, 0.0
