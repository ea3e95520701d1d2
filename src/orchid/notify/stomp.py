"""STOMP: notifications as messages to a topic or queue of ActiveMQ or RabbitMQ (stomp.py).

One message per notification, JSON, with the headers ``orchid-message-id`` (the
deterministic id to de-duplicate on), ``orchid-kind`` and ``persistent: true``. A batch is
sent in one burst; the last frame asks for a RECEIPT, and since a broker handles one
connection's frames in order, the receipt confirms the whole batch. No receipt in time, a
dropped connection or a broker ERROR frame fails the batch, which the conductor resends
(the same ids) after a back-off.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from orchid.extras import missing
from orchid.notify.base import DeliveryError, Notification
from orchid.notify.config import StompBroker

logger = logging.getLogger(__name__)

RECEIPT_TIMEOUT_S = 30.0


class _Listener:
    """Collects receipts and errors of one connection (stomp.py calls it from its thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.receipts: dict[str, threading.Event] = {}
        self.error: str | None = None
        self.lost = threading.Event()

    def on_receipt(self, frame: Any) -> None:
        with self.lock:
            event = self.receipts.get(frame.headers.get("receipt-id", ""))
        if event is not None:
            event.set()

    def on_error(self, frame: Any) -> None:
        with self.lock:
            self.error = frame.headers.get("message") or str(frame.body)[:200] or "broker error"
        self._wake_all()

    def on_disconnected(self) -> None:
        self.lost.set()
        self._wake_all()

    def _wake_all(self) -> None:
        with self.lock:
            events = list(self.receipts.values())
        for event in events:
            event.set()


def connect(broker: StompBroker, name: str, listener: Any = None) -> Any:
    """A connected stomp.py connection to ``broker``; DeliveryError if it cannot be had."""
    try:
        import stomp
    except ModuleNotFoundError as exc:
        raise missing("stomp", exc, "a STOMP broker") from None

    conn = stomp.Connection(
        [(broker.host, broker.port)],
        heartbeats=(broker.heartbeat_ms, broker.heartbeat_ms),
        vhost=broker.vhost,
        reconnect_attempts_max=1,
        timeout=broker.connect_timeout,
    )
    if broker.ssl:
        conn.set_ssl([(broker.host, broker.port)])
    if listener is not None:
        conn.set_listener(name, listener)
    try:
        conn.connect(broker.user, broker.secret(), wait=True)
    except Exception as exc:
        raise DeliveryError(
            f"cannot connect to the STOMP broker {broker.host}:{broker.port}: {exc or type(exc).__name__}"
        ) from None
    return conn


class StompSender:
    """Sends notifications to ``destination`` on ``broker``; reconnects when needed."""

    def __init__(self, broker: StompBroker, destination: str, name: str = "orchid") -> None:
        self.broker = broker
        self.destination = destination
        self.name = name
        self._conn: Any = None
        self._listener: _Listener | None = None

    def send(self, batch: Sequence[Notification]) -> None:
        self.send_json(
            [(n.to_json(), {"orchid-message-id": n.id, "orchid-kind": n.kind}) for n in batch]
        )

    def send_json(self, batch: Sequence[tuple[Mapping[str, Any], Mapping[str, str]]]) -> None:
        """Send JSON objects (each with its own headers), persistent, and wait for the
        broker's receipt of the last: DeliveryError if it does not come."""
        if not batch:
            return
        if self._conn is None or not self._conn.is_connected():
            self.close()
            self._listener = _Listener()
            self._conn = connect(self.broker, self.name, self._listener)
        conn, listener = self._conn, self._listener
        assert listener is not None  # set with the connection
        receipt = uuid.uuid4().hex
        done = threading.Event()
        with listener.lock:
            listener.receipts[receipt] = done
        try:
            for i, (body, extra) in enumerate(batch):
                headers = {**extra, "persistent": "true"}
                if i == len(batch) - 1:
                    headers["receipt"] = receipt
                conn.send(
                    self.destination,
                    json.dumps(body, separators=(",", ":")),
                    content_type="application/json",
                    headers=headers,
                )
            if not done.wait(RECEIPT_TIMEOUT_S):
                raise DeliveryError(f"no receipt from the broker in {RECEIPT_TIMEOUT_S:g}s")
            if listener.error or listener.lost.is_set():
                raise DeliveryError(
                    f"the broker refused the batch: {listener.error or 'disconnected'}"
                )
        except DeliveryError:
            self.close()
            raise
        except Exception as exc:  # the connection broke mid-batch
            self.close()
            raise DeliveryError(
                f"sending to {self.destination} failed: {exc or type(exc).__name__}"
            ) from None
        finally:
            with listener.lock:
                listener.receipts.pop(receipt, None)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:
                logger.debug("STOMP disconnect failed", exc_info=True)
