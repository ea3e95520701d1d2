"""``orchid server`` and ``orchid agents`` as deployed.

- uvicorn really serving, started as a subprocess: the trusted-proxy check of the X.509 DN
  header must see the socket's peer. uvicorn's own proxy-header handling (on by default,
  trusting 127.0.0.1) used to rewrite the client address from ``X-Forwarded-For`` first, so
  anyone on the server's host could claim to be a proxy.
- They say at start when jobs of several users would run with the service's own OS user;
  ``orchid up`` (one user) does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from orchid.cli.service import open_settings, shared_identity
from orchid.settings import Settings
from orchid.store import tokens
from orchid.store.db import Database
from tests.cli.test_remote import clean_env, free_port, start, stop, wait_for_ping

pytestmark = pytest.mark.timeout(120)
ADMIN_DN = "/C=CH/O=Lab/CN=admin"


@contextmanager
def server(tmp_path: Path, trusted_proxies: str) -> Iterator[str]:
    """`orchid server` on 127.0.0.1 with ORCHID_TRUSTED_PROXIES; its API's URL."""
    env = {**clean_env(tmp_path), "ORCHID_TRUSTED_PROXIES": trusted_proxies}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / f"server-{port}.log"
    proc = start(env, log, "server", "--db", str(tmp_path / "orchid.db"), "--port", str(port))
    try:
        wait_for_ping(url, proc, log)
        yield f"{url}/api/v1"
    finally:
        stop(proc)


def test_x_forwarded_for_does_not_make_a_local_caller_a_trusted_proxy(tmp_path: Path) -> None:
    """The finding: with ORCHID_TRUSTED_PROXIES=10.9.9.9, a request from the server's host
    with the DN header and ``X-Forwarded-For: 10.9.9.9`` was taken as user admin."""
    with server(tmp_path, "10.9.9.9") as api:
        for forwarded in ("10.9.9.9", "203.0.113.7, 10.9.9.9", "10.9.9.9, 127.0.0.1"):
            headers = {"X-SSL-Client-DN": ADMIN_DN, "X-Forwarded-For": forwarded}
            for path in ("/whoami", "/workflows"):
                r = httpx.get(api + path, headers=headers)
                assert r.status_code == 403, (forwarded, r.text)
                assert "trusted proxy" in r.json()["error"]


def test_a_proxy_on_the_server_host_is_trusted_by_its_socket_address(tmp_path: Path) -> None:
    """A real proxy beside the server: its DN header counts (the user is the whole DN, not
    the CN), and the end user's address it forwards does not hide that it is the proxy."""
    with server(tmp_path, "127.0.0.1") as api:
        headers = {
            "X-SSL-Client-DN": "CN=admin,O=Lab,C=CH",
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "https",
        }
        r = httpx.get(api + "/whoami", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "user": ADMIN_DN,
            "groups": [],
            "admin": False,
            "method": "x509",
            "workflow_id": None,
        }


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("ORCHID_"):
            monkeypatch.delenv(name)
    return tmp_path / "home"


def _users(db: Database, *names: str) -> None:
    with db.begin() as conn:
        for name in names:
            tokens.create(conn, user=name, admin=False, groups=[], now=time.time())


def test_one_user_needs_no_warning(home: Path) -> None:
    settings = Settings.load({"ORCHID_HOME": str(home)})
    db = Database(settings.db_url)
    db.upgrade()
    assert shared_identity(settings, db) is None
    _users(db, "alice", "alice")
    assert shared_identity(settings, db) is None


def test_several_users_without_run_as_are_warned(home: Path) -> None:
    settings = Settings.load({"ORCHID_HOME": str(home)})
    db = Database(settings.db_url)
    db.upgrade()
    _users(db, "alice", "bob")
    warning = shared_identity(settings, db)
    assert warning is not None and "several users" in warning and "local" in warning
    assert "run_as" in warning and "\n" not in warning
    with_run_as = Settings.load({"ORCHID_HOME": str(home), "ORCHID_RUN_AS": "orchid-jobs"})
    assert shared_identity(with_run_as, db) is None


def test_slurm_executors_are_named_while_several_users_exist(home: Path) -> None:
    """Slurm runs a job as its submitter, the agents' user, unless the section's own run_as
    says otherwise (the top-level one is for local executors)."""
    home.mkdir()
    (home / "settings.toml").write_text('run_as = "orchid-jobs"\n[executors.hpc]\ntype = "slurm"\n')
    settings = Settings.load({"ORCHID_HOME": str(home)})
    db = Database(settings.db_url)
    db.upgrade()
    assert shared_identity(settings, db) is None  # one person
    _users(db, "alice", "bob")
    warning = shared_identity(settings, db)
    assert warning is not None and "executor(s) hpc run as" in warning


def test_a_slurm_section_with_run_as_is_not_named(home: Path) -> None:
    home.mkdir()
    (home / "settings.toml").write_text(
        'run_as = "orchid-jobs"\n'
        '[executors.hpc]\ntype = "slurm"\nrun_as = { alice = "alice", "*" = "orchid-jobs" }\n'
        '[executors.gpu]\ntype = "slurm"\nrun_as = "orchid-jobs"\n'
        '[executors.old]\ntype = "slurm"\n'
    )
    settings = Settings.load({"ORCHID_HOME": str(home)})
    db = Database(settings.db_url)
    db.upgrade()
    _users(db, "alice", "bob")
    warning = shared_identity(settings, db)
    assert warning is not None and "executor(s) old run as" in warning
    (home / "settings.toml").write_text(
        '[executors.hpc]\ntype = "slurm"\nrun_as = "orchid-jobs"\n'
        '[executors.local]\ntype = "local"\nrun_as = "orchid-jobs"\n'
    )
    assert shared_identity(Settings.load({"ORCHID_HOME": str(home)}), db) is None


def test_a_local_section_without_run_as_is_named(home: Path) -> None:
    home.mkdir()
    (home / "settings.toml").write_text(
        'run_as = "orchid-jobs"\n[executors.gpu]\ntype = "local"\nrun_as = ""\n'
        '[executors.safe]\ntype = "local"\n'
    )
    settings = Settings.load({"ORCHID_HOME": str(home)})
    db = Database(settings.db_url)
    db.upgrade()
    _users(db, "alice", "bob")
    warning = shared_identity(settings, db)
    assert warning is not None and "executor(s) gpu run" in warning


def test_oidc_alone_is_reason_enough(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.toml").write_text(
        '[auth]\noidc_issuer = "https://idp.example.org"\noidc_audience = "orchid"\n'
    )
    settings = Settings.load({"ORCHID_HOME": str(home)})
    db = Database(settings.db_url)
    db.upgrade()
    warning = shared_identity(settings, db)
    assert warning is not None and "OIDC authentication is configured" in warning


def test_orchid_agents_prints_it_in_one_line(home: Path) -> None:
    settings = Settings.load({"ORCHID_HOME": str(home)})
    db = Database(settings.db_url)
    db.upgrade()
    _users(db, "alice", "bob")
    env = {**os.environ, "ORCHID_HOME": str(home), "ORCHID_POLL_INTERVAL": "0.1"}
    done = subprocess.run(
        [sys.executable, "-m", "orchid.cli.main", "agents", "--burst"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "warning:" in line]
    assert len(lines) == 1 and "run as this service's OS user" in lines[0], done.stderr


def test_a_settings_file_others_may_read_is_named(home: Path) -> None:
    home.mkdir()
    path = home / "settings.toml"
    path.write_text("workers = 2\n")
    path.chmod(0o644)
    warning = open_settings(Settings.load({"ORCHID_HOME": str(home)}))
    assert warning is not None and str(path) in warning and "chmod 600" in warning
    path.chmod(0o600)
    assert open_settings(Settings.load({"ORCHID_HOME": str(home)})) is None
