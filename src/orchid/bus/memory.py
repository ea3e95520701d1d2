"""An in-process bus: one event, set by any thread, that the agent loop sleeps on."""

from __future__ import annotations

import threading


class MemoryBus:
    """Coalesces notifications: many changes while the loop works cost one wake-up."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.notified = 0

    def notify(self, topic: str) -> None:
        self.notified += 1
        self._event.set()

    def wait(self, timeout: float) -> bool:
        woken = self._event.wait(timeout)
        self._event.clear()
        return woken
