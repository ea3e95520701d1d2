"""A raw client of the worker channel for tests: the worker routes' POSTs sent as frames
(``orchid.executors.workerwire``), answered as a route answers, so that the same test can
speak to the routes (httpx) or to the channel."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from orchid.executors.workerwire import CHANNEL, read_frame
from orchid.worker.http import API


class Answer:
    """What httpx's response offers the tests: the status, the text, the JSON."""

    def __init__(self, status: int, text: str) -> None:
        self.status_code = status
        self.text = text

    def json(self) -> Any:
        return json.loads(self.text)


class ChannelClient:
    """``post("/workers/<op>", json=...)`` as a frame on the channel at ``root`` (the
    server's URL) with ``token``; a refused handshake is an :class:`Answer` of its own
    (:meth:`refusal`)."""

    def __init__(self, root: str, token: str) -> None:
        self.address = "ws" + root.removeprefix("http") + API + CHANNEL
        self.token = token
        self._conn: ClientConnection | None = None
        self._stack = contextlib.ExitStack()
        self.seq = 0

    def refusal(self) -> Answer | None:
        """The handshake's refusal (status, JSON body), or None if the channel opens."""
        try:
            self._open()
        except InvalidStatus as exc:
            return Answer(exc.response.status_code, exc.response.body.decode())
        return None

    def _open(self) -> ClientConnection:
        if self._conn is None:
            headers = {"Authorization": f"Bearer {self.token}"}
            self._conn = self._stack.enter_context(
                connect(self.address, additional_headers=headers, compression=None)
            )
        return self._conn

    def post(self, path: str, json: Any = None, content: str | None = None, **_: Any) -> Answer:
        op = path.removeprefix("/workers/").lstrip("/")
        text = content if content is not None else _dumps(json)
        return self.send(f"{self.seq + 1} {op}\n{text}", self.seq + 1)

    def send(self, frame: str | bytes, seq: int | None = None) -> Answer:
        """Send any frame; the answer (its sequence number checked when ``seq`` is given)."""
        conn = self._open()
        conn.send(frame)
        got, status, body = read_frame(str(conn.recv(timeout=30)))
        self.seq = max(self.seq, got)
        assert seq is None or got == seq, (got, seq)
        return Answer(int(status), body)

    def closed(self, timeout: float = 30.0) -> int:
        """Wait for the server to close the channel: its close code (an AssertionError if
        it sends a frame instead, TimeoutError if it keeps it open)."""
        try:
            frame = self._open().recv(timeout=timeout)
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, exc
            return exc.rcvd.code
        raise AssertionError(f"the channel answered {frame!r} instead of closing")

    def close(self) -> None:
        self._conn = None
        self._stack.close()


def _dumps(value: Any) -> str:
    return json.dumps(value)
