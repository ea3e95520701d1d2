"""State machines: every table entry, forbidden moves, terminal states, outcomes, back-off."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

import pytest

from orchid.core import states
from orchid.core.retry import RetryPolicy
from orchid.core.states import (
    ACTIVE_JOB,
    FILE_TRANSITIONS,
    JOB_TRANSITIONS,
    TERMINAL_JOB,
    TERMINAL_WORK,
    TERMINAL_WORKFLOW,
    WORK_TRANSITIONS,
    WORKFLOW_TRANSITIONS,
    FileStatus,
    JobStatus,
    WorkflowStatus,
    WorkStatus,
    after_failure,
    file_transition,
    job_transition,
    sources,
    work_outcome,
    workflow_transition,
)
from orchid.errors import InvalidTransition, OrchidError

W, K, J, F = WorkflowStatus, WorkStatus, JobStatus, FileStatus

# (kind, status enum, table, transition function)
MACHINES: list[
    tuple[str, type[StrEnum], Mapping[Any, frozenset[Any]], Callable[[Any, Any], Any]]
] = [
    ("workflow", WorkflowStatus, WORKFLOW_TRANSITIONS, workflow_transition),
    ("work", WorkStatus, WORK_TRANSITIONS, states.work_transition),
    ("job", JobStatus, JOB_TRANSITIONS, job_transition),
    ("file", FileStatus, FILE_TRANSITIONS, file_transition),
]
MACHINE_IDS = [m[0] for m in MACHINES]


# --- the tables themselves ---------------------------------------------------------------


@pytest.mark.parametrize(("kind", "enum", "table", "fn"), MACHINES, ids=MACHINE_IDS)
def test_every_status_has_a_row_and_targets_are_statuses(
    kind: str, enum: type[StrEnum], table: Mapping[Any, frozenset[Any]], fn: Any
) -> None:
    assert set(table) == set(enum)
    for targets in table.values():
        assert targets <= set(enum)


@pytest.mark.parametrize(("kind", "enum", "table", "fn"), MACHINES, ids=MACHINE_IDS)
def test_no_status_lists_itself(
    kind: str, enum: type[StrEnum], table: Mapping[Any, frozenset[Any]], fn: Any
) -> None:
    # staying put is always allowed by the function; the table only lists real moves
    for cur, targets in table.items():
        assert cur not in targets


def test_status_values_are_their_lowercase_names() -> None:
    for _, enum, _, _ in MACHINES:
        for member in enum:
            assert member.value == member.name.lower()
            assert str(member) == member.value


def test_design_suggested_paths() -> None:
    """docs/architecture.md, State machines: the happy paths of each entity are allowed, step by step."""
    paths: list[tuple[Callable[[Any, Any], Any], list[Any]]] = [
        (workflow_transition, [W.PENDING, W.RUNNING, W.SUSPENDED, W.RUNNING, W.SUCCEEDED]),
        (states.work_transition, [K.WAITING, K.READY, K.RUNNING, K.SUCCEEDED]),
        (job_transition, [J.WAITING, J.READY, J.SUBMITTED, J.RUNNING, J.FAILED, J.READY]),
        (
            file_transition,
            [F.NEW, F.STAGING, F.AVAILABLE, F.PROCESSING, F.PROCESSED, F.DELETED],
        ),
    ]
    for fn, path in paths:
        for a, b in itertools.pairwise(path):
            assert fn(a, b) is b


# --- allowed and forbidden moves ---------------------------------------------------------


# Every entry of every table, written out: changing a table must be a deliberate change here.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "workflow": {
        "pending": {"running", "cancelled", "failed"},
        "running": {"suspended", "succeeded", "failed", "partial", "cancelled"},
        "suspended": {"running", "cancelled"},
        "failed": {"running"},
        "partial": {"running"},
        "succeeded": set(),
        "cancelled": set(),
    },
    "work": {
        "waiting": {"ready", "cancelled", "skipped", "failed"},
        "ready": {"running", "cancelled", "skipped", "failed"},
        "running": {"succeeded", "failed", "partial", "cancelled"},
        "failed": {"running", "waiting"},
        "partial": {"running"},
        "succeeded": set(),
        "cancelled": set(),
        "skipped": {"waiting"},
    },
    "job": {
        "waiting": {"ready", "cancelled", "skipped"},
        "ready": {"submitted", "cancelled", "skipped"},
        "submitted": {"running", "succeeded", "failed", "cancelled", "ready"},
        "running": {"succeeded", "failed", "cancelled", "ready"},
        "failed": {"ready"},
        "succeeded": set(),
        "cancelled": set(),
        "skipped": {"waiting"},
    },
    "file": {
        "new": {"staging", "available", "failed"},
        "staging": {"available", "failed"},
        "available": {"processing", "deleted"},
        "processing": {"processed", "available", "failed"},
        "processed": {"deleted"},
        "failed": {"staging", "processing"},  # staged again; its job retried
        "deleted": set(),
    },
}


@pytest.mark.parametrize(("kind", "enum", "table", "fn"), MACHINES, ids=MACHINE_IDS)
def test_table_is_as_specified(
    kind: str, enum: type[StrEnum], table: Mapping[Any, frozenset[Any]], fn: Any
) -> None:
    assert {str(k): {str(v) for v in vs} for k, vs in table.items()} == EXPECTED[kind]


@pytest.mark.parametrize(("kind", "enum", "table", "fn"), MACHINES, ids=MACHINE_IDS)
def test_every_allowed_transition_returns_its_target(
    kind: str, enum: type[StrEnum], table: Mapping[Any, frozenset[Any]], fn: Any
) -> None:
    for current, targets in EXPECTED[kind].items():
        for target in targets:
            assert fn(enum(current), enum(target)) is enum(target), (current, target)


@pytest.mark.parametrize(("kind", "enum", "table", "fn"), MACHINES, ids=MACHINE_IDS)
def test_staying_put_is_always_allowed(
    kind: str, enum: type[StrEnum], table: Mapping[Any, frozenset[Any]], fn: Any
) -> None:
    for status in enum:
        assert fn(status, status) == status


@pytest.mark.parametrize(("kind", "enum", "table", "fn"), MACHINES, ids=MACHINE_IDS)
def test_every_forbidden_transition_raises_and_names_what_is_allowed(
    kind: str, enum: type[StrEnum], table: Mapping[Any, frozenset[Any]], fn: Any
) -> None:
    checked = 0
    for current in enum:
        allowed = EXPECTED[kind][current]
        for target in enum:
            if target == current or target in allowed:
                continue
            with pytest.raises(InvalidTransition) as info:
                fn(current, target)
            msg = str(info.value)
            assert msg.startswith(f"{kind} cannot go from {current} to {target}; "), msg
            if allowed:
                assert msg.endswith(f"from {current} it may go to {', '.join(sorted(allowed))}")
            else:
                assert msg.endswith(f"from {current} it may go to nothing (it is final)")
            checked += 1
    assert checked > 0


def test_invalid_transition_is_an_orchid_error() -> None:
    with pytest.raises(OrchidError):
        job_transition(J.SUCCEEDED, J.RUNNING)


def test_forbidden_message_examples() -> None:
    with pytest.raises(
        InvalidTransition, match=r"from waiting it may go to cancelled, ready, skip"
    ):
        job_transition(J.WAITING, J.RUNNING)
    with pytest.raises(
        InvalidTransition, match=r"from succeeded it may go to nothing \(it is final"
    ):
        states.work_transition(K.SUCCEEDED, K.RUNNING)
    with pytest.raises(InvalidTransition, match="workflow cannot go from pending to succeeded"):
        workflow_transition(W.PENDING, W.SUCCEEDED)


@pytest.mark.parametrize(
    ("fn", "current", "target"),
    [
        (workflow_transition, W.PENDING, W.SUSPENDED),  # suspend only a running workflow
        (workflow_transition, W.SUSPENDED, W.SUCCEEDED),  # must resume first
        (workflow_transition, W.CANCELLED, W.RUNNING),  # abort is final
        (states.work_transition, K.WAITING, K.RUNNING),  # must become ready first
        (states.work_transition, K.SKIPPED, K.READY),  # re-opened works wait first
        (states.work_transition, K.SUCCEEDED, K.FAILED),
        (job_transition, J.WAITING, J.SUBMITTED),
        (job_transition, J.READY, J.RUNNING),
        (job_transition, J.SUCCEEDED, J.READY),  # no re-running a success
        (job_transition, J.CANCELLED, J.READY),
        (job_transition, J.FAILED, J.WAITING),
        (file_transition, F.NEW, F.PROCESSING),  # must be available first
        (file_transition, F.DELETED, F.AVAILABLE),
        (file_transition, F.PROCESSED, F.AVAILABLE),
    ],
)
def test_sample_of_forbidden_moves(fn: Any, current: Any, target: Any) -> None:
    with pytest.raises(InvalidTransition):
        fn(current, target)


# --- terminal statuses -------------------------------------------------------------------

# the documented ways out of a terminal status: retry and re-open
RETRY_EXITS: dict[str, dict[Any, set[Any]]] = {
    "workflow": {W.FAILED: {W.RUNNING}, W.PARTIAL: {W.RUNNING}},
    "work": {K.FAILED: {K.RUNNING, K.WAITING}, K.PARTIAL: {K.RUNNING}, K.SKIPPED: {K.WAITING}},
    "job": {J.FAILED: {J.READY}, J.SKIPPED: {J.WAITING}},
}
TERMINALS = {"workflow": TERMINAL_WORKFLOW, "work": TERMINAL_WORK, "job": TERMINAL_JOB}


@pytest.mark.parametrize("kind", ["workflow", "work", "job"])
def test_terminal_statuses_only_leave_by_retry(kind: str) -> None:
    table = {m[0]: m[2] for m in MACHINES}[kind]
    for status in TERMINALS[kind]:
        assert set(table[status]) == RETRY_EXITS[kind].get(status, set()), status


def test_terminal_sets() -> None:
    assert {W.SUCCEEDED, W.FAILED, W.PARTIAL, W.CANCELLED} == TERMINAL_WORKFLOW
    assert {K.SUCCEEDED, K.FAILED, K.PARTIAL, K.CANCELLED, K.SKIPPED} == TERMINAL_WORK
    assert {J.SUCCEEDED, J.FAILED, J.CANCELLED, J.SKIPPED} == TERMINAL_JOB
    assert {J.SUBMITTED, J.RUNNING} == ACTIVE_JOB
    assert not ACTIVE_JOB & TERMINAL_JOB


def test_succeeded_and_cancelled_are_final_everywhere() -> None:
    assert WORKFLOW_TRANSITIONS[W.SUCCEEDED] == frozenset()
    assert WORKFLOW_TRANSITIONS[W.CANCELLED] == frozenset()
    assert WORK_TRANSITIONS[K.SUCCEEDED] == frozenset()
    assert WORK_TRANSITIONS[K.CANCELLED] == frozenset()
    assert WORK_TRANSITIONS[K.SKIPPED] == frozenset({K.WAITING})  # only retry re-opens it
    assert JOB_TRANSITIONS[J.SUCCEEDED] == frozenset()
    assert JOB_TRANSITIONS[J.CANCELLED] == frozenset()
    assert FILE_TRANSITIONS[F.DELETED] == frozenset()


def test_every_non_terminal_status_can_reach_a_terminal_one() -> None:
    for kind in ("workflow", "work", "job"):
        table = {m[0]: m[2] for m in MACHINES}[kind]
        for start in table:
            seen, stack = set(), [start]
            while stack:
                s = stack.pop()
                if s not in seen:
                    seen.add(s)
                    stack.extend(table[s])
            assert seen & TERMINALS[kind], (kind, start)


def test_lost_jobs_go_back_to_ready() -> None:
    assert job_transition(J.SUBMITTED, J.READY) is J.READY
    assert job_transition(J.RUNNING, J.READY) is J.READY


# --- sources: the store's bulk-update guard ----------------------------------------------


def test_sources_is_the_inverse_of_the_table() -> None:
    for _, enum, table, _ in MACHINES:
        for target in enum:
            expected = {s for s in enum if target in table[s]}
            assert sources(table, target) == expected


def test_sources_examples() -> None:
    assert sources(JOB_TRANSITIONS, J.READY) == {J.WAITING, J.SUBMITTED, J.RUNNING, J.FAILED}
    assert sources(JOB_TRANSITIONS, J.WAITING) == {J.SKIPPED}
    assert sources(WORKFLOW_TRANSITIONS, W.PENDING) == frozenset()


# --- work_outcome ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, K.SUCCEEDED),  # an empty map: nothing to do
        ({J.SUCCEEDED: 0}, K.SUCCEEDED),
        ({J.SUCCEEDED: 5}, K.SUCCEEDED),
        ({J.FAILED: 1}, K.FAILED),
        ({J.FAILED: 2, J.SKIPPED: 3}, K.FAILED),
        ({J.SKIPPED: 1}, K.FAILED),  # skipped jobs follow a failure
        ({J.SUCCEEDED: 3, J.FAILED: 1}, K.PARTIAL),
        ({J.SUCCEEDED: 3, J.SKIPPED: 1}, K.PARTIAL),
        ({J.SUCCEEDED: 1, J.FAILED: 1, J.SKIPPED: 1}, K.PARTIAL),
        ({J.CANCELLED: 1}, K.CANCELLED),
        ({J.SUCCEEDED: 9, J.CANCELLED: 1}, K.CANCELLED),  # cancelled wins
        ({J.FAILED: 9, J.CANCELLED: 1}, K.CANCELLED),
        ({J.SUCCEEDED: 2, J.FAILED: 0, J.SKIPPED: 0, J.CANCELLED: 0}, K.SUCCEEDED),
    ],
)
def test_work_outcome(counts: dict[JobStatus, int], expected: WorkStatus) -> None:
    assert work_outcome(counts) is expected


def test_work_outcome_is_always_a_terminal_work_status() -> None:
    for s in range(3):
        for f in range(3):
            for k in range(3):
                for c in range(2):
                    counts = {J.SUCCEEDED: s, J.FAILED: f, J.SKIPPED: k, J.CANCELLED: c}
                    assert work_outcome(counts) in TERMINAL_WORK


# --- after_failure: retries with exponential back-off -----------------------------------

ONE_S = RetryPolicy(initial_interval=1.0)


def test_after_failure_doubles_the_delay_each_attempt() -> None:
    now, policy = 1000.0, RetryPolicy(initial_interval=2.5)
    waits = []
    for attempt in range(1, 6):
        status, at = after_failure(attempt, 6, policy, now)
        assert status is J.READY
        waits.append(at - now)
    assert waits == [2.5, 5.0, 10.0, 20.0, 40.0]


def test_after_failure_uses_the_time_given() -> None:
    assert after_failure(1, 3, ONE_S, 0.0) == (J.READY, 1.0)
    assert after_failure(1, 3, ONE_S, 50.0) == (J.READY, 51.0)
    assert after_failure(2, 3, ONE_S, 50.0) == (J.READY, 52.0)


def test_after_failure_zero_delay_retries_at_once() -> None:
    assert after_failure(3, 10, RetryPolicy(initial_interval=0.0), 7.0) == (J.READY, 7.0)


def test_after_failure_gives_up_when_attempts_are_used() -> None:
    assert after_failure(3, 3, ONE_S, 100.0) == (J.FAILED, 0.0)
    assert after_failure(1, 1, ONE_S, 100.0) == (J.FAILED, 0.0)  # retries: 0
    assert after_failure(5, 3, ONE_S, 100.0) == (J.FAILED, 0.0)


def test_after_failure_waits_at_most_the_maximum_interval() -> None:
    """`retries: 100` once meant a wait of 2^99 s before the last attempt."""
    policy = RetryPolicy(initial_interval=1.0, maximum_attempts=101)
    waits = [after_failure(a, 101, policy, 0.0)[1] for a in range(1, 101)]
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(waits) == 3600.0 and waits[-1] == 3600.0
    assert waits == sorted(waits)


def test_after_failure_attempt_zero_is_not_negative_backoff() -> None:
    status, at = after_failure(0, 3, RetryPolicy(initial_interval=4.0), 10.0)
    assert status is J.READY
    assert at == 14.0


def test_after_failure_results_are_legal_job_moves() -> None:
    for attempt in range(1, 5):
        status, _ = after_failure(attempt, 3, ONE_S, 0.0)
        assert job_transition(J.FAILED, status) is status
