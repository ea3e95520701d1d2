"""Keys Orchid's services share through their database (the HMAC key of job tokens).

A key is made on first use by whichever process needs it first; a concurrent first use
by another process keeps the one that was written first. Only services with database
access read them; no endpoint returns them.
"""

from __future__ import annotations

import secrets as random

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from orchid.store.tables import secrets

JOB_TOKEN_KEY = "job-token-key"


def key(conn: Connection, name: str, now: float) -> bytes:
    """The key called ``name`` (32 random bytes), made now if there is none yet."""
    row = conn.execute(sa.select(secrets.c.value).where(secrets.c.name == name)).first()
    if row is not None:
        return bytes.fromhex(row.value)
    value = random.token_hex(32)
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(secrets).values(name=name, value=value, created_at=now))
    except IntegrityError:  # another process made it first: use theirs
        row = conn.execute(sa.select(secrets.c.value).where(secrets.c.name == name)).one()
        value = row.value
    return bytes.fromhex(value)
