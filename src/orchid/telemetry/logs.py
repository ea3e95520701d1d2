"""JSON log lines for log collectors (Loki, Elasticsearch, ...): ``ORCHID_LOG_FORMAT=json``.

One object per line with the time, level, logger and message, the workflow/work/job ids a
record carries as ``extra``, and the traceback of an exception.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

IDS = ("workflow_id", "work_id", "job_id", "agent")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in IDS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def json_handler(stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    return handler
