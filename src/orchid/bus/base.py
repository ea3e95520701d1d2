"""The event-bus seam. Implementations: ``memory`` (one process), ``postgres``
(LISTEN/NOTIFY) and ``db`` (an events table, for any database).

A bus only wakes agents: a lost notification delays work until the next poll, it never
loses it (docs/architecture.md, "The way of a job"). Notifications name a *topic* (what
kind of rows changed: ready jobs, ended jobs, workflows to look at...); the agent loop's
coordinator merges the topics that arrive while it works and decides what to run first.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class EventBus(Protocol):
    """Wakes sleeping agents, in this process and (for some buses) in others."""

    def notify(self, topic: str) -> None:
        """Something changed that agents listening on ``topic`` may act on, in any process."""
        ...

    def wake(self, topic: str) -> None:
        """Like :meth:`notify`, for this process only (an executor's own results)."""
        ...

    def wait(self, timeout: float) -> set[str]:
        """Sleep until a notification or ``timeout`` seconds; return the topics notified
        since the last call, each once (empty: nothing came)."""
        ...

    def close(self) -> None:
        """Stop listening and release connections; later notifications are dropped."""
        ...
