"""Limits and fair share (issue 21): the ``quotas`` rows, what each subject uses, and the
carrier's fair claim.

A quota row is (kind, subject, executor, quota) → value: ``user alice running 100``,
``user alice on slurm running 10``, ``group physics weight 3``, ``executor slurm running
50``. The carrier reads the rows that bear on a claim (``running`` and ``weight``) with
one small statement per batch; when there are none it claims as before (oldest ready
first, one statement). Otherwise it takes an advisory lock (PostgreSQL; SQLite's writes are
serialised already), reads in two statements what each (owner, group) has in flight and
has ready, and gives the batch's slots one at a time to the account whose
(decayed usage + jobs in flight) / weight is lowest and which no limit stops; then claims
each workflow's share with one statement (docs/architecture.md, "Limits and fair share").
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.errors import InvalidInput, QuotaExceeded
from orchid.store import bulk, resultbytes
from orchid.store.routes import Route
from orchid.store.tables import IN_FLIGHT, READY, cache_objects, quotas, share_usage, workflows

KINDS = ("user", "group", "executor")
Account = tuple[str, str]  # whose jobs: (owner, the group its workflow was shared with or '')

# quota name → (the kinds it applies to, what it bounds)
LIMITS: dict[str, tuple[tuple[str, ...], str]] = {
    "running": (KINDS, "jobs in flight (submitted or running): checked when carriers claim"),
    "queued": (
        ("user", "group"),
        "jobs not yet claimed (waiting, ready) of unfinished workflows: checked at submission",
    ),
    "jobs_per_workflow": (("user", "group"), "listed jobs of one workflow: at submission"),
    "workflows_per_day": (("user", "group"), "workflows submitted in 24 hours: at submission"),
    "cache_bytes": (("user",), "bytes a user holds in the cache: checked at upload"),
    "result_bytes": (
        ("user", "group"),
        "bytes of job results its live workflows hold: checked as results are recorded",
    ),
    "weight": (("user", "group"), "fair-share weight (1 when not set): a user's, else its group's"),
}
CLAIM_QUOTAS = ("running", "weight")
DAY_S = 86_400.0
# fair share: the time constant of the decayed usage (an exponential average of a user's
# jobs in flight); a user's recent past counts for about this long (``share_decay``)
DECAY_S = 300.0
_LOCK_KEY = 0x0C41D_0021  # pg_advisory_xact_lock: one fair claim at a time


@dataclass(frozen=True)
class Quota:
    kind: str
    subject: str
    quota: str
    value: int
    executor: str = ""  # '' on every executor; only user and group quotas name one

    def check(self) -> Quota:
        if self.kind not in KINDS:
            raise InvalidInput(f"kind {self.kind!r}: one of {', '.join(KINDS)}", field="kind")
        if self.quota not in LIMITS:
            known = ", ".join(LIMITS)
            raise InvalidInput(f"quota {self.quota!r}: one of {known}", field="quota")
        kinds = LIMITS[self.quota][0]
        if self.kind not in kinds:
            raise InvalidInput(
                f"quota {self.quota} applies to {' and '.join(kinds)}, not {self.kind}",
                field="kind",
            )
        if not self.subject:
            raise InvalidInput(
                "a quota needs a subject (a user, group or executor)", field="subject"
            )
        if self.executor and (self.kind == "executor" or self.quota != "running"):
            raise InvalidInput(
                "only running limits of users and groups may name an executor", field="executor"
            )
        if self.value < 0 or (self.quota == "weight" and self.value < 1):
            low = 1 if self.quota == "weight" else 0
            raise InvalidInput(f"value {self.value}: at least {low}", field="value")
        return self


def set_quota(conn: Connection, q: Quota, now: float) -> None:
    q.check()
    key = _key(q.kind, q.subject, q.executor, q.quota)
    conn.execute(sa.delete(quotas).where(key))
    conn.execute(
        sa.insert(quotas).values(
            kind=q.kind, subject=q.subject, executor=q.executor, quota=q.quota, value=q.value,
            updated_at=now,
        )
    )  # fmt: skip


def unset(conn: Connection, kind: str, subject: str, quota: str, executor: str = "") -> bool:
    """Remove a quota; False when there was none."""
    res = conn.execute(sa.delete(quotas).where(_key(kind, subject, executor, quota)))
    return bool(res.rowcount)


def _key(kind: str, subject: str, executor: str, quota: str) -> sa.ColumnElement[bool]:
    c = quotas.c
    return sa.and_(c.kind == kind, c.subject == subject, c.executor == executor, c.quota == quota)


_ALL = sa.select(quotas).order_by(quotas.c.kind, quotas.c.subject, quotas.c.executor)


def all_quotas(conn: Connection, which: Iterable[str] | None = None) -> list[Quota]:
    q = _ALL if which is None else _ALL.where(quotas.c.quota.in_(list(which)))
    return _quotas(conn, q)


# --- usage -------------------------------------------------------------------------------

_IN_FLIGHT_BY = f"""
SELECT w.owner, coalesce(w.share_group, ''), count(*), sum(j.here)
FROM (SELECT workflow_id, CASE WHEN {{here}} THEN 1 ELSE 0 END AS here FROM jobs
      WHERE {IN_FLIGHT}) j
JOIN workflows w ON w.id = j.workflow_id
GROUP BY w.owner, coalesce(w.share_group, '')
"""
_QUEUED_BY = """
SELECT w.owner, coalesce(w.share_group, ''), count(*) FROM jobs j
JOIN workflows w ON w.id = j.workflow_id
WHERE j.status IN ('waiting', 'ready') AND w.status IN ('pending', 'running', 'suspended')
  AND w.archive_state IS NULL {only}
GROUP BY w.owner, coalesce(w.share_group, '')
"""


@dataclass(frozen=True)
class Used:
    """A quota and how much of it is used now (weights: the decayed usage, in slots)."""

    quota: Quota
    used: float


def usage(conn: Connection, now: float, decay: float = DECAY_S) -> list[Used]:
    """Every quota with what its subject uses now (``orchid quota show``, ``/metrics``)."""
    rows = all_quotas(conn)
    if not rows:
        return []
    flying = _counts(conn.execute(sa.text(_IN_FLIGHT_BY.format(here="1 = 1"))))
    queued = _counts(conn.execute(sa.text(_QUEUED_BY.format(only=""))))
    day = _counts(
        conn.execute(
            sa.select(workflows.c.owner, workflows.c.share_group, sa.func.count())
            .where(workflows.c.created_at > now - DAY_S)
            .group_by(workflows.c.owner, workflows.c.share_group)
        )
    )
    cache = dict(
        conn.execute(
            sa.select(cache_objects.c.owner, sa.func.sum(cache_objects.c.size)).group_by(
                cache_objects.c.owner
            )
        ).all()
    )
    decayed, _ = _decay(conn, now, decay)
    by_exec = _in_flight_by_executor(conn)
    results = resultbytes.held(conn) if any(q.quota == "result_bytes" for q in rows) else {}

    def of(counts: Mapping[Account, int], kind: str, subject: str) -> float:
        i = 0 if kind == "user" else 1
        return float(sum(n for a, n in counts.items() if a[i] == subject))

    out = []
    for q in rows:
        if q.quota == "running":
            if q.kind == "executor":
                used = float(sum(n for (_, _, e), n in by_exec.items() if e == q.subject))
            elif q.executor:
                i = 0 if q.kind == "user" else 1
                used = float(
                    sum(n for k, n in by_exec.items() if k[i] == q.subject and k[2] == q.executor)
                )
            else:
                used = of(flying, q.kind, q.subject)
        elif q.quota == "queued":
            used = of(queued, q.kind, q.subject)
        elif q.quota == "workflows_per_day":
            used = of(day, q.kind, q.subject)
        elif q.quota == "cache_bytes":
            used = float(cache.get(q.subject) or 0)
        elif q.quota == "result_bytes":
            used = of(results, q.kind, q.subject)
        elif q.quota == "weight":
            used = decayed.get(q.subject, 0.0) if q.kind == "user" else 0.0
        else:  # jobs_per_workflow: a bound on each submission, nothing accumulates
            used = 0.0
        out.append(Used(q, used))
    return out


def _counts(rows: Iterable[Any]) -> dict[Account, int]:
    """(owner, group, count) rows → (owner, group or '') → count."""
    out: dict[Account, int] = defaultdict(int)
    for o, g, n, *_ in rows:
        out[str(o), str(g or "")] += int(n)
    return out


def _in_flight_by_executor(conn: Connection) -> dict[tuple[str, str, str], int]:
    """(owner, group, executor) → jobs in flight; executor '' for unrouted works."""
    sql = f"""
    SELECT w.owner, coalesce(w.share_group, ''), coalesce(r.executor, ''), count(*)
    FROM (SELECT workflow_id, work_id FROM jobs WHERE {IN_FLIGHT}) j
    JOIN workflows w ON w.id = j.workflow_id
    JOIN works k ON k.id = j.work_id
    LEFT JOIN work_routes r ON r.workflow_id = k.workflow_id AND r.work = k.name
    GROUP BY w.owner, coalesce(w.share_group, ''), coalesce(r.executor, '')
    """
    return {(o, g, e): int(n) for o, g, e, n in conn.execute(sa.text(sql))}


# --- at submission ------------------------------------------------------------------------


def check_submission(
    conn: Connection, owner: str, group: str | None, jobs: int, now: float
) -> None:
    """Refuse a submission that would pass a limit (QuotaExceeded: 429 or 422).

    Called in the submission's transaction after its listed jobs are written (``jobs``
    of them), so the counts include it; raising rolls it back."""
    subjects = [("user", owner)] + ([("group", group)] if group else [])
    rows = [
        q
        for q in all_quotas(
            conn, ("jobs_per_workflow", "workflows_per_day", "queued", "result_bytes")
        )
        if (q.kind, q.subject) in subjects
    ]
    for q in rows:
        column = workflows.c.owner if q.kind == "user" else workflows.c.share_group
        label = f"{q.kind} {q.subject}"
        if q.quota == "jobs_per_workflow" and jobs > q.value:
            raise QuotaExceeded(q.quota, label, q.value, jobs, rate=False)
        if q.quota == "workflows_per_day":
            n = conn.execute(
                sa.select(sa.func.count()).where(
                    column == q.subject, workflows.c.created_at > now - DAY_S
                )
            ).scalar_one()
            if n > q.value:  # this one included
                raise QuotaExceeded(q.quota, label, q.value, int(n) - 1, rate=True)
        if q.quota == "queued":
            which = "w.owner = :s" if q.kind == "user" else "w.share_group = :s"
            counted = _QUEUED_BY.format(only="AND " + which)
            n = sum(int(r[2]) for r in conn.execute(sa.text(counted), {"s": q.subject}))
            if n > q.value:
                raise QuotaExceeded(q.quota, label, q.value, int(n) - jobs, rate=True)
        if q.quota == "result_bytes":
            owners, groups = ([q.subject], None) if q.kind == "user" else (None, [q.subject])
            held = resultbytes.of(resultbytes.held(conn, owners, groups), q.kind, q.subject)
            if held >= q.value:  # full: no result of the new one would fit
                raise QuotaExceeded(q.quota, label, q.value, held, rate=True, hint=resultbytes.HINT)


def check_expansion(conn: Connection, workflow_id: int, jobs: int) -> None:
    """Refuse the jobs a work's ``map:`` makes at run time (``jobs`` of them, not written
    yet) when they would take the workflow over ``jobs_per_workflow`` or its owner or group
    over ``queued`` (QuotaExceeded; the transformer fails the work with it). One statement
    when no such limit is set, one count per limit that bears on the workflow otherwise."""
    rows = all_quotas(conn, ("jobs_per_workflow", "queued"))
    if not rows or not jobs:
        return
    wf = conn.execute(
        sa.select(workflows.c.owner, workflows.c.share_group).where(workflows.c.id == workflow_id)
    ).first()
    if wf is None:
        return
    subjects = [("user", wf.owner)] + ([("group", wf.share_group)] if wf.share_group else [])
    more = f"the map would make {jobs} more jobs"
    for q in rows:
        if (q.kind, q.subject) not in subjects:
            continue
        label = f"{q.kind} {q.subject}"
        if q.quota == "jobs_per_workflow":
            n = conn.execute(
                sa.text("SELECT count(*) FROM jobs WHERE workflow_id = :wf"), {"wf": workflow_id}
            ).scalar_one()
            if int(n) + jobs > q.value:
                hint = f"{more}; make the map smaller, or ask an admin to raise it"
                raise QuotaExceeded(q.quota, label, q.value, int(n), rate=False, hint=hint)
        else:
            which = "w.owner = :s" if q.kind == "user" else "w.share_group = :s"
            counted = _QUEUED_BY.format(only="AND " + which)
            n = sum(int(r[2]) for r in conn.execute(sa.text(counted), {"s": q.subject}))
            if n + jobs > q.value:
                hint = (
                    f"{more}; make the map smaller, retry the work when fewer jobs wait "
                    "(`orchid retry`), or ask an admin to raise it (`orchid quota set`)"
                )
                raise QuotaExceeded(q.quota, label, q.value, n, rate=True, hint=hint)


def check_cache(conn: Connection, owner: str, adding: int, sha256: str) -> None:
    """Refuse a cache upload that would pass the owner's cache_bytes (429); uploading what
    one holds already adds nothing."""
    for q in all_quotas(conn, ("cache_bytes",)):
        if q.kind == "user" and q.subject == owner:
            mine = sa.and_(cache_objects.c.sha256 == sha256, cache_objects.c.owner == owner)
            if conn.execute(sa.select(cache_objects.c.size).where(mine)).first() is not None:
                return
            held = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(cache_objects.c.size), 0)).where(
                    cache_objects.c.owner == owner
                )
            ).scalar_one()
            if int(held) + adding > q.value:
                raise QuotaExceeded(q.quota, f"user {owner}", q.value, int(held), rate=True)


# --- the fair claim ------------------------------------------------------------------------

# Each running workflow with ready jobs of this carrier, and how many (counted up to :n:
# an index range of at most n entries per workflow, never all its ready jobs).
_READY_BY = f"""
SELECT w.id, w.owner, coalesce(w.share_group, ''), w.priority, (
    SELECT count(*) FROM (SELECT 1 FROM jobs
        WHERE workflow_id = w.id AND {READY} AND not_before <= :now{{route}} LIMIT :n) r)
FROM workflows w WHERE w.status = 'running'
"""
# One workflow's share of the batch: an index range of (workflow_id, status, work_id).
PICK = f"""
SELECT id FROM jobs WHERE workflow_id = :wf AND {READY} AND not_before <= :now{{route}}
ORDER BY work_id LIMIT :k {{lock}}
"""


@dataclass(frozen=True)
class Plan:
    """How many jobs to claim of each workflow, in the order they were given."""

    take: list[tuple[int, int]]  # (workflow id, jobs)


# one statement object: SQLAlchemy compiles it once (a claim runs it every time)
_CLAIM_QUOTAS = _ALL.where(quotas.c.quota.in_(CLAIM_QUOTAS))


def claim_quotas(conn: Connection) -> list[Quota]:
    """The quotas that bear on a claim; none: the plain claim."""
    return _quotas(conn, _CLAIM_QUOTAS)


def _quotas(conn: Connection, q: sa.Select[Any]) -> list[Quota]:
    return [Quota(r.kind, r.subject, r.quota, int(r.value), r.executor) for r in conn.execute(q)]


def plan_claim(
    conn: Connection,
    rows: list[Quota],
    now: float,
    n: int,
    route: Route | None,
    executor: str,
    decay: float = DECAY_S,
) -> Plan:
    """Share ``n`` slots of ``executor`` among the accounts waiting for it (see the module)."""
    pg = bulk.is_pg(conn)
    if pg:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    routed = f" AND {route.where()}" if route is not None else ""
    more = {"executor": route.executor} if route is not None else {}
    here = route.where() if route is not None else "1 = 1"
    flying: dict[Account, int] = {}
    flying_here: dict[Account, int] = {}
    for o, g, total, on in conn.execute(sa.text(_IN_FLIGHT_BY.format(here=here)), more):
        flying[o, g] = int(total)
        flying_here[o, g] = int(on or 0)
    ready = conn.execute(
        sa.text(_READY_BY.format(route=routed)), {"now": now, "n": n, **more}
    ).all()
    decayed, stored = _decay(conn, now, decay)
    waiting: dict[Account, list[tuple[int, int, int]]] = defaultdict(list)  # (-prio, wf, ready)
    for wf, o, g, prio, m in ready:
        if m:
            waiting[o, g].append((-int(prio), int(wf), int(m)))
    given = _share(rows, waiting, flying, flying_here, decayed, n, executor) if waiting else {}
    running: dict[str, int] = defaultdict(int)
    for (o, _), v in [*flying.items(), *given.items()]:
        running[o] += v
    _save_usage(conn, now, decayed, stored, running)
    take = []
    for acct, k in given.items():
        left = k
        for _, wf, m in sorted(waiting[acct]):
            if left <= 0:
                break
            take.append((wf, min(left, m)))
            left -= min(left, m)
    return Plan(take)


# Within one claim, each slot given counts this much (in slots) until the usage sees it:
# the decayed usage decides who goes first, and a batch of several slots is still spread
# in proportion to the weights when the usages are close.
IN_FLIGHT_WEIGHT = 0.05


def _order(usage: float, in_flight: int, weight: int) -> float:
    return (usage + IN_FLIGHT_WEIGHT * in_flight) / weight


def _share(
    rows: list[Quota],
    waiting: Mapping[Account, list[tuple[int, int, int]]],
    flying: Mapping[Account, int],
    flying_here: Mapping[Account, int],
    decayed: Mapping[str, float],
    n: int,
    executor: str,
) -> dict[Account, int]:
    """Give ``n`` slots one at a time to the account with the lowest (decayed usage + jobs
    in flight here) / weight that has ready jobs left and no limit stopping it."""
    weight = {(q.kind, q.subject): q.value for q in rows if q.quota == "weight"}
    # room left under each running limit, keyed by what it counts
    room: dict[tuple[str, str, str], int] = {}
    for q in rows:
        if q.quota != "running" or (q.executor and q.executor != executor):
            continue
        if q.kind == "executor":
            if q.subject == executor:
                room["executor", q.subject, ""] = q.value - sum(flying_here.values())
            continue
        i = 0 if q.kind == "user" else 1
        src = flying_here if q.executor else flying
        used = sum(v for a, v in src.items() if a[i] == q.subject)
        room[q.kind, q.subject, q.executor] = q.value - used

    def limits(a: Account) -> list[tuple[str, str, str]]:
        keys = [("executor", executor, ""), ("user", a[0], ""), ("user", a[0], executor)]
        if a[1]:
            keys += [("group", a[1], ""), ("group", a[1], executor)]
        return [k for k in keys if k in room]

    def w(a: Account) -> int:
        return weight.get(("user", a[0])) or weight.get(("group", a[1])) or 1

    left = {a: sum(m for _, _, m in wfs) for a, wfs in waiting.items()}
    given: dict[Account, int] = {}
    heap = [(_order(decayed.get(a[0], 0.0), flying_here.get(a, 0), w(a)), *a) for a in waiting]
    heapq.heapify(heap)
    while heap and n > 0:
        _, o, g = heapq.heappop(heap)
        a = (o, g)
        keys = limits(a)
        if left[a] <= 0 or any(room[k] <= 0 for k in keys):
            continue
        for k in keys:
            room[k] -= 1
        left[a] -= 1
        given[a] = given.get(a, 0) + 1
        n -= 1
        key = _order(decayed.get(o, 0.0), flying_here.get(a, 0) + given[a], w(a))
        heapq.heappush(heap, (key, o, g))
    return given


def _decay(conn: Connection, now: float, decay: float) -> tuple[dict[str, float], set[str]]:
    """Each owner's decayed usage now: an exponential average (time constant DECAY_S) of its
    jobs in flight, each interval counted with what it had in flight since the last claim."""
    out: dict[str, float] = {}
    for r in conn.execute(sa.select(share_usage)):
        keep = math.exp(-max(now - float(r.at), 0.0) / decay)
        out[str(r.owner)] = float(r.usage) * keep + int(r.running) * (1.0 - keep)
    return out, set(out)


def _save_usage(
    conn: Connection,
    now: float,
    decayed: Mapping[str, float],
    stored: set[str],
    running: Mapping[str, int],
) -> None:
    """Write every owner's usage and jobs in flight after this claim, in one statement."""
    owners = set(decayed) | set(running)
    keep = [
        [o, decayed.get(o, 0.0), now, running.get(o, 0)]
        for o in owners
        if running.get(o, 0) or decayed.get(o, 0.0) > 1e-3
    ]
    kept = {str(r[0]) for r in keep}
    gone = [o for o in owners if o not in kept and o in stored]
    if gone:
        conn.execute(sa.delete(share_usage).where(share_usage.c.owner.in_(gone)))
    if keep:
        elements = bulk.json_rows(bulk.is_pg(conn))
        conn.execute(
            sa.text(
                "INSERT INTO share_usage (owner, usage, at, running) SELECT u.value ->> 0, "
                "CAST(u.value ->> 1 AS DOUBLE PRECISION), CAST(u.value ->> 2 AS DOUBLE PRECISION), "
                f"CAST(u.value ->> 3 AS INTEGER) FROM {elements} WHERE true "
                "ON CONFLICT (owner) DO UPDATE SET usage = excluded.usage, at = excluded.at, "
                "running = excluded.running"
            ),
            {"rows": bulk.json_text(keep)},
        )
