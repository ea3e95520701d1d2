"""An open event stream ends with its caller's credentials, not only with its workflow: a
revoked token, or a job token whose attempt ended, closes it within a few seconds
(``STREAM_RECHECK_S``, made short here)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from orchid.store import tokens
from orchid.web import access
from tests.api.conftest import Api

RECHECK_S = 0.3
DEADLINE_S = 10.0  # far more than RECHECK_S; a stream still open then fails the test
ONE_JOB = {"name": "one", "works": [{"name": "a", "noop": True, "jobs": [{"name": "j"}]}]}


@pytest.fixture(autouse=True)
def quick_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "STREAM_RECHECK_S", RECHECK_S)


def read_until_closed(c: httpx.Client, path: str, then: Callable[[], None]) -> list[str]:
    """Open the stream, call ``then``, and read until the server closes it (bounded: lines
    come at least every 15 s, the keep-alive)."""
    lines = []
    with c.stream("GET", path, timeout=30) as r:
        assert r.status_code == 200, r.read()
        then()
        deadline = time.monotonic() + DEADLINE_S
        for line in r.iter_lines():
            lines.append(line)
            assert time.monotonic() < deadline, f"the stream is still open: {lines}"
    return lines


def test_a_revoked_token_closes_an_open_event_stream(api: Api) -> None:
    wf = api.submit("bob")["id"]  # no agents: it stays pending, its stream stays open

    def revoke() -> None:
        with api.db.begin() as conn:
            assert tokens.revoke(conn, api.token_ids["bob"], time.time())

    lines = read_until_closed(api.client("bob"), f"/workflows/{wf}/events", revoke)
    assert lines[-2:] == [": closed: unknown or revoked token", ""]
    assert "event: end" not in lines  # the workflow has not ended
    assert api.client("bob").get(f"/workflows/{wf}/events").status_code == 401


def test_a_job_tokens_stream_ends_with_its_attempt(api: Api) -> None:
    wf = api.submit("alice", ONE_JOB)["id"]
    token = api.job_token(wf)
    job = api.client(headers={"Authorization": f"Bearer {token}"})
    lines = read_until_closed(job, f"/workflows/{wf}/events", lambda: api.end_job(token))
    assert lines[-2:] == [": closed: unknown or revoked token", ""]


def test_a_stream_stays_open_while_the_token_works(api: Api) -> None:
    wf = api.submit("alice")["id"]
    with api.client("alice").stream("GET", f"/workflows/{wf}/events", timeout=30) as r:
        assert r.status_code == 200
        time.sleep(RECHECK_S * 5)  # several checks pass
        with api.db.begin() as conn:
            assert tokens.revoke(conn, api.token_ids["alice"], time.time())
        assert ": closed: unknown or revoked token" in list(r.iter_lines())
