"""A request that waits on a lock another session holds too long (an agent frozen
mid-transaction, until the server ends its session) answers 503 with Retry-After, not
500, and changes nothing (issue 15, item 4)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orchid.store.db import Database
from tests.api.conftest import Api
from tests.conftest import _truncate

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    """PostgreSQL with a 2 s lease: lock_timeout 0.2 s."""
    database = Database(pg_url, lease_seconds=2.0)
    _truncate(database)
    yield database
    database.dispose()


def test_a_request_blocked_by_a_held_lock_answers_503(api: Api) -> None:
    wf = api.submit("alice")
    c = api.client("alice")
    with api.db.engine.connect() as holder:
        holder.begin()
        holder.execute(sa.text("SELECT id FROM workflows FOR UPDATE"))
        r = c.post(f"/workflows/{wf['id']}/abort")
        holder.rollback()
    assert r.status_code == 503, r.text
    assert "busy" in r.json()["error"] and r.headers["retry-after"] == "1"
    assert c.post(f"/workflows/{wf['id']}/abort").status_code == 202
    assert not api.server_errors
