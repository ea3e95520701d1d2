"""``orchid`` against a server: two people on two terminals, and ``orchid up``.

Done when a second person on another terminal can `orchid submit` to a running
`orchid server` with a token, watch progress live, and cannot see or abort the first
person's workflows. Every process is started here and stopped by its PID.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rich.console import Console

from orchid.backend.remote import RemoteBackend
from orchid.cli.progress import failures, follow
from orchid.client import NotFound
from tests.client.serverkit import serve

ORCHID = [sys.executable, "-m", "orchid.cli.main"]
pytestmark = pytest.mark.timeout(120)

TEMPLATE = """name: {name}
works:
  - name: step
    command: [sh, -c, 'sleep 0.3; echo step {{i}}']
    map: {{product: {{i: [1, 2, 3, 4]}}}}
  - {{name: last, after: [step], command: [echo, done]}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(tmp_path: Path) -> dict[str, str]:
    """This machine's environment without any Orchid setting, state kept in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHID_")}
    env.update(
        ORCHID_HOME=str(tmp_path / "home"),
        ORCHID_POLL_INTERVAL="0.1",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        COLUMNS="120",
    )
    return env


def orchid(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ORCHID, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def parallel(calls: Iterable[tuple[Any, ...]]) -> list[subprocess.CompletedProcess[str]]:
    """``orchid(env, *args)`` for each (env, *args) at once, as people on many terminals."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda call: orchid(call[0], *call[1:]), calls))


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [*ORCHID, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(10)


def wait_for_ping(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"the server exited: {log.read_text()}"
        try:
            if httpx.get(f"{url}/api/v1/ping", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"no answer from {url}: {log.read_text()}"
        time.sleep(0.1)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`orchid server` and `orchid agents` on one SQLite database; (url, admin env)."""
    env = clean_env(tmp_path)
    db = str(tmp_path / "orchid.db")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log, agents_log = tmp_path / "server.log", tmp_path / "agents.log"
    server = start(env, server_log, "server", "--db", db, "--port", str(port))
    agents = None
    try:
        wait_for_ping(url, server, server_log)  # the server has made the schema by now
        agents = start(env, agents_log, "agents", "--db", db, "--workers", "4")
        yield url, {**env, "ORCHID_DB_URL": f"sqlite:///{db}"}
    finally:
        if agents is not None:
            stop(agents)
        stop(server)


def token(admin_env: dict[str, str], user: str) -> str:
    made = orchid(admin_env, "token", "create", "--user", user)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def as_user(env: dict[str, str], url: str, token: str) -> dict[str, str]:
    person = {k: v for k, v in env.items() if k != "ORCHID_DB_URL"}
    return {**person, "ORCHID_URL": url, "ORCHID_TOKEN": token}


def test_two_people_one_server(service: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, admin = service
    alice_token, bob_token = parallel(
        (admin, "token", "create", "--user", u) for u in ("alice", "bob")
    )
    alice = as_user(admin, url, alice_token.stdout.strip())
    bob = as_user(admin, url, bob_token.stdout.strip())
    (tmp_path / "alice.yaml").write_text(TEMPLATE.format(name="alices"))
    (tmp_path / "bob.yaml").write_text(TEMPLATE.format(name="bobs"))
    (tmp_path / "bad.yaml").write_text("name: bad\nworks:\n  - {name: a, noop: true, retires: 2}\n")

    submitted = orchid(alice, "submit", str(tmp_path / "alice.yaml"))
    assert submitted.returncode == 0, submitted.stderr
    wf = submitted.stdout.strip()
    own = orchid(bob, "submit", str(tmp_path / "bob.yaml"))  # bob, on another terminal
    assert own.returncode == 0, own.stderr
    watched, bob_watched, seen, aborted, bob_logs, bob_rows, stranger, bad = parallel(
        [
            (alice, "watch", wf),
            (bob, "watch", own.stdout.strip()),  # his own workflow, live...
            (bob, "status", wf),  # ...but not alice's
            (bob, "abort", wf),
            (bob, "logs", "1"),
            (bob, "status", "--json"),
            ({**bob, "ORCHID_TOKEN": ""}, "status"),  # nobody without a token
            (alice, "submit", str(tmp_path / "bad.yaml")),
        ]
    )
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert f"workflow {wf} alices" in watched.stdout and "succeeded" in watched.stdout
    assert "4/4" in watched.stdout and "jobs 5/5 finished" in watched.stdout
    assert bob_watched.returncode == 0, bob_watched.stdout + bob_watched.stderr
    assert seen.returncode == 2
    # someone else's workflow is as if it did not exist
    assert f"error: no workflow {wf}" in seen.stderr and "Traceback" not in seen.stderr
    assert aborted.returncode == 2 and f"no workflow {wf}" in aborted.stderr
    assert bob_logs.returncode == 2 and "no job" in bob_logs.stderr
    rows = json.loads(bob_rows.stdout)
    assert [(r["name"], r["owner"]) for r in rows] == [("bobs", "bob")]
    assert stranger.returncode == 2 and "ORCHID_TOKEN" in stranger.stderr
    # a mistyped template is the server's 422, said as the embedded engine says it
    assert bad.returncode == 2 and "works[0](a).retires" in bad.stderr

    listed, mine, first_job = parallel(
        [(alice, "status"), (alice, "status", wf, "--json"), (alice, "logs", "1")]
    )
    assert listed.returncode == 0 and "alices" in listed.stdout and "bobs" not in listed.stdout
    status = json.loads(mine.stdout)
    assert status["status"] == "succeeded"
    assert [w["name"] for w in status["works"]] == ["step", "last"]
    assert first_job.returncode == 0 and first_job.stdout == "step 1\n"


def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    env = {**clean_env(tmp_path), "ORCHID_URL": f"http://127.0.0.1:{free_port()}"}
    proc = orchid(env, "status")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot reach http://127.0.0.1:")
    assert "Traceback" not in proc.stderr


def test_up_serves_the_user_at_once(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    port = free_port()
    log = tmp_path / "up.log"
    up = start(env, log, "up", "--port", str(port), "--workers", "4")
    try:
        wait_for_ping(f"http://127.0.0.1:{port}", up, log)
        config = tmp_path / "config" / "orchid" / "config.toml"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert f'url = "http://127.0.0.1:{port}"' in config.read_text()
        (tmp_path / "wf.yaml").write_text(TEMPLATE.format(name="upped"))
        submitted = orchid(env, "submit", str(tmp_path / "wf.yaml"))  # the config file alone
        assert submitted.returncode == 0, submitted.stderr
        watched = orchid(env, "watch", submitted.stdout.strip())
        assert watched.returncode == 0, watched.stdout + watched.stderr
        assert "succeeded" in watched.stdout
        rows = json.loads(orchid(env, "status", "--json").stdout)
        assert [(r["name"], r["status"]) for r in rows] == [("upped", "succeeded")]
        # the monitor and the metrics, with the token `up` made (the agents' figures too)
        url = f"http://127.0.0.1:{port}"
        made = re.search(r'token = "([^"]+)"', config.read_text())
        assert made
        with httpx.Client(base_url=url, timeout=20) as browser:
            login = browser.post(
                "/ui/login", data={"token": made.group(1)}, headers={"Origin": url}
            )
            assert login.status_code == 303
            page = browser.get(f"/ui/workflows/{rows[0]['id']}")
            assert page.status_code == 200 and 'data-work="step"' in page.text
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {made.group(1)}"})
        assert metrics.status_code == 200
        assert re.search(r'orchid_claimed_rows_total\{agent="carrier"\} 5\.0', metrics.text)
        assert 'orchid_jobs{status="succeeded"} 5.0' in metrics.text
    finally:
        code = stop(up)
    assert code == 0, log.read_text()
    text = log.read_text()
    assert "orchid submit" in text and "Orchid stopped" in text and "Traceback" not in text


def test_watch_redraws_the_table_from_the_event_stream(tmp_path: Path) -> None:
    """In-process, on a terminal: the live table of the embedded mode, fed by the API."""
    template = yaml.safe_load(TEMPLATE.format(name="live"))
    with serve(tmp_path) as server, server.client("alice") as alice:
        wf = alice.submit(template)
        out = io.StringIO()
        console = Console(file=out, force_terminal=True, width=120, color_system=None)
        final = follow(RemoteBackend(alice), wf.id, console)
        assert final.status == "succeeded"
        text = out.getvalue()
        assert f"workflow {wf.id} live" in text and "jobs 5/5 finished" in text
        assert "step" in text and "4/4" in text and "succeeded" in text
        assert failures(RemoteBackend(alice), wf.id) == []
        with server.client("bob") as bob, pytest.raises(NotFound):
            follow(RemoteBackend(bob), wf.id, console)  # as if it did not exist
