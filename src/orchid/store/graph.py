"""Writing job graphs of any size: static jobs and their edges, streamed in batches.

A jobs file of a million lines is never held in memory. Jobs are written a batch at a
time (ids allocated up front, so a batch's edges need no round trip), in bulk:
``executemany`` on SQLite, ``COPY`` on PostgreSQL. A parent is found in the batch, among
the ids of the most recent jobs (a bounded cache: in a layered graph, parents are recent),
or else in the database by its (work, name) index. The database's unique index on
(work, name) is what finds a job written twice, so no set of every name is kept either.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.jobs import JobDraft
from orchid.core.states import JobStatus
from orchid.core.validate import missing_parent
from orchid.errors import TemplateError
from orchid.store import bulk

BATCH = 5000  # jobs per write
RECENT = 131_072  # ids kept per generation of the cache of recent jobs (two generations)
MAX_ERRORS = 20

Key = tuple[int, str]  # (work id, job name)

_JOB_COLUMNS = (
    "id",
    "workflow_id",
    "work_id",
    "name",
    "status",
    "args",
    "pending_parents",
    "max_attempts",
)
_INSERT_SQLITE = (
    f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({', '.join('?' * len(_JOB_COLUMNS))})"
)
_FIND_SQLITE = (
    "SELECT j.id, j.work_id, j.name FROM json_each(:refs) AS r "
    "JOIN jobs AS j ON j.work_id = r.value ->> 0 AND j.name = r.value ->> 1"
)
_FIND_PG = (
    "SELECT j.id, j.work_id, j.name FROM unnest(CAST(:works AS INTEGER[]), "
    "CAST(:names AS TEXT[])) AS r(work_id, name) "
    "JOIN jobs AS j ON j.work_id = r.work_id AND j.name = r.name"
)


class _Recent:
    """Ids of recently written jobs, in two generations of at most ``size`` each."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.new: dict[Key, int] = {}
        self.old: dict[Key, int] = {}

    def get(self, key: Key) -> int | None:
        found = self.new.get(key)
        return found if found is not None else self.old.get(key)

    def add(self, items: Mapping[Key, int]) -> None:
        self.new.update(items)
        if len(self.new) >= self.size:
            self.old, self.new = self.new, {}


def insert_static(
    conn: Connection,
    workflow_id: int,
    work_ids: Mapping[str, int],
    drafts: Iterable[JobDraft],
    max_attempts: Mapping[str, int],
    *,
    batch: int | None = None,
) -> Counter[int]:
    """Insert listed jobs in ``waiting`` with their edges; return how many per work id.

    Each job's parents must be jobs of this workflow written before it (earlier in
    ``drafts``, or by an earlier call). Raises TemplateError naming each job (``where``)
    that repeats a name in its work or has a parent that was not written before it.
    """
    writer = _Writer(conn, workflow_id, work_ids, max_attempts)
    size = batch or BATCH
    chunk: list[JobDraft] = []
    for draft in drafts:
        chunk.append(draft)
        if len(chunk) >= size:
            writer.write(chunk)
            chunk = []
    if chunk:
        writer.write(chunk)
    return writer.per_work


class _Writer:
    def __init__(
        self,
        conn: Connection,
        workflow_id: int,
        work_ids: Mapping[str, int],
        max_attempts: Mapping[str, int],
    ) -> None:
        self.conn = conn
        self.pg = bulk.is_pg(conn)
        self.workflow_id = workflow_id
        self.work_ids = work_ids
        self.attempts = {work_ids[w]: n for w, n in max_attempts.items() if w in work_ids}
        self.recent = _Recent(RECENT)
        self.per_work: Counter[int] = Counter()
        self._next_id = 0

    def write(self, drafts: Sequence[JobDraft]) -> None:
        ids = self._allocate(len(drafts))
        batch: dict[Key, int] = {}
        rows: list[tuple[Any, ...]] = []
        edges: list[tuple[Any, int]] = []  # (parent id, or None while unresolved; child id)
        unresolved: dict[Key, list[int]] = {}  # parent → positions in edges
        problems: list[tuple[str, str]] = []
        waiting = JobStatus.WAITING.value
        work_ids, attempts, wf = self.work_ids, self.attempts, self.workflow_id
        in_batch, recent_new, recent_old = batch.get, self.recent.new.get, self.recent.old.get
        add_edge, add_row, dumps = edges.append, rows.append, bulk.json_text
        for d, jid in zip(drafts, ids, strict=True):
            wid = work_ids[d.work]
            key = (wid, d.name)
            if key in batch:
                problems.append((d.where, _twice(d)))
                continue
            for pw, pj in d.parents:
                pkey = (work_ids[pw], pj)
                # ids start at 1, so a miss is the only falsy answer
                pid = in_batch(pkey) or recent_new(pkey) or recent_old(pkey)
                if pid is None:
                    unresolved.setdefault(pkey, []).append(len(edges))
                add_edge((pid, jid))
            batch[key] = jid
            args = dumps(d.args) if d.args else "{}"
            add_row((jid, wf, wid, d.name, waiting, args, len(d.parents), attempts[wid]))
        if unresolved:
            found = self._find(list(unresolved))
            for pkey, positions in unresolved.items():
                pid = found.get(pkey)
                for pos in positions:
                    edges[pos] = (pid, edges[pos][1])
            problems += self._missing_parents(drafts, ids, edges, found, unresolved)
        if problems:
            raise TemplateError(sorted(problems, key=_line_order)[:MAX_ERRORS])
        self._insert(drafts, ids, rows)
        if self.pg:
            bulk.copy_rows(self.conn, "job_edges", ("parent_id", "child_id"), edges)
        else:
            bulk.executemany(
                self.conn, "INSERT INTO job_edges (parent_id, child_id) VALUES (?, ?)", edges
            )
        self.per_work.update(r[2] for r in rows)
        self.recent.add(batch)

    def _allocate(self, n: int) -> list[int]:
        """Ids for the next ``n`` jobs (SQLite: this transaction holds the write lock)."""
        if self.pg:
            return list(
                self.conn.execute(
                    sa.text(
                        "SELECT nextval(pg_get_serial_sequence('jobs', 'id')) "
                        "FROM generate_series(1, :n)"
                    ),
                    {"n": n},
                ).scalars()
            )
        if not self._next_id:
            top = self.conn.execute(sa.text("SELECT max(id) FROM jobs")).scalar()
            self._next_id = int(top or 0) + 1
        start, self._next_id = self._next_id, self._next_id + n
        return list(range(start, start + n))

    def _find(self, keys: list[Key]) -> dict[Key, int]:
        """Ids of earlier jobs by (work id, name), from the database."""
        out: dict[Key, int] = {}
        for i in range(0, len(keys), BATCH):
            part = keys[i : i + BATCH]
            if self.pg:
                stmt = sa.text(_FIND_PG)
                params: dict[str, Any] = {
                    "works": [k[0] for k in part],
                    "names": [k[1] for k in part],
                }
            else:
                stmt = sa.text(_FIND_SQLITE)
                params = {"refs": bulk.json_text(part)}
            for jid, wid, name in self.conn.execute(stmt, params):
                out[(int(wid), str(name))] = int(jid)
        self.recent.add(out)
        return out

    def _missing_parents(
        self,
        drafts: Sequence[JobDraft],
        ids: Sequence[int],
        edges: Sequence[Sequence[Any]],
        found: Mapping[Key, int],
        unresolved: Mapping[Key, Sequence[int]],
    ) -> list[tuple[str, str]]:
        missing = {k for k in unresolved if k not in found}
        if not missing:
            return []
        by_id = {jid: d for d, jid in zip(drafts, ids, strict=True)}
        names = {wid: w for w, wid in self.work_ids.items()}
        out: list[tuple[str, str]] = []
        reported: set[int] = set()
        for key in sorted(missing):
            for pos in unresolved[key]:
                child = by_id[edges[pos][1]]
                if edges[pos][1] in reported:
                    continue
                reported.add(edges[pos][1])
                work = names[key[0]]
                ref = key[1] if work == child.work else f"{work}/{key[1]}"
                known = self._names_like(key[0], key[1])
                known += [d.name for d in drafts[:1000] if d.work == work]
                known = [n for n in known if n != key[1]]
                message = missing_parent(ref, work, key[1], known)
                out.append((child.where, message + " (parents must come on earlier lines)"))
        return out

    def _names_like(self, work_id: int, name: str) -> list[str]:
        """A few names of the work to suggest instead of a missing one."""
        rows = self.conn.execute(
            sa.text(
                "SELECT name FROM jobs WHERE work_id = :w AND name >= :lo ORDER BY name LIMIT 50"
            ),
            {"w": work_id, "lo": name[:1]},
        )
        return [str(n) for n in rows.scalars()]

    def _insert(
        self, drafts: Sequence[JobDraft], ids: Sequence[int], rows: list[tuple[Any, ...]]
    ) -> None:
        """Write the jobs; a name already in the database is reported with its line."""
        try:
            with self.conn.begin_nested():
                if self.pg:
                    bulk.copy_rows(self.conn, "jobs", _JOB_COLUMNS, rows)
                else:
                    bulk.executemany(self.conn, _INSERT_SQLITE, rows)
        except self.conn.dialect.loaded_dbapi.IntegrityError:  # the driver's own: no SQLAlchemy
            pass
        else:
            return
        # back at the savepoint: the names this batch shares with earlier jobs
        taken = self._find(sorted({(r[2], r[3]) for r in rows}))
        problems = [
            (d.where, _twice(d)) for d, r in zip(drafts, rows, strict=True) if (r[2], r[3]) in taken
        ]
        raise TemplateError(problems[:MAX_ERRORS] or [("jobs", "a job name is used twice")])


def _twice(d: JobDraft) -> str:
    return f"job '{d.name}' appears twice in work '{d.work}'"


def _line_order(problem: tuple[str, str]) -> tuple[str, int]:
    where = problem[0]
    source, _, line = where.rpartition(":")
    with contextlib.suppress(ValueError):
        return source, int(line)
    return where, 0
