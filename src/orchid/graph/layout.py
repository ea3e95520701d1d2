"""A layered left-to-right layout (Sugiyama-style) in pure Python, for graphs of works.

Layers by longest path from the sources; edges that span several layers get bend
points (dummy nodes) so that they run between boxes, not through them; a few
barycentre sweeps order each layer to reduce crossings; then each box is pulled
towards the median of its neighbours while keeping the order and the spacing.
A workflow has tens of works, rarely thousands: every step is near-linear in edges.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

NODE_W = 188.0
NODE_H = 66.0
GAP_X = 64.0  # between layers
GAP_Y = 22.0  # between boxes of a layer
DUMMY_H = 8.0
MARGIN = 24.0
LOOP_PAD = 10.0  # frame around a loop's boxes
LOOP_LABEL = 18.0
SWEEPS = 6


@dataclass(frozen=True)
class Box:
    name: str
    x: float  # top-left corner
    y: float
    w: float = NODE_W
    h: float = NODE_H

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass(frozen=True)
class Route:
    """An edge as a polyline from the source box's right side to the target's left side."""

    source: str
    target: str
    points: tuple[tuple[float, float], ...]
    kind: str = "after"


@dataclass(frozen=True)
class Frame:
    name: str
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Layout:
    boxes: dict[str, Box]
    routes: tuple[Route, ...]
    frames: tuple[Frame, ...]
    width: float
    height: float


def layout(
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str, str]],
    groups: Sequence[tuple[str, Sequence[str]]] = (),
) -> Layout:
    """Positions for ``nodes`` (in a topological order, which breaks any cycle) joined by
    ``edges`` (source, target, kind); ``groups`` are framed (loops)."""
    index = {n: i for i, n in enumerate(nodes)}
    forward = []
    for s, t, kind in edges:
        if s not in index or t not in index or s == t:
            continue
        forward.append((s, t, kind) if index[s] < index[t] else (t, s, kind))
    preds: dict[str, list[str]] = defaultdict(list)
    for s, t, _ in forward:
        preds[t].append(s)
    rank: dict[str, int] = {}
    for n in nodes:
        rank[n] = max((rank[p] + 1 for p in preds[n]), default=0)

    # split long edges into unit steps through dummy nodes
    layer_of: dict[str, int] = dict(rank)
    chains: list[tuple[str, str, str, list[str]]] = []
    up: dict[str, list[str]] = defaultdict(list)
    down: dict[str, list[str]] = defaultdict(list)
    for k, (s, t, kind) in enumerate(forward):
        path = [s]
        for r in range(rank[s] + 1, rank[t]):
            d = f"\0{k}:{r}"
            layer_of[d] = r
            path.append(d)
        path.append(t)
        for a, b in pairwise(path):
            down[a].append(b)
            up[b].append(a)
        chains.append((s, t, kind, path))

    layers: list[list[str]] = [[] for _ in range(max(layer_of.values(), default=-1) + 1)]
    for n in sorted(layer_of, key=lambda v: (layer_of[v], index.get(v, len(index)), v)):
        layers[layer_of[n]].append(n)
    _order(layers, up, down)
    ys = _place(layers, up, down)

    boxes: dict[str, Box] = {}
    dummy_y: dict[str, float] = {}
    for r, layer in enumerate(layers):
        x = MARGIN + r * (NODE_W + GAP_X)
        for n in layer:
            if n in index:
                boxes[n] = Box(n, x, ys[n])
            else:
                dummy_y[n] = ys[n] + DUMMY_H / 2
    routes = []
    for s, t, kind, path in chains:
        src, dst = boxes[s], boxes[t]
        pts = [(src.x + src.w, src.cy)]
        for d in path[1:-1]:
            x = MARGIN + layer_of[d] * (NODE_W + GAP_X) + NODE_W / 2
            pts.append((x, dummy_y[d]))
        pts.append((dst.x, dst.cy))
        routes.append(Route(s, t, tuple(pts), kind))
    frames = _frames(boxes, groups)
    drop = MARGIN - min((f.y for f in frames), default=MARGIN)
    if drop > 0:  # loops inside loops: their outer frames reach above the room left for one
        boxes = {n: replace(b, y=b.y + drop) for n, b in boxes.items()}
        routes = [replace(r, points=tuple((x, y + drop) for x, y in r.points)) for r in routes]
        frames = [replace(f, y=f.y + drop) for f in frames]
        dummy_y = {d: y + drop for d, y in dummy_y.items()}
    width = MARGIN * 2 + max(len(layers), 1) * (NODE_W + GAP_X) - GAP_X
    bottom = max(
        [b.y + b.h for b in boxes.values()]
        + [f.y + f.h for f in frames]
        + [y + DUMMY_H for y in dummy_y.values()]
        + [0.0]
    )
    return Layout(boxes, tuple(routes), tuple(frames), width, bottom + MARGIN)


def _height(n: str) -> float:
    return DUMMY_H if n.startswith("\0") else NODE_H


def _order(layers: list[list[str]], up: dict[str, list[str]], down: dict[str, list[str]]) -> None:
    """Barycentre sweeps, down then up; ties keep the current order."""
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        seq = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
        for r in seq:
            ref = layers[r - 1] if downward else layers[r + 1]
            pos = {n: i for i, n in enumerate(ref)}
            nbrs = up if downward else down
            current = {n: i for i, n in enumerate(layers[r])}

            def key(
                n: str,
                pos: dict[str, int] = pos,
                nbrs: dict[str, list[str]] = nbrs,
                current: dict[str, int] = current,
            ) -> tuple[float, int]:
                ps = [pos[m] for m in nbrs[n] if m in pos]
                return (sum(ps) / len(ps) if ps else float(current[n]), current[n])

            layers[r].sort(key=key)


def _place(
    layers: list[list[str]], up: dict[str, list[str]], down: dict[str, list[str]]
) -> dict[str, float]:
    """Top y of every node: stacked in order, then pulled towards neighbours' medians."""
    ys: dict[str, float] = {}
    for layer in layers:
        y = MARGIN + LOOP_LABEL + LOOP_PAD
        for n in layer:
            ys[n] = y
            y += _height(n) + GAP_Y
    for it in range(8):
        seq = list(range(len(layers))) if it % 2 == 0 else list(range(len(layers) - 1, -1, -1))
        for r in seq:
            layer = layers[r]
            want = []
            for n in layer:
                centres = [ys[m] + _height(m) / 2 for m in (*up[n], *down[n])]
                if centres:
                    centres.sort()
                    mid = len(centres) // 2
                    med = (
                        centres[mid] if len(centres) % 2 else (centres[mid - 1] + centres[mid]) / 2
                    )
                    want.append(med - _height(n) / 2)
                else:
                    want.append(ys[n])
            # keep the order and the gaps: push down from the top, then up from the bottom
            top = MARGIN + LOOP_LABEL + LOOP_PAD
            placed = []
            for n, w in zip(layer, want, strict=True):
                y = max(w, top)
                placed.append(y)
                top = y + _height(n) + GAP_Y
            for i in range(len(layer) - 2, -1, -1):
                limit = placed[i + 1] - GAP_Y - _height(layer[i])
                placed[i] = max(min(placed[i], limit), MARGIN + LOOP_LABEL + LOOP_PAD)
            for n, y in zip(layer, placed, strict=True):
                ys[n] = y
    # no layer may start above the margin after the pulls
    if ys:
        shift = min(ys.values()) - (MARGIN + LOOP_LABEL + LOOP_PAD)
        for n in ys:
            ys[n] -= shift
    return ys


def _frames(boxes: Mapping[str, Box], groups: Sequence[tuple[str, Sequence[str]]]) -> list[Frame]:
    """A frame around each group's boxes; a member that names another group (a loop inside
    a loop) puts that group's frame inside this one. Outer frames come first (drawn below)."""
    members = dict(groups)
    made: dict[str, Frame | None] = {}
    depth: dict[str, int] = {}

    def frame(name: str, level: int) -> Frame | None:
        if name in made:
            return made[name]
        made[name] = None  # a group inside itself (not a valid template) frames nothing more
        depth[name] = level
        rects = [(b.x, b.y, b.x + b.w, b.y + b.h) for m in members[name] if (b := boxes.get(m))]
        for m in members[name]:
            if m in members and m not in boxes and (f := frame(m, level + 1)) is not None:
                rects.append((f.x, f.y, f.x + f.w, f.y + f.h))
        if not rects:
            return None
        x0 = min(r[0] for r in rects) - LOOP_PAD
        y0 = min(r[1] for r in rects) - LOOP_PAD - LOOP_LABEL
        x1 = max(r[2] for r in rects) + LOOP_PAD
        y1 = max(r[3] for r in rects) + LOOP_PAD
        made[name] = Frame(name, x0, y0, x1 - x0, y1 - y0)
        return made[name]

    inner = {m for _, ms in groups for m in ms if m in members}
    for name, _ in groups:
        if name not in inner:
            frame(name, 0)
    for name, _ in groups:
        frame(name, 0)  # inside a cycle of groups: not reached from an outermost one
    out = [f for name, _ in groups if (f := made.get(name)) is not None]
    return sorted(out, key=lambda f: depth[f.name])
