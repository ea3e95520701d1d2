"""``orchid hpo``: studies from the terminal, and pull-mode workers in shell scripts.

``next`` prints leased points as JSON lines ({"trial": id, "params": {...}}), ``report``
sends a loss, ``best`` prints the best trials. Through a server (``--url``, the config
file of ``orchid up``) or on a database here (``--db``), like every other command.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from orchid.cli.common import (
    MAX_ID,
    DbOpt,
    UrlOpt,
    WorkflowId,
    _backend,
    app,
    console,
)
from orchid.errors import InvalidInput

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


@hpo_app.command("studies")
def list_studies(workflow_id: WorkflowId, db: DbOpt = None, url: UrlOpt = None) -> None:
    """The studies of a workflow, as JSON."""
    with _backend(url, db) as backend:
        data = backend.studies(workflow_id)
    console.print_json(data=data)


@hpo_app.command("best")
def best(
    workflow_id: WorkflowId, work: WorkOpt = None, db: DbOpt = None, url: UrlOpt = None
) -> None:
    """The best trial so far (the Pareto front for several objectives), per segment."""
    with _backend(url, db) as backend:
        view = backend.study_view(workflow_id, work)
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
    with _backend(url, db, create=True) as backend:
        while True:
            status, items = backend.next_points(workflow_id, work, n=n, segment=segment)
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
    with _backend(url, db, create=True) as backend:
        status, prune = backend.report(trial, value=loss, values=parsed, step=step, failed=failed)
    console.print(f"trial {trial}: {status}" + (" (pruned: stop evaluating it)" if prune else ""))
    if prune:
        raise typer.Exit(4)
