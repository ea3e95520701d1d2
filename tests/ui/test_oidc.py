"""Browser login through OIDC (authorization code + PKCE) against an identity provider made
by the test: a real HTTP server on 127.0.0.1 with discovery, authorize, token and JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from orchid.auth import AuthConfig
from orchid.server import create_app
from orchid.store.db import Database
from tests.api.conftest import api_settings, serve

CLIENT = "orchid-ui"
AUD = "orchid"


class Idp:
    """Approves every login at once as ``user`` and hands out RS256 access tokens."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes: dict[str, dict[str, str]] = {}
        self.user = "dana"
        self.audience = AUD
        self.refuse = False
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    self._json(
                        200,
                        {
                            "issuer": idp.url,
                            "jwks_uri": f"{idp.url}/jwks",
                            "authorization_endpoint": f"{idp.url}/authorize",
                            "token_endpoint": f"{idp.url}/token",
                        },
                    )
                elif url.path == "/jwks":
                    jwk = {
                        **RSAAlgorithm.to_jwk(idp.key.public_key(), as_dict=True),
                        "kid": "k1",
                        "alg": "RS256",
                    }
                    self._json(200, {"keys": [jwk]})
                elif url.path == "/authorize":
                    code = f"code-{len(idp.codes)}"
                    idp.codes[code] = q
                    back = f"{q['redirect_uri']}?{urllib.parse.urlencode({'code': code, 'state': q['state']})}"
                    self.send_response(302)
                    self.send_header("Location", back)
                    self.end_headers()
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = dict(urllib.parse.parse_qsl(body))
                asked = idp.codes.pop(form.get("code", ""), None)
                challenge = (
                    base64.urlsafe_b64encode(
                        hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                    )
                    .rstrip(b"=")
                    .decode()
                )
                if (
                    idp.refuse
                    or asked is None
                    or asked["code_challenge"] != challenge
                    or asked["code_challenge_method"] != "S256"
                    or form.get("client_id") != CLIENT
                    or form.get("redirect_uri") != asked["redirect_uri"]
                    or form.get("grant_type") != "authorization_code"
                ):
                    self._json(400, {"error": "invalid_grant", "error_description": "bad code"})
                    return
                now = time.time()
                claims = {
                    "iss": idp.url,
                    "aud": idp.audience,
                    "exp": now + 300,
                    "iat": now,
                    "preferred_username": idp.user,
                    "groups": ["physics"],
                }
                token = jwt.encode(claims, idp.key, algorithm="RS256", headers={"kid": "k1"})
                self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Idp]]:
    idp = Idp()
    db = Database(f"sqlite:///{tmp_path / 'o.db'}")
    db.upgrade()
    app = create_app(
        api_settings(db, tmp_path).replace(oidc_client_id=CLIENT),
        AuthConfig(oidc_issuer=idp.url, oidc_audience=AUD),
        db=db,
    )
    server, thread, port = serve(app)
    try:
        yield f"http://127.0.0.1:{port}", idp
    finally:
        server.should_exit = True
        thread.join(10)
        idp.stop()
        db.dispose()


def login(root: str, http: httpx.Client, next_page: str = "/ui/workflows/5") -> httpx.Response:
    start = http.get(f"{root}/ui/oidc/start", params={"next": next_page})
    assert start.status_code == 303
    assert "samesite=lax" in start.headers["set-cookie"].lower()
    to_idp = start.headers["location"]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(to_idp).query))
    assert query["client_id"] == CLIENT and query["response_type"] == "code"
    assert query["redirect_uri"] == f"{root}/ui/oidc/callback" and "openid" in query["scope"]
    back = http.get(to_idp)
    assert back.status_code == 302
    return http.get(back.headers["location"])


def test_the_login_page_offers_the_provider_and_the_flow_makes_a_session(site) -> None:  # type: ignore[no-untyped-def]
    root, _ = site
    with httpx.Client() as http:
        assert "identity provider" in http.get(f"{root}/ui/login").text
        done = login(root, http)
        assert done.status_code == 303 and done.headers["location"] == "/ui/workflows/5"
        assert "orchid_session=ey" in done.headers["set-cookie"]
        page = http.get(f"{root}/ui/")
        assert page.status_code == 200 and "dana" in page.text and "oidc" in page.text
        # the same token works on the API: one authentication for both
        token = http.cookies.get("orchid_session", path="/ui")
        api = httpx.get(f"{root}/api/v1/workflows", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 200


def test_a_callback_that_was_not_started_here_is_refused(site) -> None:  # type: ignore[no-untyped-def]
    root, _ = site
    with httpx.Client() as http:
        r = http.get(f"{root}/ui/oidc/callback", params={"code": "x", "state": "forged"})
        assert r.status_code == 502 and "stale" in r.text
        start = http.get(f"{root}/ui/oidc/start")
        r = http.get(f"{root}/ui/oidc/callback", params={"code": "x", "state": "other"})
        assert r.status_code == 502 and start.status_code == 303
        r = http.get(
            f"{root}/ui/oidc/callback", params={"error": "access_denied", "error_description": "no"}
        )
        assert r.status_code == 502 and "no" in r.text
        assert "orchid_session" not in http.cookies


@pytest.mark.parametrize("trouble", ["refuse", "audience"])
def test_what_the_provider_refuses_or_gets_wrong_makes_no_session(site, trouble: str) -> None:  # type: ignore[no-untyped-def]
    root, idp = site
    if trouble == "refuse":
        idp.refuse = True
    else:
        idp.audience = "someone-else"
    with httpx.Client() as http:
        r = login(root, http)
        assert r.status_code == 502
        assert ("bad code" if trouble == "refuse" else "wrong audience") in r.text
        assert http.get(f"{root}/ui/").status_code == 303  # not logged in
