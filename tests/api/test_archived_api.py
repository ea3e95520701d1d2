"""An archived workflow through the API: the same summary, the same authorization, its
jobs and commands answered 410 until it is restored; then it reads as before."""

from __future__ import annotations

from typing import Any

from orchid.engine.archivist import Archiver, Policy
from tests.api.conftest import Agents, Api, noop_template


def archiver(api: Api) -> Archiver:
    return Archiver(api.db, Policy.from_settings(api.settings))


def test_an_archived_workflow_answers_with_its_summary(api: Api, agents: Agents) -> None:
    wf_id = api.submit("alice", noop_template("kept", works=2), share_group="physics")["id"]
    api.wait_status(wf_id, "succeeded")
    alice, bob, carol, root = (api.client(u) for u in ("alice", "bob", "carol", "root"))
    before = alice.get(f"/workflows/{wf_id}").json()
    jobs_before = alice.get(f"/workflows/{wf_id}/jobs").json()
    assert before["archived_at"] is None

    archiver(api).archive(wf_id)

    r = alice.get(f"/workflows/{wf_id}")
    assert r.status_code == 200, r.text
    after: dict[str, Any] = r.json()
    assert after["archived_at"] is not None
    assert {k: v for k, v in after.items() if k != "archived_at"} == {
        k: v for k, v in before.items() if k != "archived_at"
    }
    assert alice.get(f"/workflows/{wf_id}/works").json() == before["works"]
    listed = {w["id"]: w for w in root.get("/workflows").json()["items"]}
    assert listed[wf_id]["archived_at"] == after["archived_at"]
    # the same people see it: the owner, the group, admins; others get the same 404 as ever
    assert bob.get(f"/workflows/{wf_id}").status_code == 200
    assert carol.get(f"/workflows/{wf_id}").status_code == 404
    assert carol.get(f"/workflows/{wf_id}/jobs").status_code == 404
    assert wf_id not in {w["id"] for w in carol.get("/workflows").json()["items"]}
    # what is in the archive: a clear 410 that says how to get it back
    r = alice.get(f"/workflows/{wf_id}/jobs")
    assert r.status_code == 410 and "orchid restore" in r.json()["error"], r.text
    r = alice.post(f"/workflows/{wf_id}/retry")
    assert r.status_code == 410, r.text

    archiver(api).restore(wf_id)
    assert alice.get(f"/workflows/{wf_id}").json() == before
    assert alice.get(f"/workflows/{wf_id}/jobs").json() == jobs_before
