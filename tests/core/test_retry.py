"""Retry policies: one typed value from the template to where a failure is recorded."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from orchid.core.retry import MAX_INTERVAL, NO_RETRY, RetryPolicy
from orchid.core.template import json_schema, parse_template, retry_policy
from orchid.errors import TemplateError


def template(work: dict[str, Any] | None = None, **defaults: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "defaults": defaults,
        "works": [{"name": "a", "noop": True, **(work or {})}, {"name": "b", "noop": True}],
    }


def test_retries_100_waits_at_most_an_hour() -> None:
    """`retries: 100` once told a job to wait 2^99 s before its last attempt."""
    policy = retry_policy(parse_template(template({"retries": 100})), "a")
    assert policy == RetryPolicy(1.0, 2.0, MAX_INTERVAL, 101)
    waits = [policy.delay(attempt) for attempt in range(1, 101)]
    assert waits[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert waits[12] == MAX_INTERVAL and waits[-1] == MAX_INTERVAL
    assert max(waits) == MAX_INTERVAL == 3600.0


def test_existing_templates_keep_their_meaning() -> None:
    t = parse_template(template({"retries": 2, "retry_delay": 5}))
    assert retry_policy(t, "a") == RetryPolicy(5.0, 2.0, 3600.0, 3)
    assert [retry_policy(t, "a").delay(n) for n in (1, 2)] == [5.0, 10.0]
    assert retry_policy(t, "b") == NO_RETRY  # defaults: no retry


def test_work_keys_override_defaults() -> None:
    t = parse_template(
        template(
            {"retries": 5, "retry_backoff": 3, "retry_max_delay": 20},
            retries=1,
            retry_delay=2,
            retry_backoff=1.5,
            retry_max_delay=60,
        )
    )
    a, b = retry_policy(t, "a"), retry_policy(t, "b")
    assert a == RetryPolicy(2.0, 3.0, 20.0, 6)
    assert [a.delay(n) for n in range(1, 6)] == [2.0, 6.0, 18.0, 20.0, 20.0]
    assert b == RetryPolicy(2.0, 1.5, 60.0, 2)


def test_a_first_delay_above_the_maximum_is_capped() -> None:
    policy = retry_policy(parse_template(template({"retries": 3, "retry_delay": 7200})), "a")
    assert [policy.delay(n) for n in (1, 2, 3)] == [3600.0, 3600.0, 3600.0]


@pytest.mark.parametrize(
    ("work", "where"),
    [
        ({"retry_backoff": 0.5}, "works[0](a).retry_backoff"),
        ({"retry_max_delay": -1}, "works[0](a).retry_max_delay"),
        ({"retry_max_delay": 31 * 86400}, "works[0](a).retry_max_delay"),
        ({"retry_delay": -1}, "works[0](a).retry_delay"),
    ],
)
def test_bad_retry_keys_are_template_errors(work: dict[str, Any], where: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(template(work))
    assert info.value.problems[0][0] == where


def test_delay_never_overflows() -> None:
    steep = RetryPolicy(initial_interval=1.0, backoff_coefficient=100.0, maximum_interval=1e9)
    assert steep.delay(10**9) == 1e9
    assert RetryPolicy(initial_interval=0.0).delay(10**6) == 0.0
    assert RetryPolicy(backoff_coefficient=1.0).delay(10**6) == 1.0
    assert RetryPolicy().delay(0) == 1.0  # attempt 0: as the first


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_interval": -1.0},
        {"initial_interval": math.inf},
        {"backoff_coefficient": 0.5},
        {"maximum_interval": math.nan},
        {"maximum_attempts": 0},
    ],
)
def test_a_policy_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_the_schema_documents_the_new_keys() -> None:
    text = json.dumps(json_schema())
    for key in ("retry_backoff", "retry_max_delay"):
        assert key in text
