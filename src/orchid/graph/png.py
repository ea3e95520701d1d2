"""The graph as a PNG, drawn with Pillow from the same layout as the SVG (no Graphviz)."""

from __future__ import annotations

import io
import math
from itertools import pairwise

from PIL import Image, ImageDraw, ImageFont

from orchid.graph.layout import NODE_H, NODE_W
from orchid.graph.model import TaskGraph
from orchid.graph.render import bar_segments, colour, counts_text, place

SCALE = 2.0  # pixels per layout unit: sharp on high-density screens and in slides


def _font(size: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size * SCALE)


def _bezier(points: list[tuple[float, float]], steps: int = 16) -> list[tuple[float, float]]:
    out = [points[0]]
    for (x0, y0), (x1, y1) in pairwise(points):
        mid = (x1 - x0) / 2
        c1, c2 = (x0 + mid, y0), (x1 - mid, y1)
        for i in range(1, steps + 1):
            t = i / steps
            u = 1 - t
            out.append(
                (
                    u**3 * x0 + 3 * u * u * t * c1[0] + 3 * u * t * t * c2[0] + t**3 * x1,
                    u**3 * y0 + 3 * u * u * t * c1[1] + 3 * u * t * t * c2[1] + t**3 * y1,
                )
            )
    return out


def to_png(graph: TaskGraph) -> bytes:
    lay = place(graph)
    s = SCALE
    img = Image.new(
        "RGB", (math.ceil(max(lay.width, 240) * s), math.ceil(max(lay.height, 120) * s)), "white"
    )
    d = ImageDraw.Draw(img)
    small, normal, bold = _font(10), _font(12), _font(14)
    loops = {lp.name: lp for lp in graph.loops}
    for f in lay.frames:
        lp = loops[f.name]
        d.rounded_rectangle(
            [f.x * s, f.y * s, (f.x + f.w) * s, (f.y + f.h) * s],
            10 * s,
            fill="#faf5ff",
            outline="#a855f7",
            width=int(s),
        )
        label = f"loop {lp.name} · {lp.iteration_label} · {lp.status}"
        d.text(((f.x + 10) * s, (f.y + 4) * s), label, fill="#7e22ce", font=small)
    for r in lay.routes:
        pts = [(x * s, y * s) for x, y in _bezier(list(r.points))]
        d.line(pts, fill="#64748b", width=max(1, int(1.4 * s)))
        (x0, y0), (x1, y1) = pts[-2], pts[-1]
        angle = math.atan2(y1 - y0, x1 - x0)
        size = 7 * s
        head = [
            (x1, y1),
            (x1 - size * math.cos(angle - 0.45), y1 - size * math.sin(angle - 0.45)),
            (x1 - size * math.cos(angle + 0.45), y1 - size * math.sin(angle + 0.45)),
        ]
        d.polygon(head, fill="#64748b")
    for n in graph.nodes:
        b = lay.boxes[n.name]
        solid, tint = colour(n.status)
        x, y = b.x * s, b.y * s
        d.rounded_rectangle(
            [x, y, x + NODE_W * s, y + NODE_H * s],
            8 * s,
            fill=tint,
            outline=solid,
            width=int(1.5 * s),
        )
        d.rounded_rectangle([x, y, x + 6 * s, y + NODE_H * s], 3 * s, fill=solid)
        name = n.name if len(n.name) <= 22 else n.name[:21] + "…"
        d.text((x + 14 * s, y + 6 * s), name, fill="#0f172a", font=bold)
        d.text((x + 14 * s, y + 26 * s), counts_text(n), fill="#334155", font=normal)
        note = " · ".join(n.notes)
        if note:
            d.text((x + 14 * s, y + (NODE_H - 25) * s), note[:30], fill="#64748b", font=small)
        bar_w = NODE_W - 28
        bx, by = x + 14 * s, y + (NODE_H - 9) * s
        d.rectangle([bx, by, bx + bar_w * s, by + 4 * s], fill="#e2e8f0")
        for status, off, sw in bar_segments(n.counts, bar_w):
            d.rectangle([bx + off * s, by, bx + (off + sw) * s, by + 4 * s], fill=colour(status)[0])
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
