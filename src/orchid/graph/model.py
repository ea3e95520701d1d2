"""What the picture shows: one node per work (its latest iteration), edges between works.

Edges are the template's ``after`` (task dependencies; an ``after`` naming a loop links
the loop's last works) and the links implied by job-level parents across works (the
Rubin shape), which the submission records because only the job list knows them.
Pure: the caller reads the template, the works and the links from the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from orchid.core.model import Work
from orchid.core.template import Template
from orchid.core.validate import Analysis

EdgeKind = Literal["after", "jobs"]
MAX_LABEL = 60


@dataclass(frozen=True)
class Node:
    """A work as drawn: its status and job counts are those of its latest iteration."""

    name: str
    status: str  # a WorkStatus, or "waiting" for a work with no row yet
    counts: Mapping[str, int] = field(default_factory=dict)  # jobs by status
    iteration: int = 0
    work_id: int | None = None
    loop: str | None = None  # the loop it is repeated in
    notes: tuple[str, ...] = ()  # its condition and trigger, short

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("succeeded", "failed", "cancelled", "skipped"))


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: EdgeKind = "after"


@dataclass(frozen=True)
class LoopBox:
    """A loop: its works are framed together and labelled with the iteration reached; the
    loops it repeats (``inner``) are framed inside its frame."""

    name: str
    works: tuple[str, ...]
    iteration: int = 0
    max_iterations: int = 1
    status: str = "waiting"
    until: str = ""
    inner: tuple[str, ...] = ()

    @property
    def iteration_label(self) -> str:
        """``iteration 2 (0..4)``: numbered as `loop.iteration` counts, from 0 (as ``status``
        and ``jobs`` show them too), with the range ``max_iterations`` allows."""
        return f"iteration {self.iteration} (0..{max(self.max_iterations - 1, 0)})"


@dataclass(frozen=True)
class NestBox:
    """A nested workflow (a ``workflow:`` work): its works framed together, with its work
    (the one that ends with its outcome, named like it) the last inside the frame."""

    name: str
    works: tuple[str, ...]
    status: str = "waiting"


@dataclass(frozen=True)
class TaskGraph:
    workflow_id: int
    name: str
    status: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    loops: tuple[LoopBox, ...] = ()
    nested: tuple[NestBox, ...] = ()

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "name": self.name,
            "status": self.status,
            "nodes": [
                {
                    "name": n.name,
                    "status": n.status,
                    "counts": dict(n.counts),
                    "iteration": n.iteration,
                    "work_id": n.work_id,
                    "loop": n.loop,
                    "notes": list(n.notes),
                }
                for n in self.nodes
            ],
            "edges": [{"source": e.source, "target": e.target, "kind": e.kind} for e in self.edges],
            "loops": [
                {
                    "name": lp.name,
                    "works": list(lp.works),
                    "iteration": lp.iteration,
                    "max_iterations": lp.max_iterations,
                    "status": lp.status,
                    "until": lp.until,
                    "inner": list(lp.inner),
                }
                for lp in self.loops
            ],
            "nested": [
                {"name": nb.name, "works": list(nb.works), "status": nb.status}
                for nb in self.nested
            ],
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> TaskGraph:
        """The inverse of :meth:`to_json` (what ``orchid graph`` gets from a server)."""
        return TaskGraph(
            workflow_id=int(data["workflow_id"]),
            name=str(data["name"]),
            status=str(data["status"]),
            nodes=tuple(
                Node(
                    name=n["name"],
                    status=n["status"],
                    counts={str(k): int(v) for k, v in n.get("counts", {}).items()},
                    iteration=int(n.get("iteration", 0)),
                    work_id=n.get("work_id"),
                    loop=n.get("loop"),
                    notes=tuple(n.get("notes", ())),
                )
                for n in data["nodes"]
            ),
            edges=tuple(
                Edge(e["source"], e["target"], e.get("kind", "after")) for e in data["edges"]
            ),
            loops=tuple(
                LoopBox(
                    name=lp["name"],
                    works=tuple(lp["works"]),
                    iteration=int(lp.get("iteration", 0)),
                    max_iterations=int(lp.get("max_iterations", 1)),
                    status=str(lp.get("status", "waiting")),
                    until=str(lp.get("until", "")),
                    inner=tuple(lp.get("inner", ())),
                )
                for lp in data.get("loops", ())
            ),
            nested=tuple(
                NestBox(str(nb["name"]), tuple(nb["works"]), str(nb.get("status", "waiting")))
                for nb in data.get("nested", ())
            ),
        )


def short(text: str, limit: int = MAX_LABEL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build(
    workflow_id: int,
    status: str,
    template: Template,
    analysis: Analysis,
    works: Sequence[Work],
    links: Iterable[tuple[str, str]] = (),
    loop_states: Mapping[str, Mapping[str, Any]] | None = None,
) -> TaskGraph:
    """The graph of a workflow from its template, its work rows (with job counts) and the
    work-to-work links of its job-level parents."""
    latest: dict[str, Work] = {}
    for w in works:
        if w.name not in latest or w.iteration > latest[w.name].iteration:
            latest[w.name] = w
    loop_of = {name: lp.name for lp in template.loops for name in lp.works}
    nodes = []
    for name in analysis.order:
        spec = template.work(name)
        notes = []
        if spec.when:
            notes.append("if " + short(spec.when))
        if spec.trigger != "all_success":
            notes.append(spec.trigger.replace("_", " "))
        row = latest.get(name)
        nodes.append(
            Node(
                name=name,
                status=str(row.status) if row else "waiting",
                counts={str(k): v for k, v in row.counts.items()} if row else {},
                iteration=row.iteration if row else 0,
                work_id=row.id if row else None,
                loop=loop_of.get(name),
                notes=tuple(notes),
            )
        )
    edges = _edges(template, analysis, links)
    states = loop_states or {}
    loops = tuple(
        LoopBox(
            name=lp.name,
            works=tuple(w for w in analysis.order if w in lp.works),
            iteration=int(states.get(lp.name, {}).get("iteration", 0)),
            max_iterations=lp.max_iterations,
            status=str(states.get(lp.name, {}).get("status", "waiting")),
            until=short(lp.until),
            inner=tuple(n for n in lp.works if n in analysis.loops),
        )
        for lp in template.loops
    )
    nested = tuple(
        NestBox(
            name=scope,
            works=tuple(w for w in analysis.order if w.startswith(scope + ".") or w == scope),
            status=str(latest[scope].status) if scope in latest else "waiting",
        )
        for scope in analysis.scopes
    )
    return TaskGraph(workflow_id, template.name, status, tuple(nodes), edges, loops, nested)


def _edges(
    template: Template, analysis: Analysis, links: Iterable[tuple[str, str]]
) -> tuple[Edge, ...]:
    loops = {lp.name: lp for lp in template.loops}
    rank = {w: i for i, w in enumerate(analysis.order)}

    def first_rank(name: str) -> int:
        if name not in loops:
            return rank.get(name, len(rank))
        return min((first_rank(m) for m in loops[name].works), default=len(rank))

    def after_of(name: str) -> list[str]:
        return loops[name].after if name in loops else template.work(name).after

    def inner(lp_name: str) -> tuple[list[str], list[str]]:
        """A loop's first works (nothing inside it before them) and last ones; a loop
        inside it stands for its own first (or last) works."""
        members = sorted(loops[lp_name].works, key=first_rank)
        befores = {m: set(after_of(m)) & set(members) for m in members}
        firsts = [m for m in members if not befores[m]]
        lasts = [m for m in members if not any(m in b for b in befores.values())]
        return (
            [w for m in firsts for w in (inner(m)[0] if m in loops else [m])],
            [w for m in lasts for w in (inner(m)[1] if m in loops else [m])],
        )

    seen: dict[tuple[str, str], Edge] = {}
    for target in analysis.order:
        spec = template.work(target)
        for dep in spec.after:
            sources = inner(dep)[1] if dep in loops else [dep]
            for s in sources:
                seen.setdefault((s, target), Edge(s, target, "after"))
    for lp in template.loops:  # a loop after something: its first works hang from it
        firsts = inner(lp.name)[0]
        for dep in lp.after:
            sources = inner(dep)[1] if dep in loops else [dep]
            for s in sources:
                for f in firsts:
                    seen.setdefault((s, f), Edge(s, f, "after"))
    known = set(analysis.order)
    job_links = {(a, b) for b, ups in analysis.job_upstream.items() for a in ups}
    for a, b in sorted(job_links | set(links)):
        if a != b and a in known and b in known:
            seen.setdefault((a, b), Edge(a, b, "jobs"))
    return tuple(seen.values())
