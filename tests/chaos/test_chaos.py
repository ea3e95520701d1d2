"""Crash safety under fire (bench/chaos.py at a small size): agents SIGKILLed every 2 s and
started again, and on PostgreSQL the server restarted once mid-run.

The PostgreSQL run uses a cluster of its own (``pg_createcluster`` on a free port,
dropped after): restarting it cannot disturb the other tests, which keep using the
machine's server. Both tests are in one xdist group, so they never run at the same time.
Every status change is audited against the transition tables (tests/conftest.py).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import install_transition_audit

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import chaos  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("chaos"), pytest.mark.timeout(240)]


def check(report: chaos.Report, home: Path) -> None:
    assert not report.problems, f"{report.as_json()} (files in {home})"
    assert report.status == "succeeded"
    assert report.kills, "no agent was killed: make the run longer"
    assert report.executions >= report.jobs


def test_sqlite_agent_killed_every_two_seconds(tmp_path: Path) -> None:
    settings = chaos.Settings("sqlite", jobs=2_000, agents=1, timeout=150)
    report = chaos.run(
        settings, f"sqlite:///{tmp_path / 'orchid.db'}", tmp_path, None, install_transition_audit
    )
    check(report, tmp_path)


@pytest.mark.postgres
def test_postgres_agents_killed_and_the_server_restarted(tmp_path: Path) -> None:
    if not shutil.which("pg_createcluster") or not Path("/etc/postgresql").is_dir():
        pytest.skip("needs the PostgreSQL server tools (pg_createcluster)")
    settings = chaos.Settings("postgres", jobs=3_000, agents=3, timeout=150)
    with chaos.private_cluster() as cluster:
        report = chaos.run(
            settings, cluster.url, tmp_path, cluster.restart, install_transition_audit
        )
    check(report, tmp_path)
    assert len(report.restarts) == 1
