"""Slurm pilots: the batch script ``orchid worker --slurm N`` hands to ``sbatch --parsable``
(checked here, and run through bash with a stand-in ``orchid``), and the submission itself
through a stand-in ``sbatch`` that records what it was given."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from orchid.errors import ConfigError, ExecutorError
from orchid.worker.slurm import Pilot, pilot_script, submit

TOKEN = "orc_" + "t" * 43


def fake(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_one_pilot_script() -> None:
    pilot = Pilot(
        url="https://orchid.example.org",
        queue="gpu",
        workers=8,
        idle_exit_s=120,
        sbatch_options=("--partition=gpu", "--time=02:00:00"),
        command="/opt/orchid/bin/orchid",
    )
    script = pilot_script(pilot)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "#SBATCH --cpus-per-task=8" in lines
    assert "#SBATCH --partition=gpu" in lines and "#SBATCH --time=02:00:00" in lines
    assert not [line for line in lines if "--array" in line]
    assert TOKEN not in script and "orc_" not in script  # the token travels in the environment
    (run,) = [line for line in lines if line.startswith("exec ")]
    assert run.startswith(
        "exec /opt/orchid/bin/orchid worker --url https://orchid.example.org --workers 8 "
        "--idle-exit 120 --queue gpu"
    )
    # every #SBATCH line comes before the first command (sbatch stops reading them there)
    first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    assert all(i < first_command for i, line in enumerate(lines) if line.startswith("#SBATCH"))


def test_many_pilots_are_one_job_array() -> None:
    script = pilot_script(Pilot(url="http://h:8000"), count=5)
    assert "#SBATCH --array=0-4" in script.splitlines()


def test_odd_values_are_quoted() -> None:
    script = pilot_script(Pilot(url="http://h:8000/x y;rm -rf /", queue="q"))
    assert "'http://h:8000/x y;rm -rf /'" in script


@pytest.mark.parametrize(
    "bad",
    [
        {"workers": 0},
        {"idle_exit_s": 0},
        {"sbatch_options": ("partition=gpu",)},
        {"sbatch_options": ("--time=1\n#SBATCH --x",)},
    ],
)
def test_bad_pilots_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Pilot(url="http://h", **bad)  # type: ignore[arg-type]


def test_the_script_runs_the_worker_with_the_token_from_the_environment(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    orchid = fake(tmp_path / "orchid", f'echo "$@" > {seen}; echo "$ORCHID_TOKEN" >> {seen}\n')
    script = tmp_path / "pilot.sh"
    script.write_text(pilot_script(Pilot(url="http://h:1", queue="q", command=str(orchid))))
    env = {"PATH": os.environ["PATH"], "SLURM_JOB_ID": "77", "ORCHID_TOKEN": TOKEN}
    subprocess.run(["bash", str(script)], env=env, check=True, timeout=30)
    args, token = seen.read_text().splitlines()
    assert args.split() == [
        "worker", "--url", "http://h:1", "--workers", "1", "--idle-exit", "300",
        "--queue", "q", "--name", "orchid-pilot-77",
    ]  # fmt: skip
    assert token == TOKEN
    del env["ORCHID_TOKEN"]
    refused = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, timeout=30, check=False
    )
    assert refused.returncode == 2 and b"ORCHID_TOKEN" in refused.stderr


def test_submit_hands_the_script_to_sbatch(tmp_path: Path) -> None:
    got_args, got_stdin, got_token = tmp_path / "args", tmp_path / "stdin", tmp_path / "token"
    sbatch = fake(
        tmp_path / "sbatch",
        f'echo "$@" > {got_args}; cat > {got_stdin}; echo "$ORCHID_TOKEN" > {got_token}\n'
        'echo "4242;cluster"\n',
    )
    pilot = Pilot(url="http://h:1", workers=2)
    job = submit(pilot, 3, TOKEN, sbatch=str(sbatch), env={"PATH": os.environ["PATH"]})
    assert job == "4242"
    assert got_args.read_text().split() == ["--parsable"]
    assert got_stdin.read_text() == pilot_script(pilot, 3)
    assert got_token.read_text().strip() == TOKEN


def test_a_refusing_sbatch_is_an_error(tmp_path: Path) -> None:
    sbatch = fake(tmp_path / "sbatch", 'echo "sbatch: error: invalid partition" >&2; exit 1\n')
    with pytest.raises(ExecutorError, match="invalid partition"):
        submit(Pilot(url="http://h"), 1, TOKEN, sbatch=str(sbatch), env={})
    with pytest.raises(ExecutorError, match="not found"):
        submit(Pilot(url="http://h"), 1, TOKEN, sbatch=str(tmp_path / "none"), env={})


def test_the_readme_shows_the_script_it_submits() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("#!/bin/bash\n#SBATCH --job-name=orchid-worker")
    shown = readme[start : readme.index("\n```", start)] + "\n"
    pilot = Pilot(
        url="https://orchid.example.org",
        queue="gpu",
        workers=8,
        sbatch_options=("--partition=gpu", "--time=08:00:00"),
    )
    assert shown == pilot_script(pilot)


def test_the_pilots_run_with_the_worker_options_they_were_submitted_with(tmp_path: Path) -> None:
    """`orchid worker --slurm N --no-channel --prefetch 8 ...`: each pilot's `orchid
    worker` gets those options (they were dropped: the pilots ran with the defaults)."""
    from orchid.cli.worker import _passed_on

    passed = _passed_on(tmp_path / "scratch", "nobody", "HOME,X*", False, 8, False)
    assert passed == (
        "--scratch", str(tmp_path / "scratch"), "--run-as", "nobody",
        "--env-passthrough", "HOME,X*", "--no-reuse-workers", "--prefetch", "8", "--no-channel",
    )  # fmt: skip
    assert _passed_on(None, None, None, True, 64, True) == ()  # the defaults: nothing to pass
    seen = tmp_path / "seen"
    orchid = fake(tmp_path / "orchid", f'echo "$@" > {seen}\n')
    script = tmp_path / "pilot.sh"
    pilot = Pilot(url="http://h:1", queue="q", command=str(orchid), worker_options=passed)
    script.write_text(pilot_script(pilot))
    env = {"PATH": os.environ["PATH"], "SLURM_JOB_ID": "78", "ORCHID_TOKEN": TOKEN}
    subprocess.run(["bash", str(script)], env=env, check=True, timeout=30)
    args = seen.read_text().split()
    assert args[args.index("--queue") + 2 : -2] == list(passed)
