"""CLI commands sent to a server (`--url`) load neither SQLAlchemy nor the server's, HPO's
or Pillow's packages (issue 17, item 8): each runs in a fresh interpreter that records
which heavy packages it held when it exited."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "optuna", "PIL", "jinja2")

# the real entry point (orchid.cli.main:main), and at exit the heavy modules it loaded
HARNESS = """
import atexit, json, sys
out = sys.argv[1]
def record():
    with open(out, "w") as f:
        json.dump([m for m in {heavy!r} if m in sys.modules], f)
atexit.register(record)
from orchid.cli.main import main
sys.argv = ["orchid", *sys.argv[2:]]
main()
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHID_")}
    env.update(ORCHID_HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    out = tmp_path / "loaded.json"
    proc = subprocess.run(
        [sys.executable, "-c", HARNESS.format(heavy=HEAVY), str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    loaded: list[str] = json.loads(out.read_text())
    return proc, loaded


@pytest.mark.parametrize(
    "command", [["status"], ["status", "7"], ["jobs", "7"], ["abort", "7"], ["logs", "7"]]
)
def test_a_command_sent_to_a_server_loads_no_heavy_package(
    tmp_path: Path, command: list[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    proc, loaded = run_cli(tmp_path, *command, "--url", url)
    # it went the remote way, to the end: the client tried the server
    assert proc.returncode == 1, proc.stderr
    assert f"cannot reach {url}" in proc.stderr
    assert loaded == []


def test_the_same_command_on_a_database_loads_sqlalchemy(tmp_path: Path) -> None:
    """The harness sees what the test above rules out."""
    proc, loaded = run_cli(tmp_path, "status", "--db", str(tmp_path / "none.db"))
    assert proc.returncode == 2, proc.stderr  # there is no database there
    assert "sqlalchemy" in loaded


def test_a_worker_loads_no_heavy_package(tmp_path: Path) -> None:
    """`orchid worker` is the local executor and an HTTP client: no SQLAlchemy, no server."""
    url = f"http://127.0.0.1:{closed_port()}"
    args = ("worker", "--url", url, "--token", "orc_x", "--idle-exit", "0", "--workers", "1")
    proc, loaded = run_cli(tmp_path, *args, "--scratch", str(tmp_path))
    assert proc.returncode == 0, proc.stderr  # it tried to lease, found no server, was idle
    assert "cannot lease jobs" in " ".join(proc.stderr.split())
    assert loaded == []
