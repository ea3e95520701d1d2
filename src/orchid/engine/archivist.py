"""Retention: ended workflows archived into one gzip JSON-lines file each, and restored.

See docs/architecture.md, "Retention", and docs/operations.md. Archiving a workflow is
a sequence of short steps, each safe to run again after a crash (the workflow row's
``archive_state`` says how far it got, :mod:`orchid.store.archive`):

1. mark it ``writing`` (only if it ended and nothing acts on it);
2. write every row to ``<archive_dir>/workflow-<id>.jsonl.gz.tmp``, ``batch`` rows per
   read, fsync, rename to its final name, fsync the folder; job logs go into the file
   too (``logs = "archive"``) and are then removed (``archive`` or ``delete``);
3. mark it ``deleting`` (the summary of its works is kept on its row);
4. delete its rows, ``batch`` rows per transaction, children first;
5. mark it ``archived``.

Restoring reads the file (JSON only: nothing in it is ever imported or evaluated),
checks that every row belongs to the workflow, deletes what a crashed restore left,
inserts the rows with their ids, ``batch`` per transaction, and clears the mark.

The steps are a generator that yields after each batch: the :class:`Archivist` agent
runs it a slice at a time, at most ``share`` of its loop's time, so running agents
never wait long for it; ``orchid archive`` runs it to the end.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import logging
import os
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from orchid.engine.agent import TICK, AgentEnv, Step, agent_id
from orchid.errors import InvalidInput, NotFound, OrchidError
from orchid.safefiles import open_file_beneath, relative_parts
from orchid.store import archive as rows_store
from orchid.store.db import Database

log = logging.getLogger(__name__)

FORMAT = 1  # the archive file's format; a reader refuses newer ones
LOG_CHUNK = 1 << 20  # bytes of a log per line of the file
SLICE = 500  # rows written to the file between two yields of the steps
CHECK_EVERY_S = 60.0  # the agent looks for due workflows this often


class ArchiveError(OrchidError):
    """An archive file that cannot be restored (missing, cut short, not this workflow's)."""


class _Busy(InvalidInput):
    def __init__(self, workflow_id: int) -> None:
        super().__init__(f"workflow {workflow_id} is being archived by another agent")


@dataclass(frozen=True)
class Policy:
    """What retention does (``[retention]`` of the settings, orchid.settings)."""

    directory: Path
    log_root: Path
    batch: int = 2000
    logs: str = "archive"  # archive | delete | keep
    after: float | None = None  # seconds after its end a workflow is archived; None: never
    share: float = 0.05

    @classmethod
    def from_settings(cls, settings: Any) -> Policy:
        return cls(
            directory=settings.archive_dir,
            log_root=settings.log_dir,
            batch=settings.retention_batch,
            logs=settings.retention_logs,
            after=settings.archive_after,
            share=settings.retention_share,
        )


@dataclass
class Outcome:
    """What archiving or restoring one workflow did."""

    workflow_id: int
    uri: str = ""
    rows: dict[str, int] = field(default_factory=dict)  # written, or restored
    deleted: dict[str, int] = field(default_factory=dict)
    logs: int = 0  # log files archived, deleted or written back


class Archiver:
    """Archives and restores workflows of one database under one policy."""

    def __init__(
        self,
        db: Database,
        policy: Policy,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.owner = owner or agent_id("archivist")
        self._restored_logs: set[str] = set()

    def path_of(self, workflow_id: int) -> Path:
        return self.policy.directory / f"workflow-{workflow_id}.jsonl.gz"

    # --- archiving ------------------------------------------------------------------------

    def due(self, older_than: float | None = None, limit: int = 100) -> list[rows_store.Entry]:
        """Workflows to archive now: half-done ones, then those ended ``older_than``
        seconds ago (default: the policy's ``after``; none if that is never)."""
        after = self.policy.after if older_than is None else older_than
        now = self.clock()
        with self.db.engine.connect() as conn:
            if after is None:
                return rows_store.due(conn, float("-inf"), now, limit)
            return rows_store.due(conn, now - after, now, limit)

    def archive(self, workflow_id: int) -> Outcome:
        """Archive one workflow whole (or finish a crashed archiving)."""
        out = Outcome(workflow_id)
        for _ in self.steps(workflow_id, out):
            pass
        return out

    def steps(self, workflow_id: int, out: Outcome | None = None) -> Generator[None]:
        """Archive one workflow, yielding after each batch (see the module's docstring)."""
        out = out or Outcome(workflow_id)
        with self.db.engine.connect() as conn:
            entry = rows_store.entry(conn, workflow_id)
        state = entry.archive_state
        out.uri = entry.archive_uri or str(self.path_of(workflow_id))
        if state == rows_store.ARCHIVED:
            return
        if state is None:
            self.policy.directory.mkdir(parents=True, exist_ok=True)
            with self.db.begin() as conn:
                if not rows_store.mark(conn, workflow_id, out.uri, self.owner, *self._lease()):
                    raise InvalidInput(
                        f"workflow {workflow_id} cannot be archived now: it has not ended "
                        f"({entry.status}), or it has commands to apply or an agent on it"
                    )
            state = rows_store.WRITING
        if state == rows_store.WRITING:
            yield from self._write(workflow_id, out)
            with self.db.begin() as conn:
                if not rows_store.written(conn, workflow_id, self.owner, self.clock()):
                    raise _Busy(workflow_id)
        elif state == rows_store.RESTORING:  # a restore that failed: its file is still there
            with self.db.begin() as conn:
                rows_store.set_state(conn, workflow_id, rows_store.RESTORING, rows_store.DELETING)
        yield from self._delete(workflow_id, out)
        with self.db.begin() as conn:
            rows_store.set_state(conn, workflow_id, rows_store.DELETING, rows_store.ARCHIVED)
        log.info("workflow %d archived into %s (%s)", workflow_id, out.uri, _counts(out.rows))

    def _lease(self) -> tuple[float, float]:
        return self.clock(), self.db.lease_seconds

    def _hold(self, workflow_id: int) -> None:
        """Renew this writer's lease (between batches); another writer has it: stop."""
        with self.db.begin() as conn:
            if not rows_store.hold(conn, workflow_id, self.owner, *self._lease()):
                raise _Busy(workflow_id)

    def _write(self, workflow_id: int, out: Outcome) -> Iterator[None]:
        final = self.path_of(workflow_id)
        tmp = final.with_name(f"{final.name}.{os.getpid()}.tmp")
        p = self.policy
        logs: list[Path] = []
        self._hold(workflow_id)
        with self.db.engine.connect() as conn:
            wf = rows_store.workflow_row(conn, workflow_id)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
                _line(
                    gz, {"orchid_archive": FORMAT, "workflow_id": workflow_id, "at": self.clock()}
                )
                _line(gz, {"workflow": wf})
                for table in rows_store.TABLES:
                    n = 0
                    for row in rows_store.all_rows(
                        self.db.engine.connect, table, workflow_id, p.batch
                    ):
                        _line(gz, {"table": table.name, "row": row})
                        n += 1
                        if n % min(SLICE, p.batch) == 0:  # ~50 ms of reading, packing
                            yield
                        if n % p.batch == 0:
                            self._hold(workflow_id)
                    out.rows[table.name] = n
                if p.logs != "keep":
                    for path in self._log_files(workflow_id):
                        logs.append(path)
                        if p.logs == "archive":
                            self._copy_log(gz, path)
                        yield
                _line(gz, {"end": {"rows": sum(out.rows.values())}})
            raw.flush()
            os.fsync(raw.fileno())
        self._hold(workflow_id)  # still the one writer: the file may take its name
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        out.uri = str(final)
        for path in logs:  # only once the file that holds them is safe
            try:
                path.unlink()
                out.logs += 1
            except FileNotFoundError:
                pass
        for folder in sorted({p.parent for p in logs}, key=lambda f: -len(f.parts)):
            with contextlib.suppress(OSError):
                folder.rmdir()  # emptied: it was the workflow's

    def _log_folders(self, workflow_id: int) -> set[Path]:
        """The workflow's log folders: ``<log root>/<instance>/<workflow id>``, as its jobs'
        logs name them (logs of older layouts, in folders shared by workflows, stay)."""
        found: set[Path] = set()
        after = 0
        while True:
            with self.db.engine.connect() as conn:
                chunk = rows_store.job_logs(conn, workflow_id, after, self.policy.batch)
            for _, uri in chunk:
                folder = Path(uri).parent
                if folder.name == str(workflow_id) and self._inside(folder):
                    found.add(folder)
            if len(chunk) < self.policy.batch:
                return found
            after = chunk[-1][0]

    def _log_files(self, workflow_id: int) -> Iterator[Path]:
        """Every plain file in the workflow's log folders (links are neither followed nor
        taken: a job may have put them there)."""
        for folder in sorted(self._log_folders(workflow_id)):
            for top, dirs, names in os.walk(folder, followlinks=False):
                dirs.sort()
                for name in sorted(names):
                    path = Path(top) / name
                    if path.is_file() and not path.is_symlink():
                        yield path

    def _inside(self, path: Path) -> bool:
        try:
            relative_parts(self.policy.log_root, path)
        except OrchidError:
            return False
        return True

    def _copy_log(self, gz: gzip.GzipFile, path: Path) -> None:
        root = self.policy.log_root
        try:
            fh = open_file_beneath(root, path)
        except (OSError, OrchidError):
            return  # gone or replaced meanwhile: nothing to keep
        rel = "/".join(relative_parts(root, path))
        with fh:
            part = 0
            while chunk := fh.read(LOG_CHUNK):
                data = base64.b64encode(chunk).decode()
                _line(gz, {"log": {"path": rel, "part": part, "data": data}})
                part += 1

    def _delete(self, workflow_id: int, out: Outcome) -> Iterator[None]:
        while True:
            with self.db.begin() as conn:
                table, n = rows_store.delete_batch(conn, workflow_id, self.policy.batch)
            if not n:
                return
            out.deleted[table] = out.deleted.get(table, 0) + n
            yield

    # --- restoring ------------------------------------------------------------------------

    def restore(self, workflow_id: int) -> Outcome:
        """Put an archived workflow's rows (and logs) back; it then reads as before."""
        out = Outcome(workflow_id)
        with self.db.engine.connect() as conn:
            entry = rows_store.entry(conn, workflow_id)
        if entry.archive_state in (None, rows_store.WRITING):
            raise InvalidInput(f"workflow {workflow_id} is not archived: nothing to restore")
        if entry.archive_state == rows_store.DELETING:
            raise InvalidInput(
                f"workflow {workflow_id} is being archived; run `orchid archive "
                f"{workflow_id}` to finish, then restore it"
            )
        uri = entry.archive_uri or str(self.path_of(workflow_id))
        path = Path(uri)
        wf_row = self._check(workflow_id, path)
        if entry.archive_state == rows_store.ARCHIVED:
            with self.db.begin() as conn:
                rows_store.set_state(conn, workflow_id, rows_store.ARCHIVED, rows_store.RESTORING)
        for _ in self._delete(workflow_id, out):  # what a crashed restore put back
            pass
        try:
            self._insert(workflow_id, path, out)
        except sa.exc.IntegrityError as exc:
            raise ArchiveError(
                f"workflow {workflow_id} cannot be restored: ids of its rows are taken by "
                f"newer rows ({str(exc.orig).splitlines()[0]}). SQLite gives the ids of "
                f"deleted rows to new ones; `orchid archive {workflow_id}` archives it again"
            ) from None
        with self.db.begin() as conn:
            rows_store.unarchive(conn, workflow_id, wf_row)
        path.unlink(missing_ok=True)
        out.uri = uri
        log.info("workflow %d restored from %s (%s)", workflow_id, uri, _counts(out.rows))
        return out

    def _check(self, workflow_id: int, path: Path) -> dict[str, Any]:
        """Read the file through once: complete, of this workflow, every row its own.
        Returns the workflow row."""
        owned: dict[str, set[Any]] = {"collections": set(), "studies": set(), "jobs": set()}
        wf: dict[str, Any] | None = None
        ended = False
        for n, rec in enumerate(_records(path)):
            if n == 0:
                if rec.get("orchid_archive") != FORMAT or rec.get("workflow_id") != workflow_id:
                    raise ArchiveError(f"{path} is not the archive of workflow {workflow_id}")
            elif "workflow" in rec:
                wf = dict(rec["workflow"])
                if wf.get("id") != workflow_id:
                    raise ArchiveError(f"{path}: its workflow row is not workflow {workflow_id}")
            elif "table" in rec:
                _own(rec, workflow_id, owned, path)
            elif "end" in rec:
                ended = True
            elif "log" not in rec:
                raise ArchiveError(f"{path}: line {n + 1} is not an archive record")
        if wf is None or not ended:
            raise ArchiveError(f"{path} is cut short: it has no end; restore from a backup")
        return wf

    def _insert(self, workflow_id: int, path: Path, out: Outcome) -> None:
        pending: list[dict[str, Any]] = []
        current = ""

        def flush() -> None:
            if pending:
                with self.db.begin() as conn:
                    rows_store.insert(conn, rows_store.BY_NAME[current], pending)
                out.rows[current] = out.rows.get(current, 0) + len(pending)
                pending.clear()

        for rec in _records(path):
            if "table" in rec:
                if rec["table"] != current or len(pending) >= self.policy.batch:
                    flush()
                    current = rec["table"]
                pending.append(rec["row"])
            elif "log" in rec:
                flush()
                self._write_log(rec["log"])
        flush()
        out.logs = len(self._restored_logs)
        self._restored_logs.clear()

    def _write_log(self, rec: Mapping[str, Any]) -> None:
        """A part of a log file back, only inside the log folder, never through a link, and
        only into a file this restore made (one that exists is kept as it is)."""
        root = self.policy.log_root
        rel = str(rec.get("path", ""))
        path = root / rel
        try:
            parts = relative_parts(root, path)
        except OrchidError:
            parts = ()
        if not parts or rel.startswith("/") or _linked(root, parts):
            log.warning("not restoring the log %r: it is not inside %s", rel, root)
            return
        first = int(rec["part"]) == 0
        if not first and rel not in self._restored_logs:
            return  # its first part was not ours to write
        flags = os.O_WRONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        flags |= (os.O_CREAT | os.O_EXCL) if first else os.O_APPEND
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, flags, 0o600)
        except OSError:
            return
        with os.fdopen(fd, "wb") as fh:
            fh.write(base64.b64decode(str(rec["data"])))
        self._restored_logs.add(rel)


def _linked(root: Path, parts: tuple[str, ...]) -> bool:
    """Whether a component below ``root`` is a symbolic link."""
    here = root
    for part in parts:
        here = here / part
        if here.is_symlink():
            return True
    return False


def _own(
    rec: Mapping[str, Any],
    workflow_id: int,
    owned: dict[str, set[Any]],
    path: Path,
) -> None:
    """Refuse a row that is not the workflow's (a file edited to reach other workflows)."""
    table, row = rec["table"], rec["row"]
    if table not in rows_store.BY_NAME or not isinstance(row, dict):
        raise ArchiveError(f"{path}: a row of an unknown table {table!r}")
    parent = {"files": ("collection_id", "collections"), "trials": ("study_id", "studies")}
    if table == "job_edges":
        ok = row.get("parent_id") in owned["jobs"] and row.get("child_id") in owned["jobs"]
    elif table in parent:
        column, of = parent[table]
        ok = row.get(column) in owned[of]
    else:
        ok = row.get("workflow_id") == workflow_id
    if not ok:
        raise ArchiveError(f"{path}: a row of {table} that is not workflow {workflow_id}'s")
    if table in owned:
        owned[table].add(row.get("id"))


def _line(gz: gzip.GzipFile, record: Mapping[str, Any]) -> None:
    gz.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")


def _records(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with gzip.open(path, "rb") as fh:
            for n, raw in enumerate(fh):
                try:
                    rec = json.loads(raw)
                except ValueError:
                    raise ArchiveError(f"{path}: line {n + 1} is not JSON") from None
                if not isinstance(rec, dict):
                    raise ArchiveError(f"{path}: line {n + 1} is not a JSON object")
                yield rec
    except FileNotFoundError:
        raise ArchiveError(
            f"the archive file {path} is missing; put it back (from a backup) and try again"
        ) from None
    except (OSError, EOFError) as exc:
        raise ArchiveError(f"{path} cannot be read: {exc}") from None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _counts(rows: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {t}" for t, n in rows.items() if n) or "no rows"


class Archivist:
    """The agent: archives due workflows in slices, at most ``share`` of its loop's time.

    Every tick it earns ``share`` of the time since the last one (up to ten seconds'
    worth) and spends it on batches of the workflow at hand; it looks for due workflows
    every ``CHECK_EVERY_S``. It returns 0 whatever it did, so it never makes the loop
    run its round again sooner: retention is background work.
    """

    name = "archivist"

    def __init__(self, env: AgentEnv, policy: Policy, check_every_s: float = CHECK_EVERY_S):
        self.env = env
        self.archiver = Archiver(env.db, policy, env.clock, agent_id("archivist"))
        self.share = policy.share
        self._check_every = check_every_s
        self._next_check = 0.0
        self._queue: list[int] = []
        self._current: Generator[None] | None = None
        self._last = time.monotonic()
        self._credit = 0.0
        self.archived = 0

    def steps(self) -> Mapping[str, Step]:
        return {TICK: self.tick}

    def run_once(self) -> int:
        return self.tick()

    def tick(self) -> int:
        now = time.monotonic()
        self._credit = min(self._credit + self.share * (now - self._last), self.share * 10)
        self._last = now
        if self._current is None and not self._queue and now >= self._next_check:
            self._next_check = now + self._check_every
            self._queue = [e.id for e in self.archiver.due(limit=10)]
        while self._credit > 0 and (self._current is not None or self._queue):
            t0 = time.monotonic()
            try:
                self._advance()
            finally:
                self._credit -= time.monotonic() - t0
        return 0

    def _advance(self) -> None:
        if self._current is None:
            workflow_id = self._queue.pop(0)
            self._current = self.archiver.steps(workflow_id)
        try:
            next(self._current)
        except StopIteration:
            self._current = None
            self.archived += 1
        except (InvalidInput, NotFound) as exc:  # it changed meanwhile: not due after all
            log.info("not archiving now: %s", exc)
            self._current = None
        except BaseException:
            self._current = None  # started again from its state next time
            raise

    def close(self) -> None:
        """Stop where it is (the state on the workflow's row says where that is) and give
        back the lease of a file it was writing."""
        if self._current is not None:
            self._current.close()
            self._current = None
            try:
                with self.env.db.begin() as conn:
                    rows_store.release(conn, self.archiver.owner)
            except Exception:  # the lease runs out by itself
                log.warning("could not give back the archivist's lease", exc_info=True)


__all__ = ["ArchiveError", "Archiver", "Archivist", "Outcome", "Policy"]
