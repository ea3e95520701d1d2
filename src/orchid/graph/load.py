"""A workflow's graph from the database: its template, works (with job counts) and links."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from orchid.core.model import Work
from orchid.engine.templates import TemplateCache
from orchid.graph.model import TaskGraph, build
from orchid.store import monitor, works
from orchid.store import workflows as workflow_store


def load(
    conn: Connection,
    workflow_id: int,
    templates: TemplateCache | None = None,
    rows: Sequence[Work] | None = None,
) -> TaskGraph:
    """The task graph of a workflow as it is now (``rows``: its works, if already read).
    Reads counts by work (one index-only query), never the jobs or their edges."""
    wf = workflow_store.get(conn, workflow_id)
    rows = rows if rows is not None else works.list_for(conn, workflow_id)
    # an open workflow's template grows: the cache reloads it for a work it does not know
    compiled = (templates or TemplateCache(1)).get(conn, workflow_id, {w.name for w in rows})
    facts = monitor.facts(conn, workflow_id)
    return build(
        workflow_id,
        str(wf.status),
        compiled.template,
        compiled.analysis,
        rows,
        facts.links,
        facts.loops,
    )
