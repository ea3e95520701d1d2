"""`orchid archive` and `orchid restore` as an operator runs them, and `orchid status` of
an archived workflow."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import env, orchid, write  # noqa: F401 (env: the fixture)


def test_archive_dry_run_then_archive_then_restore(env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    path = write(
        tmp_path, "name: old\nworks:\n  - {name: a, command: [echo, hi], map: {items: [{}, {}]}}\n"
    )
    assert orchid(env, "run", path).returncode == 0
    before = json.loads(orchid(env, "status", "1", "--json").stdout)

    proc = orchid(env, "archive")
    assert proc.returncode == 2 and "--older-than" in proc.stderr  # which ones?
    proc = orchid(env, "archive", "--dry-run", "--older-than", "0")
    assert proc.returncode == 0 and "1 workflow(s) would be archived" in proc.stdout
    assert json.loads(orchid(env, "status", "1", "--json").stdout) == before
    assert "nothing to archive" in orchid(env, "archive", "--older-than", "30d").stdout

    proc = orchid(env, "archive", "1")
    assert proc.returncode == 0, proc.stderr
    assert Path(env["ORCHID_HOME"], "archive", "workflow-1.jsonl.gz").is_file()
    shown = json.loads(orchid(env, "status", "1", "--json").stdout)
    assert shown["archived_at"] is not None
    assert {k: v for k, v in shown.items() if k != "archived_at"} == {
        k: v for k, v in before.items() if k != "archived_at"
    }
    assert "archived" in orchid(env, "status", "1").stdout
    rows = json.loads(orchid(env, "status", "--json").stdout)
    assert rows[0]["archived_at"] is not None
    proc = orchid(env, "retry", "1")
    assert proc.returncode == 2 and "orchid restore 1" in proc.stderr

    proc = orchid(env, "restore", "1")
    assert proc.returncode == 0 and "restored" in proc.stdout, proc.stderr
    assert json.loads(orchid(env, "status", "1", "--json").stdout) == before
    assert "hi" in orchid(env, "logs", "1").stdout  # its log came back too
    proc = orchid(env, "restore", "1")
    assert proc.returncode == 2 and "not archived" in proc.stderr
