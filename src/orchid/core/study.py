"""The pure decisions of a study: what a trial's result is worth, which segment may start
how many trials, which trials are best, and how the study ends.

A *study* is one ``hpo`` work (one per loop iteration); it holds one independent
optimisation per *segment* (one segment, named ``""``, unless the work lists some).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from orchid.core.hpo import HpoSpec, Objective
from orchid.core.states import WorkStatus

TrialStatus = Literal["waiting", "running", "complete", "pruned", "failed"]
ACTIVE: frozenset[str] = frozenset({"waiting", "running"})
ENDED: frozenset[str] = frozenset({"complete", "pruned", "failed"})
MAX_NEXT = 1000  # points one pull-mode request may lease


@dataclass(frozen=True)
class Trial:
    """One evaluated (or running) point of a segment, as generators and pruners see it."""

    number: int
    params: Mapping[str, Any]
    status: TrialStatus
    values: tuple[float, ...] | None = None
    intermediate: Mapping[int, float] = field(default_factory=dict)
    system: Mapping[str, Any] = field(default_factory=dict)  # the generator's own notes


def values_of(result: Any, goals: Sequence[Objective]) -> tuple[tuple[float, ...] | None, str]:
    """The objective values in a trial's result, or None and why they cannot be read.

    A result that is a number is the objective (single objective); a mapping holds
    each objective under its name. Values must be finite numbers.
    """
    if len(goals) == 1 and _number(result):
        return (float(result),), ""
    if not isinstance(result, dict):
        names = ", ".join(g.name for g in goals)
        return None, f"the result must be a number or a mapping with {names}; got {_brief(result)}"
    out: list[float] = []
    for g in goals:
        if g.name not in result:
            return None, f"the result has no {g.name!r} (it has {sorted(result)[:10]})"
        v = result[g.name]
        if not _number(v) or not math.isfinite(v):
            return None, f"{g.name} must be a finite number; got {_brief(v)}"
        out.append(float(v))
    return tuple(out), ""


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _brief(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def seed_for(seed: int | None, segment_index: int, n_trials: int) -> int | None:
    """The seed of a generator rebuilt after ``n_trials`` trials: a fixed function of the
    study's seed and the history's size, so that the same history gives the same point."""
    if seed is None:
        return None
    return (seed * 1_000_003 + segment_index * 7_919 + n_trials) % 2**32


def startable(parallel: int, created: int, oldest_open: int) -> int:
    """How many new trials a seeded segment may start: trial ``n`` is proposed only once
    every trial numbered ``n - parallel`` or lower has ended, so with the oldest open trial
    numbered ``oldest_open`` (``created`` when none is open) the next ones up to
    ``oldest_open + parallel - 1``."""
    return max(oldest_open + parallel - created, 0)


def seen_by(trials: Sequence[Trial], number: int, parallel: int) -> list[Trial]:
    """What the generator proposing trial ``number`` of a seeded segment is told, whatever
    the timing: every trial before it in number order, the last ``parallel - 1`` of them as
    running (parameters and the generator's notes, no values) however far they have got,
    the others as they ended (they all have, by :func:`startable`). So a proposal is a
    function of the seed and of results that are the same in every run: the asynchrony of
    ``parallel`` trials in flight where the oldest ends first."""
    return [
        Trial(t.number, t.params, "running", system=t.system) if t.number > number - parallel else t
        for t in sorted(trials, key=lambda t: t.number)
        if t.number < number
    ]


@dataclass(frozen=True)
class Load:
    """A segment as the slot allocation sees it."""

    segment: str
    active: int  # trials proposed and not ended
    wanted: int  # new trials it could start now (0: done, or waiting on its generator)


def allocate(parallel: int, loads: Sequence[Load]) -> dict[str, int]:
    """New trials each segment may start so that at most ``parallel`` run in all, shared
    max-min fairly: a free slot goes to the segment with the fewest active trials (ties to
    the one listed first), so a segment with slow trials never starves the others."""
    free = parallel - sum(ld.active for ld in loads)
    out = {ld.segment: 0 for ld in loads}
    heap = [(ld.active, i) for i, ld in enumerate(loads) if ld.wanted > 0]
    heapq.heapify(heap)
    while free > 0 and heap:
        active, i = heapq.heappop(heap)
        ld = loads[i]
        out[ld.segment] += 1
        free -= 1
        if out[ld.segment] < ld.wanted:
            heapq.heappush(heap, (active + 1, i))
    return out


def better(a: float, b: float, direction: str) -> bool:
    return a < b if direction == "minimize" else a > b


def dominates(a: Sequence[float], b: Sequence[float], goals: Sequence[Objective]) -> bool:
    """``a`` is no worse than ``b`` in every objective and better in one."""
    strictly = False
    for x, y, g in zip(a, b, goals, strict=True):
        if better(y, x, g.direction):
            return False
        strictly = strictly or better(x, y, g.direction)
    return strictly


def best_trials(trials: Sequence[Trial], goals: Sequence[Objective]) -> list[Trial]:
    """The best complete trial (single objective), or the Pareto front (several), by number."""
    done = sorted(
        (t for t in trials if t.status == "complete" and t.values), key=lambda t: t.number
    )
    if not done:
        return []
    if len(goals) == 1:
        top = done[0]
        for t in done[1:]:
            assert t.values is not None and top.values is not None
            if better(t.values[0], top.values[0], goals[0].direction):
                top = t
        return [top]
    return [
        t
        for t in done
        if not any(dominates(o.values or (), t.values or (), goals) for o in done if o is not t)
    ]


def counts(trials: Sequence[Trial]) -> dict[str, int]:
    out = {s: 0 for s in ("waiting", "running", "complete", "pruned", "failed")}
    for t in trials:
        out[t.status] += 1
    return out


def trial_json(t: Trial, goals: Sequence[Objective]) -> dict[str, Any]:
    values = list(t.values or [])
    out: dict[str, Any] = {"number": t.number, "params": dict(t.params), "values": values}
    if len(goals) == 1 and values:
        out["value"] = values[0]
    return out


def summary(spec: HpoSpec, by_segment: Mapping[str, Sequence[Trial]]) -> dict[str, Any]:
    """What a finished study says downstream (``works.W.outputs``) and to ``orchid hpo best``.

    ``best`` is the best trial (``pareto``: the front, for several objectives) of the only
    segment, ``history`` every trial's values in order; with segments, each is under
    ``segments.NAME``.
    """
    goals = spec.goals()

    def one(trials: Sequence[Trial]) -> dict[str, Any]:
        top = [trial_json(t, goals) for t in best_trials(trials, goals)]
        out: dict[str, Any] = {"trials": len(trials), **counts(trials)}
        ordered = sorted(trials, key=lambda t: t.number)
        # each trial's values in proposal order (null: it failed, was pruned or runs)
        out["history"] = [
            list(t.values) if t.status == "complete" and t.values else None for t in ordered
        ]
        if len(goals) == 1:
            out["best"] = top[0] if top else None
        else:
            out["pareto"] = top
        return out

    objectives = [{"name": g.name, "direction": g.direction} for g in goals]
    if spec.segments is None:
        return {"objectives": objectives, **one(by_segment.get("", []))}
    return {
        "objectives": objectives,
        "segments": {s: one(by_segment.get(s, [])) for s in spec.segment_names()},
    }


def outcome(spec: HpoSpec, by_segment: Mapping[str, Sequence[Trial]]) -> tuple[WorkStatus, str]:
    """How a study whose trials all ended ends: succeeded if every segment has a complete
    trial, partial if some have, failed if none has. Failed and pruned trials alone do not
    fail a study: they are part of searching."""
    empty = [
        s
        for s in spec.segment_names()
        if not any(t.status == "complete" for t in by_segment.get(s, []))
    ]
    if not empty:
        return WorkStatus.SUCCEEDED, ""
    names = ", ".join(repr(s) for s in empty) if spec.segments else "the study"
    why = f"no trial of {names} completed"
    if len(empty) == len(spec.segment_names()):
        return WorkStatus.FAILED, why
    return WorkStatus.PARTIAL, why
