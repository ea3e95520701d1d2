"""What the command modules share: the Typer apps, consoles, options and helpers."""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler

from orchid.config import environment
from orchid.errors import InvalidInput, NotFound
from orchid.settings import Settings

# SQLAlchemy, the store and the engine are imported where a database is used: a command
# sent to a server loads none of them
if TYPE_CHECKING:
    from orchid.backend.base import Backend
    from orchid.client import Client
    from orchid.store.db import Database


app = typer.Typer(
    name="orchid",
    help="Orchid: workflow orchestration for data-intensive science.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
token_app = typer.Typer(help="Local API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
quota_app = typer.Typer(help="Limits and fair-share weights (admins).", no_args_is_help=True)
app.add_typer(quota_app, name="quota")
console = Console()
err = Console(stderr=True)

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="database URL, or a path to an SQLite file (env ORCHID_DB_URL)"),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="workflow parameter key=value (JSON value)"),
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="an Orchid server to go through (env ORCHID_URL), as ORCHID_TOKEN's user",
        show_default=False,
    ),
]
GroupOpt = Annotated[
    str | None,
    typer.Option("--share-group", help="a group of yours whose members may see and steer it"),
]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-w", help="jobs run at once")]
ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor", help="the default executor: local, null, or one of the settings file"
    ),
]
JsonLinesOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="no live table: a line of JSON (as `status ID --json`) at each change, the last "
        "one final",
    ),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="log what the agents do")]
MAX_ID = 2**63 - 1
WorkflowId = Annotated[int, typer.Argument(min=1, max=MAX_ID, help="workflow id")]


def _settings(**overrides: Any) -> Settings:
    return Settings.load(**overrides)


def _personal(settings: Settings) -> Settings:
    """`orchid run` and `orchid up`, one person on their own machine: without a
    ``data_root`` setting, the built-in posix data manager takes ``<home>/data`` (made
    here, 0700), a folder for data only, never the home itself nor the working folder."""
    if settings.data_root is not None:
        return settings
    root = settings.home / "data"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return settings.replace(data_root=root)


def _open(settings: Settings, wait: float = 0.0) -> Database:
    """The database, migrated. ``wait``: seconds to keep trying while the server cannot
    be reached (an agent started while PostgreSQL restarts waits for it)."""
    import sqlalchemy as sa

    from orchid.store.db import Database

    db = Database(settings.db_url, lease_seconds=settings.lease_seconds)
    deadline = time.monotonic() + wait
    delay = 0.2
    while True:
        try:
            db.ensure_schema()
            return db
        except sa.exc.OperationalError:
            if time.monotonic() + delay > deadline:
                raise
            err.print(f"the database is not reachable; trying again in {delay:.1f}s")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _open_existing(settings: Settings) -> Database:
    """The database of a read-only command (`status`, `jobs`, `logs`, `graph`, `watch`):
    migrated if it is an older Orchid database, but never created, nor its folder. A path
    with no database, or a database without Orchid's tables, is a :class:`NotFound` that
    says so (a typo in ``--db`` must not look like an empty Orchid)."""
    import sqlalchemy as sa

    from orchid.store.db import HEAD, Database, is_sqlite_file

    where = database_name(settings.db_url)
    url = sa.engine.make_url(settings.db_url) if "://" in settings.db_url else None
    if url is not None and url.get_backend_name() == "sqlite":
        path = url.database or ""
        if path and path != ":memory:":
            if not Path(path).is_file():
                raise NotFound(f"there is no database at {path}: {_WHICH_DB}")
            if not is_sqlite_file(Path(path)):
                raise NotFound(f"{path} is not an Orchid database: {_WHICH_DB}")
    db = Database(settings.db_url)
    revision = db.revision()
    if revision is None:
        db.dispose()
        raise NotFound(f"{where} is not an Orchid database (it has no Orchid tables): {_WHICH_DB}")
    if revision != HEAD:
        db.upgrade()  # an older Orchid database: the commands below read today's schema
    return db


_WHICH_DB = "check --db / ORCHID_DB_URL (`orchid run`, `orchid submit` and `orchid up` create one)"


def database_name(db_url: str) -> str:
    """A database as people name it: an SQLite file's path, a URL without its password."""
    import sqlalchemy as sa

    try:
        url = sa.engine.make_url(db_url)
    except sa.exc.ArgumentError:
        return db_url
    if url.get_backend_name() == "sqlite":
        return url.database or db_url
    return url.render_as_string(hide_password=True)


def _tune_gc() -> None:
    """For a long-running agent loop: what was loaded at start is never collected, and young
    objects (a batch's rows and specs) are collected in large steps, not every 700 allocations:
    full collections walking every object otherwise cost several percent of an agent."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _logging(verbose: bool) -> None:
    """Log to stderr: readable by default, one JSON object a line with ORCHID_LOG_FORMAT=json
    (for log collectors)."""
    fmt = (environment("ORCHID_LOG_FORMAT") or "text").lower()
    if fmt not in ("text", "json"):
        raise InvalidInput(f"ORCHID_LOG_FORMAT={fmt!r}: use text or json")
    if fmt == "json":
        from orchid.telemetry.logs import json_handler

        handler: logging.Handler = json_handler()
    else:
        handler = RichHandler(console=err, show_path=False)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[handler],
    )


def _params(items: list[str] | None) -> dict[str, Any]:
    from orchid.engine.submit import parse_param

    return dict(parse_param(p) for p in items or [])


def _remote(url: str | None, db: str | None) -> Client | None:
    """The API client when this command goes to a server; None: the embedded engine.

    A server is used when ``--url`` or ORCHID_URL names one, or when the client config
    file (``orchid up`` writes it) does and no database was chosen (``--db``, ORCHID_DB_URL).
    """
    if url is not None and db is not None:
        raise InvalidInput("--url (a server) and --db (a database here) exclude each other")
    if db is not None:
        return None
    if url is None and not environment("ORCHID_URL") and environment("ORCHID_DB_URL"):
        return None
    from orchid.client import Client, ClientConfig

    config = ClientConfig.load(url=url)
    return Client.from_config(config) if config is not None else None


def _backend(url: str | None, db: str | None, *, create: bool = False) -> Backend:
    """The Orchid this command goes to: the server :func:`_remote` names, else the database
    here (created or migrated with ``create``; else as :func:`_open_existing` opens it)."""
    client = _remote(url, db)
    if client is not None:
        from orchid.backend.remote import RemoteBackend

        return RemoteBackend(client)
    from orchid.backend.embedded import EmbeddedBackend

    settings = _settings(db=db)
    return EmbeddedBackend(settings, db=_open(settings) if create else _open_existing(settings))


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
