"""Connecting to the database: SQLite (embedded default, WAL) or PostgreSQL, and migrations."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchid.errors import ConfigError
from orchid.extras import missing
from orchid.safefiles import private_folder

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0015"  # the newest migration; tests check it matches the migration scripts
SQLITE_CACHE_KIB = 256 * 1024  # at most this much page cache per SQLite connection
SQLITE_CHECKPOINT_PAGES = 16384
_WRITE = "orchid_write"  # execution option of Database.begin(): take SQLite's write lock
_NOWAIT = "orchid_nowait"  # ... only if it is free at once (Database.begin(wait=False))
BUSY_TIMEOUT_MS = 60_000  # how long an SQLite statement waits for another's lock


class WriteLockBusy(Exception):
    """``Database.begin(wait=False)``: another connection holds SQLite's write lock (the
    caller does the same in a thread that may wait). Nothing was done."""


DEFAULT_LEASE_S = 30.0  # Settings.lease_seconds's default


@dataclass(frozen=True)
class SessionLimits:
    """How long one PostgreSQL session may hold locks or wait for them, from the lease.

    A frozen agent (SIGSTOP, a paused VM, a network partition) must not stall the others:
    whatever it locked is released by the server well before its jobs' leases run out and
    another agent takes them over. With ``L`` the lease (``lease_seconds``, default 30 s):

    - ``idle_in_transaction_session_timeout`` = L/3 (10 s): a session that sits in an open
      transaction without a statement this long is ended by the server, its locks freed;
    - ``statement_timeout`` = L/2 (15 s): no statement runs (and holds locks) longer;
    - ``lock_timeout`` = L/10 (3 s): a lock wait gives up (LockNotAvailable); the agent
      rolls back and tries the round again, instead of queueing behind a frozen session;
    - TCP keepalives on both ends: first probe after L/6 s idle, then every L/15 s, 3
      probes (at least 1 s each; 11 s by default), and ``tcp_user_timeout`` = L/3 for
      data sent and not acknowledged: a dead peer is noticed within the lease.
    """

    lock_timeout_s: float
    idle_in_transaction_s: float
    statement_s: float
    keepalive_idle_s: int
    keepalive_interval_s: int
    keepalive_count: int = 3

    @classmethod
    def from_lease(cls, lease: float) -> SessionLimits:
        return cls(
            lock_timeout_s=lease / 10,
            idle_in_transaction_s=lease / 3,
            statement_s=lease / 2,
            keepalive_idle_s=max(1, round(lease / 6)),
            keepalive_interval_s=max(1, round(lease / 15)),
        )

    def options(self) -> str:
        """The server settings, as libpq's ``options`` (``-c name=value`` each)."""
        gucs = {
            "lock_timeout": _ms(self.lock_timeout_s),
            "idle_in_transaction_session_timeout": _ms(self.idle_in_transaction_s),
            "statement_timeout": _ms(self.statement_s),
            "tcp_keepalives_idle": self.keepalive_idle_s,
            "tcp_keepalives_interval": self.keepalive_interval_s,
            "tcp_keepalives_count": self.keepalive_count,
        }
        return " ".join(f"-c {name}={value}" for name, value in gucs.items())

    def connect_args(self, url_options: str | None = None) -> dict[str, Any]:
        """psycopg connect arguments: the server settings (those of the URL's own
        ``options`` come after, so they win) and the client's keepalives."""
        options = self.options() + (f" {url_options}" if url_options else "")
        return {
            "options": options,
            "keepalives": 1,
            "keepalives_idle": self.keepalive_idle_s,
            "keepalives_interval": self.keepalive_interval_s,
            "keepalives_count": self.keepalive_count,
            "tcp_user_timeout": _ms(self.idle_in_transaction_s),
            # who holds a lock, in pg_stat_activity
            "application_name": f"orchid:{os.getpid()}",
        }


# SQLSTATEs of failures that pass by themselves: the transaction was rolled back, and the
# same work done again later succeeds (see Runner: such a round is simply tried again)
_PASSING = {
    "55P03": "a lock wait gave up (lock_timeout)",
    "40P01": "a deadlock",
    "40001": "a serialization failure",
    "25P03": "the server ended a transaction left idle (idle_in_transaction_session_timeout)",
}


def passing_failure(exc: BaseException) -> str | None:
    """Why a database call failed, if it failed for a reason that passes: another session
    held a lock too long, a deadlock, the server ended this session's idle transaction;
    None for any other failure (a statement timeout, which would recur; a lost
    connection, which the pool replaces but which may last: the database is away).
    """
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    code = getattr(exc.orig, "sqlstate", None)
    if code in _PASSING:
        return _PASSING[code]
    if isinstance(exc, sa.exc.OperationalError) and "database is locked" in str(exc.orig):
        return "the SQLite database was locked too long"
    return None


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def timed_out(exc: BaseException) -> bool:
    """A statement ran past ``statement_timeout`` (or was cancelled): not a passing
    failure for an agent (the same statement would time out again), but nothing was
    written."""
    return isinstance(exc, sa.exc.DBAPIError) and getattr(exc.orig, "sqlstate", None) == "57014"


def lost_connection(exc: BaseException) -> bool:
    """The call failed because its connection is gone (the server ended the session or
    went away); the pool has discarded it, and the next call connects again."""
    return isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated


class Database:
    """One engine and the transactions on it. Holds no other state."""

    def __init__(
        self, url: str, *, echo: bool = False, lease_seconds: float = DEFAULT_LEASE_S
    ) -> None:
        """``lease_seconds``: the agents' lease; PostgreSQL sessions are bounded below it
        (see :class:`SessionLimits`)."""
        self.url = url
        self.lease_seconds = lease_seconds
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
        self.limits = SessionLimits.from_lease(lease_seconds)
        # psycopg's connect arguments (PostgreSQL): the bus's own connections use them too
        self.connect_args: dict[str, Any] = {}
        if self.dialect == "postgresql":
            options = parsed.query.get("options")
            if isinstance(options, tuple):
                options = " ".join(options)
            self.connect_args = self.limits.connect_args(options)
        self.engine: Engine = _make_engine(url, self.dialect, echo, self.connect_args)
        self._echo = echo
        self._nowait_engine: Engine | None = None
        self._nowait_made = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def begin(self, *, wait: bool = True) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any exception.

        On SQLite it takes the write lock at once (``BEGIN IMMEDIATE``), so writers queue
        on the lock instead of failing to upgrade a read lock; ``engine.connect()`` is
        for reads, which never wait for writers (WAL) and never make writers wait.
        ``wait=False`` (SQLite): :class:`WriteLockBusy` at once if another connection holds
        the write lock, for a caller that must not wait (an event loop's thread).
        """
        engine = self.engine if wait or not self.is_sqlite else self._nowait()
        try:
            # (the shared pool may be out of connections, each a thread's that waits for
            # the lock: a caller that must not wait takes one of a pool of its own)
            conn = engine.connect()
        except sa.exc.TimeoutError:
            if wait:  # (the shared pool's own time-out: not this caller's to turn into busy)
                raise
            raise WriteLockBusy("the connection that may not wait is in use") from None
        with conn:
            conn.execution_options(**{_WRITE: True, _NOWAIT: not wait})
            with conn.begin():
                yield conn

    def _nowait(self) -> Engine:
        """SQLite: the engine of ``begin(wait=False)``: one connection, never waited for
        (a second caller meanwhile is told WriteLockBusy)."""
        with self._nowait_made:
            if self._nowait_engine is None:
                self._nowait_engine = _make_engine(
                    self.url, self.dialect, self._echo, self.connect_args, nowait=True
                )
            return self._nowait_engine

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
            if not self.is_sqlite:  # an index on a big table may take longer than a lease
                conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()
        if self._nowait_engine is not None:
            self._nowait_engine.dispose()

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


def private_file(path: Path) -> None:
    """An SQLite database only we may read (0600; SQLite gives its -wal and -shm files
    the database's mode): made empty if missing, closed to others if it is ours and open
    (from before this rule, or a wider umask). It holds the key of job tokens.

    An existing database is never opened here: closing any descriptor of a database file
    drops every POSIX lock this process holds on it, SQLite's shared lock included. Another
    process's last connection then checkpoints and deletes the WAL under this process's
    connections, which from then on never see what others commit (a server rejected a
    token made a moment before). So: create with O_EXCL, else stat and chmod by name.
    """
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    info = os.stat(path)
    if not os.access(path, os.R_OK):  # say so now, not as SQLite's "unable to open"
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        log.warning("%s was readable by others; it is now 0600", path)
        os.chmod(path, 0o600)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{path}{suffix}")
            if side.exists() and side.stat().st_uid == info.st_uid:
                side.chmod(0o600)


def is_sqlite_file(path: Path) -> bool:
    """Whether ``path`` holds an SQLite database (an empty file does not: opening it would
    make it one), asked of SQLite itself: read-only, so nothing is created, and SQLite's
    own open and close keep the POSIX locks this process may hold on the file (see
    :func:`private_file`)."""
    try:
        if path.stat().st_size == 0:
            return False
    except OSError:
        return False
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            conn.execute("PRAGMA schema_version").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False
    return True


def _make_engine(
    url: str, dialect: str, echo: bool, connect_args: dict[str, Any], nowait: bool = False
) -> Engine:
    if dialect == "sqlite":
        path = sa.engine.make_url(url).database
        if path and path != ":memory:" and not path.startswith("file:"):
            try:
                private_folder(Path(path).parent)
                private_file(Path(path))
            except OSError as exc:
                raise ConfigError(
                    f"cannot create the database {path}: {exc.strerror}; "
                    "choose another --db path or ORCHID_HOME"
                ) from None
        # nowait: one connection, and a caller finding it in use is told at once
        pool: dict[str, Any] = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 0}
        engine = sa.create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 60},
            **(pool if nowait else {}),
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # take over transaction control from pysqlite so BEGIN IMMEDIATE can be issued:
            # writers then queue on the lock instead of failing to upgrade a read lock
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
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
            options = conn.get_execution_options()
            # on the driver's connection: through exec_driver_sql this was 8% of an agent
            driver = conn.connection.driver_connection
            if not options.get(_NOWAIT, False):
                driver.execute("BEGIN IMMEDIATE" if options.get(_WRITE, False) else "BEGIN")  # type: ignore[union-attr]
                return
            driver.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
            try:
                driver.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise WriteLockBusy(str(exc)) from None
                raise
            finally:
                driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # type: ignore[union-attr]

        return engine
    try:
        # pool_pre_ping: a connection the server ended (idle_in_transaction_session_timeout,
        # a restart) while it sat in the pool is replaced, not handed out
        return sa.create_engine(
            url,
            echo=echo,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=5,
            connect_args=connect_args,
        )
    except ModuleNotFoundError as exc:
        raise missing("postgres", exc, "a PostgreSQL database") from None
