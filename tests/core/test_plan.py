"""The planner: hand-built run-state snapshots in, decisions out.

Each test builds a template, a ``RunState`` of ``WorkState`` rows as the clerk would
load it, and checks what :meth:`Planner.decide` says to start, stop, create and end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from orchid.core.plan import (
    Decision,
    LoopState,
    Planner,
    RunState,
    Start,
    Stop,
    WorkState,
    initial_works,
    work_view,
)
from orchid.core.states import (
    TERMINAL_WORK,
    JobStatus,
    WorkflowStatus,
    WorkStatus,
    work_transition,
    workflow_transition,
)
from orchid.core.template import parse_template
from orchid.core.validate import analyse

K, J, WF = WorkStatus, JobStatus, WorkflowStatus

# --- helpers -----------------------------------------------------------------------------


def W(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "noop": True, **fields}


def planner(works: list[dict[str, Any]], **top: Any) -> Planner:
    t = parse_template({"name": "wf", "works": works, **top})
    return Planner(t, analyse(t))


class Run:
    """A run-state builder: one WorkState per (name, iteration), ids in creation order."""

    def __init__(self, p: Planner, params: Mapping[str, Any] | None = None) -> None:
        self.p = p
        self.params = dict(params or {})
        self.status = WF.RUNNING
        self.loops: dict[str, LoopState] = {}
        self.rows: dict[tuple[str, int], WorkState] = {}
        for name, it in initial_works(p.t):
            self.add(name, it)

    def add(self, name: str, iteration: int) -> None:
        self.rows[(name, iteration)] = WorkState(len(self.rows) + 1, name, iteration, K.WAITING)

    def set(
        self,
        name: str,
        status: WorkStatus,
        results: Sequence[Any] | None = None,
        counts: Mapping[JobStatus, int] | None = None,
        iteration: int | None = None,
        message: str = "",
    ) -> None:
        if iteration is None:
            iteration = max(it for n, it in self.rows if n == name)
        old = self.rows[(name, iteration)]
        if counts is None:
            counts = _counts_for(status, results)
        self.rows[(name, iteration)] = WorkState(
            old.id, name, iteration, status, counts, results, message
        )

    def id(self, name: str, iteration: int = 0) -> int:
        return self.rows[(name, iteration)].id

    def state(self) -> RunState:
        return RunState(
            7, "wf", self.status, self.params, dict(self.loops), list(self.rows.values())
        )

    def decide(self) -> Decision:
        return self.p.decide(self.state())

    def apply(self, d: Decision) -> None:
        """What the clerk writes: the decision's changes, with starts marked ready."""
        self.loops.update(d.loops)
        for name, it in d.create:
            self.add(name, it)
        for start in d.start:
            self._by_id(start.work_id, K.READY)
        for stop in d.stop:
            self._by_id(stop.work_id, stop.status, stop.message)
        if d.workflow_status is not None:
            self.status = workflow_transition(self.status, d.workflow_status)

    def settle(self) -> Decision:
        """Decide and apply until nothing changes; return the last non-empty decision."""
        last = Decision()
        for _ in range(50):
            d = self.decide()
            if not d:
                return last
            self.apply(d)
            last = d
        raise AssertionError("the planner never settles")

    def _by_id(self, work_id: int, status: WorkStatus, message: str = "") -> None:
        for key, w in self.rows.items():
            if w.id == work_id:
                self.rows[key] = WorkState(
                    w.id, w.name, w.iteration, status, w.counts, None, message
                )
                return
        raise KeyError(work_id)


def _counts_for(status: WorkStatus, results: Sequence[Any] | None) -> dict[JobStatus, int]:
    n = max(len(results or []), 1)
    return {
        K.SUCCEEDED: {J.SUCCEEDED: n},
        K.FAILED: {J.FAILED: 1},
        K.PARTIAL: {J.SUCCEEDED: 1, J.FAILED: 1},
        K.CANCELLED: {J.CANCELLED: 1},
    }.get(status, {})


def starts(d: Decision) -> dict[int, Mapping[str, Any]]:
    return {s.work_id: s.inputs for s in d.start}


def stops(d: Decision) -> dict[int, Stop]:
    return {s.work_id: s for s in d.stop}


# --- the basics --------------------------------------------------------------------------


def test_initial_works_are_every_work_at_iteration_zero() -> None:
    p = planner([W("a"), W("b", after=["a"])])
    assert initial_works(p.t) == [("a", 0), ("b", 0)]


def test_pending_workflow_starts_running_and_its_roots_start() -> None:
    p = planner([W("a"), W("b", after=["a"])])
    r = Run(p)
    r.status = WF.PENDING
    d = r.decide()
    assert d.workflow_status is WF.RUNNING
    assert d.start == [Start(r.id("a"), {"parameters": {}, "map": None})]
    assert d.stop == [] and d.create == [] and d.loops == {}


@pytest.mark.parametrize(
    "status", [WF.SUSPENDED, WF.SUCCEEDED, WF.FAILED, WF.PARTIAL, WF.CANCELLED]
)
def test_nothing_happens_unless_pending_or_running(status: WorkflowStatus) -> None:
    r = Run(planner([W("a")]))
    r.status = status
    d = r.decide()
    assert not d
    assert d == Decision()


def test_decision_truthiness() -> None:
    assert not Decision()
    assert Decision(workflow_status=WF.RUNNING)
    assert Decision(start=[Start(1, {})])
    assert Decision(stop=[Stop(1, K.SKIPPED, "condition", "")])
    assert Decision(create=[("a", 1)])
    assert Decision(loops={"l": LoopState()})
    assert not Decision(message="only words")


def test_work_waits_while_upstream_is_unfinished() -> None:
    p = planner([W("a"), W("b", after=["a"])])
    r = Run(p)
    for status in (K.READY, K.RUNNING):
        r.set("a", status)
        assert not r.decide()  # b keeps waiting, the workflow goes on


def test_only_waiting_works_are_considered() -> None:
    r = Run(planner([W("a")]))
    r.set("a", K.READY)
    assert not r.decide()


def test_work_starts_once_upstream_succeeded() -> None:
    r = Run(planner([W("a"), W("b", after=["a"])]))
    r.set("a", K.SUCCEEDED)
    d = r.decide()
    assert list(starts(d)) == [r.id("b")]
    assert d.workflow_status is None


def test_independent_works_start_together_in_order() -> None:
    r = Run(planner([W("a"), W("b"), W("c", after=["a"])]))
    assert [s.work_id for s in r.decide().start] == [r.id("a"), r.id("b")]


def test_latest_is_the_highest_iteration() -> None:
    works = [WorkState(1, "a", 0, K.SUCCEEDED), WorkState(2, "a", 2, K.WAITING)]
    works.append(WorkState(3, "a", 1, K.FAILED))
    state = RunState(1, "wf", WF.RUNNING, {}, {}, works)
    assert state.latest()["a"].id == 2


# --- parameters and bindings -------------------------------------------------------------


def test_parameters_bind_workflow_params_keeping_their_type() -> None:
    p = planner(
        [
            W(
                "a",
                parameters={
                    "n": "${params.n}",
                    "xs": "${params.xs}",
                    "cfg": "${params.cfg}",
                    "twice": "${params.n * 2}",
                    "label": "run-${params.n}-${workflow.name}",
                    "fixed": 3.5,
                    "nested": {"list": ["${params.n}", "lit"]},
                    "escaped": "$${params.n}",
                },
            )
        ],
        parameters={"n": 1, "xs": [], "cfg": {}},
    )
    r = Run(p, params={"n": 4, "xs": [1, 2], "cfg": {"deep": True}})
    [start] = r.decide().start
    assert start.inputs == {
        "parameters": {
            "n": 4,
            "xs": [1, 2],
            "cfg": {"deep": True},
            "twice": 8,
            "label": "run-4-wf",
            "fixed": 3.5,
            "nested": {"list": [4, "lit"]},
            "escaped": "${params.n}",
        },
        "map": None,
    }


def test_bound_values_are_copies() -> None:
    p = planner([W("a", parameters={"cfg": "${params.cfg}"})], parameters={"cfg": {}})
    cfg = {"k": [1]}
    r = Run(p, params={"cfg": cfg})
    [start] = r.decide().start
    start.inputs["parameters"]["cfg"]["k"].append(2)
    assert cfg == {"k": [1]}


def test_parameters_bind_upstream_outputs_keeping_their_type() -> None:
    p = planner(
        [
            W("a"),
            W(
                "b",
                after=["a"],
                parameters={
                    "all": "${works.a.outputs}",
                    "x": "${works.a.outputs.x}",
                    "best": "${works.a.outputs.best}",
                    "n": "${works.a.counts.succeeded}",
                    "status": "${works.a.status}",
                    "text": "x=${works.a.outputs.x}",
                },
            ),
        ]
    )
    r = Run(p)
    r.set("a", K.SUCCEEDED, results=[{"x": 2, "best": [0.5, None]}])
    [start] = r.decide().start
    assert start.inputs["parameters"] == {
        "all": {"x": 2, "best": [0.5, None]},
        "x": 2,
        "best": [0.5, None],
        "n": 1,
        "status": "succeeded",
        "text": "x=2",
    }


def test_map_binds_a_list_from_upstream() -> None:
    p = planner(
        [
            W("gen"),
            W(
                "sweep",
                after=["gen"],
                parameters={"k": 1},
                map={"product": {"x": "${works.gen.outputs}", "y": [True, False]}},
            ),
        ]
    )
    r = Run(p)
    r.set("gen", K.SUCCEEDED, results=[[1, 2, 3]])
    [start] = r.decide().start
    assert start.inputs == {
        "parameters": {"k": 1},
        "map": {"product": {"x": [1, 2, 3], "y": [True, False]}},
    }


def test_map_results_are_a_list() -> None:
    p = planner(
        [
            W("m", map={"items": [{"i": 1}, {"i": 2}, {"i": 3}]}),
            W(
                "sum",
                after=["m"],
                parameters={"xs": "${works.m.outputs}", "r": "${works.m.results}"},
            ),
        ]
    )
    r = Run(p)
    r.set("m", K.SUCCEEDED, results=[1, 2, 3])
    [start] = r.decide().start
    assert start.inputs["parameters"] == {"xs": [1, 2, 3], "r": [1, 2, 3]}


# --- work_view: what expressions see of a work --------------------------------------------


@pytest.mark.parametrize(("items", "results"), [([{"i": 1}], [10]), ([], [])])
def test_map_outputs_are_a_list_whatever_its_size(
    items: list[dict[str, Any]], results: list[Any]
) -> None:
    p = planner(
        [
            W("m", map={"items": items}),
            W("next", after=["m"], map={"items": "${works.m.outputs}"}),
        ]
    )
    r = Run(p)
    r.set("m", K.SUCCEEDED, results=results, counts={J.SUCCEEDED: len(results)})
    [start] = r.decide().start
    assert start.inputs["map"] == {"items": results}


def test_work_view_of_a_single_job_is_its_result() -> None:
    w = WorkState(1, "a", 0, K.SUCCEEDED, {J.SUCCEEDED: 1}, [{"loss": 0.2}])
    assert work_view(w) == {
        "status": "succeeded",
        "outputs": {"loss": 0.2},
        "results": [{"loss": 0.2}],
        "counts": {"succeeded": 1},
        "iteration": 0,
    }


def test_work_view_of_a_map_is_a_list() -> None:
    w = WorkState(1, "a", 3, K.PARTIAL, {J.SUCCEEDED: 2, J.FAILED: 1}, [5, 6])
    view = work_view(w, many=True)
    assert view["outputs"] == [5, 6]
    assert view["results"] == [5, 6]
    assert view["counts"] == {"succeeded": 2, "failed": 1}
    assert view["status"] == "partial"
    assert view["iteration"] == 3


def test_work_view_of_a_failed_single_job_has_no_outputs() -> None:
    view = work_view(WorkState(1, "a", 0, K.FAILED, {J.FAILED: 1}, []))
    assert view["outputs"] is None
    assert view["results"] == []


def test_work_view_when_results_were_not_loaded() -> None:
    view = work_view(WorkState(1, "a", 0, K.SUCCEEDED, {J.SUCCEEDED: 1}, None))
    assert view["outputs"] is None
    assert view["results"] == []


def test_work_view_of_a_missing_work() -> None:
    assert work_view(None) == {
        "status": "waiting",
        "outputs": None,
        "results": [],
        "counts": {},
        "iteration": 0,
    }


def test_results_are_loaded_for_works_expressions_read() -> None:
    p = planner([W("a"), W("b"), W("c", after=["a", "b"], when="works.a.outputs > 1")])
    assert p.a.read_outputs == {"a"}


# --- triggers and conditions -------------------------------------------------------------


def test_all_success_skips_when_upstream_failed() -> None:
    r = Run(planner([W("a", on_failure="continue"), W("b"), W("c", after=["a", "b"])]))
    r.set("a", K.FAILED)
    r.set("b", K.SUCCEEDED)
    d = r.decide()
    assert d.start == []
    stop = stops(d)[r.id("c")]
    assert stop.status is K.SKIPPED
    assert stop.cause == "upstream"
    assert "a failed" in stop.message
    assert "b" not in stop.message.split(":", 1)[1]  # only what went wrong is listed


def test_all_success_skips_behind_a_skipped_work() -> None:
    r = Run(planner([W("a"), W("b", after=["a"])]))
    r.set("a", K.SKIPPED)
    stop = stops(r.decide())[r.id("b")]
    assert (stop.status, stop.cause) == (K.SKIPPED, "upstream")
    assert "a skipped" in stop.message


def test_when_false_skips_with_cause_condition() -> None:
    p = planner([W("a"), W("b", after=["a"], when="works.a.outputs.x > 10")])
    r = Run(p)
    r.set("a", K.SUCCEEDED, results=[{"x": 3}])
    d = r.decide()
    stop = stops(d)[r.id("b")]
    assert stop.status is K.SKIPPED
    assert stop.cause == "condition"
    assert "works.a.outputs.x > 10" in stop.message
    assert "false" in stop.message


def test_when_true_starts() -> None:
    p = planner([W("a"), W("b", after=["a"], when="works.a.outputs.x > 1")])
    r = Run(p)
    r.set("a", K.SUCCEEDED, results=[{"x": 3}])
    assert list(starts(r.decide())) == [r.id("b")]


def test_when_reads_params() -> None:
    p = planner([W("a", when="params.go")], parameters={"go": True})
    assert Run(p, params={"go": True}).decide().start
    r = Run(p, params={"go": False})
    assert stops(r.decide())[r.id("a")].cause == "condition"


def test_otherwise_fail_fails_the_work() -> None:
    p = planner([W("a"), W("b", after=["a"], when="false", otherwise="fail")])
    r = Run(p)
    r.set("a", K.SUCCEEDED)
    stop = stops(r.decide())[r.id("b")]
    assert stop.status is K.FAILED
    assert stop.cause == "condition"
    assert stop.message.startswith("otherwise fail")


def test_otherwise_fail_on_trigger_fails_with_cause_upstream() -> None:
    p = planner([W("a", on_failure="continue"), W("b", after=["a"], otherwise="fail")])
    r = Run(p)
    r.set("a", K.FAILED)
    stop = stops(r.decide())[r.id("b")]
    assert (stop.status, stop.cause) == (K.FAILED, "upstream")


def test_otherwise_fail_ends_the_workflow_failed_even_with_continue() -> None:
    p = planner(
        [
            W("a"),
            W("b", after=["a"], when="false", otherwise="fail", on_failure="continue"),
            W("c", after=["a"]),
            W("d", after=["b"], trigger="all_done"),
        ]
    )
    r = Run(p)
    r.set("a", K.SUCCEEDED)
    r.apply(r.decide())  # b failed, c started
    r.set("c", K.SUCCEEDED)
    d = r.decide()
    stop = stops(d)[r.id("d")]
    assert (stop.status, stop.cause) == (K.SKIPPED, "upstream")
    assert "work 'b'" in stop.message
    r.apply(d)
    d = r.decide()
    assert d.workflow_status is WF.FAILED
    assert "work 'b'" in d.message and "otherwise fail" in d.message


@pytest.mark.parametrize(
    ("first", "second", "runs"),
    [
        (K.SUCCEEDED, K.FAILED, True),
        (K.FAILED, K.SUCCEEDED, True),
        (K.SUCCEEDED, K.SUCCEEDED, True),
        (K.FAILED, K.FAILED, False),
        (K.SKIPPED, K.SKIPPED, False),
        (K.CANCELLED, K.FAILED, False),
        # a partial work has results to use: it counts as a success here (issue 16)
        (K.SKIPPED, K.PARTIAL, True),
        (K.PARTIAL, K.FAILED, True),
    ],
)
def test_one_success(first: WorkStatus, second: WorkStatus, runs: bool) -> None:
    p = planner(
        [
            W("a", on_failure="continue"),
            W("b", on_failure="continue"),
            W("c", after=["a", "b"], trigger="one_success"),
        ]
    )
    r = Run(p)
    r.set("a", first)
    r.set("b", second)
    d = r.decide()
    if runs:
        assert list(starts(d)) == [r.id("c")]
    else:
        stop = stops(d)[r.id("c")]
        assert (stop.status, stop.cause) == (K.SKIPPED, "upstream")
        assert "no upstream succeeded" in stop.message and "trigger one_success" in stop.message


def test_one_success_waits_for_every_upstream_work() -> None:
    p = planner([W("a"), W("b"), W("c", after=["a", "b"], trigger="one_success")])
    r = Run(p)
    r.set("a", K.SUCCEEDED)
    r.set("b", K.RUNNING)
    assert not r.decide()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (K.SUCCEEDED, K.SUCCEEDED),
        (K.FAILED, K.SKIPPED),
        (K.PARTIAL, K.CANCELLED),
        (K.SKIPPED, K.SKIPPED),
    ],
)
def test_all_done_runs_whatever_the_end_states(first: WorkStatus, second: WorkStatus) -> None:
    p = planner(
        [
            W("a", on_failure="continue"),
            W("b", on_failure="continue"),
            W("c", after=["a", "b"], trigger="all_done"),
        ]
    )
    r = Run(p)
    r.set("a", first)
    r.set("b", second)
    assert list(starts(r.decide())) == [r.id("c")]


@pytest.mark.parametrize(
    ("first", "second", "runs"),
    [
        (K.FAILED, K.SUCCEEDED, True),
        (K.SUCCEEDED, K.PARTIAL, True),
        (K.SUCCEEDED, K.SUCCEEDED, False),
        (K.SKIPPED, K.SUCCEEDED, False),
    ],
)
def test_one_failed(first: WorkStatus, second: WorkStatus, runs: bool) -> None:
    p = planner(
        [
            W("a", on_failure="continue"),
            W("b", on_failure="continue"),
            W("cleanup", after=["a", "b"], trigger="one_failed"),
        ]
    )
    r = Run(p)
    r.set("a", first)
    r.set("b", second)
    d = r.decide()
    if runs:
        assert list(starts(d)) == [r.id("cleanup")]
    else:
        stop = stops(d)[r.id("cleanup")]
        assert (stop.status, stop.cause) == (K.SKIPPED, "upstream")
        assert "no upstream failed" in stop.message


# --- on_failure and the end of a workflow -------------------------------------------------


def test_all_succeeded_ends_succeeded() -> None:
    r = Run(planner([W("a"), W("b", after=["a"])]))
    r.set("a", K.SUCCEEDED)
    r.set("b", K.SUCCEEDED)
    d = r.decide()
    assert d.workflow_status is WF.SUCCEEDED
    assert d.message == ""


def test_succeeded_workflow_says_which_works_were_skipped_and_why() -> None:
    """A final work behind a branch not taken is skipped, and the workflow succeeds: the
    message names the skipped works with their reasons (issue 16)."""
    r = Run(
        planner(
            [
                W("a"),
                W("b", after=["a"], when="params.n > 1"),
                W("c", after=["b"]),
                W("d", after=["a"]),
            ],
            parameters={"n": 0},
        ),
        params={"n": 0},
    )
    r.set("a", K.SUCCEEDED)
    r.apply(r.decide())  # b skipped by its condition, d started
    r.set("d", K.SUCCEEDED)
    r.apply(r.decide())  # c skipped: its upstream was
    d = r.decide()
    assert d.workflow_status is WF.SUCCEEDED
    assert d.message == (
        "skipped: b (condition `params.n > 1` is false); "
        "c (upstream b skipped: trigger all_success needs all to succeed)"
    )


def test_partial_workflow_names_failed_and_skipped_works() -> None:
    r = Run(planner([W("a", on_failure="continue"), W("b", after=["a"])]))
    r.set("a", K.FAILED)
    r.apply(r.decide())
    d = r.decide()
    assert d.workflow_status is WF.PARTIAL
    assert d.message.startswith("works a failed (on_failure: continue); skipped: b (upstream a")


def test_skipped_note_names_five_works_and_counts_the_rest() -> None:
    from orchid.core.plan import skipped_note

    works = [WorkState(i, f"w{i}", 0, K.SKIPPED, message="why") for i in range(8)]
    note = skipped_note([*works, WorkState(9, "w0", 1, K.SUCCEEDED)])  # w0's latest ran
    assert note == "skipped: " + "; ".join(f"w{i} (why)" for i in range(1, 6)) + "; and 2 more"


def test_workflow_does_not_end_while_a_work_runs() -> None:
    r = Run(planner([W("a"), W("b")]))
    r.set("a", K.SUCCEEDED)
    r.set("b", K.RUNNING)
    assert not r.decide()


def test_skipped_works_do_not_make_a_workflow_fail() -> None:
    r = Run(planner([W("a", when="false")]))
    r.apply(r.decide())
    d = r.decide()
    assert d.workflow_status is WF.SUCCEEDED


@pytest.mark.parametrize("bad", [K.FAILED, K.PARTIAL])
def test_on_failure_fail_skips_waiting_works_and_fails_the_workflow(bad: WorkStatus) -> None:
    p = planner(
        [W("a"), W("b", after=["a"]), W("c"), W("other"), W("d", trigger="all_done", after=["a"])]
    )
    r = Run(p)
    r.set("a", bad, message="exit code 1")
    r.set("other", K.RUNNING)  # already running: it may finish
    d = r.decide()
    assert d.start == []
    assert d.workflow_status is None  # `other` still runs
    stopped = stops(d)
    assert set(stopped) == {r.id("b"), r.id("c"), r.id("d")}
    for stop in stopped.values():
        assert (stop.status, stop.cause) == (K.SKIPPED, "upstream")
        assert stop.message == f"not started: work 'a' {bad}: exit code 1"
    r.apply(d)
    assert not r.decide()
    r.set("other", K.SUCCEEDED)
    d = r.decide()
    assert d.workflow_status is WF.FAILED
    assert d.message == f"work 'a' {bad}: exit code 1"


def test_on_failure_continue_ends_partial() -> None:
    p = planner([W("a", on_failure="continue"), W("b", after=["a"]), W("c")])
    r = Run(p)
    r.set("a", K.FAILED)
    d = r.decide()
    assert stops(d)[r.id("b")].status is K.SKIPPED
    assert list(starts(d)) == [r.id("c")]  # independent works go on
    r.apply(d)
    r.set("c", K.SUCCEEDED)
    d = r.decide()
    assert d.workflow_status is WF.PARTIAL
    assert d.message == (
        "works a failed (on_failure: continue); "
        "skipped: b (upstream a failed: trigger all_success needs all to succeed)"
    )


def test_partial_lists_every_failed_work_sorted() -> None:
    p = planner([W("z", on_failure="continue"), W("m", on_failure="continue")])
    r = Run(p)
    r.set("z", K.PARTIAL)
    r.set("m", K.FAILED)
    d = r.decide()
    assert d.workflow_status is WF.PARTIAL
    assert d.message == "works m, z failed (on_failure: continue)"


def test_settle_a_diamond_to_success() -> None:
    r = Run(planner([W("a"), W("b", after=["a"]), W("c", after=["a"]), W("d", after=["b", "c"])]))
    assert r.settle().start  # a started
    for name in ("a", "b", "c", "d"):
        r.set(name, K.SUCCEEDED)
        r.settle()
    assert r.status is WF.SUCCEEDED


# --- run-time expression errors -----------------------------------------------------------


def test_condition_error_at_run_time_fails_the_work() -> None:
    p = planner([W("a"), W("b", after=["a"], when="works.a.outputs.x > 1")])
    r = Run(p)
    r.set("a", K.SUCCEEDED, results=[])  # no outputs: `null.x` cannot be read
    stop = stops(r.decide())[r.id("b")]
    assert stop.status is K.FAILED
    assert stop.cause == "error"
    assert stop.message.startswith("condition failed:")
    assert "works.a.outputs.x" in stop.message


def test_binding_error_at_run_time_fails_the_work() -> None:
    p = planner([W("a"), W("b", after=["a"], parameters={"v": "${works.a.outputs.x + 1}"})])
    r = Run(p)
    r.set("a", K.SUCCEEDED, results=[{"x": "text"}])
    stop = stops(r.decide())[r.id("b")]
    assert (stop.status, stop.cause) == (K.FAILED, "error")
    assert stop.message.startswith("cannot bind parameters:")


def test_map_binding_error_at_run_time_fails_the_work() -> None:
    p = planner([W("a"), W("b", after=["a"], map={"items": "${works.a.outputs.rows}"})])
    r = Run(p)
    r.set("a", K.SUCCEEDED, results=[{"cols": []}])
    stop = stops(r.decide())[r.id("b")]
    assert (stop.status, stop.cause) == (K.FAILED, "error")
    assert "rows" in stop.message


def test_a_failed_condition_fails_the_workflow_by_default() -> None:
    p = planner([W("a", when="params.x.y")], parameters={"x": 1})
    r = Run(p, params={"x": 1})
    r.apply(r.decide())
    d = r.decide()
    assert d.workflow_status is WF.FAILED
    assert "condition failed" in d.message


def test_every_stop_is_a_legal_work_transition() -> None:
    p = planner([W("a", when="false", otherwise="fail")])
    r = Run(p)
    for stop in r.decide().stop:
        current = next(w.status for w in r.rows.values() if w.id == stop.work_id)
        work_transition(current, stop.status)


def test_skip_stops_are_legal_work_transitions() -> None:
    p = planner([W("a", when="false"), W("b", after=["a"])])
    r = Run(p)
    for _ in range(2):
        d = r.decide()
        for stop in d.stop:
            current = next(w.status for w in r.rows.values() if w.id == stop.work_id)
            assert work_transition(current, stop.status) is K.SKIPPED
        r.apply(d)


# --- loops -------------------------------------------------------------------------------


def hpo(max_iterations: int = 3, on_max: str = "succeed", **train: Any) -> Planner:
    return planner(
        [
            W("prep"),
            W(
                "train",
                parameters={
                    "lr": "${loop.vars.lr}",
                    "it": "${loop.iteration}",
                    "tag": "${loop.name}",
                },
                **train,
            ),
            W("score", after=["train"], parameters={"loss": "${works.train.outputs.loss}"}),
            W("post", after=["fit"], parameters={"best": "${loops.fit.vars.lr}"}),
        ],
        parameters={"lr0": 0.4},
        loops=[
            {
                "name": "fit",
                "works": ["train", "score"],
                "after": ["prep"],
                "until": "works.score.outputs < 0.1",
                "max_iterations": max_iterations,
                "on_max_iterations": on_max,
                "variables": {"lr": "${params.lr0}", "seen": []},
                "next": {
                    "lr": "loop.vars.lr / 2",
                    "seen": "loop.vars.seen + [works.train.outputs.loss]",
                },
            }
        ],
    )


def run_iteration(r: Run, it: int, loss: float) -> None:
    """Drive one iteration of `fit`: train then score, each started by the planner."""
    d = r.decide()
    assert list(starts(d)) == [r.id("train", it)]
    r.apply(d)
    r.set("train", K.SUCCEEDED, results=[{"loss": loss}], iteration=it)
    d = r.decide()
    assert starts(d) == {r.id("score", it): {"parameters": {"loss": loss}, "map": None}}
    r.apply(d)
    r.set("score", K.SUCCEEDED, results=[loss], iteration=it)


def test_loop_waits_for_its_dependencies() -> None:
    r = Run(hpo(), params={"lr0": 0.4})
    d = r.decide()
    assert d.loops == {}
    assert list(starts(d)) == [r.id("prep")]  # loop works wait for the loop
    r.apply(d)
    assert not r.decide()


def test_loop_starts_with_its_variables_bound() -> None:
    r = Run(hpo(), params={"lr0": 0.4})
    r.set("prep", K.SUCCEEDED)
    d = r.decide()
    assert d.loops == {"fit": LoopState("running", 0, {"lr": 0.4, "seen": []})}
    assert d.start == [] and d.stop == []  # loop changes come first
    r.apply(d)
    d = r.decide()
    assert starts(d) == {
        r.id("train"): {"parameters": {"lr": 0.4, "it": 0, "tag": "fit"}, "map": None}
    }


def test_loop_creates_the_next_iteration_with_next_values() -> None:
    r = Run(hpo(), params={"lr0": 0.4})
    r.set("prep", K.SUCCEEDED)
    r.apply(r.decide())
    run_iteration(r, 0, loss=0.9)
    d = r.decide()
    assert d.loops == {"fit": LoopState("running", 1, {"lr": 0.2, "seen": [0.9]})}
    assert d.create == [("train", 1), ("score", 1)]
    assert d.start == [] and d.workflow_status is None
    r.apply(d)
    d = r.decide()
    assert starts(d) == {
        r.id("train", 1): {"parameters": {"lr": 0.2, "it": 1, "tag": "fit"}, "map": None}
    }


def test_loop_waits_for_all_its_works_of_the_iteration() -> None:
    r = Run(hpo(), params={"lr0": 0.4})
    r.set("prep", K.SUCCEEDED)
    r.apply(r.decide())
    r.apply(r.decide())
    r.set("train", K.SUCCEEDED, results=[{"loss": 1.0}])
    r.set("score", K.RUNNING)
    assert not r.decide()


def test_loop_stops_when_until_holds() -> None:
    r = Run(hpo(), params={"lr0": 0.4})
    r.set("prep", K.SUCCEEDED)
    r.apply(r.decide())
    run_iteration(r, 0, loss=0.9)
    r.apply(r.decide())
    run_iteration(r, 1, loss=0.05)
    d = r.decide()
    ls = d.loops["fit"]
    assert (ls.status, ls.iteration) == ("succeeded", 1)
    assert ls.vars == {"lr": 0.2, "seen": [0.9]}  # no `next` after the last iteration
    assert "held at iteration 1" in ls.message  # as `loop.iteration` counts, from 0
    assert d.create == []
    r.apply(d)
    d = r.decide()
    assert starts(d) == {r.id("post"): {"parameters": {"best": 0.2}, "map": None}}
    r.apply(d)
    r.set("post", K.SUCCEEDED)
    assert r.decide().workflow_status is WF.SUCCEEDED


@pytest.mark.parametrize(("on_max", "loop_status"), [("succeed", "succeeded"), ("fail", "failed")])
def test_loop_stops_at_max_iterations(on_max: str, loop_status: str) -> None:
    r = Run(hpo(max_iterations=2, on_max=on_max), params={"lr0": 0.4})
    r.set("prep", K.SUCCEEDED)
    r.apply(r.decide())
    run_iteration(r, 0, loss=0.9)
    r.apply(r.decide())
    run_iteration(r, 1, loss=0.8)
    d = r.decide()
    ls = d.loops["fit"]
    assert (ls.status, ls.iteration) == (loop_status, 1)
    assert "max_iterations=2" in ls.message
    assert d.create == []
    r.apply(d)
    d = r.decide()
    post = r.id("post")
    if on_max == "succeed":
        assert starts(d) == {post: {"parameters": {"best": 0.2}, "map": None}}
        r.apply(d)
        r.set("post", K.SUCCEEDED)
        assert r.decide().workflow_status is WF.SUCCEEDED
    else:
        stop = stops(d)[post]
        assert (stop.status, stop.cause) == (K.SKIPPED, "upstream")
        assert stop.message.startswith("not started: loop 'fit' failed: reached max_iterations")
        r.apply(d)
        d = r.decide()
        assert d.workflow_status is WF.FAILED
        assert d.message.startswith("loop 'fit' failed: reached max_iterations=2")


def test_loop_of_one_iteration() -> None:
    r = Run(hpo(max_iterations=1, on_max="fail"), params={"lr0": 0.4})
    r.set("prep", K.SUCCEEDED)
    r.apply(r.decide())
    run_iteration(r, 0, loss=0.01)  # until holds at once: that wins over max_iterations
    assert r.decide().loops["fit"].status == "succeeded"


def test_loop_until_error_fails_the_loop() -> None:
    p = planner(
        [W("a")],
        loops=[
            {"name": "l", "works": ["a"], "until": "works.a.outputs.x > 1", "max_iterations": 3}
        ],
    )
    r = Run(p)
    r.apply(r.decide())  # loop running
    r.apply(r.decide())  # a ready
    r.set("a", K.SUCCEEDED, results=[])
    d = r.decide()
    assert d.loops["l"].status == "failed"
    assert "works.a.outputs.x" in d.loops["l"].message
    r.apply(d)
    d = r.decide()
    assert d.workflow_status is WF.FAILED
    assert d.message.startswith("loop 'l' failed")


def test_loop_variable_binding_error_fails_the_loop() -> None:
    p = planner(
        [W("a")],
        parameters={"p": 1},
        loops=[
            {
                "name": "l",
                "works": ["a"],
                "until": "true",
                "max_iterations": 3,
                "variables": {"v": "${params.p.q}"},
            }
        ],
    )
    r = Run(p, params={"p": 1})
    d = r.decide()
    assert d.loops["l"].status == "failed"
    assert d.loops["l"].message.startswith("cannot bind variables")


def test_failing_work_in_a_loop_fails_the_loop() -> None:
    r = Run(hpo(), params={"lr0": 0.4})
    r.set("prep", K.SUCCEEDED)
    r.apply(r.decide())
    r.apply(r.decide())
    r.set("train", K.FAILED, message="boom")
    d = r.decide()
    # score is skipped first: nothing new starts once the workflow must fail
    stop = stops(d)[r.id("score")]
    assert (stop.status, stop.cause) == (K.SKIPPED, "upstream")
    r.apply(d)
    d = r.decide()
    assert d.loops["fit"].status == "failed"
    assert "work 'train' failed: boom" in d.loops["fit"].message


def test_loop_works_only_start_in_the_loops_current_iteration() -> None:
    r = Run(hpo(), params={"lr0": 0.4})
    r.set("prep", K.SUCCEEDED)
    r.loops["fit"] = LoopState("running", 1, {"lr": 0.2, "seen": []})
    # the rows of iteration 1 do not exist yet: nothing starts, nothing ends
    assert not r.decide()


def test_loop_context() -> None:
    p = hpo()
    r = Run(p, params={"lr0": 0.4})
    r.loops["fit"] = LoopState("running", 2, {"lr": 0.1, "seen": [1]})
    ctx = p.context(r.state(), p.t.loops[0])
    assert ctx["loop"] == {"name": "fit", "iteration": 2, "vars": {"lr": 0.1, "seen": [1]}}
    assert ctx["loops"] == {
        "fit": {"status": "running", "iteration": 2, "vars": {"lr": 0.1, "seen": [1]}}
    }
    assert ctx["workflow"] == {"id": 7, "name": "wf"}
    assert ctx["params"] == {"lr0": 0.4}
    assert set(ctx["works"]) == {"prep", "train", "score", "post"}
    assert "loop" not in p.context(r.state())


def test_loop_state_json_round_trip() -> None:
    ls = LoopState("running", 3, {"x": [1, 2]}, "ok")
    assert LoopState.from_json(ls.to_json()) == ls
    assert LoopState.from_json({"status": "waiting", "iteration": 0}) == LoopState()


def test_loop_skipped_when_its_dependencies_fail() -> None:
    r = Run(hpo(), params={"lr0": 0.4})
    r.set("prep", K.SKIPPED)
    d = r.decide()
    ls = d.loops["fit"]
    assert ls.status == "skipped"
    assert "prep skipped" in ls.message


def test_loop_skipped_when_the_workflow_is_failing() -> None:
    r = Run(hpo(), params={"lr0": 0.4})
    r.set("prep", K.FAILED)
    d = r.decide()
    assert d.loops["fit"].status == "skipped"
    assert d.loops["fit"].message.startswith("not started: work 'prep' failed")


@pytest.mark.parametrize(
    ("prep_status", "on_failure", "end"),
    [
        (K.SKIPPED, "fail", WF.SUCCEEDED),  # prep's condition was false
        (K.FAILED, "continue", WF.PARTIAL),
        (K.FAILED, "fail", WF.FAILED),
    ],
)
def test_a_skipped_loop_lets_the_workflow_end(
    prep_status: WorkStatus, on_failure: str, end: WorkflowStatus
) -> None:
    p = planner(
        [W("prep", on_failure=on_failure), W("train"), W("post", after=["fit"])],
        loops=[
            {
                "name": "fit",
                "works": ["train"],
                "after": ["prep"],
                "until": "true",
                "max_iterations": 3,
            }
        ],
    )
    r = Run(p)
    r.set("prep", prep_status)
    r.settle()
    assert r.loops["fit"].status == "skipped"
    assert r.rows[("train", 0)].status in TERMINAL_WORK
    assert r.status is end


def test_a_loop_that_cannot_bind_its_variables_lets_the_workflow_end() -> None:
    p = planner(
        [W("a")],
        parameters={"p": 1},
        loops=[
            {
                "name": "l",
                "works": ["a"],
                "until": "true",
                "max_iterations": 3,
                "variables": {"v": "${params.p.q}"},
            }
        ],
    )
    r = Run(p, params={"p": 1})
    r.settle()
    assert r.loops["l"].status == "failed"
    assert r.rows[("a", 0)].status in TERMINAL_WORK
    assert r.status is WF.FAILED
