"""The monitor in a real browser: Debian's Chromium driven by Playwright, against a server
on 127.0.0.1 with the agents and the local executor running real jobs.

Screenshots of each page go to ``test-artifacts/ui/``; with ``ORCHID_UPDATE_SCREENSHOTS=1``
they are copied to ``docs/screenshots/`` too (the README shows those).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchid.auth import AuthConfig
from orchid.engine.runner import make_runner
from orchid.server import create_app
from orchid.store.db import Database
from tests.api.conftest import api_settings, make_tokens, serve
from tests.waiting import wait_for

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
DOCS = ROOT / "docs" / "screenshots"
WAIT_MS = 30_000

CAMPAIGN = {
    "name": "calibration-campaign",
    "description": "fetch inputs, calibrate and validate them, merge, then publish or alert",
    "parameters": {"runs": 150, "threshold": 0.9},
    "works": [
        {
            "name": "fetch",
            "command": ["sh", "-c", "echo fetched run {run}"],
            "map": {"items": [{"run": i} for i in range(20)]},
        },
        {
            "name": "calibrate",
            "after": ["fetch"],
            "command": ["sh", "-c", "echo calibrating {run}; sleep 0.3"],
            "map": {"items": [{"run": i} for i in range(150)]},
        },
        {
            "name": "validate",
            "after": ["fetch"],
            "command": ["sh", "-c", "sleep 0.2; echo valid {run}"],
            "map": {"items": [{"run": i} for i in range(40)]},
        },
        {"name": "merge", "after": ["calibrate", "validate"], "noop": True},
        {"name": "publish", "after": ["merge"], "when": "params.threshold < 1", "noop": True},
        {"name": "alert", "after": ["merge"], "trigger": "one_failed", "noop": True},
    ],
}
QUICK = {
    "name": "energy-sweep",
    "works": [
        {
            "name": "simulate",
            "noop": True,
            "map": {"product": {"seed": [1, 2, 3], "energy": [10, 20, 40]}},
        },
        {"name": "best", "after": ["simulate"], "noop": True},
    ],
}


@dataclass
class Site:
    url: str
    tokens: dict[str, str]
    db: Database

    def submit(self, user: str, template: dict[str, Any]) -> int:
        r = httpx.post(
            f"{self.url}/api/v1/workflows",
            json={"template": template},
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def status(self, wf: int) -> str:
        r = httpx.get(
            f"{self.url}/api/v1/workflows/{wf}",
            headers={"Authorization": f"Bearer {self.tokens['root']}"},
            timeout=30,
        )
        return str(r.json()["status"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("browser")
    db = Database(f"sqlite:///{home / 'orchid.db'}")
    db.upgrade()
    settings = api_settings(db, home, "local")
    server, thread, port = serve(create_app(settings, AuthConfig(), db=db))
    runner = make_runner(settings, db)
    executor = runner.executor
    agents = threading.Thread(target=runner.run, name="agents", daemon=True)
    agents.start()
    toks, _ = make_tokens(db)
    try:
        yield Site(f"http://127.0.0.1:{port}", toks, db)
    finally:
        runner.stop()
        agents.join(20)
        executor.close()
        runner.close()
        server.should_exit = True
        thread.join(10)
        db.dispose()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's package")
        pytest.skip(f"{CHROMIUM} is missing (`make chromium` installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(WAIT_MS)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("ORCHID_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS / path.name)


def log_in(page: Any, site: Site, user: str, start: str = "/ui/") -> None:
    page.goto(site.url + start)
    page.wait_for_selector("input[name=token]")
    assert "/ui/login" in page.url
    page.fill("input[name=token]", site.tokens[user])
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}{start}*")


def wait_status(site: Site, wf: int, *wanted: str) -> None:
    wait_for(
        f"workflow {wf} to reach {wanted}", lambda: site.status(wf) in wanted, WAIT_MS / 1000, 0.1
    )


def test_log_in_watch_abort_live_and_page_through_jobs(site: Site, page: Any) -> None:
    quick = site.submit("alice", QUICK)
    wait_status(site, quick, "succeeded")
    wf = site.submit("alice", CAMPAIGN)
    page.goto(site.url + "/ui/")
    page.wait_for_selector("input[name=token]")
    shot(page, "login")
    log_in(page, site, "alice")
    row = page.locator(f"tr[data-workflow='{wf}']")
    row.wait_for()
    assert page.locator(f"tr[data-workflow='{quick}'] .badge").inner_text() == "succeeded"

    # the workflow page: its graph, then the work that runs, recoloured live
    row.locator("a").first.click()
    page.wait_for_url(f"{site.url}/ui/workflows/{wf}")
    page.wait_for_selector("svg.orchid-graph g.node[data-work='calibrate']")
    works = page.eval_on_selector_all(
        "svg.orchid-graph g.node", "gs => gs.map(g => g.dataset.work)"
    )
    assert works == ["fetch", "calibrate", "validate", "merge", "publish", "alert"]
    page.wait_for_selector("g.node[data-work='calibrate'][data-status='running']")
    page.wait_for_function(
        "() => /[1-9]/.test(document.querySelector(\"g.node[data-work='calibrate'] text.counts\").textContent.split('·')[1] || '')"
    )
    page.goto(site.url + "/ui/")  # the list, while it runs
    page.locator(f"tr[data-workflow='{wf}'] .badge").wait_for()
    shot(page, "workflows")
    page.goto(f"{site.url}/ui/workflows/{wf}")
    page.wait_for_selector("g.node[data-work='calibrate'][data-status='running']")
    shot(page, "workflow")

    # abort: the command is queued, then the status changes without a reload
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.click("form[data-action='abort'] button")
    page.wait_for_url(f"{site.url}/ui/workflows/{wf}?queued=abort")
    assert asked == [f"Abort workflow {wf} (calibration-campaign)? Running jobs are stopped."]
    page.evaluate("window.notReloaded = true")
    badge = page.locator(".head [data-status-badge]")
    page.wait_for_function(
        "() => document.querySelector('.head [data-status-badge]').textContent === 'cancelled'"
    )
    assert badge.inner_text() == "cancelled"
    assert page.evaluate("window.notReloaded === true")
    page.wait_for_selector("g.node[data-work='calibrate'][data-status='cancelled']")
    assert page.locator("form[data-action='abort']").is_hidden()
    assert site.status(wf) == "cancelled"

    # jobs: page forwards and back
    page.click(".actions .links a[href$='/jobs']")
    page.wait_for_url(f"{site.url}/ui/workflows/{wf}/jobs")
    first = page.eval_on_selector_all("tr[data-job]", "rs => rs.map(r => +r.dataset.job)")
    assert len(first) == 50
    page.click("a[rel=next]")
    page.wait_for_url("**after=*")
    second = page.eval_on_selector_all("tr[data-job]", "rs => rs.map(r => +r.dataset.job)")
    assert len(second) == 50 and min(second) > max(first)
    page.click("a[rel=prev]")
    page.wait_for_url("**before=*")
    assert page.eval_on_selector_all("tr[data-job]", "rs => rs.map(r => +r.dataset.job)") == first
    page.select_option("select[name=status]", "succeeded")
    page.click("form.filters button")
    page.wait_for_url("**status=succeeded*")
    statuses = page.eval_on_selector_all(
        "tr[data-job] .badge", "bs => [...new Set(bs.map(b => b.textContent))]"
    )
    assert statuses == ["succeeded"]
    shot(page, "jobs")

    # one job, with its log
    page.locator("tr[data-job] a").first.click()
    page.wait_for_selector("pre.log")
    assert "fetched run" in page.locator("pre.log").first.inner_text()
    shot(page, "job")


CAROUSEL = {
    "name": "carousel",
    "description": "reprocess two datasets file by file as the simulated tape library stages them",
    "works": [
        {
            "name": "reprocess",
            "command": ["sh", "-c", "sleep 0.05"],
            "input": {
                "manager": "tapesim",
                "collections": ["data18:raw.00348885", "data18:raw.00348894"],
                "release": "per-file",
                "files_per_job": 10,
                "delete_after": "processed",
            },
        }
    ],
}


def test_the_data_page_charts_a_carousel_run(site: Site, page: Any) -> None:
    wf = site.submit("alice", CAROUSEL)
    log_in(page, site, "alice", f"/ui/workflows/{wf}")
    wait_status(site, wf, "succeeded")
    page.click(".actions .links a[href$='/data']")
    page.wait_for_url(f"{site.url}/ui/workflows/{wf}/data")
    page.wait_for_selector("svg.chart.area")
    assert "data18:raw.00348885" in page.content()
    assert "disk buffer" in page.content()
    shot(page, "data")


def test_a_user_cannot_open_another_users_workflow_page(site: Site, page: Any) -> None:
    wf = site.submit("alice", QUICK)
    log_in(page, site, "carol")
    response = page.goto(f"{site.url}/ui/workflows/{wf}")
    assert response.status == 404  # as for a workflow that does not exist
    assert page.locator("h1").inner_text() == "Not found"
    assert f"no workflow {wf}" in page.locator(".error").inner_text()
    page.goto(site.url + "/ui/")
    assert page.locator(f"tr[data-workflow='{wf}']").count() == 0


TUNE = {
    "name": "tune-toy",
    "description": "tune a toy objective with TPE, 4 trials at a time",
    "works": [
        {
            "name": "search",
            "command": [
                "python3",
                "-c",
                "import math; x, lr = {x}, {lr}; "
                "print((x - 0.3) ** 2 + 0.05 * math.sin(9 * x) + abs(math.log10(lr) + 2) / 10"
                " + (0.02 if '{kind}' == 'b' else 0))",
            ],
            "hpo": {
                "space": {
                    "x": {"type": "float", "low": -2.0, "high": 2.0},
                    "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
                    "kind": {"type": "categorical", "choices": ["a", "b"]},
                },
                "max_trials": 40,
                "parallel": 4,
                "strategy": "tpe",
                "seed": 11,
            },
        }
    ],
}


def test_a_study_page_draws_the_search_live(site: Site, page: Any) -> None:
    wf = site.submit("alice", TUNE)
    headers = {"Authorization": f"Bearer {site.tokens['alice']}"}

    def study() -> int | None:
        r = httpx.get(f"{site.url}/api/v1/workflows/{wf}/studies", headers=headers, timeout=30)
        return int(r.json()[0]["id"]) if r.status_code == 200 and r.json() else None

    deadline = time.monotonic() + WAIT_MS / 1000
    while (sid := study()) is None:
        assert time.monotonic() < deadline, "the study never started"
        time.sleep(0.1)
    log_in(page, site, "alice", f"/ui/workflows/{wf}")
    page.click("a[data-study]")
    page.wait_for_url(f"{site.url}/ui/studies/{sid}")
    wait_status(site, wf, "succeeded")
    # the page follows the study without a reload: the charts are fetched again as it goes
    page.evaluate("window.notReloaded = true")
    page.wait_for_function(
        "() => document.querySelector('#study [data-trial-counts]').textContent.includes('complete 40')"
    )
    assert page.evaluate("window.notReloaded === true")
    assert page.locator("#study circle").count() == 40
    assert page.locator("#study polyline.best").count() == 1
    assert page.locator("table.best tr[data-best]").count() == 1
    shot(page, "study")
