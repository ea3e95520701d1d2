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


def test_validate_reports_every_problem_at_once(env: dict[str, str], tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: t\nworks:\n"
        "  - {command: [echo]}\n"  # no name
        "  - {name: a, noop: true, colour: red}\n"  # an unknown key
        "  - {name: a}\n"  # a name twice, no payload
        "  - name: c\n    noop: true\n    jobs:\n"
        "      - {name: j1, parents: [j2]}\n      - {name: j2, parents: [j1]}\n",
    )
    proc = orchid(env, "validate", path)
    assert proc.returncode == 2
    for text in ("works[0].name", "colour", "already the name", "exactly one payload", "cycle"):
        assert text in proc.stderr, (text, proc.stderr)


def test_validate_refuses_a_map_known_to_be_too_large(env: dict[str, str], tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: t\nworks:\n  - name: w\n    command: [echo, '{a}', '{b}']\n"
        "    map: {product: {a: '${range(2000)}', b: '${range(1000)}'}}\n",
    )
    proc = orchid(env, "validate", path)
    assert proc.returncode == 2
    assert "works[0](w).map.product" in proc.stderr and "2,000,000 jobs" in proc.stderr


FUNCTION_TEMPLATE = "name: t\nworks:\n  - {name: f, function: 'steps:fit'}\n"


def test_validate_finds_the_function_next_to_the_template(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = write(tmp_path, FUNCTION_TEMPLATE)
    proc = orchid(env, "validate", path)
    assert proc.returncode == 2
    assert "works[0](f).function" in proc.stderr and "'steps' is not found" in proc.stderr
    (tmp_path / "steps.py").write_text("raise SystemExit('never imported')\ndef other(): ...\n")
    proc = orchid(env, "validate", path)
    assert proc.returncode == 2 and "defines no function 'fit'" in proc.stderr
    (tmp_path / "steps.py").write_text("raise SystemExit('never imported')\ndef fit(): ...\n")
    proc = orchid(env, "validate", path)
    assert proc.returncode == 0, proc.stderr
    # a package beside the template, and a module installed here
    (tmp_path / "steps.py").unlink()
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "__init__.py").write_text("from .impl import fit\n")
    assert orchid(env, "validate", path).returncode == 0
    installed = write(
        tmp_path, "name: t\nworks:\n  - {name: f, function: 'json:dumps'}\n", "i.yaml"
    )
    assert orchid(env, "validate", installed).returncode == 0


def test_validate_warns_about_a_function_for_remote_workers(
    env: dict[str, str], tmp_path: Path
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[executors.cluster]\ntype = "dask"\naddress = "tcp://127.0.0.1:1"\n')
    env = {**env, "ORCHID_SETTINGS": str(settings)}
    path = write(
        tmp_path, "name: t\nworks:\n  - {name: f, function: 'steps:fit', executor: cluster}\n"
    )
    proc = orchid(env, "validate", path)
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stdout and "'steps' is not found" in proc.stdout
    assert "cluster" in proc.stdout
    # the default executor of the settings counts too
    settings.write_text(
        'executor = "cluster"\n[executors.cluster]\ntype = "dask"\naddress = "tcp://127.0.0.1:1"\n'
    )
    proc = orchid(env, "validate", write(tmp_path, FUNCTION_TEMPLATE, "d.yaml"))
    assert proc.returncode == 0 and "warning" in proc.stdout, proc.stderr
