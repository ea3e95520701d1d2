"""Function-as-a-Task through a real server on 127.0.0.1: REST, job tokens, reports."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import fat_tasks
import httpx
import pytest

from orchid.core import jobtoken
from tests.client.serverkit import Server
from tests.fat.conftest import runs

pytestmark = pytest.mark.slow


def test_client_side_workflow_on_a_server(remote: Server, marks: Path) -> None:
    out = fat_tasks.branchy(5)
    assert out["exact"] == Fraction(1, 4)
    assert out["square"] == 25
    assert "no luck with 5" in out["went"]
    assert runs(marks, "fragile-5") == 2
    with remote.client() as client:
        (wf,) = [w for w in client.iter_workflows(name="branchy")]
        assert wf.status in ("partial", "running")  # ends once the closed works end
        reports = client.messages(wf.id, kind="fat.report").items
    failed = [m.body for m in reports if not m.body["ok"]]
    assert len(failed) == 2 and "ValueError: no luck with 5" in failed[0]["error"]["traceback"]
    assert all(m.body["metrics"]["wall_s"] >= 0 for m in reports)


def test_server_side_workflow_on_a_server(remote: Server) -> None:
    out = fat_tasks.squares_server(4)
    assert out == {"total": 14, "first_seen": out["first_seen"], "third": Fraction(1, 3)}
    # resumed, not run again: the same workflow, found by name and arguments
    assert fat_tasks.squares_server(4)["total"] == 14
    with remote.client() as client:
        assert len(list(client.iter_workflows(name="squares-server"))) == 1


PROBE = """
import json, os, urllib.request, urllib.error
def get(path):
    req = urllib.request.Request(os.environ["ORCHID_URL"] + path)
    req.add_header("Authorization", "Bearer " + os.environ["ORCHID_TOKEN"])
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as exc:
        return exc.code
print(json.dumps({"own": get("/workflows/{own}"), "other": get("/workflows/{other}")}))
"""


def test_job_tokens_act_on_their_own_workflow_only(remote: Server) -> None:
    with remote.client() as alice:
        other = alice.submit({"name": "other", "open": True, "works": []})
        wf = alice.submit({"name": "probe", "open": True, "works": []})
        code = PROBE.replace("{own}", str(wf.id)).replace("{other}", str(other.id))
        alice.add_work(
            wf.id,
            {
                "name": "probe",
                "command": ["python", "-c", code.replace("{", "{{").replace("}", "}}")],
                "env": {"ORCHID_URL": alice.url},
                "api_token": True,
            },
        )
        alice.close_workflow(wf.id)
        for _ in alice.events(wf.id):
            pass
        (job,) = alice.jobs(wf.id).items
        alice.close_workflow(other.id)
    assert job.status == "succeeded", job.error
    assert job.result == {"own": 200, "other": 404}  # as if it did not exist
    # after its attempt, the token is worth nothing, and a forged one never was
    forged = jobtoken.make(b"not the key", wf.id, job.id, job.attempt)
    r = httpx.get(
        f"{remote.url}/api/v1/workflows/{wf.id}", headers={"Authorization": f"Bearer {forged}"}
    )
    assert r.status_code == 401


def test_adding_works_checks_them_like_templates(remote: Server) -> None:
    with remote.client() as alice:
        wf = alice.submit({"name": "grow", "open": True, "works": []})
        added = alice.add_work(
            wf.id,
            {"name": "a", "command": ["echo", "{x}"], "jobs": [{"name": "0", "args": {"x": 1}}]},
        )
        assert added.created and added.jobs == 1
        again = alice.add_work(
            wf.id,
            {"name": "a", "command": ["echo", "{x}"], "jobs": [{"name": "0", "args": {"x": 1}}]},
        )
        assert (again.work_id, again.created, again.changed) == (added.work_id, False, False)
        from orchid.client.errors import ClientError

        with pytest.raises(ClientError) as bad:
            alice.add_work(wf.id, {"name": "b", "after": ["nope"], "noop": True})
        assert "no work or loop is named 'nope'" in str(bad.value)
        alice.close_workflow(wf.id)
        with remote.client("bob") as bob, pytest.raises(ClientError) as denied:
            bob.add_work(wf.id, {"name": "c", "noop": True})
        assert "404" in str(denied.value) or f"no workflow {wf.id}" in str(denied.value)
