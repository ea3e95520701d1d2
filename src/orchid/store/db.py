"""Connecting to the database: SQLite (embedded default, WAL) or PostgreSQL, and migrations."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchid.errors import ConfigError, StoreError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0011"  # the newest migration; tests check it matches the migration scripts
SQLITE_CACHE_KIB = 256 * 1024  # at most this much page cache per SQLite connection
SQLITE_CHECKPOINT_PAGES = 16384
_WRITE = "orchid_write"  # execution option of Database.begin(): take SQLite's write lock


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


class Database:
    """One engine and the transactions on it. Holds no other state."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise ConfigError(
                f"cannot read the database URL {url!r}: {exc}. Use sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST:PORT/DB"
            ) from None
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        self.engine: Engine = _make_engine(url, self.dialect, echo)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any exception.

        On SQLite it takes the write lock at once (``BEGIN IMMEDIATE``), so writers queue
        on the lock instead of failing to upgrade a read lock; ``engine.connect()`` is
        for reads, which never wait for writers (WAL) and never make writers wait.
        """
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def revision(self) -> str | None:
        """The schema's migration revision, or None for an empty database."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def ensure_schema(self) -> None:
        """Upgrade only if needed: one query when the schema is current (every CLI call)."""
        if self.revision() != HEAD:
            self.upgrade()

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (``orchid db upgrade``); idempotent."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()

    def change_probe(self) -> ChangeProbe | None:
        """SQLite: a probe of commits made by other connections (other processes' included),
        for agents to notice a submission without an event bus. None on PostgreSQL, whose
        bus carries them (LISTEN/NOTIFY)."""
        return ChangeProbe(self) if self.is_sqlite else None


class ChangeProbe:
    """Whether any other connection committed to an SQLite database since the last look:
    ``PRAGMA data_version`` on a connection of its own (about 2 us, no lock taken)."""

    def __init__(self, db: Database) -> None:
        self._conn = db.engine.raw_connection()
        self._version = self._read()

    def _read(self) -> int:
        cursor = self._conn.cursor()
        try:
            cursor.execute("PRAGMA data_version")
            row = cursor.fetchone()
            return int(row[0]) if row else 0
        finally:
            cursor.close()

    def changed(self) -> bool:
        """True if another connection committed since the last call (or the probe's start)."""
        version = self._read()
        changed, self._version = version != self._version, version
        return changed

    def close(self) -> None:
        self._conn.close()


def _make_engine(url: str, dialect: str, echo: bool) -> Engine:
    if dialect == "sqlite":
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create the folder for the database {path}: {exc.strerror}; "
                    "choose another --db path or ORCHID_HOME"
                ) from None
        engine = sa.create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 60}
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # take over transaction control from pysqlite so BEGIN IMMEDIATE can be issued:
            # writers then queue on the lock instead of failing to upgrade a read lock
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            # pages of a big graph's jobs are touched again and again (each job changes
            # status four times): keep them in memory instead of the default 2 MiB cache
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.execute("PRAGMA temp_store=MEMORY")
            # checkpoint every 64 MiB of WAL, not every 4 MiB: a checkpoint syncs the disk,
            # and with batches of thousands of rows the default makes nearly every commit one
            cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            write = conn.get_execution_options().get(_WRITE, False)
            # on the driver's connection: through exec_driver_sql this was 8% of an agent
            conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                "BEGIN IMMEDIATE" if write else "BEGIN"
            )

        return engine
    try:
        return sa.create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=5)
    except ModuleNotFoundError as exc:  # pragma: no cover - dependency missing
        raise StoreError(f"the PostgreSQL driver is missing: {exc}") from None
