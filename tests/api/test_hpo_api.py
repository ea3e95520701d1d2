"""Pull mode over HTTP: studies, points and losses, who may see and report, bad reports,
pruning through reports, and the typed client driving a study to its end."""

from __future__ import annotations

from typing import Any

import pytest

from orchid.client import Client
from orchid.client.errors import ClientError
from tests.api.conftest import Agents, Api
from tests.waiting import wait_for

SPACE = {
    "x": {"type": "float", "low": -2.0, "high": 2.0},
    "k": {"type": "int", "low": 1, "high": 4},
}


def pull_template(**hpo: Any) -> dict[str, Any]:
    spec = {"space": SPACE, "max_trials": 6, "parallel": 2, "mode": "pull", "seed": 3, **hpo}
    return {"name": "pull", "works": [{"name": "tune", "hpo": spec}]}


def study_of(api: Api, user: str, wf: int) -> dict[str, Any]:
    def ready() -> Any:
        r = api.client(user).get(f"/workflows/{wf}/studies")
        assert r.status_code == 200, r.text
        return r.json() and r.json()[0]

    found: dict[str, Any] = wait_for("the study", ready)
    return found


def next_points(api: Api, user: str, sid: int, n: int = 1) -> list[dict[str, Any]]:
    def some() -> Any:
        r = api.client(user).post(f"/studies/{sid}/next", json={"n": n})
        assert r.status_code == 200, r.text
        return r.json()["trials"]

    got: list[dict[str, Any]] = wait_for("points to fetch", some)
    return got


def test_workers_fetch_points_and_report_losses(api: Api, agents: Agents) -> None:
    wf = api.submit("alice", pull_template(), share_group="physics")["id"]
    sid = study_of(api, "alice", wf)["id"]
    got = next_points(api, "alice", sid, n=5)
    assert len(got) == 2  # `parallel` points are out at once
    assert all(t["status"] == "running" and t["worker"] == "alice" for t in got)
    bob = api.client("bob")  # same group: may work on it too
    r = bob.post(f"/trials/{got[0]['id']}/report", json={"value": got[0]["params"]["x"] ** 2})
    assert r.status_code == 200, r.text
    assert r.json() == {"trial_id": got[0]["id"], "status": "complete", "prune": False}
    r = bob.post(f"/trials/{got[0]['id']}/report", json={"value": 1.0})
    assert r.status_code == 409  # already ended
    more = next_points(api, "bob", sid)  # the freed slot got a new point
    assert more[0]["number"] == 2
    page = api.client("alice").get(f"/studies/{sid}/trials").json()
    assert [t["number"] for t in page["items"]] == [0, 1, 2]
    assert page["items"][0]["values"] == [got[0]["params"]["x"] ** 2]


@pytest.mark.parametrize(
    "body",
    [
        {"value": "NaN"},
        {"step": 1, "values": [1.0]},
        {"step": -1, "value": 1.0},
        {},
        {"values": [1.0, 2.0]},
        {"metrics": {"accuracy": 0.9}},
        {"value": 1.0, "extra": 1},
    ],
)
def test_bad_reports_are_refused_with_a_reason(
    api: Api, agents: Agents, body: dict[str, Any]
) -> None:
    wf = api.submit("alice", pull_template())["id"]
    sid = study_of(api, "alice", wf)["id"]
    (t,) = next_points(api, "alice", sid)
    r = api.client("alice").post(f"/trials/{t['id']}/report", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]
    assert not api.server_errors


def test_who_may_see_and_report(api: Api, agents: Agents) -> None:
    wf = api.submit("alice", pull_template())["id"]  # private
    sid = study_of(api, "alice", wf)["id"]
    (t,) = next_points(api, "alice", sid)
    for user, want in (("carol", 404), ("bob", 404), ("root", 200), (None, 401)):
        c = api.client(user)
        assert c.get(f"/workflows/{wf}/studies").status_code == want
        assert c.get(f"/studies/{sid}").status_code == want
        assert c.get(f"/studies/{sid}/trials").status_code == want
    for user in ("carol", "bob", None):
        c = api.client(user)
        assert c.post(f"/studies/{sid}/next", json={}).status_code in (401, 404)
        assert c.post(f"/trials/{t['id']}/report", json={"value": 1}).status_code in (401, 404)
    assert api.client("alice").get("/studies/999").status_code == 404
    assert api.client("alice").post("/trials/999/report", json={"value": 1}).status_code == 404
    assert (
        api.client("alice").post("/jobs/999/report", json={"step": 1, "value": 1}).status_code
        == 404
    )


def test_a_jobs_mode_study_hands_out_nothing(api: Api, agents: Agents) -> None:
    t = pull_template(mode="jobs")
    t["works"][0]["noop"] = True
    t["works"][0]["hpo"]["max_trials"] = 1
    wf = api.submit(
        "alice",
        {
            "name": "x",
            "works": [{"name": "tune", "command": ["true"], "hpo": t["works"][0]["hpo"]}],
        },
    )["id"]
    sid = study_of(api, "alice", wf)["id"]
    r = api.client("alice").post(f"/studies/{sid}/next", json={"n": 1})
    assert r.status_code == 422 and "mode: pull" in r.json()["error"]
    api.wait_status(wf)  # the null executor's result holds no loss: the trial failed
    (trial,) = api.client("alice").get(f"/studies/{sid}/trials").json()["items"]
    job = trial["job_id"]
    c = api.client("alice")
    assert c.post(f"/jobs/{job}/report", json={"value": 1.0}).status_code == 422  # no step
    r = c.post(f"/jobs/{job}/report", json={"step": 1, "value": 1.0})
    assert r.status_code == 409 and "already ended" in r.json()["error"]  # its trial ended
    assert (
        api.client("carol").post(f"/jobs/{job}/report", json={"step": 1, "value": 1}).status_code
        == 404
    )


def test_reports_of_intermediate_values_let_the_pruner_stop_a_trial(
    api: Api, agents: Agents
) -> None:
    wf = api.submit(
        "alice", pull_template(max_trials=4, parallel=1, pruner={"kind": "median", "min_trials": 1})
    )["id"]
    sid = study_of(api, "alice", wf)["id"]
    c = api.client("alice")
    for loss in (1.1, 1.0):  # two good trials (the second better), step by step
        (t,) = next_points(api, "alice", sid)
        for step in range(3):
            r = c.post(
                f"/trials/{t['id']}/report", json={"step": step, "value": loss + 1 - step / 3}
            )
            assert r.json()["prune"] is False
        assert c.post(f"/trials/{t['id']}/report", json={"value": loss}).status_code == 200
    (bad,) = next_points(api, "alice", sid)
    c.post(f"/trials/{bad['id']}/report", json={"step": 0, "value": 50.0})

    def pruned() -> bool:
        r = c.post(f"/trials/{bad['id']}/report", json={"step": 1, "value": 40.0})
        return bool(r.json()["prune"])

    wait_for("the pruner to stop the bad trial", pruned)
    t = c.get(f"/studies/{sid}/trials", params={"status": "pruned"}).json()["items"]
    assert [x["id"] for x in t] == [bad["id"]]


def test_the_client_drives_a_study_to_its_end(api: Api, agents: Agents) -> None:
    wf = api.submit(
        "alice", pull_template(objectives=[{"name": "a"}, {"name": "b", "direction": "maximize"}])
    )["id"]
    with Client(api.base_url, api.tokens["alice"]) as orchid:
        study = wait_for("the study", lambda: orchid.hpo.studies(wf))[0]
        done = 0
        while True:
            got = orchid.hpo.next(study.id, n=2)
            if not got.trials:
                if got.study_status != "running":
                    break
                continue
            for t in got.trials:
                x = t.params["x"]
                if t.number == 3:
                    orchid.hpo.report(t.id, failed="the worker ran out of memory")
                else:
                    orchid.hpo.report(t.id, metrics={"a": x * x, "b": x, "note": "ok"})
                done += 1
        assert done == 6
        final = orchid.hpo.study(study.id)
        assert final.status == "succeeded"
        assert final.summary["complete"] == 5 and final.summary["failed"] == 1
        front = final.summary["pareto"]
        assert front and all(len(p["values"]) == 2 for p in front)
        with pytest.raises(ClientError):
            orchid.hpo.report(front[0]["number"] + 10_000, value=1.0)
    assert api.wait_status(wf) == "succeeded"  # the agents end the workflow after the study
