"""No request can stall or break the server (issue 15, items 3 and 5).

Limits on works per template and on body size answer 422 and 413 naming the setting;
gzip bodies are unpacked under one cap over all their members, and every broken one is
a 400; the work of a big request (unpacking, parsing, validating, writing) happens off
the event loop, so ``/ping`` keeps answering meanwhile. Bounds on how long ``/ping``
takes are generous: they tell "answers" from "stalled for seconds", not fast from slow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchid.api.app import PREFIX
from orchid.auth import AuthConfig
from orchid.server import create_app
from orchid.settings import DEFAULT_MAX_REQUEST_BYTES
from orchid.store.db import Database
from tests.api.conftest import (
    MAX_BODY,
    Api,
    ErrorRecorder,
    api_settings,
    make_tokens,
    noop_template,
    serve,
)

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # nothing stored
PING_BOUND_S = 5.0  # generous: 2.5 s at worst at load 25 on 2 cores; stalled loops took 15-60+ s
NDJSON = "application/x-ndjson"
JSON = {"Content-Type": "application/json"}
GZIP_JSON = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


@dataclasses.dataclass
class Live:
    base_url: str
    token: str
    recorder: ErrorRecorder

    def client(self, **kw: Any) -> httpx.Client:
        kw.setdefault("timeout", 120.0)
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return httpx.Client(base_url=self.base_url, headers=headers, **kw)


@contextlib.contextmanager
def live_server(
    db: Database, tmp_path: Path, max_body_bytes: int | None = None, **settings: Any
) -> Iterator[Live]:
    """A server over ``db`` with these settings (no ``max_body_bytes``: the default limit
    of the settings, as `orchid server` has it)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    s = api_settings(db, home).replace(**settings)
    app = create_app(s, AuthConfig(), db=db, max_body_bytes=max_body_bytes)
    toks, _ = make_tokens(db)
    recorder = ErrorRecorder(app)
    server, thread, port = serve(recorder)
    try:
        yield Live(f"http://127.0.0.1:{port}{PREFIX}", toks["alice"], recorder)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    assert not recorder.errors, [f"{type(e).__name__}: {e}" for e in recorder.errors]


def error_of(r: httpx.Response, status: int, *words: str) -> str:
    assert r.status_code == status, r.text[:500]
    message = r.json()["error"]
    assert isinstance(message, str)
    for w in words:
        assert w in message, message
    return message


def slowest_ping(base_url: str, busy: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``busy()`` in a thread and ping the server until it is done; return what it
    returned and the longest a ping took meanwhile."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(busy()), daemon=True)
    slowest = 0.0
    with httpx.Client(base_url=base_url, timeout=60) as pinger:
        thread.start()
        time.sleep(0.2)  # let the busy requests reach the server
        while thread.is_alive():
            t0 = time.monotonic()
            assert pinger.get("/ping").status_code == 200
            slowest = max(slowest, time.monotonic() - t0)
            time.sleep(0.05)
    thread.join()
    return result[0], slowest


@functools.cache
def gzip_zeros(size: int) -> bytes:
    """gzip of ``size`` zero bytes, made a MiB at a time (256 MiB is about 256 KB packed)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    whole, rest = divmod(size, len(block))
    parts = [z.compress(block) for _ in range(whole)]
    parts.append(z.compress(bytes(rest)))
    parts.append(z.flush())
    return b"".join(parts)


def chain(n: int) -> dict[str, Any]:
    works: list[dict[str, Any]] = [{"name": "w0", "noop": True}]
    works += [
        {"name": f"w{i}", "noop": True, "after": [f"w{i - 1}"], "when": f"works.w{i - 1}.outputs"}
        for i in range(1, n)
    ]
    return {"name": "big", "works": works}


# --- works per template (422) --------------------------------------------------------------


@SQLITE_ONLY
def test_more_works_than_max_works_is_422_naming_the_setting(db: Database, tmp_path: Path) -> None:
    with live_server(db, tmp_path, max_works=5) as live, live.client() as c:
        ok = c.post("/workflows", json={"template": noop_template("five", 5)})
        assert ok.status_code == 201, ok.text
        r = c.post("/workflows", json={"template": noop_template("six", 6)})
        message = error_of(r, 422, "6 works", "limit of 5", "max_works", "ORCHID_MAX_WORKS")
        assert r.json()["field"] == "works", message
        loops = {
            "name": "loops",
            "works": [{"name": "a", "noop": True}],
            "loops": [
                {"name": f"l{i}", "works": ["a"], "until": "true", "max_iterations": 1}
                for i in range(6)
            ],
        }
        error_of(c.post("/workflows", json={"template": loops}), 422, "6 loops", "max_works")
        # an open workflow grows by one work at a time: the limit holds there too
        grown = {"name": "grown", "open": True, "works": [{"name": "w0", "noop": True}]}
        wf = c.post("/workflows", json={"template": grown}).json()["id"]
        for i in range(1, 5):
            r = c.post(f"/workflows/{wf}/works", json={"work": {"name": f"w{i}", "noop": True}})
            assert r.status_code == 201, r.text
        r = c.post(f"/workflows/{wf}/works", json={"work": {"name": "w5", "noop": True}})
        error_of(r, 422, "max_works")


# --- body size (413) ---------------------------------------------------------------------------


@SQLITE_ONLY
def test_a_body_over_max_request_bytes_is_413_naming_the_setting(
    db: Database, tmp_path: Path
) -> None:
    with live_server(db, tmp_path, max_request_bytes=4000) as live, live.client() as c:
        body = b'{"template": "' + b"x" * 4000 + b'"}'
        for content in (body, iter([body[:2000], body[2000:]])):  # declared, then chunked
            r = c.post("/workflows", content=content, headers=JSON)
            error_of(r, 413, "4,000 bytes", "max_request_bytes", "ORCHID_MAX_REQUEST_BYTES")
        r = c.post("/workflows", content=gzip.compress(body), headers=GZIP_JSON)
        error_of(r, 413, "4,000 bytes once unpacked", "max_request_bytes")


# --- gzip bodies -----------------------------------------------------------------------------


@SQLITE_ONLY
def test_several_gzip_members_share_one_cap(api: Api) -> None:
    c = api.client("alice")
    # the issue's shape at the test server's limit: a first member of exactly the limit
    # plus one byte left the next one "max_length=0" (no limit) and the third a negative
    # one (ValueError: 500)
    crafted = gzip_zeros(MAX_BODY + 1) + gzip.compress(b"0" * 10) + gzip.compress(b"0" * 10)
    error_of(c.post("/workflows", content=crafted, headers=GZIP_JSON), 413, "unpacked")
    # members each under the limit, together over it
    half = gzip_zeros(MAX_BODY // 2 + 1)
    for body in (half + half, half + half + half, gzip_zeros(MAX_BODY) + gzip.compress(b" ")):
        error_of(c.post("/workflows", content=body, headers=GZIP_JSON), 413, "unpacked")
    # exactly the limit in two members is read (and refused for what it says)
    body = b'{"template": "' + b"x" * (MAX_BODY - 16) + b'"}'
    packed = gzip.compress(body[:1000]) + gzip.compress(body[1000:])
    assert len(body) <= MAX_BODY
    error_of(c.post("/workflows", content=packed, headers=GZIP_JSON), 422, "template")
    assert not api.server_errors, api.server_errors


BROKEN_GZIP: list[tuple[str, bytes]] = [
    ("not gzip at all", b"not gzip"),
    ("a bad header", b"\x1f\x8b\x09\x00" + bytes(20)),  # compression method 9 does not exist
    ("a corrupt stream", gzip.compress(b'{"template": {}}')[:12] + b"\xff" * 20),
    ("garbage after a member", gzip.compress(b'{"template": {}}') + b"tail"),
    ("zeros after a member", gzip.compress(b'{"template": {}}') + bytes(8)),
    ("a second member cut short", gzip.compress(b"{}") + gzip.compress(b"{}")[:-6]),
    ("a cut-off stream", gzip.compress(b'{"template": {}}')[:-8]),
    ("only a header", gzip.compress(b"")[:10]),
    ("a bad checksum", gzip.compress(b'{"template": {}}')[:-8] + bytes(8)),
]


@SQLITE_ONLY
@pytest.mark.parametrize("kind", ["application/json", NDJSON])
def test_every_broken_gzip_body_is_400_with_a_message(api: Api, kind: str) -> None:
    c = api.client("alice")
    wrong = []
    for what, body in BROKEN_GZIP:
        r = c.post("/workflows", content=body, headers={**GZIP_JSON, "Content-Type": kind})
        if r.status_code != 400 or "gzip" not in r.json().get("error", ""):
            wrong.append((what, r.status_code, r.text[:100]))
    assert not wrong, wrong
    assert not api.server_errors, api.server_errors


@SQLITE_ONLY
def test_the_issues_gzip_body_at_the_default_limit_is_413(db: Database, tmp_path: Path) -> None:
    """gz(256 MiB + 1 zeros) + gz(10 B) + gz(10 B) answered 500 (ValueError: max_length
    must be non-negative)."""
    crafted = gzip_zeros(DEFAULT_MAX_REQUEST_BYTES + 1)
    crafted += gzip.compress(b"0" * 10) + gzip.compress(b"0" * 10)
    assert len(crafted) < 1024 * 1024
    with live_server(db, tmp_path) as live, live.client() as c:
        r = c.post("/workflows", content=crafted, headers=GZIP_JSON)
        error_of(r, 413, f"{DEFAULT_MAX_REQUEST_BYTES:,} bytes once unpacked")


@SQLITE_ONLY
def test_ping_answers_while_gzip_bombs_are_unpacked(db: Database, tmp_path: Path) -> None:
    """Three concurrent bombs made /ping take 15 s: unpacking ran on the event loop."""
    bomb = gzip_zeros(DEFAULT_MAX_REQUEST_BYTES + 1)  # one byte too many
    with live_server(db, tmp_path) as live:

        def bombs() -> list[int]:
            def one(_: int) -> int:
                with live.client() as c:
                    return c.post("/workflows", content=bomb, headers=GZIP_JSON).status_code

            with ThreadPoolExecutor(3) as pool:
                return list(pool.map(one, range(3)))

        statuses, slowest = slowest_ping(live.base_url, bombs)
    assert statuses == [413, 413, 413]
    assert slowest < PING_BOUND_S, f"/ping took {slowest:.1f} s while bombs were unpacked"


# --- big submissions ---------------------------------------------------------------------------


@SQLITE_ONLY
@pytest.mark.timeout(240)
def test_ping_answers_while_a_big_template_is_validated(db: Database, tmp_path: Path) -> None:
    """20,000 works (about 1.5 MB) never returned; the server stays responsive meanwhile."""
    body = {"template": chain(20_000)}
    with live_server(db, tmp_path, max_works=20_000) as live:

        def submit() -> httpx.Response:
            with live.client() as c:
                return c.post("/workflows", json=body)

        r, slowest = slowest_ping(live.base_url, submit)
    assert r.status_code == 201, r.text[:500]
    assert slowest < PING_BOUND_S, f"/ping took {slowest:.1f} s during the submission"
