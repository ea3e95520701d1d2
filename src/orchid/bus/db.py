"""An event bus over a table of the database itself (``bus_events``): for SQLite, or any
database without LISTEN/NOTIFY, when several processes share it.

A sender thread writes queued topics as rows (several per transaction); a reader thread
looks for new rows every ``interval`` seconds (a cheap indexed read, which never blocks
writers in SQLite's WAL mode) and delivers those other processes wrote. Rows older than a
minute are deleted. Topics reach this process's own agents at once.
"""

from __future__ import annotations

import logging
import time

from orchid.bus.postgres import EVERYTHING
from orchid.bus.relay import RelayBus
from orchid.store import signals
from orchid.store.db import Database

log = logging.getLogger(__name__)
KEEP_S = 60.0


class DbBus(RelayBus):
    """See the module docstring."""

    def __init__(self, db: Database, *, interval: float = 0.05) -> None:
        super().__init__()
        self._db = Database(
            db.url, lease_seconds=db.lease_seconds
        )  # a pool of its own: never wait behind the agents' one
        self._interval = interval
        self._last = -1
        try:  # signals from now on: those of other processes written before are old news
            with self._db.engine.connect() as conn:
                self._last = signals.last_id(conn)
        except Exception as exc:  # the reader thread tries again
            log.warning("event bus: cannot read signals: %s", exc)
        self._start(read=self._read, send=self._send)

    def close(self) -> None:
        super().close()
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
        while (topics := self._next_topics()) is not None:
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
