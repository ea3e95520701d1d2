"""Logging in and out: a local token in a form, or the OIDC provider's login page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from orchid.auth import AuthError
from orchid.ui.context import ui_of
from orchid.ui.oidc import STATE_MAX_AGE_S, LoginFailed, Pending
from orchid.ui.session import (
    CSRF_FIELD,
    JOB_TOKEN_REFUSED,
    OIDC_COOKIE,
    check_origin,
    clear_session,
    read_form,
    safe_next,
    set_session,
)

router = APIRouter()
MAX_COOKIE_TOKEN = 3800  # browsers keep cookies up to about 4 KB


@router.get("/login", name="login")
def login_page(
    request: Request,
    next: Annotated[str | None, Query(max_length=2000)] = None,
    why: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    ui = ui_of(request)
    return ui.render(
        request,
        "login.html",
        next=safe_next(next),
        why=why or "",
        error="",
        oidc=ui.oidc is not None,
        viewer=None,
    )


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token exactly as the API would; on success it becomes the session cookie."""
    ui = ui_of(request)
    check_origin(request)
    form = await read_form(request)
    token = form.get("token", "").strip()
    target = safe_next(form.get("next"))
    error = ""
    if not token or any(c.isspace() for c in token):
        error = "paste your token (`orchid token create --user NAME` makes one)"
    else:
        try:
            who = await run_in_threadpool(
                ui.sessions.authenticator.authenticate, {"authorization": f"Bearer {token}"}, None
            )
        except AuthError as exc:
            who, error = None, f"this token does not work: {exc.reason}"
        if who is None and not error:
            error = "this token does not work"
        elif who is not None and (who.workflow_id is not None or who.worker_queue is not None):
            error = JOB_TOKEN_REFUSED
    if error:
        return ui.render(
            request,
            "login.html",
            401,
            next=target,
            why="",
            error=error,
            oidc=ui.oidc is not None,
            viewer=None,
        )
    response = RedirectResponse(target, 303)
    set_session(response, request, token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    ui = ui_of(request)
    form = await read_form(request)
    viewer = await run_in_threadpool(ui.sessions.viewer, request)
    ui.sessions.check_post(request, viewer, form.get(CSRF_FIELD))
    response = RedirectResponse("/ui/login", 303)
    clear_session(response)
    return response


def _callback_url(request: Request) -> str:
    return str(request.url_for("oidc_callback"))


@router.get("/oidc/start")
def oidc_start(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    ui = ui_of(request)
    if ui.oidc is None:
        raise LoginFailed("OIDC login is not configured here (ORCHID_OIDC_CLIENT_ID)")
    url, pending = ui.oidc.start(_callback_url(request), safe_next(next))
    response = RedirectResponse(url, 303)
    # Lax, not Strict: the provider's redirect back to us is a cross-site navigation
    response.set_cookie(
        OIDC_COOKIE,
        pending.cookie(),
        max_age=STATE_MAX_AGE_S,
        path="/ui/oidc",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/oidc/callback", name="oidc_callback")
def oidc_callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    ui = ui_of(request)
    if ui.oidc is None:
        raise LoginFailed("OIDC login is not configured here (ORCHID_OIDC_CLIENT_ID)")
    pending = Pending.parse(request.cookies.get(OIDC_COOKIE))
    if error:
        raise LoginFailed(f"the identity provider said: {error_description or error}")
    if pending is None or not state or state != pending.state or not code:
        raise LoginFailed("this login link is stale or was not started here; log in again")
    token = ui.oidc.exchange(code, _callback_url(request), pending)
    if len(token) > MAX_COOKIE_TOKEN:
        raise LoginFailed(
            f"the access token is {len(token):,} characters, more than a cookie holds; "
            "ask the identity provider for smaller tokens (fewer claims)"
        )
    try:
        ui.sessions.authenticator.authenticate({"authorization": f"Bearer {token}"}, None)
    except AuthError as exc:
        raise LoginFailed(f"the identity provider's token does not work here: {exc}") from None
    response = RedirectResponse(safe_next(pending.next), 303)
    set_session(response, request, token)
    response.delete_cookie(OIDC_COOKIE, path="/ui/oidc")
    return response
