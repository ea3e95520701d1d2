"""A missing extra is a one-line error that names it; the base install runs the embedded
engine. Packages are hidden from a fresh interpreter by a ``sys.meta_path`` finder, not
uninstalled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchid.errors import ConfigError
from orchid.extras import EXTRAS, MissingExtra, missing

# the first finder asked: a hidden package is "not installed"
BLOCKER = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Hide())
"""
CLI = "from orchid.cli.main import main\nsys.argv = ['orchid', *sys.argv[1:]]\nmain()\n"
TEMPLATE = """name: base
works:
  - {name: hello, command: [echo, hello]}
"""


def python(
    tmp_path: Path, hidden: set[str], code: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHID_")}
    env.update(ORCHID_HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    return subprocess.run(
        [sys.executable, "-c", BLOCKER.format(hidden=sorted(hidden)) + code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_orchid_server_without_the_server_extra_says_which_to_install(tmp_path: Path) -> None:
    proc = python(tmp_path, {"fastapi"}, CLI, "server", "--db", str(tmp_path / "o.db"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "'fastapi'" in lines[0]
    assert "pip install 'orchid[server]'" in lines[0]


@pytest.mark.parametrize(
    ("hidden", "code", "extra"),
    [
        ("optuna", "import orchid.generators.samplers", "hpo"),
        (
            "psycopg",
            "from orchid.store.db import Database\nDatabase('postgresql+psycopg://u@127.0.0.1:1/x')",
            "postgres",
        ),
        ("distributed", "from orchid.executors import dask\ndask._distributed()", "dask"),
    ],
)
def test_a_missing_extra_is_named(tmp_path: Path, hidden: str, code: str, extra: str) -> None:
    proc = python(tmp_path, {hidden}, code)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("orchid.extras.MissingExtra: "), proc.stderr
    assert f"'{hidden}'" in last and f"pip install 'orchid[{extra}]'" in last


def test_the_base_install_runs_a_workflow_here(tmp_path: Path) -> None:
    """`pip install orchid` is enough for `orchid run` (SQLite, the local executor)."""
    optional = set().union(*EXTRAS.values()) | {"PIL"}
    (tmp_path / "wf.yaml").write_text(TEMPLATE)
    proc = python(tmp_path, optional, CLI, "run", "wf.yaml", "--db", str(tmp_path / "o.db"))
    assert proc.returncode == 0, proc.stderr
    assert "succeeded" in proc.stdout + proc.stderr


def test_only_the_extras_own_packages_count() -> None:
    err = ModuleNotFoundError("No module named 'fastapi'", name="fastapi")
    found = missing("server", err, "the Orchid server")
    assert isinstance(found, MissingExtra) and isinstance(found, ConfigError)
    assert str(found) == (
        "the Orchid server needs the 'fastapi' package, which is not installed: "
        "pip install 'orchid[server]'"
    )
    other = ModuleNotFoundError("No module named 'orchid.typo'", name="orchid.typo")
    assert missing("server", other) is other  # a bug, not a missing extra
