"""PostgreSQL LISTEN/NOTIFY: agents in every process wake within milliseconds of a change.

Two threads per bus, each with a connection of its own in autocommit mode: one sends what
:meth:`PostgresBus.notify` queued (several topics in one round trip), one listens and
delivers what other processes sent. Topics reach this process's own agents at once,
without the round trip. When the server goes away (a restart) both reconnect with
back-off; what was sent meanwhile is lost, so a reconnected listener wakes every topic
once, and agents also poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from orchid.extras import missing

try:
    import psycopg
except ModuleNotFoundError as exc:
    raise missing("postgres", exc, "PostgreSQL") from None

from orchid.bus.relay import RelayBus
from orchid.store import signals

log = logging.getLogger(__name__)
EVERYTHING = "*"  # delivered when notifications may have been missed


def conninfo(url: str) -> str:
    """A psycopg connection string from an SQLAlchemy URL (``postgresql+psycopg://...``)."""
    parsed = sa.engine.make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class PostgresBus(RelayBus):
    """See the module docstring. ``url`` is the database's SQLAlchemy or libpq URL."""

    def __init__(
        self,
        url: str,
        channel: str = signals.CHANNEL,
        *,
        retry_max: float = 2.0,
        connect_wait: float = 5.0,
        connect_args: Mapping[str, Any] | None = None,
    ) -> None:
        """``connect_args``: more psycopg connect arguments (the database's keepalives)."""
        super().__init__()
        self._conninfo = conninfo(url)
        self._connect_args = dict(connect_args or {})
        self._channel = channel
        self._retry_max = retry_max
        self.listening = threading.Event()  # set while the listener is connected
        self._start(listen=self._listen, send=self._send)
        # notifications sent before the listener is connected would be missed: give it a
        # moment (a database that is down does not hold up the agents; they poll)
        self.listening.wait(connect_wait)

    # --- threads ------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=3, **self._connect_args
        )

    def _listen(self) -> None:
        delay = 0.05
        while not self._closed.is_set():
            try:
                with self._connect() as conn:
                    signals.pg_listen(conn, self._channel)
                    self.listening.set()
                    self._local.deliver({EVERYTHING})  # what was sent while we were away
                    delay = 0.05
                    while not self._closed.is_set():
                        got = set()
                        for n in conn.notifies(timeout=0.25, stop_after=1000):
                            origin, _, topic = n.payload.partition(" ")
                            if origin != self.origin and topic:
                                got.add(topic)
                        self._local.deliver(got)
            except psycopg.Error as exc:
                if self._closed.is_set():
                    break
                log.warning("event bus: listening failed (%s); retrying in %.2fs", exc, delay)
            finally:
                self.listening.clear()
            self._closed.wait(delay)
            delay = min(delay * 2, self._retry_max)

    def _send(self) -> None:
        conn: psycopg.Connection | None = None
        delay = 0.05
        while (topics := self._next_topics()) is not None:
            try:
                if conn is None or conn.closed:
                    conn = self._connect()
                signals.pg_notify(
                    conn, [f"{self.origin} {t}" for t in sorted(topics)], self._channel
                )
                delay = 0.05
            except psycopg.Error as exc:  # dropped: the agents' polls find the rows anyway
                log.warning("event bus: cannot notify (%s); retrying in %.2fs", exc, delay)
                if conn is not None:
                    conn.close()
                conn = None
                self._closed.wait(delay)
                delay = min(delay * 2, self._retry_max)
        if conn is not None:
            conn.close()
