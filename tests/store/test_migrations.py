"""Migrations: ``upgrade`` is idempotent and builds exactly the schema of ``store.tables``.

Checked on the test's database (already migrated by the ``db`` fixture) and on a brand-new
database of each kind, so that the first migration is exercised from nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from orchid.store.db import HEAD, MIGRATIONS, Database
from orchid.store.tables import metadata


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def differences(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_head_constant_is_the_newest_migration() -> None:
    assert head_revision() == HEAD


def test_upgrade_again_changes_nothing(db: Database) -> None:
    before = differences(db)
    db.upgrade()
    db.upgrade()
    db.ensure_schema()
    assert current_revision(db) == db.revision() == HEAD
    assert before == differences(db) == []


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database that has never been migrated (PostgreSQL: one of its own, dropped after)."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield database
        database.dispose()
        return
    request.getfixturevalue("pg_url")  # skips (or fails on CI) when the server is not there
    admin_url = os.environ.get(
        "ORCHID_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    name = f"orchid_migr_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    try:
        yield database
    finally:
        database.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_new_database_migrates_to_the_tables(fresh_db: Database) -> None:
    assert current_revision(fresh_db) is None
    assert fresh_db.revision() is None
    fresh_db.upgrade()
    fresh_db.upgrade()  # a second time is a no-op
    assert current_revision(fresh_db) == fresh_db.revision() == HEAD
    assert differences(fresh_db) == []
    names = set(sa.inspect(fresh_db.engine).get_table_names())
    assert names == {t.name for t in metadata.sorted_tables} | {"alembic_version"}


def test_ensure_schema_migrates_a_new_database_once(fresh_db: Database) -> None:
    fresh_db.ensure_schema()
    assert fresh_db.revision() == HEAD
    fresh_db.ensure_schema()
    assert differences(fresh_db) == []


def test_server_defaults_fill_rows(fresh_db: Database) -> None:
    """Rows written without the defaulted columns read back with the defaults of tables.py."""
    fresh_db.upgrade()
    with fresh_db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO workflows (name, owner, status, template, params, loops, "
                "created_at, updated_at) VALUES ('w', 'me', 'pending', '{}', '{}', '{}', 1, 1)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO works (workflow_id, name, status, created_at) "
                "VALUES (1, 'a', 'waiting', 1)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO jobs (workflow_id, work_id, name, status, args) "
                "VALUES (1, 1, 'j', 'waiting', '{}')"
            )
        )
        wf = conn.execute(sa.text("SELECT message, wake_seq, seen_seq FROM workflows")).one()
        work = conn.execute(
            sa.text("SELECT iteration, message, static, n_jobs, remaining FROM works")
        ).one()
        job = conn.execute(
            sa.text(
                "SELECT pending_parents, attempt, max_attempts, not_before, cancel_requested, "
                "propagated FROM jobs"
            )
        ).one()
    assert tuple(wf) == ("", 1, 0)
    assert (work.iteration, work.message, bool(work.static), work.n_jobs, work.remaining) == (
        0,
        "",
        False,
        0,
        0,
    )
    assert (job.pending_parents, job.attempt, job.max_attempts, job.not_before) == (0, 0, 1, 0)
    assert (bool(job.cancel_requested), bool(job.propagated)) == (False, False)


def test_0015_counts_the_results_already_recorded(fresh_db: Database) -> None:
    """result_usage starts with what each workflow's jobs hold (the result_bytes quota)."""
    import json

    from alembic import command

    from orchid.store.tables import jobs, result_usage, workflows, works

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with fresh_db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0014")
    results: list[Any] = [{"loss": 0.5}, "file.root", None, [1, 2, 3]]
    with fresh_db.begin() as conn:
        wf = conn.execute(
            sa.insert(workflows)
            .values(
                name="w",
                owner="alice",
                status="succeeded",
                template={},
                params={},
                loops={},
                created_at=0.0,
                updated_at=0.0,
            )
            .returning(workflows.c.id)
        ).scalar_one()
        work = conn.execute(
            sa.insert(works)
            .values(workflow_id=wf, name="a", status="succeeded", created_at=0.0)
            .returning(works.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(jobs),
            [
                {
                    "workflow_id": wf,
                    "work_id": work,
                    "name": f"j{i}",
                    "status": "succeeded",
                    "args": {},
                    "result": r,
                }
                for i, r in enumerate(results)
            ],
        )
    fresh_db.upgrade()
    with fresh_db.engine.connect() as conn:
        rows = conn.execute(sa.select(result_usage.c.workflow_id, result_usage.c.bytes)).all()
    assert [tuple(r) for r in rows] == [
        (wf, sum(len(json.dumps(r)) for r in results if r is not None))
    ]
