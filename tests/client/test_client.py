"""Every client method against a real server (see conftest.py), errors and retries included."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchid.client import (
    Client,
    ClientError,
    Forbidden,
    Invalid,
    NotFound,
    Rejected,
    Retry,
    Unauthorized,
    Unreachable,
    sha256_of,
)
from orchid.errors import OrchidError
from tests.client.serverkit import Server

pytestmark = pytest.mark.timeout(60)


def noop(name: str) -> dict[str, Any]:
    return {"name": name, "works": [{"name": "a", "noop": True}]}


def run_to_end(client: Client, workflow_id: int) -> list[str]:
    """The kinds of the workflow's events, read until the stream ends."""
    return [e.kind for e in client.events(workflow_id)]


def test_ping_needs_no_token_health_does(server: Server) -> None:
    with server.client(None) as anonymous:
        assert anonymous.ping()
        with pytest.raises(Unauthorized) as caught:
            anonymous.health()
    assert caught.value.status == 401 and "authentication required" in str(caught.value)
    with server.client() as alice:
        health = alice.health()
    assert health.database == "ok" and health.version
    assert health.agents and "clerk" in health.agents[0]["roles"]


def test_whoami_says_who_the_server_takes_the_caller_to_be(server: Server) -> None:
    with server.client() as alice, server.client("root") as root, server.client(None) as nobody:
        me = alice.whoami()
        assert (me.user, me.groups, me.admin, me.method) == ("alice", ["physics"], False, "token")
        assert root.whoami().admin is True
        with pytest.raises(Unauthorized):
            nobody.whoami()


def sweep(n: int) -> dict[str, Any]:
    return {
        "name": "sweep",
        "parameters": {"n": n},
        "works": [
            {
                "name": "count",
                "command": ["sh", "-c", "printf 0123456789; echo oops >&2"],
                "map": {"product": {"i": "${range(params.n)}"}},
            },
            {"name": "after", "after": ["count"], "noop": True},
        ],
    }


def test_submit_follow_and_read_everything(server: Server) -> None:
    with server.client() as alice:
        wf = alice.submit(sweep(3), {"n": 5})
        assert (wf.owner, wf.name, wf.params) == ("alice", "sweep", {"n": 5})
        kinds = run_to_end(alice, wf.id)
        assert kinds[0] == "workflow.submitted" and kinds[-1] == "workflow.succeeded"

        detail = alice.workflow(wf.id)
        assert detail.status == "succeeded" and detail.finished_at is not None
        assert [(w.name, w.status, w.counts) for w in detail.works] == [
            ("count", "succeeded", {"succeeded": 5}),
            ("after", "succeeded", {"succeeded": 1}),
        ]
        assert [w.name for w in alice.works(wf.id)] == ["count", "after"]

        page = alice.jobs(wf.id, limit=2)
        assert len(page.items) == 2 and page.next_cursor is not None
        everything = list(alice.iter_jobs(wf.id, page_size=2))
        assert len(everything) == 6 and len({j.id for j in everything}) == 6
        assert [j.id for j in everything] == sorted(j.id for j in everything)
        counted = list(alice.iter_jobs(wf.id, status=["succeeded"], page_size=5))
        assert len(counted) == 6
        assert alice.jobs(wf.id, status=["failed"]).items == []

        job = alice.job(everything[0].id)
        assert (job.work, job.status, job.exit_code) == ("count", "succeeded", 0)
        assert alice.logs(job.id) == b"0123456789"
        assert alice.logs(job.id, stream="stderr") == b"oops\n"
        # byte ranges, as in slicing
        assert alice.logs(job.id, start=2, end=5) == b"234"
        assert alice.logs(job.id, start=7) == b"789"
        assert alice.logs(job.id, start=-3) == b"789"
        assert alice.logs(job.id, start=5, end=5) == b""
        assert alice.logs(job.id, start=100) == b""  # past the end: nothing (yet)
        assert b"".join(alice.iter_logs(job.id, end=4)) == b"0123"

        # the stream of a finished workflow replays from `after` and ends at once
        events = list(alice.events(wf.id))
        assert [e.kind for e in events] == kinds
        assert all(e.workflow_id == wf.id and e.at for e in events)
        assert list(alice.events(wf.id, after=events[-1].id or 0)) == []
        with pytest.raises(NotFound, match=r"\(succeeded\) has no log: it wrote nothing"):
            alice.logs(everything[-1].id)  # a noop job writes none


class Recording(httpx.HTTPTransport):
    """The real transport, remembering each request's headers and body."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[httpx.Headers, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join(request.stream)  # type: ignore[union-attr]
        self.sent.append((request.headers, body))
        request.stream = httpx.ByteStream(body)
        return super().handle_request(request)


def test_submit_file_streams_the_jobs_file_gzipped(server: Server, tmp_path: Path) -> None:
    (tmp_path / "jobs.jsonl").write_text(
        "".join(
            json.dumps({"work": "a", "name": f"j{i}", "parents": [f"a/j{i - 1}"] if i else []})
            + "\n"
            for i in range(50)
        )
    )
    template = tmp_path / "dag.yaml"
    template.write_text(
        "name: dag\nworks:\n  - {name: a, noop: true, jobs: from_file}\njobs_file: jobs.jsonl\n"
    )
    recording = Recording()
    with server.client(transport=recording) as alice:
        wf = alice.submit_file(template)
        run_to_end(alice, wf.id)
        assert alice.workflow(wf.id).works[0].counts == {"succeeded": 50}
    headers, body = recording.sent[0]
    assert headers["content-type"] == "application/x-ndjson"
    assert headers["content-encoding"] == "gzip"
    lines = gzip.decompress(body).decode().splitlines()
    assert json.loads(lines[0])["template"] == template.read_text()
    assert len(lines) == 51 and json.loads(lines[1])["name"] == "j0"


def test_submit_file_problems_are_found_before_sending(server: Server, tmp_path: Path) -> None:
    with server.client() as alice:
        with pytest.raises(OrchidError, match="no template file"):
            alice.submit_file(tmp_path / "nope.yaml")
        template = tmp_path / "t.yaml"
        template.write_text("name: t\nworks: [{name: a, noop: true, jobs: from_file}]\n")
        template.write_text(template.read_text() + "jobs_file: missing.jsonl\n")
        with pytest.raises(OrchidError, match="no such file"):
            alice.submit_file(template)


def test_errors_map_to_types_with_the_servers_message(server: Server) -> None:
    with server.client("alice") as alice, server.client("bob") as bob:
        mine = alice.submit(noop("private")).id
        # someone else's workflow is as if it did not exist
        with pytest.raises(NotFound, match=f"no workflow {mine}") as seen:
            bob.workflow(mine)
        assert seen.value.status == 404
        assert isinstance(seen.value, Rejected | ClientError | OrchidError)
        with pytest.raises(NotFound, match=f"no workflow {mine}"):
            bob.abort(mine)
        for call in (bob.works, bob.jobs, lambda i: list(bob.events(i))):
            with pytest.raises(NotFound):
                call(mine)
        with pytest.raises(NotFound, match="no workflow 999999") as missing:
            alice.workflow(999999)
        assert missing.value.status == 404
        with pytest.raises(NotFound):
            alice.job(999999)

        with pytest.raises(Invalid) as bad:
            alice.submit({"name": "bad", "works": [{"name": "a", "noop": True, "retires": 2}]})
        assert bad.value.status == 422
        assert bad.value.field == "works[0](a).retires"
        assert bad.value.problems and "not a known field" in bad.value.problems[0][1]
        with pytest.raises(Invalid, match="unknown parameter"):
            alice.submit(noop("p"), {"nope": 1})
        with pytest.raises(Invalid) as query:
            alice.workflows(limit=0)
        assert query.value.field == "query.limit"
        with pytest.raises(Forbidden, match="not in group"):
            alice.submit(noop("shared"), share_group="atlas")
    with server.client(None) as anonymous, pytest.raises(Unauthorized):
        anonymous.workflow(mine)
    stranger = Client(server.url, "orc_not-a-real-token")
    with stranger, pytest.raises(Unauthorized, match="unknown or revoked token"):
        stranger.workflows()


def test_lists_show_only_what_the_caller_may_see(server: Server) -> None:
    with server.client("alice") as alice, server.client("bob") as bob:
        ids = [alice.submit(noop(f"many-{i}")).id for i in range(5)]
        shared = alice.submit(noop("group"), share_group="physics").id
        bobs = bob.submit(noop("bobs")).id
        page = alice.workflows(name="many-0", limit=50)
        assert [w.id for w in page.items] == [ids[0]] and page.next_cursor is None

        listed = [w.id for w in alice.iter_workflows(page_size=2)]
        assert set(ids) | {shared} <= set(listed) and bobs not in listed
        assert listed == sorted(listed, reverse=True)  # newest first, no page repeated
        assert len(listed) == len(set(listed))
        assert all(w.owner == "bob" for w in bob.iter_workflows())
        first = alice.workflows(limit=2)
        assert len(first.items) == 2 and first.next_cursor is not None
        rest = alice.workflows(limit=2, cursor=first.next_cursor)
        assert rest.items[0].id < first.items[-1].id
    with server.client("root") as root:
        everyone = {w.id for w in root.iter_workflows(page_size=3)}
        assert {*ids, shared, bobs} <= everyone
        assert {w.owner for w in root.iter_workflows(owner="bob")} == {"bob"}


def test_commands(server: Server) -> None:
    slow = {
        "name": "slow",
        "works": [{"name": "s", "command": ["sleep", "60"], "map": {"items": [{}, {}]}}],
    }
    with server.client() as alice:
        wf = alice.submit(slow)
        # abort before finish: a finish applied first (the agents run meanwhile) would skip
        # the work if it had not started yet, and the workflow could end before the abort
        for action in (alice.suspend, alice.resume, alice.retry):
            out = action(wf.id)
            assert (out.workflow_id, out.status) == (wf.id, "queued")
        queued = alice.abort(wf.id)
        assert queued.action == "abort" and queued.command_id > 0
        assert alice.finish(wf.id).status == "queued"
        started = time.monotonic()
        kinds = run_to_end(alice, wf.id)
        assert time.monotonic() - started < 20
        assert "command.abort" in kinds and alice.workflow(wf.id).status == "cancelled"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_closed_port_is_unreachable_after_bounded_retries() -> None:
    waits: list[float] = []
    client = Client(
        f"http://127.0.0.1:{free_port()}",
        "orc_x",
        retry=Retry(attempts=4, backoff=0.01, max_delay=0.02),
        sleep=waits.append,
    )
    started = time.monotonic()
    with client:
        with pytest.raises(Unreachable, match="tried 4 times") as caught:
            client.workflows()
        assert len(waits) == 3 and all(0 < w <= 0.02 for w in waits)
        assert caught.value.status is None and isinstance(caught.value, ClientError)
        # a submission that never left is safe to try again too
        with pytest.raises(Unreachable, match="tried 4 times"):
            client.submit(noop("x"))
        assert len(waits) == 6
    assert time.monotonic() - started < 5


@pytest.fixture
def hang_up() -> Iterator[tuple[str, list[int]]]:
    """A server that accepts each connection, reads the request and closes without a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    accepted = [0]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted[0] += 1
            conn.settimeout(1)
            with contextlib.suppress(OSError):
                conn.recv(65536)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join(5)
    listener.close()


def test_a_sent_post_is_never_sent_again(hang_up: tuple[str, list[int]]) -> None:
    url, accepted = hang_up
    retry = Retry(attempts=3, backoff=0.01, max_delay=0.01)
    with Client(url, "orc_x", retry=retry) as client:
        with pytest.raises(Unreachable, match="tried 3 times"):
            client.workflow(1)  # a read: tried again
        assert accepted[0] == 3
        with pytest.raises(Unreachable, match="may or may not have been applied"):
            client.abort(1)
        assert accepted[0] == 4
        with pytest.raises(Unreachable, match="may or may not"):
            client.submit(noop("once"))
        assert accepted[0] == 5


def test_messages_cache_and_catalog(server: Server, tmp_path: Path) -> None:
    with server.client("alice") as alice, server.client("bob") as bob:
        wf = alice.submit(noop("talk")).id
        posted = [alice.post_message(wf, "result", {"loss": 0.1 * i}) for i in range(5)]
        assert posted[0].sender == "alice" and posted[0].body == {"loss": 0.0}
        alice.post_message(wf, "control", "stop")
        page = alice.messages(wf, kind="result", limit=2)
        assert [m.id for m in page.items] == [p.id for p in posted[:2]]
        assert [m.body for m in alice.iter_messages(wf, kind="result", page_size=2)] == [
            {"loss": 0.1 * i} for i in range(5)
        ]
        assert [m.kind for m in alice.iter_messages(wf, after=posted[-1].id)] == ["control"]
        with pytest.raises(Invalid, match="kind"):
            alice.post_message(wf, "Not A Kind", 1)
        with pytest.raises(OrchidError, match="cannot be sent as JSON"):
            alice.post_message(wf, "result", float("nan"))
        with pytest.raises(NotFound):
            bob.post_message(wf, "result", 1)

        data = b"payload " * 1000
        digest = hashlib.sha256(data).hexdigest()
        assert not alice.cache.has(digest)
        stored = alice.cache.put(data)
        assert (stored.sha256, stored.size) == (digest, len(data))
        assert alice.cache.has(digest) and not bob.cache.has(digest)  # private to alice
        assert alice.cache.get(digest) == data
        path = tmp_path / "big.bin"
        path.write_bytes(bytes(range(256)) * 8192)  # 2 MiB, streamed from the file
        assert alice.cache.ensure(path) == sha256_of(path)
        assert alice.cache.ensure(path) == sha256_of(path)  # the second time: no upload
        assert alice.cache.get(sha256_of(path)) == path.read_bytes()
        assert {o.sha256 for o in alice.cache.iter_objects(page_size=1)} == {
            digest,
            sha256_of(path),
        }
        with pytest.raises(NotFound):
            bob.cache.get(digest)
        alice.cache.delete(digest)
        assert not alice.cache.has(digest)
        with pytest.raises(NotFound):
            alice.cache.delete(digest)

        assert alice.collections(wf) == []
        with pytest.raises(NotFound):
            alice.files(wf, 1)
        with pytest.raises(NotFound):
            list(alice.iter_files(wf, 1, status=["available"]))
        with pytest.raises(NotFound):
            bob.collections(wf)
