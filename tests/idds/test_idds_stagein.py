"""(d) A stage-in request from the real iDDS client, staged by a real Rucio server.

The request names a dataset on tape as iDDS's stage-in requests do (``request_type``
StageIn, scope and name, source and destination RSEs); Orchid makes it a work fed by its
rucio data manager, which asks Rucio for a rule and follows it until every file is on
disk. The Rucio server and its transfer daemons are those of tests/datamgr/rucio_server.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.serverkit import Server, serve
from tests.datamgr import rucio_server
from tests.idds import idds_server
from tests.idds.iddskit import needs_client, run

pytestmark = [needs_client, pytest.mark.slow, pytest.mark.xdist_group("rucio")]


@pytest.fixture(scope="module")
def rucio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rucio_server.RucioServer]:
    if not rucio_server.available():
        if os.environ.get("CI"):
            pytest.fail("the Rucio server venv is missing: `make .venv-rucio/.installed`")
        pytest.skip("no Rucio server venv (.venv-rucio); `make .venv-rucio/.installed`")
    srv = rucio_server.start(tmp_path_factory.mktemp("rucio"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def orchid(
    rucio: rucio_server.RucioServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("orchid")
    managers = home / "data-managers.toml"
    managers.write_text(
        f"""[cern-rucio]
kind = "rucio"
host = "{rucio.url}"
account = "root"
auth_type = "userpass"
username = "{rucio_server.USER}"
password = "{rucio_server.PASSWORD}"
source = "TAPE"
destination = "DISK"
poll_interval = 0.5
"""
    )
    with serve(home, data_managers=str(managers)) as running:
        yield running


def test_a_stagein_request_stages_its_dataset_through_rucio(
    rucio: rucio_server.RucioServer, orchid: Server, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    sizes = {f"raw_{tag}_{k}.dat": 1000 + k for k in range(4)}
    rucio_server.add_tape_dataset(rucio.client(), "data18", f"ds_{tag}", sizes)
    got = run(
        orchid.url,
        orchid.tokens["alice"],
        f"""
from idds.common.constants import RequestType, RequestStatus
cm.setup_client()
rid = cm.client.add_request(
    scope="data18", name="ds_{tag}", requester="panda", request_type=RequestType.StageIn,
    transform_tag="prodsys2", status=RequestStatus.New, priority=0, lifetime=30,
    request_metadata={{"workload_id": "{tag}", "max_waiting_time": 3600,
                      "src_rse": "TAPE", "dest_rse": "DISK"}})
status = settled(rid, 1200)
(d,) = cm.get_requests(workload_id="{tag}", with_detail=True)
out(dict(rid=rid, status=status, name=cm.get_requests(request_id=rid)[0]["name"],
         files=[d["output_total_files"], d["output_processed_files"]],
         table=cm.get_status(request_id=rid)))
""",
        tmp_path,
        timeout=300,
    )
    assert got["status"] == "Finished", got
    assert got["name"] == f"ds_{tag}" and f"data18:ds_{tag}" in got["table"]
    assert got["files"] == [4, 4]  # a job per file, each once its file was on disk
    (rule,) = rucio.client().list_did_rules("data18", f"ds_{tag}")
    assert rule["rse_expression"] == "DISK" and rule["state"] == "OK"


def test_a_workflow_with_an_atlas_stagein_work_stages_through_rucio(
    rucio: rucio_server.RucioServer, orchid: Server, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    sizes = {f"raw_{tag}_{k}.dat": 2000 + k for k in range(3)}
    rucio_server.add_tape_dataset(rucio.client(), "data18", f"ds_{tag}", sizes)
    got = run(
        orchid.url,
        orchid.tokens["alice"],
        f"""
from idds.workflowv2.workflow import Workflow
from idds.atlas.workflowv2.atlasstageinwork import ATLASStageinWork

work = ATLASStageinWork(primary_input_collection={{"scope": "data18", "name": "ds_{tag}"}},
                        output_collections=[{{"scope": "data18", "name": "ds_{tag}"}}],
                        src_rse="TAPE", dest_rse="DISK")
wf = Workflow()
wf.add_work(work)
wf.name = "carousel_{tag}"
rid = cm.submit(wf)
status = settled(rid, 1200)
(d,) = cm.get_requests(request_id=rid, with_detail=True)
out(dict(status=status, files=[d["output_total_files"], d["output_processed_files"]]))
""",
        tmp_path,
        timeout=300,
    )
    assert got == {"status": "Finished", "files": [3, 3]}


STAGEIN = """
from idds.common.constants import RequestType, RequestStatus

def stagein(name, workload_id):
    return cm.client.add_request(
        scope="data18", name=name, requester="panda", request_type=RequestType.StageIn,
        transform_tag="prodsys2", status=RequestStatus.New, priority=0, lifetime=30,
        request_metadata={{"workload_id": workload_id, "max_waiting_time": 3600,
                          "src_rse": "TAPE", "dest_rse": "DISK"}})

rid = stagein("ds_{tag}", "{number}")
(req,) = cm.get_requests(request_id=rid)
(d,) = cm.get_requests(workload_id="{number}", with_detail=True)
out(dict(rid=shape(rid), row=row(req), detail=sorted(d), status=req["status"].name,
         request_type=req["request_type"].name, scope=req["scope"], name=req["name"],
         workload_id=req["workload_id"],
         table=cm.get_status(request_id=rid).splitlines()[0].split(),
         textual=attempt(lambda: stagein("ds_{tag}_text", "t{tag}"))))
"""


@idds_server.needs_server
@pytest.mark.postgres
def test_a_stagein_request_compared_with_the_real_idds_server(
    rucio: rucio_server.RucioServer,
    orchid: Server,
    real: idds_server.IddsServer,
    tmp_path: Path,
) -> None:
    """(d) The same stage-in request sent to Orchid and to the real iDDS server (its REST
    server only: without its daemons the request stays New there)."""
    from tests.idds.test_idds_vs_real import ONLY_IN_IDDS_DETAIL, ONLY_IN_IDDS_ROWS

    tag = uuid.uuid4().hex[:8]
    number = str(uuid.uuid4().int % 10**8)
    rucio_server.add_tape_dataset(rucio.client(), "data18", f"ds_{tag}", {f"f_{tag}.dat": 10})
    script = idds_server.SHAPES + STAGEIN.format(tag=tag, number=number)
    mine = run(orchid.url, orchid.tokens["alice"], script, tmp_path / "orchid")
    theirs = run(real.url, "alice", script, tmp_path / "real")
    assert mine["rid"] == theirs["rid"] == "int"
    for key in ("scope", "name", "table"):
        assert mine[key] == theirs[key], key
    assert theirs["status"] == "New" and mine["status"] in ("New", "Transforming")
    assert set(theirs["row"]) - set(mine["row"]) == ONLY_IN_IDDS_ROWS
    assert set(theirs["detail"]) - set(mine["detail"]) == ONLY_IN_IDDS_DETAIL
    # iDDS makes a stage-in request a workflow and its workload id an integer; Orchid keeps
    # the type and the workload id the client sent
    assert theirs["request_type"] == "Workflow" and mine["request_type"] == "StageIn"
    assert theirs["workload_id"] == int(number) and mine["workload_id"] == number
    # a workload id that is not a number: iDDS's integer column refuses it, Orchid does not
    assert theirs["textual"][:2] == ["raised", "DatabaseException"]
    assert isinstance(mine["textual"], int)
