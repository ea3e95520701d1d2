"""``orchid quota show|set|unset`` and ``orchid submit --priority`` as an admin runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from orchid.store.db import Database

ORCHID = [sys.executable, "-m", "orchid.cli.main"]


def test_set_show_unset_and_priority(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orchid.db'}"
    env = {**os.environ, "ORCHID_HOME": str(tmp_path / "home"), "ORCHID_DB_URL": url,
           "COLUMNS": "200"}  # fmt: skip

    def orchid(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ORCHID, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    template = tmp_path / "t.json"
    template.write_text(json.dumps({"name": "t", "works": [{"name": "a", "noop": True}]}))
    assert orchid("submit", str(template), "--priority", "7").returncode == 0  # makes the db
    with Database(url).engine.connect() as conn:
        assert conn.execute(sa.text("SELECT priority FROM workflows")).scalar_one() == 7

    assert "no limits" in orchid("quota", "show").stdout
    done = orchid("quota", "set", "user", "alice", "running", "10", "--on", "slurm")
    assert done.returncode == 0, done.stderr
    assert orchid("quota", "set", "group", "physics", "weight", "3").returncode == 0
    assert orchid("quota", "set", "user", "alice", "result_bytes", "1000000").returncode == 0
    shown = orchid("quota", "show").stdout
    assert "slurm" in shown and "physics" in shown and "weight" in shown
    assert "result_bytes" in shown and "1,000,000" in shown
    bad = orchid("quota", "set", "team", "x", "running", "1")
    assert bad.returncode == 2 and "kind 'team'" in bad.stderr + bad.stdout
    assert orchid("quota", "unset", "group", "physics", "weight").returncode == 0
    again = orchid("quota", "unset", "group", "physics", "weight")
    assert again.returncode == 2 and "no quota weight" in again.stderr + again.stdout
    assert "physics" not in orchid("quota", "show").stdout
