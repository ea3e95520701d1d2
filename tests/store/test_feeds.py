"""Collections that feed works, on both databases: registering, idempotent changes, retries."""

from __future__ import annotations

from orchid.core.carousel import Feed
from orchid.core.states import FileStatus as F
from orchid.datamgr.base import FileInfo
from orchid.store import feedends, feeds, works
from orchid.store.db import Database
from tests.engine.carouselkit import file_rows
from tests.store.test_catalog import make_workflow


def opened(db: Database) -> feeds.FeedRow:
    feed = Feed(stage_attempts=2)
    wf = make_workflow(db)
    with db.begin() as conn:
        (wid,) = works.create(conn, wf, [("w", 0)], frozenset(), 1.0).values()
        works.set_ready(conn, wid, {})
        works.mark_running(conn, wid, 0, 0, 1.0)
        assert feeds.open_feeds(conn, wf, wid, "tape", [("data18", "A")], feed, 1.0) == 1
        (row,) = feeds.claim_due(conn, "me", ["tape"], 2.0, 30.0, 10)
    return row


def test_listing_then_changes_applied_twice_change_things_once(db: Database) -> None:
    row = opened(db)
    listed = [
        FileInfo("a", 1, F.NEW),
        FileInfo("b", 2, F.AVAILABLE, "u:b"),
        FileInfo("c", 3, F.NEW),
    ]
    with db.begin() as conn:
        assert sorted(feeds.register(conn, row, listed, 2.0)) == ["a", "c"]
        feeds.mark_staging(conn, row, "me", 2.0, 2.0)
    changes = [
        FileInfo("a", 1, F.AVAILABLE, "u:a"),
        FileInfo("c", 3, F.FAILED, error="read error", attempt=1),
    ]
    for _ in range(2):  # a poll replayed after a crash
        with db.begin() as conn:
            changed, again = feeds.apply_changes(conn, row, changes, 3.0)
    assert changed == 0 and again == []  # the second time: nothing left to change
    rows = {r.name: r for r in file_rows(db)}
    assert (rows["a"].status, rows["a"].url, rows["a"].available_at) == ("available", "u:a", 3.0)
    assert (rows["b"].status, rows["b"].available_at) == ("available", 2.0)
    assert (rows["c"].status, rows["c"].attempt) == ("staging", 1)  # staged again


def test_a_file_is_given_up_after_its_attempts(db: Database) -> None:
    row = opened(db)
    with db.begin() as conn:
        feeds.register(conn, row, [FileInfo("a", 1, F.NEW)], 2.0)
        feeds.mark_staging(conn, row, "me", 2.0, 2.0)
    for attempt, expected in ((1, ["a"]), (2, [])):
        with db.begin() as conn:
            _, again = feeds.apply_changes(conn, row, [FileInfo("a", 1, F.FAILED)], 3.0 + attempt)
        assert again == expected
    (a,) = file_rows(db)
    assert (a.status, a.attempt, a.error) == ("failed", 2, "staging failed")
    with db.begin() as conn:
        assert feedends.unstaged(conn, row.work_id) == 1


def test_a_growing_collection_records_files_that_appear(db: Database) -> None:
    row = opened(db)
    with db.begin() as conn:
        feeds.register(conn, row, [], 2.0)
        changed, _ = feeds.apply_changes(
            conn,
            row,
            [FileInfo("new", 5, F.AVAILABLE, "file:///x/new"), FileInfo("wip", 1, F.NEW)],
            3.0,
        )
    assert changed == 2
    assert {(r.name, r.status) for r in file_rows(db)} == {("new", "available"), ("wip", "new")}
