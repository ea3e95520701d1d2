"""What the buses that reach other processes share: topics reach this process's own
agents at once, and go into an outbox that a sender thread of the bus empties (several
topics in one write) while a receiver thread delivers what other processes sent."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from orchid.bus.memory import MemoryBus


class RelayBus:
    """The local half of a cross-process bus; subclasses send and receive
    (``start(receive, send)``, ``send`` calling :meth:`_next_topics`)."""

    def __init__(self) -> None:
        self._local = MemoryBus()
        self.origin = uuid.uuid4().hex[:12]  # what other processes see as the sender
        self._outbox: set[str] = set()
        self._out_cond = threading.Condition()
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    def _start(self, **targets: Callable[[], None]) -> None:
        """Run these methods each in a thread of its own, ``orchid-bus-<name>``."""
        self._threads = [
            threading.Thread(target=run, name=f"orchid-bus-{name}", daemon=True)
            for name, run in targets.items()
        ]
        for t in self._threads:
            t.start()

    def _next_topics(self) -> set[str] | None:
        """For the sender: the topics queued since the last call, once there are some;
        None when the bus is closed."""
        with self._out_cond:
            while not self._outbox and not self._closed.is_set():
                self._out_cond.wait()
            if self._closed.is_set():
                return None
            topics, self._outbox = self._outbox, set()
            return topics

    # --- EventBus -----------------------------------------------------------------------

    def notify(self, topic: str) -> None:
        self._local.notify(topic)
        with self._out_cond:
            if not self._closed.is_set():
                self._outbox.add(topic)
                self._out_cond.notify()

    def wake(self, topic: str) -> None:
        self._local.notify(topic)

    def wait(self, timeout: float) -> set[str]:
        return self._local.wait(timeout)

    def close(self) -> None:
        self._closed.set()
        with self._out_cond:
            self._out_cond.notify()
        for t in self._threads:
            t.join(5)
