"""The monitor's read models on both databases: counts, filters, keyset pages, series."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from orchid.core.states import FileStatus as F
from orchid.errors import NotFound
from orchid.store import catalog, events, monitor, workflows, works
from orchid.store.catalog import NewFile
from orchid.store.db import Database
from orchid.store.tables import files, jobs

T0 = 1_800_000_000.0


def make(
    db: Database, name: str = "wf", owner: str = "alice", group: str | None = None, now: float = T0
) -> int:
    with db.begin() as conn:
        return workflows.create(
            conn,
            name=name,
            owner=owner,
            template={"name": name, "works": []},
            params={},
            base_dir=None,
            now=now,
            share_group=group,
        )


def add_jobs(db: Database, wf: int, work: str, statuses: list[str]) -> int:
    with db.begin() as conn:
        wid = works.create(conn, wf, [(work, 0)], frozenset(), T0)[(work, 0)]
        conn.execute(
            sa.insert(jobs),
            [
                {
                    "workflow_id": wf,
                    "work_id": wid,
                    "name": f"{work}-{i}",
                    "status": s,
                    "args": {"i": i},
                }
                for i, s in enumerate(statuses)
            ],
        )
    return wid


def test_counts_by_workflow_and_totals(db: Database) -> None:
    a, b, empty = make(db), make(db), make(db)
    add_jobs(db, a, "x", ["succeeded"] * 3 + ["failed"])
    add_jobs(db, a, "y", ["waiting"] * 2)
    add_jobs(db, b, "x", ["running"])
    with db.engine.connect() as conn:
        assert monitor.job_counts(conn, [a, b, empty]) == {
            a: {"succeeded": 3, "failed": 1, "waiting": 2},
            b: {"running": 1},
            empty: {},
        }
        assert monitor.job_counts(conn, []) == {}
        assert monitor.status_counts(conn, a) == {"succeeded": 3, "failed": 1, "waiting": 2}
        y = next(w.id for w in works.list_for(conn, a, with_counts=False) if w.name == "y")
        assert monitor.status_counts(conn, a, y) == {"waiting": 2}
        t = monitor.totals(conn)
    assert t["jobs"] == {"succeeded": 3, "failed": 1, "waiting": 2, "running": 1}
    assert t["workflows"] == {"pending": 3} and t["works"] == {"waiting": 3}


def test_listing_filters_sorts_pages_and_hides_what_is_not_yours(db: Database) -> None:
    ids = [
        make(db, "alpha", "alice", now=T0),
        make(db, "beta_1", "bob", "physics", now=T0 + 10),
        make(db, "gamma", "bob", now=T0 + 20),
        make(db, "Alphabet", "carol", now=T0 + 30),
    ]
    add_jobs(db, ids[0], "w", ["succeeded", "failed"])
    with db.begin() as conn:
        workflows.set_status(conn, ids[2], "running", "", T0 + 40)  # type: ignore[arg-type]

    def names(**kw: Any) -> tuple[list[str], int]:
        with db.engine.connect() as conn:
            rows, total = monitor.list_workflows(conn, **{"visible_to": None, **kw})
        return [r.name for r in rows], total

    assert names() == (["Alphabet", "gamma", "beta_1", "alpha"], 4)
    assert names(name="alpha") == (["Alphabet", "alpha"], 2)  # a part of it, any case
    assert names(name="a_1") == (["beta_1"], 1)  # _ is a letter here, not a wildcard
    assert names(name="%") == ([], 0)
    assert names(owner="bob") == (["gamma", "beta_1"], 2)
    assert names(status=["running"]) == (["gamma"], 1)
    assert names(since=T0 + 15) == (["Alphabet", "gamma"], 2)
    assert names(sort="name", descending=False) == (["Alphabet", "alpha", "beta_1", "gamma"], 4)
    assert names(sort="id", descending=False, offset=1, limit=2) == (["beta_1", "gamma"], 4)
    assert names(ids=[ids[1], ids[3], 999]) == (["Alphabet", "beta_1"], 2)
    # alice sees her own and what is shared with her group
    assert names(visible_to=("alice", frozenset({"physics"}))) == (["beta_1", "alpha"], 2)
    assert names(visible_to=("carol", frozenset())) == (["Alphabet"], 1)
    with db.engine.connect() as conn:
        rows, _ = monitor.list_workflows(conn, visible_to=None, ids=[ids[0]])
    assert rows[0].counts == {"succeeded": 1, "failed": 1} and rows[0].total == 2
    assert rows[0].owner == "alice" and not rows[0].finishing


def test_job_pages_walk_forwards_and_backwards_with_filters(db: Database) -> None:
    wf = make(db)
    other = make(db)
    a = add_jobs(db, wf, "a", ["succeeded", "failed"] * 6)  # 12 jobs
    b = add_jobs(db, wf, "b", ["waiting"] * 5)
    add_jobs(db, other, "a", ["failed"] * 3)

    def page(**kw: Any) -> monitor.JobPage:
        with db.engine.connect() as conn:
            return monitor.jobs_page(conn, wf, limit=5, **kw)

    first = page()
    assert [j.name for j in first.items] == [f"a-{i}" for i in range(5)]
    assert (first.has_before, first.has_after) == (False, True)
    second = page(after=first.items[-1].id)
    assert [j.name for j in second.items] == [f"a-{i}" for i in range(5, 10)]
    assert (second.has_before, second.has_after) == (True, True)
    back = page(before=second.items[0].id)
    assert back.items == first.items and (back.has_before, back.has_after) == (False, True)
    last = page(last=True)
    assert [j.name for j in last.items] == ["b-0", "b-1", "b-2", "b-3", "b-4"]
    assert (last.has_before, last.has_after) == (True, False)
    failed = page(status="failed", work_id=a)
    assert [j.name for j in failed.items] == ["a-1", "a-3", "a-5", "a-7", "a-9"]
    assert all(j.workflow_id == wf and j.work_name == "a" for j in failed.items)
    rest = page(status="failed", work_id=a, after=failed.items[-1].id)
    assert [j.name for j in rest.items] == ["a-11"] and not rest.has_after
    assert page(work_id=b, status="failed").items == []
    # the plan that walks the primary key gives the same pages
    for kw in ({}, {"work_id": a}, {"status": "failed"}, {"last": True}):
        for cursor in ({}, {"after": first.items[2].id}, {"before": second.items[3].id}):
            if kw.get("last") and cursor:
                continue
            assert page(**kw, **cursor, matching=10**9) == page(**kw, **cursor), (kw, cursor)


def test_facts_and_recent_events(db: Database) -> None:
    wf, other = make(db), make(db)
    with db.begin() as conn:
        workflows.set_links(conn, wf, [("a", "b"), ("b", "c")])
        for i in range(5):
            events.emit(conn, wf, f"work.e{i}", {"i": i}, T0 + i)
        events.emit(conn, other, "work.other", {}, T0)
    with db.engine.connect() as conn:
        f = monitor.facts(conn, wf)
        recent = monitor.recent_events(conn, wf, 3)
        newest = monitor.last_event_id(conn, wf)
        assert monitor.last_event_id(conn, 999) == 0
        with pytest.raises(NotFound):
            monitor.facts(conn, 999)
    assert f.links == (("a", "b"), ("b", "c")) and not f.finishing and f.loops == {}
    assert [e["kind"] for e in recent] == ["work.e2", "work.e3", "work.e4"]
    assert newest == recent[-1]["id"]


def test_one_scan_gives_counts_bytes_and_series_of_the_files(db: Database) -> None:
    wf, empty = make(db), make(db)
    with db.begin() as conn:
        cid = catalog.add_collection(conn, wf, scope="s", name="c", manager="tapesim", now=T0)
        other = catalog.add_collection(conn, wf, scope="s", name="d", manager="tapesim", now=T0)
        # 1,000 files, one a second from T0 - 10 (before the range: the first bucket)
        for i in range(0, 1000, 100):
            batch = [
                NewFile(f"f{k}", 100, F.PROCESSED if k % 2 else F.AVAILABLE)
                for k in range(i, i + 100)
            ]
            catalog.add_files(conn, cid, batch, now=T0 - 10 + i)
        catalog.add_files(conn, other, [NewFile("late", 7, F.NEW)], now=T0 + 5000)  # after: last
    with db.engine.connect() as conn:
        got = monitor.file_summary(conn, wf, T0, T0 + 1000, buckets=50)
        assert monitor.has_collections(conn, wf) and not monitor.has_collections(conn, empty)
        none = monitor.file_summary(conn, empty, T0, T0 + 1000)
    assert [c["name"] for c in got.collections] == ["c", "d"]
    assert got.counts == {cid: {"processed": 500, "available": 500}, other: {"new": 1}}
    assert got.bytes == {cid: {"processed": 50_000, "available": 50_000}, other: {"new": 7}}
    series = got.series
    assert len(series.times) == 51 and series.times[0] == T0 and series.width == 20.0
    assert sum(series.by_status["processed"]) == 500 and series.by_status["new"][-1] == 1
    assert series.by_status["available"][0] == 50  # the batch made before T0 is in bucket 0
    done = series.cumulative(["processed"])
    assert done == sorted(done) and done[-1] == 500
    assert series.cumulative(["processed", "available"], in_bytes=True)[-1] == 100_000
    assert series.cumulative(["deleted"]) == [0] * 51
    assert none.collections == [] and none.series.by_status == {}


def test_the_disk_buffer_is_what_was_staged_and_not_yet_deleted(db: Database) -> None:
    wf = make(db)
    with db.begin() as conn:
        cid = catalog.add_collection(conn, wf, scope="s", name="c", manager="tapesim", now=T0)
        catalog.add_files(conn, cid, [NewFile(f"f{k}", 10, F.NEW) for k in range(4)], now=T0)
        ids = dict(conn.execute(sa.select(files.c.name, files.c.id)).all())
        # staged at T0+100 (f0, f1) and T0+300 (f2); f0 deleted at T0+200; f3 never staged
        for name, at in (("f0", 100), ("f1", 100), ("f2", 300)):
            conn.execute(
                sa.update(files).where(files.c.id == ids[name]).values(available_at=T0 + at)
            )
        for status in (F.AVAILABLE, F.DELETED):  # the moves the transition table allows
            conn.execute(
                sa.update(files)
                .where(files.c.id == ids["f0"])
                .values(status=status, updated_at=T0 + 200)
            )
    with db.engine.connect() as conn:
        series = monitor.file_summary(conn, wf, T0, T0 + 400, buckets=4).series
    assert series.running(series.staged) == [0, 2, 2, 3, 3]
    assert series.on_disk_bytes() == [0, 20, 10, 20, 20]
