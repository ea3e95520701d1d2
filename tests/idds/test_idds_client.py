"""iDDS clients run on Orchid unchanged: PyPI's idds-client 2.6 against ``orchid server``.

(a) a Rubin-style DOMA workflow submitted as BPS does, watched with get_status, run to the
end with every job after its parents; (b) abort, retry and close; (c) an HPO request driven
by get_hyperparameters / update_hyperparameter; (e) unsupported classes and calls answered
with an error the client shows. Where the real iDDS server answers otherwise, the
difference is in docs/from-idds.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.client.serverkit import Server
from tests.idds.iddskit import needs_client, run

pytestmark = [needs_client, pytest.mark.xdist_group("idds")]

# a BPS-like submission: step1 (isr) → step2 (calibrate, two parents each) → step3 (coadd,
# parents in step2 and in step3 itself); 240 jobs
RUBIN = """
from idds.workflowv2.workflow import Workflow
from idds.doma.workflowv2.domapandawork import DomaPanDAWork

def work(task, deps):
    return DomaPanDAWork(
        executable="echo", arguments="processing ${IN/L}",
        primary_input_collection={"scope": "pseudo_dataset", "name": "pseudo_input_" + task},
        output_collections=[{"scope": "pseudo_dataset", "name": "pseudo_output_" + task}],
        log_collections=[], dependency_map=deps, task_name=task, task_queue="DOMA_LSST",
        encode_command_line=True, num_retries=0, task_rss=2000,
        task_log={"dataset": "PandaJob_#{pandaid}/", "destination": "local",
                  "param_type": "log", "token": "local", "type": "template", "value": "log.tgz"})

def job(name, *parents):
    return {"name": name, "order_id": 0, "submitted": False,
            "dependencies": [{"task": t, "inputname": n, "available": False} for t, n in parents]}

isr = [job("isr_%03d" % i) for i in range(120)]
calib = [job("calibrate_%03d" % i, ("isr", "isr_%03d" % (2 * i)), ("isr", "isr_%03d" % (2 * i + 1)))
         for i in range(60)]
coadd = [job("coadd_%03d" % i, ("calibrate", "calibrate_%03d" % i)) for i in range(30)]
coadd += [job("coadd_%03d" % i, ("calibrate", "calibrate_%03d" % i), ("coadd", "coadd_%03d" % (i - 30)))
          for i in range(30, 60)]
wf = Workflow()
for w in (work("isr", isr), work("calibrate", calib), work("coadd", coadd)):
    wf.add_work(w)
wf.name = "rubin_bps_test"
"""


def api(server: Server, path: str, user: str = "alice") -> Any:
    r = httpx.get(
        f"{server.url}/api/v1{path}",
        headers={"Authorization": f"Bearer {server.tokens[user]}"},
        timeout=20,
    )
    r.raise_for_status()
    return r.json()


def jobs_of(server: Server, wf: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = api(server, f"/workflows/{wf}/jobs?limit=1000{cursor}")
        out += page["items"]
        if not page["next_cursor"]:
            return out
        cursor = f"&cursor={page['next_cursor']}"


def test_a_rubin_workflow_runs_to_the_end_with_every_job_after_its_parents(
    server: Server, tmp_path: Path
) -> None:
    got = run(
        server.url,
        server.tokens["alice"],
        RUBIN
        + """
rid = cm.submit(wf, use_dataset_name=False)
assert isinstance(rid, int), rid
seen = []
for _ in range(600):
    reqs = cm.get_requests(request_id=rid)
    status = reqs[0]["status"].name
    if not seen or seen[-1] != status:
        seen.append(status)
    if status in ("Finished", "SubFinished", "Failed", "Cancelled"):
        break
    time.sleep(0.2)
detail = cm.get_requests(request_id=rid, with_detail=True)
out({"request_id": rid, "seen": seen, "table": cm.get_status(request_id=rid),
     "detail_table": cm.get_status(request_id=rid, with_detail=True),
     "transforms": [(d["transform_status"].name, d["output_total_files"],
                     d["output_processed_files"]) for d in detail],
     "by_workload": cm.get_requests(workload_id=rid)[0]["request_id"]})
""",
        tmp_path,
        timeout=300,
    )
    rid = got["request_id"]
    assert got["seen"][-1] == "Finished", got
    assert got["transforms"] == [["Finished", 120, 120], ["Finished", 60, 60], ["Finished", 60, 60]]
    assert "rubin_bps_test" in got["table"] and "Finished" in got["table"]
    assert "Finished[120/120/0]" in got["detail_table"]
    assert got["by_workload"] == rid
    # an ordinary Orchid workflow: every job after its parents
    wf = api(server, f"/workflows/{rid}")
    assert wf["status"] == "succeeded" and [w["name"] for w in wf["works"]] == [
        "isr",
        "calibrate",
        "coadd",
    ]
    jobs = {(j["work"], j["name"]): j for j in jobs_of(server, rid)}
    assert len(jobs) == 240
    graph = api(server, f"/workflows/{rid}/graph")
    assert graph  # the graph of the translated template draws like any other

    def after(child: tuple[str, str], parent: tuple[str, str]) -> None:
        assert jobs[child]["started_at"] >= jobs[parent]["finished_at"], (child, parent)

    for i in range(60):
        after(("calibrate", f"calibrate_{i:03d}"), ("isr", f"isr_{2 * i:03d}"))
        after(("calibrate", f"calibrate_{i:03d}"), ("isr", f"isr_{2 * i + 1:03d}"))
        after(("coadd", f"coadd_{i:03d}"), ("calibrate", f"calibrate_{i:03d}"))
    for i in range(30, 60):
        after(("coadd", f"coadd_{i:03d}"), ("coadd", f"coadd_{i - 30:03d}"))
    assert jobs[("isr", "isr_007")]["args"] == {"input": "isr_007"}


def test_ping_and_another_users_request(server: Server, tmp_path: Path) -> None:
    mine = run(
        server.url,
        server.tokens["alice"],
        RUBIN.replace("range(120)", "range(2)")
        .replace("range(60)", "range(1)")
        .replace("range(30)", "range(1)")
        .replace("range(30, 60)", "range(0)")
        + "out({'ping': cm.ping(), 'rid': cm.submit(wf)})",
        tmp_path / "alice",
    )
    assert mine["ping"] == {"Status": "OK"}
    # bob may not reach alice's private request: as if it did not exist
    theirs = run(
        server.url,
        server.tokens["bob"],
        f"out([cm.get_requests(request_id={mine['rid']}), cm.abort(request_id={mine['rid']})])",
        tmp_path / "bob",
    )
    for answer in theirs:
        assert answer[0] is False and f"no request {mine['rid']}" in answer[1]
