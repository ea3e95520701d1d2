"""The event-bus seam. Implementations: ``memory`` (one process); later postgres, db."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class EventBus(Protocol):
    """Wakes sleeping agents. A lost notification only delays work until the next poll."""

    def notify(self, topic: str) -> None:
        """Something changed that agents listening on ``topic`` may act on."""
        ...

    def wait(self, timeout: float) -> bool:
        """Sleep until a notification or ``timeout`` seconds; True if woken."""
        ...
