"""Retention end to end on SQLite and PostgreSQL: archive, restore, crash between steps,
the archivist agent, and what an archived workflow still answers."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchid.engine.archivist import ArchiveError, Archiver, Archivist, Policy
from orchid.errors import Archived, InvalidInput
from orchid.store import archive as rows_store
from orchid.store import commands, events, jobs, workflows, works
from orchid.store.db import Database
from orchid.store.tables import collections, files
from orchid.store.tables import workflows as workflows_table
from tests.engine.enginekit import Engine, EngineFactory, python_cmd
from tests.engine.test_hpo import FunctionExecutor, quadratic
from tests.engine.test_hpo import template as hpo_template

ECHO = python_cmd("import sys; print('out', {x}); print('err', file=sys.stderr)")


def policy(home: Path, **kw: Any) -> Policy:
    kw.setdefault("batch", 3)  # small: every step takes several batches
    return Policy(directory=home / "archive", log_root=home / "logs", **kw)


def snapshot(db: Database, wf_id: int) -> dict[str, Any]:
    """Every row of the workflow, table by table, and what the read functions answer."""
    with db.engine.connect() as conn:
        wf_row = rows_store.workflow_row(conn, wf_id)
        for column in ("lease_owner", "lease_until"):
            wf_row.pop(column)
        return {
            "workflow_row": wf_row,
            "rows": {
                t.name: rows_store.rows(conn, t, wf_id, None, 1_000_000) for t in rows_store.TABLES
            },
            "workflow": workflows.get(conn, wf_id),
            "works": works.list_for(conn, wf_id),
            "jobs": jobs.list_for(conn, wf_id, limit=1_000_000),
            "events": events.since(conn, wf_id, 0, limit=100_000),
        }


def add_collection(db: Database, wf_id: int) -> None:
    """A collection with files (the data carousel's rows), made directly."""
    now = time.time()
    with db.begin() as conn:
        cid = conn.execute(
            sa.insert(collections)
            .values(
                workflow_id=wf_id,
                scope="s",
                name="ds",
                manager="posix",
                status="closed",
                created_at=now,
            )
            .returning(collections.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(files),
            [
                {"collection_id": cid, "name": f"f{i}", "status": "processed", "updated_at": now}
                for i in range(5)
            ],
        )


def run_two(make_engine: EngineFactory) -> tuple[Engine, int, int]:
    """A workflow of real processes (logs) and an HPO one (studies, trials), both ended."""
    eng = make_engine("local", workers=2)
    template = {
        "name": "echo",
        "works": [
            {"name": "a", "command": ECHO, "map": {"product": {"x": [1, 2, 3, 4]}}},
            {"name": "b", "noop": True, "after": ["a"]},
        ],
    }
    wf_id, wf = eng.run(template)
    assert wf.status == "succeeded", wf.message
    add_collection(eng.db, wf_id)
    hpo = make_engine(FunctionExecutor(quadratic))
    hpo_id, hwf = hpo.run(hpo_template())
    assert hwf.status == "succeeded", hwf.message
    return eng, wf_id, hpo_id


def test_archive_then_restore_reads_the_same(
    make_engine: EngineFactory, db: Database, tmp_path: Path
) -> None:
    eng, wf_id, hpo_id = run_two(make_engine)
    home = eng.base_dir
    before = {i: snapshot(db, i) for i in (wf_id, hpo_id)}
    logs = sorted(p for p in (home / "logs").rglob("*") if p.is_file())
    assert logs, "the local executor wrote logs"
    texts = {p: p.read_bytes() for p in logs}
    archiver = Archiver(db, policy(home))

    for i in (wf_id, hpo_id):
        out = archiver.archive(i)
        assert Path(out.uri).is_file()
    assert before[wf_id]["rows"]["files"] and before[hpo_id]["rows"]["trials"]
    for i in (wf_id, hpo_id):
        after = snapshot(db, i)
        assert all(not rows for rows in after["rows"].values())
        assert after["workflow"].archived_at is not None
        assert after["workflow"].status == before[i]["workflow"].status
        # the works and their counts stay readable from the summary
        assert [(w.name, w.status, w.counts) for w in after["works"]] == [
            (w.name, w.status, w.counts) for w in before[i]["works"]
        ]
    assert not any(p.exists() for p in logs)  # logs = archive: moved into the file

    for i in (wf_id, hpo_id):
        archiver.restore(i)
        assert snapshot(db, i) == before[i]
        assert not Path(archiver.path_of(i)).exists()
    assert {p: p.read_bytes() for p in logs} == texts


def test_a_crash_between_steps_is_resumed(
    make_engine: EngineFactory, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = make_engine()
    wf_id, _ = eng.run(
        {
            "name": "m",
            "works": [{"name": "a", "noop": True, "map": {"product": {"i": list(range(20))}}}],
        }
    )
    before = snapshot(db, wf_id)
    archiver = Archiver(db, policy(eng.base_dir), owner="first")

    # stopped while writing the file: another archiver takes over once the lease is gone
    steps = archiver.steps(wf_id)
    next(steps)
    steps.close()
    with db.begin() as conn:
        assert rows_store.entry(conn, wf_id).archive_state == rows_store.WRITING
        conn.execute(sa.update(workflows_table).values(lease_until=0))
    # stopped while deleting: resumed where it was
    steps = Archiver(db, policy(eng.base_dir), owner="second").steps(wf_id)
    while True:
        next(steps)
        with db.engine.connect() as conn:
            if rows_store.entry(conn, wf_id).archive_state == rows_store.DELETING:
                break
    next(steps)
    steps.close()
    with db.engine.connect() as conn:
        assert 0 < len(jobs.list_for(conn, wf_id, limit=100)) < 20
    Archiver(db, policy(eng.base_dir)).archive(wf_id)
    with db.engine.connect() as conn:
        assert rows_store.entry(conn, wf_id).archive_state == rows_store.ARCHIVED

    # a restore stopped half way: run again, it reads the same
    archiver = Archiver(db, policy(eng.base_dir, batch=7))
    calls = 0
    real_insert = rows_store.insert

    def failing(conn: Any, table: Any, batch: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("crash")
        real_insert(conn, table, batch)

    with monkeypatch.context() as patch:
        patch.setattr(rows_store, "insert", failing)
        with pytest.raises(RuntimeError):
            archiver.restore(wf_id)
    with db.engine.connect() as conn:
        assert rows_store.entry(conn, wf_id).archive_state == rows_store.RESTORING
    archiver.restore(wf_id)
    assert snapshot(db, wf_id) == before


def test_what_an_archived_workflow_refuses(make_engine: EngineFactory, db: Database) -> None:
    eng = make_engine()
    wf_id, _ = eng.run({"name": "x", "works": [{"name": "a", "noop": True}]})
    archiver = Archiver(db, policy(eng.base_dir))
    with pytest.raises(InvalidInput, match="not archived"):
        archiver.restore(wf_id)
    archiver.archive(wf_id)
    assert archiver.archive(wf_id).uri  # again: nothing more to do
    with db.begin() as conn, pytest.raises(Archived, match="orchid restore"):
        commands.add(conn, wf_id, "retry", time.time())


def test_a_running_workflow_is_not_archived(make_engine: EngineFactory, db: Database) -> None:
    eng = make_engine()
    wf_id = eng.submit({"name": "x", "works": [{"name": "a", "noop": True}]})
    archiver = Archiver(db, policy(eng.base_dir, after=0.0))
    assert archiver.due() == []
    with pytest.raises(InvalidInput, match="cannot be archived now"):
        archiver.archive(wf_id)
    eng.drain(wf_id)
    with db.begin() as conn:  # a command waits: not now
        commands.add(conn, wf_id, "retry", time.time())
    assert archiver.due() == []


def test_a_broken_or_foreign_file_is_refused(make_engine: EngineFactory, db: Database) -> None:
    eng = make_engine()
    wf_id, _ = eng.run({"name": "x", "works": [{"name": "a", "noop": True}]})
    other, _ = eng.run({"name": "y", "works": [{"name": "a", "noop": True}]})
    archiver = Archiver(db, policy(eng.base_dir))
    path = Path(archiver.archive(wf_id).uri)
    lines = gzip.decompress(path.read_bytes()).splitlines()
    good = path.read_bytes()

    path.write_bytes(gzip.compress(b"\n".join(lines[:-1])))  # cut short
    with pytest.raises(ArchiveError, match="cut short"):
        archiver.restore(wf_id)
    # a row moved to another workflow
    edited = []
    for line in lines:
        rec = json.loads(line)
        if rec.get("table") == "events":
            rec["row"]["workflow_id"] = other
        edited.append(json.dumps(rec).encode())
    path.write_bytes(gzip.compress(b"\n".join(edited)))
    with pytest.raises(ArchiveError, match="not workflow"):
        archiver.restore(wf_id)
    path.unlink()
    with pytest.raises(ArchiveError, match="missing"):
        archiver.restore(wf_id)
    path.write_bytes(good)
    archiver.restore(wf_id)


def test_the_archivist_archives_due_workflows_in_slices(
    make_engine: EngineFactory, db: Database
) -> None:
    eng = make_engine()
    ids = [
        eng.run(
            {
                "name": f"w{i}",
                "works": [{"name": "a", "noop": True, "map": {"product": {"i": list(range(9))}}}],
            }
        )[0]
        for i in range(3)
    ]
    agent = Archivist(eng.runner.agents[0].env, policy(eng.base_dir, after=0.0, share=1.0))  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while agent.archived < 3 and time.monotonic() < deadline:
        time.sleep(0.01)  # it earns its share of the time passed
        agent.tick()
    assert agent.archived == 3
    with db.engine.connect() as conn:
        assert all(workflows.get(conn, i).archived_at for i in ids)
    agent_off = Archivist(eng.runner.agents[0].env, policy(eng.base_dir))  # type: ignore[attr-defined]
    assert agent_off.archiver.due() == []  # archive_after unset: nothing is due


@pytest.mark.parametrize("logs", ["delete", "keep"])
def test_logs_follow_the_policy(make_engine: EngineFactory, db: Database, logs: str) -> None:
    eng = make_engine("local", workers=1)
    wf_id, wf = eng.run(
        {"name": "echo", "works": [{"name": "a", "command": ECHO, "map": {"product": {"x": [1]}}}]}
    )
    assert wf.status == "succeeded", wf.message
    files = [p for p in (eng.base_dir / "logs").rglob("*") if p.is_file()]
    assert files
    archiver = Archiver(db, policy(eng.base_dir, logs=logs))
    archiver.archive(wf_id)
    assert all(p.exists() for p in files) == (logs == "keep")
    out = archiver.restore(wf_id)
    assert out.logs == 0  # none were in the file
    assert all(p.exists() for p in files) == (logs == "keep")


def test_ids_taken_meanwhile_stop_a_restore_clearly(
    make_engine: EngineFactory, db: Database
) -> None:
    """SQLite gives the ids of the newest deleted rows again: the restore says so, and the
    workflow can be archived again as it was (PostgreSQL never gives an id twice)."""
    eng = make_engine()
    one = {"name": "x", "works": [{"name": "a", "noop": True}]}
    old, _ = eng.run(one)
    archiver = Archiver(db, policy(eng.base_dir))
    archiver.archive(old)
    new, _ = eng.run(one)
    if not db.is_sqlite:
        archiver.restore(old)
        return
    with pytest.raises(ArchiveError, match="taken by newer rows"):
        archiver.restore(old)
    archiver.archive(old)
    with db.engine.connect() as conn:
        assert rows_store.entry(conn, old).archive_state == rows_store.ARCHIVED
        assert workflows.get(conn, new).status == "succeeded"
        assert [w.name for w in works.list_for(conn, new)] == ["a"]
