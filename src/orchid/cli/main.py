"""``orchid``: run, submit, watch and steer workflows from a terminal."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy.exc
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from orchid.cli.progress import (
    failures,
    follow,
    follow_remote,
    from_api,
    remote_failures,
    render,
    snapshot,
    status_text,
)
from orchid.core.model import Work, Workflow
from orchid.core.states import WorkflowStatus
from orchid.core.template import json_schema
from orchid.engine.runner import make_runner
from orchid.engine.submit import load_template, parse_param, submit
from orchid.engine.templates import compile_template
from orchid.errors import InvalidInput, NotFound, OrchidError
from orchid.settings import Settings
from orchid.store import commands, jobs, workflows
from orchid.store.db import Database

if TYPE_CHECKING:
    from orchid.api.schemas import WorkflowOut
    from orchid.client import Client

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
    typer.Option("--db", help="database URL, or a path to an SQLite file (env ORCHID_DB_URL)"),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="workflow parameter key=value (JSON value)"),
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="an Orchid server to go through (env ORCHID_URL), as ORCHID_TOKEN's user",
        show_default=False,
    ),
]
GroupOpt = Annotated[
    str | None,
    typer.Option("--share-group", help="a group of yours whose members may see and steer it"),
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


def _remote(url: str | None, db: str | None) -> Client | None:
    """The API client when this command goes to a server; None: the embedded engine.

    A server is used when ``--url`` or ORCHID_URL names one, or when the client config
    file (``orchid up`` writes it) does and no database was chosen (``--db``, ORCHID_DB_URL).
    """
    if url is not None and db is not None:
        raise InvalidInput("--url (a server) and --db (a database here) exclude each other")
    if db is not None:
        return None
    env = os.environ
    if (
        url is None
        and not env.get("ORCHID_URL", "").strip()
        and env.get("ORCHID_DB_URL", "").strip()
    ):
        return None
    from orchid.client import Client, ClientConfig

    config = ClientConfig.load(url=url)
    return Client.from_config(config) if config is not None else None


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
    _explain(wf.status, lambda: failures(database, wf_id))
    _exit_for(wf.status)


def _explain(status: WorkflowStatus, failed: Callable[[], list[str]]) -> None:
    """After a failure: which jobs failed and how to see why."""
    if status in (WorkflowStatus.FAILED, WorkflowStatus.PARTIAL):
        for line in failed():
            err.print(line, highlight=False, soft_wrap=True)


def _exit_for(status: WorkflowStatus) -> None:
    if status != WorkflowStatus.SUCCEEDED:
        raise typer.Exit(1)


@app.command("submit")
def submit_cmd(
    template: Annotated[Path, typer.Argument(help="YAML or JSON template")],
    param: ParamOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    share_group: GroupOpt = None,
) -> None:
    """Queue a workflow for the agents (`orchid agents`, or a server's) and print its id."""
    params = _params(param)
    client = _remote(url, db)
    if client is not None:
        with client:
            console.print(client.submit_file(template, params, share_group=share_group).id)
        return
    settings = _settings(db=db)
    raw, base = load_template(template)
    wf_id = submit(
        _open(settings),
        raw,
        base_dir=base,
        params=params,
        owner=settings.owner,
        now=time.time(),
        share_group=share_group,
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
    url: UrlOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="how many workflows to list")] = 20,
) -> None:
    """A table of workflows, or of one workflow's works and their jobs."""
    client = _remote(url, db)
    if client is not None:
        with client:
            if workflow_id is not None:
                wf, ws = from_api(client.workflow(workflow_id))
                _show_one(wf, ws, as_json, lambda: remote_failures(client, wf.id))
            else:
                pages = client.iter_workflows(page_size=min(limit, 500))
                _show_list(list(itertools.islice(pages, limit)), as_json)
        return
    database = _open(_settings(db=db))
    if workflow_id is not None:
        wf, ws = snapshot(database, workflow_id)
        _show_one(wf, ws, as_json, lambda: failures(database, wf.id))
        return
    with database.engine.connect() as conn:
        rows = workflows.list_recent(conn, limit=limit)
    _show_list(rows, as_json)


def _show_one(wf: Workflow, ws: list[Work], as_json: bool, failed: Callable[[], list[str]]) -> None:
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
    _explain(wf.status, failed)


def _show_list(rows: Sequence[Workflow | WorkflowOut], as_json: bool) -> None:
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
def watch(workflow_id: WorkflowId, db: DbOpt = None, url: UrlOpt = None) -> None:
    """Follow a workflow's progress until it ends (agents run elsewhere). Exits 1 unless it
    succeeds."""
    client = _remote(url, db)
    if client is not None:
        with client:
            wf = follow_remote(client, workflow_id, console)
            _explain(wf.status, lambda: remote_failures(client, workflow_id))
        _exit_for(wf.status)
        return
    database = _open(_settings(db=db))
    wf = follow(database, workflow_id, console)
    _explain(wf.status, lambda: failures(database, workflow_id))
    _exit_for(wf.status)


def _command(kind: commands.CommandKind, workflow_id: int, db: str | None, url: str | None) -> None:
    client = _remote(url, db)
    if client is not None:
        with client:
            client.act(workflow_id, kind)
    else:
        database = _open(_settings(db=db))
        with database.begin() as conn:
            workflows.get(conn, workflow_id)
            commands.add(conn, workflow_id, kind, time.time())
    console.print(f"{kind} of workflow {workflow_id} queued; the agents apply it")


@app.command()
def abort(workflow_id: WorkflowId, db: DbOpt = None, url: UrlOpt = None) -> None:
    """Cancel a workflow: nothing new starts, running jobs are stopped."""
    _command("abort", workflow_id, db, url)


@app.command()
def suspend(workflow_id: WorkflowId, db: DbOpt = None, url: UrlOpt = None) -> None:
    """Pause a workflow: running jobs finish, no new job starts until resume."""
    _command("suspend", workflow_id, db, url)


@app.command()
def resume(workflow_id: WorkflowId, db: DbOpt = None, url: UrlOpt = None) -> None:
    """Carry on with a suspended workflow."""
    _command("resume", workflow_id, db, url)


@app.command()
def retry(workflow_id: WorkflowId, db: DbOpt = None, url: UrlOpt = None) -> None:
    """Run the failed jobs again (and what was skipped because of them)."""
    _command("retry", workflow_id, db, url)


@app.command()
def finish(workflow_id: WorkflowId, db: DbOpt = None, url: UrlOpt = None) -> None:
    """Start no new work in a workflow; what runs now runs to its end."""
    _command("finish", workflow_id, db, url)


@app.command()
def logs(
    job_id: Annotated[int, typer.Argument(min=1, max=MAX_ID, help="job id")],
    db: DbOpt = None,
    url: UrlOpt = None,
    stderr: Annotated[bool, typer.Option("--err", help="show stderr instead of stdout")] = False,
) -> None:
    """Print a job's stdout (or stderr) from its latest attempt."""
    client = _remote(url, db)
    if client is not None:
        with client:
            for chunk in client.iter_logs(job_id, stream="stderr" if stderr else "stdout"):
                sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        return
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


@app.command()
def up(
    db: DbOpt = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="port of the API on 127.0.0.1 (0: any free one)")
    ] = 8042,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """All in one: the agents, the local executor and the API on 127.0.0.1, over SQLite.

    The first start makes you a token (admin) and writes the url and token to the client
    config file, so that `orchid submit`, `status`, `watch`... in other terminals use this
    server at once. Ctrl-C (or SIGTERM) stops it; workflows carry on at the next start.
    """
    import uvicorn

    from orchid.api.app import create_app
    from orchid.api.auth import AuthConfig
    from orchid.client.config import config_path

    _logging(verbose)
    settings = _settings(db=db, workers=workers, executor=executor)
    database = _open(settings)
    sock = _listen("127.0.0.1", port)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    path = config_path()
    note = _local_token(database, path, url, settings.owner)
    runner, exe = make_runner(settings, database)
    # local tokens only: ORCHID_OIDC_* and proxies are for `orchid server`
    http = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, AuthConfig(), db=database, trust_client_paths=True),
            log_level="warning",
            lifespan="off",
        )
    )
    failure: list[BaseException] = []

    def agents_loop() -> None:
        try:
            runner.run()
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
            http.should_exit = True

    def stop(*_: object) -> None:
        runner.stop()
        http.should_exit = True

    # uvicorn takes the signals while it serves and raises them again when it is done:
    # these handlers make that second delivery a no-op instead of killing the process
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    thread = threading.Thread(target=agents_loop, name="orchid-agents", daemon=True)
    thread.start()
    err.print(
        f"[bold]Orchid is up[/]: API {url}/api/v1 (docs {url}/api/v1/docs)\n"
        f"  database {settings.db_url}, {settings.executor} executor, "
        f"{settings.workers} workers\n"
        f"  {note}\n"
        "In another terminal:\n"
        "  orchid submit workflow.yaml     orchid watch ID     orchid status\n"
        "Ctrl-C stops it.",
        highlight=False,
        soft_wrap=True,
    )
    try:
        http.run(sockets=[sock])
    finally:
        runner.stop()
        thread.join(30)
        exe.close()
        runner.close()
        sock.close()
        database.dispose()
    if failure:
        raise failure[0]
    err.print("Orchid stopped; `orchid up` carries on where it left off")


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "is Orchid already up? (`--port N` picks another port)"
        ) from None
    return sock


def _local_token(database: Database, path: Path, url: str, user: str) -> str:
    """Make sure the client config names this server with a working admin token of ``user``:
    the one there if it is still good, else a new one. Returns what was done, for people."""
    from orchid.client.config import read_file, write_file
    from orchid.store import tokens

    try:
        stored = read_file(path)
    except OrchidError:  # unreadable: kept aside below, not lost
        stored = None
    if stored is not None and stored.token:
        with database.begin() as conn:
            who = tokens.lookup(conn, stored.token, time.time())
        if who is not None and who.user == user and who.admin:
            if stored.url != url:
                write_file(path, url, stored.token)
            return f"you are {user} (admin); your token is in {path}"
    kept = ""
    if path.exists() and (stored is None or stored.url != url):
        backup = path.with_name(path.name + ".bak")
        os.replace(path, backup)
        kept = f"; the previous {path.name} is now {backup.name}"
    with database.begin() as conn:
        _, token = tokens.create(conn, user=user, admin=True, groups=[], now=time.time())
    write_file(path, url, token)
    return f"you are {user} (admin): a new token is in {path} (mode 0600){kept}"


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
    """Entry point: map Orchid's errors to messages and exit codes (2: bad input, which a
    server's 4xx answers are too; 1: anything else)."""
    try:
        app()
    except (InvalidInput, NotFound) as exc:
        _error(str(exc))
        sys.exit(2)
    except OrchidError as exc:
        status = getattr(exc, "status", None)  # a server's answer (orchid.client.errors)
        _error(str(exc) + _hint(exc, status))
        sys.exit(2 if isinstance(status, int) and 400 <= status < 500 else 1)
    except sqlalchemy.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        _error(
            f"cannot use the database: {reason}. Check --db / ORCHID_DB_URL "
            "and that the server is running"
        )
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def _error(message: str) -> None:
    err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _hint(exc: OrchidError, status: object) -> str:
    """What to do about a client error, when the server's message cannot know it."""
    client_errors = sys.modules.get("orchid.client.errors")  # loaded if a client was made
    if client_errors is None:
        return ""
    if status == 401:
        return (
            "; set ORCHID_TOKEN to a token of yours "
            "(`orchid token create --user NAME` on the server makes one)"
        )
    if isinstance(exc, client_errors.Unreachable) and not os.environ.get("ORCHID_URL"):
        from orchid.client.config import config_path

        return (
            f". Is the server up? (`orchid up` starts one here; --url, ORCHID_URL or "
            f"{config_path()} say where it is; --db uses a database directly)"
        )
    return ""


if __name__ == "__main__":
    main()
