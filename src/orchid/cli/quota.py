"""`orchid quota show|set|unset`: limits and fair-share weights, on the database directly
(the API's ``/api/v1/quotas`` does the same for admins over HTTP)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from orchid.cli.common import DbOpt, _open_existing, _settings, console, quota_app
from orchid.errors import NotFound

KindArg = Annotated[str, typer.Argument(help="user, group or executor")]
SubjectArg = Annotated[str, typer.Argument(help="the user, group or executor name")]
QuotaArg = Annotated[
    str,
    typer.Argument(
        help="running, queued, jobs_per_workflow, workflows_per_day, cache_bytes, "
        "result_bytes or weight"
    ),
]
OnOpt = Annotated[
    str, typer.Option("--on", metavar="EXECUTOR", help="a running limit on this executor only")
]


@quota_app.command("show")
def quota_show(db: DbOpt = None) -> None:
    """Every limit and weight, with what its subject uses now."""
    from orchid.store import quotas

    settings = _settings(db=db)
    database = _open_existing(settings)
    with database.engine.connect() as conn:
        used = quotas.usage(conn, time.time(), settings.share_decay)
    if not used:
        console.print("no limits or weights: jobs are claimed oldest first, whoever owns them")
        return
    table = Table("kind", "subject", "executor", "quota", "value", "used")
    for u in used:
        q = u.quota
        shown = f"{u.used:.2f}" if q.quota == "weight" else f"{u.used:,.0f}"
        table.add_row(q.kind, q.subject, q.executor or "*", q.quota, f"{q.value:,}", shown)
    console.print(table)


@quota_app.command("set")
def quota_set(
    kind: KindArg,
    subject: SubjectArg,
    quota: QuotaArg,
    value: int,
    on: OnOpt = "",
    db: DbOpt = None,
) -> None:
    """Set a limit or a weight: `orchid quota set user alice running 100`."""
    from orchid.store import quotas

    q = quotas.Quota(kind, subject, quota, value, on).check()
    database = _open_existing(_settings(db=db))
    with database.begin() as conn:
        quotas.set_quota(conn, q, time.time())
    where = f" on {on}" if on else ""
    console.print(f"{kind} {subject}: {quota} = {value:,}{where}")


@quota_app.command("unset")
def quota_unset(
    kind: KindArg, subject: SubjectArg, quota: QuotaArg, on: OnOpt = "", db: DbOpt = None
) -> None:
    """Remove a limit or a weight."""
    from orchid.store import quotas

    database = _open_existing(_settings(db=db))
    with database.begin() as conn:
        if not quotas.unset(conn, kind, subject, quota, on):
            raise NotFound(f"no quota {quota} of {kind} {subject!r}" + (f" on {on}" if on else ""))
    console.print(f"{kind} {subject}: {quota} removed")
