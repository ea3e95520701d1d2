"""The carrier's rows: claiming ready jobs, recording what executors saw, leases of jobs in flight.

These run for every job, so they are written for batches: one statement of fixed text per
rule (claim, adopt, run again, cancel; one per kind of update), run on the driver's cursor
where it returns rows (see ``store.bulk``). A carrier that serves one executor of several
narrows claim, adopt and reclaim with its :class:`~orchid.store.routes.Route`, a clause of
the same statement (docs/architecture.md, "The store's set-based rules").
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, NewType

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.model import NO_USAGE, JobUpdate, Usage
from orchid.core.retry import NO_RETRY, RetryPolicy
from orchid.core.states import TERMINAL_JOB, TERMINAL_WORK, JobStatus, after_failure
from orchid.store import bulk, quotas, release, resultbytes
from orchid.store.release import Propagation
from orchid.store.routes import Route
from orchid.store.tables import IN_FLIGHT, READY, jobs, workflows, works

J = JobStatus

# PostgreSQL: rows another agent is taking are skipped, not waited for. `FOR NO KEY
# UPDATE`: a transaction holding only the key-share lock of a foreign key (a transformer
# writing a work's jobs) does not hide the row (see ``store.claims.pick``).
_SKIP_LOCKED = "FOR NO KEY UPDATE SKIP LOCKED"
_TAKEN = "RETURNING id, workflow_id, work_id, name, args, attempt"

# Claim: ready jobs of running workflows → submitted, attempt + 1. `+workflow_id`: no index
# on that term, so the ready index gives the order (never sort all the ready jobs of a
# workflow to take a batch).
_CLAIM = f"""
UPDATE jobs SET status = 'submitted', owner = :owner, lease_until = :until,
    attempt = attempt + 1, submitted_at = :now
WHERE id IN (
    SELECT id FROM jobs
    WHERE {READY} AND not_before <= :now{{route}}
      AND +workflow_id IN (SELECT id FROM workflows WHERE status = 'running')
    ORDER BY not_before, id LIMIT :n {{lock}})
{_TAKEN}
"""
# Claim under limits and fair share: ``k`` ready jobs of workflow ``wf`` (store.quotas).
_CLAIM_FAIR = f"""
UPDATE jobs SET status = 'submitted', owner = :owner, lease_until = :until,
    attempt = attempt + 1, submitted_at = :now
WHERE id IN ({quotas.PICK})
{_TAKEN}
"""
# Jobs in flight whose carrier's lease ran out (its agent died).
_LOST = f"{IN_FLIGHT} AND lease_until < :now{{route}}"
# Adopt: lost jobs of an executor whose jobs outlive their agent get a new carrier, their
# attempt unchanged (those whose cancellation was asked are cancelled by the reclaim).
_ADOPT = f"""
UPDATE jobs SET owner = :owner, lease_until = :until
WHERE id IN (
    SELECT id FROM jobs WHERE {_LOST} AND NOT cancel_requested ORDER BY id LIMIT :n {{lock}})
{_TAKEN}
"""
# Run again: jobs whose attempt was stopped before it could end (its agent died or stopped,
# the executor refused it) are ready again, and the lost attempt costs no retry.
_RUN_AGAIN = (
    "UPDATE jobs SET status = 'ready', ready_at = :now, owner = NULL, lease_until = NULL, "
    "max_attempts = max_attempts + 1, error = :why WHERE {which}"
)
# Cancel: jobs whose cancellation was asked end cancelled.
_CANCEL = (
    "UPDATE jobs SET status = 'cancelled', finished_at = :now, owner = NULL, "
    "lease_until = NULL, error = 'cancelled' WHERE {which}"
)
_AGENT_STOPPED = "its agent stopped; run again"
_REFUSED = "the executor refused it; run again"
_CURRENT = "SELECT id, attempt, status, max_attempts, workflow_id, {size} FROM jobs WHERE {ids}"


class Current(NamedTuple):
    """What recording an update reads of its job's row first."""

    attempt: int
    status: str
    max_attempts: int
    workflow_id: int
    result_bytes: int  # of the result it holds now (``store.resultbytes``)


def read_current(conn: Connection, ids: Sequence[int]) -> dict[int, Current]:
    """The rows of these jobs as :func:`record` needs them, by job id."""
    out: dict[int, Current] = {}
    sql = _CURRENT.format(ids=bulk.in_ids(conn, "id"), size=resultbytes.size_sql(conn))
    for i in range(0, len(ids), 50_000):
        for r in bulk.fetch(conn, sql, {"ids": bulk.ids(conn, ids[i : i + 50_000])}):
            out[r[0]] = Current(*r[1:])
    return out


_UNPASSED = "UPDATE jobs SET propagated = FALSE WHERE {ids}"


def _route(route: Route | None) -> tuple[str, dict[str, Any]]:
    """The clause narrowing a statement to a carrier's jobs, and its parameters."""
    if route is None:
        return "", {}
    return f" AND {route.where()}", {"executor": route.executor}


@lru_cache(maxsize=16)
def _taking(template: str, pg: bool, routed: str) -> str:
    return template.format(route=routed, lock=_SKIP_LOCKED if pg else "")


class Claimed(NamedTuple):
    """A job the carrier took (claimed or adopted), to hand to its executor."""

    id: int
    workflow_id: int
    work_id: int
    name: str
    args: Mapping[str, Any]
    attempt: int


def _take(
    conn: Connection, template: str, route: Route | None, params: dict[str, Any]
) -> list[Claimed]:
    routed, more = _route(route)
    rows = bulk.fetch(conn, _taking(template, bulk.is_pg(conn), routed), {**params, **more})
    value = bulk.json_value
    out = [Claimed(r[0], r[1], r[2], r[3], value(r[4]), r[5]) for r in rows]
    out.sort()
    return out


_READY_ELSEWHERE = "SELECT 1 FROM jobs WHERE {ids} AND status = 'ready' AND NOT ({route}) LIMIT 1"


def ready_elsewhere(conn: Connection, ids: Sequence[int], route: Route) -> bool:
    """Whether any of these jobs is ready and not of ``route`` (another carrier's, whose
    agents are to be told)."""
    if not ids:
        return False
    sql = _READY_ELSEWHERE.format(ids=bulk.in_ids(conn, "id"), route=route.where())
    params = {"ids": bulk.ids(conn, ids), "executor": route.executor}
    return bool(bulk.fetch(conn, sql, params))


def claim_ready(
    conn: Connection,
    owner: str,
    now: float,
    lease: float,
    limit: int,
    route: Route | None = None,
    executor: str = "",
    *,
    decay: float = quotas.DECAY_S,
) -> list[Claimed]:
    """Take ready jobs of running workflows: status → submitted, attempt + 1.

    In id order. On PostgreSQL, rows another agent is claiming are skipped, not waited for.
    ``route`` narrows the jobs to a carrier's executor (see ``store.routes``): only agents
    with several executors pass one; ``executor`` names it when there is no route (for
    the limits of an executor).

    When running limits or fair-share weights are set (``store.quotas``), the slots are
    shared among the users waiting (fair share, limits) and each workflow's share is taken
    with one statement; otherwise one statement takes the oldest ready jobs.
    """
    params = {"owner": owner, "until": now + lease, "now": now, "n": limit}
    rows = quotas.claim_quotas(conn)
    if not rows:
        return _take(conn, _CLAIM, route, params)
    name = route.executor if route is not None else executor
    plan = quotas.plan_claim(conn, rows, now, limit, route, name, decay)
    out: list[Claimed] = []
    for wf, k in plan.take:
        out += _take(conn, _CLAIM_FAIR, route, {**params, "wf": wf, "k": k})
    out.sort()
    return out


def adopt_lost(
    conn: Connection, owner: str, now: float, lease: float, route: Route | None, limit: int
) -> list[Claimed]:
    """Take over in-flight jobs whose carrier's lease ran out, keeping their attempt.

    For executors whose jobs outlive their agent: the new carrier hands the same attempt
    (the same key) to its executor, which re-attaches to the job instead of running it
    again. Jobs whose cancellation was asked are left to :func:`reclaim_lost`.
    """
    params = {"owner": owner, "until": now + lease, "now": now, "n": limit}
    return _take(conn, _ADOPT, route, params)


def reclaim_lost(conn: Connection, now: float, route: Route | None = None) -> int:
    """Jobs whose carrier died (lease expired) run again; the lost attempt costs no retry.

    Those whose cancellation was asked are cancelled instead. ``route`` narrows it to a
    carrier's own executor (see ``store.routes``). Returns the jobs made ready.
    """
    routed, more = _route(route)
    lost = _LOST.format(route=routed)
    params = {"now": now, **more}
    conn.execute(_statement(conn, _CANCEL, f"{lost} AND cancel_requested"), params)
    res = conn.execute(_statement(conn, _RUN_AGAIN, lost), {**params, "why": _AGENT_STOPPED})
    return int(res.rowcount)


def give_back(conn: Connection, owner: str, now: float, *, keep_attempt: bool) -> int:
    """A carrier that stops cleanly hands its jobs in flight back at once, instead of
    holding them until their leases run out (how many it gave back).

    ``keep_attempt`` (an executor whose jobs outlive their agent): the leases just end, so
    the next carrier adopts the attempts where they run. Otherwise their processes were
    stopped with the executor: they are ready again, and the stopped attempt costs no retry
    (as after :func:`reclaim_lost`); those whose cancellation was asked are cancelled.
    """
    mine = f"{IN_FLIGHT} AND owner = :owner"
    params = {"now": now, "owner": owner}
    if keep_attempt:
        sql = f"UPDATE jobs SET lease_until = :now WHERE {mine}"
        return int(conn.execute(bulk.text(conn, sql), params).rowcount)
    cancelled = conn.execute(_statement(conn, _CANCEL, f"{mine} AND cancel_requested"), params)
    res = conn.execute(_statement(conn, _RUN_AGAIN, mine), {**params, "why": _AGENT_STOPPED})
    return int(cancelled.rowcount) + int(res.rowcount)


def unsubmit(conn: Connection, ids: Sequence[int], owner: str, now: float) -> None:
    """The executor refused these jobs: ready again, and the refused attempt costs nothing."""
    if not ids:
        return
    which = f"{bulk.in_ids(conn, 'id')} AND owner = :owner AND status = 'submitted'"
    params = {"ids": bulk.ids(conn, ids), "now": now, "owner": owner, "why": _REFUSED}
    conn.execute(_statement(conn, _RUN_AGAIN, which), params)


def to_cancel(conn: Connection, owner: str) -> list[tuple[int, int, int]]:
    """(job id, attempt, workflow id) of this carrier's jobs whose cancellation was asked."""
    rows = conn.execute(
        bulk.text(
            conn,
            "SELECT id, attempt, workflow_id FROM jobs "
            f"WHERE {IN_FLIGHT} AND owner = :o AND cancel_requested",
        ),
        {"o": owner},
    )
    return [(int(r.id), int(r.attempt), int(r.workflow_id)) for r in rows]


def mark_cancelled(conn: Connection, ids: Sequence[int], now: float) -> None:
    """These jobs (their executor was told to stop them) end cancelled, unless they ended."""
    if not ids:
        return
    final = ", ".join(f"'{s}'" for s in sorted(TERMINAL_JOB))
    which = f"{bulk.in_ids(conn, 'id')} AND status NOT IN ({final})"
    conn.execute(_statement(conn, _CANCEL, which), {"ids": bulk.ids(conn, ids), "now": now})


def _statement(conn: Connection, template: str, which: str) -> sa.TextClause:
    return bulk.text(conn, template.format(which=which))


def renew(conn: Connection, owner: str, now: float, lease: float) -> None:
    """Keep the leases of the jobs this carrier is running."""
    conn.execute(
        bulk.text(conn, f"UPDATE jobs SET lease_until = :until WHERE {IN_FLIGHT} AND owner = :o"),
        {"until": now + lease, "o": owner},
    )


def work_names(conn: Connection, work_ids: Iterable[int]) -> dict[int, str]:
    rows = conn.execute(sa.select(works.c.id, works.c.name).where(works.c.id.in_(set(work_ids))))
    return {int(r.id): str(r.name) for r in rows}


def work_jobs(conn: Connection, work_ids: Iterable[int]) -> dict[int, list[tuple[int, int]]]:
    """Work id → its jobs (id, maximum attempts), in id order: the plan of executors that
    make all of a work's jobs up front (:class:`orchid.executors.base.Planning`)."""
    out: dict[int, list[tuple[int, int]]] = {w: [] for w in set(work_ids)}
    q = (
        sa.select(jobs.c.id, jobs.c.work_id, jobs.c.max_attempts)
        .where(jobs.c.work_id.in_(set(work_ids)))
        .order_by(jobs.c.id)
    )
    for r in conn.execute(q):
        out[int(r.work_id)].append((int(r.id), int(r.max_attempts)))
    return out


def ended_works(conn: Connection, work_ids: Iterable[int]) -> dict[int, str]:
    """Those of these works that have ended: id → status."""
    final = sorted(TERMINAL_WORK)
    q = sa.select(works.c.id, works.c.status).where(
        works.c.id.in_(set(work_ids)), works.c.status.in_(final)
    )
    return {int(r.id): str(r.status) for r in conn.execute(q)}


def workflow_owners(
    conn: Connection, workflow_ids: Iterable[int]
) -> dict[int, tuple[str, str | None]]:
    """Workflow id → (owner, share group): whose jobs they are."""
    q = sa.select(workflows.c.id, workflows.c.owner, workflows.c.share_group).where(
        workflows.c.id.in_(set(workflow_ids))
    )
    return {int(r.id): (str(r.owner), r.share_group) for r in conn.execute(q)}


# --- what executors saw -------------------------------------------------------------------
#
# Applied with one statement per kind of update: the rows travel as one JSON array
# (``json_each`` / ``json_array_elements``), which is twice as fast as a statement per
# row. Each kind is a named tuple whose fields are the elements of its rows; its statement
# names them (``{exit_code}``) and reads each as its field's type. The WHERE guards make a
# stale report (an older attempt, a job no longer in flight) change nothing.

JsonText = NewType("JsonText", str)  # a JSON document, as text

_STARTED = """
UPDATE jobs SET status = 'running', started_at = {at}, log_uri = coalesce({log_uri}, jobs.log_uri)
FROM {rows} WHERE jobs.id = {job_id} AND jobs.attempt = {attempt} AND jobs.status = 'submitted'
"""
_SUCCEEDED = """
UPDATE jobs SET status = 'succeeded', exit_code = {exit_code}, result = {result},
    usage = {usage}, log_uri = coalesce({log_uri}, jobs.log_uri),
    started_at = coalesce({started_at}, jobs.started_at), finished_at = {at},
    owner = NULL, lease_until = NULL, error = NULL{passed}
FROM {rows}
WHERE jobs.id = {job_id} AND jobs.attempt = {attempt} AND jobs.status IN ('submitted', 'running')
RETURNING jobs.id, jobs.work_id, jobs.workflow_id, jobs.status, jobs.finished_at
"""
_FAILED = """
UPDATE jobs SET status = {status}, exit_code = {exit_code}, result = {result},
    usage = {usage}, log_uri = coalesce({log_uri}, jobs.log_uri),
    started_at = coalesce({started_at}, jobs.started_at), error = {error},
    not_before = {not_before}, finished_at = {finished_at}, ready_at = {ready_at},
    owner = NULL, lease_until = NULL
FROM {rows}
WHERE jobs.id = {job_id} AND jobs.attempt = {attempt} AND jobs.status IN ('submitted', 'running')
RETURNING jobs.id
"""


_RENDERED: dict[tuple[type, bool, bool], str] = {}


def _render(kind: type[tuple[Any, ...]], template: str, pg: bool, passed: bool = False) -> str:
    """``template`` with ``{rows}`` the JSON array of ``kind`` rows and each ``{field}``
    its element, read as the field's type (integer, float, text or JSON). Rendered once
    per kind and database."""
    sql = _RENDERED.get((kind, pg, passed))
    if sql is None:
        sql = _RENDERED[kind, pg, passed] = _placeholders(kind, template, pg, passed)
    return sql


def _placeholders(kind: type[tuple[Any, ...]], template: str, pg: bool, passed: bool) -> str:
    names = {"rows": bulk.json_rows(pg), "passed": ", propagated = TRUE" if passed else ""}
    hints = typing.get_type_hints(kind)
    for i, name in enumerate(kind._fields):  # type: ignore[attr-defined]
        value = f"u.value ->> {i}"
        hint = hints[name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):  # `X | None`
            (hint,) = (a for a in typing.get_args(hint) if a is not type(None))
        if hint is int:
            names[name] = f"CAST({value} AS INTEGER)"
        elif hint is float:
            names[name] = f"CAST({value} AS DOUBLE PRECISION)"
        elif hint is JsonText:
            names[name] = f"CAST({value} AS JSON)" if pg else f"({value})"
        elif hint is str:
            names[name] = f"({value})"
        else:
            raise TypeError(f"{kind.__name__}.{name}: no SQL reading of {hint!r}")
    return template.format(**names)


class Started(NamedTuple):
    """The executor saw the job start: submitted → running."""

    job_id: int
    attempt: int
    at: float
    log_uri: str | None

    @classmethod
    def statement(cls, pg: bool) -> str:
        return _render(cls, _STARTED, pg)


class Succeeded(NamedTuple):
    """The job succeeded; with ``passed``, its children are released in this transaction."""

    job_id: int
    attempt: int
    exit_code: int | None
    result: JsonText | None
    usage: JsonText | None
    log_uri: str | None
    started_at: float | None
    at: float

    @classmethod
    def statement(cls, pg: bool, passed: bool = False) -> str:
        return _render(cls, _SUCCEEDED, pg, passed)


class Failed(NamedTuple):
    """The job failed: ``status`` failed, or ready again after ``not_before`` (a retry)."""

    job_id: int
    attempt: int
    status: str
    exit_code: int | None
    result: JsonText | None
    usage: JsonText | None
    log_uri: str | None
    started_at: float | None
    error: str | None
    not_before: float
    finished_at: float | None  # a retry has not finished
    ready_at: float | None  # only a retry is ready

    @classmethod
    def statement(cls, pg: bool) -> str:
        return _render(cls, _FAILED, pg)


@dataclass
class Recorded:
    """What one :func:`record` did."""

    finished: int = 0
    retried: int = 0
    passed: Propagation = field(default_factory=Propagation)  # successes passed on


def record(
    conn: Connection,
    updates: Sequence[JobUpdate],
    policies: Mapping[int, RetryPolicy],
    now: float,
    *,
    pass_on: bool = False,
    clock: Callable[[], float] | None = None,
    ended: bool = False,
    current: Mapping[int, Current] | None = None,
) -> Recorded:
    """Apply what executors saw. Stale updates (an older attempt, a cancelled job) are ignored.

    ``policies`` gives each failed job's retry policy (job id → its work's; the delay
    before it runs again; the attempts come from the job's row). With ``pass_on``, also
    release the children of the jobs that succeeded, in this transaction (the trigger's
    work, without a second write of each job and a second transaction); ``clock`` stamps
    the children (see release.pass_on). Failures are always left to the trigger.
    ``current``: the updated jobs' rows as :func:`read_current` reads them, when the
    caller read them in this transaction already (the worker desk's lease check).
    """
    if not updates:
        return Recorded()
    if current is None:
        current = read_current(conn, sorted({u.job_id for u in updates}))

    started: list[Started] = []
    ends: list[tuple[JobUpdate, Current, JsonText | None, int]] = []
    growing: list[tuple[int, int, int, int]] = []  # results that add to what owners hold
    active = (J.SUBMITTED.value, J.RUNNING.value)
    for u in updates:
        row = current.get(u.job_id)
        # stale reports (an older attempt, a job cancelled meanwhile) change and count nothing
        if row is None or row[0] != u.attempt or row[1] not in active:
            continue
        if u.state == "running":
            started.append(Started(u.job_id, u.attempt, u.at, u.log_uri))
            continue
        result = None if u.result is None else JsonText(bulk.json_text(u.result))
        size = 0 if result is None else len(result)  # ASCII: characters are bytes
        ends.append((u, row, result, size))
        if size > row[4]:
            growing.append((u.job_id, row[3], row[4], size - row[4]))
    # within the result_bytes limits of their owners and groups?
    refused = resultbytes.refused(conn, growing) if growing else {}

    ok: list[Succeeded] = []
    bad: list[Failed] = []
    retried = 0
    grew: dict[int, tuple[int, int]] = {}  # job id → (workflow id, bytes its result adds)
    for u, was, result, size in ends:
        usage = _usage_json(u.usage)
        why = refused.get(u.job_id) if refused else None
        if why is not None:  # its result does not fit: the job fails, and keeps no result
            if was.result_bytes:
                grew[u.job_id] = (was.workflow_id, -was.result_bytes)
            bad.append(
                Failed(
                    u.job_id, u.attempt, J.FAILED.value, u.exit_code, None, usage, u.log_uri,
                    u.started_at, why, now, finished_at=u.at, ready_at=None,
                )
            )  # fmt: skip
            continue
        if size != was.result_bytes:
            grew[u.job_id] = (was.workflow_id, size - was.result_bytes)
        if u.state == "succeeded":
            ok.append(
                Succeeded(
                    u.job_id, u.attempt, u.exit_code, result, usage, u.log_uri, u.started_at, u.at
                )
            )
            continue
        policy = policies.get(u.job_id, NO_RETRY)
        status, not_before = after_failure(u.attempt, was.max_attempts, policy, now)
        again = status == J.READY
        retried += again
        bad.append(
            Failed(
                u.job_id,
                u.attempt,
                status.value,
                u.exit_code,
                result,
                usage,
                u.log_uri,
                u.started_at,
                u.error,
                not_before,
                finished_at=None if again else u.at,
                ready_at=not_before if again else None,
            )
        )
    pg = bulk.is_pg(conn)
    out = Recorded(finished=len(bad) - retried, retried=retried)
    if started:
        stmt = bulk.text(conn, Started.statement(pg), arrays=())
        conn.execute(stmt, {"rows": bulk.json_text(started)})
    moved: list[int] = []  # RETURNING: exactly the jobs the statements moved (not stale ones)
    if ok:
        sql = Succeeded.statement(pg, pass_on)
        done = bulk.fetch(conn, sql, {"rows": bulk.json_text(ok)})
        out.finished += len(done)
        if grew:
            moved += [r[0] for r in done]
        if pass_on:
            out.passed = release.pass_on(conn, done, now, clock, ended=ended)
            if out.passed.deferred:  # their works are locked too long: the trigger's
                sql = _UNPASSED.format(ids=bulk.in_ids(conn, "id"))
                conn.execute(bulk.text(conn, sql), {"ids": bulk.ids(conn, out.passed.deferred)})
    if bad:
        failed = bulk.fetch(conn, Failed.statement(pg), {"rows": bulk.json_text(bad)})
        moved += [r[0] for r in failed]
    if grew:
        changes = resultbytes.deltas(grew[j] for j in moved if j in grew)
        resultbytes.add(conn, changes, min(grew))
    return out


def _usage_json(usage: Usage | None) -> JsonText | None:
    """The usage column: NULL when the executor measured nothing (all zeros)."""
    if usage is None or usage is NO_USAGE or usage == NO_USAGE:
        return None
    return JsonText(
        bulk.json_text(
            {
                "wall_s": usage.wall_s,
                "cpu_user_s": usage.cpu_user_s,
                "cpu_system_s": usage.cpu_system_s,
                "max_rss_kb": usage.max_rss_kb,
            }
        )
    )
