"""The HPO study page: objective vs trial with the best so far, the Pareto front of two
objectives, parallel coordinates of the parameters, the best and the latest trials.

It draws at most a few thousand trials and a few hundred parameter lines, whatever the
size of the study (``store.trials.plot_points`` thins them in SQL)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from orchid.core.hpo import CategoricalParam, HpoSpec
from orchid.engine.hpo_ops import Studies
from orchid.errors import NotFound
from orchid.store import studies
from orchid.store import trials as trial_rows
from orchid.ui import plots
from orchid.ui.context import Ui, ui_of
from orchid.web.access import check_id, visible_workflow

router = APIRouter()
MAX_LINES = 300  # parameter lines: the best half of them, and the rest spread over the study
RECENT = 20


def axes_of(spec: HpoSpec) -> list[plots.Axis]:
    out = []
    for name, p in spec.space.items():
        if isinstance(p, CategoricalParam):
            out.append(plots.Axis(name, choices=tuple(p.choices)))
        else:
            out.append(plots.Axis(name, float(p.low), float(p.high), p.log))
    return out


def choose_lines(
    points: Sequence[tuple[int, int, list[float]]], direction: str, n: int = MAX_LINES
) -> list[tuple[int, int, list[float]]]:
    """The best ``n/2`` points and ``n/2`` more spread evenly over the rest, in trial order."""
    if len(points) <= n:
        return list(points)
    ranked = sorted(points, key=lambda p: p[2][0], reverse=direction == "maximize")
    keep = {p[0] for p in ranked[: n // 2]}
    rest = [p for p in points if p[0] not in keep]
    stride = max(1, len(rest) // (n - len(keep)))
    keep |= {p[0] for p in rest[::stride][: n - len(keep)]}
    return [p for p in points if p[0] in keep]


def study_view(ui: Ui, request: Request, study_id: int, segment: str | None) -> dict[str, Any]:
    """What the page and its live fragment show; checks that the viewer may see it."""
    viewer = ui.sessions.viewer(request)
    with ui.api.db.engine.connect() as conn:
        study = studies.get(conn, check_id(study_id))
    wf = visible_workflow(
        ui.api, viewer.principal, study.workflow_id, missing=studies.missing(study_id)
    )
    with ui.api.db.engine.connect() as conn:
        spec, work_name, iteration = Studies(ui.templates).spec(conn, study)
        names = spec.segment_names()
        seg = names[0] if segment is None else segment
        if seg not in names:
            raise NotFound(f"study {study.id} has no segment {seg!r}; it has {names}")
        pts = trial_rows.plot_points(conn, study.id, seg)
        goals = spec.goals()
        chosen = choose_lines(pts.points, goals[0].direction)
        params = trial_rows.params_of(conn, [p[0] for p in chosen])
        recent = trial_rows.latest(conn, study.id, seg, RECENT)
    charts = [
        plots.trials_chart(
            [(n, v[0]) for _, n, v in pts.points],
            goals[0].direction,
            objective=goals[0].name,
            every=pts.every,
        )
    ]
    if len(goals) >= 2:
        charts.append(
            plots.pareto_chart(
                [(n, v[0], v[1]) for _, n, v in pts.points if len(v) >= 2],
                (goals[0].name, goals[1].name),
                (goals[0].direction, goals[1].direction),
            )
        )
    charts.append(
        plots.parallel_chart(
            axes_of(spec), [(params.get(i, {}), v[0]) for i, _, v in chosen], goals[0].direction
        )
    )
    return {
        "viewer": viewer,
        "wf": wf,
        "study": study,
        "spec": spec,
        "work_name": work_name,
        "iteration": iteration,
        "segments": names,
        "segment": seg,
        "counts": pts.counts,
        "best": _best(pts.points, spec, params, ui, study.id),
        "charts": charts,
        "recent": recent,
        "every": pts.every,
        "goals": goals,
        "now": time.time(),
    }


def _best(
    points: Sequence[tuple[int, int, list[float]]],
    spec: HpoSpec,
    params: dict[int, Any],
    ui: Ui,
    study_id: int,
) -> list[dict[str, Any]]:
    """The best trial (one objective) or the Pareto front (several), among those drawn."""
    goals = spec.goals()
    if not points:
        return []
    if len(goals) == 1:
        sign = 1.0 if goals[0].direction == "minimize" else -1.0
        chosen = [min(points, key=lambda p: sign * p[2][0])]
    else:
        directions = [g.direction for g in goals]
        front = plots.pareto_front([p[2][: len(goals)] for p in points], directions)
        chosen = [p for p, on in zip(points, front, strict=True) if on][:20]
    missing = [p[0] for p in chosen if p[0] not in params]
    if missing:
        with ui.api.db.engine.connect() as conn:
            params = {**params, **trial_rows.params_of(conn, missing)}
    return [{"number": n, "values": v, "params": params.get(i, {})} for i, n, v in chosen]


Segment = Annotated[str | None, Query(max_length=64)]


@router.get("/studies/{study_id}", name="study")
def study_page(request: Request, study_id: int, segment: Segment = None) -> Response:
    ui = ui_of(request)
    return ui.render(request, "study.html", **study_view(ui, request, study_id, segment))


@router.get("/studies/{study_id}/charts", name="study_charts")
def study_charts(request: Request, study_id: int, segment: Segment = None) -> Response:
    """The part of the page that changes, for the live updates to swap in."""
    ui = ui_of(request)
    return ui.render(request, "study_charts.html", **study_view(ui, request, study_id, segment))
