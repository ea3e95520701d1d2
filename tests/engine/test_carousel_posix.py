"""posix feeding a workflow while it runs: files that land in a folder are processed."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from orchid.core.states import TERMINAL_WORKFLOW
from orchid.datamgr.posix import PosixManager
from orchid.engine.runner import make_runner
from orchid.engine.submit import submit
from orchid.store.db import Database
from tests.engine.carouselkit import file_rows, job_rows
from tests.engine.enginekit import describe, python_cmd, settings_for, workflow

pytestmark = pytest.mark.slow

# a job reads its file (by the path in its url) and returns its size and first line
READ = (
    "import sys, json, urllib.parse as u; p = u.urlparse(sys.argv[1]).path; "
    "data = open(p).read(); print(json.dumps({'bytes': len(data), 'first': data.splitlines()[0]}))"
)


def test_files_arriving_while_the_workflow_runs_are_processed(db: Database, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "early.txt").write_text("early\n")
    mgr = PosixManager(tmp_path, settle_s=0.3, poll_interval=0.1)
    settings = settings_for(db, tmp_path / "home", "local", workers=2)
    runner = make_runner(settings, db, data_managers={"spool": mgr})
    exe = runner.executor
    template = {
        "name": "spool",
        "works": [
            {
                "name": "read",
                "command": python_cmd(READ, "{url}"),
                "input": {"manager": "spool", "collection": "inbox", "delete_after": "processed"},
            }
        ],
    }
    wf = submit(db, template, base_dir=tmp_path, now=time.time())

    def land() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(r.status == "deleted" for r in file_rows(db)):
            time.sleep(0.05)  # the first file was processed while the others are still to come
        (inbox / "renamed.txt.part").write_text("renamed\n")
        os.rename(inbox / "renamed.txt.part", inbox / "renamed.txt")  # atomic rename into place
        with (inbox / "slow.txt").open("w") as fh:  # written in pieces: complete once still
            fh.write("slow\n")
            fh.flush()
            time.sleep(0.1)
            fh.write("more\n")
        time.sleep(0.5)
        (inbox / "_END").touch()  # no more files

    writer = threading.Thread(target=land)
    writer.start()
    deadline = time.monotonic() + 120
    try:
        runner.run(
            until=lambda: (
                time.monotonic() > deadline or workflow(db, wf).status in TERMINAL_WORKFLOW
            ),
            check_every=0.05,
        )
    finally:
        writer.join()
        exe.close()
    assert workflow(db, wf).status == "succeeded", describe(db, wf)
    results = {j.args["file"]: j.result for j in job_rows(db).values()}
    assert results == {
        "early.txt": {"bytes": 6, "first": "early"},
        "renamed.txt": {"bytes": 8, "first": "renamed"},
        "slow.txt": {"bytes": 10, "first": "slow"},
    }
    assert sorted(p.name for p in inbox.iterdir()) == ["_END"]  # deleted once processed
    assert {r.status for r in file_rows(db)} == {"deleted"}
