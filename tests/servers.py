"""What the fixtures that run a real server (iDDS, Rucio, PanDA) and the benchmarks share:
a free port, a PostgreSQL database of their own on 127.0.0.1 (with the databases of runs
killed before their clean-up dropped), waiting for the server to answer, and stopping the
process groups they started (by PID).

A database is named ``<prefix><pid>_<random>`` (the prefix ends in ``_`` and has one ``_``
inside, as ``orchid_idds_``): the pid tells whether its run is still alive.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import sqlalchemy as sa

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drop_orphans(conn: sa.Connection, prefix: str, *, roles: bool = False) -> None:
    """Drop the databases named ``<prefix><pid>_...`` whose process is gone (and the role of
    the same name with ``roles``)."""
    names = conn.execute(
        sa.text("SELECT datname FROM pg_database WHERE datname LIKE :pattern"),
        {"pattern": f"{prefix}%"},
    ).scalars()
    for name in list(names):
        try:
            os.kill(int(name.split("_")[2]), 0)
        except ProcessLookupError:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if roles:
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
        except (ValueError, IndexError, PermissionError):
            continue


def create_database(prefix: str) -> str:
    """A new database of this process's own (orphans of ``prefix`` dropped first): its name."""
    name = f"{prefix}{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            drop_orphans(conn, prefix)
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return name


def drop_database(name: str) -> None:
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def stop_groups(procs: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    """TERM the process group of each of ``procs`` (started with ``start_new_session``),
    KILL those still there ``grace`` seconds later."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    end = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(end - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


@dataclass
class Running:
    """A server this process started: its URL, folder, database and processes."""

    url: str
    dir: Path
    database: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    grace: ClassVar[float] = 10.0  # seconds from TERM to KILL

    def stop(self) -> None:
        stop_groups(self.procs, self.grace)
        drop_database(self.database)


def wait_for(
    ping: str,
    procs: Sequence[subprocess.Popen[bytes]],
    log: Path,
    what: str,
    *,
    tail: int = 1500,
    timeout: float = 60.0,
) -> None:
    """Until ``ping`` answers 200; an error with the end of ``log`` if one of ``procs`` ends
    or ``timeout`` passes first."""
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(ping, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.2)
    raise RuntimeError(f"the {what} server did not start:\n{log.read_text()[-tail:]}")
