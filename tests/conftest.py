"""Shared fixtures: a fresh database per test, on SQLite and on the machine's PostgreSQL.

Each test session creates its own PostgreSQL database (``orchid_test_<pid>_<random>``)
and drops it at the end, so runs never see each other's data; each test gets
empty tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchid.core.states import (
    FILE_TRANSITIONS,
    JOB_TRANSITIONS,
    WORK_TRANSITIONS,
    WORKFLOW_TRANSITIONS,
)
from orchid.store.db import Database
from orchid.store.tables import metadata
from tests import servers

# the session's one real PanDA, shared by every module that runs on it (xdist group `panda`)
pytest_plugins = ["tests.executors.panda_fixtures"]

PG_ADMIN = os.environ.get("ORCHID_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> bool:
    try:
        eng = sa.create_engine(PG_ADMIN, connect_args={"connect_timeout": 3})
        with eng.connect():
            pass
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of this test session's own on the local PostgreSQL, dropped at the end."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is not reachable; `make services` starts it")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    name = f"orchid_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        servers.drop_orphans(conn, "orchid_test_")
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
        db = Database(url)
        db.upgrade()
        install_transition_audit(db)
        db.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


AUDITED = {
    "jobs": JOB_TRANSITIONS,
    "works": WORK_TRANSITIONS,
    "workflows": WORKFLOW_TRANSITIONS,
    "files": FILE_TRANSITIONS,
}


def install_transition_audit(db: Database) -> None:
    """Triggers that abort any UPDATE moving a status along an edge the tables forbid.

    Every store and engine test then checks the state machines (docs/architecture.md) as a
    side effect: the store's set-based updates may only do what ``orchid.core.states`` allows.
    """
    with db.begin() as conn:
        for table, transitions in AUDITED.items():
            pairs = ", ".join(f"'{a}>{b}'" for a, targets in transitions.items() for b in targets)
            if db.is_sqlite:
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS audit_{table}")
                conn.exec_driver_sql(
                    f"CREATE TRIGGER audit_{table} BEFORE UPDATE OF status ON {table} "
                    f"WHEN NEW.status != OLD.status AND OLD.status || '>' || NEW.status "
                    f"NOT IN ({pairs}) BEGIN SELECT RAISE(ABORT, 'illegal {table} transition'); END"
                )
            else:
                conn.exec_driver_sql(
                    f"CREATE OR REPLACE FUNCTION audit_{table}() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.status <> OLD.status AND NOT (OLD.status || '>' || NEW.status = "
                    f"ANY (ARRAY[{pairs}])) THEN RAISE EXCEPTION 'illegal {table} transition "
                    f"%% -> %%', OLD.status, NEW.status; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS audit_{table} ON {table}")
                conn.exec_driver_sql(
                    f"CREATE TRIGGER audit_{table} BEFORE UPDATE OF status ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION audit_{table}()"
                )


def _truncate(db: Database) -> None:
    with db.begin() as conn:
        if not db.is_sqlite:  # wait for a previous test's last connections, however long
            conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        names = ", ".join(t.name for t in reversed(metadata.sorted_tables))
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty, migrated database: SQLite in tmp_path, or this session's PostgreSQL one."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'orchid.db'}")
        database.upgrade()
        install_transition_audit(database)
    else:
        database = Database(request.getfixturevalue("pg_url"))
        _truncate(database)
    yield database
    database.dispose()


@pytest.fixture
def db_url(db: Database) -> str:
    return db.url
