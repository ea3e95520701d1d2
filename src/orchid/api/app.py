"""The REST API's application: ``create_api(settings, auth)``; :mod:`orchid.server` joins it
with the monitor."""

from __future__ import annotations

import time

import httpx
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from orchid import __version__
from orchid.api import errors
from orchid.api.deps import caller, known_query
from orchid.api.errors import ERROR_RESPONSES
from orchid.api.routes import (
    cache,
    catalog,
    graph,
    growth,
    hpo,
    idds,
    idds_data,
    idds_hpo,
    jobs,
    messages,
    quotas,
    system,
    workers,
    workflows,
)
from orchid.auth import AuthConfig, Authenticator, OidcVerifier
from orchid.core.jobtoken import JOB_TOKEN_PREFIX
from orchid.core.model import Principal
from orchid.datamgr import registry as datamgr_registry
from orchid.engine.workers import WorkerDesk
from orchid.settings import Settings
from orchid.store import jobtokens, secrets, tokens
from orchid.store.db import Database
from orchid.telemetry.metrics import CONTENT_TYPE, Metrics
from orchid.web.errors import Denied, too_large
from orchid.web.peers import RealPeer
from orchid.web.state import ApiState

PREFIX = "/api/v1"


def create_api(
    settings: Settings,
    auth: AuthConfig,
    *,
    db: Database | None = None,
    max_body_bytes: int | None = None,
    trust_client_paths: bool = False,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The REST API over ``settings.db_url`` (migrated on start), with Prometheus metrics at
    ``/metrics`` (``metrics``: a registry shared with agents in the same process; else one
    of its own). ``max_body_bytes`` overrides ``settings.max_request_bytes``. Its state
    (:class:`ApiState`) is ``app.state.orchid``; :mod:`orchid.server` mounts the monitor
    beside it."""
    limit = settings.max_request_bytes if max_body_bytes is None else max_body_bytes
    db = db or Database(settings.db_url, lease_seconds=settings.lease_seconds)
    db.ensure_schema()
    verifier = OidcVerifier(auth, httpx.Client(timeout=10)) if auth.oidc_issuer else None

    job_key: list[bytes] = []  # read once, when the first job token comes

    def lookup(token: str) -> Principal | None:
        now = time.time()
        if token.startswith(JOB_TOKEN_PREFIX):
            if not job_key:
                with db.begin() as conn:
                    job_key.append(secrets.key(conn, secrets.JOB_TOKEN_KEY, now))
            with db.engine.connect() as conn:
                return jobtokens.lookup(conn, token, job_key[0])
        with db.engine.connect() as conn:  # read-only: no write lock on most requests
            found = tokens.find(conn, token, now)
        if found is None:
            return None
        principal, stale = found
        if stale is not None:
            with db.begin() as conn:
                tokens.touch(conn, stale, now)
        return principal

    app = FastAPI(
        title="Orchid",
        version=__version__,
        description="Workflow orchestration for data-intensive science.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    app.state.orchid = ApiState(
        settings=settings,
        db=db,
        authenticator=Authenticator(auth, verifier, lookup),
        max_body_bytes=limit,
        trust_client_paths=trust_client_paths,
        data_managers=datamgr_registry.specs(settings),
        workers=WorkerDesk(settings, db),
    )
    errors.install(app)
    # messages before workflows: POST /workflows/{id}/{action} would take /messages
    routers = (system.router, messages.router, growth.router, cache.router, catalog.router)
    later = (workflows.router, graph.router, jobs.router, hpo.router, workers.router, quotas.router)
    for router in (*routers, *later):
        app.include_router(
            router, prefix=PREFIX, responses=ERROR_RESPONSES, dependencies=[Depends(known_query)]
        )
    # the iDDS client's paths, at the root where its host setting points (docs/from-idds.md)
    app.include_router(idds_data.router, include_in_schema=False)
    app.include_router(idds_hpo.router, include_in_schema=False)
    app.include_router(idds.router, include_in_schema=False)  # its catch-all comes last
    if metrics is None:
        metrics = Metrics()
        metrics.watch_database(db)
    _serve_metrics(app, metrics)
    # the socket peer, kept before trusted proxies' forwarded headers rewrite the client
    app.add_middleware(RealPeer, trusted_proxies=auth.trusted_proxies)

    app.add_middleware(DeclaredSize, limit=limit)
    return app


class DeclaredSize:
    """ASGI middleware: a request whose Content-Length is not a number (400) or is over the
    limit (413) is answered before anything reads it. Plain ASGI, not ``@app.middleware``:
    Starlette's BaseHTTPMiddleware costs every request a task and a stream (a millisecond
    of a worker's report on a busy host)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = _header(scope, b"content-length")
            refusal = None
            if declared is not None and not declared.isdigit():
                refusal = JSONResponse(errors.body("Content-Length must be a number"), 400)
            elif declared is not None and int(declared) > self.limit:
                refusal = JSONResponse(errors.body(too_large(self.limit)), 413)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _serve_metrics(app: FastAPI, metrics: Metrics) -> None:
    @app.get("/metrics", include_in_schema=False)
    def serve_metrics(request: Request) -> Response:
        """Prometheus metrics, for admins and members of ORCHID_METRICS_GROUP (default
        ``metrics``: give the scraper a token of that group, not an admin one)."""
        who = caller(request, app.state.orchid)
        group = app.state.orchid.settings.metrics_group.strip() or "metrics"
        if not (who.admin or group in who.groups):
            raise Denied(
                f"metrics are for admins and members of group {group!r} "
                f"(`orchid token create --user prometheus --group {group}`)"
            )
        return Response(metrics.render(), media_type=CONTENT_TYPE)
