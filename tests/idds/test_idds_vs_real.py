"""The same iDDS client calls sent to Orchid's /idds and to the real iDDS server.

PyPI's idds-client 2.6.21 runs one script against a real Orchid (tests/client/serverkit.py)
and against PyPI's idds-server 2.6.21 on PostgreSQL (tests/idds/idds_server.py); the tests
compare what matters to a client: the ids' types, the status and type names, the keys of
the rows and the answers to commands and to calls Orchid does not support. What still
differs is asserted here as the difference it is, and written in docs/from-idds.md
("What differs from the iDDS server").

Only iDDS's REST server runs, not its daemons (Clerk, Transformer, Carrier need PanDA and
Rucio): there a request stays ``New`` without transforms, collections, contents or
hyperparameter points. So what a request becomes as it runs is not compared; the first
answers after a submission, the commands and the refusals are. (d) stage-in is compared
in test_idds_stagein.py, where Orchid has a real Rucio.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.client.serverkit import serve
from tests.idds import idds_server
from tests.idds.iddskit import needs_client, run

pytestmark = [
    needs_client,
    idds_server.needs_server,
    pytest.mark.postgres,
    pytest.mark.xdist_group("idds"),
]

SCRIPT = """
from idds.workflowv2.workflow import Workflow
from idds.doma.workflowv2.domapandawork import DomaPanDAWork


def work(task, deps):
    return DomaPanDAWork(
        executable="echo", arguments="processing ${IN/L}",
        primary_input_collection={"scope": "pseudo_dataset", "name": "pseudo_input_" + task},
        output_collections=[{"scope": "pseudo_dataset", "name": "pseudo_output_" + task}],
        log_collections=[], dependency_map=deps, task_name=task, task_queue="DOMA_LSST",
        encode_command_line=True, num_retries=0, task_rss=2000)


def job(name, *parents):
    return {"name": name, "order_id": 0, "submitted": False,
            "dependencies": [{"task": t, "inputname": n, "available": False} for t, n in parents]}


wf = Workflow()
wf.add_work(work("isr", [job("isr_000"), job("isr_001")]))
wf.add_work(work("calibrate", [job("calibrate_000", ("isr", "isr_000"), ("isr", "isr_001"))]))
wf.name = "compare_bps"
got = {}

# (a) a BPS-style DOMA workflow, and what get_requests / get_status say right after
rid = cm.submit(wf, use_dataset_name=False)
(req,) = cm.get_requests(request_id=rid)
got["a"] = dict(
    rid=shape(rid), row=row(req), status=req["status"].name,
    request_type=req["request_type"].name, scope=req["scope"], name=req["name"],
    username=req["username"],
    detail=[row(d) for d in cm.get_requests(request_id=rid, with_detail=True)],
    table=cm.get_status(request_id=rid).splitlines()[0].split(),
    by_name=cm.get_request_id_by_name("compare_bps"),
    by_workload=len(cm.get_requests(workload_id=rid)),
)

# (b) commands on one's own request and on none (another user's: in the test)
got["b"] = dict(
    rid=rid, abort=cm.abort(request_id=rid), retry=cm.retry(request_id=rid),
    close=cm.close(request_id=rid),
    abort_missing=cm.abort(request_id=987654), retry_missing=cm.retry(request_id=987654),
    missing=attempt(lambda: cm.get_requests(request_id=987654)),
    abort_task=attempt(lambda: cm.abort_task(request_id=rid, task_id=1)),
    neither=attempt(lambda: cm.abort()),
)

# (c) an HPO request as ATLAS's tools send it, before any point exists
hpo = add_hpo_request()
(hreq,) = cm.get_requests(request_id=hpo)
got["c"] = dict(
    rid=shape(hpo), row=row(hreq), status=hreq["status"].name,
    request_type=hreq["request_type"].name, scope=hreq["scope"], name=hreq["name"],
    workload_id=hreq["workload_id"],
    points=attempt(lambda: cm.get_hyperparameters(workload_id=None, request_id=hpo)),
    by_workload=attempt(lambda: cm.get_hyperparameters(workload_id="20525135", request_id=None)),
    update_missing=attempt(lambda: cm.update_hyperparameter(
        workload_id=None, request_id=hpo, id=987654, loss=0.5)),
)

# (e) calls Orchid does not support, and the catalog, logs and messages of a request
got["e"] = dict(
    output_ext=attempt(lambda: cm.get_contents_output_ext(request_id=rid)),
    add_transform=attempt(lambda: cm.client.add_transform(rid, name="late")),
    adjust_worker=attempt(lambda: cm.adjust_worker(
        request_id=rid, transform_id=1, workload_id=None, parameters={"core_count": 2})),
    cacher=attempt(lambda: cm.download_from_cacher("notes.txt")),
    collections=attempt(lambda: cm.get_collections(request_id=rid)),
    contents=attempt(lambda: cm.get_contents(request_id=rid)),
    send=attempt(lambda: cm.send_messages(request_id=rid, msgs=[{"n": 1}])),
    messages=attempt(lambda: cm.get_messages(request_id=rid)),
)
# a class from a module that exists nowhere (the server must not import what a client names)
from idds.common.dict_class import DictClass
canary = work("canary", [job("c")])
canary.extra = type("Boom", (DictClass,), {"__module__": "orchid_idds_canary"})()
named = Workflow()
named.add_work(canary)
named.name = "canary"
got["e"]["canary"] = attempt(lambda: cm.submit(named))
cm.setup_json_outputs()
got["e"]["json_ping"] = cm.ping()
got["e"]["json_missing"] = cm.get_requests(request_id=987654)
out(got)
"""

# what the iDDS server's request rows have and Orchid's have not: its agents' bookkeeping
# (polling, locking, retries, per-state transform counts), none of which Orchid keeps
ONLY_IN_IDDS_ROWS = {
    "additional_data_storage",
    "campaign_scope",
    "cloud",
    "command",
    "failed_transforms",
    "finished_transforms",
    "group_id",
    "locking_hostname",
    "locking_pid",
    "locking_thread_id",
    "locking_thread_name",
    "max_new_retries",
    "max_update_retries",
    "new_poll_period",
    "new_retries",
    "next_poll_at",
    "oldstatus",
    "processing_transforms",
    "queue",
    "site",
    "subfinished_transforms",
    "total_transforms",
    "update_poll_period",
    "update_retries",
}
# with_detail adds the transform's processing and more of its collections' counts
ONLY_IN_IDDS_DETAIL = ONLY_IN_IDDS_ROWS | {
    "input_activated_files",
    "input_coll_bytes",
    "input_coll_status",
    "input_coll_transform_id",
    "input_failed_files",
    "input_missing_files",
    "input_preprocessing_files",
    "input_processing_files",
    "output_activated_files",
    "output_coll_bytes",
    "output_coll_status",
    "output_coll_transform_id",
    "output_preprocessing_files",
    "processing_created_at",
    "processing_finished_at",
    "processing_id",
    "processing_status",
    "processing_transform_id",
    "processing_updated_at",
    "processing_workload_id",
}


@pytest.fixture(scope="module")
def answers(
    real: idds_server.IddsServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """SCRIPT's answers from both servers, and bob's calls on alice's request there."""
    home = tmp_path_factory.mktemp("clients")
    script = idds_server.SHAPES + SCRIPT
    got: dict[str, Any] = {}
    with serve(home / "orchid") as orchid:
        got["orchid"] = run(orchid.url, orchid.tokens["alice"], script, home / "o")
        got["orchid_bob"] = _bob(orchid.url, orchid.tokens["bob"], got["orchid"], home / "ob")
    got["real"] = run(real.url, "alice", script, home / "r")  # the shim's user: the token
    got["real_bob"] = _bob(real.url, "bob", got["real"], home / "rb")
    return got


def _bob(url: str, token: str, alice: dict[str, Any], home: Path) -> Any:
    rid = alice["b"]["rid"]
    seen = f"cm.get_requests(request_id={rid})"
    return run(
        url,
        token,
        f"seen = {seen}\n"
        "seen = list(seen) if isinstance(seen, tuple) else [r['username'] for r in seen]\n"
        f"out([seen, cm.abort(request_id={rid})])",
        home,
    )


def test_a_doma_submission_reads_the_same_right_after(answers: dict[str, Any]) -> None:
    mine, theirs = answers["orchid"]["a"], answers["real"]["a"]
    for key in ("rid", "request_type", "scope", "name", "username", "table", "by_name"):
        assert mine[key] == theirs[key], key
    assert theirs["rid"] == "int" and theirs["request_type"] == "Workflow"
    assert theirs["status"] == "New"  # and stays so there: no Clerk
    assert mine["status"] in ("New", "Transforming")  # Orchid's agents run
    # Orchid's row: iDDS's keys but the agents' bookkeeping, with the same types
    assert set(theirs["row"]) - set(mine["row"]) == ONLY_IN_IDDS_ROWS
    assert set(mine["row"]) <= set(theirs["row"])
    differ = {k for k in mine["row"] if mine["row"][k] != theirs["row"][k]}
    assert differ <= {"workload_id", "status", "substatus"}, differ
    # a request submitted without a workload id: iDDS leaves it null, Orchid uses the id
    assert theirs["row"]["workload_id"] == "NoneType" and mine["row"]["workload_id"] == "int"
    assert theirs["by_workload"] == 0 and mine["by_workload"] == 1
    # with_detail: iDDS's one row of a request without transforms has the transform_* and
    # collection keys, null; Orchid has one row per work, the same keys but the bookkeeping
    assert len(theirs["detail"]) == 1 and theirs["detail"][0]["transform_id"] == "NoneType"
    assert len(mine["detail"]) == 2
    for d in mine["detail"]:
        assert set(theirs["detail"][0]) - set(d) == ONLY_IN_IDDS_DETAIL
        assert set(d) <= set(theirs["detail"][0])


def test_commands_answer_the_same_on_ones_own_request(answers: dict[str, Any]) -> None:
    mine, theirs = answers["orchid"]["b"], answers["real"]["b"]
    registered = [[0, {"status": 0, "message": "Command registered successfully"}]]
    for key in ("abort", "retry", "close"):
        assert mine[key] == theirs[key] == registered, key
    assert mine["neither"] == theirs["neither"]  # the client's own check
    # a request that does not exist: iDDS answers "No match requests" (and an empty list
    # to get_requests), Orchid a NoObject error the client shows as (False, message)
    for key in ("abort_missing", "retry_missing"):
        assert theirs[key] == [[-1, {"status": -1, "message": "No match requests"}]]
        assert mine[key][0] is False and "no request 987654" in mine[key][1]
    assert theirs["missing"] == []
    assert mine["missing"][0] is False and "no request 987654" in mine["missing"][1]
    # abort_task: iDDS 2.6's route does not match what its client sends (405)
    assert theirs["abort_task"][0] is False and "405 Method Not Allowed" in theirs["abort_task"][1]
    assert mine["abort_task"][0] is False and "not supported by Orchid" in mine["abort_task"][1]


def test_another_users_request(answers: dict[str, Any]) -> None:
    rid = answers["real"]["b"]["rid"]
    # iDDS shows anyone's request to anyone and refuses only the command
    seen, aborted = answers["real_bob"]
    assert seen == ["alice"]
    assert aborted == [
        [-1, {"status": -1, "message": f"User bob has no permission to update request {rid}"}]
    ]
    # Orchid does not show it at all: as if it did not exist
    rid = answers["orchid"]["b"]["rid"]
    for answer in answers["orchid_bob"]:
        assert answer[0] is False and f"no request {rid}" in answer[1]


def test_an_hpo_request_before_its_first_points(answers: dict[str, Any]) -> None:
    mine, theirs = answers["orchid"]["c"], answers["real"]["c"]
    assert mine["rid"] == theirs["rid"] == "int"
    # no points there without iDDS's daemons; Orchid's may already have some (2 a generation)
    assert theirs["points"] == theirs["by_workload"] == []
    for point in mine["points"] + mine["by_workload"]:
        assert set(point) == {"id", "parameters", "loss"} and point["loss"] is None
    assert set(theirs["row"]) - set(mine["row"]) == ONLY_IN_IDDS_ROWS
    # iDDS makes an HPO request a workflow of its own: type Workflow, scope HPO, a name
    # with a timestamp and an integer workload id; Orchid keeps what the client sent
    assert theirs["request_type"] == "Workflow" and mine["request_type"] == "HyperParameterOpt"
    assert theirs["scope"] == "HPO" and mine["scope"] == "workflow"
    assert theirs["name"].startswith("hpo.20525135.") and mine["name"] == "hpo-20525135"
    assert theirs["workload_id"] == 20525135 and mine["workload_id"] == "20525135"
    assert theirs["status"] == "New" and mine["status"] in ("New", "Transforming")
    # a point that does not exist: an error either way, iDDS's says less
    assert theirs["update_missing"][0] is False and "list index" in theirs["update_missing"][1]
    assert mine["update_missing"][0] is False and "987654" in mine["update_missing"][1]


def test_calls_orchid_does_not_support_and_the_catalog(
    answers: dict[str, Any], real: idds_server.IddsServer
) -> None:
    mine, theirs = answers["orchid"]["e"], answers["real"]["e"]
    assert (
        mine["json_ping"]
        == theirs["json_ping"]
        == {
            "status": 0,
            "data": {"Status": "OK"},
            "error": None,
        }
    )
    assert mine["cacher"] is None and theirs["cacher"] is None  # no credentials sent
    # what iDDS accepts and Orchid refuses, saying so
    assert theirs["output_ext"] == {}
    assert theirs["adjust_worker"] == {"status": 0, "message": "adjusted successfully"}
    for key in ("output_ext", "adjust_worker"):
        assert mine[key][0] is False and "not supported by Orchid" in mine[key][1], key
    # add_transform with no work: iDDS wants a workflow token first; Orchid (which takes
    # submit_work on open requests) says the work is missing
    assert theirs["add_transform"][:2] == ["raised", "BadRequest"]
    assert "Token is required" in theirs["add_transform"][2]
    assert mine["add_transform"][:2] == ["raised", "BadRequest"]
    assert "transform_metadata.work is missing" in mine["add_transform"][2]
    # without its daemons iDDS has no collections or contents yet; Orchid's works made them
    assert theirs["collections"] == theirs["contents"] == []
    assert len(mine["collections"]) == 4 and len(mine["contents"]) == 3
    # messages: the iDDS server fails both calls of its own 2.6 client (on PostgreSQL)
    assert theirs["send"][0] is False and theirs["messages"][0] is False
    assert mine["send"] == [True, None] and mine["messages"] == [True, [{"n": 1}]]
    # a class the client names: iDDS imports its module (here: there is none, so it says
    # it cannot decode the request); Orchid refuses it by name and imports nothing
    assert theirs["canary"][0] is False
    assert "Cannot decode json parameter dictionary" in theirs["canary"][1]
    assert "No module named 'orchid_idds_canary'" in (real.dir / "logs/idds_rest.log").read_text()
    assert mine["canary"][0] is False
    assert "class orchid_idds_canary.Boom is not supported by Orchid" in mine["canary"][1]
    assert "orchid_idds_canary" not in sys.modules
    # a missing request with json_outputs: iDDS an empty list, Orchid a 404
    assert theirs["json_missing"] == {"status": 0, "data": [], "error": None}
    assert mine["json_missing"]["status"] == 404
    assert mine["json_missing"]["error"]["ExceptionClass"] == "NoObject"


def test_the_real_server_is_the_one_answering(
    real: idds_server.IddsServer, answers: dict[str, Any], tmp_path: Path
) -> None:
    """The comparison means something only if the iDDS answers are iDDS's: its own tables
    hold the requests, and its own check of the DN refuses one not in allow_users."""
    engine = sa.create_engine(f"{idds_server.PG}/{real.database}")
    with engine.connect() as conn:
        names = conn.execute(
            sa.text(f"SELECT name FROM {idds_server.SCHEMA}.requests ORDER BY request_id")
        ).scalars()
        assert list(names)[:2] == ["compare_bps", answers["real"]["c"]["name"]]
    engine.dispose()
    # a token starting with "/" is the DN itself (idds_server.SHIM)
    refused = run(real.url, "/DC=org/DC=elsewhere/CN=eve", "out(cm.ping())", tmp_path)
    assert refused[0] is False and "is not allowed" in refused[1]
