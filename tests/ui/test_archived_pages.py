"""The monitor's pages of an archived workflow: its summary for those who could see it,
404 for the others, 410 for what went into the archive."""

from __future__ import annotations

from orchid.engine.archivist import Archiver, Policy
from tests.api.conftest import Agents, Api, noop_template
from tests.ui.conftest import Browser


def test_an_archived_workflow_has_a_summary_page(api: Api, agents: Agents, browse) -> None:  # type: ignore[no-untyped-def]
    wf = api.submit("alice", noop_template("old", works=2))["id"]
    api.wait_status(wf, "succeeded")
    Archiver(api.db, Policy.from_settings(api.settings)).archive(wf)

    alice: Browser = browse("alice")
    r = alice.get(f"/ui/workflows/{wf}")
    assert r.status_code == 200, r.text
    assert "data-archived" in r.text and f"orchid restore {wf}" in r.text
    assert 'data-work-id="' in r.text  # its works, from the summary
    listed = alice.get("/ui/").text
    assert f'data-workflow="{wf}"' in listed and "data-archived" in listed
    for path in ("jobs", "graph.svg", "data"):
        r = alice.get(f"/ui/workflows/{wf}/{path}")
        assert r.status_code == 410 and "archived" in r.text, path
    assert browse("carol").get(f"/ui/workflows/{wf}").status_code == 404
