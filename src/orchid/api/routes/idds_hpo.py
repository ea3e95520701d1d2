"""The iDDS client's HPO calls on Orchid: ``get_hyperparameters`` and
``update_hyperparameter`` over the study of an HPO request (Orchid's pull mode): a point
is a trial, its id the trial's, its loss the trial's value. Access as every iDDS route.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request, Response

from orchid.api.routes.idds import IddsRoute, answer, caller_of, parse_id, requests_of
from orchid.core.model import Principal
from orchid.engine.hpo_ops import Report, Studies
from orchid.errors import InvalidInput, NotFound
from orchid.store import studies
from orchid.store import trials as trial_rows
from orchid.web.state import ApiState

__all__ = ["router"]

router = APIRouter(prefix="/idds", tags=["idds"], route_class=IddsRoute)


def _studies(request: Request) -> Studies:
    ops: Studies | None = getattr(request.app.state, "hpo_studies", None)
    if ops is None:
        ops = request.app.state.hpo_studies = Studies()
    return ops


def _study(st: ApiState, who: Principal, workload_id: str, request_id: str, act: bool) -> Any:
    """The request's study; None while the agents have not made it yet (no points yet)."""
    wf = requests_of(st, who, request_id, workload_id, act=act)[0]
    with st.db.engine.connect() as conn:
        found = studies.of_workflow(conn, wf.id)
    return found[-1][0] if found else None


EVALUATED = {"2", "available", "finished", "3"}
UNEVALUATED = {"0", "new", "1", "processing"}


def _points(rows: Iterable[Any], id_: str, status: str) -> list[dict[str, Any]]:
    out = []
    wanted = status.strip().lower()
    for t in rows:
        loss = t.values[0] if t.values else None
        if id_ not in ("null", "None") and str(t.id) != id_:
            continue
        if wanted in EVALUATED and loss is None:
            continue
        if wanted in UNEVALUATED and loss is not None:
            continue
        out.append({"id": t.id, "parameters": dict(t.params), "loss": loss})
    return out


@router.get("/hpo/{workload_id}/{request_id}/{id}/{status}/{limit}")
def get_hyperparameters(
    workload_id: str, request_id: str, id: str, status: str, limit: str, request: Request
) -> Response:
    """The points of an HPO request: ``[{id, parameters, loss}]``; a point with loss null
    awaits its evaluation (it is leased to the caller, as Orchid's pull mode does)."""
    st: ApiState = request.app.state.orchid
    who = caller_of(request)
    study = _study(st, who, workload_id, request_id, act=True)
    n = parse_id(limit, "limit")
    if study is None:
        return answer(200, [])  # as iDDS before its first points are generated
    ops = _studies(request)
    with st.db.begin() as conn:
        if study.status == "running":
            spec, _, _ = ops.spec(conn, study)
            ops.next_points(
                conn, study.id, n=spec.parallel, segment=None, worker=who.user, now=time.time()
            )
        rows = trial_rows.trials_of(conn, study.id)
    points = _points(rows, id, status)
    return answer(200, points[:n] if n else points)


@router.put("/hpo/{workload_id}/{request_id}/{id}/{loss}")
def update_hyperparameter(
    workload_id: str, request_id: str, id: str, loss: str, request: Request
) -> Response:
    """Report the loss of a point."""
    st: ApiState = request.app.state.orchid
    study = _study(st, caller_of(request), workload_id, request_id, act=True)
    trial = parse_id(id, "id")
    try:
        value = float(loss)
    except ValueError:
        raise InvalidInput(f"loss must be a number; got {loss!r}") from None
    with st.db.engine.connect() as conn:
        if study is None or trial is None or trial_rows.get_trial(conn, trial).study_id != study.id:
            raise NotFound(f"no hyperparameter {id} in this request")
    with st.db.begin() as conn:
        _studies(request).report(conn, trial, Report(value=value), time.time())
    return answer(200, {"status": 0, "message": "update successfully"})
