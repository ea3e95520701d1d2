"""The ``orchid`` command as a user runs it: exit codes, messages, steering workflows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchid.store.tables import commands
from tests.waiting import wait_for

ORCHID = [sys.executable, "-m", "orchid.cli.main"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ORCHID_HOME": str(tmp_path / "home"),
        "ORCHID_DB_URL": f"sqlite:///{tmp_path / 'orchid.db'}",
        "ORCHID_POLL_INTERVAL": "0.1",
        "COLUMNS": "120",
    }


def orchid(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ORCHID, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_schema_is_json_schema(env: dict[str, str]) -> None:
    proc = orchid(env, "schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert schema["title"] == "Orchid workflow template"
    assert {"name", "works", "loops", "parameters"} <= set(schema["properties"])


def test_validate_accepts_and_rejects(env: dict[str, str], tmp_path: Path) -> None:
    good = write(
        tmp_path,
        "name: ok\nworks:\n  - {name: a, noop: true}\n  - {name: b, noop: true, after: [a]}\n",
    )
    proc = orchid(env, "validate", good)
    assert proc.returncode == 0 and "a → b" in proc.stdout
    bad = write(tmp_path, "name: bad\nworks:\n  - {name: a, noop: true, retires: 2}\n", "bad.yaml")
    proc = orchid(env, "validate", bad)
    assert proc.returncode == 2
    assert "works[0](a).retires" in proc.stderr and "not a known field" in proc.stderr


def test_missing_template_file_is_a_clear_error(env: dict[str, str], tmp_path: Path) -> None:
    proc = orchid(env, "run", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2
    assert "no template file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_parameter_names_the_declared_ones(env: dict[str, str], tmp_path: Path) -> None:
    path = write(tmp_path, "name: p\nparameters: {n: 1}\nworks:\n  - {name: a, noop: true}\n")
    proc = orchid(env, "run", path, "-p", "m=2")
    assert proc.returncode == 2
    assert "unknown parameter(s) m" in proc.stderr and "declares: n" in proc.stderr
    proc = orchid(env, "run", path, "-p", "novalue")
    assert proc.returncode == 2 and "key=value" in proc.stderr


def test_run_failure_exits_one_and_logs_are_kept(env: dict[str, str], tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: f\nworks:\n  - name: boom\n    command: [sh, -c, 'echo out; echo oops >&2; exit 3']\n",
    )
    proc = orchid(env, "run", path)
    assert proc.returncode == 1
    assert "failed" in proc.stdout
    assert orchid(env, "logs", "1").stdout == "out\n"
    assert orchid(env, "logs", "1", "--err").stdout == "oops\n"
    status = json.loads(orchid(env, "status", "1", "--json").stdout)
    assert status["status"] == "failed"
    assert status["works"][0]["counts"] == {"failed": 1}


def test_unknown_workflow_and_job(env: dict[str, str]) -> None:
    assert orchid(env, "db", "upgrade").returncode == 0  # a database, without workflows
    for args in (("status", "99"), ("abort", "99"), ("logs", "99")):
        proc = orchid(env, *args)
        assert proc.returncode == 2, args
        assert "no workflow 99" in proc.stderr or "no job 99" in proc.stderr


def test_status_lists_workflows(env: dict[str, str], tmp_path: Path) -> None:
    first = orchid(env, "status")  # nothing was run: there is no database yet
    assert first.returncode == 2 and "there is no database at" in first.stderr
    path = write(tmp_path, "name: listed\nworks:\n  - {name: a, noop: true}\n")
    assert orchid(env, "run", path).returncode == 0
    rows = json.loads(orchid(env, "status", "--json").stdout)
    assert [(r["id"], r["name"], r["status"]) for r in rows] == [(1, "listed", "succeeded")]


def test_submit_then_agents_in_burst_mode(env: dict[str, str], tmp_path: Path) -> None:
    path = write(
        tmp_path, "name: b\nworks:\n  - {name: a, command: [echo, hi], map: {items: [{}, {}]}}\n"
    )
    proc = orchid(env, "submit", path)
    assert proc.returncode == 0 and proc.stdout.strip() == "1"
    assert json.loads(orchid(env, "status", "1", "--json").stdout)["status"] == "pending"
    assert orchid(env, "agents", "--burst").returncode == 0
    assert json.loads(orchid(env, "status", "1", "--json").stdout)["status"] == "succeeded"
    assert orchid(env, "watch", "1").returncode == 0


def wait_status(
    env: dict[str, str], wf: str, wanted: str, timeout: float = 60, *, or_later: bool = False
) -> dict[str, object]:
    """Poll until the workflow is ``wanted`` (or, with ``or_later``, has moved past it: on a
    loaded machine a short-lived status can come and go between two polls)."""

    def reached() -> dict[str, object] | None:
        status: dict[str, object] = json.loads(orchid(env, "status", wf, "--json").stdout)
        if status["status"] == wanted or (
            or_later and status["status"] not in ("pending", "suspended")
        ):
            return status
        return None

    return wait_for(f"workflow {wf} to be {wanted}", reached, timeout, 0.2)


def command_outcome(env: dict[str, str], wf: int) -> tuple[str, str] | None:
    """How the agents answered the workflow's last command (None: not yet)."""
    engine = sa.create_engine(env["ORCHID_DB_URL"])
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(commands.c.status, commands.c.message)
                .where(commands.c.workflow_id == wf)
                .order_by(commands.c.id.desc())
                .limit(1)
            ).first()
    finally:
        engine.dispose()
    if row is None or row.status == "pending":
        return None
    return str(row.status), str(row.message)


@pytest.mark.slow
def test_suspend_resume_abort_retry(env: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    go = tmp_path / "go"  # the slow jobs wait for it (at most 2 min): a busy machine cannot
    # finish the workflow before the test has suspended and resumed it
    path = write(
        tmp_path,
        f"""name: steer
works:
  - name: slow
    command: [sh, -c, 'i=0; while [ ! -e {go} ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done']
    map: {{items: [{{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}]}}
  - name: flaky
    after: [slow]
    command: [sh, -c, 'test -e {marker}']
""",
    )
    agents = subprocess.Popen(
        [*ORCHID, "agents"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert orchid(env, "submit", path).stdout.strip() == "1"
        wait_status(env, "1", "running")
        assert orchid(env, "suspend", "1").returncode == 0
        wait_status(env, "1", "suspended")
        assert orchid(env, "resume", "1").returncode == 0
        wait_status(env, "1", "running")
        go.touch()
        wait_status(env, "1", "failed")  # flaky fails: the marker is missing
        marker.touch()
        assert orchid(env, "retry", "1").returncode == 0
        done = wait_status(env, "1", "succeeded")
        assert [w["status"] for w in done["works"]] == ["succeeded", "succeeded"]  # type: ignore[index]
        # a second workflow, aborted while it runs: its job waits (at most 2 min) for a gate
        # that never opens, so that a slow machine cannot finish it before the abort
        gate = tmp_path / "never"
        hold = write(
            tmp_path,
            f"""name: hold
works:
  - name: wait
    command: [sh, -c, 'i=0; while [ ! -e {gate} ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done']
""",
            "hold.yaml",
        )
        assert orchid(env, "submit", hold).stdout.strip() == "2"
        wait_status(env, "2", "running")
        assert orchid(env, "abort", "2").returncode == 0
        wait_status(env, "2", "cancelled")
        # commands that do not apply are refused, and say why
        assert orchid(env, "resume", "2").returncode == 0  # queued...
        outcome = wait_for("the clerk to answer the resume", lambda: command_outcome(env, 2))
        assert outcome == ("rejected", "cannot resume: workflow 2 is cancelled, not suspended")
        assert json.loads(orchid(env, "status", "2", "--json").stdout)["status"] == "cancelled"
    finally:
        agents.terminate()
        agents.wait(30)


def test_logs_swapped_for_links_are_not_printed(env: dict[str, str], tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    swap = (
        "import os, sys; print('hi', flush=True); p = os.readlink('/proc/self/fd/2'); "
        "os.unlink(p); os.symlink(sys.argv[1], p)"
    )
    cmd = json.dumps([sys.executable, "-c", swap, str(secret)])
    path = write(tmp_path, f"name: swap\nworks:\n  - name: a\n    command: {cmd}\n")
    assert orchid(env, "run", path).returncode == 0
    assert orchid(env, "logs", "1").stdout == "hi\n"
    proc = orchid(env, "logs", "1", "--err")
    assert proc.returncode != 0 and "TOP SECRET" not in proc.stdout
    assert "stderr of job 1 is not available" in proc.stderr and "symbolic link" in proc.stderr


def test_orchid_run_takes_posix_folders_from_a_data_folder_of_its_own(
    env: dict[str, str], tmp_path: Path
) -> None:
    inbox = tmp_path / "home" / "data" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "a.dat").write_text("a")
    (inbox / "_END").touch()
    (tmp_path / "inbox").mkdir()  # beside the working folder: not what `inbox` means
    work = "  - name: take\n    noop: true\n    input: {manager: posix, collections: [%s]}\n"
    path = write(tmp_path, "name: data\nworks:\n" + work % "inbox")
    proc = orchid(env, "run", path)
    assert proc.returncode == 0, proc.stderr
    for bad in ("../inbox", str(tmp_path / "inbox")):
        proc = orchid(env, "run", write(tmp_path, "name: data\nworks:\n" + work % bad))
        assert proc.returncode != 0 and f"collection {bad!r}" in proc.stderr, proc.stderr
