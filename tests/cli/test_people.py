"""The CLI for people (issue 16, item 5): `orchid jobs`, read-only commands that create
nothing, commands that say when no agent will apply them, a clean Ctrl-C of `orchid run`,
and `--json` wherever a table is printed. Every process is started here, stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchid.cli.main import app
from orchid.core.model import ALIVE_S
from orchid.errors import NotFound
from orchid.store import agents as agents_store
from tests.api.conftest import Agents, Api, agents, api, executor_name  # noqa: F401

ORCHID = [sys.executable, "-m", "orchid.cli.main"]
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No Orchid setting of this machine; state under tmp_path."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORCHID_")}
    return {
        **clean,
        "ORCHID_HOME": str(tmp_path / "home"),
        "ORCHID_DB_URL": f"sqlite:///{tmp_path / 'orchid.db'}",
        "ORCHID_POLL_INTERVAL": "0.1",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "COLUMNS": "160",
    }


def orchid(
    env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ORCHID, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- orchid jobs ----------------------------------------------------------------------------

SWEEP = """name: sweep
works:
  - name: step
    command: [sh, -c, 'echo {i}; test {i} != 2']
    map: {product: {i: [1, 2, 3]}}
    on_failure: continue
  - {name: last, after: [step], trigger: all_done, command: [echo, done]}
"""


def test_jobs_lists_ids_status_attempts_and_exit_codes(env: dict[str, str], tmp_path: Path) -> None:
    run = orchid(env, "run", write(tmp_path, SWEEP), "--json")
    assert run.returncode == 1  # one job fails
    lines = [json.loads(line) for line in run.stdout.splitlines()]  # JSON lines, no table
    assert lines[-1]["status"] == "partial" and lines[-1]["works"][0]["counts"] == {
        "succeeded": 2,
        "failed": 1,
    }
    watched = orchid(env, "watch", "1", "--json")
    assert watched.returncode == 1 and json.loads(watched.stdout) == lines[-1]
    rows = json.loads(orchid(env, "jobs", "1", "--json").stdout)
    assert [(r["id"], r["work"], r["name"], r["status"], r["exit_code"]) for r in rows] == [
        (1, "step", "0", "succeeded", 0),
        (2, "step", "1", "failed", 1),
        (3, "step", "2", "succeeded", 0),
        (4, "last", "0", "succeeded", 0),
    ]
    assert all(r["attempt"] == 1 and r["started_at"] <= r["finished_at"] for r in rows)
    failed = json.loads(orchid(env, "jobs", "1", "--status", "failed", "--json").stdout)
    assert [r["id"] for r in failed] == [2]
    assert orchid(env, "logs", str(failed[0]["id"])).stdout == "2\n"  # the id works for logs
    last = json.loads(orchid(env, "jobs", "1", "--work", "last", "--json").stdout)
    assert [r["name"] for r in last] == ["0"]
    table = orchid(env, "jobs", "1", "--status", "failed", "--status", "succeeded")
    assert table.returncode == 0
    assert "attempt" in table.stdout and "exit" in table.stdout and "orchid logs" in table.stdout
    one = orchid(env, "jobs", "1", "--limit", "1", "--json")
    assert len(json.loads(one.stdout)) == 1 and "--limit" in one.stderr
    bad = orchid(env, "jobs", "1", "--work", "nope")
    assert bad.returncode == 2 and "no work 'nope'" in bad.stderr and "step, last" in bad.stderr
    assert orchid(env, "jobs", "1", "--status", "bogus").returncode == 2
    assert "no workflow 7" in orchid(env, "jobs", "7").stderr


def test_jobs_of_a_loop_show_each_iteration(env: dict[str, str], tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """name: lp
works:
  - {name: body, command: [echo, '{i}'], parameters: {i: "${loop.iteration}"}}
loops:
  - {name: l, works: [body], until: "loop.iteration >= 2", max_iterations: 5}
""",
    )
    assert orchid(env, "run", path).returncode == 0
    rows = json.loads(orchid(env, "jobs", "1", "--work", "body", "--json").stdout)
    assert [r["iteration"] for r in rows] == [0, 1, 2]  # as `loop.iteration` counts them
    assert [orchid(env, "logs", str(r["id"])).stdout for r in rows] == ["0\n", "1\n", "2\n"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_jobs_through_a_server(api: Api) -> None:  # noqa: F811
    template = {
        "name": "two",
        "works": [
            {"name": "a", "noop": True, "jobs": [{"name": "x"}, {"name": "y"}]},
            {"name": "b", "noop": True, "jobs": [{"name": "z", "parents": ["a/x"]}]},
        ],
    }
    wf = api.submit("alice", template)["id"]
    root = api.base_url.removesuffix("/api/v1")
    env = {"ORCHID_TOKEN": api.tokens["alice"], "ORCHID_DB_URL": ""}
    code, out, _ = run_cli("jobs", str(wf), "--url", root, "--json", env=env)
    assert code == 0
    rows = json.loads(out)
    assert [(r["work"], r["name"], r["attempt"]) for r in rows] == [
        ("a", "x", 0),
        ("a", "y", 0),
        ("b", "z", 0),
    ]
    code, out, _ = run_cli("jobs", str(wf), "--url", root, "--work", "b", "--json", env=env)
    assert code == 0 and [r["work"] for r in json.loads(out)] == ["b"]
    code, out, _ = run_cli("jobs", str(wf), "--url", root, env=env)
    assert code == 0 and "attempt" in out
    # another user sees nothing of it
    env_carol = {"ORCHID_TOKEN": api.tokens["carol"], "ORCHID_DB_URL": ""}
    result = CliRunner().invoke(app, ["jobs", str(wf), "--url", root], env=env_carol)
    assert result.exit_code != 0


# --- read-only commands create nothing ------------------------------------------------------


def test_read_only_commands_never_create_a_database_or_folders(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "here"
    work.mkdir()
    monkeypatch.chdir(work)
    env = {**env, "ORCHID_DB_URL": "", "ORCHID_URL": ""}  # the default database: in home
    before = tree(tmp_path)
    for args in (
        ("status",),
        ("status", "1"),
        ("logs", "1"),
        ("jobs", "1"),
        ("graph", "1"),
        ("watch", "1"),
    ):
        for where in (("--db", "typo/x.db"), ()):
            result = CliRunner().invoke(app, [*args, *where], env=env)
            path = work / "typo" / "x.db" if where else tmp_path / "home" / "orchid.db"
            assert isinstance(result.exception, NotFound), (args, where, result.output)
            assert f"there is no database at {path}" in str(result.exception)
    assert tree(tmp_path) == before  # no typo/, no home/, no orchid.db
    # as a person sees it
    proc = orchid(env, "status", "--db", "typo/x.db", cwd=work)
    assert proc.returncode == 2
    assert f"there is no database at {work / 'typo' / 'x.db'}" in " ".join(proc.stderr.split())
    assert tree(tmp_path) == before
    # a file that is not an Orchid database is not taken for an empty one, nor changed
    (work / "notes.db").write_bytes(b"")
    result = CliRunner().invoke(app, ["status", "--db", "notes.db"], env=env)
    assert "is not an Orchid database" in str(result.exception)
    assert (work / "notes.db").read_bytes() == b""


# --- commands when no agent runs ------------------------------------------------------------


def test_commands_say_when_no_agent_will_apply_them(env: dict[str, str], tmp_path: Path) -> None:
    path = write(tmp_path, "name: q\nworks:\n  - {name: a, command: [sleep, '30']}\n")
    assert orchid(env, "submit", path).stdout.strip() == "1"
    for command in ("suspend", "resume", "abort"):
        proc = orchid(env, command, "1")
        assert proc.returncode == 0, proc.stderr
        said = " ".join(proc.stdout.split())
        assert f"{command} of workflow 1 queued, but no agent is running" in said
        assert f"orchid agents --db {tmp_path / 'orchid.db'}" in said
        assert "the agents apply it" not in said
    # still queued: the first agent to start applies them
    assert orchid(env, "agents", "--burst").returncode == 0
    status = json.loads(orchid(env, "status", "1", "--json").stdout)
    assert status["status"] == "cancelled"


@pytest.mark.slow
def test_commands_with_a_live_agent_just_queue(env: dict[str, str], tmp_path: Path) -> None:
    gate = tmp_path / "open"
    path = write(
        tmp_path,
        "name: q\nworks:\n  - name: a\n    command: [sh, -c, "
        f"'i=0; while [ ! -e {gate} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done']\n",
    )
    agents_proc = subprocess.Popen(
        [*ORCHID, "agents"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert orchid(env, "submit", path).stdout.strip() == "1"
        deadline = time.monotonic() + 60
        while json.loads(orchid(env, "status", "1", "--json").stdout)["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        proc = orchid(env, "abort", "1")
        assert proc.returncode == 0
        assert "queued; the agents apply it" in proc.stdout and "no agent" not in proc.stdout
    finally:
        gate.touch()
        agents_proc.terminate()
        agents_proc.wait(30)


def test_commands_through_a_server_without_agents(api: Api) -> None:  # noqa: F811
    wf = api.submit("alice")["id"]
    root = api.base_url.removesuffix("/api/v1")
    env = {"ORCHID_TOKEN": api.tokens["alice"], "ORCHID_DB_URL": ""}
    code, out, _ = run_cli("suspend", str(wf), "--url", root, env=env)
    assert code == 0
    assert "no agent is running" in " ".join(out.split()) and "orchid agents" in out


def test_commands_through_a_server_with_agents(api: Api, agents: Agents) -> None:  # noqa: F811
    deadline = time.monotonic() + 30
    while True:  # the agents' first heartbeat
        with api.db.engine.connect() as conn:
            if agents_store.alive(conn, since=time.time() - ALIVE_S):
                break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    wf = api.submit("alice")["id"]
    root = api.base_url.removesuffix("/api/v1")
    env = {"ORCHID_TOKEN": api.tokens["alice"], "ORCHID_DB_URL": ""}
    code, out, _ = run_cli("suspend", str(wf), "--url", root, env=env)
    assert code == 0 and "the agents apply it" in out and "no agent" not in out


# --- a clean Ctrl-C of orchid run -----------------------------------------------------------


def hung(run: subprocess.Popen[bytes], log: Path) -> str:
    """What a process that did not stop was doing: its signal masks (is SIGINT ignored or
    blocked?) and its threads' stacks (faulthandler, on SIGABRT), with its log."""
    try:
        status = Path(f"/proc/{run.pid}/status").read_text()
        masks = " ".join(line for line in status.splitlines() if line.startswith("Sig"))
    except OSError:
        masks = "(no /proc status)"
    run.send_signal(signal.SIGABRT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        run.wait(10)
    return f"{masks}\n{log.read_text(errors='replace')}"


def test_ctrl_c_of_run_gives_its_jobs_back_at_once(env: dict[str, str], tmp_path: Path) -> None:
    """The jobs of an interrupted `orchid run` are stopped and reaped, and the next agents
    take them at once, not when their (here 120 s) leases would have run out."""
    # (PYTHONFAULTHANDLER: a run that does not stop dumps its threads when aborted below)
    env = {**env, "ORCHID_LEASE_SECONDS": "120", "PYTHONFAULTHANDLER": "1"}
    pids, fast = tmp_path / "pids", tmp_path / "fast"
    path = write(
        tmp_path,
        f"""name: sleepy
works:
  - name: nap
    command: [sh, -c, 'echo $$ >> {pids}; test -e {fast} || sleep 100']
    map: {{items: [{{}}, {{}}, {{}}]}}
""",
    )
    log = tmp_path / "run.log"
    # as from a terminal: a test run started in the background (`&` in a script) ignores
    # SIGINT, and a child would inherit that; a caught signal is the default again after exec
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with log.open("wb") as out:
            run = subprocess.Popen(
                [*ORCHID, "run", path, "--workers", "2"], env=env, stdout=out, stderr=out
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 60
        while not pids.exists() or len(pids.read_text().split()) < 2:
            assert run.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        run.send_signal(signal.SIGINT)
        try:
            code = run.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`orchid run` did not stop: {hung(run, log)}")
        assert code == 130, log.read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    for pid in map(int, pids.read_text().split()):  # the jobs were stopped with it
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    rows = json.loads(orchid(env, "jobs", "1", "--json").stdout)
    assert [r["status"] for r in rows] == ["ready", "ready", "ready"]
    assert [r["max_attempts"] - r["attempt"] for r in rows] == [1, 1, 1]  # no retry spent
    fast.touch()
    started = time.monotonic()
    assert orchid(env, "agents", "--burst", timeout=100).returncode == 0
    assert time.monotonic() - started < 60  # generous; the leases alone would take 120 s
    status = json.loads(orchid(env, "status", "1", "--json").stdout)
    assert status["status"] == "succeeded"
    assert "ready to run again" in log.read_text()  # what `orchid run` said
