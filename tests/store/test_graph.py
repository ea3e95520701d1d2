"""Writing job graphs: batches, parents found in the batch, the cache or the database, and
the problems of a jobs file that only the store can see (names used twice, parents that
come later or not at all), each reported with its line. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchid.engine.submit import submit
from orchid.errors import TemplateError
from orchid.store import graph
from orchid.store.db import Database

T0 = 1_000_000.0

TEMPLATE = {
    "name": "file",
    "works": [
        {"name": "inline", "noop": True, "jobs": [{"name": "i1"}, {"name": "i2"}]},
        {"name": "sim", "noop": True, "jobs": "from_file"},
        {"name": "reco", "noop": True, "jobs": "from_file"},
    ],
    "jobs_file": "jobs.jsonl",
}


def line(work: str, name: str, *parents: str, **args: Any) -> str:
    obj: dict[str, Any] = {"work": work, "name": name}
    if parents:
        obj["parents"] = list(parents)
    if args:
        obj["args"] = args
    return json.dumps(obj)


def send(db: Database, lines: list[str] | Iterator[str]) -> int:
    return submit(db, TEMPLATE, base_dir=None, now=T0, job_lines=lines)


def problems(db: Database, lines: list[str]) -> list[tuple[str, str]]:
    with pytest.raises(TemplateError) as info:
        send(db, lines)
    with db.engine.connect() as conn:  # nothing of the failed submission is left
        assert conn.execute(sa.text("SELECT count(*) FROM workflows")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM job_edges")).scalar_one() == 0
    return info.value.problems


def edges(db: Database) -> set[tuple[str, str]]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT wp.name || '/' || p.name, wc.name || '/' || c.name FROM job_edges e "
                "JOIN jobs p ON p.id = e.parent_id JOIN jobs c ON c.id = e.child_id "
                "JOIN works wp ON wp.id = p.work_id JOIN works wc ON wc.id = c.work_id"
            )
        )
        return {(str(a), str(b)) for a, b in rows}


def pending(db: Database) -> dict[str, int]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT w.name || '/' || j.name, j.pending_parents FROM jobs j "
                "JOIN works w ON w.id = j.work_id"
            )
        )
        return {str(a): int(b) for a, b in rows}


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 3 jobs and a cache of 2 + 2 recent ids, so every path is taken."""
    monkeypatch.setattr(graph, "BATCH", 3)
    monkeypatch.setattr(graph, "RECENT", 2)


@pytest.mark.usefixtures("small")
def test_parents_from_the_batch_the_cache_the_database_and_inline_jobs(db: Database) -> None:
    lines = [line("sim", f"s{i}", *([f"s{i - 1}"] if i else ["inline/i1"])) for i in range(12)]
    lines += [
        line("reco", "far", "sim/s0", "sim/s11", "inline/i2", seed=3),
        line("reco", "twice", "sim/s5", "sim/s5"),  # a parent listed twice counts once
    ]
    send(db, lines)
    expected = {("inline/i1", "sim/s0")} | {(f"sim/s{i - 1}", f"sim/s{i}") for i in range(1, 12)}
    expected |= {("sim/s0", "reco/far"), ("sim/s11", "reco/far"), ("inline/i2", "reco/far")}
    expected |= {("sim/s5", "reco/twice")}
    assert edges(db) == expected
    counts = pending(db)
    assert counts["reco/far"] == 3 and counts["reco/twice"] == 1 and counts["inline/i1"] == 0
    with db.engine.connect() as conn:
        args = conn.execute(sa.text("SELECT args FROM jobs WHERE name = 'far'")).scalar_one()
    assert json.loads(args) if isinstance(args, str) else args == {"seed": 3}


@pytest.mark.usefixtures("small")
def test_jobs_are_written_while_the_file_is_read(db: Database) -> None:
    """Each batch is written before the next lines are read: nothing piles up in memory."""
    events: list[str] = []

    def lines() -> Iterator[str]:
        for i in range(7):
            events.append(f"read {i}")
            yield line("sim" if i < 6 else "reco", f"s{i}")

    real = graph._Writer.write

    def spy(self: graph._Writer, drafts: Any) -> None:
        events.append(f"write {len(drafts)}")
        real(self, drafts)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(graph._Writer, "write", spy)
        send(db, lines())
    reads = [e for e in events if e.startswith("read")]
    assert (
        events
        == [
            "write 2",  # the inline jobs
            *reads[:3],
            "write 3",
            *reads[3:6],
            "write 3",
            reads[6],
            "write 1",
        ]
    )
    assert len(pending(db)) == 9


@pytest.mark.usefixtures("small")
def test_a_name_used_twice_is_reported_with_its_line(db: Database) -> None:
    found = problems(
        db,
        [line("sim", "a"), line("sim", "b"), line("sim", "c"), line("sim", "d"), line("sim", "a")],
    )
    assert found == [("jobs.jsonl:5", "job 'a' appears twice in work 'sim'")]


def test_a_name_used_twice_in_one_batch(db: Database) -> None:
    found = problems(db, [line("sim", "a"), line("sim", "a"), line("reco", "a")])
    assert found == [("jobs.jsonl:2", "job 'a' appears twice in work 'sim'")]


def test_a_parent_that_does_not_exist_suggests_a_name(db: Database) -> None:
    found = problems(db, [line("sim", "ok1"), line("sim", "ok2"), line("reco", "x", "sim/ok3")])
    ((where, message),) = found
    assert where == "jobs.jsonl:3"
    assert "'sim/ok3': work 'sim' has no job 'ok3' (did you mean 'ok2'?)" in message
    assert message.endswith("(parents must come on earlier lines)")


@pytest.mark.parametrize("batch", [3, 1000])
def test_a_parent_on_a_later_line(
    db: Database, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr(graph, "BATCH", batch)
    found = problems(db, [line("sim", "x"), line("sim", "a", "b"), line("sim", "b")])
    assert found == [
        ("jobs.jsonl:2", "'b': work 'sim' has no job 'b' (parents must come on earlier lines)")
    ]


def test_a_job_is_not_its_own_parent(db: Database) -> None:
    ((where, message),) = problems(db, [line("sim", "x", "x")])
    assert where == "jobs.jsonl:1" and "work 'sim' has no job 'x'" in message


def test_every_missing_parent_is_reported_in_line_order(db: Database) -> None:
    found = problems(
        db,
        [line("sim", "a"), line("reco", "r1", "sim/zz"), line("reco", "r2", "sim/a", "sim/yy")],
    )
    assert [w for w, _ in found] == ["jobs.jsonl:2", "jobs.jsonl:3"]


def test_a_large_file_in_many_batches(db: Database, tmp_path: Path) -> None:
    """More jobs than a batch and than the cache, with the default sizes."""
    n = graph.BATCH * 2 + 17
    lines = [line("sim", f"s{i}", *([f"s{i - 1}", "s0"] if i > 1 else [])) for i in range(n)]
    lines.append(line("reco", "end", *(f"sim/s{i}" for i in range(0, n, 97))))
    send(db, lines)
    counts = pending(db)
    assert len(counts) == n + 3
    assert counts["sim/s1"] == 0 and counts["sim/s2"] == 2 and counts[f"sim/s{n - 1}"] == 2
    assert counts["reco/end"] == len(range(0, n, 97))
