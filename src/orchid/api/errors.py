"""Errors to HTTP, in one place: bad input is 4xx with a message a person can act on."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from orchid.auth import AuthError, www_authenticate
from orchid.errors import InvalidInput, LeaseLost, OrchidError, TemplateError
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


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into JSON errors."""

    @app.exception_handler(OrchidError)
    async def orchid_error(_: Request, exc: OrchidError) -> JSONResponse:
        status = status_of(exc)
        headers = {}
        if isinstance(exc, AuthError):
            headers["WWW-Authenticate"] = www_authenticate(exc)
        if isinstance(exc, TemplateError):
            problems = [{"field": p, "error": m} for p, m in exc.problems]
            return JSONResponse(
                body(str(exc), problems[0]["field"] if problems else None, problems=problems),
                status_code=status,
            )
        if status >= 500:
            log.error("internal error: %s", exc, exc_info=exc)
            return JSONResponse(body("internal error; the server log has details"), 500)
        if isinstance(exc, LeaseLost):  # the worker drops these and sends the rest again
            refused = [{"job_id": j, "attempt": a} for j, a in exc.attempts]
            return JSONResponse(body(str(exc), refused=refused), status_code=status)
        field = exc.field if isinstance(exc, InvalidInput) else None
        return JSONResponse(body(str(exc), field), status_code=status, headers=headers)

    @app.exception_handler(sa.exc.DBAPIError)
    async def database_error(_: Request, exc: sa.exc.DBAPIError) -> JSONResponse:
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
            return JSONResponse(body("internal error; the server log has details"), 500)
        log.warning("database busy: %s", reason)
        message = f"the database is busy ({reason}); nothing was changed, try again shortly"
        return JSONResponse(body(message), 503, headers={"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "error": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"field": None, "error": "invalid request"}
        return JSONResponse(
            body(f"{first['field']}: {first['error']}", first["field"], problems=problems), 422
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(body(str(exc.detail)), exc.status_code, headers=exc.headers)
