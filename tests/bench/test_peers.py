"""The peers' shared contract (bench/peers/common.py) and the verdicts of bench/compare.py,
on made-up runs: no peer is installed or started here."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import compare  # noqa: E402
import peers  # noqa: E402
import slurmcompare  # noqa: E402

_spec = importlib.util.spec_from_file_location("peers_common", BENCH / "peers" / "common.py")
assert _spec and _spec.loader
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def args(shape: str = "chain", jobs: int = 3) -> argparse.Namespace:
    return common.parser("test").parse_args(["--shape", shape, "--jobs", str(jobs)])


def test_step_latency_is_start_minus_the_last_parent_end() -> None:
    parents = {"a": [], "b": [], "c": ["a", "b"], "d": ["c", "missing"]}
    spans = {"a": (0.0, 1.0), "b": (0.0, 2.0), "c": (2.5, 3.0), "d": (4.0, 5.0)}
    assert common.step_latencies(parents, spans) == [0.5]


def test_row_of_a_fake_chain_run() -> None:
    a = args(jobs=4)
    parents = dict(common.graph(a.shape, a.jobs, a.seed))
    assert parents["chain/0"] == [] and parents["chain/3"] == ["chain/2"]
    spans = {  # steps of 2, 4 and 6 ms
        "chain/0": (10.0, 10.001),
        "chain/1": (10.003, 10.004),
        "chain/2": (10.008, 10.009),
        "chain/3": (10.015, 10.016),
    }
    row = common.row(
        "fake", a, submit_s=0.5, run_s=1.5, parents=parents, spans=spans, peak_rss_mb=12.0
    )
    assert row["jobs_per_s"] == 2.0  # 4 jobs over submit + run
    assert row["step_p50_ms"] == 4.0
    assert row["step_p99_ms"] == 6.0
    assert row["status"] == "succeeded"
    partial = common.row("fake", a, submit_s=1, run_s=1, parents=parents, spans={}, peak_rss_mb=1.0)
    assert partial["status"] == "succeeded, 0/4 jobs ran"
    assert partial["step_p50_ms"] is None


def test_the_payload_notes_when_it_ran_and_ignores_its_parents() -> None:
    start, end = common.timed((1.0, 2.0), (3.0, 4.0))
    assert start <= end


def test_reduced_sizes() -> None:
    assert peers.jobs_for("airflow", "layered", 10_000, {}) == 500
    assert peers.jobs_for("airflow", "chain", 1_000, {"airflow": 50}) == 50
    assert peers.jobs_for("airflow", "chain", 20, {}) == 20  # never more than asked
    assert peers.jobs_for("dask", "layered", 10_000, {"prefect": 10}) == 10_000


def row(system: str, jobs_per_s: float, p50: float, p99: float, **kw: Any) -> dict[str, Any]:
    base = {"system": system, "jobs": 100, "jobs_per_s": jobs_per_s, "status": "succeeded"}
    return {**base, "step_p50_ms": p50, "step_p99_ms": p99, **kw}


def test_targets_say_met_not_met_or_not_measured() -> None:
    lines = compare.targets(
        {
            "layered": {
                "orchid": row("orchid", 1000, 1, 2),
                "dask": row("dask", 400, 5, 9),
                "prefect": row("prefect", 60, 5, 9),
                "airflow": row("airflow", 0, 0, 0, status="failed: no database"),
            },
            "chain": {
                "orchid": row("orchid", 300, 2.5, 9.0),
                "dask": row("dask", 150, 5.5, 9.9),
                "parsl": row("parsl", 150, 4.0, 8.5),
            },
        }
    )
    assert lines[0].startswith("layered jobs/s >= 2x dask: met (")
    assert lines[1].startswith("layered jobs/s >= 20x prefect: NOT met (")
    assert lines[2].startswith("layered jobs/s >= 50x airflow: not measured (")
    assert lines[3] == "chain step p50 <= 3 ms: met (2.5 ms)"
    assert lines[4] == "chain step p99 <= 8 ms: NOT met (9.0 ms)"
    assert lines[5].startswith("chain step p50 and p99 better than dask: met")
    assert lines[6].startswith("chain step p50 and p99 better than parsl: NOT met")
    assert len(lines) == 7


def test_the_peers_on_slurm_use_their_venv_and_runner() -> None:
    assert peers.runner("parsl-slurm") == BENCH / "peers" / "run_parsl.py"
    assert peers.python("parsl-slurm") == BENCH / "peers" / ".venvs" / "parsl" / "bin" / "python"
    assert peers.runner("dask-jobqueue") == BENCH / "peers" / "run_dask.py"
    assert peers.venv("dask-jobqueue") == "dask-jobqueue"
    assert (BENCH / "peers" / "requirements-dask-jobqueue.txt").exists()
    assert peers.ON_SLURM["parsl-slurm"][2] == ["--provider", "slurm"]
    assert peers.ON_SLURM["dask-jobqueue"][2] == ["--cluster", "slurm"]


def test_the_slurm_targets_say_met_not_met_or_not_measured() -> None:
    lines = slurmcompare.targets(
        {
            "layered": {
                "orchid-pilots": row("orchid-pilots", 1000, 1, 2),
                "parsl-slurm": row("parsl-slurm", 400, 5, 9),
                "dask-jobqueue": row("dask-jobqueue", 600, 5, 9),
            },
            "chain": {
                "orchid-local": row("orchid-local", 300, 2.0, 9.0),
                "orchid-pilots": row("orchid-pilots", 0, 0, 0, status="timeout"),
            },
        }
    )
    assert lines[0].startswith("layered jobs/s >= 2x parsl-slurm: met (")
    assert lines[1].startswith("layered jobs/s >= 2x dask-jobqueue: NOT met (")
    assert lines[2].startswith("chain step p50 <= 2x orchid-local's: not measured (")
    assert len(lines) == 3
    pilots = row("orchid-pilots", 10, 3.9, 9)
    local = row("orchid-local", 10, 2.0, 9)
    (line,) = slurmcompare.targets({"chain": {"orchid-local": local, "orchid-pilots": pilots}})
    assert line.startswith("chain step p50 <= 2x orchid-local's: met (")


def test_the_slurm_sizes() -> None:
    a = slurmcompare.parser().parse_args(["--jobs", "500", "--slurm-chain", "7"])
    assert slurmcompare.size("orchid-pilots", "layered", a) == 500
    assert slurmcompare.size("orchid-slurm", "layered", a) == 2000
    assert slurmcompare.size("orchid-slurm", "chain", a) == 7
    assert slurmcompare.size("parsl-slurm", "chain", a) == 1000
