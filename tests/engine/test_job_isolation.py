"""A user's job never gets the service's powers (issue 15, item 1).

Real ``orchid agents`` processes, started as root with the database URL and a secret in
their environment only (never on their command line), run jobs with ``run_as`` mapping
two Orchid users to two unprivileged OS users. Mallory's jobs try every way to the
service's powers seen in the review: the job's own environment, the agents'
``/proc/<pid>/environ``, the SQLite database file, ``orchid token create --admin``, a
PostgreSQL connection with the agents' URL, and alice's logs on disk. Each finds nothing;
the agents go on running jobs afterwards.

(The test PostgreSQL trusts local connections; that a job cannot learn the URL is what is
tested here: password and ``pg_hba.conf`` are the deployment's part, docs/security.md.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchid.engine.submit import submit
from orchid.store import tokens
from orchid.store.db import Database
from orchid.store.tables import jobs, workflows
from tests.executors.osusers import open_tmp, os_user, readable_code, shared_python

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux users and /proc"),
]
__all__ = ["open_tmp"]

SECRET = "s3cr3t-the-agents-only"

ATTACK = r'''
import glob, json, os, subprocess, sys

def _try(action):
    try:
        return {"ok": action()}
    except Exception as exc:
        return {"error": type(exc).__name__}

def _read(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")

def _environs():
    """Every process environment it can read but its own user's processes."""
    me, found = os.getuid(), {}
    for folder in glob.glob("/proc/[0-9]*"):
        try:
            if os.stat(folder).st_uid == me:
                continue
            found[folder] = _read(folder + "/environ")
        except OSError:
            pass
    return found

def _orchid(*args, **env):
    done = subprocess.run(
        [sys.executable, "-m", "orchid.cli.main", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )
    return {"code": done.returncode, "out": done.stdout, "err": done.stderr[-2000:]}

def _urls(texts):
    return sorted({
        word.split("=", 1)[-1]
        for text in texts
        for word in text.replace("\0", "\n").split()
        if "postgresql" in word or "sqlite:" in word
    })

def attack(route, home, alice_log="", **_):
    if route == "env":
        return {"env": dict(os.environ)}
    if route == "proc":
        return {
            "agent": _try(lambda: _read(f"/proc/{os.getppid()}/environ")),
            "others": _environs(),
        }
    if route == "db_file":
        files = [f"{home}/orchid.db", f"{home}/orchid.db-wal", f"{home}/orchid.db-shm"]
        return {
            "files": {p: _try(lambda p=p: len(_read(p))) for p in files},
            "home": _try(lambda: os.listdir(home)),
            "settings": _try(lambda: _read(f"{home}/settings.toml")),
        }
    if route == "token":
        import tempfile
        mine = tempfile.mkdtemp()  # a database of its own: its tokens open nothing
        return {
            "plain": _orchid("token", "create", "--user", "mallory", "--admin"),
            "file": _orchid("token", "create", "--user", "mallory", "--admin",
                            "--db", f"{home}/orchid.db"),
            "home": _orchid("token", "create", "--user", "mallory", "--admin",
                            ORCHID_HOME=home),
            "own": _orchid("token", "create", "--user", "mallory", "--admin",
                           ORCHID_HOME=mine),
        }
    if route == "postgres":
        texts = [json.dumps(dict(os.environ)), *_environs().values()]
        for path in (f"{home}/settings.toml", f"/proc/{os.getppid()}/environ"):
            got = _try(lambda: _read(path))
            texts.append(got.get("ok", ""))
        urls = [u for u in _urls(texts) if "postgresql" in u]
        connected = []
        for url in urls:
            import sqlalchemy as sa
            try:
                with sa.create_engine(url).connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                connected.append(url)
            except Exception:
                pass
        return {"urls": urls, "connected": connected}
    if route == "logs":
        logs = os.path.dirname(os.path.dirname(alice_log))
        return {
            "log": _try(lambda: _read(alice_log)),
            "folder": _try(lambda: os.listdir(os.path.dirname(alice_log))),
            "logs": _try(lambda: os.listdir(logs)),
        }
    raise ValueError(route)
'''
ROUTES = ("env", "proc", "db_file", "token", "postgres", "logs")


def one_job(name: str, script: str) -> dict[str, Any]:
    return {"name": name, "works": [{"name": "w", "command": ["sh", "-c", script]}]}


def attack_workflow(home: Path, alice_log: Path) -> dict[str, Any]:
    listed = [
        {"name": route, "args": {"route": route, "home": str(home), "alice_log": str(alice_log)}}
        for route in ROUTES
    ]
    return {
        "name": "attack",
        "works": [
            {"name": "attack", "function": "orchid_attack:attack", "jobs": listed, "retries": 0}
        ],
    }


def run_agents(python: str, home: Path, url: str, db: Database, wfs: list[int]) -> None:
    """``orchid agents`` until these workflows end; the URL only in its environment."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.environ["PYTHONPATH"],
        "ORCHID_HOME": str(home),
        "ORCHID_DB_URL": url,
        "SECRET_SAUCE": SECRET,
        "ORCHID_POLL_INTERVAL": "0.1",
    }
    agents = subprocess.Popen(
        [python, "-m", "orchid.cli.main", "agents"],
        env=env,
        cwd=str(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while any(status(db, wf) in ("pending", "running") for wf in wfs):
            assert agents.poll() is None, agents.stderr.read() if agents.stderr else ""
            assert time.monotonic() < deadline, "the workflows did not end in time"
            time.sleep(0.2)
    finally:
        agents.send_signal(signal.SIGTERM)
        try:
            agents.wait(30)
        except subprocess.TimeoutExpired:
            agents.kill()
            agents.wait()
    assert agents.returncode == 0, agents.stderr.read() if agents.stderr else ""


def results(db: Database, wf: int) -> dict[str, Any]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.name, jobs.c.status, jobs.c.result, jobs.c.error).where(
                jobs.c.workflow_id == wf
            )
        ).all()
    return {r.name: r for r in rows}


def status(db: Database, wf: int) -> str:
    with db.engine.connect() as conn:
        q = sa.select(workflows.c.status).where(workflows.c.id == wf)
        return str(conn.execute(q).scalar_one())


@pytest.mark.parametrize("reuse", [False, True], ids=["process", "pool"])
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_users_jobs_never_get_the_services_powers(
    open_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    backend: str,
    reuse: bool,
) -> None:
    alice, mallory = os_user("alice"), os_user("mallory")
    python = shared_python(mallory, monkeypatch)
    home = open_tmp / "home"
    home.mkdir(mode=0o700)
    url = (
        f"sqlite:///{home / 'orchid.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    db = Database(url)
    db.upgrade()
    settings = home / "settings.toml"
    settings.write_text(
        f"reuse_workers = {'true' if reuse else 'false'}\nworkers = 2\n"
        "[executors.local]\n"
        f'run_as = {{ alice = "{alice.name}", mallory = "{mallory.name}" }}\n'
    )
    settings.chmod(0o600)
    code = readable_code(open_tmp, "orchid_attack", ATTACK)

    def submitted(raw: dict[str, Any], owner: str) -> int:
        return submit(db, raw, base_dir=code, owner=owner, now=time.time())

    def mallory_tokens() -> int:
        with db.engine.connect() as conn:
            return sum(t.user == "mallory" for t in tokens.list_tokens(conn))

    before = mallory_tokens()
    secret_wf = submitted(one_job("secret", "echo alice-secret-log"), "alice")
    run_agents(python, home, url, db, [secret_wf])
    assert status(db, secret_wf) == "succeeded"
    with db.engine.connect() as conn:
        log_uri = conn.execute(
            sa.select(jobs.c.log_uri).where(jobs.c.workflow_id == secret_wf)
        ).scalar()
    alice_log = Path(log_uri)  # in the database's own log folder, below home/logs
    assert home / "logs" in alice_log.parents
    assert alice_log.read_text().strip() == "alice-secret-log"

    attack_wf = submitted(attack_workflow(home, alice_log), "mallory")
    after = [submitted(one_job("after", "echo fine"), who) for who in ("mallory", "alice")]
    run_agents(python, home, url, db, [attack_wf, *after])

    found = {name: row for name, row in results(db, attack_wf).items()}
    assert set(found) == set(ROUTES)
    for name, row in found.items():
        assert row.status == "succeeded", (name, row.error)  # it ran, and learned nothing:
    seen = {name: row.result for name, row in found.items()}
    everything = json.dumps(seen)
    assert SECRET not in everything
    assert url not in everything
    assert "ORCHID_DB_URL" not in everything and "SECRET_SAUCE" not in everything

    env = seen["env"]["env"]
    assert not [
        k for k in env if k.startswith("ORCHID_") and k in ("ORCHID_HOME", "ORCHID_SETTINGS")
    ]
    assert env["USER"] == mallory.name

    assert seen["proc"]["agent"] == {"error": "PermissionError"}
    assert seen["proc"]["others"] == {}

    files = seen["db_file"]["files"]
    assert files[f"{home}/orchid.db"] == (
        {"error": "PermissionError"} if backend == "sqlite" else {"error": "FileNotFoundError"}
    )
    assert all("ok" not in v for v in files.values())
    assert seen["db_file"]["home"] == {"error": "PermissionError"}
    assert seen["db_file"]["settings"] == {"error": "PermissionError"}

    assert mallory_tokens() == before  # no admin token in the service's database
    with db.begin() as conn:
        for attempt in seen["token"].values():
            for word in attempt["out"].split():
                assert tokens.lookup(conn, word, time.time()) is None

    assert seen["postgres"] == {"urls": [], "connected": []}

    assert seen["logs"] == {
        "log": {"error": "PermissionError"},
        "folder": {"error": "PermissionError"},
        "logs": {"error": "PermissionError"},
    }
    for wf in after:  # the agents kept working
        assert status(db, wf) == "succeeded"
    db.dispose()
