"""JSON logs for log collectors: one object per line, with the ids a record carries."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from orchid.telemetry.logs import json_handler


def test_a_record_becomes_one_json_object() -> None:
    out = io.StringIO()
    log = logging.getLogger("orchid.test.json")
    log.propagate = False
    log.addHandler(json_handler(out))
    log.setLevel(logging.INFO)
    log.info("workflow %s done", 7, extra={"workflow_id": 7, "job_id": 3})
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("it failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "workflow 7 done" and first["level"] == "info"
    assert (
        first["workflow_id"] == 7 and first["job_id"] == 3 and first["logger"] == "orchid.test.json"
    )
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["level"] == "error" and "ValueError: bad" in second["exception"]


def test_the_cli_logs_json_when_asked_and_refuses_unknown_formats(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text("name: j\nworks:\n  - {name: a, noop: true}\n")
    env = {
        **os.environ,
        "ORCHID_HOME": str(tmp_path),
        "ORCHID_LOG_FORMAT": "json",
        "ORCHID_POLL_INTERVAL": "0.05",
    }
    cmd = [
        sys.executable,
        "-m",
        "orchid.cli.main",
        "run",
        str(tmp_path / "wf.yaml"),
        "--db",
        str(tmp_path / "o.db"),
        "-v",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert any("submitted" in line["message"] for line in lines)
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    env["ORCHID_LOG_FORMAT"] = "xml"
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "ORCHID_LOG_FORMAT='xml'" in bad.stderr
