"""A job's log over HTTP, safely: the API's log route and the monitor's log page both
answer with :func:`log_response` (so neither imports the other for it)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Literal

import anyio
from starlette.background import BackgroundTask
from starlette.responses import FileResponse
from starlette.types import Send

from orchid.core.model import Job
from orchid.errors import NotFound
from orchid.safefiles import no_log, open_log


class SnapshotFileResponse(FileResponse):
    """An open file sent as it was when the response began.

    The file was opened safely (:func:`orchid.safefiles.open_log`) and is sent from that
    descriptor: never opened again by name, which a link put there meanwhile could
    redirect. A running job's log grows while it is sent; FileResponse declares the size
    it saw and then reads to the end of the file, and HTTP cannot carry more than the
    Content-Length it declared. Ranges are already exact, so only the whole-file answer
    needs this.
    """

    def __init__(self, file: BinaryIO, name: str, media_type: str) -> None:
        self._file = file
        super().__init__(
            name,
            media_type=media_type,
            stat_result=os.fstat(file.fileno()),
            background=BackgroundTask(file.close),
        )

    @contextlib.asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        self._file.seek(0)
        yield anyio.wrap_file(self._file)

    async def _handle_simple(self, send: Send, send_header_only: bool, send_pathsend: bool) -> None:
        if send_header_only:
            await super()._handle_simple(send, send_header_only, False)
            return
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        left = self.stat_result.st_size if self.stat_result else 0
        async with self._open_file() as file:
            while left > 0:
                chunk = await file.read(min(self.chunk_size, left))
                if not chunk:  # truncated meanwhile: nothing more to send
                    break
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
        if left > 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def log_response(
    job: Job, stream: Literal["stdout", "stderr"], log_root: Path
) -> SnapshotFileResponse:
    """A job's log as it is now, if it is a plain file inside ``log_root`` reached without
    links (also served by the monitor's job page)."""
    if not job.log_uri:
        raise NotFound(no_log(job.id, job.status))
    file = open_log(log_root, job.id, job.log_uri, stream)
    return SnapshotFileResponse(file, job.log_uri, "text/plain; charset=utf-8")
