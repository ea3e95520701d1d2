"""Keys Orchid's services share through their database (the HMAC key of job tokens), and
the database's instance id (the folder of its logs and result files, not a secret).

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
INSTANCE_ID = "instance-id"


def key(conn: Connection, name: str, now: float) -> bytes:
    """The key called ``name`` (32 random bytes), made now if there is none yet."""
    return bytes.fromhex(_value(conn, name, now, 32))


def instance_id(conn: Connection, now: float) -> str:
    """This database's id (16 hex digits), made on first use: the executors write each
    database's logs and result files into a folder of that name, so that databases
    sharing one ORCHID_HOME never read or overwrite each other's files."""
    return _value(conn, INSTANCE_ID, now, 8)


def _value(conn: Connection, name: str, now: float, size: int) -> str:
    """The value called ``name`` (``size`` random bytes, in hex), made now if there is none."""
    row = conn.execute(sa.select(secrets.c.value).where(secrets.c.name == name)).first()
    if row is not None:
        return str(row.value)
    value = random.token_hex(size)
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(secrets).values(name=name, value=value, created_at=now))
    except IntegrityError:  # another process made it first: use theirs
        row = conn.execute(sa.select(secrets.c.value).where(secrets.c.name == name)).one()
        value = row.value
    return str(value)
