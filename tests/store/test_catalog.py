"""The data catalog, on both databases: collections, idempotent bulk file adds, counts, pages."""

from __future__ import annotations

from typing import Any

import pytest

from orchid.core.states import FileStatus as F
from orchid.errors import InvalidInput, NotFound
from orchid.store import catalog, workflows, works
from orchid.store.catalog import NewFile
from orchid.store.db import Database


def make_workflow(db: Database) -> int:
    with db.begin() as conn:
        return workflows.create(
            conn, name="wf", owner="alice", template={}, params={}, base_dir=None, now=1.0
        )


def add_collection(db: Database, wf: int, name: str = "data.raw", **kw: Any) -> int:
    with db.begin() as conn:
        return catalog.add_collection(
            conn, wf, scope="atlas", name=name, manager="tapesim", now=2.0, **kw
        )


def test_collections_with_file_counts_by_status(db: Database) -> None:
    wf, other = make_workflow(db), make_workflow(db)
    a = add_collection(db, wf, "a")
    b = add_collection(db, wf, "b", status="closed")
    empty = add_collection(db, wf, "empty")
    add_collection(db, other, "not mine")
    with db.begin() as conn:
        assert catalog.add_files(conn, a, [("f1", 10), ("f2", 20)], now=3.0) == 2
        added = catalog.add_files(
            conn,
            a,
            [NewFile("f3", 5, F.AVAILABLE), NewFile("f4", 5, F.AVAILABLE), NewFile("f5")],
            now=3.0,
        )
        assert added == 3
        assert catalog.add_files(conn, b, [NewFile("x", 1, F.FAILED)], now=3.0) == 1
    with db.engine.connect() as conn:
        got = catalog.list_collections(conn, wf)
        one = catalog.get_collection(conn, wf, a)
    assert [c.id for c in got] == [a, b, empty]
    assert got[0] == one
    assert (one.scope, one.name, one.manager, one.status, one.work_id) == (
        "atlas",
        "a",
        "tapesim",
        "open",
        None,
    )
    assert dict(one.counts) == {F.NEW: 3, F.AVAILABLE: 2} and one.files == 5
    assert got[1].status == "closed" and dict(got[1].counts) == {F.FAILED: 1}
    assert dict(got[2].counts) == {} and got[2].files == 0


def test_adding_files_is_idempotent_and_set_based(db: Database) -> None:
    wf = make_workflow(db)
    cid = add_collection(db, wf)
    many = [NewFile(f"file{i:05}", i) for i in range(catalog.CHUNK * 2 + 7)]
    with db.begin() as conn:
        assert catalog.add_files(conn, cid, many, now=3.0) == len(many)
        # names already there are skipped, and keep their status and size
        again = [NewFile("file00001", 999, F.AVAILABLE), NewFile("new", 1)]
        assert catalog.add_files(conn, cid, again, now=4.0) == 1
        assert catalog.add_files(conn, cid, [], now=4.0) == 0
    with db.engine.connect() as conn:
        (one,) = catalog.list_files(conn, wf, cid, limit=1, after_id=1)
        assert (one.name, one.size, one.status) == ("file00001", 1, F.NEW)
        assert catalog.get_collection(conn, wf, cid).files == len(many) + 1


def test_files_page_in_id_order_and_filter_by_status(db: Database) -> None:
    wf = make_workflow(db)
    cid = add_collection(db, wf)
    statuses = [F.NEW, F.STAGING, F.AVAILABLE, F.PROCESSED, F.FAILED] * 3
    with db.begin() as conn:
        catalog.add_files(
            conn, cid, [NewFile(f"f{i:02}", i, s) for i, s in enumerate(statuses)], now=3.0
        )
    with db.engine.connect() as conn:
        every = catalog.list_files(conn, wf, cid)
        assert [f.name for f in every] == [f"f{i:02}" for i in range(15)]
        assert all(f.collection_id == cid for f in every)
        pages, after = [], 0
        while page := catalog.list_files(conn, wf, cid, after_id=after, limit=4):
            pages.append(page)
            after = page[-1].id
        assert [len(p) for p in pages] == [4, 4, 4, 3]
        assert [f for p in pages for f in p] == every
        ready = catalog.list_files(conn, wf, cid, status=[F.AVAILABLE, F.PROCESSED])
        assert [f.name for f in ready] == ["f02", "f03", "f07", "f08", "f12", "f13"]
        assert catalog.list_files(conn, wf, cid, status=[F.DELETED]) == []


def test_a_collection_is_only_found_through_its_workflow(db: Database) -> None:
    wf, other = make_workflow(db), make_workflow(db)
    cid = add_collection(db, wf)
    with db.engine.connect() as conn:
        with pytest.raises(NotFound, match=f"workflow {other} has no collection {cid}"):
            catalog.get_collection(conn, other, cid)
        with pytest.raises(NotFound, match="has no collection"):
            catalog.list_files(conn, other, cid)
        with pytest.raises(NotFound, match="has no collection"):
            catalog.list_files(conn, wf, cid + 100)
        assert catalog.list_collections(conn, other) == []


def test_bad_input(db: Database) -> None:
    wf = make_workflow(db)
    with db.begin() as conn:
        w = works.create(conn, wf, [("a", 0)], frozenset(), now=1.0)[("a", 0)]
    cid = add_collection(db, wf, work_id=w)
    with pytest.raises(NotFound, match="no workflow 999"):
        add_collection(db, 999)
    other = make_workflow(db)
    with pytest.raises(InvalidInput, match=f"work {w} is not a work of workflow {other}"):
        add_collection(db, other, work_id=w)
    with pytest.raises(InvalidInput, match="name must be 1 to 255"):
        add_collection(db, wf, "x" * 256)
    with pytest.raises(InvalidInput, match="scope"), db.begin() as conn:
        catalog.add_collection(conn, wf, scope="", name="n", manager="posix", now=1.0)
    with pytest.raises(NotFound, match="no collection 999"), db.begin() as conn:
        catalog.add_files(conn, 999, [("f", 1)], now=1.0)
    for bad, message in (
        (NewFile("", 1), "file name"),
        (NewFile("f", -1), "whole number"),
        (NewFile("f", True), "whole number"),
        (NewFile("f", 1, "lost"), "unknown status 'lost'"),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInput, match=message), db.begin() as conn:
            catalog.add_files(conn, cid, [NewFile("fine", 1), bad], now=1.0)
    with db.engine.connect() as conn:
        assert catalog.get_collection(conn, wf, cid).files == 0  # nothing half-added
        assert catalog.get_collection(conn, wf, cid).work_id == w
