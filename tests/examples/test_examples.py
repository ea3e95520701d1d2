"""Every example, run end to end through the real ``orchid`` command on SQLite."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchid.store.db import Database
from orchid.store.tables import jobs, works

ROOT = Path(__file__).resolve().parents[2]
ORCHID = [sys.executable, "-m", "orchid.cli.main"]
pytestmark = pytest.mark.slow


def run(example: str, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Copy the example to tmp_path and `orchid run` it; return the process and the DB URL."""
    src = tmp_path / example
    if not src.exists():
        shutil.copytree(ROOT / "examples" / example, src)
    db = tmp_path / "orchid.db"
    env = {**os.environ, "ORCHID_HOME": str(tmp_path / "home"), "ORCHID_WORKERS": "2"}
    proc = subprocess.run(
        [*ORCHID, "run", str(src / "workflow.yaml"), "--db", str(db), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    return proc, f"sqlite:///{db}"


def results(url: str, workflow_id: int, work: str) -> list[Any]:
    db = Database(url)
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.result)
            .join(works, works.c.id == jobs.c.work_id)
            .where(works.c.workflow_id == workflow_id, works.c.name == work)
            .order_by(works.c.iteration, jobs.c.id)
        )
        out = [r.result for r in rows]
    db.dispose()
    return out


def statuses(url: str, workflow_id: int) -> dict[str, str]:
    db = Database(url)
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(works.c.name, works.c.status)
            .where(works.c.workflow_id == workflow_id)
            .order_by(works.c.id)
        )
        out = {r.name: r.status for r in rows}  # loop works: the last iteration wins
    db.dispose()
    return out


def test_sweep_picks_the_best_energy(tmp_path: Path) -> None:
    proc, url = run("sweep", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sims = results(url, 1, "simulate")
    assert len(sims) == 5 * 4
    assert {(r["seed"], r["energy"]) for r in sims} == {
        (s, e) for s in range(5) for e in (10.0, 20.0, 40.0, 80.0)
    }
    (best,) = results(url, 1, "merge")
    assert best["points"] == 20
    by_energy: dict[float, list[float]] = {}
    for r in sims:
        by_energy.setdefault(r["energy"], []).append(r["resolution"])
    expected = min(by_energy, key=lambda e: sum(by_energy[e]) / len(by_energy[e]))
    assert best["energy"] == expected


def test_sweep_takes_parameters_from_the_command_line(tmp_path: Path) -> None:
    proc, url = run("sweep", tmp_path, "-p", "energies=[5.0, 50.0]", "-p", "seeds=2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(results(url, 1, "simulate")) == 4


def test_conditional_publishes_good_calibrations(tmp_path: Path) -> None:
    proc, url = run("conditional", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert statuses(url, 1) == {
        "calibrate": "succeeded",
        "publish": "succeeded",
        "recalibrate": "skipped",
        "report": "succeeded",
    }
    assert results(url, 1, "report") == [{"published": True, "quality": 0.95}]


def test_conditional_recalibrates_when_quality_is_too_low(tmp_path: Path) -> None:
    proc, url = run("conditional", tmp_path, "-p", "threshold=0.99")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert statuses(url, 1)["publish"] == "skipped"
    assert statuses(url, 1)["recalibrate"] == "succeeded"
    assert results(url, 1, "recalibrate")[0]["samples"] == 4000
    assert results(url, 1, "report") == [{"published": False, "quality": 0.95}]


def test_nested_calibrates_each_detector_in_its_own_nested_workflow(tmp_path: Path) -> None:
    proc, url = run("nested", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert statuses(url, 1) == {
        "prepare": "succeeded",
        "tracker.measure": "succeeded",
        "tracker.fit": "succeeded",
        "tracker.check": "succeeded",
        "tracker": "succeeded",
        "calorimeter.measure": "succeeded",
        "calorimeter.fit": "succeeded",
        "calorimeter.check": "skipped",  # its fit is too wide: its own `when`
        "calorimeter": "succeeded",
        "summary": "succeeded",
    }
    assert results(url, 1, "tracker.fit") == [{"mean": 5.6, "width": 8.0}]
    assert results(url, 1, "calorimeter.fit")[0]["width"] == 24.0  # scale 3, its parameter
    assert results(url, 1, "tracker.check") == [{"detector": "tracker", "ok": True}]
    assert results(url, 1, "summary") == [{"tracker": "succeeded", "calorimeter": "succeeded"}]


def test_loop_converges_to_the_root(tmp_path: Path) -> None:
    proc, url = run("loop", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = results(url, 1, "evaluate")
    assert len(steps) == 20  # the bracket halves from width 1 to below 1e-6
    assert all(
        b["hi"] - b["lo"] == pytest.approx(a["width"] / 2) for a, b in itertools.pairwise(steps)
    )
    (answer,) = results(url, 1, "answer")
    assert answer["root"] == pytest.approx(2.0945514815, abs=1e-6)
    assert answer["iterations"] == 20


def test_loop_fails_when_it_cannot_converge(tmp_path: Path) -> None:
    proc, url = run("loop", tmp_path, "-p", "tolerance=0")
    assert proc.returncode == 1
    assert "max_iterations=60" in proc.stdout
    assert statuses(url, 1)["answer"] == "skipped"


def test_nested_loop_refines_the_root_round_by_round(tmp_path: Path) -> None:
    proc, url = run("nested_loop", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rounds = results(url, 1, "record")
    assert [r["tol"] for r in rounds] == pytest.approx([10.0**-k for k in range(1, 7)])
    assert all(r["width"] < r["tol"] for r in rounds)
    # each round starts the inner loop afresh from the bracket the last one reached
    assert [r["steps"] for r in rounds] == [4, 3, 3, 4, 3, 3]
    assert all(b["width"] < a["width"] for a, b in itertools.pairwise(rounds))
    steps = results(url, 1, "evaluate")
    assert len(steps) == sum(r["steps"] for r in rounds)
    (answer,) = results(url, 1, "answer")
    assert answer["root"] == pytest.approx(2.0945514815, abs=1e-6)
    assert answer["rounds"] == 6


def test_rubin_dag_releases_each_job_after_its_parents(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "rubin_dag", tmp_path / "rubin_dag")
    subprocess.run(
        [
            sys.executable,
            str(tmp_path / "rubin_dag" / "generate.py"),
            "--visits",
            "6",
            "--detectors",
            "5",
            "--patches",
            "4",
        ],
        check=True,
        capture_output=True,
    )
    lines = (tmp_path / "rubin_dag" / "jobs.jsonl").read_text().splitlines()
    assert len(lines) == 6 * 5 * 3 + 4 * 2
    proc, url = run("rubin_dag", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    db = Database(url)
    with db.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(jobs))}
        edges = list(conn.execute(sa.text("SELECT parent_id, child_id FROM job_edges")))
    db.dispose()
    assert len(rows) == len(lines) + 1  # + the summary
    assert all(r.status == "succeeded" for r in rows.values())
    assert len(edges) == sum(len(json.loads(x).get("parents", [])) for x in lines)
    for parent, child in edges:
        assert rows[child].ready_at >= rows[parent].finished_at
    (summary,) = [r.result for r in rows.values() if r.name == "0"]
    assert summary == {"patches_measured": 4, "patches": 4}


def test_bad_template_is_rejected_before_anything_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nworks:\n  - name: a\n    command: [echo]\n    after: [b]\n")
    proc = subprocess.run(
        [*ORCHID, "run", str(bad), "--db", str(tmp_path / "o.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ORCHID_HOME": str(tmp_path)},
    )
    assert proc.returncode == 2
    assert "works[0](a).after[0]" in proc.stderr
    assert "no work or loop is named 'b'" in proc.stderr


def test_carousel_reprocesses_every_file_as_it_comes_off_tape(tmp_path: Path) -> None:
    proc, url = run("carousel", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    db = Database(url)
    with db.engine.connect() as conn:
        counts = dict(
            conn.execute(sa.text("SELECT status, count(*) FROM files GROUP BY status")).all()
        )
        sizes = dict(
            conn.execute(
                sa.text(
                    "SELECT c.name, count(*) FROM files f JOIN collections c "
                    "ON c.id = f.collection_id GROUP BY c.name"
                )
            ).all()
        )
    db.dispose()
    assert set(counts) == {"deleted"}  # every file processed, then freed from the buffer
    (summary,) = results(url, 1, "summary")
    assert summary["files"] == counts["deleted"] == sum(sizes.values())
    assert summary["datasets"] == {f"data18_13TeV:{name}": n for name, n in sizes.items()}
    assert all(r["calibration"] == "v7" for r in results(url, 1, "reprocess"))


def test_hpo_digits_tunes_an_svc_and_plots_the_losses(tmp_path: Path) -> None:
    """At reduced size: 8 trials instead of 40 (the README's run is the full one)."""
    src = tmp_path / "hpo_digits"
    shutil.copytree(ROOT / "examples" / "hpo_digits", src)
    text = (src / "workflow.yaml").read_text()
    small = text.replace("max_trials: 40", "max_trials: 8").replace(
        "n_startup_trials: 8", "n_startup_trials: 4"
    )
    assert small != text
    (src / "workflow.yaml").write_text(small)
    proc, url = run("hpo_digits", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = results(url, 1, "tune")
    assert len(trials) == 8 and all(0 <= t["loss"] < 1 for t in trials)
    (report,) = results(url, 1, "report")
    assert report["trials"] == 8
    assert report["best_loss"] == min(t["loss"] for t in trials) < 0.2
    assert set(report["best_params"]) >= {"C", "gamma", "kernel"}
    assert Path(report["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = subprocess.run(
        [*ORCHID, "hpo", "best", "1", "--db", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert best.returncode == 0, best.stderr
    assert json.loads(best.stdout)["best"]["value"] == report["best_loss"]


def _decisions(url: str) -> list[dict[str, Any]]:
    return results(url, 1, "decide")


def test_active_learning_stops_when_the_contour_is_known(tmp_path: Path) -> None:
    proc, url = run("active_learning", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = _decisions(url)
    assert steps[-1]["done"] and steps[-1]["uncertain_fraction"] < 0.02
    assert not any(s["done"] for s in steps[:-1])
    assert steps[-1]["misclassified_fraction"] < 0.02  # the learned contour is the true one
    assert [s["evaluated"] for s in steps] == [12 + 8 * i for i in range(len(steps))]
    plots = sorted((tmp_path / "active_learning" / "plots").glob("iteration_*.png"))
    assert len(plots) == len(steps) >= 2


def test_active_learning_stops_at_its_iteration_cap(tmp_path: Path) -> None:
    proc, url = run("active_learning", tmp_path, "-p", "max_iterations=2", "-p", "tolerance=0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = _decisions(url)
    assert len(steps) == 2 and not any(s["done"] for s in steps)
