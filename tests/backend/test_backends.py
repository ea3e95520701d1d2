"""The two kinds of :class:`orchid.backend.Backend` give the same views of one workflow:
the database here (:class:`EmbeddedBackend`) and the server over it (:class:`RemoteBackend`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchid.backend.embedded import EmbeddedBackend
from orchid.backend.remote import RemoteBackend
from orchid.core.states import TERMINAL_WORKFLOW
from orchid.settings import Settings
from orchid.store.db import Database
from tests.client.serverkit import serve

TEMPLATE = {
    "name": "both",
    "works": [
        {"name": "ok", "command": ["sh", "-c", "echo out {i}"], "map": {"product": {"i": [1, 2]}}},
        {"name": "bad", "command": ["sh", "-c", "echo oops >&2; exit 3"]},
    ],
}


def test_here_and_through_the_server_the_views_agree(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serve(home) as server, RemoteBackend(server.client("alice")) as remote:
        settings = Settings.load(env={}, home=home, db=str(home / "orchid.db"))
        here = EmbeddedBackend(settings, db=Database(settings.db_url))
        with here:
            wf = remote.submit(TEMPLATE)
            deadline = time.monotonic() + 60
            while remote.workflow_status(wf)[0] not in TERMINAL_WORKFLOW:
                assert time.monotonic() < deadline, "the workflow did not end"
                remote.wait(wf, 0.1)

            (wf_r, works_r), (wf_h, works_h) = remote.snapshot(wf), here.snapshot(wf)
            assert wf_r.status == wf_h.status == "failed"
            assert [(w.name, w.status, dict(w.counts)) for w in works_r] == [
                (w.name, w.status, dict(w.counts)) for w in works_h
            ]
            assert remote.work_list(wf) == here.work_list(wf)
            lines = list(remote.job_lines(wf, status=[], work_id=None, page=1))
            assert lines == list(here.job_lines(wf, status=[], work_id=None, page=1))
            assert [line.work for _, line in lines] == ["ok", "ok", "bad"]
            failed = remote.failed_jobs(wf, 5)
            assert failed == here.failed_jobs(wf, 5) and [f.work for f in failed] == ["bad"]
            assert [w.id for w in remote.recent(5)] == [w.id for w in here.recent(5)] == [wf]
            job = failed[0].id
            assert b"".join(remote.logs(job, "stderr")) == b"".join(here.logs(job, "stderr"))
            assert b"".join(here.logs(job, "stderr")) == b"oops\n"


def test_a_status_this_client_does_not_know_is_a_clear_error() -> None:
    from orchid.backend.remote import from_api
    from orchid.client.errors import ServerError
    from orchid.wire import WorkflowDetail

    work = {"id": 1, "name": "w", "iteration": 0, "status": "running", "message": ""}
    detail = WorkflowDetail.model_validate(
        {
            **{"id": 3, "name": "x", "owner": "a", "share_group": None, "message": ""},
            **{"params": {}, "created_at": 1.0, "updated_at": 2.0, "finished_at": None},
            "status": "running",
            "works": [
                {**work, "counts": {"teleported": 1}, "started_at": 1.0, "finished_at": None}
            ],
        }
    )
    with pytest.raises(ServerError, match=r"works\.0\.counts.*older than the server"):
        from_api(detail)
