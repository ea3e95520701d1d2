"""Limits and fair share in the store (issue 21): the carrier's claim under running limits
and weights, and the checks at submission. Each test runs on SQLite and PostgreSQL, with
an explicit clock; the claims are taken by hand like the carrier's."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from orchid.engine.submit import submit
from orchid.errors import InvalidInput, QuotaExceeded
from orchid.store import dispatch, quotas
from orchid.store.db import Database
from orchid.store.tables import workflows as workflows_table
from tests.store.test_jobs import LEASE, T0, start

Quota = quotas.Quota


def wide(n: int, name: str = "w", priority: int = 0) -> dict[str, Any]:
    jobs = [{"name": f"j{i}"} for i in range(n)]
    return {
        "name": name,
        "priority": priority,
        "works": [{"name": "a", "noop": True, "jobs": jobs}],
    }


def run(db: Database, owner: str, n: int, group: str | None = None, **kw: Any) -> int:
    wf = submit(db, wide(n, **kw), base_dir=None, now=T0, owner=owner, share_group=group)
    start(db, wf)
    return wf


def set_(db: Database, *qs: Quota) -> None:
    with db.begin() as conn:
        for q in qs:
            quotas.set_quota(conn, q, T0)


def claim(db: Database, n: int, now: float = T0, executor: str = "local") -> list[Any]:
    with db.begin() as conn:
        return dispatch.claim_ready(conn, "carrier", now, LEASE, n, None, executor)


def owners(db: Database, claimed: list[Any]) -> Counter[str]:
    with db.begin() as conn:
        found = dispatch.workflow_owners(conn, {c.workflow_id for c in claimed})
    return Counter(found[c.workflow_id][0] for c in claimed)


def test_without_quotas_the_claim_is_oldest_first(db: Database) -> None:
    run(db, "alice", 10)
    run(db, "bob", 10)
    assert owners(db, claim(db, 10)) == {"alice": 10}


def test_equal_weights_share_the_slots(db: Database) -> None:
    """With shares set, a user whose big workflow came first does not take every slot."""
    run(db, "alice", 1000)
    run(db, "bob", 5)
    set_(db, Quota("user", "alice", "weight", 1))
    got = owners(db, claim(db, 4))
    assert got == {"alice": 2, "bob": 2}
    got = owners(db, claim(db, 6))  # bob has 3 left: alice gets the rest
    assert got == {"alice": 3, "bob": 3}


def test_weights_give_slots_in_proportion(db: Database) -> None:
    run(db, "alice", 100)
    run(db, "bob", 100)
    set_(db, Quota("user", "alice", "weight", 3), Quota("user", "bob", "weight", 1))
    assert owners(db, claim(db, 8)) == {"alice": 6, "bob": 2}


def test_group_weight_applies_to_its_users(db: Database) -> None:
    run(db, "alice", 100, group="physics")
    run(db, "bob", 100)
    set_(db, Quota("group", "physics", "weight", 4))
    assert owners(db, claim(db, 10)) == {"alice": 8, "bob": 2}


def test_running_limit_per_user(db: Database) -> None:
    run(db, "alice", 100)
    run(db, "bob", 100)
    set_(db, Quota("user", "alice", "running", 3))
    assert owners(db, claim(db, 20)) == {"alice": 3, "bob": 17}
    assert owners(db, claim(db, 20)) == {"bob": 20}  # alice still has 3 in flight


def test_running_limit_per_group_and_executor(db: Database) -> None:
    run(db, "alice", 100, group="physics")
    run(db, "bob", 100, group="physics")
    run(db, "carol", 100)
    set_(db, Quota("group", "physics", "running", 4), Quota("executor", "local", "running", 10))
    got = owners(db, claim(db, 50))
    assert got["alice"] + got["bob"] == 4 and got["carol"] == 6
    assert claim(db, 50) == []  # the executor's limit is reached
    # another executor is not bound by local's limit
    assert len(claim(db, 5, executor="other")) == 5


def test_running_limit_of_a_user_on_one_executor(db: Database) -> None:
    run(db, "alice", 100)
    set_(db, Quota("user", "alice", "running", 2, executor="slurm"))
    assert len(claim(db, 5, executor="slurm")) == 2
    assert len(claim(db, 5, executor="local")) == 5


def test_priority_orders_a_users_workflows(db: Database) -> None:
    low = run(db, "alice", 10, name="low")
    high = run(db, "alice", 10, name="high", priority=5)
    set_(db, Quota("user", "alice", "weight", 1))
    got = Counter(c.workflow_id for c in claim(db, 12))
    assert got == {high: 10, low: 2}


def test_decayed_usage_favours_who_used_less(db: Database) -> None:
    """A user who held slots recently waits behind one who did not, then it evens out."""
    run(db, "alice", 100)
    set_(db, Quota("user", "alice", "weight", 1))
    assert len(claim(db, 4)) == 4  # alice alone: all 4 slots
    with db.begin() as conn:  # her jobs ended; bob comes 5 minutes later
        conn.execute(
            sa.text(
                "UPDATE jobs SET status = 'succeeded', owner = NULL, lease_until = NULL, finished_at = :t WHERE status = 'submitted'"
            ),
            {"t": T0 + 300},
        )
    run(db, "bob", 100)
    claim(db, 0, now=T0 + 300)  # the usage is sampled at each claim
    got = owners(db, claim(db, 2, now=T0 + 300))
    assert got == {"bob": 2}


def test_jobs_per_workflow_is_a_422(db: Database) -> None:
    set_(db, Quota("user", "alice", "jobs_per_workflow", 5))
    with pytest.raises(QuotaExceeded) as e:
        submit(db, wide(6), base_dir=None, now=T0, owner="alice")
    assert (e.value.quota, e.value.value, e.value.used, e.value.rate) == (
        "jobs_per_workflow",
        5,
        6,
        False,
    )
    submit(db, wide(5), base_dir=None, now=T0, owner="alice")
    submit(db, wide(6), base_dir=None, now=T0, owner="bob")


def test_workflows_per_day_and_queued_are_429s(db: Database) -> None:
    set_(db, Quota("user", "alice", "workflows_per_day", 2), Quota("group", "g", "queued", 15))
    for _ in range(2):
        submit(db, wide(1), base_dir=None, now=T0, owner="alice")
    with pytest.raises(QuotaExceeded) as e:
        submit(db, wide(1), base_dir=None, now=T0 + 10, owner="alice")
    assert (e.value.quota, e.value.value, e.value.used, e.value.rate) == (
        "workflows_per_day",
        2,
        2,
        True,
    )
    submit(db, wide(1), base_dir=None, now=T0 + quotas.DAY_S + 1, owner="alice")  # a day later
    with db.begin() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(workflows_table)).scalar_one()
    assert n == 3  # the refused one was rolled back
    submit(db, wide(10), base_dir=None, now=T0, owner="bob", share_group="g")
    with pytest.raises(QuotaExceeded) as e:
        submit(db, wide(6), base_dir=None, now=T0, owner="carol", share_group="g")
    assert (e.value.quota, e.value.used) == ("queued", 10)


def test_usage_and_bad_quotas(db: Database) -> None:
    run(db, "alice", 10)
    set_(db, Quota("user", "alice", "running", 5), Quota("user", "alice", "queued", 50))
    claim(db, 3)
    with db.begin() as conn:
        used = {u.quota.quota: u.used for u in quotas.usage(conn, T0)}
        assert used == {"running": 3, "queued": 7}
        assert quotas.unset(conn, "user", "alice", "queued")
        assert not quotas.unset(conn, "user", "alice", "queued")
    for bad in (
        Quota("team", "x", "running", 1),
        Quota("user", "x", "speed", 1),
        Quota("executor", "x", "weight", 1),
        Quota("user", "x", "weight", 0),
        Quota("user", "x", "queued", 1, executor="slurm"),
    ):
        with pytest.raises(InvalidInput):
            bad.check()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_share_decay_is_a_setting(db: Database, tmp_path: Any) -> None:
    from orchid.errors import ConfigError
    from orchid.settings import Settings

    settings = Settings.load(env={"ORCHID_SHARE_DECAY": "60"}, home=tmp_path, db=db.url)
    assert settings.share_decay == 60.0
    with pytest.raises(ConfigError, match="share_decay"):
        Settings.load(env={"ORCHID_SHARE_DECAY": "0"}, home=tmp_path, db=db.url)
    # a shorter memory forgets sooner: alice's 4 slots of 300 s ago weigh less with 60 s
    run(db, "alice", 100)
    set_(db, Quota("user", "alice", "weight", 1))
    claim(db, 4)
    with db.begin() as conn:
        decayed, _ = quotas._decay(conn, T0 + 300, 60.0)
        slow, _ = quotas._decay(conn, T0 + 300, 300.0)
    assert decayed["alice"] > slow["alice"]  # in flight all along: the short one caught up
