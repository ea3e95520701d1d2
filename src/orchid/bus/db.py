"""An event bus over a table of the database itself (``bus_events``): for SQLite, or any
database without LISTEN/NOTIFY, when several processes share it.

A sender thread writes queued topics as rows (several per transaction); a reader thread
looks for new rows every ``interval`` seconds (a cheap indexed read, which never blocks
writers in SQLite's WAL mode) and delivers those other processes wrote. Rows older than a
minute are deleted. Topics reach this process's own agents at once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from orchid.bus.memory import MemoryBus
from orchid.bus.postgres import EVERYTHING
from orchid.store import signals
from orchid.store.db import Database

log = logging.getLogger(__name__)
KEEP_S = 60.0


class DbBus:
    """See the module docstring."""

    def __init__(self, db: Database, *, interval: float = 0.05) -> None:
        self._db = Database(db.url)  # a pool of its own: never wait behind the agents' one
        self._interval = interval
        self._local = MemoryBus()
        self.origin = uuid.uuid4().hex[:12]
        self._outbox: set[str] = set()
        self._out_cond = threading.Condition()
        self._closed = threading.Event()
        self._last = -1
        try:  # signals from now on: those of other processes written before are old news
            with self._db.engine.connect() as conn:
                self._last = signals.last_id(conn)
        except Exception as exc:  # the reader thread tries again
            log.warning("event bus: cannot read signals: %s", exc)
        self._threads = [
            threading.Thread(target=self._read, name="orchid-bus-read", daemon=True),
            threading.Thread(target=self._send, name="orchid-bus-send", daemon=True),
        ]
        for t in self._threads:
            t.start()

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
        self._db.dispose()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                with self._db.engine.connect() as conn:
                    if self._last < 0:  # (again) after losing the database: look at all
                        self._last = signals.last_id(conn)
                        self._local.deliver({EVERYTHING})
                    rows = signals.since(conn, self._last)
                if rows:
                    self._last = rows[-1][0]
                    self._local.deliver({t for _, t, o in rows if o != self.origin})
            except Exception as exc:  # the database is away: try again; agents poll anyway
                log.warning("event bus: cannot read signals: %s", exc)
                self._last = -1
                self._closed.wait(1.0)
            self._closed.wait(self._interval)

    def _send(self) -> None:
        next_prune = 0.0
        while True:
            with self._out_cond:
                while not self._outbox and not self._closed.is_set():
                    self._out_cond.wait()
                if self._closed.is_set():
                    break
                topics, self._outbox = self._outbox, set()
            now = time.time()
            try:
                with self._db.begin() as conn:
                    signals.publish(conn, sorted(topics), self.origin, now)
                    if now >= next_prune:
                        signals.prune(conn, now - KEEP_S)
                        next_prune = now + KEEP_S / 4
            except Exception as exc:
                log.warning("event bus: cannot write signals: %s", exc)
                self._closed.wait(0.5)
