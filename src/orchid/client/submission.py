"""The body of ``POST /workflows``: JSON, or gzipped JSON lines when jobs come from a file.

A template whose jobs are listed in a ``jobs_file`` (a Rubin-size DAG has 10^5-10^6 lines)
is sent as NDJSON: the submission object first, then the file's lines as they are, gzipped
on the way; the server reads no file a template names. Nothing is held in memory whole.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchid.core.template import decode
from orchid.errors import InvalidInput, TemplateError

NDJSON = "application/x-ndjson"
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Submission:
    """What to send: the submission object, and where its job lines come from (if any)."""

    header: Mapping[str, Any]
    job_lines: Iterable[str] | None = None

    def header_json(self) -> bytes:
        return to_json(self.header, "the submission")


def to_json(value: Any, what: str) -> bytes:
    """Compact standard JSON, or InvalidInput naming ``what`` could not be sent."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:  # NaN, infinity, a date, a set...
        raise InvalidInput(f"{what} cannot be sent as JSON: {exc}") from None


def make(
    template: Mapping[str, Any] | str,
    params: Mapping[str, Any] | None,
    share_group: str | None,
    job_lines: Iterable[str] | None = None,
) -> Submission:
    header: dict[str, Any] = {
        "template": template if isinstance(template, str) else dict(template),
        "params": dict(params or {}),
    }
    if share_group is not None:
        header["share_group"] = share_group
    return Submission(header, job_lines)


def from_file(path: Path, params: Mapping[str, Any] | None, share_group: str | None) -> Submission:
    """A template file, sent as its text (so the server's messages point at its lines), with
    its jobs_file's lines if it names one (relative to the template's folder)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"no template file {path}") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the template {path}: {exc}") from None
    raw = decode(text, str(path))
    jobs_file = raw.get("jobs_file") if isinstance(raw, Mapping) else None
    lines = None
    if isinstance(jobs_file, str) and jobs_file:
        lines = _JobFile(path.resolve().parent / jobs_file)
    sub = make(text, params, share_group, lines)
    # a server on this machine run by this user (`orchid up`) runs jobs in this folder;
    # other servers ignore it
    return Submission({**sub.header, "base_dir": str(path.resolve().parent)}, sub.job_lines)


class _JobFile:
    """The lines of a jobs file, re-readable (a retry reads it again); checked up front."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise TemplateError([("jobs_file", f"no such file: {path}")])
        if path.is_dir():
            raise TemplateError([("jobs_file", f"{path} is a folder, not a JSON-lines file")])
        self.path = path

    def __iter__(self) -> Iterator[str]:
        try:
            with self.path.open(encoding="utf-8") as fh:
                yield from fh
        except UnicodeDecodeError as exc:
            raise TemplateError(
                [("jobs_file", f"{self.path} is not UTF-8 text: {exc.reason}")]
            ) from None
        except PermissionError:
            raise TemplateError([("jobs_file", f"no permission to read {self.path}")]) from None


def gzip_lines(header: bytes, lines: Iterable[str]) -> Iterator[bytes]:
    """``header`` and then every line (each ending in a newline), gzipped, in chunks."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    buffer = bytearray(header + b"\n")
    for line in lines:
        buffer += line.encode("utf-8")
        if not line.endswith("\n"):
            buffer += b"\n"
        if len(buffer) >= CHUNK_BYTES:
            out = deflate.compress(bytes(buffer))
            buffer.clear()
            if out:
                yield out
    yield deflate.compress(bytes(buffer)) + deflate.flush()
