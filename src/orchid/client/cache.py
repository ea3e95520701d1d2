"""``client.cache``: the server's content-addressed cache of user payloads (by sha256).

Each user sees only what they uploaded; uploading the same bytes again is a no-op, so
:meth:`CacheApi.put` first asks whether the server has them (one HEAD) and skips the upload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from orchid.client._http import Http, decode, read_chunks
from orchid.errors import InvalidInput
from orchid.wire import CacheObjectOut, CachePage

CHUNK_BYTES = 1024 * 1024


def sha256_of(data: bytes | Path) -> str:
    """The hex sha256 of bytes, or of a file's content (read in pieces)."""
    digest = hashlib.sha256()
    if isinstance(data, bytes):
        digest.update(data)
    else:
        with _open(data) as fh:
            while chunk := fh.read(CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


class CacheApi:
    """Upload, probe, download, list and drop cached objects."""

    def __init__(self, http: Http) -> None:
        self._http = http

    def put(self, data: bytes | Path) -> CacheObjectOut:
        """Upload bytes (or a file's content, streamed) under their sha256; uploading what
        you had uploaded already is harmless. Returns what the server keeps."""
        sha256 = sha256_of(data)
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(data, bytes):
            response = self._http.request("PUT", f"/cache/{sha256}", content=data, headers=headers)
        else:
            headers["Content-Length"] = str(data.stat().st_size)
            response = self._http.request(
                "PUT", f"/cache/{sha256}", body=lambda: _file_chunks(data), headers=headers
            )
        return CacheObjectOut.model_validate(decode(response))

    def ensure(self, data: bytes | Path) -> str:
        """Make sure the server has these bytes for you, uploading them only if it has not
        (one HEAD when it has); returns their sha256, the reference to pass around."""
        sha256 = sha256_of(data)
        if not self.has(sha256):
            self.put(data)
        return sha256

    def has(self, sha256: str) -> bool:
        """Whether you have uploaded this object (and the server still has its bytes)."""
        response = self._http.request("HEAD", f"/cache/{sha256}", ok=frozenset({404}))
        response.close()
        return response.status_code == 200

    def get(self, sha256: str) -> bytes:
        """The bytes of an object you uploaded (admins: anyone's)."""
        return b"".join(self.iter_bytes(sha256))

    def iter_bytes(self, sha256: str) -> Iterator[bytes]:
        """Like :meth:`get`, in chunks as they arrive."""
        response = self._http.request("GET", f"/cache/{sha256}", stream=True)
        try:
            yield from read_chunks(response)
        finally:
            response.close()

    def objects(self, *, cursor: str | None = None, limit: int = 100) -> CachePage:
        """One page of your objects, in digest order."""
        response = self._http.request("GET", "/cache", params={"cursor": cursor, "limit": limit})
        return CachePage.model_validate(decode(response))

    def iter_objects(self, *, page_size: int = 1000) -> Iterator[CacheObjectOut]:
        cursor: str | None = None
        while True:
            page = self.objects(cursor=cursor, limit=page_size)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def delete(self, sha256: str) -> None:
        """Drop your reference (NotFound if you had none); the bytes go with the last one."""
        self._http.request("DELETE", f"/cache/{sha256}").close()


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None


def _file_chunks(path: Path) -> Iterator[bytes]:
    with _open(path) as fh:
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk
