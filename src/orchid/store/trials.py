"""Trial rows: the points of a study, the jobs that run them, and pull-mode leases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.states import ACTIVE_JOB, JobStatus
from orchid.core.study import Trial
from orchid.errors import NotFound
from orchid.store import claims
from orchid.store.tables import jobs, trials, works

J = JobStatus


@dataclass(frozen=True)
class TrialRow:
    id: int
    study_id: int
    segment: str
    number: int
    job_id: int | None
    status: str
    params: Mapping[str, Any]
    values: list[float] | None
    result: Any
    intermediate: Mapping[str, float]
    system: Mapping[str, Any]
    worker: str | None
    lease_until: float | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    def as_trial(self) -> Trial:
        """The trial as generators and pruners see it."""
        return Trial(
            number=self.number,
            params=self.params,
            status=self.status,  # type: ignore[arg-type]
            values=tuple(self.values) if self.values is not None else None,
            intermediate={int(k): float(v) for k, v in self.intermediate.items()},
            system=self.system,
        )


def _trial(r: Any) -> TrialRow:
    return TrialRow(**{c.name: getattr(r, c.name) for c in trials.columns})


def trials_of(conn: Connection, study_id: int, segment: str | None = None) -> list[TrialRow]:
    q = sa.select(trials).where(trials.c.study_id == study_id)
    if segment is not None:
        q = q.where(trials.c.segment == segment)
    return [_trial(r) for r in conn.execute(q.order_by(trials.c.segment, trials.c.number))]


def open_trials(conn: Connection, study_id: int) -> list[TrialRow]:
    """Trials proposed and not ended (at most the study's `parallel`)."""
    q = sa.select(trials).where(
        trials.c.study_id == study_id, trials.c.status.in_(["waiting", "running"])
    )
    return [_trial(r) for r in conn.execute(q.order_by(trials.c.id))]


def trials_by_id(conn: Connection, ids: Sequence[int]) -> list[TrialRow]:
    if not ids:
        return []
    q = sa.select(trials).where(trials.c.id.in_(list(ids))).order_by(trials.c.id)
    return [_trial(r) for r in conn.execute(q)]


def created(conn: Connection, study_id: int) -> dict[str, int]:
    """How many trials each segment has (numbers run 0..n-1)."""
    rows = conn.execute(
        sa.select(trials.c.segment, sa.func.count())
        .where(trials.c.study_id == study_id)
        .group_by(trials.c.segment)
    )
    return {str(seg): int(n) for seg, n in rows}


def page(
    conn: Connection,
    study_id: int,
    *,
    segment: str | None = None,
    status: Sequence[str] = (),
    after_id: int = 0,
    limit: int = 100,
) -> list[TrialRow]:
    q = sa.select(trials).where(trials.c.study_id == study_id, trials.c.id > after_id)
    if segment is not None:
        q = q.where(trials.c.segment == segment)
    if status:
        q = q.where(trials.c.status.in_(list(status)))
    return [_trial(r) for r in conn.execute(q.order_by(trials.c.id).limit(limit))]


def get_trial(conn: Connection, trial_id: int, *, lock: bool = False) -> TrialRow:
    q = sa.select(trials).where(trials.c.id == trial_id)
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"no trial {trial_id}")
    return _trial(row)


def trial_of_job(conn: Connection, job_id: int) -> TrialRow:
    row = conn.execute(sa.select(trials).where(trials.c.job_id == job_id)).first()
    if row is None:
        raise NotFound(f"job {job_id} is not a trial of a study")
    return _trial(row)


def add_trials(
    conn: Connection,
    study_id: int,
    segment: str,
    proposals: Sequence[tuple[int, Mapping[str, Any], Mapping[str, Any]]],
    status: str,
    now: float,
) -> list[int]:
    """Insert trials (number, params, system notes) in ``status``; return their ids."""
    if not proposals:
        return []
    rows = [
        {
            "study_id": study_id,
            "segment": segment,
            "number": number,
            "status": status,
            "params": dict(params),
            "intermediate": {},
            "system": dict(system),
            "created_at": now,
            "started_at": now if status == "running" else None,
        }
        for number, params, system in proposals
    ]
    ids = conn.execute(
        sa.insert(trials).returning(trials.c.id, sort_by_parameter_order=True), rows
    ).scalars()
    return [int(i) for i in ids]


def add_jobs(
    conn: Connection,
    workflow_id: int,
    work_id: int,
    named_args: Sequence[tuple[str, Mapping[str, Any]]],
    max_attempts: int,
    now: float,
) -> list[int]:
    """Jobs of a running hpo work, ready at once; the work counts them as unfinished."""
    if not named_args:
        return []
    rows = [
        {
            "workflow_id": workflow_id,
            "work_id": work_id,
            "name": name,
            "status": J.READY,
            "args": dict(args),
            "max_attempts": max_attempts,
            "ready_at": now,
        }
        for name, args in named_args
    ]
    ids = [
        int(i)
        for i in conn.execute(
            sa.insert(jobs).returning(jobs.c.id, sort_by_parameter_order=True), rows
        ).scalars()
    ]
    conn.execute(
        sa.update(works)
        .where(works.c.id == work_id)
        .values(n_jobs=works.c.n_jobs + len(ids), remaining=works.c.remaining + len(ids))
    )
    return ids


def link_jobs(conn: Connection, pairs: Sequence[tuple[int, int]]) -> None:
    """(trial id, job id): which job runs each trial."""
    if pairs:
        conn.execute(
            sa.update(trials)
            .where(trials.c.id == sa.bindparam("tid"))
            .values(job_id=sa.bindparam("jid")),
            [{"tid": t, "jid": j} for t, j in pairs],
        )


def job_states(conn: Connection, job_ids: Sequence[int]) -> dict[int, Any]:
    """Status, result, error and attempt of these jobs, by id."""
    if not job_ids:
        return {}
    rows = conn.execute(
        sa.select(jobs.c.id, jobs.c.status, jobs.c.result, jobs.c.error, jobs.c.attempt).where(
            jobs.c.id.in_(list(job_ids))
        )
    )
    return {int(r.id): r for r in rows}


def update_trial(conn: Connection, trial_id: int, **values: Any) -> None:
    conn.execute(sa.update(trials).where(trials.c.id == trial_id).values(**values))


def cancel_jobs(conn: Connection, job_ids: Sequence[int], now: float, why: str) -> None:
    """Stop these jobs: those not started are cancelled now, running ones asked to stop."""
    if not job_ids:
        return
    ids = list(job_ids)
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.id.in_(ids), jobs.c.status.in_([J.WAITING, J.READY]))
        .values(status=J.CANCELLED, finished_at=now, error=why)
    )
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.id.in_(ids), jobs.c.status.in_(list(ACTIVE_JOB)))
        .values(cancel_requested=True)
    )


def lease_waiting(
    conn: Connection,
    study_id: int,
    segment: str | None,
    n: int,
    worker: str,
    now: float,
    lease: float,
) -> list[TrialRow]:
    """Pull mode: hand up to ``n`` waiting trials to ``worker`` until ``now + lease``."""
    q = sa.select(trials.c.id).where(trials.c.study_id == study_id, trials.c.status == "waiting")
    if segment is not None:
        q = q.where(trials.c.segment == segment)
    ids = list(conn.execute(claims.pick(conn, q.order_by(trials.c.id).limit(n))).scalars())
    if not ids:
        return []
    conn.execute(
        sa.update(trials)
        .where(trials.c.id.in_(ids))
        .values(status="running", worker=worker, lease_until=now + lease, started_at=now)
    )
    return [
        _trial(r)
        for r in conn.execute(sa.select(trials).where(trials.c.id.in_(ids)).order_by(trials.c.id))
    ]


def expire_leases(conn: Connection, study_id: int, now: float) -> int:
    """Pull mode: points whose worker went quiet are offered again."""
    res = conn.execute(
        sa.update(trials)
        .where(
            trials.c.study_id == study_id,
            trials.c.status == "running",
            trials.c.job_id.is_(None),
            trials.c.lease_until < now,
        )
        .values(status="waiting", worker=None, lease_until=None, intermediate={})
    )
    return int(res.rowcount)


def end_open_trials(conn: Connection, study_id: int, why: str, now: float) -> list[int]:
    """The study ended early (aborted): its open trials fail; returns their jobs."""
    open_ = list(
        conn.execute(
            sa.select(trials.c.id, trials.c.job_id).where(
                trials.c.study_id == study_id, trials.c.status.in_(["waiting", "running"])
            )
        )
    )
    if open_:
        conn.execute(
            sa.update(trials)
            .where(trials.c.id.in_([r.id for r in open_]))
            .values(status="failed", error=why, finished_at=now)
        )
    return [int(r.job_id) for r in open_ if r.job_id is not None]


# --- what the monitor's study page draws: bounded whatever the number of trials ----------


@dataclass(frozen=True)
class PlotPoints:
    """A segment's trials by status, and the values of its complete trials in order.

    ``every`` is 1 when every complete trial is there; k when only trials whose number is
    a multiple of k are (a study may have 100,000 trials; the page draws a few thousand).
    """

    counts: dict[str, int]
    every: int
    points: list[tuple[int, int, list[float]]]  # (trial id, number, objective values)


def plot_points(
    conn: Connection, study_id: int, segment: str, max_points: int = 2000
) -> PlotPoints:
    mine = sa.and_(trials.c.study_id == study_id, trials.c.segment == segment)
    counts = {
        str(s): int(n)
        for s, n in conn.execute(
            sa.select(trials.c.status, sa.func.count()).where(mine).group_by(trials.c.status)
        )
    }
    every = max(1, -(-counts.get("complete", 0) // max_points))
    q = sa.select(trials.c.id, trials.c.number, trials.c["values"]).where(
        mine, trials.c.status == "complete"
    )
    if every > 1:
        q = q.where(trials.c.number % every == 0)
    points = [
        (int(r.id), int(r.number), [float(v) for v in r[2]])
        for r in conn.execute(q.order_by(trials.c.number))
        if r[2]
    ]
    return PlotPoints(counts, every, points)


def params_of(conn: Connection, ids: Sequence[int]) -> dict[int, Mapping[str, Any]]:
    """The parameters of these trials, by id."""
    out: dict[int, Mapping[str, Any]] = {}
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        rows = conn.execute(sa.select(trials.c.id, trials.c.params).where(trials.c.id.in_(chunk)))
        out.update({int(r.id): r.params for r in rows})
    return out


def latest(conn: Connection, study_id: int, segment: str, limit: int = 20) -> list[TrialRow]:
    """The newest trials of a segment, newest first."""
    q = (
        sa.select(trials)
        .where(trials.c.study_id == study_id, trials.c.segment == segment)
        .order_by(trials.c.number.desc())
        .limit(limit)
    )
    return [_trial(r) for r in conn.execute(q)]
