"""What a worker still holds: jobs in flight, its own, of the attempt it names, whose lease
has not run out; renewing extends exactly those (docs/architecture.md, "Orchid workers")."""

from __future__ import annotations

from orchid.store import dispatch, workerleases
from orchid.store.db import Database
from tests.store.test_jobs import LEASE, T0, claim, record, static_template, submit_and_start, wide
from tests.store.test_jobs import update as job_update


def test_held_is_the_worker_s_own_attempts_within_their_lease(db: Database) -> None:
    submit_and_start(db, static_template(wide(3)))
    a, b, c = claim(db, "w:a", limit=3)
    with db.begin() as conn:
        dispatch.unsubmit(conn, [c.id], "w:a", T0)  # ready again: no longer in flight
    asked = [(a.id, 1), (b.id, 2), (c.id, 1), (a.id + 1000, 1)]
    with db.begin() as conn:
        held = workerleases.held(conn, "w:a", asked, T0 + 1)
        assert set(held) == {a.id}  # b: another attempt; c: not in flight; the last: none
        assert held[a.id].workflow_id == a.workflow_id and held[a.id].work_id == a.work_id
        assert workerleases.held(conn, "w:b", asked, T0 + 1) == {}  # another worker's
        assert workerleases.held(conn, "w:a", asked, T0 + LEASE + 1) == {}  # lapsed


def test_renew_extends_only_leases_that_still_hold(db: Database) -> None:
    submit_and_start(db, static_template(wide(2)))
    a, b = claim(db, "w:a", limit=2)
    record(db, [job_update(b.id, 1, "succeeded", T0 + 1, exit_code=0)], T0 + 1)
    with db.begin() as conn:
        renewed = workerleases.renew(conn, "w:a", [(a.id, 1), (b.id, 1)], T0 + 2, LEASE)
    assert renewed == {(a.id, 1)}  # b ended
    later = T0 + LEASE + 1  # past the first lease (T0 + LEASE), within the renewed one
    with db.begin() as conn:
        assert set(workerleases.held(conn, "w:a", [(a.id, 1)], later)) == {a.id}
        lapsed = T0 + 2 + LEASE + 1
        assert workerleases.renew(conn, "w:a", [(a.id, 1)], lapsed, LEASE) == set()
