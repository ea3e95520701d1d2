"""What the client raises: one subtree of :class:`orchid.errors.OrchidError`.

::

    ClientError                 anything a call to the server did not do
    ├── Unreachable             no answer: connection refused, DNS, time-out (after retries)
    ├── ServerError             5xx, or an answer the client cannot understand
    └── Rejected                4xx: the request as sent was refused; sending it again won't help
        ├── Unauthorized        401: no token, or an unknown, expired or revoked one
        ├── Forbidden           403: authenticated, but not allowed (e.g. a job's token here)
        ├── NotFound            404: no such workflow or job, or not one you may see
        ├── Conflict            409
        ├── TooLarge            413
        └── Invalid             400, 422: bad input; ``field`` and ``problems`` say where

Every error carries the server's own message (its ``error`` field) as ``str(exc)``, and
``status`` (the HTTP status, None when there was no answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchid.errors import OrchidError


class ClientError(OrchidError):
    """A request to an Orchid server failed; the message says why, in the server's words."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        field: str | None = None,
        problems: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.problems = problems


class Unreachable(ClientError):
    """The server did not answer (refused, unknown host, timed out), even after retries."""


class ServerError(ClientError):
    """The server failed (5xx) or answered with something that is not Orchid's API."""


class Rejected(ClientError):
    """The server refused the request (4xx): fix the request, do not just send it again."""


class Unauthorized(Rejected):
    """401: the server does not know who is calling (missing, bad or revoked token)."""


class Forbidden(Rejected):
    """403: the caller is known but may not do this (share with a group it is not in; use
    this route with a job's token). Someone else's workflow is a NotFound, as a missing one."""


class NotFound(Rejected):
    """404: no such resource, or none the caller may see."""


class Conflict(Rejected):
    """409: the request clashes with the resource's current state."""


class TooLarge(Rejected):
    """413: the request body is over the server's limit."""


class Invalid(Rejected):
    """400 or 422: bad input. ``field`` names the first offending field, ``problems`` all of
    them as (field, message) pairs, e.g. every problem of a template."""


BadRequest = Invalid  # the HTTP name, for those who look for it

_BY_STATUS: Mapping[int, type[Rejected]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: Invalid,
}


def from_response(status: int, body: Any, fallback: str) -> ClientError:
    """The error for an HTTP error answer; ``body`` is its decoded JSON (or None)."""
    message, field = fallback, None
    problems: tuple[tuple[str, str], ...] = ()
    if isinstance(body, Mapping):
        if isinstance(body.get("error"), str) and body["error"]:
            message = body["error"]
        elif isinstance(body.get("detail"), str) and body["detail"]:
            message = body["detail"]
        if isinstance(body.get("field"), str):
            field = body["field"]
        raw = body.get("problems")
        if isinstance(raw, list):
            problems = tuple(
                (str(p.get("field", "")), str(p.get("error", "")))
                for p in raw
                if isinstance(p, Mapping)
            )
    kind: type[ClientError]
    if status >= 500:
        kind = ServerError
    elif 400 <= status < 500:
        kind = _BY_STATUS.get(status, Rejected)
    else:
        kind = ServerError
    return kind(message, status=status, field=field, problems=problems)
