"""``orchid validate`` on commands: unknown placeholders, unsafe substitutions, jobs files."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import env, orchid, write

__all__ = ["env"]


def test_validate_reports_placeholders_and_warns_about_raw_values(
    env: dict[str, str], tmp_path: Path
) -> None:
    bad = write(tmp_path, "name: t\nworks:\n  - {name: a, command: [echo, '{calib}']}\n")
    proc = orchid(env, "validate", bad)
    assert proc.returncode == 2
    assert "works[0](a).command[1]" in proc.stderr and "'calib'" in proc.stderr

    raw = write(
        tmp_path,
        "name: t\nparameters: {p: 1}\nworks:\n"
        "  - {name: a, command: [sh, -c, 'echo {p!r}'], parameters: {p: '${params.p}'}}\n",
        "raw.yaml",
    )
    proc = orchid(env, "validate", raw)
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stdout and "{p!r}" in proc.stdout


def test_validate_reads_the_first_lines_of_the_jobs_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "name: t\njobs_file: jobs.jsonl\nworks:\n"
        "  - {name: w, command: [echo, '{visit}'], jobs: from_file}\n",
    )
    proc = orchid(env, "validate", path)
    assert proc.returncode == 0 and "no jobs file" in proc.stdout
    lines = [{"work": "w", "name": f"j{i}", "args": {"visit": i}} for i in range(1500)]
    lines[3]["args"] = {}
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    proc = orchid(env, "validate", path)
    assert proc.returncode == 2 and "jobs.jsonl:4" in proc.stderr and "'visit'" in proc.stderr
    lines[3]["args"] = {"visit": 3}
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    proc = orchid(env, "validate", path)
    assert proc.returncode == 0, proc.stderr
    assert "first 1,000 lines" in proc.stdout
