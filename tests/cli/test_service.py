"""``orchid server``/``orchid agents`` say at start when jobs of several users would run
with the service's own OS user; ``orchid up`` (one user) does not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchid.cli.service import open_settings, shared_identity
from orchid.settings import Settings
from orchid.store import tokens
from orchid.store.db import Database


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


def test_oidc_alone_is_reason_enough(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.load({"ORCHID_HOME": str(home)})
    db = Database(settings.db_url)
    db.upgrade()
    monkeypatch.setenv("ORCHID_OIDC_ISSUER", "https://idp.example.org")
    monkeypatch.setenv("ORCHID_OIDC_AUDIENCE", "orchid")
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
