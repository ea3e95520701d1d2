"""Unprivileged OS users for run_as tests, and an interpreter and folders they can use.

The users are made with ``useradd`` (named ``orchid-t-*``, kept for later runs). The tests
need root; elsewhere they skip. The interpreter of the tests may sit where the users
cannot reach it (a pyenv under /root): then jobs use the system's python of the same
version, with our packages on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchid.executors.jobcommand import job_command
from orchid.executors.runas import OsUser

PREFIX = "orchid-t-"
SRC = str(Path(__file__).resolve().parents[2] / "src")


def os_user(name: str) -> OsUser:
    """The OS user ``orchid-t-<name>``, made now if there is none (skip: not root)."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("run_as tests need root and useradd")
    full = PREFIX + name
    try:
        return OsUser.lookup(full)
    except Exception:
        pass
    done = subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", full],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 9):  # 9: made meanwhile by another test process
        pytest.skip(f"useradd {full} failed: {done.stderr.strip()}")
    return OsUser.lookup(full)


def runs_as(python: str, user: OsUser) -> bool:
    try:
        done = subprocess.run(
            [python, "-c", "import sqlalchemy, orchid"],
            user=user.uid,
            group=user.gid,
            extra_groups=[],
            env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")},
            cwd="/",
            capture_output=True,
            check=False,
            timeout=60,
        )
    except OSError:
        return False
    return done.returncode == 0


def shared_python(user: OsUser, monkeypatch: pytest.MonkeyPatch) -> str:
    """An interpreter ``user`` can run with orchid importable; made ``sys.executable`` and
    ``PYTHONPATH`` (which jobs get) for the test, so that the executor starts it."""
    path = [SRC, sysconfig.get_paths()["purelib"]]
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*path, *current]))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        if os.path.exists(python) and runs_as(python, user):
            monkeypatch.setattr(sys, "executable", python)
            # job_command took sys.executable as its default when it was imported
            monkeypatch.setattr(job_command, "__kwdefaults__", {"python": python})
            return python
    pytest.skip(f"no {version} that {user.name} may run")


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder others may pass through (0711), unlike pytest's tmp_path: jobs run as other
    users reach their folders in it."""
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir="/tmp"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def alice() -> OsUser:
    return os_user("alice")


@pytest.fixture
def bob() -> OsUser:
    return os_user("bob")


@pytest.fixture
def logs(open_tmp: Path) -> Path:
    """A log folder the jobs' users may reach (pytest's tmp_path is closed to them)."""
    return open_tmp / "home" / "logs"


def readable_code(folder: Path, name: str, text: str) -> Path:
    """A module others may read, in a folder of its own under ``folder``."""
    code = folder / "code"
    code.mkdir(mode=0o755, exist_ok=True)
    code.chmod(0o755)
    module = code / f"{name}.py"
    module.write_text(text)
    module.chmod(0o644)
    return code


def as_user(user: OsUser, action: Callable[[], object]) -> None:
    """Run ``action`` in a child process as ``user``; raise PermissionError here if it
    raised one there."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        code = 0
        try:
            os.setgid(user.gid)
            os.setgroups([])
            os.setuid(user.uid)
            action()
        except PermissionError:
            code = 13
        finally:
            os._exit(code)
    os.close(write)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 13:
        raise PermissionError(user.name)
