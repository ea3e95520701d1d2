"""An in-process bus: a set of pending topics that the agent loop sleeps on."""

from __future__ import annotations

import threading


class MemoryBus:
    """Coalesces notifications: many changes while the loop works cost one wake-up.

    Also the local half of the cross-process buses, which deliver what they receive here.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._topics: set[str] = set()
        self.notified = 0

    def notify(self, topic: str) -> None:
        with self._cond:
            self.notified += 1
            self._topics.add(topic)
            self._cond.notify_all()

    def wake(self, topic: str) -> None:
        self.notify(topic)

    def deliver(self, topics: set[str]) -> None:
        """Add several topics at once (what a bus received from other processes)."""
        if topics:
            with self._cond:
                self._topics |= topics
                self._cond.notify_all()

    def wait(self, timeout: float) -> set[str]:
        with self._cond:
            if not self._topics and timeout > 0:
                self._cond.wait(timeout)
            topics, self._topics = self._topics, set()
        return topics

    def close(self) -> None:
        """Nothing to release."""
