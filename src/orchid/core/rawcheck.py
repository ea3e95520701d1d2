"""Checks that read a template as it was written, not (only) its model: every problem a
template whose schema check failed still shows (names, payloads, ``after``, listed jobs'
parents and cycles), and the sizes of maps known before running."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

from orchid.core.dag import CycleError, topological_order
from orchid.core.limits import MAX_JOBS_PER_MAP, Limits
from orchid.core.template import Template
from orchid.core.validate import (  # the rules these checks share with analyse()
    MAX_SUGGESTIONS,
    Problems,
    cycle_message,
    job_cycles,
    resolve_parent,
    work_path,
)


def raw_problems(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The checks of :func:`analyse` that need no valid model, run on a decoded template
    that is not one (a missing `name`, an unknown key), so that one pass reports them too:
    names twice, payloads, `after` that names nothing or makes a cycle, inline jobs (names
    twice, parents, cycles). Malformed parts are skipped: the model's own errors name them.
    Linear in the size of the template, like :func:`analyse`."""
    p = Problems()
    works = [w for w in _listed(raw.get("works")) if isinstance(w, dict)]
    where = {id(w): i for i, w in enumerate(_listed(raw.get("works")))}
    loops = [lp for lp in _listed(raw.get("loops")) if isinstance(lp, dict)]
    lwhere = {id(lp): i for i, lp in enumerate(_listed(raw.get("loops")))}

    def wpath(w: dict[str, Any]) -> str:
        name = _raw_name(w)
        return f"works[{where[id(w)]}]({name})" if name else f"works[{where[id(w)]}]"

    seen: dict[str, str] = {}
    for kind, items, pos in (("works", works, where), ("loops", loops, lwhere)):
        for x in items:
            name = _raw_name(x)
            if name is None:
                continue
            if name in seen:
                p.add(
                    f"{kind}[{pos[id(x)]}]({name}).name",
                    f"'{name}' is already the name of {seen[name]}",
                )
            seen.setdefault(name, f"{kind}[{pos[id(x)]}]")
    work_names = {n for n in map(_raw_name, works) if n}
    loop_names = {n for n in map(_raw_name, loops) if n}
    # a work without a readable name may be the one an `after` means: say nothing then
    all_named = len(works) == len(_listed(raw.get("works"))) and all(map(_raw_name, works))
    all_named = all_named and all(map(_raw_name, loops))
    loop_of: dict[str, str] = {}
    for lp in loops:
        for name in _listed(lp.get("works")):
            if isinstance(name, str) and name in work_names:
                loop_of.setdefault(name, _raw_name(lp) or "")

    edges: list[tuple[str, str]] = []
    for w in works:
        path, me = wpath(w), _raw_name(w)
        if "hpo" not in w:
            given = [k for k in ("command", "function") if w.get(k)]
            given += ["noop"] if w.get("noop") is True else []
            given += ["workflow"] if w.get("workflow") is not None else []
            if len(given) != 1:
                what = "none" if not given else " and ".join(given)
                p.add(
                    path,
                    "needs exactly one payload: `command`, `function`, `noop: true` or "
                    f"`workflow`; got {what}",
                )
        for j, dep in enumerate(_listed(w.get("after"))):
            if not isinstance(dep, str) or me is None:
                continue
            if dep == me:
                p.add(f"{path}.after[{j}]", f"'{me}' cannot wait for itself")
            elif dep in work_names or dep in loop_names:
                edges.append((dep, me))
            elif all_named:
                options = itertools.chain(work_names, loop_names)
                p.add(
                    f"{path}.after[{j}]",
                    f"no work or loop is named '{dep}'{p.suggest(dep, options)}",
                )
    if not loops and len(seen) == len(works) and edges:  # loops and their `after`: analyse's
        try:
            topological_order([n for n in map(_raw_name, works) if n], edges)
        except CycleError as exc:
            p.add("works", cycle_message(exc))
    _raw_jobs(works, wpath, loop_of, p)
    return p.items


def _raw_jobs(
    works: list[dict[str, Any]],
    wpath: Callable[[dict[str, Any]], str],
    loop_of: Mapping[str, str],
    p: Problems,
) -> None:
    """Inline jobs of a raw template: names twice, parents that name nothing, cycles."""
    static = {n: w for w in works if (n := _raw_name(w)) and isinstance(w.get("jobs"), list)}
    names_ = {n: {x for j in w["jobs"] if (x := _raw_name(j))} for n, w in static.items()}
    file_works = {n for w in works if (n := _raw_name(w)) and w.get("jobs") == "from_file"}
    nodes: list[tuple[str, str]] = []
    edges: list[tuple[tuple[str, str], tuple[str, str]]] = []
    for name, w in static.items():
        path = f"{wpath(w)}.jobs"
        seen: set[str] = set()
        for i, job in enumerate(w["jobs"]):
            jname = _raw_name(job)
            if jname is None:
                continue
            if jname in seen:
                p.add(f"{path}[{i}].name", f"job '{jname}' is listed twice in work '{name}'")
            seen.add(jname)
            nodes.append((name, jname))
            for k, ref in enumerate(_listed(job.get("parents"))):
                if not isinstance(ref, str):
                    continue
                hint = len(p.items) < MAX_SUGGESTIONS
                parent, problem = resolve_parent(ref, name, names_, loop_of, file_works, hint)
                if problem:
                    p.add(f"{path}[{i}].parents[{k}]", problem)
                elif parent is not None:
                    edges.append((parent, (name, jname)))
    job_cycles(p, nodes, edges)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _raw_name(x: Any) -> str | None:
    name = x.get("name") if isinstance(x, dict) else None
    return name if isinstance(name, str) and name else None


HUGE = 10**18  # a product of lists counted up to this
_LITERAL_RANGE = re.compile(
    r"\$\{\s*range\(\s*(-?\d+)\s*(?:,\s*(-?\d+)\s*(?:,\s*(-?\d+)\s*)?)?\)\s*\}"
)


def _known_length(value: Any) -> int | None:
    """The length of a map list known before running: a literal list, or
    ``${range(...)}`` with literal bounds; None when only the run knows."""
    if isinstance(value, list):
        return len(value)
    found = _LITERAL_RANGE.fullmatch(value.strip()) if isinstance(value, str) else None
    if found is None:
        return None
    args = [int(a) for a in found.groups() if a is not None]
    if len(args) == 3 and args[2] == 0:
        return None  # the expression's own error, at run time
    return len(range(*args))


def size_problems(t: Template, limits: Limits) -> list[tuple[str, str]]:
    """Maps whose size is known before running and passes a limit: more jobs than
    MAX_JOBS_PER_MAP, or a literal ``range`` longer than ``limits.expr_max_items``.
    Submission and ``orchid validate`` check these; the engine does not (a stored
    workflow stays valid when the settings change)."""
    out: list[tuple[str, str]] = []
    most = limits.expr_max_items
    for w in t.works:
        if w.map is None:
            continue
        path = f"{work_path(t, w)}.map"
        form = next((k for k in ("items", "product", "zip") if getattr(w.map, k) is not None), None)
        value = getattr(w.map, form) if form else None
        lengths: dict[str, int | None] = {}
        if form == "items":
            lengths[""] = _known_length(value)
        elif isinstance(value, dict):
            lengths = {f".{k}": _known_length(v) for k, v in value.items()}
        for key, n in lengths.items():
            text = value.get(key[1:]) if isinstance(value, dict) else value
            if n is not None and isinstance(text, str) and n > most:
                out.append(
                    (
                        f"{path}.{form}{key}",
                        f"`{text.strip()}` makes {n:,} items, more than the limit of {most:,} "
                        f"{Limits.setting('expr_max_items')}",
                    )
                )
        known = [n for n in lengths.values() if n is not None]
        if not known or len(known) < len(lengths):
            continue
        size = max(known) if form == "zip" else (known[0] if form == "items" else 1)
        if form == "product":
            size = 0 if 0 in known else 1
            for n in known:
                size = min(size * n, HUGE)  # no numbers of thousands of digits
        if size > MAX_JOBS_PER_MAP:
            count = f"{size:,}" if size < HUGE else f"more than {HUGE:,}"
            out.append(
                (
                    f"{path}.{form}",
                    f"the map would make {count} jobs, more than {MAX_JOBS_PER_MAP:,}; "
                    "split the work or use a jobs_file",
                )
            )
    return out
