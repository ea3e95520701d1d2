"""PostgreSQL sessions are bounded below the lease, and passing jobs on never waits for
long behind another session (issue 15, item 4: a frozen agent stalls no other).

These use a 2 s lease: lock_timeout 0.2 s, idle_in_transaction_session_timeout 0.67 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orchid.store import dispatch, release, works
from orchid.store.db import Database, SessionLimits, lost_connection, passing_failure
from tests.conftest import _truncate
from tests.store.test_jobs import (
    T0,
    claim,
    ids_by_name,
    propagate_all,
    rows,
    static_template,
    submit_and_start,
    update,
)

pytestmark = pytest.mark.postgres
SHORT_LEASE = 2.0


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    db = Database(pg_url, lease_seconds=SHORT_LEASE)
    _truncate(db)
    yield db
    db.dispose()


def test_limits_follow_the_lease() -> None:
    limits = SessionLimits.from_lease(30.0)
    assert (limits.lock_timeout_s, limits.idle_in_transaction_s, limits.statement_s) == (
        3.0,
        10.0,
        15.0,
    )
    assert (limits.keepalive_idle_s, limits.keepalive_interval_s, limits.keepalive_count) == (
        5,
        2,
        3,
    )


def test_sessions_carry_the_limits(pg: Database) -> None:
    with pg.engine.connect() as conn:
        show = {
            name: conn.exec_driver_sql(f"SHOW {name}").scalar()
            for name in (
                "lock_timeout",
                "idle_in_transaction_session_timeout",
                "statement_timeout",
                "tcp_keepalives_count",
            )
        }
    assert show == {
        "lock_timeout": "200ms",
        "idle_in_transaction_session_timeout": "667ms",
        "statement_timeout": "1s",
        "tcp_keepalives_count": "3",
    }


def test_a_lock_wait_gives_up_with_a_passing_failure(pg: Database) -> None:
    wf_id = submit_and_start(pg, static_template({"A": {"a": []}}))
    with pg.begin() as holder:
        holder.execute(sa.text("SELECT id FROM works FOR UPDATE"))
        t0 = time.monotonic()
        with pytest.raises(sa.exc.OperationalError) as caught, pg.begin() as conn:
            conn.execute(
                sa.text("UPDATE works SET remaining = 0 WHERE workflow_id = :w"), {"w": wf_id}
            )
        assert time.monotonic() - t0 < 5  # not until the holder ends
    assert passing_failure(caught.value) is not None


def test_a_session_idle_in_a_transaction_is_ended_and_the_pool_recovers(pg: Database) -> None:
    submit_and_start(pg, static_template({"A": {"a": []}}))
    with pytest.raises(sa.exc.DBAPIError) as caught, pg.begin() as conn:
        conn.execute(sa.text("SELECT id FROM works FOR UPDATE"))
        time.sleep(SHORT_LEASE / 3 + 0.5)  # a frozen agent
        conn.execute(sa.text("SELECT 1"))
    assert passing_failure(caught.value) or lost_connection(caught.value)
    with pg.begin() as conn:  # its locks are gone, and the next transaction just works
        assert conn.execute(sa.text("UPDATE works SET remaining = remaining")).rowcount == 1


def _hold_works(pg: Database) -> sa.Connection:
    """Another session holding the works rows, as an agent frozen mid-transaction would."""
    holder = pg.engine.connect()
    holder.begin()
    holder.execute(sa.text("SELECT id FROM works FOR NO KEY UPDATE"))
    return holder


def test_successes_are_recorded_while_their_works_are_locked_and_passed_on_later(
    pg: Database,
) -> None:
    wf_id = submit_and_start(pg, static_template({"A": {"a": []}, "B": {"b": ["A/a"]}}))
    ids = ids_by_name(pg, wf_id)
    (r,) = claim(pg)
    holder = _hold_works(pg)
    try:
        with pg.begin() as conn:
            done = dispatch.record(
                conn, [update(r.id, 1, "succeeded", T0 + 1, exit_code=0)], {}, T0 + 1, pass_on=True
            )
        assert (done.finished, done.passed.jobs, done.passed.deferred) == (1, 0, [ids["a"]])
        with pg.begin() as conn:  # the trigger, while the works are still locked
            p = release.propagate(conn, T0 + 2, 100)
        assert (p.jobs, p.deferred) == (0, [ids["a"]])
        got = rows(pg, wf_id)
        assert (got[ids["a"]].status, got[ids["a"]].propagated) == ("succeeded", False)
        assert got[ids["b"]].status == "waiting"
    finally:
        holder.rollback()
        holder.close()
    passed = propagate_all(pg, T0 + 3)  # the lock is gone: the trigger passes it on
    assert (passed.jobs, passed.released) == (1, 1)
    got = rows(pg, wf_id)
    assert got[ids["b"]].status == "ready" and got[ids["a"]].propagated
    with pg.begin() as conn:  # its end is counted off its work once: by the trigger
        work_a = {w.name: w.id for w in works.list_for(conn, wf_id)}["A"]
    assert done.passed.remaining == {} and passed.remaining == {work_a: 1}
