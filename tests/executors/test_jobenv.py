"""A job's environment is an allow-list: never the agent's database URL, secrets or settings.

Jobs in processes of their own and in pool workers alike; a pool worker itself starts
with the allow-list only (``/proc/self/environ`` of the worker shows what it started with).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from orchid.executors._process import base_env
from orchid.executors.base import Payload
from orchid.executors.local import LocalExecutor, LocalOptions
from orchid.settings import Settings
from tests.executors.contract import finals, python, spec, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")

DUMP = """
import json, os

def env(**_):
    with open("/proc/self/environ", "rb") as f:
        started = f.read().decode(errors="replace")
    return {"env": dict(os.environ), "started": started}
"""
SECRETS = {
    "ORCHID_DB_URL": "postgresql+psycopg://orchid:hunter2@db.example/orchid",
    "ORCHID_HOME": "/var/lib/orchid",
    "ORCHID_OIDC_ISSUER": "https://idp.example",
    "ORCHID_TOKEN": "orc_agent_token",
    "PGPASSWORD": "hunter2",
    "SECRET_SAUCE": "s3cr3t-value",
}


@pytest.fixture
def agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("KEEP_ME", "kept")
    monkeypatch.setenv("KEEPER_TOO", "kept too")


def test_base_env_keeps_only_the_allowed_names() -> None:
    ours = {
        **SECRETS,
        "PATH": "/bin",
        "HOME": "/root",
        "LANG": "C",
        "LC_TIME": "C",
        "TMPDIR": "/tmp",
        "TZ": "UTC",
        "ORCHID_ARGS": "{}",
        "KEEP_ME": "1",
        "KEEPER": "2",
    }
    assert base_env(source=ours) == {
        "PATH": "/bin",
        "HOME": "/root",
        "LANG": "C",
        "LC_TIME": "C",
        "TMPDIR": "/tmp",
        "TZ": "UTC",
    }
    assert base_env(["KEEP_ME", "SECRET_*"], source=ours) == {
        **base_env(source=ours),
        "KEEP_ME": "1",
        "SECRET_SAUCE": SECRETS["SECRET_SAUCE"],
    }


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if name in text or value in text]


@pytest.mark.parametrize("reuse", [False, True], ids=["process", "pool"])
def test_jobs_see_none_of_the_agents_secrets(agent_env: None, tmp_path: Path, reuse: bool) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "orchid_envdump.py").write_text(DUMP)
    dump = "import json, os; print(json.dumps({'env': dict(os.environ)}))"
    jobs = [
        spec(1, python(dump)),
        spec(2, Payload(kind="function", function="orchid_envdump:env", python_path=(str(code),))),
        spec(
            3,
            Payload(
                kind="function",
                function="orchid_envdump:env",
                python_path=(str(code),),
                env={"FROM_TEMPLATE": "{x}"},
            ),
            {"x": "named"},
        ),
    ]
    ex = LocalExecutor(2, tmp_path / "logs", reuse_workers=reuse, env_passthrough=["KEEP_ME"])
    try:
        ex.submit(jobs)
        ended = finals(wait_for(ex, len(jobs)))
    finally:
        ex.close()
    for job in jobs:
        update = ended[job.key]
        assert update.state == "succeeded", update.error
        seen: dict[str, Any] = update.result
        env = seen["env"]
        assert _leaks(json.dumps(env)) == []
        assert _leaks(seen.get("started", "")) == []  # the process (or pool worker) itself
        assert env["ORCHID_JOB_ID"] == str(job.job_id)
        assert env["LC_ALL"] == "C.UTF-8" and env["TZ"] == "UTC" and "PATH" in env
        assert env["KEEP_ME"] == "kept"  # named by env_passthrough
        assert "KEEPER_TOO" not in env
    assert ended[jobs[2].key].result["env"]["FROM_TEMPLATE"] == "named"


def test_env_passthrough_is_a_setting(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text(
        'env_passthrough = ["X509_*", "SITE"]\n[executors.gpu]\ntype = "local"\n'
        'env_passthrough = ["CUDA_HOME"]\n'
    )
    s = Settings.load({"ORCHID_HOME": str(tmp_path)})
    assert s.env_passthrough == "X509_*,SITE"
    assert (
        Settings.load(
            {"ORCHID_HOME": str(tmp_path), "ORCHID_ENV_PASSTHROUGH": "A,B"}
        ).env_passthrough
        == "A,B"
    )
    options = LocalOptions.model_validate(dict(s.executors["gpu"].options))
    assert options.env_passthrough == ["CUDA_HOME"]
