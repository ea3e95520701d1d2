"""The monitor's pages against a live server: content, ownership, filters and pages."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pytest

from orchid.core.states import FileStatus as F
from orchid.store import catalog
from orchid.store.catalog import NewFile
from tests.ui.conftest import Api, Browser

LOCAL = pytest.mark.parametrize("executor_name", ["local"])


def sweep(n: int = 120, name: str = "sweep") -> dict[str, Any]:
    return {
        "name": name,
        "parameters": {"n": n, "label": "<b>not html</b>"},
        "works": [
            {"name": "simulate", "noop": True, "map": {"items": [{"i": i} for i in range(n)]}},
            {"name": "merge", "noop": True, "after": ["simulate"], "when": "params.n > 1"},
            {"name": "never", "noop": True, "after": ["merge"], "when": "params.n < 0"},
        ],
    }


def test_someone_elses_workflow_is_forbidden_on_every_page(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    wf = api.submit("alice", sweep(3))["id"]
    carol: Browser = browse("carol")
    for path in (
        f"/ui/workflows/{wf}",
        f"/ui/workflows/{wf}/jobs",
        f"/ui/workflows/{wf}/data",
        f"/ui/workflows/{wf}/graph.svg",
        f"/ui/workflows/{wf}/live",
    ):
        r = carol.get(path)
        assert r.status_code == 404, path  # as for a workflow that does not exist
        assert f"no workflow {wf}" in r.text and "text/html" in r.headers["content-type"]
    csrf = carol.csrf("/ui/")
    r = carol.post(f"/ui/workflows/{wf}/actions/abort", {"csrf": csrf})
    assert r.status_code == 404
    assert api.status(wf) != "cancelled"
    assert f'data-workflow="{wf}"' not in carol.get("/ui/").text
    # bob shares a group with alice but she did not share this one; root is an admin
    assert browse("bob").get(f"/ui/workflows/{wf}").status_code == 404
    root = browse("root")
    assert root.get(f"/ui/workflows/{wf}").status_code == 200
    assert f'data-workflow="{wf}"' in root.get("/ui/").text


def test_a_workflow_shared_with_a_group_is_open_to_its_members(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    wf = api.submit("alice", sweep(3), share_group="physics")["id"]
    bob: Browser = browse("bob")
    assert bob.get(f"/ui/workflows/{wf}").status_code == 200
    assert f'data-workflow="{wf}"' in bob.get("/ui/").text
    assert browse("carol").get(f"/ui/workflows/{wf}").status_code == 404


def test_unknown_things_are_404_and_bad_input_is_4xx(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    wf = api.submit("alice", sweep(3))["id"]
    b: Browser = browse("alice")
    for path in (
        "/ui/workflows/999",
        "/ui/jobs/999",
        f"/ui/workflows/{wf}/jobs?work=999",
        "/ui/nope",
    ):
        assert b.get(path).status_code == 404, path
    for path in (
        "/ui/workflows/abc",
        "/ui/workflows/0",
        f"/ui/workflows/{wf}/jobs?status=bogus",
        f"/ui/workflows/{wf}/jobs?after=-1",
        "/ui/?sort=evil",
        "/ui/?offset=-3",
        "/ui/live/workflows?ids=1;2",
        f"/ui/workflows/{wf}/actions/explode",
    ):
        r = b.get(path)
        assert 400 <= r.status_code < 500, (path, r.status_code)
    assert (
        b.post(f"/ui/workflows/{wf}/actions/explode", {"csrf": b.csrf("/ui/")}).status_code == 422
    )


def test_the_workflow_page_shows_graph_works_parameters_and_timeline(
    api: Api, browse, agents
) -> None:  # type: ignore[no-untyped-def]
    wf = api.submit("alice", sweep(5))["id"]
    api.wait_status(wf, "succeeded")
    page = browse("alice").get(f"/ui/workflows/{wf}")
    assert page.status_code == 200
    text = page.text
    assert re.findall(r'<g class="node" data-work="(\w+)" data-status="(\w+)"', text) == [
        ("simulate", "succeeded"),
        ("merge", "succeeded"),
        ("never", "skipped"),
    ]
    assert "succeeded · 5/5" in text  # the node's counts
    root = api.base_url.removesuffix("/api/v1")
    assert f'href="{root}/ui/workflows/{wf}/jobs?work=' in text
    assert "params.n &lt; 0" in text  # conditions shown, escaped
    assert "&lt;b&gt;not html&lt;/b&gt;" in text and "<b>not html</b>" not in text
    assert "work simulate running with 5 jobs" in text and "workflow succeeded" in text
    assert 'class="chart timeline"' in text
    assert (
        re.findall(r'data-action="(\w+)"(?: data-confirm="[^"]*")?>', text) == []
    )  # nothing to do once it ended


def test_a_nested_workflow_is_framed_with_its_works(api: Api, browse, agents) -> None:  # type: ignore[no-untyped-def]
    inner = {
        "parameters": {"k": 0},
        "works": [
            {"name": "a", "noop": True, "parameters": {"k": "${params.k}"}},
            {"name": "b", "noop": True, "after": ["a"]},
        ],
    }
    template = {
        "name": "nest",
        "works": [
            {"name": "prep", "noop": True},
            {"name": "sub", "after": ["prep"], "parameters": {"k": 3}, "workflow": inner},
        ],
    }
    wf = api.submit("alice", template)["id"]
    api.wait_status(wf, "succeeded")
    text = browse("alice").get(f"/ui/workflows/{wf}").text
    assert re.findall(r'<g class="node" data-work="([\w.]+)" data-status="(\w+)"', text) == [
        ("prep", "succeeded"),
        ("sub.a", "succeeded"),
        ("sub.b", "succeeded"),
        ("sub", "succeeded"),
    ]
    assert '<g class="nested" data-nested="sub">' in text
    assert "nested workflow, after prep" in text and "works sub.a, sub.b" in text


def test_actions_offered_follow_the_status(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    wf = api.submit("alice", sweep(3))["id"]  # no agents: it stays pending
    text = browse("alice").get(f"/ui/workflows/{wf}").text
    assert re.findall(r'data-action="(\w+)"(?: data-confirm="[^"]*")?>', text) == ["abort"]


def test_jobs_are_paged_and_filtered(api: Api, browse, agents) -> None:  # type: ignore[no-untyped-def]
    wf = api.submit("alice", sweep(120))["id"]
    api.wait_status(wf, "succeeded")
    b: Browser = browse("alice")
    work = re.search(r'data-work-id="(\d+)"', b.get(f"/ui/workflows/{wf}").text)
    assert work
    first = b.get(f"/ui/workflows/{wf}/jobs?work={work.group(1)}")
    assert first.status_code == 200
    ids = [int(i) for i in re.findall(r'<tr data-job="(\d+)">', first.text)]
    assert len(ids) == 50 and ids == sorted(ids)
    assert "120 jobs" in first.text and '{"i": 0}' in html.unescape(first.text)
    nxt = re.search(r'href="\?([^"]*after=\d+)" rel="next"', first.text)
    assert nxt and 'rel="prev"' not in first.text
    second = b.get(f"/ui/workflows/{wf}/jobs?" + html.unescape(nxt.group(1)))
    ids2 = [int(i) for i in re.findall(r'<tr data-job="(\d+)">', second.text)]
    assert len(ids2) == 50 and ids2[0] > ids[-1] and 'rel="prev"' in second.text
    last = b.get(f"/ui/workflows/{wf}/jobs?work={work.group(1)}&last=true")
    ids3 = [int(i) for i in re.findall(r'<tr data-job="(\d+)">', last.text)]
    assert len(ids3) == 50 and 'rel="next"' not in last.text and ids3[-1] == max(ids3)
    none = b.get(f"/ui/workflows/{wf}/jobs?status=failed")
    assert "No jobs here." in none.text
    done = b.get(f"/ui/workflows/{wf}/jobs?status=succeeded")
    assert len(re.findall(r'<tr data-job="', done.text)) == 50 and "121 jobs" in done.text


@LOCAL
def test_a_job_page_shows_arguments_timings_and_log(api: Api, browse, agents) -> None:  # type: ignore[no-untyped-def]
    tmpl = {
        "name": "logs",
        "works": [
            {
                "name": "say",
                "command": ["sh", "-c", 'echo "hello {who}"; echo oops >&2'],
                "parameters": {"who": "<world>"},
            }
        ],
    }
    wf = api.submit("alice", tmpl)["id"]
    api.wait_status(wf, "succeeded")
    b: Browser = browse("alice")
    job = re.search(r'<tr data-job="(\d+)">', b.get(f"/ui/workflows/{wf}/jobs").text)
    assert job
    page = b.get(f"/ui/jobs/{job.group(1)}")
    assert page.status_code == 200
    assert "hello &lt;world&gt;" in page.text and "oops" in page.text
    assert "1 of 1" in page.text and "exit code" in page.text
    whole = b.get(f"/ui/jobs/{job.group(1)}/log")
    assert whole.status_code == 200 and whole.text == "hello <world>\n"
    assert b.get(f"/ui/jobs/{job.group(1)}/log?stream=stderr").text == "oops\n"
    assert browse("carol").get(f"/ui/jobs/{job.group(1)}/log").status_code == 404


def test_the_list_filters_and_counts(api: Api, browse, agents) -> None:  # type: ignore[no-untyped-def]
    a = api.submit("alice", sweep(4, "alpha"))["id"]
    b_ = api.submit("alice", sweep(2, "beta"))["id"]
    api.wait_status(a, "succeeded")
    api.wait_status(b_, "succeeded")
    b: Browser = browse("alice")
    page = b.get("/ui/?name=alp&status=succeeded&age=1d&sort=name&order=asc")
    assert page.status_code == 200
    assert re.findall(r'<tr data-workflow="(\d+)">', page.text) == [str(a)]
    assert "succeeded 5" in page.text and "100%" in page.text
    assert b.get("/ui/?status=running").text.count("<tr data-workflow") == 0


def test_the_data_page_charts_the_catalog(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    wf = api.submit("alice", sweep(2))["id"]
    now = time.time()
    with api.db.begin() as conn:
        cid = catalog.add_collection(
            conn, wf, scope="data18", name="raw", manager="tapesim", now=now
        )
        catalog.add_files(
            conn,
            cid,
            [NewFile(f"f{i}", 1000, [F.NEW, F.AVAILABLE, F.PROCESSED][i % 3]) for i in range(30)],
            now=now,
        )
    b: Browser = browse("alice")
    assert f'href="/ui/workflows/{wf}/data"' in b.get(f"/ui/workflows/{wf}").text
    page = b.get(f"/ui/workflows/{wf}/data")
    assert page.status_code == 200
    assert "data18:raw" in page.text and "20.0 kB" in page.text  # available + processed on disk
    assert page.text.count('class="chart area"') == 2
    empty = api.submit("alice", sweep(2))["id"]
    assert "no collections" in b.get(f"/ui/workflows/{empty}/data").text


def test_the_graph_svg_download(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    wf = api.submit("alice", sweep(2))["id"]
    r = browse("alice").get(f"/ui/workflows/{wf}/graph.svg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert (
        r.text.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
        and 'data-work="merge"' in r.text
    )


def test_a_growing_workflow_shows_the_works_added_to_it(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    """Function-as-a-Task adds works to an open workflow: the page (and its cached
    template) follows."""
    from orchid.engine import extend

    wf = api.submit("alice", sweep(2))["id"]
    b: Browser = browse("alice")
    assert 'data-work="late"' not in b.get(f"/ui/workflows/{wf}").text
    extend.add_work(api.db, wf, {"name": "late", "noop": True, "after": ["merge"]}, time.time())
    text = b.get(f"/ui/workflows/{wf}").text
    assert 'data-work="late"' in text and "work late added" in text


@LOCAL
def test_a_job_page_shows_no_log_swapped_for_a_link(api: Api, browse, agents, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.api.test_log_links import SECRET, SWAP_FILES, SWAP_FOLDER

    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    b: Browser = browse("alice")
    for code, args in (
        (SWAP_FILES, [str(secret)]),
        (SWAP_FOLDER, [str(tmp_path / "evil"), str(secret)]),
    ):
        tmpl = {"name": "swap", "works": [{"name": "a", "command": ["python3", "-c", code, *args]}]}
        wf = api.submit("alice", tmpl)["id"]
        api.wait_status(wf)
        job = re.search(r'<tr data-job="(\d+)">', b.get(f"/ui/workflows/{wf}/jobs").text)
        assert job
        page = b.get(f"/ui/jobs/{job.group(1)}")
        assert page.status_code == 200
        assert "TOP SECRET" not in page.text
        assert "is not available" in page.text and "symbolic link" in page.text
        for stream in ("stdout", "stderr"):
            whole = b.get(f"/ui/jobs/{job.group(1)}/log?stream={stream}")
            assert whole.status_code == 404 and "TOP SECRET" not in whole.text


def test_admins_see_limits_and_their_usage(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    root = api.client("root")
    body = {"kind": "user", "subject": "alice", "quota": "workflows_per_day", "value": 7}
    assert root.put("/quotas", json=body).status_code == 200
    api.submit("alice", sweep(1))
    text = browse("root").get("/ui/").text
    assert "Limits and shares" in text
    assert "<td>workflows_per_day</td><td>7</td><td>1</td>" in text
    assert "Limits and shares" not in browse("alice").get("/ui/").text
