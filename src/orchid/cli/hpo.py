"""``orchid hpo``: studies from the terminal, and pull-mode workers in shell scripts.

``next`` prints leased points as JSON lines ({"trial": id, "params": {...}}), ``report``
sends a loss, ``best`` prints the best trials. Through a server (``--url``, the config
file of ``orchid up``) or on a database here (``--db``), like every other command.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchid.cli.common import (
    MAX_ID,
    DbOpt,
    UrlOpt,
    WorkflowId,
    _open,
    _open_existing,
    _remote,
    _settings,
    app,
    console,
)
from orchid.errors import InvalidInput

if TYPE_CHECKING:  # the engine and the store: imported where a database is used
    from orchid.engine.hpo_ops import Studies

hpo_app = typer.Typer(
    help="Hyperparameter optimisation: studies, points, losses.", no_args_is_help=True
)
app.add_typer(hpo_app, name="hpo")

WorkOpt = Annotated[
    str | None, typer.Option("--work", help="the hpo work (when there are several)")
]
SegmentOpt = Annotated[str | None, typer.Option("--segment", help="one segment of the study")]
TrialId = Annotated[
    int, typer.Argument(min=1, max=MAX_ID, help="trial id (from `orchid hpo next`)")
]


def _local_study(
    workflow_id: int, work: str | None, db: str | None, *, read_only: bool = False
) -> tuple[Any, Studies, dict[str, Any]]:
    from orchid.engine.hpo_ops import Studies
    from orchid.store import studies

    settings = _settings(db=db)
    database = _open_existing(settings) if read_only else _open(settings)
    ops = Studies()
    with database.engine.connect() as conn:
        views = [ops.view(conn, s) for s, _, _ in studies.of_workflow(conn, workflow_id)]
    found = [v for v in views if work is None or v["work"] == work]
    if not found or len({v["work"] for v in found}) > 1:
        raise InvalidInput(
            f"workflow {workflow_id} has {'no' if not found else 'several'} hpo works"
            + ("" if not found else "; name one with --work")
        )
    return database, ops, max(found, key=lambda v: v["iteration"])


@hpo_app.command("studies")
def list_studies(workflow_id: WorkflowId, db: DbOpt = None, url: UrlOpt = None) -> None:
    """The studies of a workflow, as JSON."""
    client = _remote(url, db)
    if client is not None:
        with client:
            data = [s.model_dump() for s in client.hpo.studies(workflow_id)]
    else:
        from orchid.engine.hpo_ops import Studies
        from orchid.store import studies

        database = _open_existing(_settings(db=db))
        ops = Studies()
        with database.engine.connect() as conn:
            data = [ops.view(conn, s) for s, _, _ in studies.of_workflow(conn, workflow_id)]
    console.print_json(data=data)


@hpo_app.command("best")
def best(
    workflow_id: WorkflowId, work: WorkOpt = None, db: DbOpt = None, url: UrlOpt = None
) -> None:
    """The best trial so far (the Pareto front for several objectives), per segment."""
    client = _remote(url, db)
    if client is not None:
        with client:
            view: dict[str, Any] = client.hpo.study_of(workflow_id, work).model_dump()
    else:
        view = _local_study(workflow_id, work, db, read_only=True)[2]
    shown = _without_history(view["summary"])
    console.print_json(data={"study": view["id"], "status": view["status"], **shown})


def _without_history(summary: dict[str, Any]) -> dict[str, Any]:
    """The best trials and counts; every trial's values are for `orchid hpo studies`."""
    out = {k: v for k, v in summary.items() if k != "history"}
    if "segments" in out:
        out["segments"] = {s: _without_history(v) for s, v in out["segments"].items()}
    return out


@hpo_app.command("next")
def next_points(
    workflow_id: WorkflowId,
    work: WorkOpt = None,
    segment: SegmentOpt = None,
    n: Annotated[int, typer.Option("-n", min=1, max=1000, help="points at most")] = 1,
    wait: Annotated[float, typer.Option(help="seconds to wait for a point while all are out")] = 0,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """Lease unevaluated points of a pull-mode study: one JSON line per point. Exits 3 when
    the study has ended (nothing more to evaluate)."""
    deadline = time.monotonic() + wait
    client = _remote(url, db)
    while True:
        if client is not None:
            with client:
                sid = client.hpo.study_of(workflow_id, work).id
                got = client.hpo.next(sid, n=n, segment=segment)
            status = got.study_status
            items: list[tuple[int, str, Any]] = [(t.id, t.segment, t.params) for t in got.trials]
        else:
            database, ops, view = _local_study(workflow_id, work, db)
            with database.begin() as conn:
                status, rows = ops.next_points(
                    conn,
                    view["id"],
                    n=n,
                    segment=segment,
                    worker=_settings().owner,
                    now=time.time(),
                )
            items = [(t.id, t.segment, t.params) for t in rows]
        if items or status != "running" or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    for trial, seg, params in items:
        line = {"trial": trial, "params": params, **({"segment": seg} if seg else {})}
        typer.echo(json.dumps(line))
    if not items and status != "running":
        raise typer.Exit(3)


@hpo_app.command("report")
def report(
    trial: TrialId,
    loss: Annotated[
        float | None, typer.Option("--loss", "--value", help="the objective's value")
    ] = None,
    values: Annotated[str | None, typer.Option(help="several objectives: a JSON list")] = None,
    step: Annotated[
        int | None, typer.Option(min=0, help="an intermediate value at this step")
    ] = None,
    failed: Annotated[str | None, typer.Option(help="the evaluation failed: why")] = None,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """Report a trial's loss (or an intermediate value with --step). Exits 4 if the pruner
    stopped the trial."""
    parsed = None
    if values is not None:
        try:
            parsed = json.loads(values)
        except ValueError:
            raise InvalidInput(f"--values must be a JSON list of numbers; got {values!r}") from None
        if not isinstance(parsed, list):
            raise InvalidInput("--values must be a JSON list of numbers")
    client = _remote(url, db)
    if client is not None:
        with client:
            out = client.hpo.report(trial, value=loss, values=parsed, step=step, failed=failed)
        status: str = out.status
        prune = out.prune
    else:
        from orchid.engine.hpo_ops import Report, Studies

        database = _open(_settings(db=db))
        with database.begin() as conn:
            status, prune = Studies().report(
                conn, trial, Report(step, loss, parsed, None, failed), time.time()
            )
    console.print(f"trial {trial}: {status}" + (" (pruned: stop evaluating it)" if prune else ""))
    if prune:
        raise typer.Exit(4)
