"""Who may do what, over HTTP: every role × every endpoint × own and others' workflows.

- no or bad credentials → 401 with a ``WWW-Authenticate: Bearer`` challenge;
- authenticated but not allowed → 403 (no challenge: new credentials would not help);
- allowed → 200/202, or 404 for what does not exist.

alice owns two workflows: ``shared`` (shared with group physics) and ``private``. bob is in
physics, carol in no group, root is an admin.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from orchid.store import tokens
from tests.api.conftest import Api

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Setup:
    shared: int
    private: int
    jobs: dict[int, int]  # workflow → one of its jobs


TEMPLATE = {"name": "owned", "works": [{"name": "a", "noop": True, "jobs": [{"name": "j"}]}]}


def setup(api: Api) -> Setup:
    shared = api.submit("alice", TEMPLATE, share_group="physics")["id"]
    private = api.submit("alice", TEMPLATE)["id"]
    c = api.client("alice")
    jobs = {wf: c.get(f"/workflows/{wf}/jobs").json()["items"][0]["id"] for wf in (shared, private)}
    return Setup(shared, private, jobs)


def endpoints(wf: int, job: int) -> list[tuple[str, str, int]]:
    """(method, path, status when allowed) for everything one can do to a workflow."""
    return [
        ("GET", f"/workflows/{wf}", 200),
        ("GET", f"/workflows/{wf}/works", 200),
        ("GET", f"/workflows/{wf}/jobs", 200),
        ("GET", f"/workflows/{wf}/events", 200),
        ("GET", f"/jobs/{job}", 200),
        ("GET", f"/jobs/{job}/logs", 404),  # allowed, but no log yet (nothing ran)
        ("POST", f"/workflows/{wf}/abort", 202),
        ("POST", f"/workflows/{wf}/suspend", 202),
        ("POST", f"/workflows/{wf}/resume", 202),
        ("POST", f"/workflows/{wf}/retry", 202),
        ("POST", f"/workflows/{wf}/finish", 202),
    ]


def call(c: httpx.Client, method: str, path: str) -> httpx.Response:
    """A request; an event stream is only opened (its status and headers read), then closed."""
    if path.endswith("/events"):
        with c.stream(method, path) as r:
            if r.status_code != 200:
                r.read()
            return r
    return c.request(method, path)


# which of alice's workflows each role may see and act on
MAY: dict[str, set[str]] = {
    ANONYMOUS: set(),
    "alice": {"shared", "private"},
    "bob": {"shared"},
    "carol": set(),
    "root": {"shared", "private"},
}


@pytest.mark.parametrize("role", list(MAY))
def test_the_authorization_matrix(api: Api, role: str) -> None:
    s = setup(api)
    c = api.client(None if role == ANONYMOUS else role)
    wrong: list[str] = []
    for label, wf in (("shared", s.shared), ("private", s.private)):
        for method, path, allowed in endpoints(wf, s.jobs[wf]):
            if role == ANONYMOUS:
                expected = 401
            elif label in MAY[role]:
                expected = allowed
            else:
                expected = 403
            r = call(c, method, path)
            if r.status_code != expected:
                wrong.append(f"{role} {method} {path} ({label}): {r.status_code} != {expected}")
                continue
            challenge = r.headers.get("www-authenticate", "")
            if expected == 401 and not challenge.startswith("Bearer "):
                wrong.append(f"{role} {method} {path}: 401 without a Bearer challenge")
            if expected == 403 and challenge:
                wrong.append(f"{role} {method} {path}: 403 with a challenge {challenge!r}")
            if expected >= 400:
                body = r.json()
                if not (isinstance(body.get("error"), str) and body["error"]):
                    wrong.append(f"{role} {method} {path}: error body {body!r}")
    # what does not exist is 404 for everyone signed in, whoever they are
    for method, path, _ in endpoints(987_654, 987_654):
        r = call(c, method, path)
        expected = 401 if role == ANONYMOUS else 404
        if r.status_code != expected:
            wrong.append(f"{role} {method} {path} (missing): {r.status_code} != {expected}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("role", list(MAY))
def test_lists_show_exactly_what_each_role_may_see(api: Api, role: str) -> None:
    s = setup(api)
    bobs = api.submit("bob")["id"]
    carols = api.submit("carol", share_group=None)["id"]
    c = api.client(None if role == ANONYMOUS else role)
    r = c.get("/workflows")
    if role == ANONYMOUS:
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer ")
        return
    assert r.status_code == 200, r.text
    seen = {w["id"] for w in r.json()["items"]}
    expected = {getattr(s, label) for label in MAY[role]}
    expected |= {"bob": {bobs}, "carol": {carols}, "root": {bobs, carols}}.get(role, set())
    assert seen == expected
    # an owner filter cannot widen what one sees
    r = c.get("/workflows", params={"owner": "alice"})
    assert {w["id"] for w in r.json()["items"]} == {getattr(s, label) for label in MAY[role]}


def test_group_members_see_and_steer_shared_workflows_with_agents_off(api: Api) -> None:
    s = setup(api)
    bob = api.client("bob")
    r = bob.get(f"/workflows/{s.shared}")
    assert r.status_code == 200 and r.json()["share_group"] == "physics"
    assert r.json()["owner"] == "alice"
    assert bob.post(f"/workflows/{s.shared}/abort").status_code == 202
    assert bob.get(f"/workflows/{s.private}").status_code == 403


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


def test_a_new_token_works_at_once(api: Api) -> None:
    with api.db.begin() as conn:
        _, token = tokens.create(conn, user="dave", admin=False, groups=["physics"], now=0.0)
    dave = api.client(headers={"Authorization": f"Bearer {token}"})
    s = setup(api)
    assert dave.get(f"/workflows/{s.shared}").status_code == 200
    assert dave.get(f"/workflows/{s.private}").status_code == 403


@pytest.mark.parametrize(
    "dn", ["CN=alice,O=Lab,C=CH", "/C=CH/O=Lab/CN=root", "CN=root", "not a dn"]
)
def test_an_x509_dn_from_an_untrusted_client_is_403(api: Api, dn: str) -> None:
    s = setup(api)
    for headers in ({"X-SSL-Client-DN": dn}, {"x-ssl-client-dn": dn}):
        c = api.client(headers=headers)
        some = [*endpoints(s.shared, s.jobs[s.shared])[:3], ("GET", "/workflows", 200)]
        for method, path, _ in some:
            r = c.request(method, path)
            assert r.status_code == 403, (path, r.text)
            assert "trusted proxy" in r.json()["error"]
            assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        # a valid token does not make an untrusted DN header acceptable
        r = api.client("alice", headers=headers).get(f"/workflows/{s.private}")
        assert r.status_code == 403
    # an empty DN header means "no certificate": the token decides
    r = api.client("alice", headers={"X-SSL-Client-DN": ""}).get(f"/workflows/{s.private}")
    assert r.status_code == 200


def test_sharing_needs_membership_of_the_group(api: Api) -> None:
    def share(user: str, group: str | None) -> httpx.Response:
        body: dict[str, Any] = {"template": TEMPLATE, "share_group": group}
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
