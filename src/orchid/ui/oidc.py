"""Browser login through the OIDC identity provider: the authorization-code flow with PKCE.

``/ui/oidc/start`` sends the browser to the provider's authorization endpoint with a
random ``state`` and a PKCE challenge (kept in a short-lived cookie); the provider sends it
back to ``/ui/oidc/callback`` with a code, which the server exchanges for tokens. The
access token is checked exactly as the API checks bearer tokens (issuer, audience,
signature, expiry) and becomes the session. Settings: ``ORCHID_OIDC_CLIENT_ID`` (the UI
needs one to offer this login), ``ORCHID_OIDC_CLIENT_SECRET`` (confidential clients),
``ORCHID_OIDC_SCOPES`` (default ``openid profile``), beside the API's ``ORCHID_OIDC_*``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from orchid.auth import AuthConfig
from orchid.errors import ConfigError, OrchidError
from orchid.settings import UiSettings, section_from_env

STATE_MAX_AGE_S = 600


class LoginFailed(OrchidError):
    """The identity provider refused the login, or answered something unusable."""


@dataclass(frozen=True)
class OidcLogin:
    issuer: str
    client_id: str
    client_secret: str | None = None
    scopes: str = "openid profile"

    @staticmethod
    def from_settings(auth: AuthConfig, ui: UiSettings) -> OidcLogin | None:
        """The login settings, or None when OIDC or a client id is not configured."""
        client_id = (ui.oidc_client_id or "").strip()
        if not auth.oidc_issuer or not client_id:
            return None
        scopes = ui.oidc_scopes.strip() or "openid profile"
        if "openid" not in scopes.split():
            raise ConfigError(f"ORCHID_OIDC_SCOPES={scopes!r} must include openid")
        secret = (ui.oidc_client_secret or "").strip() or None
        return OidcLogin(auth.oidc_issuer, client_id, secret, scopes)

    @staticmethod
    def from_env(auth: AuthConfig, env: Mapping[str, str] | None = None) -> OidcLogin | None:
        """From the environment alone: see :meth:`from_settings`."""
        return OidcLogin.from_settings(auth, section_from_env(UiSettings, env))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Pending:
    """A login under way: what the callback must see again."""

    state: str
    verifier: str
    next: str

    def cookie(self) -> str:
        return f"{self.state}.{self.verifier}.{urllib.parse.quote(self.next, safe='')}"

    @staticmethod
    def parse(value: str | None) -> Pending | None:
        parts = (value or "").split(".")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            return None
        return Pending(parts[0], parts[1], urllib.parse.unquote(parts[2]))


class OidcClient:
    """Talks to the provider: discovery (cached), the authorization URL, the code exchange."""

    def __init__(self, config: OidcLogin, http: httpx.Client) -> None:
        self.config = config
        self.http = http
        self._endpoints: dict[str, str] | None = None
        self._lock = threading.Lock()

    def endpoints(self) -> dict[str, str]:
        with self._lock:
            if self._endpoints is None:
                url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
                try:
                    doc = self.http.get(url, headers={"Accept": "application/json"})
                    doc.raise_for_status()
                    data = doc.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise LoginFailed(f"cannot read {url}: {exc}") from None
                auth, token = data.get("authorization_endpoint"), data.get("token_endpoint")
                if not isinstance(auth, str) or not isinstance(token, str):
                    raise LoginFailed(f"{url} names no authorization_endpoint or token_endpoint")
                self._endpoints = {"authorize": auth, "token": token}
            return self._endpoints

    def start(self, redirect_uri: str, next_page: str) -> tuple[str, Pending]:
        """The provider URL to send the browser to, and what to remember meanwhile."""
        pending = Pending(secrets.token_urlsafe(24), secrets.token_urlsafe(48), next_page)
        challenge = _b64(hashlib.sha256(pending.verifier.encode()).digest())
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.config.scopes,
                "state": pending.state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        base = self.endpoints()["authorize"]
        return f"{base}{'&' if '?' in base else '?'}{query}", pending

    def exchange(self, code: str, redirect_uri: str, pending: Pending) -> str:
        """Trade the code for tokens; returns the access token (checked by the caller)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.config.client_id,
            "code_verifier": pending.verifier,
        }
        if self.config.client_secret:
            form["client_secret"] = self.config.client_secret
        try:
            r = self.http.post(self.endpoints()["token"], data=form)
            data: Any = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LoginFailed(f"the token endpoint did not answer usably: {exc}") from None
        if r.status_code != 200 or not isinstance(data, dict):
            reason = (
                data.get("error_description") or data.get("error")
                if isinstance(data, dict)
                else None
            )
            raise LoginFailed(f"the identity provider refused the code: {reason or r.status_code}")
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise LoginFailed("the identity provider sent no access token")
        return token
