"""The server over one WebSocket, the worker channel, as a worker's
:class:`~orchid.worker.loop.Lessor`: the same four calls as ``orchid.worker.http``, each a
text frame answered before the next is sent (``orchid.executors.workerwire``).

An HTTP request costs a worker's report about 4 ms on top of the server's transaction
(routing, dependencies, headers, the client's request machinery), and a chain's next job
waits on that report; a frame on an open channel costs a fraction of a millisecond.

Where there is no channel (a server without WebSocket support, a proxy that does not
pass the upgrade, a broken connection), calls go as HTTP requests, and the channel is
tried again a minute later. A call lost with its channel is sent again as a request when
sending it twice is harmless (renew, report, release: a second report of recorded ends
is refused as not held, which the worker drops), as the HTTP client retries; a lease is
not (its jobs, if it was applied, run again once their leases lapse), unless its frame
could not be sent (a channel the server closed, as when it restarts): then it was not. A token the server
refuses (401, 403) is raised at once, as a request's refusal is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from orchid import __version__
from orchid.client._http import RETRY_STATUSES
from orchid.client.errors import Unreachable, from_response
from orchid.executors.workerwire import (
    CHANNEL,
    call_frame,
    read_frame,
)
from orchid.worker.http import API, Calls, HttpLessor, answer_of

log = logging.getLogger(__name__)

Out = TypeVar("Out", bound=BaseModel)
RETRY_S = 60.0  # after the channel failed, calls go as requests this long
MAX_ANSWER_BYTES = 256 * 1024 * 1024  # a lease of MAX_BATCH jobs with their arguments


class ChannelLessor(Calls):
    """A worker's view of the server at ``url`` (``token``: a worker's token) through the
    worker channel, with HTTP requests (``http``) where there is none."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 60.0,
        open_timeout: float = 10.0,
        verify: Any = True,
        http: HttpLessor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http or HttpLessor(url, token, timeout=timeout, verify=verify)
        self.url = self._http.url
        scheme, rest = self.url.split("://", 1)
        self._address = ("wss" if scheme == "https" else "ws") + "://" + rest + API + CHANNEL
        self._ssl = _ssl_context(verify) if scheme == "https" else None
        self._headers = {
            "Authorization": f"Bearer {token}",
            "User-Agent": f"orchid-worker/{__version__}",
        }
        self._timeout = timeout  # for an answer
        self._open_timeout = open_timeout  # for the handshake (its token looked up)
        self._clock = clock
        self._stack = contextlib.ExitStack()
        self._conn: ClientConnection | None = None
        self._next_try = 0.0
        self._seq = 0
        self.calls = {"channel": 0, "http": 0}  # how the calls went (for tests and logs)

    def close(self) -> None:
        self._drop()
        self._http.close()

    @property
    def open(self) -> bool:
        """Whether the channel is open (else calls go as HTTP requests)."""
        return self._conn is not None

    def call(self, op: str, body: BaseModel, out: type[Out], idempotent: bool) -> Out:
        conn = self._connection()
        if conn is not None:
            self._seq += 1
            try:
                conn.send(call_frame(self._seq, op, body))
            except (WebSocketException, OSError, TimeoutError) as exc:
                # not sent whole (a channel the server closed, a restart): never applied
                self._fail(f"the channel broke: {exc or type(exc).__name__}")
            else:
                try:
                    text = conn.recv(timeout=self._timeout)
                except (WebSocketException, OSError, TimeoutError) as exc:
                    self._fail(f"the channel broke: {exc or type(exc).__name__}")
                    if not idempotent:
                        raise Unreachable(
                            f"lost the worker channel to {self.url} after sending {op} "
                            f"({exc or type(exc).__name__}): it may or may not have been applied"
                        ) from None
                else:
                    status, content = self._answer(text)
                    if not (idempotent and status in RETRY_STATUSES):
                        self.calls["channel"] += 1
                        return answer_of(status, content, out)
        self.calls["http"] += 1  # (the HTTP client retries what may be retried)
        return self._http.call(op, body, out, idempotent)

    def _answer(self, text: str | bytes) -> tuple[int, str]:
        """The status and body of an answer to the call just sent."""
        try:
            if not isinstance(text, str):
                raise ValueError("a binary frame")
            seq, status, content = read_frame(text)
            if seq not in (self._seq, 0) or not status.isdigit():
                raise ValueError(f"answer {seq} {status!r} to call {self._seq}")
        except ValueError as exc:
            self._fail(f"it answered something else than a call's answer ({exc})")
            raise Unreachable(
                f"the worker channel of {self.url} answered what is not an answer ({exc}): "
                "is this an Orchid server of this version?"
            ) from None
        if int(status) in (401, 403):
            self._drop()  # (the server closes it too)
        return int(status), content

    def _connection(self) -> ClientConnection | None:
        """The open channel, opened now if due; None: go by HTTP."""
        if self._conn is not None or self._clock() < self._next_try:
            return self._conn
        try:
            self._conn = self._stack.enter_context(
                connect(
                    self._address,
                    ssl=self._ssl,
                    additional_headers=self._headers,
                    user_agent_header=None,  # (it is among the headers)
                    compression=None,  # small frames: deflating costs more than it saves
                    open_timeout=self._open_timeout,
                    max_size=MAX_ANSWER_BYTES,
                )
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):  # refused as a request would be: say why
                raise from_response(status, _json(exc.response.body), f"HTTP {status}") from None
            self._fail(f"the server answered the handshake with HTTP {status}")
        except (WebSocketException, OSError, TimeoutError) as exc:
            self._fail(f"cannot open it: {exc or type(exc).__name__}")
        else:
            log.info("worker channel to %s open", self.url)
        return self._conn

    def _fail(self, why: str) -> None:
        self._drop()
        self._next_try = self._clock() + RETRY_S
        log.warning(
            "worker channel to %s: %s; calls go as HTTP requests, the channel is tried again "
            "in %.0f s",
            self.url,
            why,
            RETRY_S,
        )

    def _drop(self) -> None:
        self._conn = None
        with contextlib.suppress(WebSocketException, OSError, TimeoutError, RuntimeError):
            self._stack.close()


def _ssl_context(verify: Any) -> ssl.SSLContext:
    """The TLS the HTTP client uses (its CA bundle, SSL_CERT_FILE, ``verify``)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    return httpx.create_ssl_context(verify=verify)


def _json(raw: bytes | bytearray | None) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
