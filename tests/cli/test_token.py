"""``orchid token create/list/revoke`` as an administrator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchid.cli.main import main
from orchid.store import tokens
from orchid.store.db import Database

ORCHID = [sys.executable, "-m", "orchid.cli.main", "token"]


def test_create_list_revoke(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orchid.db'}"
    env = {**os.environ, "ORCHID_HOME": str(tmp_path / "home"), "ORCHID_DB_URL": url}

    def orchid(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ORCHID, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    made = orchid("create", "--user", "alice", "--admin", "--group", "atlas", "--group", "hpo")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()  # stdout holds the token alone, so that $(...) captures it
    assert token.startswith("orc_") and "\n" not in token
    assert "cannot be shown again" in made.stderr

    database = Database(url)
    with database.begin() as conn:
        principal = tokens.lookup(conn, token, now=1.0)
    assert principal is not None
    assert (principal.user, principal.admin, principal.groups) == (
        "alice",
        True,
        frozenset({"atlas", "hpo"}),
    )

    listed = orchid("list", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["user"], row["groups"], row["admin"], row["prefix"]) == (
        "alice",
        ["atlas", "hpo"],
        True,
        token[:8],
    )
    assert token not in listed.stdout and row["revoked_at"] is None

    revoked = orchid("revoke", str(row["id"]))
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    with database.begin() as conn:
        assert tokens.lookup(conn, token, now=2.0) is None

    database.dispose()


def test_errors_exit_2_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (fast): the same entry point and exit-code mapping as the command."""
    monkeypatch.setenv("ORCHID_DB_URL", f"sqlite:///{tmp_path / 'orchid.db'}")
    monkeypatch.setenv("ORCHID_HOME", str(tmp_path / "home"))

    def orchid(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["orchid", "token", *args])
        with pytest.raises(SystemExit) as info:
            main()
        return int(info.value.code or 0)

    assert orchid("create", "--user", "al ice") == 2
    out = capsys.readouterr()
    assert "contains whitespace" in out.err and not out.out
    assert orchid("create", "--user", "bob") == 0
    capsys.readouterr()
    assert orchid("revoke", "7") == 2
    assert "no active token 7" in capsys.readouterr().err
    assert orchid("revoke", "1") == 0
    assert orchid("revoke", "1") == 2
    assert "no active token 1" in capsys.readouterr().err


def test_a_worker_token_serves_one_queue_of_the_settings_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orchid.db'}"
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text('[executors.gpu]\ntype = "worker"\n')
    env = {**os.environ, "ORCHID_HOME": str(home), "ORCHID_DB_URL": url}

    def orchid(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ORCHID, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    made = orchid("create", "--user", "pilot", "--worker", "gpu")
    assert made.returncode == 0, made.stderr
    with Database(url).begin() as conn:
        principal = tokens.lookup(conn, made.stdout.strip(), now=1.0)
    assert principal is not None
    assert (principal.worker_queue, principal.admin, principal.method) == ("gpu", False, "worker")
    (row,) = json.loads(orchid("list", "--json").stdout)
    assert row["worker_queue"] == "gpu"

    unknown = orchid("create", "--user", "pilot", "--worker", "cpu")
    assert unknown.returncode == 2 and "no worker queue 'cpu'" in unknown.stderr
    assert "gpu" in unknown.stderr  # the queues there are named
    admin = orchid("create", "--user", "pilot", "--worker", "gpu", "--admin")
    assert admin.returncode == 2 and "one queue only" in admin.stderr


@pytest.mark.parametrize("command", [("list",), ("revoke", "1")])
def test_list_and_revoke_never_create_a_database(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...],
) -> None:
    """A typo in --db must not answer "no tokens yet" from a new, empty database."""
    missing = tmp_path / "typo.db"
    monkeypatch.setenv("ORCHID_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "argv", ["orchid", "token", *command, "--db", str(missing)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    assert f"there is no database at {missing}" in capsys.readouterr().err
    assert not missing.exists()
