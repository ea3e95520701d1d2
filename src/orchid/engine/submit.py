"""Submission: validate a template completely, then write the workflow in one transaction."""

from __future__ import annotations

import contextlib
import difflib
import itertools
import json
import logging
from collections.abc import Collection, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchid.core import commands, jsonvalues
from orchid.core.jobs import inline_jobs, read_job_lines, work_links
from orchid.core.limits import DEFAULT, Limits
from orchid.core.plan import initial_works
from orchid.core.rawcheck import size_problems
from orchid.core.template import NUL, Template, check_values, decode, nul_path
from orchid.datamgr.registry import ManagerSpec
from orchid.engine.templates import Compiled, compile_template
from orchid.errors import InvalidInput, TemplateError
from orchid.store import events, graph, quotas, routes, workflows, works
from orchid.store.db import Database

log = logging.getLogger(__name__)


def load_template(path: Path) -> tuple[Any, Path]:
    """Read and decode a template file; its folder is where relative paths point."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InvalidInput(f"no template file {path}") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the template {path}: {exc}") from None
    return decode(text, str(path)), path.resolve().parent


def bind_params(compiled: Compiled, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Workflow parameters: the template's defaults, then the submitter's values."""
    known = compiled.template.parameters
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        listed = ", ".join(known) or "none"
        raise InvalidInput(
            f"unknown parameter(s) {', '.join(unknown)}; the template declares: {listed}",
            field=f"params.{unknown[0]}",
        )
    bound = {**known, **overrides}
    for key, value in overrides.items():
        trouble = jsonvalues.problem(value)
        if trouble == jsonvalues.TOO_DEEP:
            raise InvalidInput(f"parameter {key} {trouble}", field=f"params.{key}")
        if trouble:
            raise InvalidInput(
                f"parameter {key}: parameters must be JSON numbers: NaN and infinity are not",
                field=f"params.{key}",
            )
        where = nul_path(value, f"params.{key}")
        if where is not None:
            raise InvalidInput(f"{where} {NUL}", field=where)
    return bound


def parse_param(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is JSON if it parses, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InvalidInput(f"a parameter is written key=value; got {text!r}")
    try:
        return key, jsonvalues.loads(raw)
    except json.JSONDecodeError:
        return key, raw
    except ValueError as exc:
        raise InvalidInput(f"parameter {key}: {exc}") from None


def check_size(raw: Any, max_works: int | None) -> None:
    """Refuse a template of more than ``max_works`` works or loops before reading them
    (the ``max_works`` setting; None: no limit), with a TemplateError (HTTP 422)."""
    if max_works is None or not isinstance(raw, Mapping):
        return
    for key in ("works", "loops"):
        count = _count(raw, key)
        if count > max_works:
            raise TemplateError(
                [
                    (
                        key,
                        f"holds {count:,} {key}, more than the limit of {max_works:,} "
                        "(the server's setting max_works, ORCHID_MAX_WORKS); split the "
                        "workflow, or list many jobs in few works (a jobs_file)",
                    )
                ]
            )


def _count(raw: Mapping[str, Any], key: str) -> int:
    """The works (or loops) of a decoded template, those of its nested workflows included."""
    count, stack = 0, [raw]
    while stack:
        node = stack.pop()
        items = node.get(key)
        count += len(items) if isinstance(items, list) else 0
        works = node.get("works")
        for w in works if isinstance(works, list) else ():
            if isinstance(w, Mapping) and isinstance(w.get("workflow"), Mapping):
                stack.append(w["workflow"])
    return count


def executor_routes(compiled: Compiled, known: Collection[str] | None) -> dict[str, str]:
    """The executor of each work that names one; every name must be in ``known``.

    ``known`` is what the settings file configures (None: not checked here). A name not
    there is a template error at the offending work, with the configured names listed.
    """
    t = compiled.template
    out: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for i, w in enumerate(t.works):
        name = compiled.executor(w.name)
        if name is None:
            continue
        if known is not None and name not in known:
            where = f"works[{i}]({w.name}).executor" if w.executor else "defaults.executor"
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                (
                    where,
                    f"no executor is named {name!r}{hint}; the configured ones are "
                    f"{', '.join(sorted(known))} (the settings file names them: "
                    "[executors.NAME])",
                )
            )
            if not w.executor:
                break  # the default: one problem, not one per work
        out[w.name] = name
    if problems:
        raise TemplateError(problems)
    return out


def check_data_inputs(
    compiled: Compiled,
    managers: Mapping[str, ManagerSpec] | None,
    user: str,
    groups: Collection[str],
    only: Collection[str] | None = None,
) -> None:
    """Every work that takes files (``input``) names a data manager configured here that
    ``user`` (or one of ``groups``) may use, and collections that manager can hold (a
    posix folder path: relative, without ``..``). ``managers``: the configured ones (None:
    not checked here); ``only``: check these works only (a work added to a workflow).
    Raises TemplateError naming each offending field."""
    if managers is None:
        return
    problems: list[tuple[str, str]] = []
    for i, w in enumerate(compiled.template.works):
        if w.input is None or (only is not None and w.name not in only):
            continue
        where = f"works[{i}]({w.name}).input"
        spec = managers.get(w.input.manager)
        if spec is None:
            known = ", ".join(sorted(managers)) or "none"
            problems.append(
                (
                    f"{where}.manager",
                    f"no data manager is named {w.input.manager!r}; the configured ones are "
                    f"{known} (ORCHID_DATA_MANAGERS names them; the built-in posix manager "
                    "needs the data_root setting)",
                )
            )
            continue
        if not spec.access.allows(user, groups):
            problems.append((f"{where}.manager", spec.access.refusal(spec.name, user)))
            continue
        for j, collection in enumerate(w.input.collections):
            trouble = spec.collection_problem(collection)
            if trouble:
                problems.append(
                    (f"{where}.collections[{j}]", f"collection {collection!r}: {trouble}")
                )
    if problems:
        raise TemplateError(problems)


def _job_lines(path: Path) -> Generator[str]:
    try:
        with path.open(encoding="utf-8") as fh:
            yield from fh
    except FileNotFoundError:
        raise TemplateError([("jobs_file", f"no such file: {path}")]) from None
    except IsADirectoryError:
        raise TemplateError([("jobs_file", f"{path} is a folder, not a JSON-lines file")]) from None
    except UnicodeDecodeError as exc:
        raise TemplateError([("jobs_file", f"{path} is not UTF-8 text: {exc.reason}")]) from None
    except PermissionError:
        raise TemplateError([("jobs_file", f"no permission to read {path}")]) from None


VALIDATE_LINES = 1000
"""Lines of a jobs file ``orchid validate`` reads; submission reads every line."""


@dataclass(frozen=True)
class Checked:
    """A template that passed every check that runs before submission, and what to say."""

    compiled: Compiled
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    notes: list[str] = field(default_factory=list)


def check_template(
    raw: Any,
    base_dir: Path | None,
    limits: Limits = DEFAULT,
    *,
    default_executor: str = "local",
    local_executors: Collection[str] = ("local",),
) -> Checked:
    """What ``orchid validate`` checks: the template, its commands against the args their
    jobs will have, maps of known size against ``limits``, its functions' modules (see
    :func:`function_problems`) and the first lines of its jobs file. Raises TemplateError.

    ``local_executors`` are the executors that run jobs on this host (a function they
    cannot find is an error; on others, a warning); ``default_executor`` runs the works
    that name none."""
    compiled = compile_template(raw, str(base_dir) if base_dir else None, limits)
    t = compiled.template
    problems = commands.problems(t) + size_problems(t, limits)
    warned = commands.warnings(t)
    for work, where, message in function_problems(t, base_dir or Path.cwd()):
        executor = compiled.executor(work) or default_executor
        if executor in local_executors:
            problems.append((where, message))
        elif executor != "null":  # the null executor runs nothing
            warned.append(
                (where, f"{message} (fine if it exists where executor '{executor}' runs)")
            )
    notes: list[str] = []
    path = (base_dir or Path.cwd()) / t.jobs_file if t.jobs_file else None
    if t.jobs_file and path is not None and not path.exists():
        notes.append(f"no jobs file {path} yet: its lines were not checked")
    elif t.jobs_file and path is not None:
        lines = _job_lines(path)
        try:
            with contextlib.closing(lines):
                head = list(itertools.islice(lines, VALIDATE_LINES + 1))
            for _ in read_job_lines(t, head[:VALIDATE_LINES], t.jobs_file):
                pass
        except TemplateError as exc:
            problems += exc.problems
        else:
            if len(head) > VALIDATE_LINES:
                notes.append(
                    f"checked the first {VALIDATE_LINES:,} lines of {t.jobs_file}; "
                    "submission checks every line"
                )
    if problems:
        raise TemplateError(problems)
    return Checked(compiled, warned, notes)


MAX_MODULE_BYTES = 8 * 1024 * 1024  # a bigger module file is not parsed to find functions


def function_problems(t: Template, base_dir: Path) -> list[tuple[str, str, str]]:
    """(work, path, message) for each ``function: module:fn`` whose module is not found
    next to the template (``base_dir``, where the local executor imports from) nor installed
    here, or whose module file defines no ``fn``. Never imports or runs the module: files
    are found by name and read with :mod:`ast`. Only ``orchid validate`` calls this (a
    server never opens a client's paths)."""
    out: list[tuple[str, str, str]] = []
    cache: dict[str, str | None] = {}
    for i, w in enumerate(t.works):
        if not w.function:
            continue
        if w.function not in cache:
            cache[w.function] = _function_problem(w.function, base_dir)
        message = cache[w.function]
        if message:
            out.append((w.name, f"works[{i}]({w.name}).function", message))
    return out


def _function_problem(target: str, base_dir: Path) -> str | None:
    import ast
    import importlib.util

    module, _, name = target.partition(":")
    parts = module.split(".")
    stem = base_dir.joinpath(*parts)
    found = next(
        (f for f in (stem.with_name(stem.name + ".py"), stem / "__init__.py") if f.is_file()),
        None,
    )
    if found is None:
        try:  # installed here: a top-level name is looked up without running anything
            if importlib.util.find_spec(parts[0]) is not None:
                return None  # its submodules would need importing it to find: not checked
        except (ImportError, ValueError):
            pass
        return (
            f"module '{module}' is not found next to the template ({base_dir}) nor installed "
            f"here; put {'/'.join(parts)}.py beside the template"
        )
    try:
        if found.stat().st_size > MAX_MODULE_BYTES:
            return None
        tree = ast.parse(found.read_bytes(), str(found))
    except SyntaxError as exc:
        return f"module '{module}' ({found}) does not parse: {exc.msg} at line {exc.lineno}"
    except (OSError, ValueError):
        return None
    if name in _top_level_names(tree) or "*" in _top_level_names(tree):
        return None
    return f"module '{module}' ({found}) defines no function '{name}'"


def _top_level_names(tree: Any) -> set[str]:
    """Names a module binds at its top level (``*``: it may bind any: a star import or a
    module ``__getattr__``); statements under ``if``/``try`` count too."""
    import ast

    names: set[str] = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add("*" if node.name == "__getattr__" else node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names.add(alias.asname or alias.name.partition(".")[0])
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If | ast.Try | ast.With):
            todo.extend(node.body)
            todo.extend(getattr(node, "orelse", []))
            todo.extend(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                todo.extend(handler.body)
    return names


def submit(
    db: Database,
    raw: Any,
    *,
    base_dir: Path | None,
    params: Mapping[str, Any] | None = None,
    owner: str = "local",
    now: float,
    share_group: str | None = None,
    job_lines: Iterable[str] | None = None,
    read_files: bool = True,
    executors: Collection[str] | None = None,
    owner_groups: Collection[str] = (),
    data_managers: Mapping[str, ManagerSpec] | None = None,
    limits: Limits = DEFAULT,
    max_works: int | None = None,
    priority: int | None = None,
) -> int:
    """Check everything, then write the workflow, its works and listed jobs; return its id.

    ``job_lines`` gives the template's jobs_file content when it does not come from
    this machine's disk (a server never opens a client's paths). ``executors`` are the
    names a work may choose (``Settings.executor_names``; None: not checked), and
    ``data_managers`` the data managers (None: not checked), which ``owner`` or one of
    ``owner_groups`` must be allowed to use (the groups are recorded for the agents).
    ``limits`` bound the listed jobs' arguments (and what the agents build later: they
    have their own); ``max_works`` the most works and loops it may hold (None: no limit).
    ``priority`` overrides the template's (fair share: among one user's workflows). The
    owner's limits on submissions (``store.quotas``) are checked in the same transaction.
    """
    check_size(raw, max_works)
    check_values(raw, "template")  # also when no front end checked it (Python callers)
    compiled = compile_template(raw, str(base_dir) if base_dir else None, limits)
    t = compiled.template
    found = commands.problems(t) + size_problems(t, limits)
    if found:
        raise TemplateError(found)
    bound = bind_params(compiled, params or {})
    chosen = executor_routes(compiled, executors)
    check_data_inputs(compiled, data_managers, owner, owner_groups)
    static = frozenset(w.name for w in t.static_works())
    with db.begin() as conn:
        wf = workflows.create(
            conn,
            name=t.name,
            owner=owner,
            template=raw,
            params=bound,
            base_dir=str(base_dir) if base_dir else None,
            now=now,
            share_group=share_group,
            open=t.open,
            owner_groups=owner_groups,
            priority=t.priority if priority is None else priority,
        )
        ids = works.create(conn, wf, initial_works(t), static, now)
        routes.add(conn, wf, chosen)
        by_name = {name: wid for (name, _), wid in ids.items()}
        attempts = {w.name: compiled.max_attempts(w.name) for w in t.works}
        links: set[tuple[str, str]] = set()  # work → work, from job-level parents
        counts = graph.insert_static(
            conn, wf, by_name, work_links(inline_jobs(t, limits), links), attempts
        )
        if t.jobs_file:
            if job_lines is None:
                if not read_files:
                    raise TemplateError(
                        [
                            (
                                "jobs_file",
                                "send its lines with the submission (JSON lines after "
                                "the template); the server reads no files a template names",
                            )
                        ]
                    )
                job_lines = _job_lines((base_dir or Path.cwd()) / t.jobs_file)
            counts += graph.insert_static(
                conn,
                wf,
                by_name,
                work_links(read_job_lines(t, job_lines, t.jobs_file, limits), links),
                attempts,
            )
        for name in static:
            if counts[by_name[name]] == 0:
                raise TemplateError([(f"works.{name}.jobs", "lists no jobs")])
        works.add_remaining(conn, dict(counts))
        quotas.check_submission(conn, owner, share_group, sum(counts.values()), now)
        if links:
            workflows.set_links(conn, wf, sorted(links))
        events.emit(
            conn, wf, "workflow.submitted", {"name": t.name, "jobs": sum(counts.values())}, now
        )
    log.info("workflow %s (%s) submitted with %d listed jobs", wf, t.name, sum(counts.values()))
    return wf
