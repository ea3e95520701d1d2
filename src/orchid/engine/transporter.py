"""The transporter: the agent that talks to data managers for works fed by collections.

It lists a new collection's files and asks for them to be staged, follows the changes
the data manager reports (files on disk, failed attempts, which it stages again while
attempts remain), releases processed files from disk (``delete_after: processed``),
and closes a collection once nothing more can happen to its files, ending the work with
its last collection. Making jobs from available files is the trigger's part
(:mod:`orchid.store.filejobs`).

Data-manager calls are made inside the transaction that records their outcome, before
it commits: every call is idempotent, so a crash between the call and the commit only
means the call is made again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection, Row

from orchid.core.carousel import Feed, parse_collection
from orchid.core.states import WorkStatus
from orchid.core.template import InputSpec
from orchid.datamgr.base import DataManager
from orchid.datamgr.registry import Access
from orchid.engine.agent import FILES, WORKFLOWS, AgentEnv, agent_id
from orchid.engine.templates import Compiled
from orchid.errors import DataManagerError
from orchid.store import events, feedends, feeds, workflows, works
from orchid.store.feeds import FeedRow

log = logging.getLogger(__name__)
DELETE_BATCH = 5000
IDLE_CHECK_S = 0.5
LIST_BUDGET = 20_000  # files listed per round at most (a campaign lists 426,331)


def start_fed_work(
    conn: Connection,
    row: Row[Any],
    compiled: Compiled,
    spec: InputSpec,
    managers: Mapping[str, DataManager],
    now: float,
    access: Mapping[str, Access] | None = None,
) -> None:
    """The transformer's part: a ready work with an input gets its collections (no jobs yet).

    The server checked at submission that the workflow's owner may use the data manager;
    the agent checks again against its own configuration (a workflow submitted elsewhere,
    or before the manager was restricted, must not get through)."""
    message = None
    if spec.manager not in managers:
        known = ", ".join(sorted(managers)) or "none"
        message = f"no data manager named '{spec.manager}' is configured here (configured: {known})"
    else:
        rule = (access or {}).get(spec.manager)
        if rule is not None and not rule.open:
            owner, groups = workflows.owner_of(conn, row.workflow_id)
            if not rule.allows(owner, groups):
                message = rule.refusal(spec.manager, owner)
    if message is not None:
        log.warning("workflow %s work %s: %s", row.workflow_id, row.name, message)
        works.stop(conn, row.id, WorkStatus.FAILED, "error", message, now)
        events.emit(
            conn, row.workflow_id, "work.failed", {"work_id": row.id, "message": message}, now
        )
        workflows.wake(conn, [row.workflow_id])
        return
    feed = Feed(
        release=spec.release,
        files_per_job=spec.files_per_job,
        delete_after=spec.delete_after == "processed",
        stage_attempts=1 + spec.retries,
        job_attempts=compiled.max_attempts(row.name),
    )
    names = [parse_collection(c, spec.manager) for c in spec.collections]
    held = feeds.open_feeds(conn, row.workflow_id, row.id, spec.manager, names, feed, now)
    works.mark_running(conn, row.id, 0, held, now)
    events.emit(
        conn, row.workflow_id, "work.running", {"work_id": row.id, "collections": held}, now
    )
    log.info(
        "workflow %s work %s: following %d collections of %s",
        row.workflow_id,
        row.name,
        held,
        spec.manager,
    )


class Transporter:
    name = "transporter"

    def __init__(
        self, env: AgentEnv, managers: Mapping[str, DataManager], owner: str | None = None
    ) -> None:
        self.env = env
        self.managers = dict(managers)
        self.owner = owner or agent_id("transporter")
        self._idle_until = 0.0
        self._unchanged: list[int] = []  # polled without news in this batch

    def run_once(self) -> int:
        if not self.managers or not self._busy():
            return 0
        return self._follow() + self._settle()

    def _busy(self) -> bool:
        """Look for open collections at most every IDLE_CHECK_S while there are none, so
        that workflows without data cost the loop next to nothing."""
        now = self.env.clock()
        if now < self._idle_until:
            return False
        with self.env.db.engine.connect() as conn:
            busy = feeds.any_open(conn)
        if not busy:
            self._idle_until = now + IDLE_CHECK_S
        return busy

    # --- following collections -------------------------------------------------------------

    def _follow(self) -> int:
        env = self.env
        done = 0
        # one transaction for the batch: data-manager calls are quick or time out, and
        # each agent round would otherwise commit once per collection
        with env.db.begin() as conn:
            due = feeds.claim_due(conn, self.owner, self.managers, env.clock(), env.lease, 100)
            self._unchanged = []
            listed = 0
            for row in due:
                if row.status != "new":
                    done += self._poll(conn, row)
                elif listed < LIST_BUDGET:  # the rest next round: polls must not wait
                    n = self._open(conn, row)
                    listed += n
                    done += n
                else:
                    feeds.done_polling(conn, row, self.owner, None, env.clock())
            feeds.let_go(conn, self._unchanged, self.owner)
        if done:
            env.bus.notify(FILES)  # the trigger makes the jobs of files on disk
        return done

    def _open(self, conn: Connection, row: FeedRow) -> int:
        mgr = self.managers[row.manager]
        now = self.env.clock()
        try:
            listed = mgr.list_files(row.key)
            to_stage = feeds.register(conn, row, listed, now)
            if to_stage:
                mgr.stage(row.key, None if len(to_stage) == len(listed) else to_stage)
        except DataManagerError as exc:
            self._broken(conn, row, f"{row.manager} cannot stage {row.key}: {exc}", now)
            return 1
        feeds.mark_staging(conn, row, self.owner, now, now + mgr.poll_interval)
        events.emit(
            conn,
            row.workflow_id,
            "collection.staging",
            {"collection_id": row.id, "files": len(listed), "to_stage": len(to_stage)},
            now,
        )
        log.info(
            "workflow %s collection %s: %d files, %d to stage",
            row.workflow_id,
            row.key,
            len(listed),
            len(to_stage),
        )
        return max(len(listed), 1)

    def _poll(self, conn: Connection, row: FeedRow) -> int:
        mgr = self.managers[row.manager]
        now = self.env.clock()
        try:
            changes = mgr.poll(row.key, row.cursor)
            changed, again = feeds.apply_changes(conn, row, changes.files, now)
            if again:
                mgr.stage(row.key, again)
                log.info("collection %s: staging %d files again", row.key, len(again))
        except DataManagerError as exc:
            # a data system that is down now may answer later: look again after a while
            log.warning("collection %s: %s; polling again later", row.key, exc)
            feeds.done_polling(
                conn, row, self.owner, row.cursor, now + max(2 * mgr.poll_interval, 1.0)
            )
            return 0
        if changes.cursor != row.cursor or changes.sealed != row.sealed or mgr.poll_interval:
            feeds.done_polling(
                conn,
                row,
                self.owner,
                changes.cursor,
                now + mgr.poll_interval,
                sealed=changes.sealed,
            )
        else:
            self._unchanged.append(row.id)  # released together at the end of the batch
        return changed

    def _broken(self, conn: Connection, row: FeedRow, message: str, now: float) -> None:
        """A collection that cannot be read fails its work."""
        log.warning("workflow %s: %s", row.workflow_id, message)
        feedends.give_up(conn, row, now, message)
        if works.finish(conn, row.work_id, WorkStatus.FAILED, message, now):
            events.emit(
                conn,
                row.workflow_id,
                "work.failed",
                {"work_id": row.work_id, "message": message},
                now,
            )
        workflows.wake(conn, [row.workflow_id])
        self.env.bus.notify(WORKFLOWS)

    # --- releasing, closing ------------------------------------------------------------------

    def _settle(self) -> int:
        env = self.env
        done = 0
        with env.db.begin() as conn:
            feedends.seal_finishing(conn)
            rows = [r for r in feeds.open_feed_rows(conn) if r.manager in self.managers]
            deleting = [r.id for r in rows if r.feed.delete_after]  # others: another process
            gone = feedends.processed(conn, deleting, DELETE_BATCH)
            for row in rows:
                if row.id in gone:
                    done += self._release(conn, row, self.managers[row.manager], gone[row.id])
            for row in feedends.complete(conn, rows):
                done += self._close(conn, row, self.managers[row.manager])
            for row in feedends.abandoned(conn):
                mgr = self.managers.get(row.manager)
                if mgr is None:
                    continue
                self._let_go(mgr, row)
                feedends.give_up(conn, row, env.clock(), "its work ended first")
                done += 1
            for row in feedends.retried(conn):
                if row.manager in self.managers:
                    feedends.reopen(conn, row)
                    log.info("collection %s: retried", row.key)
                    done += 1
        return done

    def _release(
        self, conn: Connection, row: FeedRow, mgr: DataManager, gone: list[tuple[int, str]]
    ) -> int:
        try:
            mgr.release(row.key, [name for _, name in gone])
        except DataManagerError as exc:
            log.warning("collection %s: cannot release %d files yet: %s", row.key, len(gone), exc)
            return 0
        feedends.mark_deleted(conn, [fid for fid, _ in gone], self.env.clock())
        return len(gone)

    def _close(self, conn: Connection, row: FeedRow, mgr: DataManager) -> int:
        # files whose job failed stay pinned, so that a retry can process them again
        if (
            row.feed.delete_after
            and not feedends.failed_jobs(conn, row)
            and not self._let_go(mgr, row)
        ):
            return 0
        now = self.env.clock()
        ended = feedends.close(conn, row, now)
        events.emit(conn, row.workflow_id, "collection.closed", {"collection_id": row.id}, now)
        log.info("workflow %s collection %s closed", row.workflow_id, row.key)
        if ended is not None:
            work_id, status = ended
            events.emit(conn, row.workflow_id, f"work.{status}", {"work_id": work_id}, now)
            workflows.wake(conn, [row.workflow_id])
            self.env.bus.notify(WORKFLOWS)
        return 1

    @staticmethod
    def _let_go(mgr: DataManager, row: FeedRow) -> bool:
        try:
            mgr.release(row.key, None)
            return True
        except DataManagerError as exc:
            log.warning("collection %s: cannot release it yet: %s", row.key, exc)
            return False
