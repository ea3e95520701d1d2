"""Limits over HTTP (issue 21): admins set, list and remove quotas; a submission over a
limit is a 429 or 422 that names the limit, its value and how much is used."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.api.conftest import Api


def template(n: int) -> dict[str, Any]:
    jobs = [{"name": f"j{i}"} for i in range(n)]
    return {"name": "q", "works": [{"name": "a", "noop": True, "jobs": jobs}]}


def test_admins_manage_quotas_and_submissions_are_refused_over_them(api: Api) -> None:
    root, alice = api.client("root"), api.client("alice")
    for body in (
        {"kind": "user", "subject": "alice", "quota": "jobs_per_workflow", "value": 3},
        {"kind": "user", "subject": "alice", "quota": "workflows_per_day", "value": 1},
    ):
        r = root.put("/quotas", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["used"] == 0
    bad = root.put("/quotas", json={"kind": "team", "subject": "x", "quota": "running", "value": 1})
    assert bad.status_code == 422 and "kind" in bad.json()["error"]
    assert alice.put("/quotas", json={"kind": "user", "subject": "alice", "quota": "running",
                                      "value": 9}).status_code == 403  # fmt: skip

    r = alice.post("/workflows", json={"template": template(4)})
    assert r.status_code == 422, r.text
    assert r.json()["quota"] == {"limit": "jobs_per_workflow", "subject": "user alice",
                                 "value": 3, "used": 4}  # fmt: skip
    assert "jobs_per_workflow" in r.json()["error"]
    assert alice.post("/workflows", json={"template": template(3)}).status_code == 201
    r = alice.post("/workflows", json={"template": template(1)})
    assert r.status_code == 429, r.text
    assert r.json()["quota"]["used"] == 1 and r.json()["quota"]["value"] == 1

    shown = {q["quota"]: q for q in root.get("/quotas").json()}
    assert shown["workflows_per_day"]["used"] == 1
    params = {"kind": "user", "subject": "alice", "quota": "workflows_per_day"}
    assert root.delete("/quotas", params=params).status_code == 204
    assert root.delete("/quotas", params=params).status_code == 404
    assert (
        alice.post("/workflows", json={"template": template(1), "priority": 7}).status_code == 201
    )


def test_cache_bytes_is_checked_at_upload(api: Api) -> None:
    root, alice = api.client("root"), api.client("alice")
    body = {"kind": "user", "subject": "alice", "quota": "cache_bytes", "value": 10}
    assert root.put("/quotas", json=body).status_code == 200
    small, big = b"0123456789", b"more than ten bytes"
    assert (
        alice.put(f"/cache/{hashlib.sha256(small).hexdigest()}", content=small).status_code == 201
    )
    assert alice.put(f"/cache/{hashlib.sha256(small).hexdigest()}", content=small).status_code < 300
    r = alice.put(f"/cache/{hashlib.sha256(big).hexdigest()}", content=big)
    assert r.status_code == 429, r.text
    assert r.json()["quota"] == {"limit": "cache_bytes", "subject": "user alice", "value": 10,
                                 "used": 10}  # fmt: skip
    bob = api.client("bob")  # others are not bound by alice's limit
    assert bob.put(f"/cache/{hashlib.sha256(big).hexdigest()}", content=big).status_code == 201


def test_result_bytes_show_their_usage_and_refuse_submissions_when_full(api: Api) -> None:
    from orchid.store import resultbytes

    root, alice = api.client("root"), api.client("alice")
    body = {"kind": "user", "subject": "alice", "quota": "result_bytes", "value": 100}
    assert root.put("/quotas", json=body).status_code == 200
    r = alice.post("/workflows", json={"template": template(1)})
    assert r.status_code == 201, r.text
    with api.db.begin() as conn:  # its results as the carriers would count them
        resultbytes.add(conn, {int(r.json()["id"]): 100}, shard=0)
    (shown,) = root.get("/quotas").json()
    assert (shown["quota"], shown["value"], shown["used"]) == ("result_bytes", 100, 100)
    r = alice.post("/workflows", json={"template": template(1)})
    assert r.status_code == 429, r.text
    assert r.json()["quota"] == {"limit": "result_bytes", "subject": "user alice",
                                 "value": 100, "used": 100}  # fmt: skip
    assert r.json()["field"] == "quota.result_bytes" and "archive" in r.json()["error"]
