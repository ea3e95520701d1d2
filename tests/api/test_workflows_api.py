"""The workflow endpoints against a real uvicorn server: submit, list, read, steer, jobs,
logs, events and health, on SQLite and PostgreSQL.

Tests that need workflows to progress opt in to the ``agents`` fixture (the four agents in
one runner thread); the others see workflows exactly as submitted.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchid.store import workflows
from tests.api.conftest import MAX_BODY, WAIT_S, Agents, Api, noop_template
from tests.waiting import wait_for

NDJSON = "application/x-ndjson"
LOCAL = pytest.mark.parametrize("executor_name", ["local"])
SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # nothing stored


# --- helpers --------------------------------------------------------------------------------


def from_file_template(name: str = "many", works: tuple[str, ...] = ("a",)) -> dict[str, Any]:
    return {
        "name": name,
        "works": [{"name": w, "noop": True, "jobs": "from_file"} for w in works],
        "jobs_file": "jobs.jsonl",
    }


def ndjson(head: dict[str, Any], lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(x) + "\n" for x in [head, *lines]).encode()


def job_lines(work: str, n: int, prefix: str = "j") -> list[dict[str, Any]]:
    return [{"work": work, "name": f"{prefix}{i:04d}", "args": {"i": i}} for i in range(n)]


def assert_error(r: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    """A JSON error body with a message (that mentions ``words``) and the given status."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body: dict[str, Any] = r.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    for w in words:
        assert w in body["error"], body
    return body


def wait_file_cmd(path: Path) -> list[str]:
    """A job that waits (at most a minute) until ``path`` exists."""
    code = (
        "import os, sys, time\n"
        "deadline = time.monotonic() + 60\n"
        "while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        "sys.exit(0 if os.path.exists(sys.argv[1]) else 3)\n"
    )
    return [sys.executable, "-c", code, str(path)]


def job_statuses(c: httpx.Client, wf_id: int) -> list[str]:
    r = c.get(f"/workflows/{wf_id}/jobs", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return [j["status"] for j in r.json()["items"]]


def works_by_name(c: httpx.Client, wf_id: int) -> dict[str, dict[str, Any]]:
    r = c.get(f"/workflows/{wf_id}/works")
    assert r.status_code == 200, r.text
    return {w["name"]: w for w in r.json()}


def read_sse(
    c: httpx.Client, wf_id: int, after: int | None = None, timeout: float = WAIT_S
) -> list[dict[str, Any]]:
    """Every event of the stream up to and including ``end`` (fails if it does not come)."""
    params = {} if after is None else {"after": after}
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    with c.stream("GET", f"/workflows/{wf_id}/events", params=params) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        for line in r.iter_lines():
            if time.monotonic() > deadline:
                pytest.fail(f"no `end` event within {timeout:g} s; got {out}")
            if line.startswith(":"):
                continue
            if not line:
                if current:
                    out.append(current)
                    if current.get("event") == "end":
                        return out
                current = {}
                continue
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "id":
                current["id"] = int(value)
            elif key == "event":
                current["event"] = value
            elif key == "data":
                current["data"] = json.loads(value)
    pytest.fail(f"the stream closed without an `end` event; got {out}")


# --- submit ---------------------------------------------------------------------------------


def test_submit_a_template_mapping(api: Api) -> None:
    c = api.client("alice")
    r = c.post("/workflows", json={"template": noop_template("first", works=2)})
    assert r.status_code == 201, r.text
    wf = r.json()
    assert wf["name"] == "first" and wf["owner"] == "alice" and wf["status"] == "pending"
    assert wf["share_group"] is None and wf["finished_at"] is None and wf["params"] == {}
    assert isinstance(wf["id"], int) and wf["id"] >= 1
    r = c.get(f"/workflows/{wf['id']}")
    assert r.status_code == 200, r.text
    detail = r.json()
    assert {k: detail[k] for k in wf} == wf
    assert [w["name"] for w in detail["works"]] == ["w0", "w1"]


def test_submit_yaml_text_with_params(api: Api) -> None:
    text = (
        "name: yaml-wf\n"
        "parameters:\n"
        "  n: 3\n"
        "  label: default\n"
        "works:\n"
        "  - name: a\n"
        "    noop: true\n"
        "    parameters: {n: '${params.n}'}\n"
    )
    r = api.client("alice").post("/workflows", json={"template": text, "params": {"n": 7}})
    assert r.status_code == 201, r.text
    wf = r.json()
    assert wf["name"] == "yaml-wf"
    assert wf["params"] == {"n": 7, "label": "default"}


def test_submit_ndjson_with_job_lines(api: Api) -> None:
    c = api.client("alice")
    body = ndjson({"template": from_file_template()}, job_lines("a", 25))
    r = c.post("/workflows", content=body, headers={"Content-Type": NDJSON})
    assert r.status_code == 201, r.text
    wf_id = r.json()["id"]
    (work,) = c.get(f"/workflows/{wf_id}").json()["works"]
    assert work["name"] == "a" and work["jobs"] == 25
    items = c.get(f"/workflows/{wf_id}/jobs", params={"limit": 100}).json()["items"]
    assert [j["name"] for j in items] == [f"j{i:04d}" for i in range(25)]
    assert [j["args"] for j in items] == [{"i": i} for i in range(25)]


def test_submit_gzip_encoded_ndjson(api: Api) -> None:
    c = api.client("alice")
    body = ndjson({"template": from_file_template("gz")}, job_lines("a", 300))
    packed = gzip.compress(body)
    r = c.post(
        "/workflows",
        content=packed,
        headers={"Content-Type": NDJSON, "Content-Encoding": "gzip"},
    )
    assert r.status_code == 201, r.text
    (work,) = c.get(f"/workflows/{r.json()['id']}").json()["works"]
    assert work["jobs"] == 300


def test_gzip_bodies_are_read_whole_or_refused(api: Api) -> None:
    import zlib

    c = api.client("alice")
    headers = {"Content-Type": NDJSON, "Content-Encoding": "gzip"}
    body = ndjson({"template": from_file_template("gz")}, job_lines("a", 100))
    half = body.index(b"\n", len(body) // 2) + 1
    wrong = []
    # two gzip members: one body
    two = gzip.compress(body[:half]) + gzip.compress(body[half:])
    assert gzip.decompress(two) == body
    r = c.post("/workflows", content=two, headers=headers)
    jobs = c.get(f"/workflows/{r.json()['id']}").json()["works"][0]["jobs"] if r.is_success else 0
    if (r.status_code, jobs) != (201, 100):
        wrong.append(("two members", r.status_code, jobs))
    # cut off after a flush at a line end: it must not pass for the whole body
    z = zlib.compressobj(wbits=31)
    cut = z.compress(body[:half]) + z.flush(zlib.Z_SYNC_FLUSH)
    r = c.post("/workflows", content=cut, headers=headers)
    if r.status_code != 400:  # a body that cannot be read (tests/api/test_limits.py)
        wrong.append(("truncated", r.status_code, r.text[:80]))
    # bytes after the end of the gzip stream
    r = c.post("/workflows", content=gzip.compress(body) + b"tail", headers=headers)
    if r.status_code != 400:
        wrong.append(("trailing bytes", r.status_code, r.text[:80]))
    assert not wrong, wrong


def test_submit_ndjson_job_line_errors_are_422_with_the_line(api: Api) -> None:
    c = api.client("alice")
    lines = [*job_lines("a", 3), {"work": "nope", "name": "x"}]
    r = c.post(
        "/workflows",
        content=ndjson({"template": from_file_template()}, lines),
        headers={"Content-Type": NDJSON},
    )
    body = assert_error(r, 422)
    assert body["field"].endswith(":4") and body["problems"], body  # jobs.jsonl:4 (the 4th job)
    # invalid JSON in a job line, invalid UTF-8, and a missing job list
    bad = ndjson({"template": from_file_template()}, job_lines("a", 2)) + b'{"work": "a", \n'
    assert_error(c.post("/workflows", content=bad, headers={"Content-Type": NDJSON}), 422)
    utf = ndjson({"template": from_file_template()}, job_lines("a", 2)) + b'{"work": "\xff"}\n'
    assert_error(c.post("/workflows", content=utf, headers={"Content-Type": NDJSON}), 422)
    r = c.post("/workflows", json={"template": from_file_template()})
    assert assert_error(r, 422)["field"] == "jobs_file"
    # nothing was written by the refused submissions
    assert c.get("/workflows").json()["items"] == []


BAD_TEMPLATES: list[tuple[Any, str]] = [
    ({"name": "t", "works": [{"name": "a", "noop": True, "retries": -1}]}, "retries"),
    ({"name": "t"}, "works"),
    ({"name": "t", "works": [{"name": "a", "noop": True, "colour": "red"}]}, "colour"),
    ({"name": "bad name!", "works": [{"name": "a", "noop": True}]}, "name"),
    (
        {"name": "t", "works": [{"name": "a", "noop": True, "after": ["ghost"]}]},
        "after",
    ),
    ("name: t\nworks: [\n", "template"),
    ("name: t\nname: u\nworks: []\n", "template"),
    (  # inside a nested workflow: its own path
        {
            "name": "t",
            "works": [{"name": "n", "workflow": {"works": [{"name": "a", "after": ["x"]}]}}],
        },
        "works[0](n).workflow.works[0](a)",
    ),
]


def test_a_bad_template_is_422_naming_the_field(api: Api) -> None:
    c = api.client("alice")
    for template, where in BAD_TEMPLATES:
        body = assert_error(c.post("/workflows", json={"template": template}), 422)
        assert isinstance(body.get("field"), str), body
        assert where in body["field"], body
        assert body["problems"] and all({"field", "error"} <= set(p) for p in body["problems"])
        assert body["problems"][0]["field"] == body["field"]
    assert c.get("/workflows").json()["items"] == []


def test_unknown_params_are_422(api: Api) -> None:
    r = api.client("alice").post(
        "/workflows", json={"template": noop_template(), "params": {"colour": "red"}}
    )
    assert_error(r, 422, "colour")


def test_submission_errors_name_the_offending_field(api: Api) -> None:
    c = api.client("alice")
    wrong = []
    for body, field in [
        ({"template": noop_template(), "params": {"colour": "red"}}, "params.colour"),
        ({"template": noop_template(), "colour": "red"}, "colour"),
        ({"template": 5}, "template"),
        ({"template": noop_template(), "share_group": "x" * 201}, "share_group"),
    ]:
        got = assert_error(c.post("/workflows", json=body), 422)
        if got.get("field") != field:
            wrong.append((field, got))
    assert not wrong, wrong


def test_a_request_body_over_the_limit_is_413(api: Api) -> None:
    c = api.client("alice")
    big = b'{"template": "' + b"x" * MAX_BODY + b'"}'
    # declared with Content-Length: refused before it is read
    r = c.post("/workflows", content=big, headers={"Content-Type": "application/json"})
    assert_error(r, 413, f"{MAX_BODY:,}")

    # chunked, without a Content-Length: refused while it streams in
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]

    r = c.post("/workflows", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert_error(r, 413)
    # a gzip bomb: small on the wire, too large unpacked
    bomb = gzip.compress(b" " * (8 * MAX_BODY))
    assert len(bomb) < MAX_BODY // 10
    r = c.post(
        "/workflows",
        content=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert_error(r, 413, "unpacked")
    # and as NDJSON
    r = c.post(
        "/workflows",
        content=bomb,
        headers={"Content-Type": NDJSON, "Content-Encoding": "gzip"},
    )
    assert_error(r, 413)
    # a body just under the limit is read (and refused for what it says, not its size)
    ok = b'{"template": "' + b"x" * (MAX_BODY - 100) + b'"}'
    assert_error(c.post("/workflows", content=ok), 422)


BAD_BODIES: list[tuple[dict[str, str], bytes, tuple[str, ...]]] = [
    ({"Content-Type": "text/plain"}, b"{}", ("text/plain",)),
    ({"Content-Type": "application/xml"}, b"<a/>", ("application/xml",)),
    ({"Content-Type": "application/json", "Content-Encoding": "br"}, b"{}", ("br",)),
    ({"Content-Type": "application/json"}, b"{", ()),
    ({"Content-Type": "application/json"}, b"", ()),
    ({"Content-Type": "application/json"}, b"[1, 2]", ()),
    ({"Content-Type": "application/json"}, b"\xff\xfe{}", ()),
    ({"Content-Type": NDJSON}, b"", ()),
    ({"Content-Type": NDJSON}, b"not json\n", ()),
]


@SQLITE_ONLY
def test_unsupported_or_malformed_bodies_are_422(api: Api) -> None:
    """(A gzip body that cannot be unpacked is a 400: tests/api/test_limits.py.)"""
    c = api.client("alice")
    for headers, body, words in BAD_BODIES:
        assert_error(c.post("/workflows", content=body, headers=headers), 422, *words)


@SQLITE_ONLY
def test_the_media_type_is_case_insensitive(api: Api) -> None:
    r = api.client("alice").post(
        "/workflows",
        content=json.dumps({"template": noop_template()}).encode(),
        headers={"Content-Type": "Application/JSON; charset=UTF-8"},
    )
    assert r.status_code == 201, r.text


def test_yaml_values_that_are_not_json_are_text_or_422(api: Api) -> None:
    """YAML has dates, binary and sets, JSON has not: a template holding them is either
    taken with the value as text, or refused (422 naming the field), never a 500."""
    c = api.client("alice")
    wrong = []
    for value in ["2020-01-01", "2020-01-01T10:00:00", "!!binary aGk=", "!!set {a}", "{1: a}"]:
        text = f"name: t\nworks:\n  - name: a\n    noop: true\n    parameters: {{d: {value}}}\n"
        r = c.post("/workflows", json={"template": text})
        if r.status_code == 201:
            continue
        if r.status_code != 422 or not r.json().get("field") or not r.json().get("problems"):
            wrong.append((value, r.status_code, r.text[:100]))
    assert not wrong, wrong
    assert not api.server_errors


def test_non_finite_numbers_in_a_template_are_422(api: Api) -> None:
    c = api.client("alice")
    wrong = []
    for body in [
        b'{"template": "name: t\\nworks:\\n  - name: a\\n    noop: true\\n'
        b'    parameters: {x: .nan}\\n"}',
        b'{"template": "name: t\\nworks:\\n  - name: a\\n    noop: true\\n'
        b'    parameters: {x: -.inf}\\n"}',
        b'{"template": {"name": "t", "works": [{"name": "a", "noop": true, '
        b'"parameters": {"x": NaN}}]}}',
    ]:
        r = c.post("/workflows", content=body, headers={"Content-Type": "application/json"})
        if r.status_code != 422:
            wrong.append((body, r.status_code, r.text[:100]))
    assert not wrong, wrong


def test_deeply_nested_values_are_refused_before_they_are_stored(api: Api) -> None:
    c = api.client("alice")
    wrong = []
    deep = "[" * 300 + "]" * 300
    text = f"name: t\nparameters: {{x: {deep}}}\nworks:\n  - name: a\n    noop: true\n"
    r = c.post("/workflows", json={"template": text})
    if r.status_code != 422:
        wrong.append(("template parameter 300 deep", r.status_code))
    for depth in (300, 1000):
        line = '{"work": "a", "name": "j", "args": {"d": %s}}' % ("[" * depth + "]" * depth)
        head = json.dumps({"template": from_file_template()}).encode()
        body = head + b"\n" + line.encode() + b"\n"
        r = c.post("/workflows", content=body, headers={"Content-Type": NDJSON})
        if r.status_code != 422:
            wrong.append((f"job line {depth} deep", r.status_code))
    for user in ("alice", "bob", "root"):  # one submission must not break the lists
        r = api.client(user).get("/workflows")
        if r.status_code != 200:
            wrong.append((f"GET /workflows as {user}", r.status_code))
    with api.db.engine.connect() as conn:
        stored = [w.id for w in workflows.list_recent(conn)]
    for wf_id in stored:
        for path in (f"/workflows/{wf_id}", f"/workflows/{wf_id}/jobs"):
            r = c.get(path)
            if r.status_code != 200:
                wrong.append((f"GET {path}", r.status_code))
    assert not wrong, (wrong, api.server_errors)


def test_non_finite_params_are_422(api: Api) -> None:
    template = {"name": "t", "parameters": {"x": 1}, "works": [{"name": "a", "noop": True}]}
    body = json.dumps({"template": template, "params": {"x": float("nan")}}).encode()
    r = api.client("alice").post(
        "/workflows", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(r, 422, "NaN")


# --- list and read --------------------------------------------------------------------------


def test_list_filters_and_cursor_pagination(api: Api) -> None:
    ids = [api.submit("alice", noop_template(f"n{i % 2}"))["id"] for i in range(7)]
    other = api.submit("bob", noop_template("n0"))["id"]
    a = api.client("alice")
    pages: list[list[int]] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        r = a.get("/workflows", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        pages.append([w["id"] for w in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    flat = [i for p in pages for i in p]
    assert [len(p) for p in pages][:2] == [3, 3] and all(len(p) <= 3 for p in pages)
    assert flat == sorted(ids, reverse=True)  # disjoint, complete, newest first; bob's unseen
    assert len(set(flat)) == len(flat) and other not in flat
    # filters
    names = a.get("/workflows", params={"name": "n1"}).json()["items"]
    assert sorted(w["id"] for w in names) == sorted(ids[1::2])
    assert a.get("/workflows", params={"owner": "bob"}).json()["items"] == []
    root = api.client("root")
    assert [w["id"] for w in root.get("/workflows", params={"owner": "bob"}).json()["items"]] == [
        other
    ]
    every = root.get("/workflows", params={"name": "n0", "owner": "alice"}).json()["items"]
    assert sorted(w["id"] for w in every) == sorted(ids[0::2])
    pending = a.get("/workflows", params={"status": ["pending", "running"]}).json()["items"]
    assert len(pending) == 7
    assert a.get("/workflows", params={"status": "succeeded"}).json()["items"] == []
    assert a.get("/workflows", params={"since": 0, "limit": 500}).json()["next_cursor"] is None
    future = time.time() + 3600
    assert a.get("/workflows", params={"since": future}).json()["items"] == []
    # bad filter values
    for params in (
        {"status": "bogus"},
        {"limit": 0},
        {"limit": 501},
        {"cursor": "abc"},
        {"cursor": "-1"},
        {"since": -1},
        {"name": "x" * 101},
    ):
        body = assert_error(a.get("/workflows", params=params), 422)
        assert body["field"].startswith("query."), body


def test_a_huge_cursor_is_not_a_server_error(api: Api) -> None:
    wf_id = api.submit("alice")["id"]
    c = api.client("alice")
    got = {
        path: c.get(path, params={"cursor": "9" * 20}).status_code
        for path in ("/workflows", f"/workflows/{wf_id}/jobs")
    }
    assert all(code < 500 for code in got.values()), got


ID_ROUTES = [
    ("GET", "/workflows/{id}"),
    ("GET", "/workflows/{id}/works"),
    ("GET", "/workflows/{id}/jobs"),
    ("GET", "/workflows/{id}/events"),
    ("POST", "/workflows/{id}/abort"),
    ("GET", "/jobs/{id}"),
    ("GET", "/jobs/{id}/logs"),
]


def test_ids_out_of_range_are_4xx(api: Api) -> None:
    c = api.client("root")
    wrong = []
    for method, path in ID_ROUTES:
        for bad in (0, -1, 2**62 + 1, 2**64, "abc"):
            assert_error(c.request(method, path.format(id=bad)), 422)
        for big in (2**31, 3_000_000_000, 2**62):
            r = c.request(method, path.format(id=big))
            if r.status_code not in (404, 422):
                wrong.append((method, path, big, r.status_code))
    assert not wrong, wrong


def test_events_after_a_large_id(api: Api, agents: Agents) -> None:
    wf_id = api.submit("alice")["id"]
    assert api.wait_status(wf_id) == "succeeded"
    c = api.client("alice")
    for bad in (-1, 2**62 + 1, "x"):
        body = assert_error(c.get(f"/workflows/{wf_id}/events", params={"after": bad}), 422)
        assert body["field"] == "query.after"
    assert read_sse(c, wf_id, after=2**40) == [{"event": "end", "data": {}}]


def test_get_workflow_works_and_jobs_as_submitted(api: Api) -> None:
    template = {
        "name": "dag",
        "works": [
            {
                "name": "a",
                "noop": True,
                "jobs": [{"name": "x"}, {"name": "y", "parents": ["x"], "args": {"k": 1}}],
            },
            {"name": "b", "noop": True, "after": ["a"]},
        ],
    }
    wf = api.submit("alice", template)
    c = api.client("alice")
    detail = c.get(f"/workflows/{wf['id']}").json()
    works = {w["name"]: w for w in detail["works"]}
    assert works["a"]["jobs"] == 2 and sum(works["a"]["counts"].values()) == 2
    assert works["a"]["status"] == "waiting" and works["a"]["iteration"] == 0
    assert c.get(f"/workflows/{wf['id']}/works").json() == detail["works"]
    jobs = c.get(f"/workflows/{wf['id']}/jobs").json()
    assert jobs["next_cursor"] is None
    x, y = jobs["items"]
    assert (x["name"], y["name"]) == ("x", "y") and y["args"] == {"k": 1}
    assert x["work"] == "a" and x["workflow_id"] == wf["id"] and x["attempt"] == 0
    got = c.get(f"/jobs/{y['id']}")
    assert got.status_code == 200 and got.json() == y
    assert_error(c.get("/workflows/999999"), 404, "999999")
    assert_error(c.get("/jobs/999999"), 404, "999999")
    assert_error(c.get("/jobs/999999/logs"), 404)
    body = assert_error(c.get(f"/jobs/{x['id']}/logs"), 404, "no log")
    assert "error" in body
    assert_error(c.get(f"/jobs/{x['id']}/logs", params={"stream": "core"}), 422)


# --- actions --------------------------------------------------------------------------------


def test_actions_are_queued_202(api: Api) -> None:
    wf = api.submit("alice")
    ids = set()
    for action in ("abort", "suspend", "resume", "retry", "finish"):
        r = api.client("alice").post(f"/workflows/{wf['id']}/{action}")
        assert r.status_code == 202, r.text
        out = r.json()
        assert out["workflow_id"] == wf["id"] and out["action"] == action
        assert out["status"] == "queued" and isinstance(out["command_id"], int)
        ids.add(out["command_id"])
    assert len(ids) == 5


def test_an_unknown_action_is_422_and_get_is_405(api: Api) -> None:
    wf = api.submit("alice")
    c = api.client("alice")
    body = assert_error(c.post(f"/workflows/{wf['id']}/explode"), 422)
    assert body["field"] == "path.action"
    r = c.get(f"/workflows/{wf['id']}/abort")
    assert r.status_code == 405
    assert_error(c.post("/workflows/424242/abort"), 404)


@LOCAL
def test_abort_cancels_a_running_workflow(api: Api, agents: Agents, tmp_path: Path) -> None:
    template = {
        "name": "long",
        "works": [
            {"name": "a", "command": wait_file_cmd(tmp_path / "never")},
            {"name": "b", "noop": True, "after": ["a"]},
        ],
    }
    wf_id = api.submit("alice", template)["id"]
    c = api.client("alice")
    wait_for("job a running", lambda: job_statuses(c, wf_id) == ["running"])
    assert c.post(f"/workflows/{wf_id}/abort").status_code == 202
    assert api.wait_status(wf_id) == "cancelled"
    ws = works_by_name(c, wf_id)
    assert ws["a"]["status"] == "cancelled" and ws["b"]["status"] == "cancelled"
    wait_for("job a cancelled", lambda: job_statuses(c, wf_id) == ["cancelled"])


@LOCAL
def test_finish_lets_running_jobs_end_and_skips_waiting_works(
    api: Api, agents: Agents, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    template = {
        "name": "fin",
        "works": [
            {"name": "a", "command": wait_file_cmd(gate)},
            {"name": "b", "noop": True, "after": ["a"]},
            {"name": "c", "noop": True, "after": ["b"]},
        ],
    }
    wf_id = api.submit("alice", template)["id"]
    c = api.client("alice")
    wait_for("job a running", lambda: job_statuses(c, wf_id) == ["running"])
    assert c.post(f"/workflows/{wf_id}/finish").status_code == 202
    wait_for(
        "the finish command applied",
        lambda: any(e["kind"] == "command.finish" for e in _events(api, wf_id)),
    )
    assert api.status(wf_id) == "running"  # what runs is left to end
    gate.touch()
    assert api.wait_status(wf_id) == "succeeded"
    ws = works_by_name(c, wf_id)
    assert {n: w["status"] for n, w in ws.items()} == {
        "a": "succeeded",
        "b": "skipped",
        "c": "skipped",
    }


@LOCAL
def test_suspend_then_resume(api: Api, agents: Agents, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    template = {
        "name": "pause",
        "works": [
            {"name": "a", "command": wait_file_cmd(gate)},
            {"name": "b", "noop": True, "after": ["a"]},
        ],
    }
    wf_id = api.submit("bob", template, share_group="physics")["id"]
    alice = api.client("alice")  # a member of the group steers bob's shared workflow
    wait_for("job a running", lambda: job_statuses(alice, wf_id) == ["running"])
    assert alice.post(f"/workflows/{wf_id}/suspend").status_code == 202
    assert api.wait_status(wf_id, "suspended") == "suspended"
    gate.touch()
    wait_for("job a done", lambda: job_statuses(alice, wf_id) == ["succeeded"])
    assert api.status(wf_id) == "suspended"
    assert works_by_name(alice, wf_id)["b"]["status"] == "waiting"  # nothing new starts
    assert alice.post(f"/workflows/{wf_id}/resume").status_code == 202
    assert api.wait_status(wf_id) == "succeeded"
    assert works_by_name(alice, wf_id)["b"]["status"] == "succeeded"


@LOCAL
def test_retry_reruns_the_failed_jobs(api: Api, agents: Agents, tmp_path: Path) -> None:
    marker = tmp_path / "tried"
    code = (
        "import os, sys\n"
        "if os.path.exists(sys.argv[1]): sys.exit(0)\n"
        "open(sys.argv[1], 'w').close()\n"
        "sys.exit(1)\n"
    )
    template = {
        "name": "flaky",
        "works": [{"name": "a", "command": [sys.executable, "-c", code, str(marker)]}],
    }
    wf_id = api.submit("alice", template)["id"]
    assert api.wait_status(wf_id) == "failed"
    c = api.client("alice")
    (job,) = c.get(f"/workflows/{wf_id}/jobs").json()["items"]
    assert job["status"] == "failed" and job["exit_code"] == 1
    assert c.post(f"/workflows/{wf_id}/retry").status_code == 202
    assert api.wait_status(wf_id, "succeeded") == "succeeded"
    (job,) = c.get(f"/workflows/{wf_id}/jobs").json()["items"]
    assert job["status"] == "succeeded" and job["exit_code"] == 0 and job["attempt"] == 2


def _events(api: Api, wf_id: int) -> list[dict[str, Any]]:
    from orchid.store import events

    with api.db.engine.connect() as conn:
        return events.since(conn, wf_id, 0)


# --- jobs pages -----------------------------------------------------------------------------


def test_jobs_pagination_with_a_status_filter(api: Api, agents: Agents) -> None:
    template = from_file_template("pages", works=("a", "b"))
    template["works"][1]["after"] = ["a"]
    template["works"][1]["when"] = "false"  # b is skipped, with its jobs
    body = ndjson({"template": template}, job_lines("a", 250) + job_lines("b", 120, "k"))
    r = api.client("alice").post("/workflows", content=body, headers={"Content-Type": NDJSON})
    assert r.status_code == 201, r.text
    wf_id = r.json()["id"]
    assert api.wait_status(wf_id) == "succeeded"
    c = api.client("alice")

    def pages(limit: int, status: list[str] | None = None) -> list[list[dict[str, Any]]]:
        out: list[list[dict[str, Any]]] = []
        cursor = None
        for _ in range(100):
            params: dict[str, Any] = {"limit": limit}
            if status:
                params["status"] = status
            if cursor:
                params["cursor"] = cursor
            r = c.get(f"/workflows/{wf_id}/jobs", params=params)
            assert r.status_code == 200, r.text
            out.append(r.json()["items"])
            cursor = r.json()["next_cursor"]
            if cursor is None:
                return out
        pytest.fail("the pages never ended")

    every = pages(64)
    ids = [j["id"] for p in every for j in p]
    assert len(ids) == 370 and ids == sorted(set(ids))  # id order, disjoint, complete
    assert all(len(p) == 64 for p in every[:-1])
    done = pages(100, ["succeeded"])
    assert [len(p) for p in done] == [100, 100, 50]
    assert {j["work"] for p in done for j in p} == {"a"}
    skipped = [j for p in pages(50, ["skipped"]) for j in p]
    assert len(skipped) == 120 and {j["work"] for j in skipped} == {"b"}
    both = [j for p in pages(1000, ["skipped", "succeeded"]) for j in p]
    assert [j["id"] for j in both] == ids
    assert pages(10, ["failed"]) == [[]]
    counts = works_by_name(c, wf_id)
    assert counts["a"]["counts"] == {"succeeded": 250} and counts["b"]["status"] == "skipped"


# --- logs -----------------------------------------------------------------------------------

LOG_CODE = (
    "import sys\nfor i in range(800):\n    print('line %05d' % i)\nsys.stderr.write('oops ' * 10)\n"
)
LOG_TEXT = "".join(f"line {i:05d}\n" for i in range(800)).encode()


@LOCAL
def test_logs_of_a_local_job_with_ranges(api: Api, agents: Agents) -> None:
    template = {
        "name": "logs",
        "works": [{"name": "a", "command": [sys.executable, "-c", LOG_CODE]}],
    }
    wf_id = api.submit("alice", template)["id"]
    assert api.wait_status(wf_id) == "succeeded"
    c = api.client("alice")
    (job,) = c.get(f"/workflows/{wf_id}/jobs").json()["items"]
    r = c.get(f"/jobs/{job['id']}/logs")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert r.content == LOG_TEXT and len(LOG_TEXT) > 8000
    r = c.get(f"/jobs/{job['id']}/logs", headers={"Range": "bytes=1100-2199"})
    assert r.status_code == 206, r.text
    assert r.content == LOG_TEXT[1100:2200]
    assert r.headers["content-range"] == f"bytes 1100-2199/{len(LOG_TEXT)}"
    r = c.get(f"/jobs/{job['id']}/logs", headers={"Range": "bytes=-11"})
    assert r.status_code == 206 and r.content == b"line 00799\n"
    r = c.get(f"/jobs/{job['id']}/logs", headers={"Range": f"bytes={len(LOG_TEXT)}-"})
    assert r.status_code == 416
    r = c.get(f"/jobs/{job['id']}/logs", params={"stream": "stderr"})
    assert r.status_code == 200 and r.content == b"oops " * 10
    # others may not read them
    assert api.client("carol").get(f"/jobs/{job['id']}/logs").status_code == 404


WRITER = (
    "import os, sys, time\n"
    "deadline = time.monotonic() + 60\n"
    "i = 0\n"
    "while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:\n"
    "    print('line %08d' % i, flush=True)\n"
    "    i += 1\n"
    "    time.sleep(0.001)\n"
)


def running_job(c: httpx.Client, wf_id: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        items = c.get(f"/workflows/{wf_id}/jobs").json()["items"]
        return items[0] if items and items[0]["status"] == "running" else None

    job: dict[str, Any] = wait_for("a running job", check)
    return job


@LOCAL
def test_the_log_of_a_running_job_can_be_read(api: Api, agents: Agents, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    command = [sys.executable, "-c", WRITER, str(gate)]
    wf_id = api.submit("alice", {"name": "tail", "works": [{"name": "a", "command": command}]})[
        "id"
    ]
    c = api.client("alice")
    job = running_job(c, wf_id)
    try:
        # running, but maybe not printed yet: a range of an empty log is 416 until it has
        def first_line() -> httpx.Response | None:
            r = c.get(f"/jobs/{job['id']}/logs", headers={"Range": "bytes=0-13"})
            assert r.status_code in (206, 416), r.text
            return r if r.status_code == 206 else None

        r = wait_for("the first line in the log", first_line)
        assert r.content == b"line 00000000\n"
    finally:
        gate.touch()
        api.wait_status(wf_id)


@LOCAL
def test_a_log_that_grows_while_it_is_read_is_served_whole(api: Api, agents: Agents) -> None:
    import threading

    from orchid.store import jobs

    command = [sys.executable, "-c", "print('x' * 100)"]
    wf_id = api.submit("alice", {"name": "grow", "works": [{"name": "a", "command": command}]})[
        "id"
    ]
    assert api.wait_status(wf_id) == "succeeded"
    c = api.client("alice")
    (job,) = c.get(f"/workflows/{wf_id}/jobs").json()["items"]
    with api.db.engine.connect() as conn:
        path = Path(jobs.get(conn, job["id"]).log_uri or "")
    stop = threading.Event()

    def grow() -> None:  # what the job's process would do if it were still running
        with path.open("a") as f:
            while not stop.is_set():
                f.write("y" * 100 + "\n")
                f.flush()
                time.sleep(0.0005)

    writer = threading.Thread(target=grow, daemon=True)
    writer.start()
    bad: list[Any] = []
    try:
        for _ in range(10):
            try:
                r = c.get(f"/jobs/{job['id']}/logs", timeout=10)
            except httpx.HTTPError as exc:
                bad.append(repr(exc))
                continue
            if r.status_code != 200 or not r.content.startswith(b"x" * 100 + b"\n"):
                bad.append((r.status_code, r.content[:40]))
    finally:
        stop.set()
        writer.join(10)
    assert not bad, (bad, api.server_errors)
    assert not api.server_errors


# --- events ---------------------------------------------------------------------------------


def test_events_stream_to_the_end_and_resume(api: Api, agents: Agents) -> None:
    wf_id = api.submit("alice", noop_template("ev", works=3))["id"]
    c = api.client("alice")
    events = read_sse(c, wf_id)
    assert events[-1] == {"event": "end", "data": {}}
    body = events[:-1]
    kinds = [e["event"] for e in body]
    assert kinds[0] == "workflow.submitted"
    assert "workflow.running" in kinds and kinds[-1] == "workflow.succeeded"
    assert kinds.index("workflow.running") < kinds.index("workflow.succeeded")
    ids = [e["id"] for e in body]
    assert ids == sorted(set(ids))
    assert all(e["data"]["workflow_id"] == wf_id and "at" in e["data"] for e in body)
    # resume after the third event: exactly the rest, then end again
    again = read_sse(c, wf_id, after=ids[2])
    assert [e.get("id") for e in again[:-1]] == ids[3:] and again[-1]["event"] == "end"
    assert read_sse(c, wf_id, after=ids[-1]) == [{"event": "end", "data": {}}]


# --- system ---------------------------------------------------------------------------------


@SQLITE_ONLY
def test_ping_needs_no_token(api: Api) -> None:
    r = api.client().get("/ping")
    assert r.status_code == 200 and r.json()["ping"] == "pong"
    r = api.client(headers={"Authorization": "Bearer orc_invalid"}).get("/ping")
    assert r.status_code == 200


def test_health_lists_the_running_agents(api: Api, agents: Agents) -> None:
    r = api.client().get("/health")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")

    def listed() -> dict[str, Any] | None:
        r = api.client("carol").get("/health")
        assert r.status_code == 200, r.text
        h: dict[str, Any] = r.json()
        names = [a["name"] for a in h["agents"]]
        return h if agents.runner.name in names else None

    health = listed() or wait_for("the runner listed in /health", listed)
    assert health["database"] == "ok" and health["version"]
    (me,) = [a for a in health["agents"] if a["name"] == agents.runner.name]
    assert "clerk" in me["roles"] and me["host"]


@SQLITE_ONLY
def test_the_openapi_document_describes_every_route(api: Api) -> None:
    r = api.client().get("/openapi.json")
    assert r.status_code == 200
    paths = set(r.json()["paths"])
    assert {
        "/api/v1/ping",
        "/api/v1/health",
        "/api/v1/workflows",
        "/api/v1/workflows/{workflow_id}",
        "/api/v1/workflows/{workflow_id}/{action}",
        "/api/v1/workflows/{workflow_id}/works",
        "/api/v1/workflows/{workflow_id}/jobs",
        "/api/v1/workflows/{workflow_id}/events",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/logs",
    } <= paths


@SQLITE_ONLY
def test_the_openapi_document_describes_errors_and_authentication(api: Api) -> None:
    doc = api.client().get("/openapi.json").json()
    schemas = doc.get("components", {}).get("schemas", {})

    def properties(schema: dict[str, Any]) -> set[str]:
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return set(schema.get("properties", {}))

    wrong: list[str] = []
    if not doc.get("components", {}).get("securitySchemes"):
        wrong.append("no securitySchemes")
    ours = ("/api/v1/workflows", "/api/v1/jobs", "/api/v1/health")
    for path, ops in doc["paths"].items():
        if not path.startswith(ours):
            continue
        for method, op in ops.items():
            responses = op.get("responses", {})
            for code in ("401", "422"):
                schema = responses.get(code, {}).get("content", {}).get("application/json", {})
                if "error" not in properties(schema.get("schema", {})):
                    wrong.append(f"{method.upper()} {path}: {code} is not documented as an error")
    assert not wrong, "\n".join(wrong)


def test_unknown_query_parameters_are_422_naming_them(api: Api) -> None:
    """A misspelt filter must not be ignored (the answer would be everything)."""
    wf_id = api.submit("alice")["id"]
    c = api.client("alice")
    for path in ("/workflows", f"/workflows/{wf_id}/jobs", f"/workflows/{wf_id}"):
        body = assert_error(c.get(path, params={"stauts": "failed"}), 422, "stauts")
        assert body["field"] == "query.stauts"
    assert c.get("/workflows", params={"status": "pending"}).status_code == 200
