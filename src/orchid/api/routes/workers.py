"""Orchid workers (``orchid worker``): lease a queue's jobs, renew the leases, report what
ran, give the rest back. Open to workers' tokens only, each to its own queue (and every
other route refuses them: ``api.deps``). The bodies are JSON data, never code the server
runs (docs/architecture.md, "Orchid workers").

The same four calls also travel over one WebSocket, the worker channel (``/channel``):
a call is a text frame naming the route, answered with the route's status and body; its
token is looked up again once ``RECHECK_S`` old, so a revoked token ends the channel
within a second."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import overload

from anyio import to_thread
from fastapi import APIRouter, BackgroundTasks, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import Message

from orchid.api.deps import State, WorkerCaller, worker_of
from orchid.api.errors import failure_answer, orchid_answer
from orchid.core.model import Principal
from orchid.engine.workers import NotQuick, WorkerDesk
from orchid.errors import OrchidError
from orchid.executors.workerwire import (
    CHANNEL,
    LeaseIn,
    LeaseOut,
    ReleaseIn,
    ReleaseOut,
    RenewIn,
    RenewOut,
    ReportIn,
    ReportOut,
    answer_frame,
    read_frame,
)
from orchid.store.db import WriteLockBusy
from orchid.web.errors import Malformed, TooLarge, too_large
from orchid.web.state import ApiState

log = logging.getLogger(__name__)
router = APIRouter(prefix="/workers", tags=["workers"])


def _desk(st: ApiState, who: Principal) -> tuple[WorkerDesk, str]:
    queue = who.worker_queue
    if queue is None or st.workers is None:  # WorkerCaller lets only workers' tokens in
        raise RuntimeError("the worker routes need a worker's token and the worker desk")
    return st.workers, queue


def _json(answer: BaseModel) -> Response:
    """The answer as JSON, written by pydantic at once: the hot routes skip FastAPI's
    validating the model it was just given again (``response_model`` still documents it)."""
    return Response(answer.model_dump_json(), media_type="application/json")


@router.post("/lease", response_model=LeaseOut)
def lease(body: LeaseIn, st: State, who: WorkerCaller) -> Response:
    """Lease up to ``max`` ready jobs of the token's queue: each is this worker's until its
    lease (``lease_s``) runs out unless renewed, then it runs again elsewhere."""
    desk, queue = _desk(st, who)
    return _json(desk.lease(queue, body))


@router.post("/renew", response_model=RenewOut)
def renew(body: RenewIn, st: State, who: WorkerCaller) -> RenewOut:
    """Keep the leases of these attempts; the answer names those lost and those to cancel."""
    desk, queue = _desk(st, who)
    return desk.renew(queue, body)


@router.post("/report", response_model=ReportOut)
def report(body: ReportIn, st: State, who: WorkerCaller, background: BackgroundTasks) -> Response:
    """Record starts and ends (with the tails of their logs). 409, and nothing recorded,
    if the worker's leases no longer hold every attempt named: the answer's ``refused``
    lists them; drop those and report the rest. With ``want``, the answer also leases
    up to that many ready jobs (the children the ends released first among them)."""
    desk, queue = _desk(st, who)
    return _json(desk.report(queue, body, background.add_task))


@router.post("/release", response_model=ReleaseOut)
def release(body: ReleaseIn, st: State, who: WorkerCaller) -> ReleaseOut:
    """The worker stops: its jobs in flight are ready again at once, and the stopped
    attempts cost no retry."""
    desk, queue = _desk(st, who)
    return desk.release(queue, body)


# --- the worker channel -----------------------------------------------------------------

CHANNEL_WHAT = f"the worker channel ({router.prefix}{CHANNEL})"
RECHECK_S = 1.0
"""A channel's token is looked up again once this old: a token revoked (or expired)
meanwhile ends the channel within that long (a lookup each call would cost a chain of
short jobs a fifth of its time)."""
Later = Callable[[Callable[[], None]], None]
HERE_MOST = 100
"""On SQLite a small report or lease (at most this many updates and jobs asked, no log
tails) whose token needs no lookup is served on the event loop itself if the write lock
is free at once (``Database.begin(wait=False)``): its transaction then costs the loop
about what one request's routing and validation cost it (a millisecond or two), and
saves the two thread hops that were a fifth of a worker chain's step. Any other call, or
one that would wait for the lock, is served in a thread as the routes are."""
HERE_CHARS = 64 * 1024
"""... and whose frame is at most this long: a report of few updates may still carry
their results (up to ``result_max_bytes`` each), whose reading and writing would hold
the loop, and every other call and request with it, for as long."""


@router.websocket(CHANNEL)
async def channel(socket: WebSocket, st: State) -> None:
    """The four calls above over one WebSocket, one at a time: a text frame
    ``"<seq> <lease|renew|report|release>\\n<JSON body>"`` is answered with
    ``"<seq> <status>\\n<JSON body>"``, the status and body the route would answer. A
    refused handshake is answered as a route refuses (401, 403, JSON body); a token
    revoked meanwhile answers 401 and closes the channel."""
    line = _Line(socket, st)
    try:
        await to_thread.run_sync(line.caller)
    except OrchidError as exc:
        await _deny(socket, exc)
        return
    await socket.accept()
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        later: list[Callable[[], None]] = []
        answer = line.serve(message, later.append, here=True)
        if answer is None:  # not one to serve on the event loop: in a thread, as routes are
            answer = await to_thread.run_sync(line.serve, message, later.append)
        seq, status, out = answer
        try:
            await socket.send_text(answer_frame(seq, status, out))
            if status in (401, 403):  # the token was revoked, or is no longer a worker's
                await socket.close(1008, "the worker's token is no longer valid")
        except (WebSocketDisconnect, OSError, RuntimeError):
            status = 499  # the worker went away: what it reported is recorded all the same
        finally:
            for task in later:  # the logs of the ends: after the answer, as BackgroundTasks
                try:
                    await to_thread.run_sync(task)
                except Exception:  # (recorded all the same: `orchid logs` says they are missing)
                    log.exception("cannot write the logs a worker reported")
        if status in (401, 403, 499):
            return


async def _deny(socket: WebSocket, exc: OrchidError) -> None:
    """Refuse the handshake as a route refuses (status, JSON body), where the server can."""
    status, content, headers = orchid_answer(exc)
    try:
        await socket.send_denial_response(JSONResponse(content, status, headers or None))
    except RuntimeError:  # (an ASGI server without the denial extension: a plain 403)
        reason = str(content.get("error", "")).encode()[:120].decode(errors="ignore")
        await socket.close(1008, reason)


class _Line:
    """One worker's channel: whose it is (looked up again every ``RECHECK_S``), and its
    calls, served in the server's threads one at a time."""

    def __init__(
        self, socket: WebSocket, st: ApiState, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._socket = socket
        self._st = st
        self._clock = clock
        self._who: Principal | None = None
        self._checked = 0.0
        self._here = st.db.is_sqlite  # (PostgreSQL's transactions run side by side)

    def _fresh(self) -> bool:
        """Whether the token needs no lookup before the next call."""
        return self._who is not None and self._clock() - self._checked < RECHECK_S

    def caller(self) -> tuple[WorkerDesk, str]:
        """The desk and the token's queue; the token looked up if due (raises as the
        routes' dependencies do)."""
        now = self._clock()
        if self._who is None or now - self._checked >= RECHECK_S:
            self._who = worker_of(self._socket, self._st, CHANNEL_WHAT)
            self._checked = now
        return _desk(self._st, self._who)

    @overload
    def serve(self, message: Message, later: Later) -> tuple[int, int, str]: ...

    @overload
    def serve(self, message: Message, later: Later, here: bool) -> tuple[int, int, str] | None: ...

    def serve(
        self, message: Message, later: Later, here: bool = False
    ) -> tuple[int, int, str] | None:
        """One call: its sequence number, the status and the body to answer. ``here``: only
        if it is one to serve on the event loop (see :data:`HERE_MOST`), else None."""
        if here and not self._here:
            return None
        seq = 0
        try:
            text = message.get("text")
            if not isinstance(text, str):
                raise Malformed("the worker channel takes text frames: '<seq> <op>\\n<JSON body>'")
            limit = self._st.max_body_bytes  # in bytes, as a request's: 1 to 4 a character
            if len(text) > limit or (4 * len(text) > limit and len(text.encode()) > limit):
                raise TooLarge(too_large(limit))
            try:
                seq, op, raw = read_frame(text)
            except ValueError as exc:
                raise Malformed(str(exc)) from None
            if here and (len(text) > HERE_CHARS or not self._fresh()):
                return None
            desk, queue = self.caller()
            return seq, 200, _call(desk, queue, op, raw, later, here)
        except (_Elsewhere, WriteLockBusy, NotQuick):
            return None
        except Exception as exc:  # answered as the routes' handlers answer it
            status, content, _ = failure_answer(exc)
        return seq, status, json.dumps(content)


class _Elsewhere(Exception):
    """A call not to serve on the event loop: the thread does it all."""


def _call(desk: WorkerDesk, queue: str, op: str, raw: str, later: Later, here: bool) -> str:
    if op == "report":
        report = ReportIn.model_validate_json(raw)
        if here and (
            len(report.updates) > HERE_MOST
            or report.want > HERE_MOST
            or any(u.stdout or u.stderr for u in report.updates)
        ):
            raise _Elsewhere
        return desk.report(queue, report, later, wait=not here).model_dump_json()
    if op == "lease":
        lease = LeaseIn.model_validate_json(raw)
        if here and lease.max > HERE_MOST:
            raise _Elsewhere
        return desk.lease(queue, lease, wait=not here).model_dump_json()
    if here:
        raise _Elsewhere
    if op == "renew":
        return desk.renew(queue, RenewIn.model_validate_json(raw)).model_dump_json()
    if op == "release":
        return desk.release(queue, ReleaseIn.model_validate_json(raw)).model_dump_json()
    raise Malformed(f"no call {op!r} on the worker channel: lease, renew, report or release")
