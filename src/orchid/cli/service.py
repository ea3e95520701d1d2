"""Long-running commands: `orchid agents`, `orchid server`, `orchid up`, `orchid db upgrade`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchid.errors import InvalidInput, OrchidError
from orchid.settings import Settings

if TYPE_CHECKING:  # the engine and the store: imported by the commands that run them
    from orchid.engine.inprocess import Engine
    from orchid.store.db import Database
    from orchid.telemetry.metrics import Metrics

from orchid.cli.common import (
    DbOpt,
    ExecutorOpt,
    VerboseOpt,
    WorkersOpt,
    _logging,
    _open,
    _personal,
    _settings,
    _tune_gc,
    app,
    console,
    db_app,
    err,
)


@app.command()
def agents(
    db: DbOpt = None,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = None,
    burst: Annotated[bool, typer.Option(help="exit once there is nothing left to do")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="serve Prometheus metrics on this port (/metrics)"),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="address of the metrics port")] = "127.0.0.1",
    wait_db: Annotated[
        float, typer.Option(help="seconds to wait for the database at start (0: fail at once)")
    ] = 60.0,
    verbose: VerboseOpt = False,
) -> None:
    """Run the agents (clerk, transformer, carrier, trigger) against the configured database.

    Start as many as you like, on as many hosts, against one PostgreSQL: they share the
    work through leases. A killed agent loses nothing; its jobs run again when their
    leases expire.
    """
    from orchid.engine.inprocess import Engine

    _logging(verbose)
    settings = _settings(db=db, workers=workers, executor=executor)
    database = _open(settings, wait=wait_db)
    if metrics_port is None:
        engine = Engine(settings, database)
    else:
        from prometheus_client import start_http_server

        engine, metrics = _instrumented_engine(settings, database, watch_db=False)
        start_http_server(metrics_port, addr=metrics_host, registry=metrics.registry)
        err.print(f"metrics on http://{metrics_host}:{metrics_port}/metrics")
    others = sorted(set(settings.executors) - {settings.executor})
    served = settings.executor + (f" (default), {', '.join(others)}" if others else "")
    notify = f"; notifying {', '.join(settings.notify)}" if settings.notify else ""
    _tune_gc()
    _warn_shared_identity(settings, database)
    err.print(f"agents running on {settings.db_url} with executors {served}{notify}")
    signal.signal(signal.SIGTERM, lambda *_: engine.stop())
    with engine, contextlib.suppress(KeyboardInterrupt):
        engine.run(idle_exit=max(2.0, settings.poll_interval * 2) if burst else None)


SHUTDOWN_GRACE_S = 3
"""Seconds requests still running at SIGTERM get to finish before they are cancelled (event
streams and stalled uploads would otherwise hold the server up for as long as they last;
work in threads is in daemon threads, which do not hold up the exit)."""


def _frame_limit(settings: Settings) -> int:
    """The largest worker-channel frame taken: a request body's limit, and its header."""
    return settings.max_request_bytes + 64


@app.command()
def server(
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8042,
    workers: Annotated[int, typer.Option("--http-workers", min=1, max=64)] = 1,
    verbose: VerboseOpt = False,
) -> None:
    """Serve the REST API (authentication from ORCHID_OIDC_* / local tokens)."""
    # first: a missing extra is named (MissingExtra), not a bare ModuleNotFoundError
    from orchid.server import create_app

    # isort: split
    import uvicorn

    _logging(verbose)
    settings = _settings(db=db)
    _warn_shared_identity(settings, _open(settings))  # migrate before the workers start
    err.print(f"Orchid API on http://{host}:{port}/api/v1 (database {settings.db_url})")
    if workers == 1:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level="warning",
            proxy_headers=False,  # the app takes forwarded headers from trusted proxies only
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            ws_max_size=_frame_limit(settings),
        )
    else:
        import os

        os.environ["ORCHID_DB_URL"] = settings.db_url
        uvicorn.run(
            "orchid.server:from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            proxy_headers=False,  # the app takes forwarded headers from trusted proxies only
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            ws_max_size=_frame_limit(settings),
        )


@app.command()
def up(
    db: DbOpt = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="port of the API on 127.0.0.1 (0: any free one)")
    ] = 8042,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """All in one: the agents, the local executor and the API on 127.0.0.1, over SQLite.

    The first start makes you a token (admin) and writes the url and token to the client
    config file, so that `orchid submit`, `status`, `watch`... in other terminals use this
    server at once. Ctrl-C (or SIGTERM) stops it; workflows carry on at the next start.
    """
    # first: a missing extra is named (MissingExtra), not a bare ModuleNotFoundError
    from orchid.server import create_app

    # isort: split
    import uvicorn

    from orchid.auth import AuthConfig
    from orchid.client.config import config_path

    _logging(verbose)
    settings = _personal(_settings(db=db, workers=workers, executor=executor))
    database = _open(settings)
    sock = _listen("127.0.0.1", port)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    path = config_path()
    note = _local_token(database, path, url, settings.owner)
    engine, metrics = _instrumented_engine(settings, database, watch_db=True)
    _tune_gc()
    # local tokens only: ORCHID_OIDC_* and proxies are for `orchid server`
    http = uvicorn.Server(
        uvicorn.Config(
            create_app(
                settings,
                AuthConfig(),
                db=database,
                trust_client_paths=True,
                metrics=metrics,
            ),
            log_level="warning",
            lifespan="off",
            proxy_headers=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            ws_max_size=_frame_limit(settings),
        )
    )

    def stop(*_: object) -> None:
        engine.stop()
        http.should_exit = True

    # uvicorn takes the signals while it serves and raises them again when it is done:
    # these handlers make that second delivery a no-op instead of killing the process
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    engine.start(on_failure=lambda _: setattr(http, "should_exit", True))  # raised below
    err.print(
        f"[bold]Orchid is up[/]: monitor {url}/ui/, API {url}/api/v1 (docs {url}/api/v1/docs)\n"
        f"  database {settings.db_url}, {settings.executor} executor, "
        f"{settings.workers} workers\n"
        f"  {note}\n"
        "In another terminal:\n"
        "  orchid submit workflow.yaml     orchid watch ID     orchid status\n"
        "Ctrl-C stops it.",
        highlight=False,
        soft_wrap=True,
    )
    try:
        http.run(sockets=[sock])
    finally:
        engine.close()
        sock.close()
        database.dispose()
    engine.raise_failure()
    err.print("Orchid stopped; `orchid up` carries on where it left off")


def shared_identity(settings: Settings, database: Database) -> str | None:
    """The warning to give when jobs of several users would run as the service's own OS
    user (a local or Slurm executor without run_as: Slurm runs a job as whoever submitted
    it, the agents' user unless run_as names another, while several users exist or OIDC /
    X.509 is configured); None when there is none to give."""
    from orchid.auth import AuthConfig
    from orchid.errors import ConfigError
    from orchid.executors import registry
    from orchid.store import tokens

    exposed = []
    configs = dict(settings.executors)
    configs.setdefault("local", settings.executor_config("local"))
    for name, cfg in sorted(configs.items()):
        if cfg.type not in ("local", "slurm"):
            continue
        options: Any = registry.check(cfg, f"[executors.{name}]")
        # a Slurm section's own run_as only: the top-level one is for local executors
        local = cfg.type == "local"
        if not (registry.local_run_as(options, settings) if local else options.run_as):
            exposed.append(name)
    if not exposed:
        return None
    try:
        auth = AuthConfig.from_settings(settings)
        methods = [m for m, on in (("OIDC", auth.oidc_issuer), ("X.509", auth.networks)) if on]
    except ConfigError:  # the server says what is wrong
        methods = []
    if methods:
        why = f"{' and '.join(methods)} authentication is configured"
    else:
        with database.engine.connect() as conn:
            if len(tokens.some_users(conn, 2)) < 2:
                return None
        why = "there are several users"
    return (
        f"warning: {why}, but the jobs of executor(s) {', '.join(exposed)} run as this "
        "service's OS user, and so can read its files; set run_as in their sections (or the "
        "top-level run_as for local executors; see docs/security.md)"
    )


def open_settings(settings: Settings) -> str | None:
    """The warning to give when others may read the settings file (it may hold passwords
    of brokers, and jobs of other OS users run on this host)."""
    path = settings.settings_file
    try:
        if path is None or not path.stat().st_mode & 0o077:
            return None
    except OSError:
        return None
    return f"warning: other users may read the settings file {path}; `chmod 600` it"


def _warn_shared_identity(settings: Settings, database: Database) -> None:
    for warning in (shared_identity(settings, database), open_settings(settings)):
        if warning:
            err.print(f"[bold yellow]{warning}[/]", highlight=False, soft_wrap=True)


def _instrumented_engine(
    settings: Settings, database: Database, *, watch_db: bool
) -> tuple[Engine, Metrics]:
    """Agents that report to a Prometheus registry of their own."""
    from orchid.bus.memory import MemoryBus
    from orchid.engine.inprocess import Engine
    from orchid.telemetry.metrics import Metrics

    metrics = Metrics()
    if watch_db:
        metrics.watch_database(database)  # status gauges and statement timings
    else:
        metrics.instrument(database.engine)
    engine = Engine(settings, database, bus=metrics.wrap_bus(MemoryBus()), metrics=metrics)
    metrics.watch_agents(engine.runner.agents)
    return engine, metrics


def _listen(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio turns Nagle off on accepted connections only when the
    # listening socket says so; with proto 0 every response waits ~40 ms for a delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "is Orchid already up? (`--port N` picks another port)"
        ) from None
    return sock


def _local_token(database: Database, path: Path, url: str, user: str) -> str:
    """Make sure the client config names this server with a working admin token of ``user``:
    the one there if it is still good, else a new one. Returns what was done, for people."""
    from orchid.client.config import read_file, write_file
    from orchid.store import tokens

    try:
        stored = read_file(path)
    except OrchidError:  # unreadable: kept aside below, not lost
        stored = None
    if stored is not None and stored.token:
        with database.begin() as conn:
            who = tokens.lookup(conn, stored.token, time.time())
        if who is not None and who.user == user and who.admin:
            if stored.url != url:
                write_file(path, url, stored.token)
            return f"you are {user} (admin); your token is in {path}"
    kept = ""
    if path.exists() and (stored is None or stored.url != url):
        backup = path.with_name(path.name + ".bak")
        os.replace(path, backup)
        kept = f"; the previous {path.name} is now {backup.name}"
    with database.begin() as conn:
        _, token = tokens.create(conn, user=user, admin=True, groups=[], now=time.time())
    write_file(path, url, token)
    return f"you are {user} (admin): a new token is in {path} (mode 0600){kept}"


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = None) -> None:
    """Create or migrate the schema to the newest version."""
    from orchid.store.db import Database

    settings = _settings(db=db)
    Database(settings.db_url).upgrade()
    console.print(f"schema up to date: {settings.db_url}")
