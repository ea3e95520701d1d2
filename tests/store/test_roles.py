"""The least-privilege deployment of docs/security.md works as written: one role owns the
schema and runs ``orchid db upgrade``; the agents run a workflow as another role that may
read and write the tables but not change the schema."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchid.engine.runner import make_runner
from orchid.engine.submit import submit
from orchid.store.db import HEAD, Database
from tests.conftest import PG_ADMIN
from tests.engine.enginekit import drain, settings_for

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class Roles:
    owner_url: str
    app_url: str


def _url(role: str, database: str) -> str:
    base = sa.engine.make_url(PG_ADMIN)
    return base.set(username=role, password="not-checked-here", database=database).render_as_string(
        hide_password=False
    )


@pytest.fixture
def roles(pg_url: str) -> Iterator[Roles]:  # pg_url: skips or fails as the other PG tests do
    tag = uuid.uuid4().hex[:8]
    owner, app, name = f"orchid_owner_{tag}", f"orchid_app_{tag}", f"orchid_roles_{tag}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {owner} LOGIN PASSWORD 'not-checked-here'")
        conn.exec_driver_sql(f"CREATE ROLE {app} LOGIN PASSWORD 'not-checked-here'")
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" OWNER {owner}')
    inside = sa.create_engine(PG_ADMIN.rsplit("/", 1)[0] + "/" + name, isolation_level="AUTOCOMMIT")
    try:
        with inside.connect() as conn:  # the statements of docs/security.md, as written there
            conn.exec_driver_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {app}")
            conn.exec_driver_sql(
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}"
            )
            conn.exec_driver_sql(
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
                f"GRANT USAGE, SELECT ON SEQUENCES TO {app}"
            )
        inside.dispose()
        yield Roles(_url(owner, name), _url(app, name))
    finally:
        inside.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {app}")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {owner}")
        admin.dispose()


def test_agents_run_a_workflow_as_a_role_that_cannot_change_the_schema(
    roles: Roles, tmp_path: Path
) -> None:
    Database(roles.owner_url).upgrade()  # `orchid db upgrade`, as the owner
    db = Database(roles.app_url)
    try:
        db.ensure_schema()  # what the agents and the server do at start: nothing to upgrade
        assert db.revision() == HEAD
        for ddl in ("ALTER TABLE jobs ADD COLUMN planted text", "CREATE TABLE planted (x int)"):
            with (
                pytest.raises(sa.exc.ProgrammingError, match=r"permission denied|must be owner"),
                db.begin() as conn,
            ):
                conn.exec_driver_sql(ddl)
        template = {
            "name": "least-privilege",
            "works": [
                {"name": "a", "noop": True, "map": {"items": [{"i": i} for i in range(20)]}},
                {"name": "b", "noop": True, "after": ["a"]},
            ],
        }
        runner = make_runner(settings_for(db, tmp_path, executor="null"), db)
        try:
            wf_id = submit(db, template, base_dir=tmp_path, now=time.time())
            assert drain(runner, db, wf_id).status == "succeeded"
        finally:
            runner.close()
    finally:
        db.dispose()
