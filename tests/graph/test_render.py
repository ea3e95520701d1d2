"""Every format draws the same graph: valid SVG, a PNG, DOT and Mermaid that name each work."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

from PIL import Image

from orchid.graph import Edge, LoopBox, Node, TaskGraph
from orchid.graph.png import to_png
from orchid.graph.render import PALETTE, bar_segments, to_dot, to_mermaid, to_svg

SVG = "{http://www.w3.org/2000/svg}"
GRAPH = TaskGraph(
    3,
    'tricky "name"',
    "running",
    (
        Node("fit", "succeeded", {"succeeded": 10}, 2, 11, "tune"),
        Node(
            "score<&>",
            "running",
            {"succeeded": 3, "running": 1, "failed": 1},
            2,
            12,
            "tune",
            ("if x > 1",),
        ),
        Node("report", "waiting"),
    ),
    (Edge("fit", "score<&>"), Edge("score<&>", "report", "jobs")),
    (LoopBox("tune", ("fit", "score<&>"), 2, 5, "running", "loop.iteration > 3"),),
)


def test_svg_is_well_formed_and_marks_each_work() -> None:
    root = ET.fromstring(to_svg(GRAPH, link="/ui/x?work={work_id}"))
    nodes = {g.get("data-work"): g for g in root.iter(f"{SVG}g") if g.get("data-work")}
    assert set(nodes) == {"fit", "score<&>", "report"}
    assert nodes["score<&>"].get("data-status") == "running"
    box = next(r for r in nodes["fit"].iter(f"{SVG}rect") if r.get("class") == "box")
    assert box.get("fill") == PALETTE["succeeded"][1]
    links = [a.get("href") for a in root.iter(f"{SVG}a")]
    assert links == ["/ui/x?work=11", "/ui/x?work=12"]  # report has no work row yet: no link
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "running · 3/5" in texts and "iteration 2 (0..4)" in texts  # as loop.iteration
    assert len([p for p in root.iter(f"{SVG}path") if "edge" in (p.get("class") or "")]) == 2


def test_png_is_an_image_of_the_layout() -> None:
    img = Image.open(io.BytesIO(to_png(GRAPH)))
    assert img.format == "PNG" and img.width > 400 and img.height > 100
    colours = {
        img.getpixel((x, y)) for x in range(0, img.width, 7) for y in range(0, img.height, 7)
    }
    assert (220, 252, 231) in colours  # the succeeded tint (#dcfce7) fills a box


def test_dot_names_every_node_and_edge_and_quotes_safely() -> None:
    dot = to_dot(GRAPH)
    assert dot.startswith('digraph "tricky \\"name\\"" {')
    assert '"fit" -> "score<&>";' in dot and '"score<&>" -> "report" [style=dashed];' in dot
    assert "subgraph cluster_0" in dot and "iteration 2 (0..4)" in dot


def test_mermaid_escapes_labels_and_colours_by_status() -> None:
    text = to_mermaid(GRAPH)
    assert text.splitlines()[0] == "flowchart LR"
    assert "score#lt;&#gt;" in text and "w1 -.-> w2" in text and "w0 --> w1" in text
    assert "classDef running fill:#dbeafe" in text and 'subgraph loop0["loop tune' in text


def test_bar_segments_add_up_to_the_width() -> None:
    parts = bar_segments({"succeeded": 3, "failed": 1, "waiting": 4}, 100.0)
    assert [p[0] for p in parts] == ["succeeded", "failed"]
    assert abs(sum(p[2] for p in parts) - 50.0) < 1e-9  # waiting jobs are the empty rest
    assert bar_segments({}, 100.0) == []
