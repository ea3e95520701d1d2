"""A nested workflow is drawn as a frame holding its works (and its loops, frames in it),
its own work (the one that ends with its outcome) last inside."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from orchid.core.model import Work
from orchid.core.states import WorkStatus
from orchid.engine.templates import compile_template
from orchid.graph import NestBox, TaskGraph, build
from orchid.graph.render import to_dot, to_mermaid, to_svg

SVG = "{http://www.w3.org/2000/svg}"
RAW: dict[str, Any] = {
    "name": "wf",
    "works": [
        {"name": "prep", "noop": True},
        {
            "name": "sub",
            "after": ["prep"],
            "workflow": {
                "works": [
                    {"name": "a", "noop": True},
                    {"name": "b", "noop": True, "after": ["a"]},
                    {"name": "step", "noop": True},
                ],
                "loops": [
                    {"name": "again", "works": ["step"], "until": "true", "max_iterations": 3}
                ],
            },
        },
        {"name": "post", "noop": True, "after": ["sub"]},
    ],
}


def graph() -> TaskGraph:
    c = compile_template(RAW)
    rows = [Work(4, 7, "sub", 0, WorkStatus.SUCCEEDED)]
    return build(7, "running", c.template, c.analysis, rows)


def test_the_nested_workflow_is_a_box_of_its_works() -> None:
    g = graph()
    assert [n.name for n in g.nodes] == ["prep", "sub.a", "sub.b", "sub.step", "sub", "post"]
    assert g.nested == (NestBox("sub", ("sub.a", "sub.b", "sub.step", "sub"), "succeeded"),)
    assert [(lp.name, lp.works) for lp in g.loops] == [("sub.again", ("sub.step",))]
    edges = {(e.source, e.target) for e in g.edges}
    assert {("prep", "sub.a"), ("sub.a", "sub.b"), ("prep", "sub.step")} <= edges
    assert {("sub.b", "sub"), ("sub.step", "sub"), ("sub", "post")} <= edges
    assert TaskGraph.from_json(g.to_json()) == g


def test_dot_and_mermaid_nest_the_loop_inside_the_nested_workflows_frame() -> None:
    dot = to_dot(graph())
    outer = dot.index("subgraph cluster_nested_0 {")
    inner = dot.index("subgraph cluster_0 {")
    assert outer < inner < dot.index('"sub.step" [label')
    assert outer < dot.index('"sub" [label')  # its own works first, then the frames inside
    assert 'label="workflow sub: succeeded";' in dot
    assert dot.index('"sub" [label') < dot.index('"prep" [label')  # prep is outside
    mermaid = to_mermaid(graph())
    assert mermaid.index('subgraph nested0["workflow sub: succeeded"]') < mermaid.index(
        "subgraph loop0"
    )


def test_svg_frames_the_nested_workflow() -> None:
    root = ET.fromstring(to_svg(graph()))
    frames = [g.get("data-nested") for g in root.iter(f"{SVG}g") if g.get("data-nested")]
    assert frames == ["sub"]
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "workflow sub · succeeded" in texts


def test_a_nested_workflows_loop_inside_an_outer_loop_is_framed_inside_both() -> None:
    raw = {
        "name": "outer",
        "works": [
            {"name": "prep", "noop": True},
            {
                "name": "sub",
                "after": ["prep"],
                "workflow": {
                    "works": [
                        {"name": "step", "noop": True},
                        {"name": "post", "noop": True, "after": ["again"]},
                    ],
                    "loops": [
                        {"name": "again", "works": ["step"], "until": "true", "max_iterations": 2}
                    ],
                },
            },
        ],
        "loops": [
            {"name": "rounds", "works": ["prep", "sub"], "until": "true", "max_iterations": 2}
        ],
    }
    c = compile_template(raw)
    g = build(1, "running", c.template, c.analysis, [])
    assert {lp.name: lp.inner for lp in g.loops} == {"sub.again": (), "rounds": ("sub.again",)}
    dot = to_dot(g)
    # rounds > workflow sub > sub.again, each drawn inside the one before
    lines = dot.splitlines()
    depth = {
        label: len(lines[i - 1]) - len(lines[i - 1].lstrip())
        for i, line in enumerate(lines)
        for label in ("loop rounds", "workflow sub", "loop sub.again")
        if f'label="{label}' in line
    }
    assert depth["loop rounds"] < depth["workflow sub"] < depth["loop sub.again"]
    assert len(dot.split('"sub.step" [')[0].split("subgraph")) == 4  # inside all three
