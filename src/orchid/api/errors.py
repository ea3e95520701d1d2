"""Errors to HTTP, in one place: bad input is 4xx with a message a person can act on."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from orchid.auth import AuthError, www_authenticate
from orchid.errors import InvalidInput, LeaseLost, OrchidError, QuotaExceeded, TemplateError
from orchid.store.db import lost_connection, passing_failure, timed_out
from orchid.web.errors import status_of
from orchid.wire import ErrorOut

log = logging.getLogger(__name__)


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


# documented on every route (FastAPI's own 422 model would describe a body we never send)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("the request is malformed"),
    401: _error("no or invalid credentials (see WWW-Authenticate)"),
    403: _error("authenticated, but not allowed"),
    404: _error("no such resource"),
    409: _error("the change conflicts with the resource's state"),
    413: _error("the request body is too large"),
    422: _error("invalid input: `field` and `problems` say where"),
}


def body(message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"error": message}
    if field is not None:
        out["field"] = field
    out.update(extra)
    return out


Answer = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, headers


def orchid_answer(exc: OrchidError) -> Answer:
    """The status, body and headers that answer an Orchid error."""
    status = status_of(exc)
    headers = {}
    if isinstance(exc, AuthError):
        headers["WWW-Authenticate"] = www_authenticate(exc)
    if isinstance(exc, TemplateError):
        problems = [{"field": p, "error": m} for p, m in exc.problems]
        return (
            status,
            body(str(exc), problems[0]["field"] if problems else None, problems=problems),
            {},
        )
    if status >= 500:
        log.error("internal error: %s", exc, exc_info=exc)
        return 500, body("internal error; the server log has details"), {}
    if isinstance(exc, LeaseLost):  # the worker drops these and sends the rest again
        refused = [{"job_id": j, "attempt": a} for j, a in exc.attempts]
        return status, body(str(exc), refused=refused), {}
    if isinstance(exc, QuotaExceeded):
        what = {"limit": exc.quota, "subject": exc.subject, "value": exc.value, "used": exc.used}
        return status, body(str(exc), exc.field, quota=what), {}
    field = exc.field if isinstance(exc, InvalidInput) else None
    return status, body(str(exc), field), headers


def database_answer(exc: sa.exc.DBAPIError) -> Answer:
    """The answer to a database error: 503 when the same request succeeds in a moment."""
    # another session held a lock past lock_timeout (an agent frozen mid-transaction,
    # until the server ends its session), a timeout, a lost connection: nothing was
    # written, and the same request succeeds in a moment
    reason = passing_failure(exc)
    if reason is None and timed_out(exc):
        reason = "a statement ran past statement_timeout"
    if reason is None and lost_connection(exc):
        reason = "its connection was lost"
    if reason is None:
        log.error("internal error: %s", exc, exc_info=exc)
        return 500, body("internal error; the server log has details"), {}
    log.warning("database busy: %s", reason)
    message = f"the database is busy ({reason}); nothing was changed, try again shortly"
    return 503, body(message), {"Retry-After": "1"}


def invalid_answer(errors: Sequence[Any]) -> Answer:
    """422 for what pydantic found wrong (``errors()`` of a validation error)."""
    problems = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "error": e.get("msg", "")}
        for e in errors
    ]
    first = problems[0] if problems else {"field": None, "error": "invalid request"}
    return 422, body(f"{first['field']}: {first['error']}", first["field"], problems=problems), {}


def failure_answer(exc: Exception, where: str = "body") -> Answer:
    """The answer to any exception, as the handlers below give it (pydantic's errors with
    ``where`` before their paths; anything unknown a 500, logged)."""
    if isinstance(exc, OrchidError):
        return orchid_answer(exc)
    if isinstance(exc, sa.exc.DBAPIError):
        return database_answer(exc)
    if isinstance(exc, ValidationError):
        return invalid_answer([{**e, "loc": (where, *e["loc"])} for e in exc.errors()])
    log.error("internal error: %s", exc, exc_info=exc)
    return 500, body("internal error; the server log has details"), {}


def _json(answer: Answer) -> JSONResponse:
    status, content, headers = answer
    return JSONResponse(content, status_code=status, headers=headers or None)


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into JSON errors."""

    @app.exception_handler(OrchidError)
    async def orchid_error(_: Request, exc: OrchidError) -> JSONResponse:
        return _json(orchid_answer(exc))

    @app.exception_handler(sa.exc.DBAPIError)
    async def database_error(_: Request, exc: sa.exc.DBAPIError) -> JSONResponse:
        return _json(database_answer(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _json(invalid_answer(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(body(str(exc.detail)), exc.status_code, headers=exc.headers)
