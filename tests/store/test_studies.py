"""Study rows: what the HPO agent reads of a study's work and workflow (SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from orchid.core.states import WorkStatus
from orchid.engine.submit import submit
from orchid.store import studies, workflows, works
from orchid.store.db import Database

T0 = 1_000_000.0


def hpo_workflow(db: Database, tmp_path: Path) -> tuple[int, int]:
    """A submitted workflow with one hpo work: (workflow id, work id)."""
    raw = {
        "name": "tune",
        "works": [
            {
                "name": "tune",
                "function": "m:f",
                "hpo": {"space": {"x": {"type": "float", "low": 0, "high": 1}}, "max_trials": 3},
            }
        ],
    }
    wf = submit(db, raw, base_dir=tmp_path, now=T0)
    with db.begin() as conn:
        return wf, works.find(conn, wf, "tune")[0]


def test_the_agent_reads_its_work_and_workflow(db: Database, tmp_path: Path) -> None:
    wf, work = hpo_workflow(db, tmp_path)
    with db.begin() as conn:
        assert studies.work_of(conn, work) == studies.StudyWork(work, "tune", WorkStatus.WAITING)
        assert studies.finishing(conn, wf) is False
        works.set_ready(conn, work, {})
        works.mark_running(conn, work, 0, 1, T0)  # the study's sentinel
        studies.create(conn, wf, work, {}, T0)
    with db.begin() as conn:
        assert studies.work_of(conn, work).status == WorkStatus.RUNNING
        assert studies.remaining(conn, work) == 1
        works.add_remaining(conn, {work: 2})
        assert studies.remaining(conn, work) == 3
        workflows.set_finishing(conn, wf, T0 + 1)
        assert studies.finishing(conn, wf) is True
