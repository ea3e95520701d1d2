"""Where jobs come from: map expansion and static job lists (inline or a JSON-lines file)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchid.core import jsonvalues
from orchid.core.template import JOB_NAME_PATTERN, StaticJob, Template
from orchid.core.validate import resolve_parent
from orchid.errors import InvalidInput, TemplateError

MAX_JOBS_PER_MAP = 1_000_000
MAX_ERRORS = 20
_JOB_NAME = re.compile(JOB_NAME_PATTERN)


@dataclass(frozen=True)
class JobDraft:
    """A job to insert: its name in the work, its arguments and its parents (work, job)."""

    work: str
    name: str
    args: Mapping[str, Any]
    parents: tuple[tuple[str, str], ...] = field(default=())


def expand_map(
    resolved: Mapping[str, Any] | None, common: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Job arguments for each job of a work: ``common`` merged with each map item.

    ``resolved`` is the work's ``map`` after its bindings were evaluated; None
    means one job. Raises InvalidInput when run-time values do not fit.
    """
    if resolved is None:
        return [dict(common)]
    if "items" in resolved:
        items = resolved["items"]
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InvalidInput(f"map.items must be a list of mappings; got {_kind(items)}")
        rows: Iterable[Mapping[str, Any]] = items
        size = len(items)
    else:
        form = "product" if "product" in resolved else "zip"
        lists = resolved[form]
        for key, value in lists.items():
            if not isinstance(value, list):
                raise InvalidInput(f"map.{form}.{key} must be a list; got {_kind(value)}")
        keys = list(lists)
        if form == "product":
            size = 1
            for v in lists.values():
                size *= len(v)
            rows = (
                dict(zip(keys, combo, strict=True)) for combo in itertools.product(*lists.values())
            )
        else:
            lengths = {k: len(v) for k, v in lists.items()}
            if len(set(lengths.values())) > 1:
                raise InvalidInput(f"map.zip lists must have the same length; got {lengths}")
            size = next(iter(lengths.values()), 0)
            rows = (
                dict(zip(keys, vals, strict=True)) for vals in zip(*lists.values(), strict=True)
            )
    if size > MAX_JOBS_PER_MAP:
        raise InvalidInput(
            f"the map would make {size:,} jobs, more than {MAX_JOBS_PER_MAP:,}; "
            "split the work or use a jobs_file"
        )
    return [{**common, **row} for row in rows]


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {json.dumps(value, default=str)[:40]}"


def inline_jobs(t: Template) -> list[JobDraft]:
    """Static jobs listed in the template, in an order where parents come first."""
    from orchid.core.dag import topological_order

    drafts = {
        (w.name, j.name): _draft(w.name, j)
        for w in t.works
        if isinstance(w.jobs, list)
        for j in w.jobs
    }
    edges = ((p, key) for key, d in drafts.items() for p in d.parents)
    return [drafts[key] for key in topological_order(drafts, edges)]


def _draft(work: str, job: StaticJob) -> JobDraft:
    parents = tuple((pw or work, pj) for pw, _, pj in (ref.rpartition("/") for ref in job.parents))
    return JobDraft(work=work, name=job.name, args=job.args, parents=parents)


def read_job_lines(t: Template, lines: Iterable[str], source: str) -> Iterator[JobDraft]:
    """Stream static jobs from JSON lines ``{"work", "name", "args"?, "parents"?}``.

    A job's parents must be inline jobs or jobs on earlier lines, so a file is
    acyclic by construction and is read in one pass however large it is. Raises
    TemplateError (up to 20 problems, each with ``file:line``) at the first
    batch of bad lines; the caller's transaction then inserts nothing.
    """
    file_works = {w.name for w in t.works if w.jobs == "from_file"}
    loop_of = {name: lp.name for lp in t.loops for name in lp.works}
    names: dict[str, set[str]] = {
        w.name: {j.name for j in w.jobs} for w in t.works if isinstance(w.jobs, list)
    }
    for w in file_works:
        names[w] = set()
    problems: list[tuple[str, str]] = []
    for lineno, line in enumerate(lines, 1):
        if len(problems) >= MAX_ERRORS:
            break
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        draft, problem = _parse_line(line, file_works, names, loop_of)
        if problem:
            problems.append((where, problem))
            continue
        assert draft is not None
        names[draft.work].add(draft.name)
        if not problems:
            yield draft
    if problems:
        raise TemplateError(problems)


def _parse_line(
    line: str, file_works: set[str], names: dict[str, set[str]], loop_of: Mapping[str, str]
) -> tuple[JobDraft | None, str | None]:
    try:
        obj = jsonvalues.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(obj, dict):
        return None, 'each line must be an object like {"work": "w", "name": "j1", "parents": []}'
    unknown = set(obj) - {"work", "name", "args", "parents"}
    if unknown:
        return None, f"unknown fields {sorted(unknown)}; allowed: work, name, args, parents"
    work, name = obj.get("work"), obj.get("name")
    args, parents = obj.get("args", {}), obj.get("parents", [])
    if not isinstance(work, str) or work not in file_works:
        return (
            None,
            f"`work` must name a work with `jobs: from_file` ({sorted(file_works)}); got {work!r}",
        )
    if not isinstance(name, str) or not _JOB_NAME.match(name):
        return None, f"`name` must match {JOB_NAME_PATTERN} (no '/'); got {name!r}"
    if name in names[work]:
        return None, f"job '{name}' appears twice in work '{work}'"
    if not isinstance(args, dict):
        return None, "`args` must be an object"
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        return None, "`parents` must be a list of job names ('job' or 'work/job')"
    resolved = []
    for ref in parents:
        parent, problem = resolve_parent(ref, work, names, loop_of)
        if problem:
            return None, problem + " (parents must come on earlier lines)"
        assert parent is not None
        resolved.append(parent)
    return JobDraft(work=work, name=name, args=args, parents=tuple(resolved)), None


def work_links(drafts: Iterable[JobDraft], into: set[tuple[str, str]]) -> Iterator[JobDraft]:
    """Pass drafts through, adding to ``into`` each (parent work, work) pair their parents
    imply across works: the task-level edges of a job-level DAG, for pictures."""
    for d in drafts:
        for parent_work, _ in d.parents:
            if parent_work != d.work:
                into.add((parent_work, d.work))
        yield d
