"""``orchid``: run, submit, watch and steer workflows from a terminal."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from orchid.cli.progress import (
    failures,
    follow,
    latest_works,
    render,
    state_json,
    status_text,
)
from orchid.config import environment
from orchid.core.model import ALIVE_S, Work, Workflow
from orchid.core.states import Action, WorkflowStatus
from orchid.core.template import json_schema
from orchid.errors import Archived, InvalidInput, NotFound, OrchidError

# the engine and the store (SQLAlchemy) are imported by the commands that use a database,
# so that a command sent to a server loads neither (tests/cli/test_light_imports.py)
if TYPE_CHECKING:
    from orchid.backend.base import WorkflowLine

from orchid.cli.common import (
    MAX_ID,
    DbOpt,
    ExecutorOpt,
    GroupOpt,
    JsonLinesOpt,
    ParamOpt,
    UrlOpt,
    VerboseOpt,
    WorkersOpt,
    WorkflowId,
    _age,
    _backend,
    _logging,
    _open,
    _params,
    _personal,
    _settings,
    _tune_gc,
    app,
    console,
    database_name,
    err,
)


@app.command()
def run(
    template: Annotated[Path, typer.Argument(help="YAML or JSON template")],
    param: ParamOpt = None,
    db: DbOpt = None,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = None,
    verbose: VerboseOpt = False,
    as_json: JsonLinesOpt = False,
) -> None:
    """Run a workflow here, to the end, with live progress. Exits 1 unless it succeeds."""
    from orchid.backend.embedded import EmbeddedBackend
    from orchid.datamgr import registry as datamgr_registry
    from orchid.engine.inprocess import Engine
    from orchid.engine.submit import load_template, submit

    _logging(verbose)
    settings = _personal(_settings(db=db, workers=workers, executor=executor))
    raw, base = load_template(template)
    database = _open(settings)
    wf_id = submit(
        database,
        raw,
        base_dir=base,
        params=_params(param),
        owner=settings.owner,
        now=time.time(),
        executors=settings.executor_names,
        data_managers=datamgr_registry.specs(settings),
        limits=settings.limits,
    )
    here = EmbeddedBackend(settings, db=database)  # the views of this run
    engine = Engine(settings, database)
    _tune_gc()
    engine.start(until=lambda: engine.ended(wf_id))
    try:
        wf = follow(here, wf_id, console, finished=engine.stopped.is_set, as_json=as_json)
    except KeyboardInterrupt:
        # a clean stop: the agents end their round, the executor stops and reaps the jobs it
        # runs, and the carriers hand those back, so that other agents take them at once
        err.print("interrupted: stopping the running jobs…")
        engine.close()
        err.print(
            f"workflow {wf_id} is saved and its running jobs are ready to run again: "
            f"`orchid agents` carries it on, `orchid abort {wf_id}` stops it"
        )
        raise typer.Exit(130) from None
    engine.close()
    engine.raise_failure()
    wf, ws = here.snapshot(wf_id)
    if not as_json:
        _work_notes(wf, ws)  # which works were skipped, and why
    _explain(wf.status, lambda: failures(here, wf_id))
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
    with _backend(url, db, create=True) as backend:
        console.print(backend.submit_file(template, params, share_group=share_group))


@app.command()
def validate(template: Annotated[Path, typer.Argument(help="YAML or JSON template")]) -> None:
    """Check a template without running it."""
    from orchid.engine.submit import check_template, load_template

    raw, base = load_template(template)
    settings = _settings()
    here = {"local"} | {n for n, c in settings.executors.items() if c.type == "local"}
    checked = check_template(
        raw,
        base,
        settings.limits,
        default_executor=settings.executor,
        local_executors=here,
    )
    compiled = checked.compiled
    for path, message in checked.warnings:
        console.print(f"[yellow]warning[/]: {escape(path)}: {escape(message)}")
    for note in checked.notes:
        console.print(f"note: {escape(note)}")
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
    with _backend(url, db) as backend:
        if workflow_id is None:
            _show_list(backend.recent(limit), as_json)
            return
        wf, ws = backend.snapshot(workflow_id)
        if wf.archived_at is not None:  # its jobs are in the archive: counts only
            _show_one(wf, ws, as_json, list)
            if not as_json:
                console.print(f"[dim]archived; `orchid restore {wf.id}` brings its jobs back[/]")
            return
        _show_one(wf, ws, as_json, lambda: failures(backend, wf.id))


def _show_one(wf: Workflow, ws: list[Work], as_json: bool, failed: Callable[[], list[str]]) -> None:
    if as_json:
        console.print_json(data=state_json(wf, ws))
        return
    console.print(render(wf, ws, time.time()))
    _work_notes(wf, ws)
    _explain(wf.status, failed)


def _work_notes(wf: Workflow, ws: list[Work]) -> None:
    """Why works did not succeed (skipped: a condition, an upstream...), one line each,
    unless the workflow's message (printed with the table) says it already."""
    for w in latest_works(ws):
        if w.message and w.status != "succeeded" and w.message not in wf.message:
            name = w.name if w.iteration == 0 else f"{w.name} #{w.iteration}"
            console.print(
                f"  [dim]{escape(name)} {w.status}:[/] {escape(w.message)}",
                highlight=False,
                soft_wrap=True,
            )


def _show_list(rows: Sequence[WorkflowLine], as_json: bool) -> None:
    if as_json:
        console.print_json(
            data=[
                {
                    "id": r.id,
                    "name": r.name,
                    "status": r.status,
                    "owner": r.owner,
                    "created_at": r.created_at,
                    "archived_at": r.archived_at,
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
            status_text(r.status) + (" (archived)" if r.archived_at is not None else ""),
            r.owner,
            _age(time.time() - r.created_at),
            r.message[:60],
        )
    console.print(table if rows else "no workflows yet: `orchid run TEMPLATE` starts one")


@app.command()
def watch(
    workflow_id: WorkflowId, db: DbOpt = None, url: UrlOpt = None, as_json: JsonLinesOpt = False
) -> None:
    """Follow a workflow's progress until it ends (agents run elsewhere). Exits 1 unless it
    succeeds."""
    with _backend(url, db) as backend:
        wf = follow(backend, workflow_id, console, as_json=as_json)
        _explain(wf.status, lambda: failures(backend, workflow_id))
    _exit_for(wf.status)


def _command(kind: Action, workflow_id: int, db: str | None, url: str | None) -> None:
    """Queue a command; say whether an agent is alive to apply it (and how to start one)."""
    with _backend(url, db) as backend:
        backend.act(workflow_id, kind)
        alive = backend.agents_alive()
    if backend.remote:
        start = "`orchid agents` on the server's database (or `orchid up`)"
    else:
        start = f"`orchid agents --db {shlex.quote(database_name(backend.location))}`"
    if alive:
        console.print(f"{kind} of workflow {workflow_id} queued; the agents apply it")
        return
    console.print(
        f"{kind} of workflow {workflow_id} queued, but no agent is running (none seen in "
        f"the last {ALIVE_S:.0f} s): it applies when one starts. Start one with {start}",
        highlight=False,
        soft_wrap=True,
    )


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
    with _backend(url, db) as backend:
        for chunk in backend.logs(job_id, "stderr" if stderr else "stdout"):
            sys.stdout.buffer.write(chunk)
    sys.stdout.flush()


@app.command()
def schema() -> None:
    """Print the JSON Schema of workflow templates."""
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


# commands of their own modules, listed after the ones above in `orchid --help`
from orchid.cli import (  # noqa: E402, F401
    config,
    graph,
    hpo,
    joblist,
    retention,
    service,
    tokens,
    worker,
)


def main() -> None:
    """Entry point: map Orchid's errors to messages and exit codes (2: bad input, which a
    server's 4xx answers are too; 1: anything else)."""
    try:
        app()
    except (InvalidInput, NotFound, Archived) as exc:
        _error(str(exc))
        sys.exit(2)
    except OrchidError as exc:
        status = getattr(exc, "status", None)  # a server's answer (orchid.client.errors)
        _error(str(exc) + _hint(exc, status))
        sys.exit(2 if isinstance(status, int) and 400 <= status < 500 else 1)
    except Exception as exc:
        import sqlalchemy.exc  # here only after an error: a remote command never loads it

        if not isinstance(exc, sqlalchemy.exc.OperationalError):
            raise
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
    if isinstance(exc, client_errors.Unreachable) and not environment("ORCHID_URL"):
        from orchid.client.config import config_path

        return (
            f". Is the server up? (`orchid up` starts one here; --url, ORCHID_URL or "
            f"{config_path()} say where it is; --db uses a database directly)"
        )
    return ""


if __name__ == "__main__":
    main()
