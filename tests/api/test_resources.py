"""Messages, the payload cache and the data catalog over HTTP, against a real uvicorn server.

Covers who may do what (owner, group member of a shared workflow, stranger, admin), bad
input (always a 4xx with a JSON error), idempotent uploads and HEAD probes.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn

from orchid.api.app import PREFIX
from orchid.api.routes import cache as cache_routes
from orchid.auth import AuthConfig
from orchid.core.states import FileStatus as F
from orchid.server import create_app
from orchid.settings import Settings
from orchid.store import catalog, events, messages, tokens, workflows
from orchid.store.catalog import NewFile
from orchid.store.db import Database
from orchid.wire import MessageIn

CACHE_LIMIT = 64 * 1024  # the cache's object size limit in these tests
USERS = {
    "alice": (False, ["physics"]),
    "bob": (False, ["physics"]),
    "carol": (False, []),
    "root": (True, []),
}


@dataclass
class Live:
    """A running server over the test's database, and a client per user."""

    url: str
    home: Path
    db: Database
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def __getitem__(self, user: str) -> httpx.Client:
        return self.clients[user]

    def workflow(self, owner: str, share_group: str | None = None) -> int:
        with self.db.begin() as conn:
            return workflows.create(
                conn,
                name="wf",
                owner=owner,
                template={},
                params={},
                base_dir=None,
                now=time.time(),
                share_group=share_group,
            )


@pytest.fixture
def live(db: Database, tmp_path: Path) -> Iterator[Live]:
    settings = Settings.load(env={}, home=tmp_path, db=db.url, executor="null")
    app = create_app(settings, AuthConfig(), db=db)
    app.dependency_overrides[cache_routes.max_object_bytes] = lambda: CACHE_LIMIT
    with db.begin() as conn:
        secrets = {
            user: tokens.create(conn, user=user, admin=admin, groups=groups, now=time.time())[1]
            for user, (admin, groups) in USERS.items()
        }
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    out = Live(f"http://127.0.0.1:{port}{PREFIX}", tmp_path, db)
    for user, secret in {**secrets, "anonymous": ""}.items():
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        out.clients[user] = httpx.Client(base_url=out.url, headers=headers, timeout=20)
    try:
        yield out
    finally:
        for c in out.clients.values():
            c.close()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def error(r: httpx.Response, status: int, *words: str) -> str:
    """Assert a JSON error with this status whose message holds ``words``; return it."""
    assert r.status_code == status, r.text
    message = r.json()["error"]
    assert isinstance(message, str) and message
    for w in words:
        assert w in message, message
    return message


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- messages -------------------------------------------------------------------------------


def test_messages_owner_group_stranger_admin(live: Live) -> None:
    wf = live.workflow("alice", share_group="physics")
    path = f"/workflows/{wf}/messages"
    r = live["alice"].post(path, json={"kind": "result", "body": {"loss": 0.25, "ok": [1, None]}})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["sender"] == "alice" and first["workflow_id"] == wf
    assert first["kind"] == "result" and first["body"] == {"loss": 0.25, "ok": [1, None]}
    assert (
        live["bob"].post(path, json={"kind": "control", "body": "stop"}).json()["sender"] == "bob"
    )
    assert live["root"].post(path, json={"kind": "result", "body": None}).status_code == 201
    error(live["carol"].post(path, json={"kind": "result", "body": 1}), 404, f"no workflow {wf}")
    error(live["carol"].get(path), 404, f"no workflow {wf}")
    error(live["anonymous"].get(path), 401, "authentication required")

    for user in ("alice", "bob", "root"):
        page = live[user].get(path).json()
        assert [m["body"] for m in page["items"]] == [first["body"], "stop", None]
        assert page["next_cursor"] is None
    page = live["alice"].get(path, params={"limit": 2}).json()
    assert [m["sender"] for m in page["items"]] == ["alice", "bob"]
    rest = live["alice"].get(path, params={"after": page["next_cursor"]}).json()
    assert [m["sender"] for m in rest["items"]] == ["root"]
    results = live["alice"].get(path, params={"kind": "result"}).json()["items"]
    assert [m["sender"] for m in results] == ["alice", "root"]

    # each message is an outbox event, so `orchid watch` and the event stream see it
    with live.db.engine.connect() as conn:
        kinds = [(e["kind"], e["data"]["sender"]) for e in events.since(conn, wf)]
    assert kinds == [("message", "alice"), ("message", "bob"), ("message", "root")]

    # the workflow's own actions still route: POST /workflows/{id}/{action}
    assert live["alice"].post(f"/workflows/{wf}/abort").status_code == 202
    error(live["alice"].get("/workflows/999999/messages"), 404, "no workflow 999999")
    error(live["alice"].post("/workflows/999999/messages", json={"kind": "a", "body": 1}), 404)
    private = live.workflow("carol")
    error(live["alice"].post(f"/workflows/{private}/messages", json={"kind": "a", "body": 1}), 404)
    assert live["root"].get(f"/workflows/{private}/messages").status_code == 200


BAD_MESSAGES = [
    (b'{"kind": "result", "body": NaN}', ["NaN"]),
    (b'{"kind": "result", "body": [1, -Infinity]}', ["Infinity"]),
    (b'{"kind": "Result!", "body": 1}', ["kind"]),
    (b'{"kind": "result"}', ["body"]),
    (b'{"kind": "result", "body": 1, "extra": 2}', ["extra"]),
    (b'["kind", "result"]', ["dictionary"]),
    (b"kind=result", ["not standard JSON"]),
    (b"\xff\xfe{", ["not standard JSON"]),
    (b"", ["not standard JSON"]),
    (b"[" * 100_000 + b"]" * 100_000, []),
]


def test_bad_messages_are_422(live: Live) -> None:
    wf = live.workflow("alice")
    for content, words in BAD_MESSAGES:
        r = live["alice"].post(
            f"/workflows/{wf}/messages",
            content=content,
            headers={"Content-Type": "application/json"},
        )
        error(r, 422, *words)
    assert live["alice"].get(f"/workflows/{wf}/messages").json()["items"] == []


def test_message_limits_and_query_checks(live: Live) -> None:
    wf = live.workflow("alice")
    path = f"/workflows/{wf}/messages"
    fits = "x" * (messages.MAX_BODY_BYTES - 2)
    assert live["alice"].post(path, json={"kind": "big", "body": fits}).status_code == 201
    error(live["alice"].post(path, json={"kind": "big", "body": fits + "x"}), 413, "1,048,576")
    huge = json.dumps({"kind": "big", "body": "x" * (2 * messages.MAX_BODY_BYTES)}).encode()
    error(live["alice"].post(path, content=huge), 413)

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield b'{"kind": "big", "body": "'
        for _ in range(20):
            yield b"x" * 100_000
        yield b'"}'

    error(live["alice"].post(path, content=chunked()), 413)
    error(live["alice"].get(path, params={"kind": "Bad Kind"}), 422, "kind")
    error(live["alice"].get(path, params={"after": -1}), 422, "after")
    error(live["alice"].get(path, params={"limit": 0}), 422, "limit")
    error(live["alice"].get("/workflows/0/messages"), 422, "2^62")
    assert MessageIn.model_fields["kind"].metadata[0].pattern == messages.KIND_PATTERN
    assert len(live["alice"].get(path).json()["items"]) == 1


# --- the cache ------------------------------------------------------------------------------


def test_cache_upload_probe_download_list_delete(live: Live) -> None:
    data = b"PK\x03\x04 a zipped source tree" * 100
    digest = sha(data)
    stored = live.home / "cache" / digest[:2] / digest[2:]
    assert live["alice"].head(f"/cache/{digest}").status_code == 404

    r = live["alice"].put(f"/cache/{digest}", content=data)
    assert r.status_code == 201, r.text
    assert r.json()["sha256"] == digest and r.json()["size"] == len(data)
    assert stored.read_bytes() == data
    again = live["alice"].put(f"/cache/{digest}", content=data)
    assert again.status_code == 200 and again.json() == r.json()  # idempotent
    head = live["alice"].head(f"/cache/{digest}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
    got = live["alice"].get(f"/cache/{digest}")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "application/octet-stream"

    # another user learns nothing about alice's objects: 404, as if nobody had uploaded it
    assert live["bob"].head(f"/cache/{digest}").status_code == 404
    error(live["bob"].get(f"/cache/{digest}"), 404, "you have no cached object")
    error(live["bob"].delete(f"/cache/{digest}"), 404)
    assert live["bob"].get("/cache").json()["items"] == []
    # admins may read anyone's object, but HEAD only answers for their own uploads
    assert live["root"].get(f"/cache/{digest}").content == data
    assert live["root"].head(f"/cache/{digest}").status_code == 404

    # bob uploads the same bytes: a reference of his own, the file stays single
    assert live["bob"].put(f"/cache/{digest}", content=data).status_code == 201
    assert live["alice"].delete(f"/cache/{digest}").status_code == 204
    assert live["alice"].head(f"/cache/{digest}").status_code == 404
    error(live["alice"].get(f"/cache/{digest}"), 404)
    assert live["bob"].get(f"/cache/{digest}").content == data and stored.exists()
    assert live["bob"].delete(f"/cache/{digest}").status_code == 204
    assert not stored.exists()
    error(live["bob"].delete(f"/cache/{digest}"), 404)
    assert [p for p in (live.home / "cache").rglob("*") if p.is_file()] == []


def test_cache_listing_pages(live: Live) -> None:
    blobs = [f"object {i}".encode() for i in range(5)]
    for b in blobs:
        assert live["carol"].put(f"/cache/{sha(b)}", content=b).status_code == 201
    first = live["carol"].get("/cache", params={"limit": 3}).json()
    rest = live["carol"].get("/cache", params={"cursor": first["next_cursor"]}).json()
    assert rest["next_cursor"] is None
    listed = [o["sha256"] for o in first["items"] + rest["items"]]
    assert listed == sorted(sha(b) for b in blobs)
    assert {o["size"] for o in first["items"] + rest["items"]} == {8}
    assert live["alice"].get("/cache").json() == {"items": [], "next_cursor": None}
    error(live["carol"].get("/cache", params={"cursor": "../etc"}), 422, "cursor")


def test_cache_refuses_malformed_digests(live: Live) -> None:
    client = live["alice"]
    for bad in ("A" * 64, "0" * 63, "0" * 65, "g" * 64, "0" * 63 + "%0A", "0" * 62 + "%00x"):
        for r in (
            client.put(f"/cache/{bad}", content=b"x"),
            client.get(f"/cache/{bad}"),
            client.delete(f"/cache/{bad}"),
        ):
            error(r, 422, "sha256")
        assert client.head(f"/cache/{bad}").status_code == 422
    # what is not one path segment never reaches the cache at all
    for bad in ("..", "../" + "0" * 61, "%2E%2E%2F" + "0" * 55, "ab/" + "0" * 61):
        r = client.put(f"/cache/{bad}", content=b"x")
        assert r.status_code in (404, 405, 422) and r.json()["error"], r.text
    assert not (live.home / "cache").exists() or not any((live.home / "cache").rglob("*"))


def test_cache_refuses_wrong_digests_large_objects_and_strangers(live: Live) -> None:
    data = b"the real bytes"
    wrong = sha(b"other bytes")
    error(live["alice"].put(f"/cache/{wrong}", content=data), 422, sha(data), wrong)
    big = b"y" * (CACHE_LIMIT + 1)
    error(live["alice"].put(f"/cache/{sha(big)}", content=big), 413, f"{CACHE_LIMIT:,}")

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(CACHE_LIMIT // 1000 + 1):
            yield b"y" * 1000

    error(live["alice"].put(f"/cache/{sha(big)}", content=chunked()), 413, "larger than")
    error(
        live["alice"].put(
            f"/cache/{sha(data)}", content=data, headers={"Content-Encoding": "gzip"}
        ),
        422,
        "Content-Encoding",
    )
    error(live["anonymous"].put(f"/cache/{sha(data)}", content=data), 401)
    error(live["anonymous"].get("/cache"), 401)
    assert live["anonymous"].head(f"/cache/{sha(data)}").status_code == 401
    exactly = b"z" * CACHE_LIMIT
    assert live["alice"].put(f"/cache/{sha(exactly)}", content=exactly).status_code == 201
    # nothing but that one object was kept: refused uploads leave no temporary files
    kept = [p for p in (live.home / "cache").rglob("*") if p.is_file()]
    assert [p.name for p in kept] == [sha(exactly)[2:]]


# --- the catalog ----------------------------------------------------------------------------


def test_catalog_collections_and_files(live: Live) -> None:
    wf = live.workflow("alice", share_group="physics")
    other = live.workflow("carol")
    statuses = [F.NEW, F.STAGING, F.AVAILABLE, F.AVAILABLE, F.PROCESSED] * 2
    with live.db.begin() as conn:
        raw = catalog.add_collection(
            conn, wf, scope="atlas", name="data.raw", manager="tapesim", now=1.0
        )
        catalog.add_collection(conn, wf, scope="atlas", name="empty", manager="posix", now=1.0)
        carols = catalog.add_collection(conn, other, scope="c", name="c", manager="posix", now=1)
        catalog.add_files(
            conn, raw, [NewFile(f"f{i}", 100 + i, s) for i, s in enumerate(statuses)], now=2.0
        )
    path = f"/workflows/{wf}/collections"
    for user in ("alice", "bob", "root"):
        r = live[user].get(path)
        assert r.status_code == 200, r.text
        got = r.json()
        assert [c["name"] for c in got] == ["data.raw", "empty"]
        assert got[0]["files"] == 10 and got[0]["manager"] == "tapesim"
        assert got[0]["counts"] == {"new": 2, "staging": 2, "available": 4, "processed": 2}
        assert got[1]["files"] == 0 and got[1]["counts"] == {}
    error(live["carol"].get(path), 404, "no workflow")
    error(live["carol"].get(f"{path}/{raw}/files"), 404, "no workflow")
    error(live["anonymous"].get(path), 401)
    error(live["alice"].get("/workflows/999999/collections"), 404)

    files = f"{path}/{raw}/files"
    page = live["bob"].get(files, params={"limit": 4}).json()
    names = [f["name"] for f in page["items"]]
    while page["next_cursor"]:
        page = live["bob"].get(files, params={"limit": 4, "cursor": page["next_cursor"]}).json()
        names += [f["name"] for f in page["items"]]
    assert names == [f"f{i}" for i in range(10)]
    ready = live["alice"].get(files, params=[("status", "available"), ("status", "processed")])
    assert [(f["name"], f["status"]) for f in ready.json()["items"]] == [
        ("f2", "available"),
        ("f3", "available"),
        ("f4", "processed"),
        ("f7", "available"),
        ("f8", "available"),
        ("f9", "processed"),
    ]
    assert ready.json()["items"][0]["size"] == 102
    error(live["alice"].get(files, params={"status": "lost"}), 422, "status")
    error(live["alice"].get(files, params={"cursor": "x"}), 422, "cursor")
    # a collection is only reachable through its own workflow
    error(live["alice"].get(f"{path}/{carols}/files"), 404, "has no collection")
    error(live["carol"].get(f"/workflows/{other}/collections/{raw}/files"), 404)
    assert live["root"].get(f"/workflows/{other}/collections/{carols}/files").status_code == 200


def test_the_new_resources_are_in_the_openapi_document(live: Live) -> None:
    paths = live["anonymous"].get("/openapi.json").json()["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/workflows/{workflow_id}/messages"])
    assert {"put", "head", "get", "delete"} <= set(paths["/api/v1/cache/{sha256}"])
    assert "get" in paths["/api/v1/cache"]
    assert "get" in paths["/api/v1/workflows/{workflow_id}/collections"]
    assert "get" in paths["/api/v1/workflows/{workflow_id}/collections/{collection_id}/files"]
