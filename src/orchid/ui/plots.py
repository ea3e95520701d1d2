"""The charts of a study page (server-side SVG): objective vs trial with the best so far,
two objectives against each other with the Pareto front, and parallel coordinates of the
parameters. Each takes at most a few thousand already chosen points."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from orchid.ui.charts import W, human

DOT, BEST, FRONT, GRID, INK, MUTED = (
    "#16a34a",
    "#7c3aed",
    "#dc2626",
    "#e2e8f0",
    "#0f172a",
    "#64748b",
)
LEFT, RIGHT, TOP, BOTTOM = 64.0, 16.0, 30.0, 34.0


def _open(title: str, height: float) -> list[str]:
    return [
        f'<svg class="chart plot" viewBox="0 0 {W:.0f} {height:.0f}" width="100%" role="img" '
        f'aria-label="{escape(title)}"><text x="{LEFT:.0f}" y="16" font-size="12" '
        f'font-weight="600" fill="{INK}">{escape(title)}</text>'
    ]


@dataclass(frozen=True)
class _Scale:
    """Data to pixels along one axis; logarithmic when the values span many decades."""

    low: float
    high: float
    start: float
    end: float
    log: bool = False
    whole: bool = False  # ticks on whole numbers (trial numbers)

    @staticmethod
    def fit(values: Sequence[float], start: float, end: float) -> _Scale:
        lo, hi = min(values), max(values)
        log = lo > 0 and hi / lo > 1000
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        pad = (hi - lo) * 0.05
        return _Scale(lo - pad, hi + pad, start, end, log)

    def __call__(self, v: float) -> float:
        u = math.log10(v) if self.log else v
        return self.start + (self.end - self.start) * (u - self.low) / (self.high - self.low)

    def ticks(self, n: int = 4) -> list[tuple[float, str]]:
        if self.whole:
            step = max(1, math.ceil((self.high - self.low) / n))
            first = math.ceil(max(self.low, 0) / step) * step
            return [(float(v), f"{v:,}") for v in range(first, int(self.high) + 1, step)]
        out = []
        for i in range(n + 1):
            u = self.low + (self.high - self.low) * i / n
            v = 10**u if self.log else u
            out.append((v, _label(v)))
        return out


def _label(v: float) -> str:
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return f"{v:.4g}"
    return human(v) if abs(v) >= 1e4 else f"{v:.2e}"


def _axes(out: list[str], x: _Scale, y: _Scale, height: float, xname: str, yname: str) -> None:
    for v, text in y.ticks():
        py = y(v)
        out.append(
            f'<line x1="{LEFT:.0f}" x2="{W - RIGHT:.0f}" y1="{py:.1f}" y2="{py:.1f}" '
            f'stroke="{GRID}"/><text x="{LEFT - 6:.0f}" y="{py + 4:.1f}" font-size="10" '
            f'text-anchor="end" fill="{MUTED}">{escape(text)}</text>'
        )
    for v, text in x.ticks(6):
        out.append(
            f'<text x="{x(v):.1f}" y="{height - BOTTOM + 14:.0f}" font-size="10" '
            f'text-anchor="middle" fill="{MUTED}">{escape(text)}</text>'
        )
    out.append(
        f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{height - 4:.0f}" font-size="11" '
        f'text-anchor="middle" fill="#334155">{escape(xname)}</text>'
        f'<text x="12" y="{TOP + (height - TOP - BOTTOM) / 2:.0f}" font-size="11" '
        f'text-anchor="middle" fill="#334155" transform="rotate(-90 12 '
        f'{TOP + (height - TOP - BOTTOM) / 2:.0f})">{escape(yname)}</text>'
    )


def best_so_far(points: Sequence[tuple[int, float]], direction: str) -> list[tuple[int, float]]:
    """The running best of (trial number, value) pairs in trial order."""
    out: list[tuple[int, float]] = []
    for number, value in points:
        if not out or (value < out[-1][1] if direction == "minimize" else value > out[-1][1]):
            out.append((number, value))
        else:
            out.append((number, out[-1][1]))
    return out


def trials_chart(
    points: Sequence[tuple[int, float]],
    direction: str,
    *,
    objective: str,
    every: int = 1,
    height: float = 260.0,
) -> str:
    """Each complete trial's objective (a dot) and the best so far (a step line)."""
    if not points:
        return '<p class="muted">No trial has completed yet.</p>'
    title = f"{objective} ({direction}) of each complete trial, and the best so far"
    if every > 1:
        title += f" (every {every}th trial)"
    x = _Scale.fit([float(n) for n, _ in points], LEFT, W - RIGHT)
    x = _Scale(x.low, x.high, x.start, x.end, log=False, whole=True)
    y = _Scale.fit([v for _, v in points], height - BOTTOM, TOP)
    out = _open(title, height)
    _axes(out, x, y, height, "trial", objective)
    for n, v in points:
        out.append(
            f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="2.6" fill="{DOT}" fill-opacity="0.55">'
            f"<title>trial {n}: {v:.6g}</title></circle>"
        )
    best = best_so_far(points, direction)
    path = [f"{x(best[0][0]):.1f},{y(best[0][1]):.1f}"]
    for (_, prev), (n, v) in itertools.pairwise(best):
        path.append(f"{x(n):.1f},{y(prev):.1f} {x(n):.1f},{y(v):.1f}")
    out.append(
        f'<polyline class="best" points="{" ".join(path)}" fill="none" stroke="{BEST}" '
        'stroke-width="2"/>'
    )
    out.append("</svg>")
    return "".join(out)


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[bool]:
    """Which points no other point dominates (better or equal in every objective)."""
    sign = [1.0 if d == "minimize" else -1.0 for d in directions]
    keyed = [[s * v for s, v in zip(sign, p, strict=True)] for p in points]

    def dominated(i: int) -> bool:
        a = keyed[i]
        return any(
            j != i and all(b <= c for b, c in zip(keyed[j], a, strict=True)) and keyed[j] != a
            for j in range(len(keyed))
        )

    return [not dominated(i) for i in range(len(keyed))]


def pareto_chart(
    points: Sequence[tuple[int, float, float]],
    names: tuple[str, str],
    directions: tuple[str, str],
    height: float = 300.0,
) -> str:
    """Two objectives of each complete trial; the Pareto front in red, joined up."""
    if not points:
        return '<p class="muted">No trial has completed yet.</p>'
    front = pareto_front([(a, b) for _, a, b in points], directions)
    x = _Scale.fit([a for _, a, _ in points], LEFT, W - RIGHT)
    y = _Scale.fit([b for _, _, b in points], height - BOTTOM, TOP)
    out = _open(f"{names[0]} against {names[1]}: the Pareto front in red", height)
    _axes(out, x, y, height, f"{names[0]} ({directions[0]})", f"{names[1]} ({directions[1]})")
    for (n, a, b), on in zip(points, front, strict=True):
        colour, r = (FRONT, 3.4) if on else (DOT, 2.6)
        out.append(
            f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="{r}" fill="{colour}" '
            f'fill-opacity="{0.9 if on else 0.45}"><title>trial {n}: {a:.6g}, {b:.6g}'
            "</title></circle>"
        )
    line = sorted((a, b) for (_, a, b), on in zip(points, front, strict=True) if on)
    out.append(
        f'<polyline class="front" points="{" ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in line)}" '
        f'fill="none" stroke="{FRONT}" stroke-width="1.5"/>'
    )
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True)
class Axis:
    """One parameter of the search space as a vertical axis."""

    name: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def where(self, value: Any) -> float | None:
        """0 (bottom) to 1 (top), or None when the value does not belong on this axis."""
        if self.choices is not None:
            if value not in self.choices:
                return None
            k = len(self.choices)
            return 0.5 if k == 1 else self.choices.index(value) / (k - 1)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        lo, hi, v = self.low, self.high, float(value)
        if self.log and lo > 0 and v > 0:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(v)
        return 0.5 if hi - lo < 1e-12 else min(max((v - lo) / (hi - lo), 0.0), 1.0)

    def labels(self) -> list[tuple[float, str]]:
        if self.choices is not None:
            return [(self.where(c) or 0.0, str(c)) for c in self.choices[:12]]
        return [(0.0, _label(self.low)), (1.0, _label(self.high))]


def _mix(t: float) -> str:
    """Colour of a line by its rank: 0 (best) deep purple to 1 (worst) pale blue-grey."""
    a, b = (124, 58, 237), (203, 213, 225)
    return "#" + "".join(f"{round(p + (q - p) * t):02x}" for p, q in zip(a, b, strict=True))


def parallel_chart(
    axes: Sequence[Axis],
    lines: Sequence[tuple[Mapping[str, Any], float]],
    direction: str,
    height: float = 300.0,
) -> str:
    """Parallel coordinates: one line per trial across the parameters' axes, darker the
    better its objective; a conditional parameter a trial lacks breaks its line."""
    if not lines or not axes:
        return '<p class="muted">No trial has completed yet.</p>'
    title = f"parameters of {len(lines):,} complete trials (darker: better)"
    out = _open(title, height)
    top, bottom = TOP + 14, height - BOTTOM
    step = (W - LEFT - RIGHT) / max(len(axes) - 1, 1)
    xs = [LEFT + step * i if len(axes) > 1 else W / 2 for i in range(len(axes))]
    order = sorted(range(len(lines)), key=lambda i: lines[i][1], reverse=direction == "minimize")
    rank = {i: r for r, i in enumerate(reversed(order))}  # 0: the best
    scale = max(len(lines) - 1, 1)
    for i in order:  # worst first, so that the best are drawn on top
        params, value = lines[i]
        runs: list[list[str]] = [[]]
        for ax, x in zip(axes, xs, strict=True):
            f = ax.where(params.get(ax.name))
            if f is None:
                runs.append([])
                continue
            runs[-1].append(f"{x:.1f},{bottom - (bottom - top) * f:.1f}")
        colour = _mix(rank[i] / scale)
        for run in runs:
            if len(run) > 1:
                out.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                    f'stroke-width="1.2" stroke-opacity="0.8"><title>{value:.6g}</title></polyline>'
                )
    for ax, x in zip(axes, xs, strict=True):
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.0f}" y2="{bottom:.0f}" stroke="#475569"/>'
            f'<text x="{x:.1f}" y="{top - 6:.0f}" font-size="11" text-anchor="middle" '
            f'fill="#334155">{escape(ax.name)}{" (log)" if ax.log else ""}</text>'
        )
        for f, text in ax.labels():
            out.append(
                f'<text x="{x + 4:.1f}" y="{bottom - (bottom - top) * f + 4:.1f}" '
                f'font-size="9" fill="{MUTED}">{escape(text[:14])}</text>'
            )
    out.append("</svg>")
    return "".join(out)
