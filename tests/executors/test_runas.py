"""run_as: jobs of the local executor run as another OS user, in folders of their own.

Needs root (the tests make ``orchid-t-*`` users with useradd); skipped elsewhere.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchid.errors import ConfigError
from orchid.executors.base import Payload
from orchid.executors.local import LocalExecutor
from orchid.executors.runas import OsUser, RunAs
from orchid.settings import Settings
from tests.executors.contract import finals, spec, wait_for
from tests.executors.osusers import (
    alice,
    as_user,
    bob,
    logs,
    open_tmp,
    readable_code,
    shared_python,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux users and /proc")
__all__ = ["alice", "bob", "logs", "open_tmp"]  # fixtures

PROBE = """
import json, os

def probe(**_):
    folder = os.getcwd()
    with open("mine.txt", "w") as f:
        f.write("x")
    return {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "cwd": folder,
        "mode": os.stat("mine.txt").st_mode & 0o777,
        "home": os.environ.get("HOME"),
        "user": os.environ.get("USER"),
    }

def peek(path, **_):
    try:
        with open(path) as f:
            return {"read": f.read()}
    except OSError as exc:
        return {"error": type(exc).__name__}

def link_result(target, **_):
    os.symlink(target, os.environ["ORCHID_RESULT_FILE"])
    os._exit(0)  # before the wrapper writes the result
"""


@pytest.fixture
def code(open_tmp: Path) -> Path:
    return readable_code(open_tmp, "orchid_probe", PROBE)


def fn(code: Path, name: str) -> Payload:
    # no workdir: a run_as job then works in its own folder
    return Payload(kind="function", function=f"orchid_probe:{name}", python_path=(str(code),))


def sh(script: str) -> Payload:
    return Payload(kind="command", command=("sh", "-c", script))


def owned(job_id: int, payload: Payload, owner: str, **kwargs: Any) -> Any:
    job = spec(job_id, payload, kwargs.pop("args", None), workflow_id=kwargs.pop("wf", 1))
    job.owner = owner
    job.share_group = kwargs.pop("group", None)
    return job


@pytest.fixture
def make(logs: Path) -> Iterator[Any]:
    made: list[LocalExecutor] = []

    def factory(run_as: RunAs, **kwargs: Any) -> LocalExecutor:
        ex = LocalExecutor(2, logs, run_as=run_as, home=logs.parent, **kwargs)
        made.append(ex)
        return ex

    yield factory
    for ex in made:
        ex.close()


def run(ex: LocalExecutor, jobs: list[Any]) -> dict[str, Any]:
    ex.submit(jobs)
    return finals(wait_for(ex, len(jobs)))


@pytest.mark.parametrize("reuse", [False, True], ids=["process", "pool"])
def test_jobs_run_as_their_owners_os_user(
    make: Any,
    code: Path,
    logs: Path,
    alice: OsUser,
    bob: OsUser,
    reuse: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared_python(alice, monkeypatch)
    run_as = RunAs(None, {"alice": alice, "group:physics": bob})
    ex = make(run_as, reuse_workers=reuse)
    jobs = [
        owned(1, fn(code, "probe"), "alice", wf=1),
        owned(2, fn(code, "probe"), "carol", wf=2, group="physics"),
        owned(3, fn(code, "probe"), "dave", wf=3),  # no entry, no "*"
    ]
    ended = run(ex, jobs)
    for job, user in ((jobs[0], alice), (jobs[1], bob)):
        update = ended[job.key]
        assert update.state == "succeeded", update.error
        seen = update.result
        assert (seen["uid"], seen["euid"], seen["gid"]) == (user.uid, user.uid, user.gid)
        assert 0 not in seen["groups"]  # root's groups are dropped
        assert seen["cwd"] == str(logs / str(job.workflow_id))
        assert seen["mode"] == 0o600  # umask 077
        assert (seen["home"], seen["user"]) == (user.home, user.name)
        folder = logs / str(job.workflow_id)
        info = folder.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (user.uid, 0o700)
        for log in folder.glob(f"{job.job_id}.{job.attempt}.*"):
            assert log.stat().st_uid == user.uid, log
            assert log.stat().st_mode & 0o077 == 0, log
    refused = ended[jobs[2].key]
    assert refused.state == "failed"
    assert "run_as names no OS user for Orchid user 'dave'" in (refused.error or "")


def test_commands_run_as_the_fixed_user(make: Any, logs: Path, alice: OsUser) -> None:
    ex = make(RunAs(alice, {}))
    job = owned(1, sh("id -u; umask; touch made; stat -c %a made"), "anyone")
    update = run(ex, [job])[job.key]
    assert update.state == "succeeded", update.error
    out = (logs / "1" / "1.1.out").read_text().split()
    assert out == [str(alice.uid), "0077", "600"]


def test_a_user_cannot_read_another_users_logs(
    make: Any, code: Path, logs: Path, alice: OsUser, bob: OsUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared_python(alice, monkeypatch)
    ex = make(RunAs(None, {"alice": alice, "bob": bob}), reuse_workers=True)
    secret = owned(1, sh("echo alice-secret"), "alice", wf=1)
    assert run(ex, [secret])[secret.key].state == "succeeded"
    assert (logs / "1" / "1.1.out").read_text().strip() == "alice-secret"
    paths = [logs / "1" / "1.1.out", logs / "1", logs]
    jobs = [
        owned(10 + i, fn(code, "peek"), "bob", wf=2, args={"path": str(p)})
        for i, p in enumerate(paths)
    ]
    ended = run(ex, jobs)
    for job in jobs:
        assert ended[job.key].result == {"error": "PermissionError"}, job.args
    with pytest.raises(PermissionError):  # nor can a command of bob's list the logs
        as_user(bob, lambda: os.listdir(logs))


def test_the_agent_never_reads_a_result_through_a_link(
    make: Any, code: Path, open_tmp: Path, alice: OsUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared_python(alice, monkeypatch)
    private = open_tmp / "private.json"
    private.write_text('{"the": "service\'s own"}')
    private.chmod(0o600)
    ex = make(RunAs(alice, {}))
    job = owned(1, fn(code, "link_result"), "alice", args={"target": str(private)})
    update = run(ex, [job])[job.key]
    assert update.result is None
    assert update.state == "failed"
    assert "cannot read result file" in (update.error or "")


def test_run_as_is_checked_at_start(
    alice: OsUser, logs: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="no OS user 'orchid-t-nobody-here'"):
        RunAs.parse("orchid-t-nobody-here", "[executors.local]")
    with pytest.raises(ConfigError, match="is root"):
        RunAs.parse({"alice": "root"}, "[executors.local]")
    with pytest.raises(ConfigError, match="group:NAME"):
        RunAs.parse({"group:": alice.name}, "[executors.local]")
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    with pytest.raises(ConfigError, match="run_as needs the agents to run as root"):
        LocalExecutor(1, logs, run_as=RunAs(alice, {}))
    monkeypatch.undo()
    closed = tmp_path / "closed" / "logs"  # pytest's folders are closed to others
    closed.parent.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o700)
    with pytest.raises(ConfigError, match="cannot reach the log folder"):
        LocalExecutor(1, closed, run_as=RunAs(alice, {}), home=closed.parent)


def test_run_as_from_the_settings(tmp_path: Path, alice: OsUser) -> None:
    from orchid.executors.local import LocalOptions
    from orchid.executors.registry import local_run_as

    (tmp_path / "settings.toml").write_text(
        f'run_as = "{alice.name}"\n'
        '[executors.mine]\ntype = "local"\n'
        f'run_as = {{ alice = "{alice.name}", "*" = "{alice.name}" }}\n'
    )
    s = Settings.load({"ORCHID_HOME": str(tmp_path)})
    builtin = LocalOptions.model_validate(dict(s.executor_config("local").options))
    mine = LocalOptions.model_validate(dict(s.executors["mine"].options))
    assert local_run_as(builtin, s) == alice.name
    assert local_run_as(mine, s) == {"alice": alice.name, "*": alice.name}
    env = {"ORCHID_HOME": str(tmp_path), "ORCHID_RUN_AS": "someone"}
    assert Settings.load(env).run_as == "someone"
