"""Several databases under one ORCHID_HOME: each keeps its own logs and results (issue 16)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchid.store import jobs
from orchid.store.db import Database

ORCHID = [sys.executable, "-m", "orchid.cli.main"]

# each job writes its result and its log line, then waits until the other database's job
# has done so too: files shared by the two runs would be overwritten before either ends
TEMPLATE = """name: marker
parameters: {mark: X, other: Y}
works:
  - name: a
    parameters: {mark: "${params.mark}", other: "${params.other}"}
    env: {MARK: "{mark}", OTHER: "{other}"}
    command: [sh, -c, 'echo "log $MARK"; echo "\\"$MARK\\"" > "$ORCHID_RESULT_FILE";
      touch GATES/$MARK; i=0; while [ ! -e GATES/$OTHER ] && [ $i -lt 600 ];
      do sleep 0.1; i=$((i+1)); done']
"""


def test_two_databases_under_one_home_keep_their_logs_and_results(tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    template = tmp_path / "wf.yaml"
    template.write_text(TEMPLATE.replace("GATES", str(gates)))
    env = {
        **os.environ,
        "ORCHID_HOME": str(tmp_path / "home"),
        "ORCHID_POLL_INTERVAL": "0.1",
        "COLUMNS": "120",
    }
    env.pop("ORCHID_DB_URL", None)
    dbs = {mark: str(tmp_path / f"{mark}.db") for mark in ("A", "B")}
    runs = {
        mark: subprocess.Popen(
            [*ORCHID, "run", str(template), "--db", db, "-p", f"mark={mark}", "-p", f"other={o}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for (mark, db), o in zip(dbs.items(), ("B", "A"), strict=True)
    }
    for mark, proc in runs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (mark, out, err)
    for mark, db in dbs.items():
        database = Database(f"sqlite:///{db}")
        try:
            with database.engine.connect() as conn:
                job = jobs.get(conn, 1)
        finally:
            database.engine.dispose()
        assert job.result == mark
        assert job.log_uri is not None and str(tmp_path / "home" / "logs") in job.log_uri
        logs = subprocess.run(
            [*ORCHID, "logs", "1", "--db", db],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert logs.stdout == f"log {mark}\n", logs.stderr
