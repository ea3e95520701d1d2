"""Live updates: the server-sent events behind the pages."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from orchid.store import tokens
from orchid.web import access
from tests.ui.conftest import Api, Browser

pytestmark = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


def events(b: Browser, path: str) -> Iterator[tuple[str, Any]]:
    with b.http.stream("GET", path, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                yield kind or "", json.loads(line[6:])


def test_a_workflow_feed_sends_summaries_until_it_ends(api: Api, browse, agents) -> None:  # type: ignore[no-untyped-def]
    wf = api.submit(
        "alice",
        {
            "name": "w",
            "works": [{"name": "a", "noop": True, "map": {"items": [{"i": i} for i in range(30)]}}],
        },
    )["id"]
    seen = []
    for kind, data in events(browse("alice"), f"/ui/workflows/{wf}/live"):
        seen.append((kind, data))
        if kind == "end":
            break
    summaries = [d for k, d in seen if k == "summary"]
    assert seen[-1] == ("end", {}) and summaries
    last = summaries[-1]
    assert last["status"] == "succeeded" and last["actions"] == []
    assert last["totals"] == {"succeeded": 30} and last["done_pct"] == 100.0
    assert last["works"][0]["name"] == "a" and last["nodes"]["a"]["status"] == "succeeded"


def test_a_running_workflow_feed_shows_an_abort(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    """Without agents the workflow stays pending; the abort command is then applied by hand
    through the clerk, and the feed reports the new status."""
    from orchid.engine.runner import make_runner

    wf = api.submit("alice")["id"]
    b: Browser = browse("alice")
    feed = events(b, f"/ui/workflows/{wf}/live")
    kind, first = next(feed)
    assert kind == "summary" and first["status"] == "pending" and first["actions"] == ["abort"]
    r = b.post(f"/ui/workflows/{wf}/actions/abort", {"csrf": b.csrf(f"/ui/workflows/{wf}")})
    assert r.status_code == 303
    runner = make_runner(api.settings, api.db)
    executor = runner.executor
    try:
        runner.run_once()
    finally:
        executor.close()
        runner.close()
    for kind, data in feed:
        if kind == "summary" and data["status"] == "cancelled":
            break
    assert next(feed) == ("end", {})


def test_the_list_feed_reports_the_visible_rows_only(api: Api, browse, agents) -> None:  # type: ignore[no-untyped-def]
    mine = api.submit("alice")["id"]
    theirs = api.submit("carol")["id"]
    api.wait_status(mine, "succeeded")
    b: Browser = browse("alice")
    assert re.search(rf'data-live-list="[0-9,]*{mine}', b.get("/ui/").text)
    kind, rows = next(events(b, f"/ui/live/workflows?ids={mine},{theirs}"))
    assert kind == "rows" and [r["id"] for r in rows] == [mine]
    assert rows[0]["status"] == "succeeded" and rows[0]["counts"] == {"succeeded": 1}


def test_feeds_check_who_asks(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    wf = api.submit("alice")["id"]
    assert browse().get(f"/ui/workflows/{wf}/live").status_code == 303
    assert browse("carol").get(f"/ui/workflows/{wf}/live").status_code == 404


def test_a_revoked_token_closes_an_open_feed(  # type: ignore[no-untyped-def]
    api: Api, browse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feeds re-check the session every few seconds (STREAM_RECHECK_S, short here) and
    end once its token is revoked, instead of when the workflow ends."""
    monkeypatch.setattr(access, "STREAM_RECHECK_S", 0.3)
    wf = api.submit("bob")["id"]  # no agents: it stays pending, its feeds stay open
    bob = browse("bob")
    for path in (f"/ui/workflows/{wf}/live", f"/ui/live/workflows?ids={wf}"):
        with bob.http.stream("GET", path, timeout=30) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert next(lines).startswith("event: ")
            with api.db.begin() as conn:
                tokens.revoke(conn, api.token_ids["bob"], time.time())
            deadline = time.monotonic() + 10
            for _ in lines:  # summaries come every 2 s while it is open
                assert time.monotonic() < deadline, f"{path} is still open"
        with api.db.begin() as conn:  # a fresh token for the next feed
            api.token_ids["bob"], token = tokens.create(
                conn, user="bob", admin=False, groups=["physics"], now=time.time()
            )
        assert bob.login(token).status_code == 303
    with bob.http.stream("GET", f"/ui/workflows/{wf}/live", timeout=30) as r:
        assert r.status_code == 200  # the fresh session works
