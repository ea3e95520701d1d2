"""The data carousel's decisions: which available files become jobs, and when; what a
failed staging attempt leads to; how a work fed by files ends. Pure: no I/O, no clock.

A work with an ``input`` follows its collections file by file. With ``release:
per-file`` a job is made the moment ``files_per_job`` of its files are on disk (the last
job of a collection takes what is left once nothing more is coming); with
``per-collection`` (the old way) only once every file of the collection is on disk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from orchid.core import jsonvalues
from orchid.core.states import FileStatus, JobStatus, WorkStatus, work_outcome

Release = Literal["per-file", "per-collection"]
# files that will still change on their own: the collection is not complete yet
PENDING = frozenset({FileStatus.NEW, FileStatus.STAGING})


@dataclass(frozen=True)
class Feed:
    """How one work uses one collection; kept with the collection row."""

    release: Release = "per-file"
    files_per_job: int = 1
    delete_after: bool = False
    stage_attempts: int = 4  # 1 + retries
    job_attempts: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "files_per_job": self.files_per_job,
            "delete_after": self.delete_after,
            "stage_attempts": self.stage_attempts,
            "job_attempts": self.job_attempts,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any] | None) -> Feed:
        d = d or {}
        return Feed(
            release=d.get("release", "per-file"),
            files_per_job=int(d.get("files_per_job", 1)),
            delete_after=bool(d.get("delete_after", False)),
            stage_attempts=int(d.get("stage_attempts", 4)),
            job_attempts=int(d.get("job_attempts", 1)),
        )


@dataclass(frozen=True)
class OnDisk:
    """An available file that no job has taken yet."""

    id: int
    name: str
    url: str | None


def parse_collection(text: str, manager: str) -> tuple[str, str]:
    """``scope:name`` → (scope, name); a bare name (a folder) takes the manager's name as scope."""
    scope, sep, name = text.partition(":")
    return (scope, name) if sep else (manager, text)


def job_groups(
    feed: Feed, ready: Sequence[OnDisk], pending: bool, max_bytes: int | None = None
) -> list[list[OnDisk]]:
    """The jobs to make now from a collection's available files (oldest first).

    ``pending`` says whether files of the collection are still to come (new or staging).
    A job takes up to ``files_per_job`` files, and fewer when their names and urls would
    take its arguments past ``max_bytes`` (the room :func:`job_args` leaves for files
    under the job_args_max_bytes limit): a long list of long urls makes more jobs instead
    of arguments no job may have. One file is always a job of its own.
    """
    if feed.release == "per-collection" and pending:
        return []
    n = feed.files_per_job
    groups: list[list[OnDisk]] = []
    full: list[bool] = []
    group: list[OnDisk] = []
    used = 0
    for f in ready:
        cost = _file_bytes(f, n == 1)
        if group and max_bytes is not None and used + cost > max_bytes:
            groups.append(group)
            full.append(True)  # by size: as full as it can be
            group, used = [], 0
        group.append(f)
        used += cost
        if len(group) == n:
            groups.append(group)
            full.append(True)
            group, used = [], 0
    if group:
        groups.append(group)
        full.append(False)
    if groups and not full[-1] and pending:
        groups.pop()  # wait for more files to fill it
    return groups


def _file_bytes(f: OnDisk, single: bool) -> int:
    """What one file adds to a job's arguments as JSON: its name and url in the lists (and
    as ``file`` and ``url`` too for one file per job)."""
    one = jsonvalues.size(f.name, _HUGE) + jsonvalues.size(f.url, _HUGE) + 2  # two commas
    return one * 2 if single else one


def files_room(feed: Feed, parameters: Mapping[str, Any], collection: str, cap: int) -> int:
    """How many bytes of a job's arguments are left for its files' names and urls."""
    empty = job_args(feed, parameters, collection, [OnDisk(0, "", "")])
    return cap - jsonvalues.size(empty, cap + 1)


_HUGE = 1 << 40


def job_args(
    feed: Feed, parameters: Mapping[str, Any], collection: str, files: Sequence[OnDisk]
) -> dict[str, Any]:
    """A job's arguments: the work's parameters, the collection and its files (and their urls)."""
    args: dict[str, Any] = {
        **parameters,
        "collection": collection,
        "files": [f.name for f in files],
        "urls": [f.url for f in files],
    }
    if feed.files_per_job == 1:
        args["file"], args["url"] = files[0].name, files[0].url
    return args


def after_stage_failure(attempt: int, max_attempts: int) -> FileStatus:
    """A staging attempt failed: stage again while attempts remain, else the file failed."""
    return FileStatus.STAGING if attempt < max_attempts else FileStatus.FAILED


def fed_work_outcome(counts: Mapping[JobStatus, int], unstaged: int) -> WorkStatus:
    """How a work fed by files ends: as its jobs say, but files that could not be staged
    (and so never had a job) count as failures."""
    status = work_outcome(counts)
    if unstaged == 0 or status == WorkStatus.CANCELLED:
        return status
    return WorkStatus.PARTIAL if counts.get(JobStatus.SUCCEEDED, 0) else WorkStatus.FAILED
