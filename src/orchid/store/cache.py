"""The user payload cache: content-addressed objects on disk, one reference row per uploader.

An object is stored once, at ``<root>/ab/cdef…`` (its sha256, split after two characters),
however many users uploaded it; ``cache_objects`` holds a (sha256, owner) row per upload.
The file goes when its last reference does.

Uploads are written to a temporary file under ``<root>/incoming`` and hashed on the way,
then renamed into place (atomic on one file system), so an object's path only ever holds
complete bytes. Adding and removing references to one digest is serialized (PostgreSQL:
a transaction-scoped advisory lock on the digest; SQLite: one writer at a time), so a
delete that removes the file cannot interleave with an upload that relies on it.

Every path is built from a digest checked by :func:`check_digest`: never from raw input.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from orchid.errors import InvalidInput, NotFound
from orchid.store import quotas
from orchid.store.tables import cache_objects

SHA256_PATTERN = r"^[0-9a-f]{64}$"
_SHA256 = re.compile(SHA256_PATTERN)
_LOCK_CLASS = 0x0CAC4E  # first key of the advisory locks on digests (PostgreSQL)


@dataclass(frozen=True)
class CacheObject:
    """One user's reference to a cached object."""

    sha256: str
    owner: str
    size: int
    created_at: float


def check_digest(value: str) -> str:
    """``value`` if it is a sha256 as 64 lowercase hex characters, else InvalidInput."""
    if not _SHA256.fullmatch(value):
        raise InvalidInput(
            f"{value[:80]!r} is not a sha256 digest: write it as 64 lowercase hex characters "
            "(`sha256sum FILE` prints it)"
        )
    return value


class Incoming:
    """An upload being received: bytes go to a temporary file and through sha256."""

    def __init__(self, path: Path, out: BinaryIO) -> None:
        self.path = path
        self.size = 0
        self._out = out
        self._hash = hashlib.sha256()

    def write(self, data: bytes | bytearray) -> None:
        self._hash.update(data)
        self._out.write(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        """Flush the bytes to disk (before the rename makes them visible)."""
        if not self._out.closed:
            self._out.flush()
            os.fsync(self._out.fileno())
            self._out.close()


class Blobs:
    """The objects' bytes, under ``root`` (``settings.home / "cache"`` for the API server)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        digest = check_digest(sha256)
        return self.root / digest[:2] / digest[2:]

    @contextmanager
    def receive(self) -> Iterator[Incoming]:
        """A temporary file to write an upload into; removed on exit unless placed."""
        incoming_dir = self.root / "incoming"
        incoming_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=incoming_dir, prefix="upload-")
        upload = Incoming(Path(name), os.fdopen(fd, "wb"))
        try:
            yield upload
        finally:
            upload._out.close()
            with suppress(FileNotFoundError):
                upload.path.unlink()

    def place(self, upload: Incoming, sha256: str) -> None:
        """Move a received upload to its object path (atomically replacing any copy there)."""
        target = self.path(sha256)
        upload.close()
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.replace(upload.path, target)
        _fsync_dir(target.parent)

    def open(self, sha256: str) -> BinaryIO | None:
        """The object's bytes to read, or None if there is no file. An open file stays
        readable even if the object is deleted meanwhile."""
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            return None

    def size(self, sha256: str) -> int | None:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def discard(self, sha256: str) -> None:
        with suppress(FileNotFoundError):
            self.path(sha256).unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(conn: Connection, sha256: str) -> None:
    """Serialize reference changes of one digest until the transaction ends."""
    if conn.dialect.name == "postgresql":
        key = int(sha256[:8], 16) - 2**31  # a signed 32-bit key
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_CLASS, key)))
    # SQLite: every write transaction is BEGIN IMMEDIATE, so writers are already serialized


def _to_model(r: Row[Any]) -> CacheObject:
    return CacheObject(r.sha256, r.owner, int(r.size), r.created_at)


def add(
    conn: Connection, blobs: Blobs, sha256: str, upload: Incoming, *, owner: str, now: float
) -> tuple[CacheObject, bool]:
    """Store a received upload under ``sha256`` and give ``owner`` a reference to it.

    Returns the reference and whether it is new (uploading the same bytes again is a
    no-op for the references, and heals a lost file). InvalidInput if the bytes received
    do not have the digest the uploader named.
    """
    check_digest(sha256)
    actual = upload.hexdigest()
    if actual != sha256:
        raise InvalidInput(
            f"the bytes received ({upload.size:,} of them) have sha256 {actual}, not {sha256} "
            "as named; name the digest of exactly the bytes you send"
        )
    _lock(conn, sha256)
    quotas.check_cache(conn, owner, upload.size, sha256)
    blobs.place(upload, sha256)
    mine = sa.and_(cache_objects.c.sha256 == sha256, cache_objects.c.owner == owner)
    row = conn.execute(sa.select(cache_objects).where(mine)).first()
    if row is not None:
        return _to_model(row), False
    conn.execute(
        sa.insert(cache_objects).values(
            sha256=sha256, owner=owner, size=upload.size, created_at=now
        )
    )
    return CacheObject(sha256, owner, upload.size, now), True


def find(conn: Connection, sha256: str, owner: str | None) -> CacheObject:
    """``owner``'s reference to an object (None: anyone's, for admins), else NotFound.

    The message is the same whether or not someone else uploaded these bytes, so that a
    caller cannot learn what others have cached.
    """
    q = sa.select(cache_objects).where(cache_objects.c.sha256 == check_digest(sha256))
    if owner is not None:
        q = q.where(cache_objects.c.owner == owner)
    row = conn.execute(q.order_by(cache_objects.c.created_at).limit(1)).first()
    if row is None:
        raise NotFound(f"you have no cached object {sha256}; upload it with PUT")
    return _to_model(row)


def list_for(
    conn: Connection, owner: str, *, after: str | None = None, limit: int = 100
) -> list[CacheObject]:
    """``owner``'s references in digest order; ``after`` (a digest) pages."""
    q = (
        sa.select(cache_objects)
        .where(cache_objects.c.owner == owner)
        .order_by(cache_objects.c.sha256)
        .limit(limit)
    )
    if after is not None:
        q = q.where(cache_objects.c.sha256 > check_digest(after))
    return [_to_model(r) for r in conn.execute(q)]


def remove(conn: Connection, blobs: Blobs, sha256: str, *, owner: str) -> bool:
    """Drop ``owner``'s reference (NotFound if none); delete the file if it was the last one.

    Returns whether the file was deleted. The file goes before the commit: if the commit
    then failed, the reference would point at nothing, which reads as "not found" and is
    healed by the next upload, rather than leaving an orphan file forever.
    """
    check_digest(sha256)
    _lock(conn, sha256)
    res = conn.execute(
        sa.delete(cache_objects).where(
            cache_objects.c.sha256 == sha256, cache_objects.c.owner == owner
        )
    )
    if res.rowcount == 0:
        raise NotFound(f"you have no cached object {sha256}")
    left = conn.execute(
        sa.select(sa.func.count()).where(cache_objects.c.sha256 == sha256)
    ).scalar_one()
    if left:
        return False
    blobs.discard(sha256)
    return True
