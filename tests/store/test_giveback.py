"""A carrier that stops cleanly gives its jobs in flight back at once (issue 16, item 5):
another agent takes them without waiting for their leases to run out."""

from __future__ import annotations

from orchid.store import dispatch, jobs
from orchid.store.db import Database
from tests.store.test_jobs import (
    LEASE,
    T0,
    claim,
    record,
    rows,
    static_template,
    submit_and_start,
    update,
    wide,
)


def test_given_back_jobs_are_ready_at_once_and_cost_no_retry(db: Database) -> None:
    wf_id = submit_and_start(db, static_template(wide(4)))
    mine = claim(db, "carrier-a", limit=3)
    other = claim(db, "carrier-b", limit=1)
    record(db, [update(mine[0].id, 1, "running", T0 + 1)])
    with db.begin() as conn:
        assert dispatch.give_back(conn, "carrier-a", T0 + 2, keep_attempt=False) == 3
    state = rows(db, wf_id)
    assert {(state[r.id].status, state[r.id].owner, state[r.id].max_attempts) for r in mine} == {
        ("ready", None, 2)
    }
    assert state[other[0].id].status == "submitted"  # another carrier's job stays its own
    # well within the lease, a new carrier takes them
    again = claim(db, "carrier-c", now=T0 + 3)
    assert {r.id for r in again} == {r.id for r in mine}
    assert {r.attempt for r in again} == {2}
    # the stopped attempt's late report changes nothing
    record(db, [update(mine[0].id, 1, "failed", T0 + 4, error="killed")], T0 + 4)
    assert rows(db, wf_id)[mine[0].id].status == "submitted"


def test_given_back_cancelled_jobs_end_cancelled(db: Database) -> None:
    wf_id = submit_and_start(db, static_template(wide(2)))
    mine = claim(db, "carrier-a")
    with db.begin() as conn:
        jobs.cancel_workflow(conn, wf_id, T0)
        assert dispatch.give_back(conn, "carrier-a", T0 + 1, keep_attempt=False) == 2
    assert {rows(db, wf_id)[r.id].status for r in mine} == {"cancelled"}


def test_durable_jobs_keep_their_attempt_for_adoption(db: Database) -> None:
    wf_id = submit_and_start(db, static_template(wide(2)))
    mine = claim(db, "carrier-a")
    with db.begin() as conn:
        assert dispatch.give_back(conn, "carrier-a", T0 + 1, keep_attempt=True) == 2
    state = rows(db, wf_id)
    assert {(state[r.id].status, state[r.id].attempt) for r in mine} == {("submitted", 1)}
    # well within the lease, another carrier of that executor adopts the running attempts
    with db.begin() as conn:
        adopted = dispatch.adopt_lost(conn, "carrier-b", T0 + 2, LEASE, None, 100)
    assert {(r.id, r.attempt) for r in adopted} == {(r.id, 1) for r in mine}
