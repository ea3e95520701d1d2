"""The engine in this process: every agent and executor, in a thread or in the caller's.

:class:`Engine` is how ``orchid run``, ``orchid agents``, ``orchid up``, :mod:`orchid.testing`
and the embedded backend (:mod:`orchid.backend.embedded`) run agents: it builds the runner
(:func:`~orchid.engine.runner.make_runner`), which owns every executor it made, runs it
(:meth:`Engine.start` in a thread, :meth:`Engine.run` in the caller's), waits for a workflow
to end (:meth:`Engine.wait`) and, on :meth:`Engine.close` or at the end of a ``with``
block, stops the loop and closes the executors and the agents in the order that hands the
jobs in flight back at once (see :meth:`Runner.close`). The database is the caller's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from orchid.bus.base import EventBus
from orchid.core.states import TERMINAL_WORKFLOW
from orchid.engine.metrics import NO_METRICS, EngineMetrics
from orchid.engine.runner import Runner, make_runner
from orchid.settings import Settings
from orchid.store import workflows
from orchid.store.db import Database

log = logging.getLogger(__name__)
JOIN_S = 30.0  # how long close() waits for the agents' thread to end its round


class Engine:
    """Agents over ``db`` as ``settings`` say (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        bus: EventBus | None = None,
        metrics: EngineMetrics = NO_METRICS,
        name: str = "orchid-agents",
    ) -> None:
        self.settings = settings
        self.db = db
        self.name = name
        self.runner: Runner = make_runner(settings, db, bus=bus, metrics=metrics)
        self.stopped = threading.Event()  # the loop ended (or never started)
        self.stopped.set()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._closed = False

    # --- running ------------------------------------------------------------------------

    def start(
        self,
        until: Callable[[], bool] | None = None,
        *,
        check_every: float = 0.25,
        on_failure: Callable[[BaseException], object] | None = None,
    ) -> Engine:
        """Run the agents in a thread of their own, until :meth:`stop` or ``until()``.

        What stops the loop with an exception is kept for :meth:`raise_failure` (and
        :meth:`wait`), and handed to ``on_failure`` in the agents' thread."""
        if self._thread is not None:
            return self
        self.stopped.clear()

        def loop() -> None:
            try:
                self.runner.run(until=until, check_every=check_every)
            except BaseException as exc:  # handed to the caller's thread
                log.debug("the agents stopped", exc_info=True)
                self._failure = exc
                if on_failure is not None:
                    on_failure(exc)
            finally:
                self.stopped.set()

        self._thread = threading.Thread(target=loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    def run(self, *, idle_exit: float | None = None) -> None:
        """Run the agents in this thread until :meth:`stop` (or idle for ``idle_exit`` s)."""
        self.stopped.clear()
        try:
            self.runner.run(idle_exit=idle_exit)
        finally:
            self.stopped.set()

    def ended(self, workflow_id: int) -> bool:
        """Whether the workflow has reached a final status."""
        with self.db.engine.connect() as conn:
            return workflows.get(conn, workflow_id).status in TERMINAL_WORKFLOW

    def wait(self, workflow_id: int, timeout: float | None = None, poll: float = 0.05) -> None:
        """Return once the workflow ended; raise what stopped the agents, or TimeoutError
        after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.ended(workflow_id):
            self.raise_failure()
            if self.stopped.is_set() and self._thread is not None:
                raise RuntimeError(f"the agents stopped before workflow {workflow_id} ended")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"workflow {workflow_id} did not end within {timeout}s")
            self.stopped.wait(poll)

    def raise_failure(self) -> None:
        """Raise what stopped the agents' thread, if something did."""
        if self._failure is not None:
            raise self._failure

    def wake(self, topic: str = "workflows") -> None:
        """Tell the agents something changed (what this process wrote wakes no bus)."""
        self.runner.bus.notify(topic)

    # --- ending -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end its round and return (from any thread, signal handlers too)."""
        self.runner.stop()

    def close(self) -> None:
        """Stop the loop, wait for its thread, close every executor and agent. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.runner.stop()
        if self._thread is not None:
            self._thread.join(JOIN_S)
        self.runner.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
