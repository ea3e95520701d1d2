"""The two Function-as-a-Task examples, run as the README says: one command each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(script: str, tmp_path: Path, *args: str) -> str:
    env = {
        k: v for k, v in os.environ.items() if k not in ("ORCHID_URL", "ORCHID_DB_URL", "FAT_MARKS")
    }
    env.update(
        ORCHID_HOME=str(tmp_path / "home"),
        ORCHID_WORKERS="2",
        ORCHID_FAT_CACHE=str(tmp_path / "node-cache"),
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_mapreduce_counts_every_word(tmp_path: Path) -> None:
    out = run("fat_mapreduce/mapreduce.py", tmp_path, "--chunks", "6", "--words", "500")
    assert out.strip().splitlines()[-1] == "3000 words in 6 chunks"
    counts = [int(line.split()[1]) for line in out.strip().splitlines()[:-1]]
    assert sum(counts) == 3000 and len(counts) == 12


def test_active_learning_converges_on_the_peak(tmp_path: Path) -> None:
    out = run("fat_active_learning/active_learning.py", tmp_path)
    last = out.strip().splitlines()[-1]
    assert last.startswith("converged after")
    peak = float(last.split("peak at ")[1].split()[0])
    assert abs(peak - 2.7) < 0.1
