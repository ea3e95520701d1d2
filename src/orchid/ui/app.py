"""The monitor's ASGI sub-application: routes, templates, static files, error pages."""

from __future__ import annotations

import logging
import urllib.parse

import httpx
import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from orchid.auth import AuthConfig, AuthError
from orchid.engine.templates import TemplateCache
from orchid.errors import OrchidError
from orchid.ui import live, login, pages, study
from orchid.ui.context import HERE, Ui, ui_of
from orchid.ui.oidc import LoginFailed, OidcClient, OidcLogin
from orchid.ui.session import CsrfRejected, LoginRequired, Sessions, clear_session
from orchid.web.errors import status_of
from orchid.web.state import ApiState

__all__ = ["create_ui"]

log = logging.getLogger(__name__)


def create_ui(api: ApiState, auth: AuthConfig, http: httpx.Client | None = None) -> FastAPI:
    """The ``/ui`` application over the API's state (same database, same authenticator)."""
    login_config = OidcLogin.from_settings(auth, api.settings)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(("html",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["urlencode_value"] = lambda v: urllib.parse.quote(str(v), safe="")
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.ui = Ui(
        api=api,
        sessions=Sessions(api.authenticator, api.settings.ui_secret),
        oidc=OidcClient(login_config, http or httpx.Client(timeout=10)) if login_config else None,
        pages=env,
        templates=TemplateCache(),
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for router in (login.router, pages.router, live.router, study.router):
        app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = {"next": target}
        if exc.reason:
            query["why"] = exc.reason
        response = RedirectResponse(f"/ui/login?{urllib.parse.urlencode(query)}", 303)
        if exc.reason:
            clear_session(response)
        return response

    @app.exception_handler(OrchidError)
    async def orchid_error(request: Request, exc: OrchidError) -> Response:
        if isinstance(exc, CsrfRejected):
            status = 403
        elif isinstance(exc, LoginFailed):
            status = 502
        else:
            status = status_of(exc)
        if status >= 500 and not isinstance(exc, LoginFailed):
            log.error("internal error on %s: %s", request.url.path, exc, exc_info=exc)
            message = "internal error; the server log has details"
        else:
            message = str(exc)
        headers = {}
        if isinstance(exc, AuthError):
            headers["WWW-Authenticate"] = "Bearer"
        ui = ui_of(request)
        page = ui.render(request, "error.html", status, code=status, message=message, viewer=None)
        page.headers.update(headers)
        return page

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        ui = ui_of(request)
        return ui.render(
            request,
            "error.html",
            exc.status_code,
            code=exc.status_code,
            message=str(exc.detail),
            viewer=None,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}"
        return ui_of(request).render(
            request, "error.html", 422, code=422, message=message, viewer=None
        )

    return app
