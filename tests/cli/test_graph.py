"""`orchid graph`: the same picture from a database here and from a server."""

from __future__ import annotations

import io
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from orchid.cli.main import app
from orchid.engine.submit import load_template, submit
from orchid.store.db import Database
from tests.api.conftest import Api, api, executor_name  # noqa: F401

TEMPLATE = """name: mini-rubin
works:
  - {name: isr, noop: true, jobs: from_file}
  - {name: calibrate, noop: true, jobs: from_file}
  - {name: coadd, noop: true, jobs: from_file}
  - {name: report, noop: true, after: [coadd], when: "works.coadd.status == 'succeeded'"}
jobs_file: jobs.jsonl
"""


def job_lines() -> str:
    lines = []
    for v in range(3):
        lines.append({"work": "isr", "name": f"isr-{v}", "args": {"visit": v}})
        lines.append({"work": "calibrate", "name": f"cal-{v}", "parents": [f"isr/isr-{v}"]})
    lines.append(
        {"work": "coadd", "name": "coadd", "parents": [f"calibrate/cal-{v}" for v in range(3)]}
    )
    return "".join(json.dumps(line) + "\n" for line in lines)


@pytest.fixture
def local(tmp_path: Path) -> tuple[str, int]:
    (tmp_path / "wf.yaml").write_text(TEMPLATE)
    (tmp_path / "jobs.jsonl").write_text(job_lines())
    url = f"sqlite:///{tmp_path / 'orchid.db'}"
    db = Database(url)
    db.upgrade()
    raw, base = load_template(tmp_path / "wf.yaml")
    wf = submit(db, raw, base_dir=base, now=time.time())
    db.dispose()
    return url, wf


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout_bytes, result.stderr


def test_every_format_from_a_local_database(local: tuple[str, int], tmp_path: Path) -> None:
    url, wf = local
    code, out, _ = run("graph", str(wf), "--db", url)
    assert code == 0
    root = ET.fromstring(out)
    assert [
        g.get("data-work") for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("data-work")
    ] == [
        "isr",
        "calibrate",
        "coadd",
        "report",
    ]
    code, out, _ = run("graph", str(wf), "--db", url, "--format", "dot")
    dot = out.decode()
    # job-level parents become dashed work-to-work edges; `after` a solid one
    assert (
        '"isr" -> "calibrate" [style=dashed];' in dot
        and '"calibrate" -> "coadd" [style=dashed];' in dot
    )
    assert '"coadd" -> "report";' in dot and "waiting" in dot
    code, out, _ = run("graph", str(wf), "--db", url, "-f", "mermaid")
    assert code == 0 and out.decode().startswith("flowchart LR\n") and "w0 -.-> w1" in out.decode()
    target = tmp_path / "g.png"
    code, _, err = run("graph", str(wf), "--db", url, "-f", "png", "-o", str(target))
    assert code == 0 and "png graph written" in err
    assert Image.open(io.BytesIO(target.read_bytes())).format == "PNG"


def test_bad_arguments_are_refused(local: tuple[str, int]) -> None:
    url, wf = local
    assert run("graph", str(wf), "--db", url, "--format", "gif")[0] == 2
    assert run("graph", "0", "--db", url)[0] == 2


def test_from_a_server_as_its_owner_only(api: Api) -> None:  # noqa: F811
    wf = api.submit("alice")["id"]
    root = api.base_url.removesuffix("/api/v1")
    env = {"ORCHID_TOKEN": api.tokens["alice"], "ORCHID_DB_URL": ""}
    code, out, _ = run("graph", str(wf), "--url", root, "-f", "dot", env=env)
    assert code == 0 and '"w0"' in out.decode()
    r = api.client("carol").get(f"/workflows/{wf}/graph")
    assert r.status_code == 404
    graph = api.client("alice").get(f"/workflows/{wf}/graph").json()
    assert (
        graph["nodes"][0]["name"] == "w0" and graph["edges"] == [] and graph["status"] == "pending"
    )
