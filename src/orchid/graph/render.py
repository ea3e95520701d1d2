"""Drawing a :class:`TaskGraph`: SVG (pages and reports), Graphviz DOT and Mermaid text.

The SVG marks each work's group with ``data-work`` and each part that shows state with
a class, so that the monitor pages can recolour it live without drawing it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from html import escape
from itertools import pairwise

from orchid.graph.layout import NODE_H, NODE_W, Layout, layout
from orchid.graph.model import LoopBox, Node, TaskGraph

# solid colour (bars, stripes) and a light tint (box fill) per status
PALETTE: dict[str, tuple[str, str]] = {
    "pending": ("#94a3b8", "#f1f5f9"),
    "waiting": ("#94a3b8", "#f1f5f9"),
    "ready": ("#38bdf8", "#e0f2fe"),
    "submitted": ("#60a5fa", "#dbeafe"),
    "running": ("#2563eb", "#dbeafe"),
    "suspended": ("#a855f7", "#f3e8ff"),
    "succeeded": ("#16a34a", "#dcfce7"),
    "failed": ("#dc2626", "#fee2e2"),
    "partial": ("#f59e0b", "#fef3c7"),
    "cancelled": ("#52525b", "#e4e4e7"),
    "skipped": ("#a1a1aa", "#f4f4f5"),
    # files of the data carousel
    "new": ("#94a3b8", "#f1f5f9"),
    "staging": ("#38bdf8", "#e0f2fe"),
    "available": ("#0d9488", "#ccfbf1"),
    "processing": ("#2563eb", "#dbeafe"),
    "processed": ("#16a34a", "#dcfce7"),
    "deleted": ("#52525b", "#e4e4e7"),
    # series of the data page
    "staged": ("#0d9488", "#ccfbf1"),
    "on disk": ("#7c3aed", "#ede9fe"),
}
# the order in which a progress bar stacks its segments
BAR_ORDER = (
    "succeeded",
    "failed",
    "cancelled",
    "skipped",
    "running",
    "submitted",
    "ready",
    "deleted",
    "processed",
    "processing",
    "available",
    "staging",
)


def colour(status: str) -> tuple[str, str]:
    return PALETTE.get(status, PALETTE["waiting"])


def place(graph: TaskGraph) -> Layout:
    return layout(
        [n.name for n in graph.nodes],
        [(e.source, e.target, e.kind) for e in graph.edges],
        [(lp.name, (*lp.works, *lp.inner)) for lp in graph.loops]
        + [(nb.name, nb.works) for nb in graph.nested],
    )


@dataclass(frozen=True)
class _Box:
    """A frame of the DOT and Mermaid drawings: a loop or a nested workflow."""

    key: str  # cluster id
    label: str
    style: str  # DOT attributes
    members: frozenset[str]


def _boxes(graph: TaskGraph) -> tuple[list[_Box], dict[str, str | None], dict[str, str | None]]:
    """The frames (loops, then nested workflows), each frame's parent frame (the smallest
    holding it: nested workflows and loops nest) and each node's innermost frame."""
    loops = {lp.name: lp for lp in graph.loops}

    def inside(lp: LoopBox) -> set[str]:  # the loops inside it, at any depth
        seen: set[str] = set()
        todo = [n for n in lp.inner if n in loops]
        while todo:
            name = todo.pop()
            if name not in seen and name != lp.name:
                seen.add(name)
                todo.extend(n for n in loops[name].inner if n in loops)
        return seen

    def holds(lp: LoopBox) -> frozenset[str]:  # its works and those of the loops inside it
        return frozenset(lp.works).union(*(loops[n].works for n in inside(lp)))

    depth = {lp.name: len(inside(lp)) for lp in graph.loops}

    boxes = [
        _Box(
            f"cluster_{i}",
            f"loop {lp.name}: {lp.iteration_label}",
            'style=dashed; color="#a855f7";',
            holds(lp),
        )
        for i, lp in enumerate(graph.loops)
    ] + [
        _Box(
            f"cluster_nested_{i}",
            f"workflow {nb.name}: {nb.status}",
            'style=rounded; color="#2563eb";',
            frozenset(nb.works),
        )
        for i, nb in enumerate(graph.nested)
    ]

    def size(b: _Box) -> tuple[int, int, int]:
        # a loop of just a nested workflow holds it; a loop of just a loop holds that loop
        if b.key.startswith("cluster_nested"):
            return len(b.members), 0, 0
        return len(b.members), 1, depth[graph.loops[int(b.key.removeprefix("cluster_"))].name]

    def smallest(fits: Iterable[_Box]) -> str | None:
        found = min(fits, key=size, default=None)
        return found.key if found else None

    parent = {
        b.key: smallest(
            o for o in boxes if o is not b and b.members <= o.members and size(b) < size(o)
        )
        for b in boxes
    }
    home = {n.name: smallest(b for b in boxes if n.name in b.members) for n in graph.nodes}
    return boxes, parent, home


def counts_text(node: Node) -> str:
    total = node.total
    if total == 0:
        return node.status
    return f"{node.status} · {node.counts.get('succeeded', 0):,}/{total:,}"


def bar_segments(counts: Mapping[str, int], width: float) -> list[tuple[str, float, float]]:
    """(status, x offset, width) of each coloured part of a progress bar of ``width``."""
    total = sum(counts.values())
    out: list[tuple[str, float, float]] = []
    if total <= 0:
        return out
    x = 0.0
    for status in BAR_ORDER:
        n = counts.get(status, 0)
        if n:
            w = width * n / total
            out.append((status, x, w))
            x += w
    return out


def _path(points: Iterable[tuple[float, float]]) -> str:
    """A smooth path through the points: horizontal tangents at each one."""
    pts = list(points)
    d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"
    for (x0, y0), (x1, y1) in pairwise(pts):
        mid = (x1 - x0) / 2
        d += f" C{x0 + mid:.1f},{y0:.1f} {x1 - mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f}"
    return d


def to_svg(graph: TaskGraph, link: str | None = None, standalone: bool = True) -> str:
    """The graph as SVG. ``link`` is a URL pattern with ``{work_id}`` that each box links to."""
    lay = place(graph)
    w, h = max(lay.width, 240.0), max(lay.height, 120.0)
    out = []
    xmlns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    out.append(
        f'<svg{xmlns} class="orchid-graph" viewBox="0 0 {w:.0f} {h:.0f}" width="{w:.0f}" '
        f'height="{h:.0f}" font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" '
        f'role="img" aria-label="task graph of workflow {graph.workflow_id}">'
    )
    out.append(
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#64748b"/></marker></defs>'
    )
    if standalone:
        out.append(f'<rect width="{w:.0f}" height="{h:.0f}" fill="#ffffff"/>')
    loops = {lp.name: lp for lp in graph.loops}
    nested = {nb.name: nb for nb in graph.nested}
    for f in lay.frames:
        if f.name in nested:
            nb = nested[f.name]
            out.append(
                f'<g class="nested" data-nested="{escape(f.name)}"><rect x="{f.x:.1f}" '
                f'y="{f.y:.1f}" width="{f.w:.1f}" height="{f.h:.1f}" rx="10" fill="none" '
                f'stroke="#2563eb"/><text x="{f.x + 10:.1f}" y="{f.y + 14:.1f}" font-size="11" '
                f'fill="#1d4ed8">{escape(f"⊂ workflow {nb.name} · {nb.status}")}</text></g>'
            )
            continue
        lp = loops[f.name]
        label = f"↻ {lp.name} · {lp.iteration_label} · {lp.status}"
        out.append(
            f'<g class="loop" data-loop="{escape(f.name)}"><rect x="{f.x:.1f}" y="{f.y:.1f}" '
            f'width="{f.w:.1f}" height="{f.h:.1f}" rx="10" fill="#faf5ff" stroke="#a855f7" '
            f'stroke-dasharray="6 4"/><text x="{f.x + 10:.1f}" y="{f.y + 14:.1f}" font-size="11" '
            f'fill="#7e22ce">{escape(label)}</text><title>until {escape(lp.until)}</title></g>'
        )
    for r in lay.routes:
        dash = ' stroke-dasharray="4 3"' if r.kind == "jobs" else ""
        out.append(
            f'<path class="edge edge-{r.kind}" d="{_path(r.points)}" fill="none" '
            f'stroke="#64748b" stroke-width="1.4"{dash} marker-end="url(#arrow)"/>'
        )
    for n in graph.nodes:
        b = lay.boxes[n.name]
        solid, tint = colour(n.status)
        title = f"{n.name}: {n.status}" + "".join(
            f", {k} {v:,}" for k, v in sorted(n.counts.items())
        )
        group = (
            f'<g class="node" data-work="{escape(n.name)}" data-status="{n.status}" '
            f'transform="translate({b.x:.1f},{b.y:.1f})">'
        )
        if link and n.work_id is not None:
            group += f'<a href="{escape(link.format(work_id=n.work_id))}">'
        out.append(group)
        out.append(f"<title>{escape(title)}</title>")
        out.append(
            f'<rect class="box" width="{NODE_W:.0f}" height="{NODE_H:.0f}" rx="8" fill="{tint}" '
            f'stroke="{solid}" stroke-width="1.5"/>'
            f'<rect class="stripe" width="6" height="{NODE_H:.0f}" rx="3" fill="{solid}"/>'
        )
        name = n.name if len(n.name) <= 22 else n.name[:21] + "…"
        out.append(
            f'<text x="14" y="20" font-size="14" font-weight="600" fill="#0f172a">{escape(name)}'
            "</text>"
        )
        out.append(
            f'<text class="counts" x="14" y="38" font-size="12" fill="#334155">'
            f"{escape(counts_text(n))}</text>"
        )
        note = " · ".join(n.notes)
        if note:
            note = note if len(note) <= 30 else note[:29] + "…"
            out.append(
                f'<text x="14" y="{NODE_H - 14:.0f}" font-size="10" fill="#64748b" '
                f'font-style="italic">{escape(note)}</text>'
            )
        bar_w = NODE_W - 28
        out.append(
            f'<g class="bar" transform="translate(14,{NODE_H - 9:.0f})"><rect width="{bar_w:.0f}" '
            'height="4" rx="2" fill="#e2e8f0"/>'
        )
        for status, x, sw in bar_segments(n.counts, bar_w):
            out.append(
                f'<rect x="{x:.1f}" width="{sw:.1f}" height="4" fill="{colour(status)[0]}"/>'
            )
        out.append("</g>")
        out.append("</a></g>" if link and n.work_id is not None else "</g>")
    out.append("</svg>")
    return "".join(out)


def _nested_lines(
    graph: TaskGraph,
    node_line: Callable[[Node], str],
    opening: Callable[[_Box, str], list[str]],
    closing: str,
) -> list[str]:
    """Every node's line, those in a loop or nested workflow inside its box (boxes nest,
    each level indented two more spaces): ``opening`` starts a box, ``closing`` ends it."""
    boxes, parent, home = _boxes(graph)
    lines: list[str] = []

    def box(b: _Box, indent: str) -> None:
        lines.extend(opening(b, indent))
        lines.extend(indent + node_line(n) for n in graph.nodes if home[n.name] == b.key)
        for child in boxes:
            if parent[child.key] == b.key:
                box(child, indent + "  ")
        lines.append(indent + closing)

    for b in boxes:
        if parent[b.key] is None:
            box(b, "  ")
    lines.extend(node_line(n) for n in graph.nodes if home[n.name] is None)
    return lines


def _dot_id(text: str) -> str:
    return json.dumps(text)  # a double-quoted DOT ID with \" and \\ escaped


def to_dot(graph: TaskGraph) -> str:
    """Graphviz DOT (``dot -Tpdf``): boxes filled by status, loops as clusters."""
    lines = [
        f"digraph {_dot_id(graph.name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '  edge [color="#64748b"];',
        f"  label={_dot_id(f'workflow {graph.workflow_id} {graph.name}: {graph.status}')};",
    ]

    def node_line(n: Node) -> str:
        solid, tint = colour(n.status)
        label = "\\n".join([n.name, counts_text(n), *n.notes])
        label_id = '"' + label.replace('"', '\\"') + '"'
        return (
            f"  {_dot_id(n.name)} [label={label_id}, fillcolor={_dot_id(tint)}, "
            f"color={_dot_id(solid)}];"
        )

    def cluster(b: _Box, indent: str) -> list[str]:
        return [
            f"{indent}subgraph {b.key} {{",
            f"{indent}  label={_dot_id(b.label)};",
            f"{indent}  {b.style}",
        ]

    lines.extend(_nested_lines(graph, node_line, cluster, "}"))
    for e in graph.edges:
        style = " [style=dashed]" if e.kind == "jobs" else ""
        lines.append(f"  {_dot_id(e.source)} -> {_dot_id(e.target)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(graph: TaskGraph) -> str:
    """A Mermaid flowchart (renders in GitHub/GitLab Markdown)."""
    ids = {n.name: f"w{i}" for i, n in enumerate(graph.nodes)}
    lines = ["flowchart LR"]

    def node_line(n: Node) -> str:
        label = "<br/>".join(_mermaid_text(t) for t in (n.name, counts_text(n), *n.notes))
        return f'  {ids[n.name]}["{label}"]:::{n.status}'

    def subgraph(b: _Box, indent: str) -> list[str]:
        key = b.key.replace("cluster_nested_", "nested").replace("cluster_", "loop")
        return [f'{indent}subgraph {key}["{_mermaid_text(b.label)}"]']

    lines.extend(_nested_lines(graph, node_line, subgraph, "end"))
    for e in graph.edges:
        arrow = "-.->" if e.kind == "jobs" else "-->"
        lines.append(f"  {ids[e.source]} {arrow} {ids[e.target]}")
    for status in sorted({n.status for n in graph.nodes}):
        solid, tint = colour(status)
        lines.append(f"  classDef {status} fill:{tint},stroke:{solid},color:#0f172a")
    return "\n".join(lines) + "\n"
