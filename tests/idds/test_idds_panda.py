"""Issue 20 (a) on the real PanDA: a Rubin BPS-like workflow submitted with the real iDDS
client to ``orchid server`` + agents whose executor is a real panda-server + JEDI.

The same builder as the local test (a) (tests/idds/iddskit.py), smaller: 16 isr → 8
calibrate → 8 coadd jobs, three DomaPanDAWork with job-level dependency maps and
``task_queue`` the test PanDA's queue. ``ClientManager.submit`` sends it, ``get_status``
and ``get_requests`` watch it until it ends Finished; then every job started after its
parents ended (Orchid's records) and each work was one JEDI task whose PanDA jobs all
finished (PanDA's tables). PanDA is the session's one server (tests/executors/
panda_fixtures.py, xdist group ``panda``); jobs run through the stand-in pilot.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.client.serverkit import Server, serve
from tests.executors import panda_server
from tests.executors.panda_pilot import StandInPilot
from tests.idds.iddskit import assert_after_parents, needs_client, rubin_workflow, run

pytestmark = [
    needs_client,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups"),
    pytest.mark.xdist_group("panda"),  # the session's one PanDA
    pytest.mark.postgres,
]
ISR = 16  # 32 jobs: small enough for CI on PanDA's stand-in pilot
TOKEN_ENV = "ORCHID_TEST_PANDA_TOKEN"

SETTINGS = """
[executors.panda]
type = "panda"
url = "{url}"
site = "{site}"
cloud = "{cloud}"
vo = "{vo}"
prod_source_label = "{label}"
auth = "oidc"
token_env = "{token_env}"
python = "{python}"
poll_interval = 0.5
monitor_url = "https://bigpanda.example.org"
release_broker = "mq"
release_destination = "{destination}"
namespace = "{namespace}"

[brokers.mq]
type = "stomp"
user = "guest"
password = "guest"
"""


@pytest.fixture
def orchid(
    real_panda: panda_server.PandaServer, real_panda_pilot: StandInPilot, tmp_path: Path
) -> Iterator[tuple[Server, str]]:
    """``orchid server`` + agents whose default executor is the real PanDA; with the
    namespace of its JEDI task names."""
    os.environ.setdefault(TOKEN_ENV, "no-auth-here")  # the test server checks no token
    namespace = "i" + uuid.uuid4().hex[:10]
    home = tmp_path / "orchid"
    home.mkdir()
    (home / "settings.toml").write_text(
        SETTINGS.format(
            url=real_panda.url,
            site=panda_server.SITE,
            cloud=panda_server.CLOUD,
            vo=panda_server.VO,
            label=panda_server.PROD_SOURCE_LABEL,
            token_env=TOKEN_ENV,
            python=sys.executable,
            destination=real_panda.destination,
            namespace=namespace,
        )
    )
    with serve(home, executor="panda") as running:
        yield running, namespace


WATCH = """
rid = cm.submit(wf, use_dataset_name=False)
assert isinstance(rid, int), rid
seen = watch(rid, 1500, 0.5)
detail = cm.get_requests(request_id=rid, with_detail=True)
out({"request_id": rid, "seen": seen, "table": cm.get_status(request_id=rid),
     "transforms": [(d["transform_name"], d["transform_status"].name, d["output_total_files"],
                     d["output_processed_files"]) for d in detail]})
"""


def test_a_rubin_workflow_runs_on_the_real_panda(
    orchid: tuple[Server, str], real_panda: panda_server.PandaServer, tmp_path: Path
) -> None:
    server, namespace = orchid
    got = run(
        server.url,
        server.tokens["alice"],
        rubin_workflow(ISR, queue=panda_server.SITE) + WATCH,
        tmp_path / "client",
        timeout=900,
    )
    rid = got["request_id"]
    assert got["seen"][-1] == "Finished", (got, real_panda.log("panda-server.log")[-2000:])
    assert got["transforms"] == [
        ["isr", "Finished", ISR, ISR],
        ["calibrate", "Finished", ISR // 2, ISR // 2],
        ["coadd", "Finished", ISR // 2, ISR // 2],
    ]
    assert "rubin_bps_test" in got["table"] and "Finished" in got["table"]
    # Orchid's records: every job succeeded, each after its parents ended
    jobs: dict[tuple[str, str], dict[str, Any]] = {}
    cursor = ""
    while True:
        page = httpx.get(
            f"{server.url}/api/v1/workflows/{rid}/jobs?limit=1000{cursor}",
            headers={"Authorization": f"Bearer {server.tokens['alice']}"},
            timeout=20,
        ).json()
        jobs.update({(j["work"], j["name"]): j for j in page["items"]})
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert {j["status"] for j in jobs.values()} == {"succeeded"}
    assert_after_parents(jobs, ISR)
    # PanDA's: one JEDI task per work (<namespace>.<workflow>.<work>.<work id>), each job a
    # PanDA job of it that finished
    rows = real_panda.sql(
        "SELECT t.taskname, count(j.pandaid) AS n FROM doma_panda.jedi_tasks t "
        "JOIN doma_panda.jobsarchived4 j ON j.jeditaskid = t.jeditaskid "
        "WHERE t.taskname LIKE :pattern AND j.jobstatus = 'finished' GROUP BY 1",
        pattern=f"{namespace}.{rid}.%",
    )
    by_work = {r.taskname.split(".")[2]: int(r.n) for r in rows}
    assert by_work == {"isr": ISR, "calibrate": ISR // 2, "coadd": ISR // 2}
