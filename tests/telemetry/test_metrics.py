"""Prometheus metrics: what the agents report, what the database counts, who may read them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchid.bus.memory import MemoryBus
from orchid.engine.runner import make_runner
from orchid.engine.submit import submit
from orchid.settings import Settings
from orchid.store import tokens
from orchid.store.db import Database
from orchid.telemetry.metrics import Metrics, TimedBus, _BatchHistogram
from tests.api.conftest import Api, api, executor_name  # noqa: F401


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


def test_an_instrumented_run_reports_agents_database_and_release(
    db: Database, tmp_path: Path
) -> None:
    metrics = Metrics()
    metrics.watch_database(db)
    settings = Settings.load(env={}, home=tmp_path, db=db.url, executor="null", poll_interval=0.05)
    runner = make_runner(settings, db, bus=metrics.wrap_bus(MemoryBus()), metrics=metrics)
    executor = runner.executor
    metrics.watch_agents(runner.agents)
    template = {
        "name": "m",
        "works": [
            {"name": "a", "noop": True, "map": {"items": [{"i": i} for i in range(40)]}},
            {"name": "b", "noop": True, "after": ["a"]},
        ],
    }
    wf = submit(db, template, base_dir=None, now=time.time())

    def ended() -> bool:
        with db.engine.connect() as conn:
            from orchid.store import workflows

            return workflows.get(conn, wf).status == "succeeded"

    try:
        runner.run(until=ended, check_every=0.02)
    finally:
        executor.close()
        runner.close()
    text = metrics.render().decode()
    for agent in ("clerk", "transformer", "carrier", "trigger"):
        assert value(text, "orchid_agent_loop_seconds_count", agent=agent) > 0
        assert value(text, "orchid_claim_seconds_count", agent=agent) > 0
    assert value(text, "orchid_claimed_rows_total", agent="carrier") == 41
    assert value(text, "orchid_release_latency_seconds_count") == 41
    assert value(text, "orchid_release_latency_seconds_bucket", le="+Inf") == 41
    assert value(text, "orchid_jobs", status="succeeded") == 41
    assert value(text, "orchid_works", status="succeeded") == 2
    assert value(text, "orchid_workflows", status="succeeded") == 1
    assert value(text, "orchid_db_query_seconds_count", statement="update") > 0
    assert value(text, "orchid_executor_queue_depth") == 0


def test_the_batch_histogram_counts_each_value_in_its_bucket() -> None:
    h = _BatchHistogram("x_seconds", "x", [0.01, 0.1, 1.0])
    h.observe_many([0.001, 0.01, 0.05, 0.5, 5.0, 7.0])
    h.observe_many([])
    (family,) = h.collect()
    got = {s.labels.get("le"): s.value for s in family.samples if s.name == "x_seconds_bucket"}
    assert got == {"0.01": 2, "0.1": 3, "1.0": 4, "+Inf": 6}
    assert next(s.value for s in family.samples if s.name == "x_seconds_sum") == pytest.approx(
        12.561
    )


def test_the_bus_times_wake_ups_of_a_sleeping_loop_only() -> None:
    seen: list[float] = []
    bus = TimedBus(MemoryBus(), seen.append)
    bus.notify("jobs")  # while the loop works: picked up by its next round, not timed
    assert bus.wait(5) == {"jobs"} and seen == []
    threading.Timer(0.05, bus.notify, args=("jobs",)).start()
    assert bus.wait(10) == {"jobs"}
    assert len(seen) == 1 and seen[0] >= 0
    assert bus.wait(0.01) == set() and len(seen) == 1


def test_metrics_are_for_admins_and_the_metrics_group(api: Api) -> None:  # noqa: F811
    with api.db.begin() as conn:
        _, scraper = tokens.create(
            conn, user="prometheus", admin=False, groups=["metrics"], now=time.time()
        )
    root = api.base_url.removesuffix("/api/v1")
    assert httpx.get(f"{root}/metrics").status_code == 401
    r = httpx.get(f"{root}/metrics", headers={"Authorization": f"Bearer {api.tokens['alice']}"})
    assert r.status_code == 403 and "orchid token create --user prometheus" in r.json()["error"]
    api.submit("alice")
    for token in (api.tokens["root"], scraper):
        r = httpx.get(f"{root}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert value(r.text, "orchid_workflows", status="pending") == 1
        assert value(r.text, "orchid_works", status="waiting") == 1
        assert value(r.text, "orchid_db_query_seconds_count", statement="select") > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_orchid_agents_serves_its_own_metrics(db: Database, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "ORCHID_HOME": str(tmp_path), "ORCHID_POLL_INTERVAL": "0.05"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchid.cli.main",
            "agents",
            "--db",
            db.url,
            "--executor",
            "null",
            "--metrics-port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                if "orchid_agent_loop_seconds_count" in r.text:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the metrics port never answered"
            time.sleep(0.1)
        assert value(r.text, "orchid_executor_queue_depth") == 0
        assert "orchid_jobs" not in r.text  # status gauges are the server's job
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_quotas_are_gauges_of_limit_and_usage(db: Database) -> None:
    from orchid.store import quotas

    metrics = Metrics()
    metrics.watch_database(db)
    assert b"orchid_quota_limit" not in metrics.render()  # none set: no series
    with db.begin() as conn:
        quotas.set_quota(conn, quotas.Quota("user", "alice", "workflows_per_day", 5), time.time())
    submit(db, {"name": "m", "works": [{"name": "a", "noop": True}]}, base_dir=None,
           now=time.time(), owner="alice")  # fmt: skip
    text = metrics.render().decode()
    key = 'kind="user",quota="workflows_per_day",subject="alice"'
    assert f'orchid_quota_limit{{executor="*",{key}}} 5.0' in text
    assert f'orchid_quota_used{{executor="*",{key}}} 1.0' in text
    from orchid.store import resultbytes

    wf = submit(db, {"name": "m", "works": [{"name": "a", "noop": True}]}, base_dir=None,
                now=time.time(), owner="bob", share_group="g")  # fmt: skip
    with db.begin() as conn:  # results held: the carriers count them as they record them
        quotas.set_quota(conn, quotas.Quota("group", "g", "result_bytes", 1000), time.time())
        resultbytes.add(conn, {wf: 300}, shard=3)
    key = 'kind="group",quota="result_bytes",subject="g"'
    assert f'orchid_quota_used{{executor="*",{key}}} 300.0' in metrics.render().decode()
