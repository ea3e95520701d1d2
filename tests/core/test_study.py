"""The window of a seeded study: when a trial may start and what its generator is told."""

from __future__ import annotations

from orchid.core.study import Trial, seen_by, startable


def test_a_trial_starts_once_the_one_parallel_before_it_has_ended() -> None:
    assert startable(parallel=3, created=0, oldest_open=0) == 3  # the first wave
    assert startable(parallel=3, created=3, oldest_open=0) == 0  # trial 0 still runs
    assert startable(parallel=3, created=3, oldest_open=1) == 1  # trial 0 ended: trial 3
    assert startable(parallel=3, created=5, oldest_open=5) == 3  # nothing open
    assert startable(parallel=1, created=4, oldest_open=3) == 0


def test_a_generator_sees_the_results_of_trials_parallel_before_and_the_rest_running() -> None:
    trials = [
        Trial(0, {"x": 0}, "complete", (1.0,), {0: 2.0}),
        Trial(1, {"x": 1}, "failed"),
        Trial(2, {"x": 2}, "complete", (0.5,), {0: 0.7}, {"note": 1}),
        Trial(3, {"x": 3}, "pruned", intermediate={0: 9.0}),
        Trial(4, {"x": 4}, "running"),
    ]
    seen = seen_by(list(reversed(trials)), 4, parallel=3)
    assert seen[:2] == trials[:2]  # ended at least `parallel` trials before: as they are
    assert seen[2:] == [
        Trial(2, {"x": 2}, "running", system={"note": 1}),  # ended early: hidden
        Trial(3, {"x": 3}, "running"),
    ]
    assert seen_by(trials, 4, parallel=1) == trials[:4]
    assert seen_by(trials, 0, parallel=3) == []
