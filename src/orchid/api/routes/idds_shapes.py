"""The iDDS server's JSON shapes of Orchid's workflows and works: request rows, transform
rows (with their pseudo collections' counts), enums as the iDDS client decodes them."""

from __future__ import annotations

import time
from typing import Any

from orchid.core import idds as idds_core
from orchid.core.model import Workflow

__all__ = ["date_text", "enum_of", "registered", "request_row", "transform_row"]


def enum_of(cls: str, name: str) -> dict[str, Any]:
    """An iDDS enum member as its client decodes it (``req['status'].name``): by class and
    number, which :data:`orchid.core.idds.ENUMS` holds."""
    value = idds_core.ENUMS[cls][name]
    attributes = {"_value_": value, "_name_": name, "_sort_order_": value}
    return {"class": cls, "module": "idds.common.constants", "attributes": attributes}


def date_text(t: float | None) -> str | None:
    return time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(t)) if t else None


def request_row(wf: Workflow) -> dict[str, Any]:
    meta = wf.params.get("idds") or {}
    status = idds_core.REQUEST_STATUS[str(wf.status)]
    kind = int(meta.get("request_type", 0))
    return {
        "request_id": wf.id,
        "scope": meta.get("scope") or "workflow",
        "name": meta.get("name") or wf.name,
        "requester": "panda",
        "request_type": enum_of("RequestType", idds_core.REQUEST_TYPES.get(kind, "Workflow")),
        "username": wf.owner,
        "userdn": None,
        "transform_tag": "workflow",
        "workload_id": meta.get("workload_id") or wf.id,
        "priority": 0,
        "status": enum_of("RequestStatus", status),
        "substatus": enum_of("RequestStatus", status),
        "locking": enum_of("RequestLocking", "Idle"),
        "created_at": date_text(wf.created_at),
        "updated_at": date_text(wf.updated_at),
        "accessed_at": date_text(wf.updated_at),
        "expired_at": None,
        "errors": {"msg": wf.message} if wf.message else None,
        "campaign": None,
        "campaign_group": None,
        "campaign_tag": None,
    }


def transform_row(wf: Workflow, work: Any, request: dict[str, Any]) -> dict[str, Any]:
    status = idds_core.TRANSFORM_STATUS[str(work.status)]
    counts = {str(k): v for k, v in work.counts.items()}
    total = sum(counts.values())
    done = counts.get("succeeded", 0)
    failed = counts.get("failed", 0) + counts.get("cancelled", 0) + counts.get("skipped", 0)
    ended = counts.get("succeeded", 0) + failed
    return {
        **request,
        "transform_id": work.id,
        "transform_workload_id": work.id,
        "transform_name": work.name,
        "transform_type": enum_of("TransformType", "Processing"),
        "transform_status": enum_of("TransformStatus", status),
        "transform_created_at": date_text(work.started_at),
        "transform_updated_at": date_text(work.finished_at or work.started_at),
        "transform_finished_at": date_text(work.finished_at),
        "input_coll_id": work.id,
        "input_coll_scope": "pseudo_dataset",
        "input_coll_name": f"{wf.name}.{work.name}.input",
        "input_total_files": total,
        "input_processed_files": ended,
        "input_new_files": total - ended,
        "output_coll_id": work.id,
        "output_coll_scope": "pseudo_dataset",
        "output_coll_name": f"{wf.name}.{work.name}",
        "output_total_files": total,
        "output_processed_files": done,
        "output_processing_files": counts.get("running", 0) + counts.get("submitted", 0),
        "output_new_files": counts.get("waiting", 0) + counts.get("ready", 0),
        "output_failed_files": failed,
        "output_missing_files": 0,
        "errors": {"msg": work.message} if work.message else None,
    }


def registered(message: str = "Command registered successfully") -> list[Any]:
    return [[0, {"status": 0, "message": message}]]
