"""``orchid``: run, submit, watch and steer workflows from a terminal."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy.exc
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from orchid.cli.progress import failures, follow, render, snapshot, status_text
from orchid.core.states import WorkflowStatus
from orchid.core.template import json_schema
from orchid.engine.runner import make_runner
from orchid.engine.submit import load_template, parse_param, submit
from orchid.engine.templates import compile_template
from orchid.errors import InvalidInput, NotFound, OrchidError
from orchid.settings import Settings
from orchid.store import commands, jobs, workflows
from orchid.store.db import Database

app = typer.Typer(
    name="orchid",
    help="Orchid: workflow orchestration for data-intensive science.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
token_app = typer.Typer(help="Local API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
console = Console()
err = Console(stderr=True)

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="database URL, or a path to an SQLite file [env: ORCHID_DB_URL]"),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="workflow parameter key=value (JSON value)"),
]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-w", help="jobs run at once")]
ExecutorOpt = Annotated[str | None, typer.Option("--executor", help="local or null")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="log what the agents do")]
MAX_ID = 2**63 - 1
WorkflowId = Annotated[int, typer.Argument(min=1, max=MAX_ID, help="workflow id")]


def _settings(**overrides: Any) -> Settings:
    return Settings.load(**overrides)


def _open(settings: Settings) -> Database:
    db = Database(settings.db_url)
    db.ensure_schema()
    return db


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False)],
    )


def _params(items: list[str] | None) -> dict[str, Any]:
    return dict(parse_param(p) for p in items or [])


@app.command()
def run(
    template: Annotated[Path, typer.Argument(help="YAML or JSON template")],
    param: ParamOpt = None,
    db: DbOpt = None,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Run a workflow here, to the end, with live progress. Exits 1 unless it succeeds."""
    _logging(verbose)
    settings = _settings(db=db, workers=workers, executor=executor)
    raw, base = load_template(template)
    database = _open(settings)
    wf_id = submit(
        database, raw, base_dir=base, params=_params(param), owner=settings.owner, now=time.time()
    )
    runner, exe = make_runner(settings, database)
    done = threading.Event()

    def finished() -> bool:
        return snapshot(database, wf_id)[0].status in (
            WorkflowStatus.SUCCEEDED,
            WorkflowStatus.FAILED,
            WorkflowStatus.PARTIAL,
            WorkflowStatus.CANCELLED,
        )

    failure: list[BaseException] = []

    def loop() -> None:
        try:
            runner.run(until=finished)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=loop, name="orchid-agents", daemon=True)
    thread.start()
    try:
        wf = follow(database, wf_id, console, finished=done.is_set)
    except KeyboardInterrupt:
        runner.stop()
        thread.join(10)
        exe.close()
        err.print(
            f"interrupted: workflow {wf_id} is saved; `orchid agents` carries it on, "
            f"`orchid abort {wf_id}` stops it"
        )
        raise typer.Exit(130) from None
    runner.stop()
    thread.join(30)
    exe.close()
    runner.close()
    if failure:
        raise failure[0]
    wf = snapshot(database, wf_id)[0]
    _explain(database, wf.id, wf.status)
    _exit_for(wf.status)


def _explain(database: Database, workflow_id: int, status: WorkflowStatus) -> None:
    """After a failure: which jobs failed and how to see why."""
    if status in (WorkflowStatus.FAILED, WorkflowStatus.PARTIAL):
        for line in failures(database, workflow_id):
            err.print(line, highlight=False, soft_wrap=True)


def _exit_for(status: WorkflowStatus) -> None:
    if status != WorkflowStatus.SUCCEEDED:
        raise typer.Exit(1)


@app.command("submit")
def submit_cmd(
    template: Annotated[Path, typer.Argument(help="YAML or JSON template")],
    param: ParamOpt = None,
    db: DbOpt = None,
) -> None:
    """Queue a workflow for the agents (`orchid agents`) and print its id."""
    settings = _settings(db=db)
    raw, base = load_template(template)
    wf_id = submit(
        _open(settings),
        raw,
        base_dir=base,
        params=_params(param),
        owner=settings.owner,
        now=time.time(),
    )
    console.print(wf_id)


@app.command()
def validate(template: Annotated[Path, typer.Argument(help="YAML or JSON template")]) -> None:
    """Check a template without running it."""
    raw, base = load_template(template)
    compiled = compile_template(raw, str(base))
    console.print(
        f"[green]valid[/]: {compiled.template.name}, {len(compiled.template.works)} works, "
        f"order {' → '.join(compiled.analysis.order)}"
    )


@app.command()
def status(
    workflow_id: Annotated[
        int | None, typer.Argument(help="one workflow; all when left out")
    ] = None,
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="how many workflows to list")] = 20,
) -> None:
    """A table of workflows, or of one workflow's works and their jobs."""
    database = _open(_settings(db=db))
    if workflow_id is not None:
        wf, ws = snapshot(database, workflow_id)
        if as_json:
            console.print_json(
                data={
                    "id": wf.id,
                    "name": wf.name,
                    "status": wf.status,
                    "message": wf.message,
                    "works": [
                        {
                            "name": w.name,
                            "iteration": w.iteration,
                            "status": w.status,
                            "message": w.message,
                            "counts": {str(k): v for k, v in w.counts.items()},
                        }
                        for w in ws
                    ],
                }
            )
            return
        console.print(render(wf, ws, time.time()))
        for w in ws:
            if w.message and w.status != "succeeded":
                console.print(f"  [dim]{w.name}:[/] {w.message}")
        _explain(database, wf.id, wf.status)
        return
    with database.engine.connect() as conn:
        rows = workflows.list_recent(conn, limit=limit)
    if as_json:
        console.print_json(
            data=[
                {
                    "id": r.id,
                    "name": r.name,
                    "status": r.status,
                    "owner": r.owner,
                    "created_at": r.created_at,
                }
                for r in rows
            ]
        )
        return
    table = Table("id", "name", "status", "owner", "age", "message")
    for r in rows:
        table.add_row(
            str(r.id),
            r.name,
            status_text(r.status),
            r.owner,
            _age(time.time() - r.created_at),
            r.message[:60],
        )
    console.print(table if rows else "no workflows yet: `orchid run TEMPLATE` starts one")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


@app.command()
def watch(workflow_id: WorkflowId, db: DbOpt = None) -> None:
    """Follow a workflow's progress until it ends (agents run elsewhere)."""
    database = _open(_settings(db=db))
    wf = follow(database, workflow_id, console)
    _explain(database, wf.id, wf.status)
    _exit_for(wf.status)


def _command(kind: commands.CommandKind, workflow_id: int, db: str | None) -> None:
    database = _open(_settings(db=db))
    with database.begin() as conn:
        workflows.get(conn, workflow_id)
        commands.add(conn, workflow_id, kind, time.time())
    console.print(f"{kind} of workflow {workflow_id} queued; the agents apply it")


@app.command()
def abort(workflow_id: WorkflowId, db: DbOpt = None) -> None:
    """Cancel a workflow: nothing new starts, running jobs are stopped."""
    _command("abort", workflow_id, db)


@app.command()
def suspend(workflow_id: WorkflowId, db: DbOpt = None) -> None:
    """Pause a workflow: running jobs finish, no new job starts until resume."""
    _command("suspend", workflow_id, db)


@app.command()
def resume(workflow_id: WorkflowId, db: DbOpt = None) -> None:
    """Carry on with a suspended workflow."""
    _command("resume", workflow_id, db)


@app.command()
def retry(workflow_id: WorkflowId, db: DbOpt = None) -> None:
    """Run the failed jobs again (and what was skipped because of them)."""
    _command("retry", workflow_id, db)


@app.command()
def finish(workflow_id: WorkflowId, db: DbOpt = None) -> None:
    """Start no new work in a workflow; what runs now runs to its end."""
    _command("finish", workflow_id, db)


@app.command()
def logs(
    job_id: Annotated[int, typer.Argument(min=1, max=MAX_ID, help="job id")],
    db: DbOpt = None,
    stderr: Annotated[bool, typer.Option("--err", help="show stderr instead of stdout")] = False,
) -> None:
    """Print a job's stdout (or stderr) from its latest attempt."""
    database = _open(_settings(db=db))
    with database.engine.connect() as conn:
        job = jobs.get(conn, job_id)
    if not job.log_uri:
        raise InvalidInput(f"job {job_id} ({job.status}) has no log yet")
    path = Path(job.log_uri)
    if stderr:
        path = path.with_suffix(".err")
    if not path.exists():
        raise InvalidInput(f"the log {path} is gone")
    with path.open("rb") as fh:
        while chunk := fh.read(65536):
            sys.stdout.buffer.write(chunk)
    sys.stdout.flush()


@app.command()
def agents(
    db: DbOpt = None,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = None,
    burst: Annotated[bool, typer.Option(help="exit once there is nothing left to do")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run the agents (clerk, transformer, carrier, trigger) against the configured database."""
    _logging(verbose)
    settings = _settings(db=db, workers=workers, executor=executor)
    runner, exe = make_runner(settings, _open(settings))
    err.print(f"agents running on {settings.db_url} with the {settings.executor} executor")
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        runner.run(idle_exit=max(2.0, settings.poll_interval * 2) if burst else None)
    except KeyboardInterrupt:
        pass
    finally:
        exe.close()
        runner.close()


@app.command()
def server(
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8042,
    workers: Annotated[int, typer.Option("--http-workers", min=1, max=64)] = 1,
    verbose: VerboseOpt = False,
) -> None:
    """Serve the REST API (authentication from ORCHID_OIDC_* / local tokens)."""
    import uvicorn

    _logging(verbose)
    settings = _settings(db=db)
    _open(settings)  # migrate before the workers start
    err.print(f"Orchid API on http://{host}:{port}/api/v1 (database {settings.db_url})")
    if workers == 1:
        from orchid.api.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
    else:
        import os

        os.environ["ORCHID_DB_URL"] = settings.db_url
        uvicorn.run(
            "orchid.api.app:from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = None) -> None:
    """Create or migrate the schema to the newest version."""
    settings = _settings(db=db)
    Database(settings.db_url).upgrade()
    console.print(f"schema up to date: {settings.db_url}")


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", help="whose token it is")],
    admin: Annotated[bool, typer.Option("--admin", help="may see and steer everything")] = False,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="a group the user belongs to (repeatable)")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Make an API token and print it (on stdout, alone); only its hash is kept."""
    from orchid.store import tokens

    database = _open(_settings(db=db))
    with database.begin() as conn:
        token_id, token = tokens.create(
            conn, user=user, admin=admin, groups=group or [], now=time.time()
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

    database = _open(_settings(db=db))
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
                    "prefix": t.prefix,
                    "created_at": t.created_at,
                    "last_used_at": t.last_used_at,
                    "revoked_at": t.revoked_at,
                }
                for t in rows
            ]
        )
        return
    table = Table("id", "user", "groups", "admin", "token", "created", "last used", "state")
    now = time.time()
    for t in rows:
        table.add_row(
            str(t.id),
            t.user,
            ", ".join(t.groups),
            "yes" if t.admin else "",
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

    database = _open(_settings(db=db))
    with database.begin() as conn:
        if not tokens.revoke(conn, token_id, time.time()):
            raise NotFound(f"no active token {token_id}: `orchid token list` shows the tokens")
    console.print(f"token {token_id} revoked")


@app.command()
def schema() -> None:
    """Print the JSON Schema of workflow templates."""
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


def main() -> None:
    """Entry point: map Orchid's errors to messages and exit codes (2: bad input)."""
    try:
        app()
    except (InvalidInput, NotFound) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OrchidError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except sqlalchemy.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        err.print(
            f"[red]error:[/] cannot use the database: {reason}. Check --db / ORCHID_DB_URL "
            "and that the server is running",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
