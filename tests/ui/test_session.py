"""Logging in to the monitor: the API's authentication behind an HttpOnly cookie, CSRF."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchid.store import tokens
from orchid.store.db import Database
from orchid.ui.session import csrf_token, safe_next
from tests.ui.conftest import Api, Browser


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """SQLite only: sessions do not depend on the database (token lookups are tested on
    both in tests/store and tests/api)."""
    database = Database(f"sqlite:///{tmp_path / 'orchid.db'}")
    database.upgrade()
    yield database
    database.dispose()


def test_pages_ask_anonymous_visitors_to_log_in(browse) -> None:  # type: ignore[no-untyped-def]
    b: Browser = browse()
    r = b.get("/ui/workflows/3/jobs?work=1")
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Fworkflows%2F3%2Fjobs%3Fwork%3D1"
    page = b.get("/ui/login?next=/ui/workflows/3")
    assert page.status_code == 200 and 'name="token"' in page.text
    assert 'value="/ui/workflows/3"' in page.text
    assert "identity provider" not in page.text  # no OIDC configured here


def test_a_good_token_sets_a_strict_http_only_cookie_for_ui_only(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    b: Browser = browse()
    r = b.post("/ui/login", {"token": api.tokens["alice"], "next": "/ui/workflows/9"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/workflows/9"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"orchid_session={api.tokens['alice']};")
    for flag in ("HttpOnly", "Path=/ui", "SameSite=strict", "Max-Age=43200"):
        assert flag.lower() in cookie.lower(), cookie
    page = b.get("/ui/")
    assert page.status_code == 200 and "alice" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "paste your token"),
        ("orc_nope", "unknown or revoked token"),
        ("a b", "paste your token"),
        ("eyJhbGciOiJSUzI1NiJ9.e30.x", "OIDC is not configured"),
    ],
)
def test_a_bad_token_shows_the_form_again_with_why(browse, token: str, message: str) -> None:  # type: ignore[no-untyped-def]
    b: Browser = browse()
    r = b.post("/ui/login", {"token": token})
    assert r.status_code == 401 and message in r.text and "set-cookie" not in r.headers


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/api/v1/workflows", "/ui\\..", ""]
)
def test_login_never_sends_you_off_the_monitor(target: str) -> None:
    assert safe_next(target) == "/ui/"
    assert safe_next("/ui/workflows/3?x=1") == "/ui/workflows/3?x=1"


def test_a_revoked_token_ends_the_session_at_once(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    b: Browser = browse("bob")
    assert b.get("/ui/").status_code == 200
    with api.db.begin() as conn:
        tokens.revoke(conn, api.token_ids["bob"], time.time())
    r = b.get("/ui/")
    assert r.status_code == 303 and "why=" in r.headers["location"]
    assert 'orchid_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]


def test_logout_needs_the_csrf_token_and_clears_the_cookie(browse) -> None:  # type: ignore[no-untyped-def]
    b: Browser = browse("alice")
    assert b.post("/ui/logout", {"csrf": "0" * 64}).status_code == 403
    assert b.get("/ui/").status_code == 200  # still logged in
    r = b.post("/ui/logout", {"csrf": b.csrf("/ui/")})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    b.http.cookies.clear()  # httpx keeps no deleted cookie; a browser drops it
    assert b.get("/ui/").status_code == 303


def test_forms_from_other_sites_are_refused(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    b: Browser = browse("alice")
    wf = api.submit("alice")["id"]
    csrf = b.csrf(f"/ui/workflows/{wf}")
    assert csrf == csrf_token(api.tokens["alice"])
    evil = {"Origin": "https://evil.example"}
    assert (
        b.post(f"/ui/workflows/{wf}/actions/abort", {"csrf": csrf}, headers=evil).status_code == 403
    )
    cross = {"Sec-Fetch-Site": "cross-site"}
    assert (
        b.post(f"/ui/workflows/{wf}/actions/abort", {"csrf": csrf}, headers=cross).status_code
        == 403
    )
    assert b.post(f"/ui/workflows/{wf}/actions/abort", {}).status_code == 403
    # a login form posted from elsewhere (login CSRF) is refused too
    assert b.post("/ui/login", {"token": api.tokens["carol"]}, headers=evil).status_code == 403
    ok = b.post(f"/ui/workflows/{wf}/actions/abort", {"csrf": csrf})
    assert ok.status_code == 303 and ok.headers["location"].endswith(
        f"/ui/workflows/{wf}?queued=abort"
    )


def test_a_bearer_header_works_without_a_cookie_or_csrf(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    b: Browser = browse()
    auth = {"Authorization": f"Bearer {api.tokens['alice']}"}
    wf = api.submit("alice")["id"]
    assert b.get(f"/ui/workflows/{wf}", headers=auth).status_code == 200
    r = b.post(f"/ui/workflows/{wf}/actions/suspend", {}, headers=auth)
    assert r.status_code == 303
    bad = b.get("/ui/", headers={"Authorization": "Bearer orc_wrong"})
    assert bad.status_code == 401  # an explicit bad credential is an error, not a login form


def test_a_job_token_cannot_open_the_monitor(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    """The monitor refuses job tokens whichever way they come: the login form, a cookie
    set by hand, an Authorization header."""
    wf = api.submit(
        "alice", {"name": "j", "works": [{"name": "a", "noop": True, "jobs": [{"name": "j"}]}]}
    )["id"]
    token = api.job_token(wf)
    b: Browser = browse()
    r = b.login(token)
    refused = "a job&#39;s or a worker&#39;s token cannot open the monitor"
    assert r.status_code == 401 and refused in r.text
    assert "orchid_session" not in r.headers.get("set-cookie", "")
    b.http.cookies.set("orchid_session", token, path="/ui")
    r = b.get(f"/ui/workflows/{wf}")
    assert r.status_code == 303 and "worker%27s+token" in r.headers["location"]
    r = browse().get(f"/ui/workflows/{wf}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and "monitor" in r.text


def test_a_worker_token_cannot_open_the_monitor(api: Api, browse) -> None:  # type: ignore[no-untyped-def]
    with api.db.begin() as conn:
        _, token = tokens.create(
            conn, user="pilot", admin=False, groups=[], now=time.time(), worker_queue="gpu"
        )
    b: Browser = browse()
    r = b.login(token)
    assert r.status_code == 401 and "worker&#39;s token cannot open the monitor" in r.text
    assert "orchid_session" not in r.headers.get("set-cookie", "")
    r = browse().get("/ui/", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and "worker" in r.text
