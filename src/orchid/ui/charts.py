"""Small server-side SVG charts: a timeline of works and a stacked area chart.

Each takes already aggregated data (a row per work, a downsampled series), so their size
never depends on the number of jobs or files.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from orchid.graph.render import colour

W, ROW, LEFT, TOP = 900.0, 20.0, 150.0, 22.0


@dataclass(frozen=True)
class Span:
    label: str
    status: str
    start: float | None
    end: float | None


@dataclass(frozen=True)
class Mark:
    at: float
    label: str


def _ticks(t0: float, t1: float, n: int = 6) -> list[float]:
    span = max(t1 - t0, 1e-9)
    steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400]
    step = next(
        (s for s in steps if span / s <= n), steps[-1] * max(1, round(span / (n * steps[-1])))
    )
    first = (t0 // step + 1) * step
    out, t = [], first
    while t < t1:
        out.append(t)
        t += step
    return out


def _tick_label(t: float, span: float) -> str:
    fmt = "%H:%M:%S" if span < 6 * 3600 else "%m-%d %H:%M"
    return time.strftime(fmt, time.gmtime(t))


def timeline(spans: Sequence[Span], marks: Sequence[Mark], now: float) -> str:
    """When each work ran (a bar from start to end, coloured by status), with the
    workflow's commands and status changes as marks."""
    starts = [s.start for s in spans if s.start is not None] + [m.at for m in marks]
    if not starts:
        return '<p class="muted">Nothing has started yet.</p>'
    t0 = min(starts)
    t1 = max(
        [now if s.end is None else s.end for s in spans if s.start is not None]
        + [m.at for m in marks]
        + [t0 + 1]
    )
    span = t1 - t0
    height = TOP + ROW * len(spans) + 30

    def x(t: float) -> float:
        return LEFT + (W - LEFT - 10) * (t - t0) / span

    out = [
        f'<svg class="chart timeline" viewBox="0 0 {W:.0f} {height:.0f}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="timeline of works">'
    ]
    for t in _ticks(t0, t1):
        out.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP - 6:.0f}" y2="{height - 24:.0f}" '
            'stroke="#e2e8f0"/>'
            f'<text x="{x(t):.1f}" y="{height - 10:.0f}" font-size="10" text-anchor="middle" '
            f'fill="#64748b">{_tick_label(t, span)}</text>'
        )
    for i, s in enumerate(spans):
        y = TOP + i * ROW
        out.append(
            f'<text x="{LEFT - 8:.0f}" y="{y + 13:.0f}" font-size="11" text-anchor="end" '
            f'fill="#334155">{escape(s.label[:24])}</text>'
        )
        if s.start is None:
            continue
        end = s.end if s.end is not None else now
        x0, x1 = x(s.start), max(x(end), x(s.start) + 2)
        out.append(
            f'<rect x="{x0:.1f}" y="{y + 3:.0f}" width="{x1 - x0:.1f}" height="{ROW - 6:.0f}" rx="3" '
            f'fill="{colour(s.status)[0]}"><title>{escape(s.label)}: {s.status}, '
            f"{end - s.start:.1f} s</title></rect>"
        )
    for m in marks:
        out.append(
            f'<line x1="{x(m.at):.1f}" x2="{x(m.at):.1f}" y1="{TOP - 10:.0f}" y2="{height - 24:.0f}" '
            f'stroke="#a855f7" stroke-dasharray="3 3"><title>{escape(m.label)}</title></line>'
            f'<text x="{x(m.at) + 3:.1f}" y="{TOP - 10:.0f}" font-size="10" fill="#7e22ce">'
            f"{escape(m.label[:28])}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def area(
    times: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    unit: str = "",
    stacked: bool = True,
    height: float = 220.0,
) -> str:
    """Lines (or stacked areas) over time, one per series, coloured by status name."""
    if not times:
        return '<p class="muted">No data yet.</p>'
    names = [n for n in series if any(series[n])]
    t0, t1 = times[0], times[-1] if len(times) > 1 else times[0] + 1
    base = [0.0] * len(times)
    tops: dict[str, list[float]] = {}
    for n in names:
        vals = [float(v) for v in series[n]]
        tops[n] = [b + v for b, v in zip(base, vals, strict=True)] if stacked else vals
        if stacked:
            base = tops[n]
    peak = max([max(v) for v in tops.values()] + [1.0])
    left, right, top, bottom = 64.0, 12.0, 30.0, 26.0
    pw, ph = W - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + pw * (t - t0) / max(t1 - t0, 1e-9)

    def y(v: float) -> float:
        return top + ph * (1 - v / peak)

    out = [
        f'<svg class="chart area" viewBox="0 0 {W:.0f} {height:.0f}" width="100%" role="img" '
        f'aria-label="{escape(title)}"><text x="{left:.0f}" y="14" font-size="12" '
        f'font-weight="600" fill="#0f172a">{escape(title)}</text>'
    ]
    for frac in (0.0, 0.5, 1.0):
        v = peak * frac
        out.append(
            f'<line x1="{left:.0f}" x2="{W - right:.0f}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e2e8f0"/>'
            f'<text x="{left - 6:.0f}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end" '
            f'fill="#64748b">{human(v)}{unit}</text>'
        )
    for t in _ticks(t0, t1):
        out.append(
            f'<text x="{x(t):.1f}" y="{height - 8:.0f}" font-size="10" text-anchor="middle" '
            f'fill="#64748b">{_tick_label(t, t1 - t0)}</text>'
        )
    below = [0.0] * len(times)
    for n in names:
        pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(times, tops[n], strict=True))
        solid = colour(n)[0]
        if stacked:
            back = " ".join(
                f"{x(t):.1f},{y(v):.1f}" for t, v in reversed(list(zip(times, below, strict=True)))
            )
            out.append(f'<polygon points="{pts} {back}" fill="{solid}" fill-opacity="0.35"/>')
            below = tops[n]
        out.append(f'<polyline points="{pts}" fill="none" stroke="{solid}" stroke-width="1.6"/>')
    lx = W - right - 84 * len(names)
    for i, n in enumerate(names):  # the legend, in a row at the top right
        out.append(
            f'<rect x="{lx + 84 * i:.0f}" y="6" width="10" height="10" rx="2" '
            f'fill="{colour(n)[0]}"/><text x="{lx + 84 * i + 14:.0f}" y="15" font-size="11" '
            f'fill="#334155">{escape(n)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def human(v: float) -> str:
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.1f}{unit}"
    return f"{v:.0f}"
