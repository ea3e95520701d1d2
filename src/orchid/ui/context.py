"""What every page handler gets: the service's state, sessions, the login client and the
page templates (:class:`Ui`, one per application), and the headers every page carries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from orchid.engine.templates import TemplateCache
from orchid.graph.render import PALETTE
from orchid.ui import views
from orchid.ui.oidc import OidcClient
from orchid.ui.session import Sessions
from orchid.web.state import ApiState

__all__ = ["HERE", "SECURITY_HEADERS", "Ui", "ui_of"]

HERE = Path(__file__).parent
# scripts only from /ui/static (no inline code), no framing (the action buttons), no caching
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass
class Ui:
    """What every page handler needs; built once per application."""

    api: ApiState
    sessions: Sessions
    oidc: OidcClient | None
    pages: jinja2.Environment
    templates: TemplateCache

    def render(
        self, request: Request, name: str, http_status: int = 200, /, **context: Any
    ) -> HTMLResponse:
        page = self.pages.get_template(name)
        html = page.render(request=request, v=views, palette=PALETTE, **context)
        return HTMLResponse(html, status_code=http_status, headers=SECURITY_HEADERS)


def ui_of(request: Request) -> Ui:
    ui: Ui = request.app.state.ui
    return ui
