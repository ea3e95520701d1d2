"""Agent heartbeats, on both databases."""

from __future__ import annotations

from orchid.store import agents
from orchid.store.db import Database


def test_heartbeats_insert_then_update_and_age_out(db: Database) -> None:
    with db.begin() as conn:
        agents.heartbeat(conn, name="a1", roles="clerk", host="h", pid=1, now=100.0)
        agents.heartbeat(conn, name="a2", roles="carrier", host="h", pid=2, now=100.0)
        agents.heartbeat(conn, name="a1", roles="clerk,trigger", host="h", pid=1, now=130.0)
    with db.engine.connect() as conn:
        live = agents.alive(conn, since=120.0)
    assert [(a.name, a.roles, a.started_at, a.last_seen) for a in live] == [
        ("a1", "clerk,trigger", 100.0, 130.0)
    ]
    with db.begin() as conn:
        agents.forget(conn, "a1")
    with db.engine.connect() as conn:
        assert [a.name for a in agents.alive(conn, since=0)] == ["a2"]


def test_a_runner_beats_and_says_goodbye(db: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from orchid.engine.runner import make_runner
    from orchid.settings import Settings

    settings = Settings.load(env={}, home=tmp_path, db=db.url, executor="null")
    runner = make_runner(settings, db, clock=lambda: 1000.0)
    exe = runner.executor
    runner.run_once()
    with db.engine.connect() as conn:
        (me,) = agents.alive(conn, since=999.0)
    assert me.roles == "clerk,transformer,carrier,trigger,hpo,transporter"
    runner.close()
    exe.close()
    with db.engine.connect() as conn:
        assert agents.alive(conn, since=0) == []
