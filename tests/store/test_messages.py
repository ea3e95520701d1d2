"""Messages to a workflow, on both databases: stored in order, each with its outbox event."""

from __future__ import annotations

import math
from typing import Any

import pytest

from orchid.errors import InvalidInput, NotFound
from orchid.store import events, messages, workflows
from orchid.store.db import Database


def make_workflow(db: Database, owner: str = "alice") -> int:
    with db.begin() as conn:
        return workflows.create(
            conn, name="wf", owner=owner, template={}, params={}, base_dir=None, now=1.0
        )


@pytest.mark.parametrize(
    "body",
    [None, 0, -1.5, 1e20, "text ✓", [], {}, [1, "a", None, True], {"a": {"b": [1, {"c": 2.5}]}}],
)
def test_any_json_value_round_trips(db: Database, body: Any) -> None:
    wf = make_workflow(db)
    with db.begin() as conn:
        posted = messages.post(conn, wf, sender="alice", kind="result", body=body, now=5.0)
    with db.engine.connect() as conn:
        (got,) = messages.list_for(conn, wf)[0]
    assert got == posted
    assert got.body == body and type(got.body) is type(body)
    assert (got.workflow_id, got.sender, got.kind, got.created_at) == (wf, "alice", "result", 5.0)


def test_listing_pages_in_order_and_filters_by_kind(db: Database) -> None:
    wf, other = make_workflow(db), make_workflow(db)
    with db.begin() as conn:
        posted = [
            messages.post(
                conn, wf, sender="alice", kind="result" if i % 2 else "control", body=i, now=i
            )
            for i in range(7)
        ]
        messages.post(conn, other, sender="bob", kind="result", body="elsewhere", now=9.0)
    with db.engine.connect() as conn:
        assert [m.body for m in messages.list_for(conn, wf)[0]] == list(range(7))
        first, more = messages.list_for(conn, wf, limit=3)
        rest, no_more = messages.list_for(conn, wf, after_id=first[-1].id)
        assert more and not no_more
        assert [m.body for m in first + rest] == list(range(7))
        assert [m.body for m in messages.list_for(conn, wf, kind="result")[0]] == [1, 3, 5]
        assert messages.list_for(conn, wf, kind="nothing") == ([], False)
        assert messages.list_for(conn, wf, after_id=posted[-1].id) == ([], False)
        assert [m.body for m in messages.list_for(conn, other)[0]] == ["elsewhere"]


def test_each_message_writes_an_event_in_the_same_transaction(db: Database) -> None:
    wf = make_workflow(db)
    with db.begin() as conn:
        m = messages.post(conn, wf, sender="alice", kind="control", body={"x": 1}, now=3.0)
    with pytest.raises(RuntimeError), db.begin() as conn:
        messages.post(conn, wf, sender="alice", kind="control", body="lost", now=4.0)
        raise RuntimeError("rolled back")
    with db.engine.connect() as conn:
        evs = events.since(conn, wf)
        assert [m.body for m in messages.list_for(conn, wf)[0]] == [{"x": 1}]
    assert [(e["kind"], e["data"]) for e in evs] == [
        ("message", {"message_id": m.id, "kind": "control", "sender": "alice"})
    ]


@pytest.mark.parametrize("body", [math.nan, math.inf, [1.0, -math.inf], {"a": {"b": [math.nan]}}])
def test_nan_and_infinity_are_refused(db: Database, body: Any) -> None:
    wf = make_workflow(db)
    with pytest.raises(InvalidInput, match="NaN or an infinity"), db.begin() as conn:
        messages.post(conn, wf, sender="alice", kind="result", body=body, now=1.0)


@pytest.mark.parametrize("kind", ["", "Result", "1st", "has space", "x" * 41, "a/b", "ü"])
def test_kinds_are_short_identifiers(db: Database, kind: str) -> None:
    wf = make_workflow(db)
    with pytest.raises(InvalidInput, match="short identifier"), db.begin() as conn:
        messages.post(conn, wf, sender="alice", kind=kind, body=1, now=1.0)


def test_good_kinds(db: Database) -> None:
    wf = make_workflow(db)
    with db.begin() as conn:
        for kind in ("result", "control", "hpo.point", "a", "x" * 40, "step-2_done"):
            messages.post(conn, wf, sender="alice", kind=kind, body=1, now=1.0)


def test_the_body_size_limit(db: Database) -> None:
    wf = make_workflow(db)
    fits = "x" * (messages.MAX_BODY_BYTES - 2)  # two quotes around it
    assert messages.encoded_size(fits) == messages.MAX_BODY_BYTES
    assert messages.encoded_size("é") == 4  # UTF-8 bytes, not characters
    with db.begin() as conn:
        messages.post(conn, wf, sender="alice", kind="result", body=fits, now=1.0)
    with pytest.raises(InvalidInput, match="limit is 1,048,576"), db.begin() as conn:
        messages.post(conn, wf, sender="alice", kind="result", body=fits + "x", now=1.0)


def test_unknown_workflow_and_bad_sender(db: Database) -> None:
    with pytest.raises(NotFound, match="no workflow 42"), db.begin() as conn:
        messages.post(conn, 42, sender="alice", kind="result", body=1, now=1.0)
    wf = make_workflow(db)
    with pytest.raises(InvalidInput, match="sender"), db.begin() as conn:
        messages.post(conn, wf, sender="", kind="result", body=1, now=1.0)


def test_a_page_is_bounded_in_bytes_too(db: Database) -> None:
    wf = make_workflow(db)
    with db.begin() as conn:
        for i in range(6):
            messages.post(conn, wf, sender="alice", kind="result", body="x" * 98 + str(i), now=1)
    with db.engine.connect() as conn:
        page, more = messages.list_for(conn, wf, max_bytes=350)  # about three bodies of 101
        assert [m.body[-1] for m in page] == ["0", "1", "2"] and more
        page, more = messages.list_for(conn, wf, after_id=page[-1].id, max_bytes=350)
        assert [m.body[-1] for m in page] == ["3", "4", "5"] and not more
        page, more = messages.list_for(conn, wf, max_bytes=1)  # at least one message
        assert [m.body[-1] for m in page] == ["0"] and more
        page, more = messages.list_for(conn, wf, kind="other", max_bytes=1)
        assert (page, more) == ([], False)
