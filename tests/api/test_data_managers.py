"""Data managers in a multi-user server (issue 15, item 2): a posix manager reaches only its
own root, and only the users and groups it is configured for may use it.

The routes of the issue, each refused: bob naming alice's job logs as a folder to process
and delete (``home/logs/N``), ``..``, absolute paths, a link out of the root, and users
not allowed to use a manager. The server runs with ``cwd`` = the folder that holds
ORCHID_HOME, as the agents of the issue did.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchid.api.app import PREFIX, create_app
from orchid.api.auth import AuthConfig
from orchid.engine.submit import submit
from orchid.settings import Settings
from orchid.store.db import Database
from tests.api.conftest import MAX_BODY, Agents, Api, ErrorRecorder, make_tokens, serve

MANAGERS = """
[spool]
kind = "posix"
root = "{root}/spool"
settle_s = 0.0
poll_interval = 0.05

[alices]
kind = "posix"
root = "{root}/alices"
settle_s = 0.0
poll_interval = 0.05
users = ["alice"]

[physics]
kind = "posix"
root = "{root}/physics"
settle_s = 0.0
poll_interval = 0.05
groups = ["physics"]
"""


@pytest.fixture
def api(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor_name: str
) -> Iterator[Api]:
    """A live server whose data managers are those of MANAGERS (no built-in posix)."""
    monkeypatch.chdir(tmp_path)  # the agents' working folder holds ORCHID_HOME (`home`)
    home = tmp_path / "home"
    for folder in ("home", "spool", "alices", "physics"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "_END").touch()  # no more files will come: works can end
    logs = home / "logs" / "1"  # alice's job logs
    logs.mkdir(parents=True)
    (logs / "1.1.out").write_text("alice's results\n")
    (logs / "1.1.err").write_text("alice's warnings\n")
    path = tmp_path / "managers.toml"
    path.write_text(MANAGERS.format(root=tmp_path))
    settings = Settings.load(
        env={"ORCHID_DATA_MANAGERS": str(path)},
        home=home,
        db=db.url,
        executor=executor_name,
        poll_interval=0.05,
        workers=2,
    )
    app = create_app(settings, AuthConfig(), db=db, max_body_bytes=MAX_BODY)
    toks, ids = make_tokens(db)
    recorder = ErrorRecorder(app)
    server, thread, port = serve(recorder)
    a = Api(f"http://127.0.0.1:{port}{PREFIX}", settings, db, toks, ids, recorder)
    try:
        yield a
    finally:
        a.close()
        server.should_exit = True
        thread.join(timeout=10)


def fed(manager: str, *collections: str, delete: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"manager": manager, "collections": list(collections)}
    if delete:
        spec["delete_after"] = "processed"
    return {"name": "fed", "works": [{"name": "take", "noop": True, "input": spec}]}


def refused(api: Api, user: str, template: dict[str, Any]) -> dict[str, Any]:
    r = api.client(user).post("/workflows", json={"template": template})
    assert r.status_code == 422, r.text
    body: dict[str, Any] = r.json()
    return body


def alices_logs_intact(api: Api) -> None:
    logs = api.settings.log_dir / "1"
    assert (logs / "1.1.out").read_text() == "alice's results\n"
    assert (logs / "1.1.err").read_text() == "alice's warnings\n"


def test_bob_cannot_name_alices_logs(api: Api, agents: Agents) -> None:
    # the issue's route: the built-in posix manager rooted at the agents' working folder
    body = refused(api, "bob", fed("posix", "home/logs/1"))
    assert body["field"] == "works[0](take).input.manager"
    assert "no data manager is named 'posix'" in body["error"]
    assert "data_root" in body["error"]
    for bad in ("../home/logs/1", "spool:../home/logs/1", str(api.settings.log_dir / "1")):
        body = refused(api, "bob", fed("spool", "x", bad))
        assert body["field"] == "works[0](take).input.collections[1]", body
        assert f"collection {bad!r}" in body["error"]
    time.sleep(0.3)  # the agents would have deleted by now
    alices_logs_intact(api)
    assert api.server_errors == []


def test_a_link_out_of_the_root_fails_the_work(api: Api, agents: Agents) -> None:
    spool = api.settings.home.parent / "spool"
    (spool / "logs").symlink_to(api.settings.log_dir / "1")  # a user's link in the spool
    (spool / "inbox").mkdir()
    (spool / "inbox" / "passwd").symlink_to("/etc/passwd")  # a file link: never data
    (spool / "inbox" / "a.dat").write_text("data\n")
    (spool / "inbox" / "_END").touch()
    c = api.client("bob")
    bad = api.submit("bob", fed("spool", "logs"))["id"]
    assert api.wait_status(bad) == "failed"
    message = c.get(f"/workflows/{bad}").json()["message"]
    assert "collection 'spool:logs'" in message and "outside the posix root" in message, message
    (col,) = c.get(f"/workflows/{bad}/collections").json()
    assert col["files"] == 0
    good = api.submit("bob", fed("spool", "inbox"))["id"]
    assert api.wait_status(good) == "succeeded"
    (col,) = c.get(f"/workflows/{good}/collections").json()
    files = c.get(f"/workflows/{good}/collections/{col['id']}/files").json()["items"]
    assert [f["name"] for f in files] == ["a.dat"]
    assert not (spool / "inbox" / "a.dat").exists()  # processed, then deleted
    assert (spool / "inbox" / "passwd").is_symlink()  # left alone
    alices_logs_intact(api)
    assert Path("/etc/passwd").exists()


def test_only_allowed_users_and_groups_may_use_a_manager(api: Api, agents: Agents) -> None:
    for user in ("bob", "carol"):
        body = refused(api, user, fed("alices", "."))
        assert body["field"] == "works[0](take).input.manager"
        assert f"user {user!r} may not use data manager 'alices'" in body["error"]
        assert "users alice" in body["error"]
    body = refused(api, "carol", fed("physics", "."))
    assert "members of physics" in body["error"]
    assert api.wait_status(api.submit("alice", fed("alices", "."))["id"]) == "succeeded"
    assert api.wait_status(api.submit("bob", fed("physics", "."))["id"]) == "succeeded"


def test_the_agents_refuse_what_got_past_the_server(api: Api, agents: Agents) -> None:
    """A workflow written without the server's check (another server's configuration, an
    old workflow, the database directly): the transformer refuses it all the same."""
    (api.settings.home.parent / "alices" / "mine.dat").write_text("alice's data\n")
    for manager in ("alices", "physics"):
        wf = submit(api.db, fed(manager, "."), base_dir=None, owner="carol", now=time.time())
        assert api.wait_status(wf) == "failed"
        message = api.client("root").get(f"/workflows/{wf}").json()["message"]
        assert f"user 'carol' may not use data manager {manager!r}" in message, message
    assert (api.settings.home.parent / "alices" / "mine.dat").exists()
    # bob's groups were recorded when he submitted: the agents let him use `physics`
    assert api.wait_status(api.submit("bob", fed("physics", "."))["id"]) == "succeeded"


def test_a_work_added_by_a_group_member_is_checked_for_the_caller(api: Api) -> None:
    """bob may steer alice's workflow shared with physics, but not use her manager in it."""
    wf = api.submit("alice", {"name": "grows", "open": True, "works": []}, share_group="physics")
    work = fed("alices", ".")["works"][0]
    r = api.client("bob").post(f"/workflows/{wf['id']}/works", json={"work": work})
    assert r.status_code == 422, r.text
    assert "user 'bob' may not use data manager 'alices'" in r.json()["error"]
    r = api.client("alice").post(f"/workflows/{wf['id']}/works", json={"work": work})
    assert r.status_code == 201, r.text
