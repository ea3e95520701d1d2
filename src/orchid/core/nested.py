"""Nested workflows: a work that is a whole workflow (``workflow:``), expanded in place.

A template is checked scope by scope (the top one, and each nested workflow as a template
of its own in which a nested workflow's work is one node: ``validate.analyse_nested``),
then expanded into one flat template that the engine runs (:func:`expand`):

* each work and loop of a nested workflow ``sub`` becomes ``sub.<name>`` (``.`` is not
  allowed in written names, so these never clash with another work);
* ``sub`` itself becomes its *join*: a no-op work after every top-level work and loop of
  the nested workflow; the planner ends it with the nested workflow's outcome, which is
  what ``after: [sub]`` and ``works.sub.status`` see;
* the top-level works and loops of the nested workflow with no ``after`` wait for what
  ``sub`` waits for (they *inherit* its ``after``), so the expansion keeps the order;
* inside a loop, the nested workflow's works and loops are that loop's (its loops become
  loops inside that loop), with ``sub``;
* whether the nested workflow runs at all (``sub``'s ``after`` with its ``trigger``, its
  ``when``, its ``otherwise``) is its *gate*, which the planner checks for each inner work;
* expressions inside read their own scope: ``works.X``/``loops.X`` are the nested
  workflow's, ``params.X`` its parameters: its defaults, overridden by ``sub``'s
  ``parameters`` evaluated in the enclosing scope.

Pure: no IO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchid.core.template import LoopSpec, StaticJob, Template, WorkSpec

SEP = "."  # between a nested workflow's name and its works' names: never in a written name
MAX_NESTING = 8  # workflows inside workflows, the top one not counted
# what a nested workflow's work may set: the rest belongs to the works inside it
ALLOWED = frozenset(
    {"name", "description", "workflow", "parameters", "after", "trigger", "when", "otherwise"}
)


@dataclass(frozen=True)
class Scope:
    """A nested workflow as the planner needs it, by the flat name of its work."""

    name: str  # the flat name of its work (``outer.sub``), which is also its join
    parent: str | None  # the flat name of the enclosing nested workflow; None: the top
    spec: WorkSpec  # its work as written: trigger, when, otherwise, parameters
    after: tuple[str, ...]  # what it waits for, as flat names
    inherits: bool  # its `after` is its enclosing workflow's (it named none): no trigger
    defaults: Mapping[str, Any]  # its parameters' defaults
    works: Mapping[str, str]  # its works' names (nested ones included) -> flat names
    loops: Mapping[str, str]  # its loops' names -> flat names
    roots: frozenset[str]  # flat names of its works and loops that inherit `after`
    where: str  # the path of its work in the template, for messages


def scope_template(outer: Template, w: WorkSpec) -> Template:
    """A nested workflow as a template of its own (already checked: no validation)."""
    assert w.workflow is not None
    return Template.model_construct(
        name=w.name,
        description=w.workflow.description,
        parameters=w.workflow.parameters,
        defaults=outer.defaults,
        works=w.workflow.works,
        loops=w.workflow.loops,
    )


def expand(t: Template) -> tuple[Template, dict[str, Scope]]:
    """The flat template the engine runs, and each nested workflow by its flat name."""
    works: list[WorkSpec] = []
    loops: list[LoopSpec] = []
    scopes: dict[str, Scope] = {}
    _expand(t.works, t.loops, "", None, (), "", works, loops, scopes)
    fields = {k: getattr(t, k) for k in Template.model_fields}
    flat = Template.model_construct(**{**fields, "works": works, "loops": loops})
    return flat, scopes


def _expand(
    ws: list[WorkSpec],
    lps: list[LoopSpec],
    prefix: str,
    scope: str | None,
    inherited: tuple[str, ...],
    where: str,
    out_works: list[WorkSpec],
    out_loops: list[LoopSpec],
    scopes: dict[str, Scope],
) -> frozenset[str]:
    """Append the flat works and loops of one scope; return its nodes that inherit."""
    in_loop = {n for lp in lps for n in lp.works}
    members: dict[str, list[str]] = {}  # a work -> its flat works (a nested one: all of them)
    roots: set[str] = set()
    for i, w in enumerate(ws):
        after = [prefix + d for d in w.after]
        inherits = not after and w.name not in in_loop and bool(inherited)
        if inherits:
            after = list(inherited)
        flat_name = prefix + w.name
        if w.workflow is None:
            if inherits:
                roots.add(flat_name)
            update: dict[str, Any] = {"name": flat_name, "after": after}
            if isinstance(w.jobs, list) and prefix:
                update["jobs"] = [_job(j, prefix) for j in w.jobs]
            out_works.append(w.model_copy(update=update))
            members[w.name] = [flat_name]
            continue
        inner, start, loop_start = w.workflow, len(out_works), len(out_loops)
        inner_prefix = flat_name + SEP
        path = f"{where}works[{i}]({w.name})"
        inner_roots = _expand(
            inner.works,
            inner.loops,
            inner_prefix,
            flat_name,
            tuple(after),
            f"{path}.workflow.",
            out_works,
            out_loops,
            scopes,
        )
        scopes[flat_name] = Scope(
            name=flat_name,
            parent=scope,
            spec=w,
            after=tuple(after),
            inherits=inherits,
            defaults=inner.parameters,
            works={x.name: inner_prefix + x.name for x in inner.works},
            loops={lp.name: inner_prefix + lp.name for lp in inner.loops},
            roots=inner_roots,
            where=path,
        )
        looped = {n for lp in inner.loops for n in lp.works}
        tops = [inner_prefix + x.name for x in inner.works if x.name not in looped]
        tops += [inner_prefix + lp.name for lp in inner.loops]
        join = WorkSpec.model_construct(
            name=flat_name,
            description=w.description,
            noop=True,
            after=tops,
            trigger="all_done",
            on_failure="continue",
        )
        # what an enclosing loop repeats: its works and loops not inside one of its loops
        # (those stay in theirs: loops inside that loop), then its join
        held = {n for lp in out_loops[loop_start:] for n in lp.works}
        members[w.name] = [x.name for x in out_works[start:] if x.name not in held]
        members[w.name] += [lp.name for lp in out_loops[loop_start:] if lp.name not in held]
        members[w.name].append(flat_name)
        out_works.append(join)
    for lp in lps:
        after = [prefix + d for d in lp.after]
        if not after and inherited:
            after = list(inherited)
            roots.add(prefix + lp.name)
        flat_works = [m for n in lp.works for m in members.get(n, [prefix + n])]
        update = {"name": prefix + lp.name, "works": flat_works, "after": after}
        out_loops.append(lp.model_copy(update=update))
    return frozenset(roots)


def _job(job: StaticJob, prefix: str) -> StaticJob:
    """A listed job whose ``work/job`` parents name works of the same nested workflow."""
    parents = [f"{prefix}{ref}" if "/" in ref else ref for ref in job.parents]
    return job.model_copy(update={"parents": parents})


def chain(scopes: Mapping[str, Scope], scope: str | None) -> list[Scope]:
    """The nested workflows around a scope, outermost first."""
    out: list[Scope] = []
    while scope is not None:
        out.append(scopes[scope])
        scope = scopes[scope].parent
    return out[::-1]
