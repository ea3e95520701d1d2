"""The real iDDS client against a real Orchid server: scripts run in ``.venv-idds``.

``make .venv-idds/.installed`` (a prerequisite of ``make test``) installs PyPI's
idds-client, idds-common, idds-workflow and idds-doma 2.6.21 in a venv of their own; each
test writes a short client script, runs it there as a subprocess pointed at the server's
``/idds`` (IDDS_HOST, an OIDC-type token: an Orchid token), and reads the JSON it prints
last.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("ORCHID_IDDS_VENV", ROOT / ".venv-idds"))
PYTHON = VENV / "bin" / "python"

# what every script starts with: the client, set up from the environment as users do
PRELUDE = """
import json, sys, time
from idds.client.clientmanager import ClientManager
from idds.common.utils import json_dumps
cm = ClientManager()

def out(value):
    print("RESULT " + json_dumps(value))

def settled(rid, tries=600, every=0.1):
    # the request's status once past New and Transforming (or after `tries` looks)
    for _ in range(tries):
        status = cm.get_requests(request_id=rid)[0]["status"].name
        if status not in ("New", "Transforming"):
            break
        time.sleep(every)
    return status

def watch(rid, tries, every):
    # the statuses the request went through until it ended (or `tries` looks)
    seen = []
    for _ in range(tries):
        status = cm.get_requests(request_id=rid)[0]["status"].name
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in ("Finished", "SubFinished", "Failed", "Cancelled"):
            break
        time.sleep(every)
    return seen

def transform_runs(rid):
    # each transform's name and status, sorted
    return sorted(
        (d["transform_name"] if "transform_name" in d else d.get("name"),
         d["transform_status"].name)
        for d in cm.get_requests(request_id=rid, with_detail=True))

def add_hpo_request():
    # what ATLAS's HPO tools send: a request whose metadata is the search (no Workflow
    # object); its request id
    from idds.common.constants import RequestType, RequestStatus
    return cm.client.add_request(
        requester="panda", request_type=RequestType.HyperParameterOpt, transform_tag="prodsys2",
        status=RequestStatus.New, priority=0, lifetime=30,
        request_metadata={"workload_id": "20525135", "sandbox": None, "method": "bayesian",
                          "opt_space": {"A": {"type": "Choice", "params": {"choices": [1, 4]}},
                                        "B": {"type": "Scalar", "bounds": [0, 5]}},
                          "max_points": 6, "num_points_per_generation": 2})
"""


def available() -> bool:
    return PYTHON.exists()


# skipped without the venv, except in CI, where run() then fails saying how to make it
needs_client = pytest.mark.skipif(
    not available() and not os.environ.get("CI"),
    reason="no .venv-idds: run `make .venv-idds/.installed`",
)


def run(url: str, token: str, script: str, home: Path, timeout: float = 120) -> Any:
    """Run ``script`` with the iDDS client against the Orchid at ``url``; what it passed
    to ``out()`` last (decoded as plain JSON: iDDS objects stay dicts here)."""
    if not available():
        pytest.fail(f"the iDDS client venv is missing ({VENV}): `make .venv-idds/.installed`")
    home.mkdir(parents=True, exist_ok=True)
    path = home / "script.py"
    path.write_text(PRELUDE + textwrap.dedent(script))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "IDDS_HOST": f"{url}/idds",
        "IDDS_AUTH_TYPE": "oidc",
        "IDDS_OIDC_TOKEN": token,
        "IDDS_VO": "orchid",
        "IDDS_LOCAL_CONFIG_ROOT": str(home / ".idds"),
        "IDDS_REQUEST_CACHE": str(home / "cache"),
    }
    done = subprocess.run(
        [str(PYTHON), str(path)],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise AssertionError(
            f"the client script failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return json.loads(lines[-1].removeprefix("RESULT "))


def rubin_workflow(isr: int, queue: str = "DOMA_LSST") -> str:
    """A client script's start that builds ``wf``, a Rubin BPS-like submission: step1
    (``isr``, ``isr`` jobs) → step2 (``calibrate``, half as many, two isr parents each) →
    step3 (``coadd``, as many as calibrate: each after its calibrate job, those of the
    second half after a coadd job of the first half too). Three DomaPanDAWork with
    job-level dependency maps, as BPS makes them; ``queue`` is their ``task_queue``.
    ``isr`` is a multiple of 4."""
    assert isr % 4 == 0, isr
    half, quarter = isr // 2, isr // 4
    return f"""
from idds.workflowv2.workflow import Workflow
from idds.doma.workflowv2.domapandawork import DomaPanDAWork

def work(task, deps):
    return DomaPanDAWork(
        executable="echo", arguments="processing ${{IN/L}}",
        primary_input_collection={{"scope": "pseudo_dataset", "name": "pseudo_input_" + task}},
        output_collections=[{{"scope": "pseudo_dataset", "name": "pseudo_output_" + task}}],
        log_collections=[], dependency_map=deps, task_name=task, task_queue={queue!r},
        encode_command_line=True, num_retries=0, task_rss=2000,
        task_log={{"dataset": "PandaJob_#{{pandaid}}/", "destination": "local",
                  "param_type": "log", "token": "local", "type": "template", "value": "log.tgz"}})

def job(name, *parents):
    return {{"name": name, "order_id": 0, "submitted": False,
            "dependencies": [{{"task": t, "inputname": n, "available": False}}
                             for t, n in parents]}}

isr = [job("isr_%03d" % i) for i in range({isr})]
calib = [job("calibrate_%03d" % i, ("isr", "isr_%03d" % (2 * i)),
             ("isr", "isr_%03d" % (2 * i + 1))) for i in range({half})]
coadd = [job("coadd_%03d" % i, ("calibrate", "calibrate_%03d" % i)) for i in range({quarter})]
coadd += [job("coadd_%03d" % i, ("calibrate", "calibrate_%03d" % i),
              ("coadd", "coadd_%03d" % (i - {quarter}))) for i in range({quarter}, {half})]
wf = Workflow()
for w in (work("isr", isr), work("calibrate", calib), work("coadd", coadd)):
    wf.add_work(w)
wf.name = "rubin_bps_test"
"""


def rubin_edges(isr: int) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Every (child, parent) of :func:`rubin_workflow`, as (work, job) pairs."""
    half, quarter = isr // 2, isr // 4
    edges = []
    for i in range(half):
        edges.append((("calibrate", f"calibrate_{i:03d}"), ("isr", f"isr_{2 * i:03d}")))
        edges.append((("calibrate", f"calibrate_{i:03d}"), ("isr", f"isr_{2 * i + 1:03d}")))
        edges.append((("coadd", f"coadd_{i:03d}"), ("calibrate", f"calibrate_{i:03d}")))
    for i in range(quarter, half):
        edges.append((("coadd", f"coadd_{i:03d}"), ("coadd", f"coadd_{i - quarter:03d}")))
    return edges


def assert_after_parents(jobs: dict[tuple[str, str], dict[str, Any]], isr: int) -> None:
    """Every job of :func:`rubin_workflow` started after its parents ended (Orchid's
    records: ``jobs`` by (work, job) as /api/v1 lists them)."""
    assert len(jobs) == isr * 2
    for child, parent in rubin_edges(isr):
        assert jobs[child]["started_at"] >= jobs[parent]["finished_at"], (child, parent)
