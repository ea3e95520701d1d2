"""`orchid token create|list|revoke`: local API tokens."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from orchid.errors import ConfigError, NotFound

if TYPE_CHECKING:
    pass

from orchid.cli.common import (
    DbOpt,
    _age,
    _open,
    _open_existing,
    _settings,
    console,
    err,
    token_app,
)


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", help="whose token it is")],
    admin: Annotated[bool, typer.Option("--admin", help="may see and steer everything")] = False,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="a group the user belongs to (repeatable)")
    ] = None,
    worker: Annotated[
        str | None,
        typer.Option(
            "--worker",
            metavar="QUEUE",
            help="a worker's token: it leases the jobs of this executor queue (a section "
            "[executors.QUEUE] of type worker) and may do nothing else",
        ),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Make an API token and print it (on stdout, alone); only its hash is kept."""
    from orchid.store import tokens

    settings = _settings(db=db)
    if worker is not None:
        section = settings.executors.get(worker)
        if section is None or section.type != "worker":
            queues = sorted(n for n, c in settings.executors.items() if c.type == "worker")
            raise ConfigError(
                f"no worker queue {worker!r}: a worker's token serves a section "
                f'[executors.{worker}] with type = "worker" of the settings file '
                f"(the worker queues there: {', '.join(queues) or 'none'})"
            )
    database = _open(settings)
    with database.begin() as conn:
        token_id, token = tokens.create(
            conn, user=user, admin=admin, groups=group or [], now=time.time(), worker_queue=worker
        )
    sys.stdout.write(token + "\n")
    sys.stdout.flush()
    err.print(
        f"token {token_id} for {user}: copy it now, it cannot be shown again "
        f"(`orchid token revoke {token_id}` withdraws it)",
        highlight=False,
        soft_wrap=True,
    )


@token_app.command("list")
def token_list(
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """The tokens (their first characters, never the tokens themselves), revoked ones too."""
    from orchid.store import tokens

    database = _open_existing(_settings(db=db))
    with database.engine.connect() as conn:
        rows = tokens.list_tokens(conn)
    if as_json:
        console.print_json(
            data=[
                {
                    "id": t.id,
                    "user": t.user,
                    "groups": list(t.groups),
                    "admin": t.admin,
                    "worker_queue": t.worker_queue,
                    "prefix": t.prefix,
                    "created_at": t.created_at,
                    "last_used_at": t.last_used_at,
                    "revoked_at": t.revoked_at,
                }
                for t in rows
            ]
        )
        return
    table = Table(
        "id", "user", "groups", "admin", "worker", "token", "created", "last used", "state"
    )
    now = time.time()
    for t in rows:
        table.add_row(
            str(t.id),
            t.user,
            ", ".join(t.groups),
            "yes" if t.admin else "",
            t.worker_queue or "",
            f"{t.prefix}…",
            f"{_age(now - t.created_at)} ago",
            f"{_age(now - t.last_used_at)} ago" if t.last_used_at is not None else "never",
            "active" if t.active else "revoked",
        )
    console.print(table if rows else "no tokens yet: `orchid token create --user NAME` makes one")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="the id `orchid token list` shows")],
    db: DbOpt = None,
) -> None:
    """Stop a token working, at once."""
    from orchid.store import tokens

    database = _open_existing(_settings(db=db))
    with database.begin() as conn:
        if not tokens.revoke(conn, token_id, time.time()):
            raise NotFound(f"no active token {token_id}: `orchid token list` shows the tokens")
    console.print(f"token {token_id} revoked")
