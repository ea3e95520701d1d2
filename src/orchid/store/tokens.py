"""Local API tokens: made with ``orchid token create``, checked by the API server on each request.

A token is ``orc_`` and 43 URL-safe characters: 256 random bits. Only its SHA-256 is stored.
A fast unsalted hash is the right tool here: salts and slow hashes (bcrypt, argon2) exist
to make guessing *low-entropy* passwords from a stolen table expensive, and 256 random bits
cannot be guessed at any speed. A fast hash also lets a request find its row by an index
lookup on the hash, so no secret is compared byte by byte and timing leaks nothing useful.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.model import Principal, name_problem
from orchid.errors import InvalidInput
from orchid.store.tables import tokens, workflows

LOCAL_TOKEN_PREFIX = "orc_"  # what tells a local API token from an OIDC JWT
LAST_USED_RESOLUTION_S = 60.0  # last_used_at is refreshed at most this often (not per request)
PREFIX_CHARS = 8


@dataclass(frozen=True)
class TokenInfo:
    """A token as listings show it: never the token, nor its hash."""

    id: int
    user: str
    groups: tuple[str, ...]
    admin: bool
    prefix: str  # the token's first characters, to tell tokens apart
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    worker_queue: str | None = None  # a worker's token: the executor queue it serves

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def create(
    conn: Connection,
    *,
    user: str,
    admin: bool,
    groups: Iterable[str],
    now: float,
    worker_queue: str | None = None,
) -> tuple[int, str]:
    """A new token for ``user``: (its id, the token). The token cannot be recovered later.

    ``worker_queue``: a worker's token, which leases the jobs of that executor queue and may
    do nothing else (never an admin's, and in no group: it acts on no workflow).
    """
    _check_name(user, "user name")
    if worker_queue is not None:
        _check_name(worker_queue, "queue name")
        if admin or groups:
            raise InvalidInput("a worker's token is for one queue only: no --admin, no --group")
    if isinstance(groups, str):
        raise TypeError("groups is a collection of names, not one string")
    names = sorted(set(groups))
    for group in names:
        _check_name(group, "group name")
    token = LOCAL_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = conn.execute(
        sa.insert(tokens)
        .values(
            user=user,
            groups=names,
            admin=admin,
            token_hash=_hash(token),
            prefix=token[:PREFIX_CHARS],
            created_at=now,
            worker_queue=worker_queue,
        )
        .returning(tokens.c.id)
    ).scalar_one()
    return int(token_id), token


def lookup(conn: Connection, token: str, now: float) -> Principal | None:
    """Who a token belongs to, or None if it is unknown or revoked.

    Call it in a write transaction: it records when the token was last used, but writes at
    most once per ``LAST_USED_RESOLUTION_S`` per token, not on every request.
    """
    found = find(conn, token, now)
    if found is None:
        return None
    principal, stale = found
    if stale is not None:
        touch(conn, stale, now)
    return principal


def find(conn: Connection, token: str, now: float) -> tuple[Principal, int | None] | None:
    """Read-only lookup: the token's principal, and its id when ``last_used_at`` is stale
    (then :func:`touch` it in a write transaction). Lets a server take no write lock on
    most requests."""
    if not token.startswith(LOCAL_TOKEN_PREFIX) or len(token) > 100:
        return None
    row = conn.execute(
        sa.select(
            tokens.c.id,
            tokens.c.user,
            tokens.c.groups,
            tokens.c.admin,
            tokens.c.last_used_at,
            tokens.c.worker_queue,
        ).where(tokens.c.token_hash == _hash(token), tokens.c.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    stale = row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION_S
    if row.worker_queue is not None:
        principal = Principal(
            user=row.user,
            groups=frozenset(),
            admin=False,
            method="worker",
            worker_queue=row.worker_queue,
        )
    else:
        principal = Principal(
            user=row.user, groups=frozenset(row.groups), admin=bool(row.admin), method="token"
        )
    return principal, (int(row.id) if stale else None)


def touch(conn: Connection, token_id: int, now: float) -> None:
    """Record that a token was used."""
    conn.execute(sa.update(tokens).where(tokens.c.id == token_id).values(last_used_at=now))


def list_tokens(conn: Connection) -> list[TokenInfo]:
    """Every token, revoked ones included, oldest first."""
    rows = conn.execute(
        sa.select(
            tokens.c.id,
            tokens.c.user,
            tokens.c.groups,
            tokens.c.admin,
            tokens.c.prefix,
            tokens.c.created_at,
            tokens.c.last_used_at,
            tokens.c.revoked_at,
            tokens.c.worker_queue,
        ).order_by(tokens.c.id)
    )
    return [
        TokenInfo(
            id=r.id,
            user=r.user,
            groups=tuple(r.groups),
            admin=bool(r.admin),
            prefix=r.prefix,
            created_at=r.created_at,
            last_used_at=r.last_used_at,
            revoked_at=r.revoked_at,
            worker_queue=r.worker_queue,
        )
        for r in rows
    ]


def revoke(conn: Connection, token_id: int, now: float) -> bool:
    """Stop a token working. False if there is no such token or it was revoked already."""
    result = conn.execute(
        sa.update(tokens)
        .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def some_users(conn: Connection, most: int) -> set[str]:
    """Up to ``most`` users known here (of active tokens, and owners of workflows): enough
    to tell one user from several without counting them all."""
    found: set[str] = set()
    active = sa.select(tokens.c.user).where(tokens.c.revoked_at.is_(None)).distinct()
    for q in (active.limit(most), sa.select(workflows.c.owner).distinct().limit(most)):
        found.update(str(row[0]) for row in conn.execute(q))
        if len(found) >= most:
            break
    return found


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(name: str, what: str) -> None:
    problem = name_problem(name, what)
    if problem is not None:
        raise InvalidInput(problem)
