"""Who may do what, over HTTP: every role × every route of the application × own and others'
workflows. :data:`ROUTES` has a row for each route, and a test fails when the application has
a route without one, so that a new route cannot skip this matrix.

- no or bad credentials → 401 with a ``WWW-Authenticate: Bearer`` challenge (the monitor's
  pages send the visitor to its login form instead: 303);
- authenticated but not allowed → 403 (no challenge: new credentials would not help);
- a workflow one may not see, and everything in it, is a 404 with exactly the message of one
  that does not exist (ids tell nothing about what others have);
- allowed → 2xx, or 404 for what does not exist.

alice owns two workflows: ``shared`` (shared with group physics) and ``private``. bob is in
physics, carol in no group, root is an admin. ``job`` is the token of a running job of
alice's shared workflow: it acts on that workflow only, on the routes a job needs (and the
cache by digest), and never on the monitor. ``worker`` is a worker's token of queue gpu: it
may use the worker routes and nothing else (and no other caller may use those).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.routing import BaseRoute, Mount
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from orchid.auth import AuthConfig
from orchid.engine.runner import make_runner
from orchid.server import create_app
from orchid.store import tokens
from tests.api.conftest import Api, api_settings, serve, serve_api
from tests.waiting import wait_for

ANONYMOUS = "anonymous"
JOB = "job"  # a job token of alice's shared workflow
WORKER = "worker"  # a worker's token of queue gpu: the worker routes only
MISSING = 987_654  # no workflow, job, study or trial has this id
ACTIONS = ("abort", "suspend", "resume", "retry", "finish")
BLOB = b"the cached bytes"
SHA = hashlib.sha256(BLOB).hexdigest()

SPACE = {"x": {"type": "float", "low": -2.0, "high": 2.0}}
TEMPLATE = {
    "name": "owned",
    "open": True,
    "works": [
        {"name": "a", "noop": True, "jobs": [{"name": "j"}]},
        {"name": "tune", "hpo": {"space": SPACE, "max_trials": 4, "parallel": 2, "mode": "pull"}},
    ],
}


@dataclass(frozen=True)
class Owned:
    """One of alice's workflows and the ids of what is in it."""

    wf: int
    job: int
    study: int
    trial: int


@dataclass(frozen=True)
class Setup:
    shared: Owned
    private: Owned
    job_token: str
    worker_token: str


@pytest.fixture
def api(db: Any, tmp_path: Any) -> Iterator[Api]:
    """The conftest's server, with a worker queue ``gpu`` in its settings file."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text('[executors.gpu]\ntype = "worker"\n')
    with serve_api(api_settings(db, home), db) as a:
        yield a


def run_agents_until(api: Api, done: Any) -> None:
    """The agents in a thread until ``done()`` (bounded), then stopped: what follows sees
    workflows that stand still."""
    runner = make_runner(api.settings, api.db)
    executor = runner.executor
    stop = threading.Event()
    thread = threading.Thread(target=lambda: runner.run(until=stop.is_set, check_every=0.05))
    thread.start()
    try:
        wait_for("the agents to set up the workflows", done)
    finally:
        stop.set()
        runner.stop()
        thread.join(15)
        executor.close()
        runner.close()


def setup(api: Api) -> Setup:
    shared = api.submit("alice", TEMPLATE, share_group="physics")["id"]
    private = api.submit("alice", TEMPLATE)["id"]
    job_token = api.job_token(shared)  # its job runs (for the null executor: forever)
    alice = api.client("alice")

    def studies_ready() -> bool:
        for wf in (shared, private):
            found = alice.get(f"/workflows/{wf}/studies").json()
            if not found or not found[0]["summary"].get("waiting"):
                return False
        return True

    run_agents_until(api, studies_ready)
    owned = {}
    for wf in (shared, private):
        job = alice.get(f"/workflows/{wf}/jobs").json()["items"][0]["id"]
        study = alice.get(f"/workflows/{wf}/studies").json()[0]["id"]
        r = alice.post(f"/studies/{study}/next", json={"n": 1})
        assert r.status_code == 200 and r.json()["trials"], r.text
        owned[wf] = Owned(wf, job, study, r.json()["trials"][0]["id"])
    with api.db.begin() as conn:
        _, worker_token = tokens.create(
            conn, user="pilot", admin=False, groups=[], now=time.time(), worker_queue="gpu"
        )
    return Setup(owned[shared], owned[private], job_token, worker_token)


@dataclass(frozen=True)
class Row:
    """How to call one route, and what it answers when allowed.

    ``scope``: ``public`` (no credentials needed), ``user`` (anyone signed in),
    ``workflow`` (those who may see the workflow in the path, or the one it belongs to),
    ``metrics`` (admins and the metrics group), ``worker`` (workers' tokens only), ``admin``
    (admins only). ``job``: open to a job's token (on its own
    workflow only, for ``workflow`` rows). ``ui``: a monitor page (anonymous visitors are
    sent to the login form; job tokens are refused).
    """

    path: str  # formatted with the ids of an Owned, {sha} and {action}
    ok: frozenset[int]
    scope: str = "workflow"
    job: bool = False
    ui: bool = False
    json: Any = None
    content: bytes | None = None
    stream: bool = False
    ws: bool = False  # a WebSocket: its handshake is the call (101 when accepted)
    by_role: dict[str, frozenset[int]] = field(default_factory=dict)


def ok(*codes: int) -> frozenset[int]:
    return frozenset(codes)


A = "/api/v1"
IDDS_HPO = {
    "request_type": 4,
    "request_metadata": {"opt_space": {"x": [0.0, 1.0]}, "max_points": 2},
}
# what ClientManager.submit_work posts: a work to add to the (open) workflow
IDDS_WORK = {
    "name": "added",
    "transform_metadata": {
        "work": {
            "class": "Work",
            "module": "idds.workflowv2.work",
            "attributes": {"internal_id": "w1", "executable": "true"},
        }
    },
}
IDDS_GET = ("request_id", "workload_id", "with_detail", "with_metadata", "with_transform",
            "with_processing")  # fmt: skip
# every route of the application: (method, path template) → its row, in the order called
ROUTES: dict[tuple[str, str], Row] = {
    ("GET", f"{A}/openapi.json"): Row(f"{A}/openapi.json", ok(200), "public"),
    ("GET", f"{A}/docs"): Row(f"{A}/docs", ok(200), "public"),
    ("GET", "/docs/oauth2-redirect"): Row("/docs/oauth2-redirect", ok(200), "public"),
    ("GET", f"{A}/ping"): Row(f"{A}/ping", ok(200), "public"),
    ("GET", f"{A}/health"): Row(f"{A}/health", ok(200), "user"),
    ("GET", f"{A}/whoami"): Row(f"{A}/whoami", ok(200), "user", job=True),
    ("GET", "/metrics"): Row("/metrics", ok(200), "metrics"),
    ("POST", f"{A}/workflows"): Row(
        f"{A}/workflows",
        ok(201),
        "user",
        json={"template": {"name": "x", "works": [{"name": "a", "noop": True}]}},
    ),
    ("GET", f"{A}/workflows"): Row(f"{A}/workflows", ok(200), "user"),
    # the cache: by digest for jobs too (PUT before reading it, DELETE last)
    ("PUT", f"{A}/cache/{{sha256}}"): Row(
        f"{A}/cache/{{sha}}", ok(200, 201), "user", job=True, content=BLOB
    ),
    ("HEAD", f"{A}/cache/{{sha256}}"): Row(f"{A}/cache/{{sha}}", ok(200), "user", job=True),
    ("GET", f"{A}/cache/{{sha256}}"): Row(f"{A}/cache/{{sha}}", ok(200), "user", job=True),
    ("GET", f"{A}/cache"): Row(f"{A}/cache", ok(200), "user"),
    ("DELETE", f"{A}/cache/{{sha256}}"): Row(f"{A}/cache/{{sha}}", ok(204), "user"),
    # one workflow and what is in it
    ("GET", f"{A}/workflows/{{workflow_id}}"): Row(f"{A}/workflows/{{wf}}", ok(200), job=True),
    ("GET", f"{A}/workflows/{{workflow_id}}/works"): Row(
        f"{A}/workflows/{{wf}}/works", ok(200), job=True
    ),
    ("GET", f"{A}/workflows/{{workflow_id}}/jobs"): Row(
        f"{A}/workflows/{{wf}}/jobs", ok(200), job=True
    ),
    ("GET", f"{A}/workflows/{{workflow_id}}/events"): Row(
        f"{A}/workflows/{{wf}}/events", ok(200), job=True, stream=True
    ),
    ("GET", f"{A}/workflows/{{workflow_id}}/graph"): Row(
        f"{A}/workflows/{{wf}}/graph", ok(200), job=True
    ),
    ("GET", f"{A}/workflows/{{workflow_id}}/collections"): Row(
        f"{A}/workflows/{{wf}}/collections", ok(200), job=True
    ),
    ("GET", f"{A}/workflows/{{workflow_id}}/collections/{{collection_id}}/files"): Row(
        f"{A}/workflows/{{wf}}/collections/{MISSING}/files", ok(404), job=True
    ),
    ("GET", f"{A}/jobs/{{job_id}}"): Row(f"{A}/jobs/{{job}}", ok(200), job=True),
    ("GET", f"{A}/jobs/{{job_id}}/logs"): Row(
        f"{A}/jobs/{{job}}/logs",
        ok(404),
        job=True,  # allowed, but the null executor logs nothing
    ),
    ("POST", f"{A}/workflows/{{workflow_id}}/messages"): Row(
        f"{A}/workflows/{{wf}}/messages", ok(201), job=True, json={"kind": "note", "body": 1}
    ),
    ("GET", f"{A}/workflows/{{workflow_id}}/messages"): Row(
        f"{A}/workflows/{{wf}}/messages", ok(200), job=True
    ),
    ("POST", f"{A}/workflows/{{workflow_id}}/works"): Row(
        f"{A}/workflows/{{wf}}/works",
        ok(200, 201),
        job=True,
        json={"work": {"name": "added", "noop": True}},
    ),
    ("GET", f"{A}/workflows/{{workflow_id}}/studies"): Row(
        f"{A}/workflows/{{wf}}/studies", ok(200), job=True
    ),
    ("GET", f"{A}/studies/{{study_id}}"): Row(f"{A}/studies/{{study}}", ok(200), job=True),
    ("GET", f"{A}/studies/{{study_id}}/trials"): Row(
        f"{A}/studies/{{study}}/trials", ok(200), job=True
    ),
    ("POST", f"{A}/studies/{{study_id}}/next"): Row(
        f"{A}/studies/{{study}}/next", ok(200), job=True, json={"n": 1}
    ),
    ("POST", f"{A}/trials/{{trial_id}}/report"): Row(
        f"{A}/trials/{{trial}}/report", ok(200), job=True, json={"step": 1, "value": 0.5}
    ),
    ("POST", f"{A}/jobs/{{job_id}}/report"): Row(
        f"{A}/jobs/{{job}}/report",
        ok(404),  # allowed, but this job is no trial: as for one that does not exist
        job=True,
        json={"step": 1, "value": 0.5},
    ),
    # the iDDS client's surface (src/orchid/api/routes/idds.py): job tokens are refused
    ("GET", "/idds/ping"): Row("/idds/ping", ok(200), "public"),
    ("POST", "/idds/request"): Row("/idds/request", ok(200), "user", json=IDDS_HPO),
    **{
        ("GET", "/idds/request/" + "/".join(f"{{{p}}}" for p in IDDS_GET[:n])): Row(
            "/idds/request/{wf}/null/" + "/".join(["True"] * (n - 2)), ok(200)
        )
        for n in range(3, 7)
    },
    ("GET", "/idds/request/name/{name}"): Row(
        "/idds/request/name/owned", ok(200), "user", by_role={"carol": ok(404)}
    ),
    ("GET", "/idds/transform/{request_id}"): Row("/idds/transform/{wf}", ok(200)),
    ("GET", "/idds/transform/{request_id}/{transform_id}"): Row(
        f"/idds/transform/{{wf}}/{MISSING}", ok(404)
    ),
    ("GET", "/idds/hpo/{workload_id}/{request_id}/{id}/{status}/{limit}"): Row(
        "/idds/hpo/null/{wf}/null/null/null", ok(200)
    ),
    ("PUT", "/idds/hpo/{workload_id}/{request_id}/{id}/{loss}"): Row(
        "/idds/hpo/null/{wf}/{trial}/0.25", ok(200)
    ),
    (
        "GET",
        "/idds/catalog/collections/{request_id}/{transform_id}/{workload_id}/{scope}/{name}"
        "/{relation_type}",
    ): Row("/idds/catalog/collections/{wf}/null/null/null/null/null", ok(200)),
    (
        "GET",
        "/idds/catalog/contents/{request_id}/{transform_id}/{workload_id}/{coll_scope}"
        "/{coll_name}/{relation_type}/{status}",
    ): Row("/idds/catalog/contents/{wf}/null/null/null/null/null/null", ok(200)),
    ("POST", "/idds/message/{request_id}/{workload_id}/{transform_id}/{internal_id}"): Row(
        "/idds/message/{wf}/null/null/null", ok(200), json=[{"n": 1}]
    ),
    ("GET", "/idds/message/{request_id}/{workload_id}/{transform_id}/{internal_id}"): Row(
        "/idds/message/{wf}/null/null/null", ok(200)
    ),
    # before the close rows: it adds to the open workflow (the same work again: 200 too)
    ("POST", "/idds/transform/{request_id}"): Row("/idds/transform/{wf}", ok(200), json=IDDS_WORK),
    ("GET", "/idds/logs/{workload_id}/{request_id}"): Row(
        "/idds/logs/null/{wf}",
        ok(404),  # allowed, but the null executor logs nothing
    ),
    ("PUT", "/idds/request/abort/{request_id}/{workload_id}/{task_id}"): Row(
        "/idds/request/abort/{wf}/null/1",
        ok(400),  # not supported: a clear 400
    ),
    ("PUT", "/idds/request/retry/{request_id}/{workload_id}"): Row(
        "/idds/request/retry/{wf}/null", ok(200)
    ),
    ("PUT", "/idds/request/close/{request_id}/{workload_id}"): Row(
        "/idds/request/close/{wf}/null", ok(200)
    ),
    ("PUT", "/idds/request/abort/{request_id}/{workload_id}"): Row(
        "/idds/request/abort/{wf}/null", ok(200)
    ),
    **{
        (method, "/idds/{rest:path}"): Row("/idds/cacher/notes.txt", ok(400), "user")
        for method in ("GET", "POST", "PUT", "DELETE")
    },
    ("POST", f"{A}/workflows/{{workflow_id}}/{{action}}"): Row(
        f"{A}/workflows/{{wf}}/{{action}}", ok(202), job=True
    ),
    ("POST", f"{A}/workflows/{{workflow_id}}/close"): Row(
        f"{A}/workflows/{{wf}}/close", ok(200), job=True, json={}
    ),
    # the monitor (credentials in an Authorization header, which needs no CSRF token)
    ("GET", "/ui/login"): Row("/ui/login", ok(200), "public"),
    ("POST", "/ui/login"): Row(
        "/ui/login",
        ok(303),
        "public",
        # no token; a job's or a worker's token is refused
        by_role={ANONYMOUS: ok(401), JOB: ok(401), WORKER: ok(401)},
    ),
    ("GET", "/ui/oidc/start"): Row("/ui/oidc/start", ok(502), "public"),  # OIDC is off
    ("GET", "/ui/oidc/callback"): Row("/ui/oidc/callback", ok(502), "public"),
    ("GET", "/ui/static"): Row("/ui/static/orchid.css", ok(200), "public"),
    ("GET", "/ui/"): Row("/ui/", ok(200), "user", ui=True),
    ("GET", "/ui/live/workflows"): Row("/ui/live/workflows", ok(200), "user", ui=True, stream=True),
    ("GET", "/ui/workflows/{workflow_id}"): Row("/ui/workflows/{wf}", ok(200), ui=True),
    ("GET", "/ui/workflows/{workflow_id}/jobs"): Row("/ui/workflows/{wf}/jobs", ok(200), ui=True),
    ("GET", "/ui/workflows/{workflow_id}/data"): Row("/ui/workflows/{wf}/data", ok(200), ui=True),
    ("GET", "/ui/workflows/{workflow_id}/graph.svg"): Row(
        "/ui/workflows/{wf}/graph.svg", ok(200), ui=True
    ),
    ("GET", "/ui/workflows/{workflow_id}/live"): Row(
        "/ui/workflows/{wf}/live", ok(200), ui=True, stream=True
    ),
    ("GET", "/ui/jobs/{job_id}"): Row("/ui/jobs/{job}", ok(200), ui=True),
    ("GET", "/ui/jobs/{job_id}/log"): Row("/ui/jobs/{job}/log", ok(404), ui=True),
    ("GET", "/ui/studies/{study_id}"): Row("/ui/studies/{study}", ok(200), ui=True),
    ("GET", "/ui/studies/{study_id}/charts"): Row("/ui/studies/{study}/charts", ok(200), ui=True),
    ("POST", "/ui/workflows/{workflow_id}/actions/{action}"): Row(
        "/ui/workflows/{wf}/actions/{action}", ok(303), ui=True
    ),
    ("POST", "/ui/logout"): Row("/ui/logout", ok(303), "user", ui=True),
    # Orchid workers: a worker's token, and nothing else
    ("POST", f"{A}/workers/lease"): Row(
        f"{A}/workers/lease", ok(200), "worker", json={"worker": "m", "max": 1}
    ),
    ("POST", f"{A}/workers/renew"): Row(
        f"{A}/workers/renew", ok(200), "worker", json={"worker": "m", "jobs": []}
    ),
    ("POST", f"{A}/workers/report"): Row(
        f"{A}/workers/report", ok(200), "worker", json={"worker": "m", "updates": []}
    ),
    ("GET", f"{A}/workers/channel"): Row(f"{A}/workers/channel", ok(101), "worker", ws=True),
    ("POST", f"{A}/workers/release"): Row(
        f"{A}/workers/release", ok(200), "worker", json={"worker": "m"}
    ),
    # limits and fair share: admins only
    ("GET", f"{A}/quotas"): Row(f"{A}/quotas", ok(200), "admin"),
    ("PUT", f"{A}/quotas"): Row(
        f"{A}/quotas",
        ok(200),
        "admin",
        json={"kind": "user", "subject": "zed", "quota": "running", "value": 5},
    ),
    ("DELETE", f"{A}/quotas"): Row(
        f"{A}/quotas?kind=user&subject=zed&quota=running", ok(204), "admin"
    ),
}

# which of alice's workflows each role may see and act on
MAY: dict[str, set[str]] = {
    ANONYMOUS: set(),
    "alice": {"shared", "private"},
    "bob": {"shared"},
    "carol": set(),
    "root": {"shared", "private"},
    JOB: {"shared"},
    WORKER: set(),
}


def expected(row: Row, role: str, visible: bool) -> frozenset[int]:
    if role in row.by_role:
        return row.by_role[role]
    if row.scope == "public":
        return row.ok
    if role == ANONYMOUS:
        return ok(303) if row.ui else ok(401)
    if (row.scope == "worker") != (role == WORKER):  # a worker's token: its routes only
        return ok(403)
    if role == JOB and (row.ui or not row.job):
        return ok(403)
    if row.scope in ("metrics", "admin"):
        return row.ok if role == "root" else ok(403)
    if row.scope == "workflow" and not visible:
        return ok(404)
    return row.ok


def requests(row: Row, owned: Owned) -> Iterator[str]:
    ids = {"wf": owned.wf, "job": owned.job, "study": owned.study, "trial": owned.trial}
    for action in ACTIONS if "{action}" in row.path else ("",):
        yield row.path.format(**ids, sha=SHA, action=action)


def call(c: httpx.Client, method: str, path: str, row: Row, role: str) -> httpx.Response:
    """A request; an event stream is only opened (its status and headers read), then closed."""
    kw: dict[str, Any] = {}
    if row.json is not None:
        kw["json"] = row.json
    if row.content is not None:
        kw["content"] = row.content
    if path == "/ui/login" and method == "POST":
        token = c.headers.get("authorization", "").removeprefix("Bearer ")
        kw["data"] = {"token": token}
        c = httpx.Client(base_url=str(c.base_url), timeout=30)  # the form, not the header
    if path == "/ui/live/workflows":
        kw["params"] = {"ids": "1"}
    if row.ws:
        return handshake(c, path)
    if row.stream:
        with c.stream(method, path, **kw) as r:
            if r.status_code != 200:
                r.read()
            return r
    return c.request(method, path, **kw)


def handshake(c: httpx.Client, path: str) -> httpx.Response:
    """A WebSocket's handshake with the client's credentials, as a response: 101 if the
    server accepted it, else its refusal (status, headers, body)."""
    url = str(c.base_url).replace("http", "ws", 1).rstrip("/") + path
    request = httpx.Request("GET", str(c.base_url).rstrip("/") + path)
    auth = {k: v for k, v in c.headers.items() if k.lower() == "authorization"}
    try:
        with ws_connect(url, additional_headers=auth, open_timeout=30):
            return httpx.Response(101, request=request)
    except InvalidStatus as exc:
        refusal = exc.response
        headers = {k: v for k, v in refusal.headers.raw_items()}
        r = httpx.Response(
            refusal.status_code,
            headers=headers,
            content=bytes(refusal.body or b""),
            request=request,
        )
        r.read()
        return r


def error_of(r: httpx.Response, *ids: int) -> str:
    """The error message of a JSON answer, with ids made anonymous."""
    text = str(r.json().get("error", ""))
    for i in ids:
        text = re.sub(rf"\b{i}\b", "N", text)
    return text


def client_of(api: Api, role: str, s: Setup) -> httpx.Client:
    root = api.base_url.removesuffix("/api/v1")
    headers = {}
    if role == JOB:
        headers["Authorization"] = f"Bearer {s.job_token}"
    elif role == WORKER:
        headers["Authorization"] = f"Bearer {s.worker_token}"
    elif role != ANONYMOUS:
        headers["Authorization"] = f"Bearer {api.tokens[role]}"
    c = httpx.Client(base_url=root, headers=headers, timeout=30)
    api._clients.append(c)  # closed at teardown
    return c


@pytest.mark.parametrize("role", list(MAY))
def test_the_authorization_matrix(api: Api, role: str) -> None:
    s = setup(api)
    c = client_of(api, role, s)
    wrong: list[str] = []
    for (method, _), row in ROUTES.items():
        targets = [("shared", s.shared), ("private", s.private)]
        if row.scope != "workflow":
            targets = targets[:1]
        for label, owned in targets:
            visible = label in MAY[role]
            want = expected(row, role, visible)
            for path in requests(row, owned):
                r = call(c, method, path, row, role)
                where = f"{role} {method} {path} ({label})"
                if r.status_code not in want:
                    wrong.append(f"{where}: {r.status_code} not in {sorted(want)}: {r.text[:200]}")
                    continue
                check_answer(r, where, wrong, path.startswith(A))
                if row.scope == "workflow" and not visible and r.status_code == 404:
                    check_same_as_missing(c, method, path, row, role, owned, where, wrong)
    assert not api.server_errors
    assert not wrong, "\n".join(wrong)


def check_answer(r: httpx.Response, where: str, wrong: list[str], api_route: bool) -> None:
    challenge = r.headers.get("www-authenticate", "")
    if r.status_code == 401 and api_route and not challenge.startswith("Bearer "):
        wrong.append(f"{where}: 401 without a Bearer challenge")
    if r.status_code == 403 and challenge:
        wrong.append(f"{where}: 403 with a challenge {challenge!r}")
    if r.status_code >= 400 and api_route and r.request.method != "HEAD":
        body = r.json()
        if not (isinstance(body.get("error"), str) and body["error"]):
            wrong.append(f"{where}: error body {body!r}")


def check_same_as_missing(
    c: httpx.Client,
    method: str,
    path: str,
    row: Row,
    role: str,
    owned: Owned,
    where: str,
    wrong: list[str],
) -> None:
    """A hidden resource answers exactly as one that does not exist."""
    gone = Owned(MISSING, MISSING, MISSING, MISSING)
    action = path.rsplit("/", 1)[-1] if "{action}" in row.path else ""
    missing = row.path.format(wf=MISSING, job=MISSING, study=MISSING, trial=MISSING, action=action)
    r = call(c, method, missing, row, role)
    if r.status_code != 404:
        wrong.append(f"{where}: a missing one is {r.status_code}, not 404")
    elif path.startswith(A):
        ids = (owned.wf, owned.job, owned.study, owned.trial)
        if error_of(r, *vars(gone).values()) != error_of(call(c, method, path, row, role), *ids):
            wrong.append(f"{where}: {r.json()['error']!r} tells hidden from missing")


# --- every route has a row --------------------------------------------------------------------


def _routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    try:  # FastAPI 0.16x includes routers lazily: walk their contexts
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routers are flattened into APIRoutes
        contexts = [(r, getattr(r, "path", "")) for r in routes]
    else:
        contexts = [(rc.original_route, rc.path or "") for rc in iter_route_contexts(routes)]
    for route, path in contexts:
        if isinstance(route, Mount):
            inner = getattr(route, "routes", None)
            if inner:
                yield from _routes(list(inner), prefix + route.path)
            else:  # static files
                yield "GET", prefix + route.path
            continue
        methods = set(getattr(route, "methods", None) or {"GET"})
        if "GET" in methods:
            methods.discard("HEAD")  # answered for every GET route
        for method in methods:
            yield method, prefix + path


def test_every_route_has_a_row(api: Api) -> None:
    app = create_app(api.settings, AuthConfig(), db=api.db)
    routes = set(_routes(list(app.routes)))
    assert routes == set(ROUTES), (
        f"routes without a row: {sorted(routes - set(ROUTES))}; "
        f"rows without a route: {sorted(set(ROUTES) - routes)}"
    )


# --- lists ----------------------------------------------------------------------------------

SIMPLE = {"name": "owned", "works": [{"name": "a", "noop": True, "jobs": [{"name": "j"}]}]}


@pytest.mark.parametrize("role", [r for r in MAY if r not in (JOB, WORKER)])
def test_lists_show_exactly_what_each_role_may_see(api: Api, role: str) -> None:
    shared = api.submit("alice", SIMPLE, share_group="physics")["id"]
    private = api.submit("alice", SIMPLE)["id"]
    mine = {"shared": shared, "private": private}
    bobs = api.submit("bob")["id"]
    carols = api.submit("carol", share_group=None)["id"]
    c = api.client(None if role == ANONYMOUS else role)
    r = c.get("/workflows")
    if role == ANONYMOUS:
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer ")
        return
    assert r.status_code == 200, r.text
    seen = {w["id"] for w in r.json()["items"]}
    expected = {mine[label] for label in MAY[role]}
    expected |= {"bob": {bobs}, "carol": {carols}, "root": {bobs, carols}}.get(role, set())
    assert seen == expected
    # an owner filter cannot widen what one sees
    r = c.get("/workflows", params={"owner": "alice"})
    assert {w["id"] for w in r.json()["items"]} == {mine[label] for label in MAY[role]}


def test_a_job_token_lists_submits_and_deletes_nothing(api: Api) -> None:
    """The finding: from a job, GET /workflows listed all of the owner's workflows (and the
    monitor too), POST /workflows made one, and DELETE /cache/<sha> answered 204."""
    wf = api.submit("alice", SIMPLE)["id"]
    other = api.submit("alice", SIMPLE)["id"]
    assert api.client("alice").put(f"/cache/{SHA}", content=BLOB).status_code == 201
    job = api.client(headers={"Authorization": f"Bearer {api.job_token(wf)}"})
    for method, path, body in (
        ("GET", "/workflows", None),
        ("POST", "/workflows", {"template": SIMPLE}),
        ("DELETE", f"/cache/{SHA}", None),
        ("GET", "/cache", None),
    ):
        r = job.request(method, path, json=body)
        assert r.status_code == 403, (method, path, r.text)
        assert f"acts on its own workflow ({wf}) only" in r.json()["error"]
    assert job.get(f"/workflows/{other}").status_code == 404
    assert job.get(f"/workflows/{wf}").status_code == 200
    assert job.get(f"/cache/{SHA}").content == BLOB  # what its jobs name, by digest
    root = api.base_url.removesuffix("/api/v1")
    assert job.get(f"{root}/ui/").status_code == 403
    assert [w["id"] for w in api.client("alice").get("/workflows").json()["items"]] == [other, wf]
    assert api.client("alice").head(f"/cache/{SHA}").status_code == 200


def test_group_members_see_and_steer_shared_workflows_with_agents_off(api: Api) -> None:
    shared = api.submit("alice", SIMPLE, share_group="physics")["id"]
    private = api.submit("alice", SIMPLE)["id"]
    bob = api.client("bob")
    r = bob.get(f"/workflows/{shared}")
    assert r.status_code == 200 and r.json()["share_group"] == "physics"
    assert r.json()["owner"] == "alice"
    assert bob.post(f"/workflows/{shared}/abort").status_code == 202
    r = bob.get(f"/workflows/{private}")
    assert r.status_code == 404 and r.json()["error"] == f"no workflow {private}"


# --- credentials ----------------------------------------------------------------------------


def assert_401(r: httpx.Response, reason: str) -> None:
    assert r.status_code == 401, r.text
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="orchid"'), challenge
    assert 'error="invalid_token"' in challenge and reason in challenge, challenge
    assert r.json()["error"]


BAD_AUTH: list[tuple[dict[str, str], str]] = [
    ({"Authorization": "Bearer orc_" + "A" * 43}, "unknown or revoked token"),
    ({"Authorization": "Bearer orc_"}, "unknown or revoked token"),
    ({"Authorization": "Bearer " + "x" * 20_000}, "malformed token"),
    ({"Authorization": "Bearer"}, "malformed Authorization header"),
    ({"Authorization": "Basic YWxpY2U6cHc="}, "unsupported authorization scheme"),
    ({"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig"}, "OIDC is not configured"),
]


def test_missing_invalid_and_malformed_credentials_are_401(api: Api) -> None:
    wf = api.submit("alice")["id"]
    for path in ("/workflows", f"/workflows/{wf}", "/health"):
        r = api.client().get(path)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith('Bearer realm="orchid"')
        for headers, reason in BAD_AUTH:
            assert_401(api.client(headers=headers).get(path), reason)
    # ping needs no credentials and ignores bad ones (load balancers send none)
    for headers, _ in BAD_AUTH:
        assert api.client(headers=headers).get("/ping").status_code == 200


def test_a_revoked_token_is_401(api: Api) -> None:
    bob = api.client("bob")
    assert bob.get("/workflows").status_code == 200
    with api.db.begin() as conn:
        assert tokens.revoke(conn, api.token_ids["bob"], time.time())
    assert_401(bob.get("/workflows"), "unknown or revoked token")
    assert api.client("alice").get("/workflows").status_code == 200  # others still work


def test_a_job_token_ends_with_its_attempt(api: Api) -> None:
    wf = api.submit("alice", SIMPLE)["id"]
    token = api.job_token(wf)
    job = api.client(headers={"Authorization": f"Bearer {token}"})
    assert job.get(f"/workflows/{wf}").status_code == 200
    api.end_job(token)
    assert_401(job.get(f"/workflows/{wf}"), "unknown or revoked token")


def test_a_new_token_works_at_once(api: Api) -> None:
    with api.db.begin() as conn:
        _, token = tokens.create(conn, user="dave", admin=False, groups=["physics"], now=0.0)
    dave = api.client(headers={"Authorization": f"Bearer {token}"})
    shared = api.submit("alice", SIMPLE, share_group="physics")["id"]
    private = api.submit("alice", SIMPLE)["id"]
    assert dave.get(f"/workflows/{shared}").status_code == 200
    assert dave.get(f"/workflows/{private}").status_code == 404


@pytest.mark.parametrize(
    "dn", ["CN=alice,O=Lab,C=CH", "/C=CH/O=Lab/CN=root", "CN=root", "not a dn"]
)
def test_an_x509_dn_from_an_untrusted_client_is_403(api: Api, dn: str) -> None:
    shared = api.submit("alice", SIMPLE, share_group="physics")["id"]
    private = api.submit("alice", SIMPLE)["id"]
    for headers in ({"X-SSL-Client-DN": dn}, {"x-ssl-client-dn": dn}):
        c = api.client(headers=headers)
        for path in (f"/workflows/{shared}", f"/workflows/{shared}/works", "/workflows"):
            r = c.get(path)
            assert r.status_code == 403, (path, r.text)
            assert "trusted proxy" in r.json()["error"]
            assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        # a valid token does not make an untrusted DN header acceptable
        r = api.client("alice", headers=headers).get(f"/workflows/{private}")
        assert r.status_code == 403
    # an empty DN header means "no certificate": the token decides
    r = api.client("alice", headers={"X-SSL-Client-DN": ""}).get(f"/workflows/{private}")
    assert r.status_code == 200


@pytest.mark.parametrize("proxies", [("10.9.9.9",), ("127.0.0.1",)])
def test_x_forwarded_for_cannot_make_a_caller_a_trusted_proxy(
    api: Api, proxies: tuple[str, ...]
) -> None:
    """The spoofing case: from this host, the DN header with ``X-Forwarded-For`` naming a
    trusted proxy. Only the connection's own address counts; a proxy that is trusted may
    forward its client's address without losing its trust. (The same through a real
    ``orchid server``: tests/cli/test_service.py.)"""
    app = create_app(api.settings, AuthConfig(trusted_proxies=proxies), db=api.db)
    server, thread, port = serve(app)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/whoami"
        for forwarded in ("10.9.9.9", "203.0.113.7", "203.0.113.7, 10.9.9.9"):
            headers = {"X-SSL-Client-DN": "/C=CH/O=Lab/CN=admin", "X-Forwarded-For": forwarded}
            r = httpx.get(url, headers=headers)
            if proxies == ("127.0.0.1",):  # this host is the proxy: the DN counts, whole
                assert r.status_code == 200 and r.json()["user"] == "/C=CH/O=Lab/CN=admin"
            else:
                assert r.status_code == 403 and "trusted proxy" in r.json()["error"], r.text
    finally:
        server.should_exit = True
        thread.join(10)


def test_sharing_needs_membership_of_the_group(api: Api) -> None:
    def share(user: str, group: str | None) -> httpx.Response:
        body: dict[str, Any] = {"template": SIMPLE, "share_group": group}
        return api.client(user).post("/workflows", json=body)

    r = share("carol", "physics")
    assert r.status_code == 403 and "physics" in r.json()["error"]
    assert "www-authenticate" not in r.headers
    assert share("alice", "chemistry").status_code == 403
    assert share("alice", "").status_code == 403
    assert share("alice", "physics").status_code == 201
    assert share("alice", None).status_code == 201
    r = share("root", "chemistry")  # admins may share with any group
    assert r.status_code == 201 and r.json()["share_group"] == "chemistry"
    # nothing was written by the refused submissions
    owners = [w["owner"] for w in api.client("root").get("/workflows").json()["items"]]
    assert sorted(owners) == ["alice", "alice", "root"]
