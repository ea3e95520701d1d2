"""A loop inside a loop: drawn as a frame (cluster, subgraph) inside its outer loop's."""

from __future__ import annotations

import re

from orchid.engine.templates import compile_template
from orchid.graph import TaskGraph, build
from orchid.graph.render import place, to_dot, to_mermaid, to_svg

NESTED = {
    "name": "wf",
    "works": [
        {"name": "start", "noop": True},
        {"name": "prep", "noop": True},
        {"name": "step", "noop": True},
        {"name": "check", "noop": True, "after": ["step"]},
        {"name": "post", "noop": True, "after": ["inner"]},
        {"name": "report", "noop": True, "after": ["outer"]},
    ],
    "loops": [
        {
            "name": "outer",
            "works": ["prep", "inner", "post"],
            "after": ["start"],
            "until": "loop.iteration >= 2",
            "max_iterations": 3,
        },
        {
            "name": "inner",
            "works": ["step", "check"],
            "after": ["prep"],
            "until": "loop.iteration >= 1",
            "max_iterations": 4,
        },
    ],
}


def graph() -> TaskGraph:
    c = compile_template(NESTED)
    states = {"outer": {"iteration": 1, "status": "running"}, "inner": {"iteration": 0}}
    return build(7, "running", c.template, c.analysis, [], (), states)


def test_an_inner_loop_is_a_box_inside_its_outer_loop() -> None:
    g = graph()
    outer, inner = g.loops
    assert (outer.name, outer.works, outer.inner) == ("outer", ("prep", "post"), ("inner",))
    assert (inner.name, inner.works, inner.inner) == ("inner", ("step", "check"), ())
    assert g.node("step").loop == "inner" and g.node("prep").loop == "outer"
    # `after` naming a loop links its first or last works, through the loops inside it
    assert {(e.source, e.target) for e in g.edges} == {
        ("start", "prep"),
        ("prep", "step"),
        ("step", "check"),
        ("check", "post"),
        ("post", "report"),
    }
    assert TaskGraph.from_json(g.to_json()) == g


def test_the_inner_frame_lies_inside_the_outer_frame() -> None:
    lay = place(graph())
    outer, inner = lay.frames  # outer first: drawn below
    assert (outer.name, inner.name) == ("outer", "inner")
    assert outer.y > 0 and outer.y + outer.h < lay.height  # the picture holds both frames
    assert outer.x < inner.x and inner.x + inner.w < outer.x + outer.w
    assert outer.y < inner.y and inner.y + inner.h < outer.y + outer.h
    for name in ("step", "check"):
        b = lay.boxes[name]
        assert inner.x < b.x and b.x + b.w < inner.x + inner.w
    svg = to_svg(graph())
    assert svg.index('data-loop="outer"') < svg.index('data-loop="inner"')


def test_dot_and_mermaid_nest_the_inner_cluster() -> None:
    dot = to_dot(graph())
    outer = dot.index("subgraph cluster_0 {")
    inner = dot.index("    subgraph cluster_1 {")
    assert outer < dot.index('"prep" [') < inner < dot.index('"step" [')
    assert dot.count("subgraph") == 2
    # the inner cluster closes before the outer one
    body = dot[inner:]
    assert re.search(r"\n    \}\n  \}\n", body)
    mermaid = to_mermaid(graph())
    lines = mermaid.splitlines()
    assert lines.index('    subgraph loop1["loop inner: iteration 0 (0..3)"]') > lines.index(
        '  subgraph loop0["loop outer: iteration 1 (0..2)"]'
    )
    assert lines.count("    end") == 1 and lines.count("  end") == 1
