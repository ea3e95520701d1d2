"""Checks of a template's commands against the args their jobs will have.

- :func:`problems`: a ``{name}`` placeholder in a command or an env value that no job
  argument and no parameter of its work provides (it would reach the program as the text
  ``{name}``), where that is known before running: listed jobs, map keys, the arguments of
  a data-carousel or HPO work. Jobs of a jobs file are checked line by line as the file is
  read (:func:`file_needs`). Submission refuses such a template; ``orchid validate``
  reports it.
- :func:`warnings`: substitutions that may run a value as code (``{arg!r}`` in an ``sh -c``
  script, ``{arg}`` pasted into ``python -c`` code). Reported by ``orchid validate``.

Not checked: ``${name}`` (shell and environment syntax), placeholders inside the code of
``python -c`` and the like (``f"{x}"`` is Python's), and map items given by a binding.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from orchid.core import placeholders
from orchid.core.template import Template, WorkSpec
from orchid.errors import TemplateError

CAROUSEL_ARGS = ("collection", "files", "urls")
CAROUSEL_ONE_FILE_ARGS = ("file", "url")


def _path(i: int, w: WorkSpec) -> str:
    return f"works[{i}]({w.name})"


def used_names(w: WorkSpec) -> Iterator[tuple[str, str]]:
    """(where in the work, arg name) of each placeholder that must name an arg."""
    command = w.command or []
    code = placeholders.code_index(command)
    script = placeholders.shell_script_index(command)
    texts = [(f"command[{k}]", item, k == script) for k, item in enumerate(command) if k != code]
    texts += [(f"env.{key}", value, False) for key, value in w.env.items()]
    for where, text, shell in texts:
        before = ""  # the literal text just before a placeholder
        for piece in placeholders.parse(text, shell):
            if isinstance(piece, str):
                before = piece
                continue
            if placeholders.NAMED.match(piece.token[1:-1]) and not before.endswith("$"):
                yield where, piece.name
            before = ""


def _job_args(w: WorkSpec) -> list[tuple[str, Collection[str]]] | None:
    """(which job, its own arg names) for each job, when they are known before running."""
    if isinstance(w.jobs, list):
        return [(f"job '{j.name}'", j.args.keys()) for j in w.jobs]
    if w.jobs is not None:
        return None  # from_file: checked line by line as the file is read
    if w.input is not None:
        one = CAROUSEL_ONE_FILE_ARGS if w.input.files_per_job == 1 else ()
        return [("each job", CAROUSEL_ARGS + one)]
    if w.hpo is not None:
        space = set(w.hpo.space)
        for seg in (w.hpo.segments or {}).values():
            space |= seg.keys()
        return [("each trial", space)]
    if w.map is None:
        return [("its job", ())]
    if w.map.items is not None:
        if not isinstance(w.map.items, list):
            return None  # a binding: the items are known when the work starts
        return [
            (f"map item {n}", item.keys() if isinstance(item, Mapping) else ())
            for n, item in enumerate(w.map.items)
        ]
    lists = w.map.product if w.map.product is not None else w.map.zip
    return [("each job", (lists or {}).keys())]


def problems(t: Template) -> list[tuple[str, str]]:
    """(path, message) for each placeholder no job of its work can fill."""
    out: list[tuple[str, str]] = []
    for i, w in enumerate(t.works):
        jobs = _job_args(w)
        if jobs is None:
            continue
        seen: set[tuple[str, str]] = set()
        for where, name in used_names(w):
            if name in w.parameters or (where, name) in seen:
                continue
            seen.add((where, name))
            lacking = [job for job, args in jobs if name not in args]
            if lacking:
                out.append((f"{_path(i, w)}.{where}", _missing(name, lacking, len(jobs))))
    return out


def _missing(name: str, lacking: list[str], total: int) -> str:
    who = "no job has" if len(lacking) == total > 1 else f"{lacking[0]} has no"
    if 1 < len(lacking) < total:
        who = f"{lacking[0]} (and {len(lacking) - 1} more) has no"
    return (
        f"{{{name}}}: {who} argument '{name}' and the work has no parameter '{name}', so "
        f"the command would get the text {{{name}}}; add it to `parameters` (or the "
        f"jobs' args), or write {{{{{name}}}}} for literal braces"
    )


def check(t: Template) -> None:
    """Raise TemplateError listing :func:`problems`, if any (submission does this)."""
    found = problems(t)
    if found:
        raise TemplateError(found)


def file_needs(t: Template) -> dict[str, frozenset[str]]:
    """For each ``jobs: from_file`` work, the arg names each line's ``args`` must give
    (its placeholders that its ``parameters`` do not)."""
    return {
        w.name: needed
        for w in t.works
        if w.jobs == "from_file"
        and (needed := frozenset(n for _, n in used_names(w) if n not in w.parameters))
    }


def line_problem(work: str, args: Mapping[str, Any], needs: Mapping[str, frozenset[str]]) -> str:
    """What a jobs-file line lacks for its work's command, or ''."""
    missing = needs.get(work)
    if not missing or missing <= args.keys():
        return ""
    names = sorted(missing - args.keys())
    return (
        f"`args` has no {', '.join(repr(n) for n in names)}, which the command of work "
        f"'{work}' uses ({', '.join('{' + n + '}' for n in names)}) and its `parameters` "
        "do not give"
    )


def warnings(t: Template) -> list[tuple[str, str]]:
    """(path, message) for each substitution that may run a value as code."""
    return [
        (f"{_path(i, w)}.command[{k}]", message)
        for i, w in enumerate(t.works)
        for k, message in placeholders.command_warnings(w.command or [])
    ]
