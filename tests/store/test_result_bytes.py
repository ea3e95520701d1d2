"""The result_bytes quota (issue 21): what job results a user's and a group's live workflows
hold, counted as results are recorded (store.dispatch.record), refused over the limit,
at submission, and through archiving and restoring. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchid.core.retry import RetryPolicy
from orchid.core.states import WorkflowStatus
from orchid.engine.archivist import Archiver, Policy
from orchid.engine.submit import submit
from orchid.errors import QuotaExceeded
from orchid.store import bulk, dispatch, quotas, resultbytes
from orchid.store import workflows as workflows_store
from orchid.store.db import Database
from orchid.store.tables import jobs as jobs_table
from orchid.store.tables import workflows as workflows_table
from tests.store.test_jobs import LEASE, T0, start, update

Quota = quotas.Quota


def result(n: int) -> str:
    """A result of exactly ``n`` bytes as stored (a JSON string: two quotes)."""
    value = "r" * (n - 2)
    assert len(bulk.json_text(value)) == n
    return value


def template(n: int, retries: int = 0) -> dict[str, Any]:
    jobs = [{"name": f"j{i}"} for i in range(n)]
    return {"name": "w", "works": [{"name": "a", "noop": True, "retries": retries, "jobs": jobs}]}


def run(db: Database, owner: str, n: int, group: str | None = None, retries: int = 0) -> int:
    wf = submit(db, template(n, retries), base_dir=None, now=T0, owner=owner, share_group=group)
    start(db, wf)
    return wf


def set_(db: Database, *qs: Quota) -> None:
    with db.begin() as conn:
        for q in qs:
            quotas.set_quota(conn, q, T0)


def claimed(db: Database) -> dict[int, list[int]]:
    """Claim every ready job: workflow id → the ids of its, in order."""
    with db.begin() as conn:
        got = dispatch.claim_ready(conn, "carrier", T0, LEASE, 1000)
    out: dict[int, list[int]] = {}
    for c in got:
        out.setdefault(c.workflow_id, []).append(c.id)
    return out


def record(db: Database, *updates: Any, retry: int = 0) -> None:
    policies = {u.job_id: RetryPolicy(initial_interval=0.0, maximum_attempts=retry + 1)
                for u in updates}  # fmt: skip
    with db.begin() as conn:
        dispatch.record(conn, updates, policies, T0)


def ok(job: int, size: int | None, attempt: int = 1) -> Any:
    return update(job, attempt, "succeeded", result=None if size is None else result(size))


def jobs(db: Database, ids: list[int]) -> dict[int, Any]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(jobs_table).where(jobs_table.c.id.in_(ids)))
        return {r.id: r for r in rows}


def used(db: Database) -> dict[tuple[str, str], float]:
    with db.engine.connect() as conn:
        return {
            (u.quota.kind, u.quota.subject): u.used
            for u in quotas.usage(conn, T0)
            if u.quota.quota == "result_bytes"
        }


def test_results_count_and_one_that_would_pass_the_limit_fails_its_job(db: Database) -> None:
    set_(
        db, Quota("user", "alice", "result_bytes", 250), Quota("group", "g", "result_bytes", 10**6)
    )
    wf = run(db, "alice", 5, group="g", retries=3)
    bob = run(db, "bob", 2)
    ids = claimed(db)
    a, b = ids[wf], ids[bob]
    record(db, ok(a[0], 100), ok(a[1], 100), retry=3)
    assert used(db) == {("user", "alice"): 200, ("group", "g"): 200}
    # 100 more would pass 250: that job fails, is not retried, and keeps no result; one
    # without a result and a smaller one in the same batch still fit
    record(db, ok(a[2], 100), ok(a[3], None), ok(a[4], 50), retry=3)
    rows = jobs(db, a)
    assert [rows[i].status for i in a] == ["succeeded"] * 2 + ["failed", "succeeded", "succeeded"]
    assert rows[a[2]].result is None
    assert rows[a[2]].error.startswith(
        "limit result_bytes of user alice is 250, 200 used: this result of 100 more bytes "
        "would pass it, so it was not stored; ask an admin to archive old workflows"
    )
    assert used(db) == {("user", "alice"): 250, ("group", "g"): 250}
    record(db, ok(b[0], 1000))  # bob has no limit
    assert jobs(db, b)[b[0]].status == "succeeded"


def test_a_group_limit_counts_every_member_and_refuses_submissions_when_full(
    db: Database,
) -> None:
    set_(db, Quota("group", "g", "result_bytes", 300))
    one = run(db, "alice", 2, group="g")
    two = run(db, "bob", 2, group="g")
    ids = claimed(db)
    a, b = ids[one], ids[two]
    record(db, ok(a[0], 200), ok(b[0], 100), ok(b[1], 10))
    rows = jobs(db, a + b)
    assert [rows[j].status for j in (a[0], b[0], b[1])] == ["succeeded", "succeeded", "failed"]
    assert "limit result_bytes of group g is 300, 300 used" in rows[b[1]].error
    with pytest.raises(QuotaExceeded) as e:  # full: a new one's results could not be kept
        submit(db, template(1), base_dir=None, now=T0, owner="carol", share_group="g")
    assert (e.value.quota, e.value.value, e.value.used, e.value.rate) == (
        "result_bytes",
        300,
        300,
        True,
    )
    assert "archive old workflows" in str(e.value)
    submit(db, template(1), base_dir=None, now=T0, owner="carol")  # not shared with g


def test_a_result_written_again_counts_once(db: Database) -> None:
    """A failed attempt's result is replaced by the next attempt's: the usage follows."""
    wf = run(db, "alice", 1, retries=2)
    (j,) = claimed(db)[wf]
    record(db, update(j, 1, "failed", result=result(100), error="exit 1"), retry=2)
    assert jobs(db, [j])[j].status == "ready"
    set_(db, Quota("user", "alice", "result_bytes", 120))
    assert used(db) == {("user", "alice"): 100}
    claimed(db)
    record(db, ok(j, 110, attempt=2))  # 10 more bytes: fits
    assert jobs(db, [j])[j].status == "succeeded"
    assert used(db) == {("user", "alice"): 110}
    assert stored(db) == 110  # what is counted is what is stored


def stored(db: Database) -> int:
    with db.engine.connect() as conn:
        sql = f"SELECT coalesce(sum({resultbytes.size_sql(conn)}), 0) FROM jobs"
        return int(conn.execute(sa.text(sql)).scalar_one())


def test_archived_workflows_hold_nothing_and_restored_ones_count_again(
    db: Database, tmp_path: Path
) -> None:
    set_(db, Quota("user", "alice", "result_bytes", 1000))
    wf = run(db, "alice", 4)
    run(db, "bob", 1)  # newer rows: on SQLite, new rows never take the archived ones' ids
    a = claimed(db)[wf]
    # an object: a restore writes it back as JSON of its own spelling, and counts that
    big = update(a[2], 1, "succeeded", result={"k": result(290), "n": [1, 2]})
    record(db, ok(a[0], 300), ok(a[1], 300), big, ok(a[3], None))
    held = stored(db)
    assert used(db) == {("user", "alice"): held} and held > 880
    set_(db, Quota("user", "alice", "result_bytes", held))
    with pytest.raises(QuotaExceeded):  # full
        submit(db, template(1), base_dir=None, now=T0, owner="alice")
    with db.begin() as conn:  # ended and quiet: the archivist may take it
        workflows_store.set_status(conn, wf, WorkflowStatus.SUCCEEDED, "", T0)
        conn.execute(
            sa.update(workflows_table)
            .where(workflows_table.c.id == wf)
            .values(seen_seq=workflows_table.c.wake_seq, finished_at=T0)
        )
    archiver = Archiver(db, Policy(directory=tmp_path / "archive", log_root=tmp_path / "logs"))
    archiver.archive(wf)
    assert used(db) == {("user", "alice"): 0}
    submit(db, template(1), base_dir=None, now=T0, owner="alice")  # room again
    archiver.restore(wf)
    # the object came back as '{"k": "r...", "n": [1, 2]}': 4 spaces more; the job without
    # a result came back as a JSON null, which counts nothing
    assert used(db) == {("user", "alice"): stored(db)} == {("user", "alice"): held + 4}
    with pytest.raises(QuotaExceeded):  # full again
        submit(db, template(1), base_dir=None, now=T0, owner="alice")


def test_two_carriers_recording_at_once_never_pass_the_limit_together(db: Database) -> None:
    """Each batch fits alone, not both: the second waits for the first's commit (the
    advisory lock on PostgreSQL, the write lock on SQLite), then refuses its result."""
    import threading

    set_(db, Quota("user", "alice", "result_bytes", 150))
    ids = claimed_of(db, run(db, "alice", 2))
    done: list[Any] = []
    with db.begin() as conn:
        dispatch.record(conn, [ok(ids[0], 100)], {}, T0)

        def second() -> None:
            record(db, ok(ids[1], 100))
            done.append(True)

        other = threading.Thread(target=second)
        other.start()
        other.join(0.5)  # it waits for this transaction (or has not begun yet)
        assert not done
    other.join(30)
    rows = jobs(db, ids)
    assert [rows[i].status for i in ids] == ["succeeded", "failed"]
    assert used(db) == {("user", "alice"): 100}


def claimed_of(db: Database, wf: int) -> list[int]:
    return claimed(db)[wf]
