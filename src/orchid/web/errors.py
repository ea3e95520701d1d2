"""The errors of the web layer, and which HTTP status each error of Orchid's is.

The API turns them into JSON (:mod:`orchid.api.errors`), the monitor into an error page;
both ask :func:`status_of`, so a refusal is the same status in both.
"""

from __future__ import annotations

from orchid.auth import AuthError, Forbidden
from orchid.errors import (
    Archived,
    ConfigError,
    InvalidInput,
    InvalidTransition,
    NotFound,
    OrchidError,
)

__all__ = ["Denied", "Malformed", "TooLarge", "status_of", "too_large"]


class Denied(OrchidError):
    """Authenticated, but this caller may not see or change that resource (HTTP 403)."""


class TooLarge(InvalidInput):
    """A request body over the configured limit (HTTP 413)."""


class Malformed(InvalidInput):
    """A request body that cannot be read at all: a broken gzip stream (HTTP 400)."""


def too_large(limit: int, unpacked: bool = False) -> str:
    """The 413 message: the limit, and the setting that sets it."""
    what = " once unpacked" if unpacked else ""
    return (
        f"the request body is larger than {limit:,} bytes{what} (the server's limit "
        "max_request_bytes, ORCHID_MAX_REQUEST_BYTES); send large job graphs as a jobs_file "
        "(JSON lines), or ask the operator to raise it"
    )


def status_of(exc: OrchidError) -> int:
    """The HTTP status of an error: 4xx for what the caller can fix, 500 for the rest."""
    if isinstance(exc, AuthError):
        return 403 if isinstance(exc, Forbidden) else 401
    if isinstance(exc, Denied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Archived):
        return 410
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, Malformed):
        return 400
    if isinstance(exc, InvalidTransition):
        return 409
    if isinstance(exc, InvalidInput | ConfigError):
        return 422
    return 500
