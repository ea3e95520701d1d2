"""Inbound: job status messages consumed from a broker queue, instead of polling an executor.

A workload system that publishes its job state changes (PanDA sends ``job_status``
messages to a STOMP queue, as it does for iDDS) can tell an executor what changed, so the
executor asks about those jobs only, instead of about every job it follows every few
seconds. The receiver keeps a subscription open (``ack: client-individual``), reconnects
with a back-off when the broker goes away, and acknowledges a message only after the
handler took it: one that arrives while the agent is down waits on the queue for the next.
Executors still look at everything now and then, so a lost message delays an update
instead of losing it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from orchid.notify.base import DeliveryError
from orchid.notify.config import StompBroker
from orchid.notify.stomp import connect

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]


class StatusReceiver:
    """Hands every JSON object message of ``destination`` to a handler; see the module doc."""

    def __init__(
        self,
        broker: StompBroker,
        destination: str,
        name: str = "orchid-status",
        *,
        max_backoff: float = 30.0,
    ) -> None:
        self.broker = broker
        self.destination = destination
        self.name = name
        self._max_backoff = max_backoff
        self._handler: Handler | None = None
        self._conn: Any = None
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread: threading.Thread | None = None
        self.received = 0

    def start(self, handler: Handler) -> None:
        self._handler = handler
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._lost.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._disconnect()

    # stomp.py listener callbacks (its receiver thread)

    def on_message(self, frame: Any) -> None:
        try:
            doc = json.loads(frame.body)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and self._handler is not None:
            try:
                self._handler(doc)
            except Exception:  # keep the message: it comes again after a reconnect
                logger.exception("%s: the handler failed on a message", self.name)
                return
        else:
            logger.warning("%s: ignoring a message that is not a JSON object", self.name)
        self.received += 1
        try:
            self._conn.ack(frame.headers["message-id"], frame.headers["subscription"])
        except Exception:
            logger.debug("%s: ack failed", self.name, exc_info=True)

    def on_disconnected(self) -> None:
        self._lost.set()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._lost.clear()
                self._conn = connect(self.broker, self.name, self)
                self._conn.subscribe(self.destination, id="1", ack="client-individual")
                logger.info("%s: receiving from %s", self.name, self.destination)
                backoff = 0.5
                self._lost.wait()
            except DeliveryError as exc:
                logger.warning("%s: %s; again in %.1fs", self.name, exc, backoff)
            except Exception:
                logger.exception("%s: receiving failed", self.name)
            self._disconnect()
            self._stop.wait(backoff)
            backoff = min(self._max_backoff, backoff * 2)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:
                logger.debug("%s: disconnect failed", self.name, exc_info=True)
