"""Payloads of the carousel example: "reprocess" a group of files, then sum up."""

from __future__ import annotations

import zlib
from typing import Any


def reprocess(
    files: list[str], urls: list[str], collection: str, calibration: str
) -> dict[str, Any]:
    """Pretend to reconstruct each file: a made-up event count from its name."""
    events = sum(1000 + zlib.crc32(f"{collection}/{f}".encode()) % 500 for f in files)
    return {
        "collection": collection,
        "files": len(files),
        "events": events,
        "calibration": calibration,
    }


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    per: dict[str, int] = {}
    for r in results:
        per[r["collection"]] = per.get(r["collection"], 0) + r["files"]
    return {
        "files": sum(per.values()),
        "events": sum(r["events"] for r in results),
        "datasets": per,
    }
