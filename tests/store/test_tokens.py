"""Local API tokens, on both databases: only hashes are kept, revocation is immediate."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchid.core.model import Principal
from orchid.errors import InvalidInput
from orchid.store import tokens
from orchid.store.db import Database
from orchid.store.tables import tokens as tokens_table


def test_create_then_lookup(db: Database) -> None:
    with db.begin() as conn:
        token_id, token = tokens.create(
            conn, user="alice", admin=False, groups=["hpo", "atlas", "atlas"], now=100.0
        )
        admin_id, admin_token = tokens.create(conn, user="root", admin=True, groups=[], now=101.0)
    assert token.startswith("orc_") and len(token) == 4 + 43
    assert admin_id == token_id + 1 and admin_token != token
    with db.begin() as conn:
        assert tokens.lookup(conn, token, now=200.0) == Principal(
            user="alice", groups=frozenset({"atlas", "hpo"}), admin=False, method="token"
        )
        assert tokens.lookup(conn, admin_token, now=200.0) == Principal(
            user="root", groups=frozenset(), admin=True, method="token"
        )
        assert tokens.lookup(conn, token[:-1] + ("A" if token[-1] != "A" else "B"), 200.0) is None
        assert tokens.lookup(conn, "orc_", 200.0) is None
        assert tokens.lookup(conn, "eyJhbGciOi.x.y", 200.0) is None


def test_the_plaintext_is_stored_nowhere(db: Database) -> None:
    with db.begin() as conn:
        _, token = tokens.create(conn, user="alice", admin=True, groups=["g"], now=1.0)
        tokens.lookup(conn, token, now=2.0)
    with db.engine.connect() as conn:
        row = conn.execute(sa.select(tokens_table)).one()
    stored = " ".join(str(v) for v in row)
    assert token not in stored and token[4:] not in stored
    assert row.prefix == token[:8]
    assert len(row.token_hash) == 64 and row.token_hash != token


def test_revoke_stops_a_token_at_once(db: Database) -> None:
    with db.begin() as conn:
        token_id, token = tokens.create(conn, user="alice", admin=False, groups=[], now=1.0)
        _, other = tokens.create(conn, user="bob", admin=False, groups=[], now=1.0)
    with db.begin() as conn:
        assert tokens.revoke(conn, token_id, now=5.0) is True
        assert tokens.revoke(conn, token_id, now=6.0) is False  # already revoked
        assert tokens.revoke(conn, 999, now=6.0) is False
    with db.begin() as conn:
        assert tokens.lookup(conn, token, now=7.0) is None
        assert tokens.lookup(conn, other, now=7.0) is not None
    with db.engine.connect() as conn:
        listed = {t.id: t for t in tokens.list_tokens(conn)}
    assert listed[token_id].revoked_at == 5.0 and not listed[token_id].active


def test_list_shows_prefixes_never_hashes(db: Database) -> None:
    with db.begin() as conn:
        a, token_a = tokens.create(conn, user="alice", admin=False, groups=["b", "a"], now=10.0)
        b, token_b = tokens.create(conn, user="root", admin=True, groups=[], now=20.0)
    with db.engine.connect() as conn:
        listed = tokens.list_tokens(conn)
        hashes = set(conn.execute(sa.select(tokens_table.c.token_hash)).scalars())
    assert [(t.id, t.user, t.groups, t.admin, t.prefix) for t in listed] == [
        (a, "alice", ("a", "b"), False, token_a[:8]),
        (b, "root", (), True, token_b[:8]),
    ]
    assert [(t.created_at, t.last_used_at, t.revoked_at, t.active) for t in listed] == [
        (10.0, None, None, True),
        (20.0, None, None, True),
    ]
    shown = repr(listed)
    assert not any(h in shown for h in hashes)
    assert token_a not in shown and token_b not in shown


def test_last_used_is_written_at_most_once_a_minute(db: Database) -> None:
    with db.begin() as conn:
        token_id, token = tokens.create(conn, user="alice", admin=False, groups=[], now=0.0)

    def last_used(now: float) -> float | None:
        with db.begin() as conn:
            assert tokens.lookup(conn, token, now=now) is not None
        with db.engine.connect() as conn:
            (info,) = tokens.list_tokens(conn)
        assert info.id == token_id
        return info.last_used_at

    assert last_used(1000.0) == 1000.0  # first use
    assert last_used(1030.0) == 1000.0  # within a minute: no write
    assert last_used(1059.9) == 1000.0
    assert last_used(1060.0) == 1060.0
    assert last_used(1061.0) == 1060.0


@pytest.mark.parametrize(
    ("user", "groups", "message"),
    [
        ("", [], "the user name is empty"),
        ("al ice", [], "the user name 'al ice' contains whitespace"),
        ("alice\n", [], "contains whitespace"),
        ("a" * 201, [], "longer than 200 characters"),
        ("al\x00ice", [], "contains control characters"),
        ("alice", ["ok", "bad group"], "the group name 'bad group' contains whitespace"),
        ("alice", [""], "the group name is empty"),
    ],
)
def test_bad_names_are_refused(db: Database, user: str, groups: list[str], message: str) -> None:
    with db.begin() as conn, pytest.raises(InvalidInput, match=message):
        tokens.create(conn, user=user, admin=False, groups=groups, now=1.0)
    with db.engine.connect() as conn:
        assert tokens.list_tokens(conn) == []


def test_a_200_character_user_is_fine(db: Database) -> None:
    with db.begin() as conn:
        _, token = tokens.create(conn, user="u" * 200, admin=False, groups=[], now=1.0)
        principal = tokens.lookup(conn, token, now=2.0)
    assert principal is not None and principal.user == "u" * 200
