"""The pages' pure helpers: which actions to offer, bars, times, and the charts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from orchid.ui import charts, views


@pytest.mark.parametrize(
    ("status", "finishing", "failed", "offered"),
    [
        ("pending", False, 0, ["abort"]),
        ("running", False, 0, ["suspend", "finish", "abort"]),
        ("running", True, 3, ["retry", "suspend", "abort"]),
        ("suspended", False, 0, ["resume", "abort"]),
        ("failed", False, 2, ["retry"]),
        ("partial", False, 2, ["retry"]),
        ("succeeded", False, 0, []),
        ("cancelled", False, 0, []),
    ],
)
def test_actions_follow_what_the_clerk_accepts(
    status: str, finishing: bool, failed: int, offered: list[str]
) -> None:
    assert views.actions(status, finishing, failed) == offered


def test_segments_and_percentages() -> None:
    segs = views.segments({"succeeded": 3, "failed": 1, "waiting": 4})
    assert [(s["status"], s["n"], s["pct"]) for s in segs] == [
        ("succeeded", 3, 37.5),
        ("failed", 1, 12.5),
    ]
    assert views.segments({}) == [] and views.done_pct({}) == 0.0
    assert views.done_pct({"succeeded": 1, "skipped": 1, "running": 2}) == 50.0


def test_times_sizes_and_text() -> None:
    assert [views.age(s) for s in (-1, 5, 90, 7200, 3 * 86400)] == ["0s", "5s", "2m", "2h", "3d"]
    assert views.duration(None, None) == ""
    assert views.duration(10.0, 11.234) == "1.23s" and views.duration(0, 75) == "75s"
    assert views.duration(0, 3725) == "62m05s" and views.duration(0, 8000) == "2h13m"
    assert views.duration(0, None, now=30) == "30s"
    assert views.clock(0) == "1970-01-01 00:00:00Z" and views.clock(None) == ""
    assert views.size(999) == "999 B" and views.size(2_500_000_000) == "2.5 GB"
    assert views.compact({"b": 1, "a": "x" * 200}, 20).endswith("…")
    assert "more characters" in views.pretty(list(range(10_000)), 100)
    assert views.page_numbers(50, 50, 120) == {
        "first": 51,
        "last": 100,
        "total": 120,
        "prev": 0,
        "next": 100,
    }
    assert views.page_numbers(0, 50, 0)["first"] == 0


@pytest.mark.parametrize(
    ("kind", "data", "text"),
    [
        ("work.running", {"work_id": 1, "jobs": 1200}, "work sim running with 1,200 jobs"),
        ("work.succeeded", {"work_id": 1}, "work sim succeeded"),
        ("workflow.submitted", {"jobs": 3}, "submitted with 3 listed jobs"),
        (
            "workflow.cancelled",
            {"message": "abort by the user"},
            "workflow cancelled: abort by the user",
        ),
        ("command.abort", {}, "abort applied"),
        (
            "command.rejected",
            {"command": "resume", "message": "not suspended"},
            "command resume rejected: not suspended",
        ),
        (
            "loop",
            {"loop": "tune", "status": "running", "iteration": 2},
            "loop tune running (iteration 2)",  # as `loop.iteration` counts (issue 16)
        ),
        ("message.result", {}, "message.result"),
    ],
)
def test_timeline_lines(kind: str, data: dict[str, object], text: str) -> None:
    assert views.event_text(kind, data, {1: "sim"}) == text


def test_charts_are_svg_and_say_when_there_is_nothing() -> None:
    svg = charts.timeline(
        [
            charts.Span("a", "succeeded", 100.0, 160.0),
            charts.Span("b", "running", 150.0, None),
            charts.Span("c", "waiting", None, None),
        ],
        [charts.Mark(120.0, "suspend applied")],
        now=200.0,
    )
    root = ET.fromstring(svg)
    assert len([r for r in root.iter("rect")]) == 2 and "suspend applied" in svg
    assert "Nothing has started" in charts.timeline(
        [charts.Span("a", "waiting", None, None)], [], 0
    )
    area = charts.area(
        [0.0, 60.0, 120.0], {"processed": [0, 5, 9], "deleted": [0, 0, 0]}, title="t", unit="B"
    )
    root = ET.fromstring(area)
    assert len(list(root.iter("polygon"))) == 1  # an all-zero series is left out
    assert "9B" in area and "No data" in charts.area([], {}, title="t")
