"""What Function-as-a-Task raises: misuse found at once, and tasks that failed remotely."""

from __future__ import annotations

from orchid.errors import InvalidInput, OrchidError


class FatError(OrchidError):
    """Root of the errors of :mod:`orchid.fat`."""


class UsageError(FatError, InvalidInput, TypeError):
    """A decorator or a call used the wrong way; the message says how to fix it.

    Also a TypeError, since that is what Python raises for the same mistakes in plain calls.
    """


class SerializationError(FatError, InvalidInput):
    """An argument or a result cannot be sent to or from a job (not JSON, not picklable)."""


class TaskFailed(FatError):
    """A task's job failed: it raised (``remote_traceback`` says where), was killed, or
    was cancelled. A workflow may catch it and go on another way."""

    def __init__(
        self,
        task: str,
        job_id: int | None,
        reason: str,
        remote_traceback: str = "",
        *,
        index: int = 0,
    ) -> None:
        self.task = task
        self.job_id = job_id
        self.index = index
        self.reason = reason
        self.remote_traceback = remote_traceback
        where = f" (job {job_id})" if job_id is not None else ""
        text = f"task {task}{where} failed: {reason}"
        if remote_traceback:
            text += "\n\nremote traceback:\n" + remote_traceback.rstrip()
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild,
            (self.task, self.job_id, self.reason, self.remote_traceback, self.index),
        )


def _rebuild(task: str, job_id: int | None, reason: str, tb: str, index: int) -> TaskFailed:
    return TaskFailed(task, job_id, reason, tb, index=index)


class WorkflowFailed(FatError):
    """A workflow run on the server side failed, or ended without a result."""
