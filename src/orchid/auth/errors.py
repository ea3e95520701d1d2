"""Authentication errors, framework-neutral: the web layer maps them to 401 and 403."""

from __future__ import annotations

from orchid.errors import OrchidError


class AuthError(OrchidError):
    """Authentication failed. ``reason`` is short, fixed text (never caller data), fit for a
    ``WWW-Authenticate`` header; the message adds the details for logs and people."""

    error = "invalid_request"  # the RFC 6750 error code

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class Unauthenticated(AuthError):
    """No usable credentials: missing, malformed, expired, unknown or revoked (HTTP 401)."""

    error = "invalid_token"


class Forbidden(AuthError):
    """Credentials were presented in a way this server does not allow (HTTP 403)."""

    error = "insufficient_scope"


def www_authenticate(exc: AuthError | None = None, realm: str = "orchid") -> str:
    """The ``WWW-Authenticate`` value for a 401/403 (``exc`` None: credentials were missing)."""
    value = f'Bearer realm="{_quotable(realm)}"'
    if exc is not None:
        value += f', error="{exc.error}", error_description="{_quotable(exc.reason)}"'
    return value


def _quotable(text: str) -> str:
    return "".join(c for c in text if c.isascii() and c.isprintable() and c not in '"\\')
