"""Authentication and authorization, against a real local identity provider over HTTP.

The identity provider is a ``ThreadingHTTPServer`` on 127.0.0.1 that serves an
openid-configuration and a JWKS and counts the requests, so caching, key rotation and
outages are observed from the outside. Time is an injected clock: nothing sleeps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from orchid.auth import (
    IDP_DOWN,
    AuthConfig,
    Authenticator,
    Forbidden,
    OidcVerifier,
    Unauthenticated,
    can_act,
    can_see,
    www_authenticate,
)
from orchid.core.model import Principal
from orchid.errors import ConfigError

AUD = "orchid"
T0 = 1_800_000_000.0  # the injected clock starts here


# --- a local identity provider --------------------------------------------------------------


class Idp:
    """Serves ``/.well-known/openid-configuration`` and ``/jwks``; counts requests per path."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.status = 200
        self.hits: Counter[str] = Counter()
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                idp.hits[self.path] += 1
                if self.path == "/.well-known/openid-configuration":
                    body: Any = {"issuer": idp.url, "jwks_uri": f"{idp.url}/jwks"}
                elif self.path == "/jwks":
                    body = idp.jwks
                else:
                    self.send_error(404)
                    return
                if idp.status != 200:
                    self.send_error(idp.status)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        """Take the server away entirely: connections are refused from now on."""
        if self.running:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()
            self.running = False


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp(keys: Keys) -> Iterator[Idp]:
    server = Idp()
    server.jwks = {"keys": [keys.jwk("rsa1"), keys.jwk("ec1")]}
    yield server
    server.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Keys:
    """Signing keys made by the test: two RSA, one EC (P-256)."""

    def __init__(self) -> None:
        self.private: dict[str, Any] = {
            "rsa1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "rsa2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec1": ec.generate_private_key(ec.SECP256R1()),
        }

    def jwk(self, kid: str) -> dict[str, Any]:
        public = self.private[kid].public_key()
        if kid.startswith("rsa"):
            return {**RSAAlgorithm.to_jwk(public, as_dict=True), "kid": kid, "alg": "RS256"}
        # no "alg": the verifier infers ES256 from the curve
        return {**ECAlgorithm.to_jwk(public, as_dict=True), "kid": kid, "use": "sig"}

    def public_pem(self, kid: str) -> bytes:
        public = self.private[kid].public_key()
        pem: bytes = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def claims(idp: Idp, **changes: Any) -> dict[str, Any]:
    """Good claims; a change to None removes that claim."""
    base: dict[str, Any] = {
        "iss": idp.url,
        "aud": AUD,
        "sub": "8f3c-user-id",
        "preferred_username": "alice",
        "groups": ["atlas", "orchid-admins"],
        "iat": int(T0),
        "nbf": int(T0),
        "exp": int(T0) + 3600,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(
    keys: Keys, idp: Idp, kid: str = "rsa1", sign_with: str | None = None, **changes: Any
) -> str:
    alg = "ES256" if kid.startswith("ec") else "RS256"
    return jwt.encode(
        claims(idp, **changes), keys.private[sign_with or kid], algorithm=alg, headers={"kid": kid}
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A JWT built without PyJWT (which refuses to make these): unsigned, or HS256."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = (
        b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    )
    return f"{signing_input}.{b64(signature)}"


def config(idp: Idp, *, discover: bool = False, **changes: Any) -> AuthConfig:
    values: dict[str, Any] = {
        "oidc_issuer": idp.url,
        "oidc_audience": AUD,
        "oidc_jwks_url": None if discover else f"{idp.url}/jwks",
        "admin_groups": frozenset({"orchid-admins"}),
    }
    values.update(changes)
    return AuthConfig(**values)


@pytest.fixture
def verifier(idp: Idp, http: httpx.Client, clock: Clock) -> OidcVerifier:
    return OidcVerifier(config(idp), http, clock)


def reason_of(verifier: OidcVerifier, jwt_text: str) -> str:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(jwt_text)
    return info.value.reason


# --- OIDC: good tokens ----------------------------------------------------------------------


def test_a_valid_token_names_the_user_groups_and_admin(
    verifier: OidcVerifier, keys: Keys, idp: Idp
) -> None:
    assert verifier.verify(token(keys, idp)) == Principal(
        user="oidc:alice", groups=frozenset({"atlas", "orchid-admins"}), admin=True, method="oidc"
    )
    plain = verifier.verify(token(keys, idp, "ec1", groups=["cms"], aud=["other", AUD]))
    assert (plain.user, plain.groups, plain.admin) == ("oidc:alice", frozenset({"cms"}), False)


def test_user_falls_back_to_sub_and_groups_may_be_missing(
    verifier: OidcVerifier, keys: Keys, idp: Idp
) -> None:
    p = verifier.verify(token(keys, idp, preferred_username=None, groups=None))
    assert (p.user, p.groups, p.admin) == ("oidc:8f3c-user-id", frozenset(), False)
    assert reason_of(verifier, token(keys, idp, preferred_username=None, sub=None)) == (
        "token names no user"
    )


def test_groups_from_a_dotted_claim_path_or_a_name_with_dots(
    idp: Idp, http: httpx.Client, clock: Clock, keys: Keys
) -> None:
    keycloak = OidcVerifier(config(idp, groups_claim="realm_access.roles"), http, clock)
    p = keycloak.verify(
        token(keys, idp, groups=None, realm_access={"roles": ["orchid-admins", "hpo"]})
    )
    assert (p.groups, p.admin) == (frozenset({"orchid-admins", "hpo"}), True)
    assert keycloak.verify(token(keys, idp, realm_access={"x": 1})).groups == frozenset()
    auth0 = OidcVerifier(config(idp, groups_claim="https://orchid.example/groups"), http, clock)
    p = auth0.verify(token(keys, idp, **{"https://orchid.example/groups": ["rubin"]}))
    assert p.groups == frozenset({"rubin"})


def test_oidc_users_have_a_namespace_of_their_own_unless_mapped(
    idp: Idp, http: httpx.Client, clock: Clock, keys: Keys
) -> None:
    """An account "alice" at the identity provider is not the local token user alice (nor
    a certificate with CN=alice) unless the admin's map says so."""
    mapped = OidcVerifier(config(idp, oidc_users={"alice": "alice"}), http, clock)
    assert mapped.verify(token(keys, idp)).user == "alice"
    assert mapped.verify(token(keys, idp, preferred_username="bob")).user == "oidc:bob"
    plain = OidcVerifier(config(idp), http, clock)
    assert plain.verify(token(keys, idp, preferred_username="root")).user == "oidc:root"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("alice smith", "contains whitespace"),
        ("alice\n", "contains whitespace"),
        ("al\x00ice", "contains control characters"),
        ("a" * 201, "longer than 200 characters"),
    ],
)
def test_oidc_user_names_follow_the_rule_of_local_names(
    verifier: OidcVerifier, keys: Keys, idp: Idp, name: str, problem: str
) -> None:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(token(keys, idp, preferred_username=name))
    assert info.value.reason == "unusable user name" and problem in str(info.value)
    long = token(keys, idp, preferred_username="a" * 196)  # fine, but not with oidc: before it
    assert reason_of(verifier, long) == "user name too long"


def test_mapped_names_follow_the_rule_of_local_names() -> None:
    with pytest.raises(ConfigError, match=r"oidc_users 'alice'.*contains whitespace"):
        AuthConfig(oidc_users={"alice": "alice smith"})
    with pytest.raises(ConfigError, match=r"dn_users '/O=Lab/CN=x'.*is empty"):
        AuthConfig(dn_users={"/O=Lab/CN=x": ""})


USER_MAP = """
[oidc]
alice = "alice"
[x509]
"CN=Alice Smith,O=Lab,C=CH" = "alice"
[x509_groups]
"/C=CH/O=Lab/CN=Alice Smith" = ["physics", "orchid-admins"]
"""


def test_the_user_map_and_cn_names_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    path.write_text(USER_MAP)
    env = {
        "ORCHID_USER_MAP": str(path),
        "ORCHID_TRUSTED_PROXIES": "10.0.0.5",
        "ORCHID_ADMIN_GROUPS": "orchid-admins",
    }
    cfg = AuthConfig.from_env(env)
    assert (cfg.oidc_users, cfg.x509_cn_names) == ({"alice": "alice"}, False)
    auth = Authenticator(cfg, None, LOCAL.get)
    p = auth.authenticate({"X-SSL-Client-DN": "/C=CH/O=Lab/CN=Alice Smith"}, "10.0.0.5")
    assert p is not None and (p.user, p.groups, p.admin) == (
        "alice",
        frozenset({"physics", "orchid-admins"}),
        True,
    )
    assert AuthConfig.from_env({"ORCHID_X509_CN_NAMES": "true"}).x509_cn_names
    assert not AuthConfig.from_env({}).x509_cn_names
    with pytest.raises(ConfigError, match="ORCHID_X509_CN_NAMES='maybe'"):
        AuthConfig.from_env({"ORCHID_X509_CN_NAMES": "maybe"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[users]\nalice = 'alice'\n", "unknown table"),
        ("[oidc]\nalice = 1\n", "must be text"),
        ("[oidc]\nalice = 'a b'\n", "contains whitespace"),
        ("[x509_groups]\n'CN=a' = 'physics'\n", "a list of group names"),
        ("[x509_groups]\n'CN=a' = ['bad group']\n", "contains whitespace"),
        ("[x509]\n'nonsense' = 'a'\n", "not a distinguished name"),
        ("oidc = 1\n", "must be a table"),
        ("[oidc\n", "is not TOML"),
    ],
)
def test_a_bad_user_map_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "users.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        AuthConfig.from_env({"ORCHID_USER_MAP": str(path)})
    with pytest.raises(ConfigError, match="cannot read"):
        AuthConfig.from_env({"ORCHID_USER_MAP": str(tmp_path / "missing.toml")})


def test_leeway_tolerates_small_clock_skew(
    verifier: OidcVerifier, keys: Keys, idp: Idp, clock: Clock
) -> None:
    clock.now = T0 + 3600 + 29  # expired 29 s ago, leeway 30 s
    assert verifier.verify(token(keys, idp)).user == "oidc:alice"
    clock.now = T0 - 29  # issued and valid from 29 s in the future
    assert verifier.verify(token(keys, idp)).user == "oidc:alice"


# --- OIDC: bad tokens -----------------------------------------------------------------------


def test_expired_and_not_yet_valid_tokens_are_refused(
    verifier: OidcVerifier, keys: Keys, idp: Idp, clock: Clock
) -> None:
    assert reason_of(verifier, token(keys, idp, exp=int(T0) - 31)) == "token expired"
    assert reason_of(verifier, token(keys, idp, nbf=int(T0) + 31)) == "token not yet valid"
    assert (
        reason_of(verifier, token(keys, idp, iat=int(T0) + 31, nbf=None)) == "token not yet valid"
    )
    clock.now = T0 + 3600 + 30
    with pytest.raises(Unauthenticated, match=r"token expired: 30 s ago \(leeway 30 s\)"):
        verifier.verify(token(keys, idp))


def test_wrong_issuer_audience_and_missing_claims(
    verifier: OidcVerifier, keys: Keys, idp: Idp
) -> None:
    assert reason_of(verifier, token(keys, idp, iss="https://evil.example")) == "wrong issuer"
    assert reason_of(verifier, token(keys, idp, aud="another-client")) == "wrong audience"
    assert reason_of(verifier, token(keys, idp, aud=None)) == "token lacks a required claim"
    assert reason_of(verifier, token(keys, idp, exp=None)) == "token lacks a required claim"
    assert reason_of(verifier, token(keys, idp, exp="soon")) == "malformed token"


def test_bad_signature_and_mismatched_keys(verifier: OidcVerifier, keys: Keys, idp: Idp) -> None:
    assert reason_of(verifier, token(keys, idp, "rsa1", sign_with="rsa2")) == "bad signature"
    good = token(keys, idp)
    head, _, signature = good.split(".")
    forged = b64(json.dumps(claims(idp, preferred_username="root")).encode())
    assert reason_of(verifier, f"{head}.{forged}.{signature}") == "bad signature"
    # an ES256 header pointing at an RSA key
    es = jwt.encode(claims(idp), keys.private["ec1"], algorithm="ES256", headers={"kid": "rsa1"})
    assert reason_of(verifier, es) == "algorithm does not match the key"


def test_alg_none_and_hs256_with_the_public_key_are_refused(
    verifier: OidcVerifier, keys: Keys, idp: Idp
) -> None:
    unsigned = hand_made({"alg": "none", "typ": "JWT", "kid": "rsa1"}, claims(idp), None)
    assert reason_of(verifier, unsigned) == "algorithm not allowed"
    confused = hand_made(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa1"}, claims(idp), keys.public_pem("rsa1")
    )
    assert reason_of(verifier, confused) == "algorithm not allowed"
    # neither caused a fetch: the algorithm is checked before any key is looked up
    assert sum(idp.hits.values()) == 0


def test_malformed_tokens(verifier: OidcVerifier) -> None:
    for junk in ("not-a-jwt", "a.b.c", "", "eyJhbGciOiJSUzI1NiJ9.e30"):
        assert reason_of(verifier, junk) == "malformed token"


def test_unknown_kid_is_refused(verifier: OidcVerifier, keys: Keys, idp: Idp) -> None:
    assert reason_of(verifier, token(keys, idp, "rsa2")) == "unknown signing key"


def test_a_token_without_kid_needs_a_single_key(
    idp: Idp, http: httpx.Client, clock: Clock, keys: Keys
) -> None:
    no_kid = jwt.encode(claims(idp), keys.private["rsa1"], algorithm="RS256")
    assert reason_of(OidcVerifier(config(idp), http, clock), no_kid) == "unknown signing key"
    idp.jwks = {"keys": [{k: v for k, v in keys.jwk("rsa1").items() if k != "kid"}]}
    assert OidcVerifier(config(idp), http, clock).verify(no_kid).user == "oidc:alice"


# --- the JWKS cache -------------------------------------------------------------------------


def test_the_jwks_is_fetched_once_then_again_after_its_ttl(
    verifier: OidcVerifier, keys: Keys, idp: Idp, clock: Clock
) -> None:
    tokens = [token(keys, idp, kid) for kid in ("rsa1", "ec1")]
    for _ in range(25):
        for t in tokens:
            verifier.verify(t)
    assert idp.hits["/jwks"] == 1
    clock.now = T0 + 299.9
    verifier.verify(tokens[0])
    assert idp.hits["/jwks"] == 1
    clock.now = T0 + 300
    verifier.verify(tokens[0])
    verifier.verify(tokens[1])
    assert idp.hits["/jwks"] == 2


def test_discovery_through_the_openid_configuration(
    idp: Idp, http: httpx.Client, clock: Clock, keys: Keys
) -> None:
    verifier = OidcVerifier(config(idp, discover=True), http, clock)
    assert verifier.verify(token(keys, idp)).user == "oidc:alice"
    clock.now = T0 + 600  # a TTL refresh reuses the discovered jwks_uri
    assert verifier.verify(token(keys, idp)).user == "oidc:alice"
    assert idp.hits == {"/.well-known/openid-configuration": 1, "/jwks": 2}


def test_key_rotation_refetches_once_and_a_kid_flood_is_throttled(
    verifier: OidcVerifier, keys: Keys, idp: Idp, clock: Clock
) -> None:
    verifier.verify(token(keys, idp, "rsa1"))
    assert idp.hits["/jwks"] == 1
    idp.jwks = {"keys": [keys.jwk("rsa2")]}  # the issuer rotates: rsa1 is gone
    clock.now = T0 + 60
    assert verifier.verify(token(keys, idp, "rsa2")).user == "oidc:alice"
    assert idp.hits["/jwks"] == 2
    assert reason_of(verifier, token(keys, idp, "rsa1")) == "unknown signing key"
    # a flood of made-up kids: no refetch within 10 s of the last one...
    for i in range(100):
        clock.now = T0 + 60 + i * 0.099
        bogus = jwt.encode(claims(idp), keys.private["rsa2"], "RS256", headers={"kid": f"x{i}"})
        assert reason_of(verifier, bogus) == "unknown signing key"
    assert idp.hits["/jwks"] == 2
    # ...and one per 10 s after that
    for i in range(30):
        clock.now = T0 + 70 + i
        bogus = jwt.encode(claims(idp), keys.private["rsa2"], "RS256", headers={"kid": f"y{i}"})
        reason_of(verifier, bogus)
    assert idp.hits["/jwks"] == 2 + 3  # at +70, +80, +90
    assert verifier.verify(token(keys, idp, "rsa2")).user == "oidc:alice"


@pytest.mark.parametrize("outage", ["http-503", "connection-refused"])
def test_an_unreachable_idp_keeps_the_stale_keys(
    outage: str, verifier: OidcVerifier, keys: Keys, idp: Idp, clock: Clock
) -> None:
    verifier.verify(token(keys, idp))
    if outage == "http-503":
        idp.status = 503
    else:
        idp.stop()
    clock.now = T0 + 301  # the cache is stale; the refresh fails; the old keys still verify
    assert verifier.verify(token(keys, idp)).user == "oidc:alice"
    assert verifier.verify(token(keys, idp, "ec1")).user == "oidc:alice"
    # a kid the stale keys do not know cannot be checked while the provider is away
    assert reason_of(verifier, token(keys, idp, "rsa2")) == IDP_DOWN
    if outage == "http-503":
        assert idp.hits["/jwks"] == 2  # one failed refresh, not one per request


def test_an_unreachable_idp_without_cached_keys_is_a_401_not_a_crash(
    idp: Idp, http: httpx.Client, clock: Clock, keys: Keys
) -> None:
    verifier = OidcVerifier(config(idp), http, clock)
    idp.status = 500
    with pytest.raises(Unauthenticated, match="cannot reach the identity provider: GET http"):
        verifier.verify(token(keys, idp))
    idp.status = 200
    clock.now = T0 + 5  # retries are throttled too: a dead provider is not hammered
    assert reason_of(verifier, token(keys, idp)) == IDP_DOWN
    assert idp.hits["/jwks"] == 1
    clock.now = T0 + 10
    assert verifier.verify(token(keys, idp)).user == "oidc:alice"
    idp.stop()
    dead = OidcVerifier(config(idp, discover=True), http, clock)
    assert reason_of(dead, token(keys, idp)) == IDP_DOWN


def test_an_unusable_jwks_is_reported_as_such(
    idp: Idp, http: httpx.Client, clock: Clock, keys: Keys
) -> None:
    idp.jwks = {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "rsa1"}]}
    with pytest.raises(Unauthenticated, match="the identity provider sent unusable keys"):
        OidcVerifier(config(idp), http, clock).verify(token(keys, idp))


# --- configuration --------------------------------------------------------------------------


def test_config_from_env() -> None:
    cfg = AuthConfig.from_env(
        {
            "ORCHID_OIDC_ISSUER": "https://auth.example/realms/hep",
            "ORCHID_OIDC_AUDIENCE": "orchid",
            "ORCHID_OIDC_GROUPS_CLAIM": "realm_access.roles",
            "ORCHID_OIDC_USER_CLAIM": "email",
            "ORCHID_ADMIN_GROUPS": " orchid-admins, ops ,,",
            "ORCHID_TRUSTED_PROXIES": "10.0.0.5, 192.168.0.0/16, fd00::/8",
            "ORCHID_DN_HEADER": "X-Client-Subject",
        }
    )
    assert cfg.oidc_jwks_url is None
    assert (cfg.user_claim, cfg.groups_claim) == ("email", "realm_access.roles")
    assert cfg.admin_groups == frozenset({"orchid-admins", "ops"})
    assert cfg.trusted_proxies == ("10.0.0.5", "192.168.0.0/16", "fd00::/8")
    assert cfg.dn_header == "X-Client-Subject"
    empty = AuthConfig.from_env({})
    assert (empty.oidc_issuer, empty.trusted_proxies, empty.dn_header) == (
        None,
        (),
        "X-SSL-Client-DN",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ORCHID_TRUSTED_PROXIES": "10.0.0.5,proxy.lan"}, "ORCHID_TRUSTED_PROXIES: 'proxy.lan'"),
        ({"ORCHID_TRUSTED_PROXIES": "10.0.0.0/33"}, "not an IP address or network"),
        ({"ORCHID_OIDC_ISSUER": "https://auth.example"}, "ORCHID_OIDC_AUDIENCE must be set"),
        ({"ORCHID_OIDC_AUDIENCE": "orchid"}, "without ORCHID_OIDC_ISSUER"),
        (
            {"ORCHID_OIDC_ISSUER": "http://auth.example", "ORCHID_OIDC_AUDIENCE": "o"},
            "must be an https:// URL",
        ),
        (
            {
                "ORCHID_OIDC_ISSUER": "https://auth.example",
                "ORCHID_OIDC_AUDIENCE": "o",
                "ORCHID_OIDC_JWKS_URL": "ftp://auth.example/jwks",
            },
            "ORCHID_OIDC_JWKS_URL='ftp",
        ),
        ({"ORCHID_OIDC_GROUPS_CLAIM": "realm_access..roles"}, "dotted path"),
        ({"ORCHID_DN_HEADER": "X SSL DN"}, "not an HTTP header name"),
    ],
)
def test_config_from_env_rejects_malformed_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        AuthConfig.from_env(env)


def test_config_refuses_symmetric_and_none_algorithms() -> None:
    for algorithms in (("RS256", "HS256"), ("none",), ()):
        with pytest.raises(ConfigError, match="never none or HS"):
            AuthConfig(algorithms=algorithms)
    with pytest.raises(ConfigError, match="dn_users: 'nonsense' is not a distinguished name"):
        AuthConfig(dn_users={"nonsense": "x"})
    with pytest.raises(ConfigError, match="OIDC needs"):
        OidcVerifier(AuthConfig(), httpx.Client(), lambda: T0)


# --- the authenticator: X.509, local tokens, headers ----------------------------------------

LOCAL = {
    "orc_alice": Principal(user="alice", groups=frozenset({"atlas"}), admin=False, method="token"),
}


def authenticator(verifier: OidcVerifier | None = None, **changes: Any) -> Authenticator:
    values: dict[str, Any] = {
        "trusted_proxies": ("10.0.0.5", "192.168.1.0/24", "::1"),
        "admin_groups": frozenset({"orchid-admins"}),
    }
    values.update(changes)
    return Authenticator(AuthConfig(**values), verifier, LOCAL.get)


DN = "CN=alice,OU=Users,O=Lab,C=CH"
DN_USER = "/C=CH/O=Lab/OU=Users/CN=alice"  # an unmapped DN's user: the whole DN


@pytest.mark.parametrize("host", ["10.0.0.5", "192.168.1.77", "::1", "::ffff:10.0.0.5", "[::1]"])
def test_x509_dn_from_a_trusted_proxy(host: str) -> None:
    p = authenticator().authenticate({"X-SSL-Client-DN": DN}, host)
    assert p == Principal(user=DN_USER, groups=frozenset(), admin=False, method="x509")


@pytest.mark.parametrize("host", ["10.0.0.6", "192.168.2.1", "203.0.113.9", None, "", "proxy"])
def test_x509_dn_from_anyone_else_is_forbidden(host: str | None) -> None:
    with pytest.raises(Forbidden) as info:
        authenticator().authenticate(
            {"X-SSL-Client-DN": DN, "Authorization": "Bearer orc_alice"}, host
        )
    assert info.value.reason == "the client-DN header is only accepted from a trusted proxy"


def test_x509_dn_mapping_groups_and_formats() -> None:
    robot = "/C=CH/O=Lab/OU=Robots/CN=builder"
    auth = authenticator(
        dn_users={robot: "ci-bot"},
        x509_groups={"CN=builder, OU=Robots, O=Lab, C=CH": frozenset({"orchid-admins"})},
    )
    # the mapping matches whichever way the proxy writes the DN
    for dn in (robot, "CN=builder,OU=Robots,O=Lab,C=CH"):
        p = auth.authenticate({"X-SSL-Client-DN": dn}, "10.0.0.5")
        assert p is not None and (p.user, p.groups, p.admin) == (
            "ci-bot",
            frozenset({"orchid-admins"}),
            True,
        )
    # unmapped: the whole DN, most general part first, whichever way the proxy wrote it
    grid = "/DC=ch/DC=cern/OU=Users/CN=alice/CN=812345/CN=Alice Smith"
    p = auth.authenticate({"X-SSL-Client-DN": grid}, "10.0.0.5")
    assert p is not None and p.user == grid
    p = auth.authenticate({"X-SSL-Client-DN": r"CN=Smith\, John,O=Lab"}, "10.0.0.5")
    assert p is not None and p.user == "/O=Lab/CN=Smith, John"
    p = auth.authenticate({"X-SSL-Client-DN": r"CN=Jos\C3\A9,O=Lab"}, "10.0.0.5")
    assert p is not None and p.user == "/O=Lab/CN=José"


def test_x509_cn_names_only_when_enabled() -> None:
    """The finding: the CN alone named the user, so a certificate with CN=admin (from any
    CA the proxy accepts) was the local user admin."""
    grid = "/DC=ch/DC=cern/OU=Users/CN=alice/CN=812345/CN=Alice Smith"
    for dn in ("/C=CH/O=Lab/CN=admin", grid):
        p = authenticator().authenticate({"X-SSL-Client-DN": dn}, "10.0.0.5")
        assert p is not None and p.user == dn
    cn = authenticator(x509_cn_names=True, dn_users={"/O=Lab/CN=robot": "ci-bot"})
    p = cn.authenticate({"X-SSL-Client-DN": grid}, "10.0.0.5")
    assert p is not None and p.user == "alice"  # the first CN, most general first
    p = cn.authenticate({"X-SSL-Client-DN": "CN=robot,O=Lab"}, "10.0.0.5")
    assert p is not None and p.user == "ci-bot"  # the map still wins
    with pytest.raises(Unauthenticated) as info:
        cn.authenticate({"X-SSL-Client-DN": "O=Lab,C=CH"}, "10.0.0.5")
    assert info.value.reason == "the client DN has no CN"


def test_two_dns_never_give_one_user_name() -> None:
    auth = authenticator()
    names = set()
    for dn in (
        r"CN=a/CN=b,O=Lab",  # one CN holding a slash
        "CN=b,CN=a,O=Lab",  # two CNs
        r"CN=a\\/CN=b,O=Lab",  # a backslash, then a slash
    ):
        p = auth.authenticate({"X-SSL-Client-DN": dn}, "10.0.0.5")
        assert p is not None
        names.add(p.user)
    assert names == {r"/O=Lab/CN=a\/CN=b", "/O=Lab/CN=a/CN=b", r"/O=Lab/CN=a\\\/CN=b"}


def test_x509_malformed_dns() -> None:
    auth = authenticator()
    for dn, reason in (
        ("garbage", "malformed client DN"),
        (r"CN=a\00b,O=Lab", "malformed client DN"),
        ("/O=Lab/CN=" + "x" * 200, "user name too long"),
    ):
        with pytest.raises(Unauthenticated) as info:
            auth.authenticate({"X-SSL-Client-DN": dn}, "10.0.0.5")
        assert info.value.reason == reason
    p = auth.authenticate({"X-SSL-Client-DN": "O=Lab,C=CH"}, "10.0.0.5")  # no CN is fine
    assert p is not None and p.user == "/C=CH/O=Lab"


def test_an_empty_dn_header_means_no_certificate() -> None:
    assert authenticator().authenticate({"X-SSL-Client-DN": " "}, "203.0.113.9") is None
    p = authenticator().authenticate(
        {"X-SSL-Client-DN": "", "Authorization": "Bearer orc_alice"}, "203.0.113.9"
    )
    assert p == LOCAL["orc_alice"]


def test_the_dn_header_wins_over_a_bearer_token_from_a_trusted_proxy() -> None:
    p = authenticator().authenticate(
        {"X-SSL-Client-DN": DN, "Authorization": "Bearer orc_unknown"}, "10.0.0.5"
    )
    assert p is not None and p.method == "x509"


def test_a_custom_dn_header() -> None:
    auth = authenticator(dn_header="X-Client-Subject")
    p = auth.authenticate({"x-client-subject": DN, "X-SSL-Client-DN": "CN=mallory"}, "10.0.0.5")
    assert p is not None and p.user == DN_USER


def test_local_tokens_go_to_the_lookup() -> None:
    auth = authenticator()
    assert auth.authenticate({"Authorization": "Bearer orc_alice"}, None) == LOCAL["orc_alice"]
    with pytest.raises(Unauthenticated) as info:
        auth.authenticate({"Authorization": "Bearer orc_revoked"}, None)
    assert info.value.reason == "unknown or revoked token"
    with pytest.raises(Unauthenticated) as info:
        auth.authenticate({"Authorization": "Bearer eyJhbGciOi.eyJ.sig"}, None)
    assert info.value.reason == "OIDC is not configured on this server"


def test_jwts_go_to_the_oidc_verifier(verifier: OidcVerifier, keys: Keys, idp: Idp) -> None:
    auth = authenticator(verifier)
    p = auth.authenticate({"Authorization": f"Bearer {token(keys, idp)}"}, "203.0.113.9")
    assert p is not None and (p.user, p.method, p.admin) == ("oidc:alice", "oidc", True)
    assert auth.authenticate({"Authorization": "Bearer orc_alice"}, None) == LOCAL["orc_alice"]


def test_no_credentials_is_anonymous() -> None:
    assert authenticator().authenticate({}, None) is None
    assert authenticator().authenticate({"Accept": "application/json"}, "10.0.0.5") is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "malformed Authorization header"),
        ("Bearer", "malformed Authorization header"),
        ("Bearer ", "malformed Authorization header"),
        ("Bearer orc_alice extra", "malformed Authorization header"),
        ("Basic YWxpY2U6c2VjcmV0", "unsupported authorization scheme"),
        ("Token orc_alice", "unsupported authorization scheme"),
        ("Bearer " + "x" * 20000, "malformed token"),
    ],
)
def test_malformed_authorization_headers(value: str, reason: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        authenticator().authenticate({"Authorization": value}, None)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer orc_alice"},
        {"AUTHORIZATION": "bearer orc_alice"},
        {"AuThOrIzAtIoN": "BEARER   orc_alice  "},
    ],
)
def test_header_names_and_the_scheme_are_case_insensitive(headers: dict[str, str]) -> None:
    assert authenticator().authenticate(headers, None) == LOCAL["orc_alice"]


def test_header_case_for_the_dn_and_conflicting_duplicates() -> None:
    p = authenticator().authenticate({"x-ssl-client-dn": DN}, "10.0.0.5")
    assert p is not None and p.user == DN_USER
    with pytest.raises(Unauthenticated, match="conflicting Authorization headers"):
        authenticator().authenticate(
            {"Authorization": "Bearer orc_alice", "authorization": "Bearer orc_bob"}, None
        )
    with pytest.raises(Forbidden):  # the proxy check comes first
        authenticator().authenticate({"X-SSL-Client-DN": DN, "x-ssl-client-dn": "CN=x"}, "1.2.3.4")


def test_www_authenticate_values() -> None:
    assert www_authenticate() == 'Bearer realm="orchid"'
    assert www_authenticate(Unauthenticated("token expired", 'kid "x"')) == (
        'Bearer realm="orchid", error="invalid_token", error_description="token expired"'
    )
    forbidden = Forbidden("the client-DN header is only accepted from a trusted proxy")
    assert str(forbidden) == forbidden.reason
    assert 'error="insufficient_scope"' in www_authenticate(forbidden)


# --- authorization --------------------------------------------------------------------------

ADMIN = Principal(user="root", groups=frozenset(), admin=True, method="oidc")
OWNER = Principal(user="alice", groups=frozenset(), admin=False, method="token")
MEMBER = Principal(user="bob", groups=frozenset({"atlas"}), admin=False, method="x509")
STRANGER = Principal(user="eve", groups=frozenset({"cms"}), admin=False, method="oidc")


@pytest.mark.parametrize(
    ("principal", "group", "allowed"),
    [
        (ADMIN, None, True),
        (ADMIN, "atlas", True),
        (OWNER, None, True),
        (OWNER, "atlas", True),
        (MEMBER, "atlas", True),
        (MEMBER, None, False),
        (MEMBER, "cms", False),
        (STRANGER, "atlas", False),
        (STRANGER, None, False),
    ],
)
def test_who_may_see_and_act_on_alices_workflow(
    principal: Principal, group: str | None, allowed: bool
) -> None:
    assert can_see(principal, "alice", group) is allowed
    assert can_act(principal, "alice", group) is allowed
