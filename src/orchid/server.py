"""The ASGI application of ``orchid server`` and ``orchid up``: the REST API and the
monitor side by side, over one state (database, authenticator).

The API's application is the root: its middleware (the socket peer kept before trusted
proxies rewrite it, the declared-size limit) guards the monitor's requests too. Neither
``orchid.api`` nor ``orchid.ui`` imports the other's application; this module joins them.
"""

from __future__ import annotations

from orchid.extras import missing
from orchid.settings import Settings
from orchid.store.db import Database
from orchid.telemetry.metrics import Metrics

try:
    import uvicorn  # noqa: F401  (what serves it)
    from fastapi import FastAPI

    from orchid.api.app import create_api
    from orchid.auth import AuthConfig
    from orchid.ui import create_ui
except ModuleNotFoundError as exc:
    raise missing("server", exc, "the Orchid server") from None

UI_PREFIX = "/ui"


def create_app(
    settings: Settings,
    auth: AuthConfig | None = None,
    *,
    db: Database | None = None,
    max_body_bytes: int | None = None,
    trust_client_paths: bool = False,
    metrics: Metrics | None = None,
) -> FastAPI:
    """An Orchid server over ``settings.db_url``: the API under ``/api/v1``, the monitor
    under ``/ui``, metrics at ``/metrics`` (see :func:`orchid.api.app.create_api`).
    ``auth`` None: from the settings' ``[auth]`` section (file, ``ORCHID_OIDC_*``, ...)."""
    auth = auth or AuthConfig.from_settings(settings)
    app = create_api(
        settings,
        auth,
        db=db,
        max_body_bytes=max_body_bytes,
        trust_client_paths=trust_client_paths,
        metrics=metrics,
    )
    app.mount(UI_PREFIX, create_ui(app.state.orchid, auth))
    return app


def from_env() -> FastAPI:
    """The application from the environment alone (uvicorn's factory for several workers)."""
    return create_app(Settings.load())
