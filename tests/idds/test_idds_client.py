"""iDDS clients run on Orchid unchanged: PyPI's idds-client 2.6 against ``orchid server``.

(a) a Rubin-style DOMA workflow submitted as BPS does, watched with get_status, run to the
end with every job after its parents; (b) abort, retry and close; (c) an HPO request driven
by get_hyperparameters / update_hyperparameter; (e) unsupported classes and calls answered
with an error the client shows. Where the real iDDS server answers otherwise, the
difference is in docs/from-idds.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.client.serverkit import Server
from tests.idds.iddskit import assert_after_parents, needs_client, rubin_workflow, run

pytestmark = [needs_client, pytest.mark.xdist_group("idds")]

# a BPS-like submission (tests/idds/iddskit.py): 120 isr → 60 calibrate → 60 coadd jobs
RUBIN = rubin_workflow(120)


def api(server: Server, path: str, user: str = "alice") -> Any:
    r = httpx.get(
        f"{server.url}/api/v1{path}",
        headers={"Authorization": f"Bearer {server.tokens[user]}"},
        timeout=20,
    )
    r.raise_for_status()
    return r.json()


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "orchid.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


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
seen = watch(rid, 600, 0.2)
detail = cm.get_requests(request_id=rid, with_detail=True)
out({"request_id": rid, "seen": seen, "table": cm.get_status(request_id=rid),
     "detail_table": cm.get_status(request_id=rid, with_detail=True),
     "transforms": [(d["transform_status"].name, d["output_total_files"],
                     d["output_processed_files"]) for d in detail],
     "by_workload": cm.get_requests(workload_id=rid)[0]["request_id"],
     "by_name": cm.get_request_id_by_name("rubin_bps")})
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
    assert got["by_name"] == {"rubin_bps_test": rid}
    # an ordinary Orchid workflow: every job after its parents
    wf = api(server, f"/workflows/{rid}")
    assert wf["status"] == "succeeded" and [w["name"] for w in wf["works"]] == [
        "isr",
        "calibrate",
        "coadd",
    ]
    jobs = {(j["work"], j["name"]): j for j in jobs_of(server, rid)}
    assert len(jobs) == 240
    # seen by `orchid status`, `orchid graph` and the monitor like any workflow
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "ORCHID_HOME": str(tmp_path / "orchid"),
        "ORCHID_URL": server.url,
        "ORCHID_TOKEN": server.tokens["alice"],
    }
    status = cli(env, "status", str(rid), "--json")
    assert json.loads(status)["status"] == "succeeded"
    mermaid = cli(env, "graph", str(rid), "--format", "mermaid")
    assert "isr" in mermaid and "calibrate" in mermaid and "coadd" in mermaid
    page = httpx.get(
        f"{server.url}/ui/workflows/{rid}",
        headers={"Authorization": f"Bearer {server.tokens['alice']}"},
        timeout=20,
    )
    assert page.status_code == 200 and "rubin_bps_test" in page.text and "coadd" in page.text

    assert_after_parents(jobs, 120)
    assert jobs[("isr", "isr_007")]["args"] == {"input": "isr_007"}


def test_ping_and_another_users_request(server: Server, tmp_path: Path) -> None:
    mine = run(
        server.url,
        server.tokens["alice"],
        rubin_workflow(4) + "out({'ping': cm.ping(), 'rid': cm.submit(wf)})",
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


STEERED = """
import os
from idds.workflowv2.workflow import Workflow
from idds.doma.workflowv2.domapandawork import DomaPanDAWork

def work(task, executable, arguments, deps):
    return DomaPanDAWork(
        executable=executable, arguments=arguments,
        primary_input_collection={"scope": "pseudo_dataset", "name": "in_" + task},
        output_collections=[{"scope": "pseudo_dataset", "name": "out_" + task}],
        log_collections=[], dependency_map=deps, task_name=task, num_retries=0)

def job(name, *parents):
    return {"name": name, "order_id": 0, "submitted": False,
            "dependencies": [{"task": t, "inputname": n, "available": False} for t, n in parents]}

def submit(*works, name):
    wf = Workflow()
    for w in works:
        wf.add_work(w)
    wf.name = name
    return cm.submit(wf)

def wait(rid, *statuses):
    for _ in range(900):
        status = cm.get_requests(request_id=rid)[0]["status"].name
        if status in statuses:
            return status
        time.sleep(0.1)
    return status
"""


def test_abort_retry_and_close_through_the_client(server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    got = run(
        server.url,
        server.tokens["alice"],
        STEERED
        + f"""
slow = submit(work("slow", "sleep", "60", [job("s1"), job("s2")]), name="slow")
running = wait(slow, "Transforming")
aborted = cm.abort(request_id=slow)
after_abort = wait(slow, "Cancelled")

broken = submit(work("fragile", "ls", {str(marker)!r}, [job("f1")]), name="fragile")
failed = wait(broken, "Failed", "SubFinished")
open({str(marker)!r}, "w").close()
retried = cm.retry(request_id=broken)
after_retry = wait(broken, "Finished")

two = submit(work("first", "sleep", "3", [job("a")]),
             work("second", "echo", "${{IN/L}}", [job("b", ("first", "a"))]), name="two")
wait(two, "Transforming")
closed = cm.close(request_id=two)
after_close = wait(two, "Finished", "SubFinished", "Failed", "Cancelled")
detail = [(d["transform_name"], d["transform_status"].name)
          for d in cm.get_requests(request_id=two, with_detail=True)]
out(dict(running=running, aborted=aborted, after_abort=after_abort, failed=failed,
         retried=retried, after_retry=after_retry, closed=closed, after_close=after_close,
         detail=detail, no_task=cm.abort_task(request_id=two, task_id=1),
         neither=cm.abort()))
""",
        tmp_path / "client",
        timeout=300,
    )
    registered = [[0, {"status": 0, "message": "Command registered successfully"}]]
    assert got["running"] == "Transforming"
    assert got["aborted"] == registered and got["after_abort"] == "Cancelled"
    assert got["failed"] in ("Failed", "SubFinished")
    assert got["retried"] == registered and got["after_retry"] == "Finished"
    # close is Orchid's finish: nothing new starts, what was made runs to its end
    assert got["closed"] == registered and got["after_close"] == "Finished"
    assert got["detail"] == [["first", "Finished"], ["second", "Finished"]]
    assert got["no_task"][0] is False and "aborting one task" in got["no_task"][1]
    assert got["neither"][0] == -1  # the client's own check, before any call


REFUSED = """
from idds.common.dict_class import DictClass

def named(module, name):
    # a DictClass the client encodes as {"class": name, "module": module, ...}
    return type(name, (DictClass,), {"__module__": module})()

def attempt(extra):
    wf = Workflow()
    w = work("victim", "echo", "hi", [job("v")])
    w.extra = extra
    wf.add_work(w)
    wf.name = "refused"
    return cm.submit(wf)

outer = Workflow()
outer.add_work(work("inner", "echo", "x", [job("i")]))
nested = Workflow()
nested.add_work(outer)
nested.name = "nested"
rid = submit(work("fine", "echo", "x", [job("ok")]), name="fine")

out(dict(system=attempt(named("os", "system")), popen=attempt(named("subprocess", "Popen")),
         canary=attempt(named("orchid_idds_canary", "Boom")),
         output_ext=cm.get_contents_output_ext(request_id=rid),
         worker=cm.adjust_worker(request_id=rid, transform_id=1, workload_id=None,
                                  parameters={"core_count": 2}),
         cacher=cm.download_from_cacher("notes.txt"),
         build=cm.submit_build(nested)))
"""


def test_unsupported_classes_and_calls_get_errors_the_client_shows(
    server: Server, tmp_path: Path
) -> None:
    got = run(server.url, server.tokens["alice"], STEERED + REFUSED, tmp_path)
    for key, named in (
        ("system", "os.system"),
        ("popen", "subprocess.Popen"),
        ("canary", "orchid_idds_canary.Boom"),
    ):
        ok, message = got[key]
        assert ok is False and f"class {named} is not supported by Orchid" in message
    assert "orchid_idds_canary" not in sys.modules  # never imported by the server
    for key, what in (
        ("build", "build requests"),
        ("output_ext", "this catalog call"),
        ("worker", "workflow tasks"),
    ):
        ok, message = got[key]
        assert ok is False and what in message and "not supported" in message, (key, message)
    # the client's cacher download sends no credentials and reads no error: it shows None
    assert got["cacher"] is None


LATE = """
from idds.doma.workflowv2.domapandawork import DomaPanDAWork

# ClientManager.submit_work (2.6) reads priority, token, name and get_parent_internal_id(),
# which only iWorkflow works have: a workflowv2 work is given them (docs/from-idds.md)
DomaPanDAWork.get_parent_internal_id = lambda self: None

def late(task, executable, arguments, deps):
    w = work(task, executable, arguments, deps)
    w.priority, w.token, w.name = 0, None, task
    return w
"""

GROWING = """
from idds.workflowv2.workflow import Workflow
from idds.doma.workflowv2.domapandawork import DomaPanDAWork
from idds.common.dict_class import DictClass

def transforms(rid):
    return [(d["transform_name"], d["transform_status"].name)
            for d in cm.get_requests(request_id=rid, with_detail=True)]

first = work("first", "sleep", "2", [job("a1"), job("a2")])
wf = Workflow()
wf.add_work(first)
wf.name = "growing"
wf.open = True  # works are added later: the request stays open until closed
rid = cm.submit(wf)
plain = cm.submit_work(rid, work("plain", "echo", "x", [job("p")]))
second = late("second", "echo", "${IN/L}", [job("b1", ("first", "a1")), job("b2", ("second", "b1"))])
added = cm.submit_work(rid, second)
again = cm.submit_work(rid, second)
for _ in range(600):
    if dict(transforms(rid)).get("second") == "Finished":
        break
    time.sleep(0.1)
status_while_open = cm.get_requests(request_id=rid)[0]["status"].name
# after a work that has ended already
third = cm.submit_work(rid, late("third", "echo", "${IN/L}", [job("c1", ("second", "b2"))]))
no_job = cm.submit_work(rid, late("fourth", "echo", "x", [job("d1", ("first", "zz"))]))
no_task = cm.submit_work(rid, late("fifth", "echo", "x", [job("e1", ("nowhere", "a1"))]))
changed = cm.submit_work(rid, late("second", "echo", "other", [job("b1")]))
evil = late("sixth", "echo", "x", [job("f1")])
evil.extra = type("system", (DictClass,), {"__module__": "os"})()
refused = cm.submit_work(rid, evil)
shut = submit(work("shut", "echo", "x", [job("s")]), name="shut")
not_open = cm.submit_work(shut, late("seventh", "echo", "x", [job("g1")]))
closed = cm.close(request_id=rid)
final = wait(rid, "Finished", "SubFinished", "Failed", "Cancelled")
after_close = cm.submit_work(rid, late("eighth", "echo", "x", [job("h1")]))
out(dict(rid=rid, plain=plain, added=added, again=again, third=third, no_job=no_job,
         no_task=no_task, changed=changed, refused=refused, not_open=not_open, closed=closed,
         status_while_open=status_while_open, final=final, after_close=after_close,
         transforms=transforms(rid)))
"""


def test_submit_work_adds_a_work_to_an_open_request(server: Server, tmp_path: Path) -> None:
    got = run(server.url, server.tokens["alice"], STEERED + LATE + GROWING, tmp_path / "alice")
    rid = got["rid"]
    # the client's own limit: a workflowv2 work lacks what submit_work reads
    assert got["plain"][0] is False and "priority" in got["plain"][1]
    assert isinstance(got["added"], int) and got["again"] == got["added"]
    assert isinstance(got["third"], int) and got["third"] != got["added"]
    assert got["status_while_open"] == "Transforming"  # open: it waits for more works
    for key, what in (
        ("no_job", "depends on 'zz' of task first, which has no such job"),
        ("no_task", "task 'nowhere' is not a work of this workflow"),
        ("changed", "has a work second already, with another definition"),
        ("refused", "class os.system is not supported by Orchid"),
        ("after_close", f"request {rid} takes no more works"),
    ):
        ok, message = got[key]
        assert ok is False and what in message, (key, message)
    assert got["not_open"][0] is False
    assert "takes no more works: it was not submitted open" in got["not_open"][1]
    assert got["closed"] == [[0, {"status": 0, "message": "Command registered successfully"}]]
    assert got["final"] == "Finished"
    assert got["transforms"] == [
        ["first", "Finished"],
        ["second", "Finished"],
        ["third", "Finished"],
    ]
    jobs = {(j["work"], j["name"]): j for j in jobs_of(server, rid)}
    assert set(jobs) == {
        ("first", "a1"),
        ("first", "a2"),
        ("second", "b1"),
        ("second", "b2"),
        ("third", "c1"),
    }

    def after(child: tuple[str, str], parent: tuple[str, str]) -> None:
        assert jobs[child]["started_at"] >= jobs[parent]["finished_at"], (child, parent)

    after(("second", "b1"), ("first", "a1"))
    after(("second", "b2"), ("second", "b1"))
    after(("third", "c1"), ("second", "b2"))
    # only the request's owner adds works to it
    theirs = run(
        server.url,
        server.tokens["bob"],
        STEERED + LATE + f"out(cm.submit_work({rid}, late('x', 'echo', 'x', [job('x')])))",
        tmp_path / "bob",
    )
    assert theirs[0] is False and f"no request {rid}" in theirs[1]


HPO = """
cm.setup_client()
rid = add_hpo_request()
updates, seen = [], []
for _ in range(600):
    points = cm.get_hyperparameters(workload_id="20525135", request_id=None)
    seen.append(len(points))
    for p in points:
        if p["loss"] is None:
            loss = (p["parameters"]["B"] - 2) ** 2 + p["parameters"]["A"]
            updates.append(cm.update_hyperparameter(workload_id=None, request_id=rid,
                                                    id=p["id"], loss=loss))
    if sum(p["loss"] is not None for p in points) >= 6:
        break
    time.sleep(0.1)
for _ in range(300):
    status = cm.get_requests(request_id=rid)[0]["status"].name
    if status != "Transforming":
        break
    time.sleep(0.1)
out(dict(rid=rid, points=cm.get_hyperparameters(workload_id=None, request_id=rid),
         evaluated=cm.get_hyperparameters(workload_id=None, request_id=rid, status=2),
         one=cm.get_hyperparameters(workload_id=None, request_id=rid, id=points[0]["id"]),
         updates=updates, status=status, workload=cm.get_requests(request_id=rid)[0]["workload_id"],
         bad=cm.update_hyperparameter(workload_id=None, request_id=rid, id=points[0]["id"],
                                      loss="nan-ish")))
"""


def test_an_hpo_request_driven_by_get_and_update_hyperparameter(
    server: Server, tmp_path: Path
) -> None:
    got = run(server.url, server.tokens["alice"], HPO, tmp_path, timeout=300)
    points = got["points"]
    assert len(points) == 6 and all(p["loss"] is not None for p in points)
    for p in points:
        assert set(p) == {"id", "parameters", "loss"}
        assert p["parameters"]["A"] in (1, 4) and 0 <= p["parameters"]["B"] <= 5
        assert p["loss"] == pytest.approx((p["parameters"]["B"] - 2) ** 2 + p["parameters"]["A"])
    assert got["evaluated"] == points and got["one"] == [points[0]]
    assert all(u == {"message": "update successfully", "status": 0} for u in got["updates"])
    assert got["status"] == "Finished" and got["workload"] == "20525135"
    assert got["bad"][0] is False and "loss must be a number" in got["bad"][1]
    # an ordinary Orchid study: its trials are those points
    study = api(server, f"/workflows/{got['rid']}/studies")[0]
    trials = api(server, f"/studies/{study['id']}/trials")["items"]
    assert sorted(t["id"] for t in trials) == sorted(p["id"] for p in points)


CONDITIONAL = """
from idds.workflowv2.workflow import Workflow, Condition
from idds.workflowv2.work import Work

def branching(first):
    check = Work(executable=first)
    then, otherwise = Work(executable="echo", arguments="then"), Work(executable="echo")
    wf = Workflow()
    for w in (check, then, otherwise):
        wf.add_work(w)
    wf.add_condition(Condition(cond=check.is_finished, true_work=then, false_work=otherwise))
    wf.name = "branch_on_" + first
    rid = cm.submit(wf)
    for _ in range(600):
        if cm.get_requests(request_id=rid)[0]["status"].name not in ("New", "Transforming"):
            break
        time.sleep(0.1)
    return [d["transform_status"].name for d in cm.get_requests(request_id=rid, with_detail=True)]

out(dict(passed=branching("true"), failed=branching("false")))
"""


def test_a_condition_between_works_picks_the_branch(server: Server, tmp_path: Path) -> None:
    got = run(server.url, server.tokens["alice"], CONDITIONAL, tmp_path)
    # skipped shows as Cancelled: iDDS has no skipped transform
    assert got["passed"] == ["Finished", "Finished", "Cancelled"]
    assert got["failed"] == ["Failed", "Cancelled", "Finished"]


def test_a_bad_token_is_an_error_the_client_shows(server: Server, tmp_path: Path) -> None:
    got = run(server.url, "orc_not-a-token", "out(cm.get_requests(request_id=1))", tmp_path)
    assert got[0] is False and "unknown or revoked token" in got[1]


def test_collections_contents_and_messages(server: Server, tmp_path: Path) -> None:
    got = run(
        server.url,
        server.tokens["alice"],
        STEERED
        + """
from idds.common.constants import CollectionRelationType, ContentStatus
rid = submit(work("first", "echo", "${IN/L}", [job("a1"), job("a2")]),
             work("second", "false", "", [job("b1", ("first", "a1"))]), name="data")
wait(rid, "Finished", "SubFinished", "Failed")
colls = cm.get_collections(request_id=rid)
outputs = cm.get_collections(request_id=rid, relation_type=CollectionRelationType.Output)
contents = cm.get_contents(request_id=rid)
available = cm.get_contents(request_id=rid, status=ContentStatus.Available)
sent = cm.send_messages(request_id=rid, msgs=[{"command": "note", "n": 1}, {"n": 2}])
out(dict(colls=[(c["name"], c["relation_type"].name, c["total_files"], c["processed_files"])
                for c in colls],
         outputs=len(outputs),
         contents=sorted((c["name"], c["status"].name) for c in contents),
         available=sorted(c["name"] for c in available),
         sent=sent, messages=cm.get_messages(request_id=rid),
         logs=cm.download_logs(request_id=rid, dest_dir="."), rid=rid))
""",
        tmp_path,
    )
    assert got["colls"] == [
        ["data.first.input", "Input", 2, 2],
        ["data.first", "Output", 2, 2],
        ["data.second.input", "Input", 1, 1],
        ["data.second", "Output", 1, 0],
    ]
    assert got["outputs"] == 2
    assert got["contents"] == [["a1", "Available"], ["a2", "Available"], ["b1", "FinalFailed"]]
    assert got["available"] == ["a1", "a2"]
    assert got["sent"] == [True, None]
    assert got["messages"] == [True, [{"command": "note", "n": 1}, {"n": 2}]]
    rid = got["rid"]
    assert got["logs"] == [True, f"Logs are downloaded to ./logs_{rid}_{rid}.tar.gz"]
    with tarfile.open(tmp_path / f"logs_{rid}_{rid}.tar.gz") as tar:
        names = set(tar.getnames())
        assert {f"{rid}/first/a1.out", f"{rid}/first/a2.err", f"{rid}/second/b1.out"} <= names
        out = tar.extractfile(f"{rid}/first/a1.out")
        assert out is not None and out.read() == b"a1\n"


def test_json_outputs_wrap_answers_as_idds_does(server: Server, tmp_path: Path) -> None:
    got = run(
        server.url,
        server.tokens["alice"],
        """
cm.setup_json_outputs()
out([cm.ping(), cm.get_requests(request_id=987654)])
""",
        tmp_path,
    )
    assert got[0] == {"status": 0, "data": {"Status": "OK"}, "error": None}
    assert got[1]["status"] == 404 and got[1]["data"] is None
    assert got[1]["error"]["ExceptionClass"] == "NoObject"
    assert "no request 987654" in got[1]["error"]["ExceptionMessage"]


LOOP = """
from idds.workflowv2.workflow import Workflow, Condition
from idds.workflowv2.work import Work

count = {count!r}
step = Work(executable="sh", arguments=(
    "-c 'n=$(cat %s 2>/dev/null || echo 0); n=$((n + 1)); echo $n > %s; test $n -lt 3'"
    % (count, count)))
wf = Workflow()
wf.add_work(step)
wf.add_loop_condition(Condition(cond=step.is_finished))  # again while it succeeds
wf.name = "loop_while_finished"
rid = cm.submit(wf)
status = settled(rid)
out(dict(status=status, runs=[d["transform_status"].name
                              for d in cm.get_requests(request_id=rid, with_detail=True)]))
"""


NESTED = """
from idds.workflowv2.workflow import Workflow, SubWorkflow, Condition
from idds.workflowv2.work import Work

log = {log!r}

def step(name):
    return Work(executable="sh", arguments="-c 'echo %s >> %s'" % (name, log))

first, a, b, c, last = (step(n) for n in ("first", "a", "b", "c", "last"))
deep = Workflow(name="deep")  # a Workflow as a work, inside a SubWorkflow
deep.add_work(c)
inner = SubWorkflow(name="inner")
for w in (a, b, deep):
    inner.add_work(w)
inner.add_condition(Condition(cond=a.is_finished, true_work=b))
inner.add_condition(Condition(cond=b.is_finished, true_work=deep))
wf = Workflow(name="outer")
for w in (first, inner, last):
    wf.add_work(w)
wf.add_condition(Condition(cond=first.is_finished, true_work=inner))
wf.add_condition(Condition(cond=inner.is_finished, true_work=last))
rid = cm.submit(wf)
status = settled(rid)
out(dict(status=status, transforms=transform_runs(rid)))
"""


def test_a_sub_workflow_runs_nested_in_order(server: Server, tmp_path: Path) -> None:
    """A SubWorkflow (holding a Workflow) added as a work, with conditions inside and around
    it: Orchid runs it as a nested workflow, every work after the one it waits for."""
    log = tmp_path / "order.log"
    got = run(server.url, server.tokens["alice"], NESTED.format(log=str(log)), tmp_path)
    assert got["status"] == "Finished", got
    assert log.read_text().split() == ["first", "a", "b", "c", "last"]
    # a transform per work: the nested workflows' own are named by their works
    names = [name for name, _ in got["transforms"]]
    assert len(names) == 7 and {"inner", "inner.deep"} <= set(names), names
    assert len([n for n in names if n.startswith("inner.deep.work_")]) == 1, names
    assert {status for _, status in got["transforms"]} == {"Finished"}, got


def test_a_loop_workflow_repeats_while_its_condition_holds(server: Server, tmp_path: Path) -> None:
    count = tmp_path / "count"
    got = run(server.url, server.tokens["alice"], LOOP.format(count=str(count)), tmp_path)
    assert count.read_text().strip() == "3"
    # two runs that succeeded, and the third, which failed and so ended the loop
    assert got == {"status": "SubFinished", "runs": ["Finished", "Finished", "Failed"]}


LOOP_IN_LOOP = """
from idds.workflowv2.workflow import Workflow, LoopWorkflow, Condition
from idds.workflowv2.work import Work

log, steps, rounds = {log!r}, {steps!r}, {rounds!r}

def counter(path, tag, test):  # counts in path, logs tag and the count, fails when test fails
    return Work(executable="sh", arguments=(
        "-c 'n=$(cat %s 2>/dev/null || echo 0); n=$((n + 1)); echo $n > %s; "
        "echo %s$n >> %s; test %s'" % (path, path, tag, log, test)))

step = counter(steps, "s", "$((n % 3)) -ne 0")  # 3 runs a round: the third fails
inner = LoopWorkflow(name="inner")
inner.add_work(step)
inner.add_loop_condition(Condition(cond=step.is_finished))  # again while it succeeds
tick = counter(rounds, "t", "$n -lt 2")  # two rounds
wf = Workflow(name="rounds")
wf.add_work(inner)
wf.add_work(tick)
wf.add_condition(Condition(cond=inner.is_terminated, true_work=tick))
wf.add_loop_condition(Condition(cond=tick.is_finished))
rid = cm.submit(wf)
status = settled(rid)
out(dict(status=status, runs=transform_runs(rid)))
"""


def test_a_loop_workflow_inside_a_loop_runs_to_its_end_each_round(
    server: Server, tmp_path: Path
) -> None:
    """A LoopWorkflow added as a work of a workflow with a loop condition: a loop inside a
    loop, whose loop runs afresh (until its step fails) in each round of the outer one."""
    log = tmp_path / "order.log"
    script = LOOP_IN_LOOP.format(
        log=str(log), steps=str(tmp_path / "steps"), rounds=str(tmp_path / "rounds")
    )
    got = run(server.url, server.tokens["alice"], script, tmp_path)
    assert log.read_text().split() == ["s1", "s2", "s3", "t1", "s4", "s5", "s6", "t2"], got
    assert got["status"] == "SubFinished", got
    runs = [status for name, status in got["runs"] if name.startswith("inner.")]
    assert sorted(runs) == ["Failed"] * 2 + ["Finished"] * 4, got


ATLAS_HPO = """
from idds.workflowv2.workflow import Workflow
from idds.atlas.workflowv2.atlashpowork import ATLASHPOWork

work = ATLASHPOWork(method="random", opt_space={"A": [1, 4], "B": [0.0, 5.0]}, max_points=4,
                    num_points_per_iteration=2)
wf = Workflow()
wf.add_work(work)
wf.name = "atlas_hpo"
rid = cm.submit(wf)
done = []
for _ in range(600):
    for p in cm.get_hyperparameters(workload_id=None, request_id=rid):
        if p["loss"] is None:
            cm.update_hyperparameter(workload_id=None, request_id=rid, id=p["id"],
                                     loss=p["parameters"]["B"])
            done.append(p["id"])
    if cm.get_requests(request_id=rid)[0]["status"].name != "Transforming" and len(done) >= 4:
        break
    time.sleep(0.1)
out(dict(done=len(done), status=cm.get_requests(request_id=rid)[0]["status"].name,
         points=cm.get_hyperparameters(workload_id=None, request_id=rid)))
"""


def test_a_workflow_with_an_atlas_hpo_work_runs_in_pull_mode(
    server: Server, tmp_path: Path
) -> None:
    got = run(server.url, server.tokens["alice"], ATLAS_HPO, tmp_path)
    assert got["done"] == 4 and got["status"] == "Finished"
    assert sorted(p["loss"] for p in got["points"]) == sorted(
        p["parameters"]["B"] for p in got["points"]
    )
    assert all(p["parameters"]["A"] in range(1, 5) for p in got["points"])
