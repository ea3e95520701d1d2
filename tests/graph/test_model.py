"""The task graph of a template: nodes per work, edges from `after`, loops and job links."""

from __future__ import annotations

from typing import Any

import pytest

from orchid.core.model import Work
from orchid.core.states import JobStatus, WorkStatus
from orchid.engine.templates import compile_template
from orchid.graph import Edge, TaskGraph, build


def graph_of(raw: dict[str, Any], works: list[Work] = (), links=(), loops=None) -> TaskGraph:  # type: ignore[assignment]
    c = compile_template(raw)
    return build(7, "running", c.template, c.analysis, works, links, loops)


def edges(g: TaskGraph) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.kind) for e in g.edges}


def test_after_edges_and_notes() -> None:
    g = graph_of(
        {
            "name": "wf",
            "works": [
                {"name": "a", "noop": True},
                {
                    "name": "b",
                    "noop": True,
                    "after": ["a"],
                    "when": "works.a.status == 'succeeded'",
                },
                {"name": "c", "noop": True, "after": ["a", "b"], "trigger": "one_failed"},
            ],
        }
    )
    assert [n.name for n in g.nodes] == ["a", "b", "c"]
    assert edges(g) == {("a", "b", "after"), ("a", "c", "after"), ("b", "c", "after")}
    assert g.node("b").notes == ("if works.a.status == 'succeeded'",)
    assert g.node("c").notes == ("one failed",)
    assert all(n.status == "waiting" and n.total == 0 for n in g.nodes)


def test_a_work_after_a_loop_hangs_from_the_loops_last_works() -> None:
    g = graph_of(
        {
            "name": "wf",
            "works": [
                {"name": "start", "noop": True},
                {"name": "fit", "noop": True},
                {"name": "score", "noop": True, "after": ["fit"]},
                {"name": "report", "noop": True, "after": ["tune"]},
            ],
            "loops": [
                {
                    "name": "tune",
                    "works": ["fit", "score"],
                    "until": "loop.iteration >= 2",
                    "max_iterations": 5,
                    "after": ["start"],
                }
            ],
        },
        loops={"tune": {"iteration": 2, "status": "running"}},
    )
    assert edges(g) == {
        ("fit", "score", "after"),
        ("score", "report", "after"),
        ("start", "fit", "after"),
    }
    (lp,) = g.loops
    assert (lp.name, lp.works, lp.iteration, lp.max_iterations, lp.status) == (
        "tune",
        ("fit", "score"),
        2,
        5,
        "running",
    )
    assert g.node("fit").loop == "tune" and g.node("start").loop is None


def test_job_level_links_become_dashed_edges_and_unknown_names_are_dropped() -> None:
    raw = {"name": "wf", "works": [{"name": n, "noop": True} for n in ("isr", "calib", "coadd")]}
    g = graph_of(
        raw, links=[("isr", "calib"), ("calib", "coadd"), ("calib", "calib"), ("x", "isr")]
    )
    assert edges(g) == {("isr", "calib", "jobs"), ("calib", "coadd", "jobs")}


def test_nodes_show_the_latest_iteration_with_its_counts() -> None:
    raw = {
        "name": "wf",
        "works": [{"name": "step", "noop": True}],
        "loops": [{"name": "l", "works": ["step"], "until": "false", "max_iterations": 9}],
    }
    rows = [
        Work(1, 7, "step", 0, WorkStatus.SUCCEEDED, counts={JobStatus.SUCCEEDED: 3}),
        Work(
            2,
            7,
            "step",
            1,
            WorkStatus.RUNNING,
            counts={JobStatus.RUNNING: 2, JobStatus.SUCCEEDED: 1},
        ),
    ]
    node = graph_of(raw, rows).node("step")
    assert (node.status, node.iteration, node.work_id) == ("running", 1, 2)
    assert node.counts == {"running": 2, "succeeded": 1} and node.total == 3 and node.done == 1


def test_json_round_trip() -> None:
    g = graph_of(
        {
            "name": "wf",
            "works": [{"name": "a", "noop": True}, {"name": "b", "noop": True, "after": ["a"]}],
        },
        [Work(5, 7, "a", 0, WorkStatus.FAILED, counts={JobStatus.FAILED: 1})],
    )
    again = TaskGraph.from_json(g.to_json())
    assert again == g
    assert again.edges == (Edge("a", "b", "after"),)


@pytest.mark.parametrize("bad", [{}, {"workflow_id": 1}])
def test_from_json_needs_the_fields(bad: dict[str, Any]) -> None:
    with pytest.raises(KeyError):
        TaskGraph.from_json(bad)
