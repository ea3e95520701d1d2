"""Routes narrow the carrier's statements (claim, adopt, reclaim) to its executor's jobs:
one statement per rule, with the route as a clause of it, on SQLite and PostgreSQL."""

from __future__ import annotations

from orchid.store import dispatch, routes
from orchid.store.db import Database
from orchid.store.routes import Route
from tests.store.test_jobs import LEASE, T0, ids_by_name, rows, static_template, submit_and_start

DEFAULT, GPU = Route("local", default=True), Route("gpu", default=False)


def test_each_carrier_claims_adopts_and_reclaims_only_its_jobs(db: Database) -> None:
    graph = {"cpu": {"c1": [], "c2": []}, "gpu": {"g1": [], "g2": []}}
    wf = submit_and_start(db, static_template(graph))
    with db.begin() as conn:
        routes.add(conn, wf, {"gpu": "gpu"})
    name = {i: n for n, i in ids_by_name(db, wf).items()}

    with db.begin() as conn:
        gpu = dispatch.claim_ready(conn, "gpu-1", T0, LEASE, 100, GPU)
        cpu = dispatch.claim_ready(conn, "local-1", T0, LEASE, 100, DEFAULT)
        assert dispatch.claim_ready(conn, "gpu-1", T0, LEASE, 100, GPU) == []
    assert sorted(name[c.id] for c in gpu) == ["g1", "g2"]
    assert sorted(name[c.id] for c in cpu) == ["c1", "c2"]

    # both carriers die; the gpu executor's next carrier adopts its own jobs, attempts kept
    later = T0 + LEASE + 1
    with db.begin() as conn:
        adopted = dispatch.adopt_lost(conn, "gpu-2", later, LEASE, GPU, 100)
    assert sorted((name[c.id], c.attempt) for c in adopted) == [("g1", 1), ("g2", 1)]
    # the default executor's next carrier runs its own lost jobs again, and only those
    with db.begin() as conn:
        assert dispatch.reclaim_lost(conn, later, DEFAULT) == 2
    state = {name[i]: (r.status, r.owner, r.max_attempts) for i, r in rows(db, wf).items()}
    assert state == {
        "c1": ("ready", None, 2),
        "c2": ("ready", None, 2),
        "g1": ("submitted", "gpu-2", 1),
        "g2": ("submitted", "gpu-2", 1),
    }


def test_without_a_route_a_carrier_takes_every_job(db: Database) -> None:
    wf = submit_and_start(db, static_template({"cpu": {"c1": []}, "gpu": {"g1": []}}))
    with db.begin() as conn:
        routes.add(conn, wf, {"gpu": "gpu"})
        assert len(dispatch.claim_ready(conn, "only", T0, LEASE, 100)) == 2
        assert dispatch.reclaim_lost(conn, T0 + LEASE + 1) == 2
