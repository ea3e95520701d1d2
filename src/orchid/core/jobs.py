"""Where jobs come from: map expansion and static job lists (inline or a JSON-lines file)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchid.core import jsonvalues
from orchid.core.commands import file_needs, line_problem
from orchid.core.limits import DEFAULT, MAX_JOBS_PER_MAP, Limits
from orchid.core.template import JOB_NAME_PATTERN, NUL, StaticJob, Template, nul_path
from orchid.core.validate import parent_ref
from orchid.errors import InvalidInput, TemplateError

MAX_ERRORS = 20
_JOB_NAME = re.compile(JOB_NAME_PATTERN)
_FIELDS = frozenset({"work", "name", "args", "parents"})
_NO_ARGS: Mapping[str, Any] = {}
_PARENTS = "`parents` must be a list of job names ('job' or 'work/job')"


@dataclass(slots=True)
class JobDraft:
    """A job to insert: its name in the work, its arguments and its parents (work, job).

    ``where`` says where it was written (``file:line``), for the store's messages about
    duplicates and parents that name no earlier job. Not changed once made; not frozen,
    because a frozen dataclass costs four times as much to make, and a jobs file makes
    a million of them.
    """

    work: str
    name: str
    args: Mapping[str, Any]
    parents: tuple[tuple[str, str], ...] = field(default=())
    where: str = field(default="", compare=False)


def check_args(args: Mapping[str, Any], limits: Limits, where: str) -> None:
    """Refuse job arguments longer than ``job_args_max_bytes`` as JSON (InvalidInput),
    naming the largest of them; the walk stops at the limit, so a huge value (or one made
    of many references to one big value) costs no more than the limit."""
    cap = limits.job_args_max_bytes
    if jsonvalues.size(args, cap) <= cap:
        return
    sizes = {k: jsonvalues.size(v, cap) for k, v in args.items()}
    biggest = max(sizes, key=lambda k: sizes[k], default=None)
    field = where if biggest is None else f"{where}.{biggest}"
    raise InvalidInput(
        f"{field}: a job's arguments would take more than the limit of {cap:,} bytes as "
        f"JSON {Limits.setting('job_args_max_bytes')}; pass large data in files",
        field=field,
    )


def expand_map(
    resolved: Mapping[str, Any] | None,
    common: Mapping[str, Any],
    limits: Limits = DEFAULT,
    where: str = "",
) -> list[dict[str, Any]]:
    """Job arguments for each job of a work: ``common`` merged with each map item.

    ``resolved`` is the work's ``map`` after its bindings were evaluated; None
    means one job. Raises InvalidInput when run-time values do not fit, or when a job's
    arguments would pass ``limits.job_args_max_bytes`` (checked on the items, before
    any job is made); ``where`` is the work's path in the template (``works[0](sim)``),
    for that message.
    """
    work = f"{where}." if where else ""
    if resolved is None:
        check_args(common, limits, f"{work}parameters")
        return [dict(common)]
    _check_items(resolved, common, limits, work)
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


def inline_jobs(t: Template, limits: Limits = DEFAULT) -> list[JobDraft]:
    """Static jobs listed in the template, in an order where parents come first.

    Raises TemplateError (naming each job) for arguments over ``job_args_max_bytes``."""
    from orchid.core.dag import topological_order

    problems = [
        (f"works[{i}]({w.name}).jobs[{k}]({j.name}).args", _args_problem(j.args, limits))
        for i, w in enumerate(t.works)
        if isinstance(w.jobs, list)
        for k, j in enumerate(w.jobs)
        if _args_problem(j.args, limits)
    ]
    if problems:
        raise TemplateError(problems[:MAX_ERRORS])
    drafts = {
        (w.name, j.name): _draft(w.name, j)
        for w in t.works
        if isinstance(w.jobs, list)
        for j in w.jobs
    }
    edges = ((p, key) for key, d in drafts.items() for p in d.parents)
    return [drafts[key] for key in topological_order(drafts, edges)]


def _draft(work: str, job: StaticJob) -> JobDraft:
    refs = ((pw or work, pj) for pw, _, pj in (ref.rpartition("/") for ref in job.parents))
    return JobDraft(work, job.name, job.args, tuple(dict.fromkeys(refs)), f"works.{work}.jobs")


def read_job_lines(
    t: Template, lines: Iterable[str], source: str, limits: Limits = DEFAULT
) -> Iterator[JobDraft]:
    """Stream static jobs from JSON lines ``{"work", "name", "args"?, "parents"?}``.

    Each line is checked on its own: its fields, its work (one with ``jobs: from_file``),
    its name, that each parent may be one (a static job outside loops, given as
    ``job`` or ``work/job``; a parent listed twice counts once), and that its args and its
    work's parameters fill every ``{name}`` of the work's command. Nothing about earlier
    lines is kept, so a file of any size is read in constant memory: that a parent came
    on an earlier line and that no job appears twice is checked by the store as it writes
    the jobs (``store.graph``). Raises TemplateError (up to 20 problems, each with
    ``file:line``) after the first bad line; the caller's transaction then inserts nothing.
    """
    file_works = frozenset(w.name for w in t.works if w.jobs == "from_file")
    static = file_works | {w.name for w in t.works if isinstance(w.jobs, list)}
    loop_of = {name: lp.name for lp in t.loops for name in lp.works}
    allowed = static - loop_of.keys()  # works whose jobs may be parents of a line's job
    needs = file_needs(t)  # args each line must give its work's command
    problems: list[tuple[str, str]] = []
    for lineno, line in enumerate(lines, 1):
        if len(problems) >= MAX_ERRORS:
            break
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        draft, problem = _parse_line(line, where, file_works, static, loop_of, allowed, limits)
        if draft is not None and needs:
            problem = line_problem(draft.work, draft.args, needs)
        if problem:
            problems.append((where, problem))
        elif not problems:
            assert draft is not None
            yield draft
    if problems:
        raise TemplateError(problems)


def _parse_line(
    line: str,
    where: str,
    file_works: frozenset[str],
    static: frozenset[str],
    loop_of: Mapping[str, str],
    allowed: frozenset[str],
    limits: Limits = DEFAULT,
) -> tuple[JobDraft | None, str | None]:
    try:
        obj = jsonvalues.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(obj, dict):
        return None, 'each line must be an object like {"work": "w", "name": "j1", "parents": []}'
    if not obj.keys() <= _FIELDS:
        unknown = set(obj) - _FIELDS
        return None, f"unknown fields {sorted(unknown)}; allowed: work, name, args, parents"
    work, name = obj.get("work"), obj.get("name")
    args, parents = obj.get("args", _NO_ARGS), obj.get("parents", ())
    if not isinstance(work, str) or work not in file_works:
        return (
            None,
            f"`work` must name a work with `jobs: from_file` ({sorted(file_works)}); got {work!r}",
        )
    if not isinstance(name, str) or not _JOB_NAME.match(name):
        return None, f"`name` must match {JOB_NAME_PATTERN} (no '/'); got {name!r}"
    if not isinstance(args, dict):
        return None, "`args` must be an object"
    if "\\u0000" in line and (bad := _args_problem(args, limits) or _nul_problem(obj)):
        return None, bad
    if len(line) > limits.job_args_max_bytes and (bad := _args_problem(args, limits)):
        return None, bad
    if not parents:
        return JobDraft(work, name, args, (), where), None
    if not isinstance(parents, list):
        return None, _PARENTS
    resolved: dict[tuple[str, str], None] = {}
    for ref in parents:
        if not isinstance(ref, str):
            return None, _PARENTS
        pw, slash, pj = ref.rpartition("/")
        if slash and pw in allowed:
            resolved[(pw, pj)] = None
        elif not slash:
            resolved[(work, pj)] = None  # a file work may be a parent: it is not in a loop
        else:
            parent, problem = parent_ref(ref, work, static, loop_of, file_works)
            if problem:
                return None, problem
            assert parent is not None
            resolved[parent] = None
    return JobDraft(work, name, args, tuple(resolved), where), None


def work_links(drafts: Iterable[JobDraft], into: set[tuple[str, str]]) -> Iterator[JobDraft]:
    """Pass drafts through, adding to ``into`` each (parent work, work) pair their parents
    imply across works: the task-level edges of a job-level DAG, for pictures."""
    for d in drafts:
        for parent_work, _ in d.parents:
            if parent_work != d.work:
                into.add((parent_work, d.work))
        yield d


def _check_items(
    resolved: Mapping[str, Any], common: Mapping[str, Any], limits: Limits, work: str
) -> None:
    """Every job's arguments fit ``job_args_max_bytes``: the common part, plus for each
    map list its largest item (a product combines the largest of each), within the limit.
    Linear in the items, each measured only up to the limit."""
    cap = limits.job_args_max_bytes
    base = jsonvalues.size(common, cap)
    if base > cap:
        check_args(common, limits, f"{work}parameters")
    form = next((f for f in ("items", "product", "zip") if f in resolved), None)
    if form is None:
        return
    lists = {"": resolved[form]} if form == "items" else resolved[form]
    if not isinstance(lists, Mapping) or not all(isinstance(v, list) for v in lists.values()):
        return  # expand_map says what is wrong
    sizes = {
        key: [jsonvalues.size(v, cap) + len(str(key)) + 4 for v in values]
        for key, values in lists.items()
    }
    if form == "zip":  # items at one index make one job
        rows = [base + sum(col) for col in zip(*sizes.values(), strict=False)]
        at = max(range(len(rows)), key=rows.__getitem__, default=0)
        if rows and rows[at] > cap:
            _too_many_bytes(f"{work}map.zip[{at}]", cap)
        return
    total = base  # items: one list; product: the largest of each list make one job
    for key, col in sizes.items():
        at = max(range(len(col)), key=col.__getitem__, default=0)
        total += col[at] if col else 0
        if total > cap:
            _too_many_bytes(f"{work}map.{form}" + (f".{key}" if key else "") + f"[{at}]", cap)


def _too_many_bytes(field: str, cap: int) -> None:
    raise InvalidInput(
        f"{field}: a job's arguments (with the work's parameters) would take more than the "
        f"limit of {cap:,} bytes as JSON {Limits.setting('job_args_max_bytes')}; pass large "
        "data in files",
        field=field,
    )


def _args_problem(args: Mapping[str, Any], limits: Limits) -> str:
    """Why a listed job's arguments cannot be taken ('' if they can): too large, or text
    with a NUL character (no command line or environment can hold one)."""
    cap = limits.job_args_max_bytes
    if jsonvalues.size(args, cap) > cap:
        return (
            f"`args` take more than the limit of {cap:,} bytes as JSON "
            f"{Limits.setting('job_args_max_bytes')}; pass large data in files"
        )
    return _nul_problem(args, "args")


def _nul_problem(value: Any, source: str = "") -> str:
    where = nul_path(value, source)
    return "" if where is None else f"{where or 'the line'} {NUL}"
