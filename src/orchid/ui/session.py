"""Who is looking at a page: the same authentication as the API, carried by a cookie.

A browser logs in once (a local token in a form, or an OIDC login); the server keeps the
token in an ``HttpOnly``, ``SameSite=Strict`` cookie scoped to ``/ui`` and checks it on
each request with the API's own :class:`~orchid.auth.Authenticator`, so revoking the
token or its expiry ends the session at once. An X.509 DN from a trusted proxy or an
``Authorization`` header work too, as on the API.

Every state-changing request (the action buttons, logout) carries a CSRF token derived
from the session secret (an HMAC, so nothing is stored and any server process can check
it) and must come from this origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import urllib.parse
from dataclasses import dataclass

from fastapi import Request
from starlette.responses import Response

from orchid.auth import Authenticator, AuthError
from orchid.core.model import Principal
from orchid.errors import OrchidError
from orchid.web.access import refuse_job_token
from orchid.web.peers import peer

COOKIE = "orchid_session"
OIDC_COOKIE = "orchid_oidc"  # state, PKCE verifier and the page asked for, during a login
COOKIE_PATH = "/ui"
MAX_AGE_S = 12 * 3600
MAX_FORM_BYTES = 64 * 1024  # the login and action forms are a few fields
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
JOB_TOKEN_REFUSED = (
    "a job's or a worker's token cannot open the monitor; log in with a token of yours"
)


class LoginRequired(OrchidError):
    """No session (or an expired one): the page redirects to the login form."""

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        super().__init__(reason or "log in to see this page")


class CsrfRejected(OrchidError):
    """A state-changing request without this session's CSRF token, or from another site."""


@dataclass(frozen=True)
class Viewer:
    """The caller of a page: who, and the secret their CSRF tokens derive from (None when
    the credentials came in an ``Authorization`` header, which no other site can forge)."""

    principal: Principal
    secret: str | None

    @property
    def csrf(self) -> str:
        return csrf_token(self.secret or "")


def csrf_token(secret: str) -> str:
    return hmac.new(secret.encode(), b"orchid-ui-csrf", hashlib.sha256).hexdigest()


class Sessions:
    """Resolves the viewer of a request; ``server_secret`` keys CSRF tokens of proxy
    (X.509) sessions, which have no cookie (``ORCHID_UI_SECRET``, else random per process)."""

    def __init__(self, authenticator: Authenticator, server_secret: str | None = None) -> None:
        self.authenticator = authenticator
        self.server_secret = server_secret or secrets.token_hex(32)

    def viewer(self, request: Request) -> Viewer:
        headers = dict(request.headers)
        cookie = request.cookies.get(COOKIE)
        explicit = "authorization" in headers
        if not explicit and cookie:
            headers["authorization"] = f"Bearer {cookie}"
        try:
            who = self.authenticator.authenticate(headers, peer(request))
        except AuthError as exc:
            if explicit:
                raise
            raise LoginRequired(f"please log in again ({exc.reason})") from None
        if who is None:
            raise LoginRequired()
        # a job's token: its workflow through the API only; a worker's: its queue's jobs
        if who.workflow_id is not None or who.worker_queue is not None:
            if explicit:
                refuse_job_token(who, "the monitor")
            raise LoginRequired(JOB_TOKEN_REFUSED)
        if explicit:
            return Viewer(who, None)
        if who.method == "x509":
            return Viewer(who, f"{self.server_secret}|{who.user}")
        return Viewer(who, cookie)

    def check_post(self, request: Request, viewer: Viewer, submitted: str | None) -> None:
        """Refuse a state-changing request from another site or without the CSRF token."""
        check_origin(request)
        if viewer.secret is None:
            return
        if not submitted or not hmac.compare_digest(submitted, viewer.csrf):
            raise CsrfRejected(
                "this form is stale or did not come from this site (CSRF check); "
                "reload the page and try again"
            )


def check_origin(request: Request) -> None:
    """A POST must come from a page of this server (Origin, or Sec-Fetch-Site)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise CsrfRejected("cross-site requests are refused")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        here = f"{request.url.scheme}://{request.url.netloc}"
        if origin.rstrip("/") != here:
            raise CsrfRejected(f"requests from {origin[:100]} are refused")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a page of the monitor, never another site."""
    if not target:
        return "/ui/"
    parts = urllib.parse.urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui") or "\\" in target:
        return "/ui/"
    return target


def set_session(response: Response, request: Request, token: str, max_age: int = MAX_AGE_S) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form (no multipart: nothing here uploads files)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    pairs = urllib.parse.parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v for k, v in pairs}
