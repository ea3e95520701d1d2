"""The HPO study page: charts of a study driven to its end in pull mode, its best trials,
who may see it, bad input, the live fragment, and the thinning of big studies."""

from __future__ import annotations

import html
import re
from typing import Any

from orchid.client import Client
from orchid.store import trials as trial_rows
from orchid.ui import plots
from orchid.ui.study import choose_lines
from tests.api.conftest import Agents
from tests.ui.conftest import Api, Browser
from tests.waiting import wait_for

SPACE = {
    "x": {"type": "float", "low": -2.0, "high": 2.0},
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
    "kind": {"type": "categorical", "choices": ["a", "b"]},
}


def template(**hpo: Any) -> dict[str, Any]:
    spec = {"space": SPACE, "max_trials": 12, "parallel": 3, "mode": "pull", "seed": 7, **hpo}
    return {"name": "tune", "works": [{"name": "search", "hpo": spec}]}


def drive(api: Api, wf: int, objective: Any) -> tuple[int, dict[int, Any]]:
    """Fetch points and report ``objective(params)`` until the study ends."""
    reported: dict[int, Any] = {}
    with Client(api.base_url, api.tokens["alice"]) as orchid:
        study = wait_for("the study", lambda: orchid.hpo.studies(wf))[0]
        for _ in range(200):
            got = orchid.hpo.next(study.id, n=3)
            if not got.trials and got.study_status != "running":
                break
            for t in got.trials:
                value = objective(t.params)
                key = "metrics" if isinstance(value, dict) else "value"
                orchid.hpo.report(t.id, **{key: value})
                reported[t.number] = value
    return study.id, reported


def test_the_study_page_draws_trials_best_and_parameters(
    api: Api, browse: Any, agents: Agents
) -> None:
    wf = api.submit("alice", template())["id"]
    sid, reported = drive(api, wf, lambda p: (p["x"] - 0.3) ** 2)
    assert len(reported) == 12
    alice: Browser = browse("alice")
    page = alice.get(f"/ui/workflows/{wf}")
    assert f'href="/ui/studies/{sid}" data-study' in page.text  # linked from its work
    r = alice.get(f"/ui/studies/{sid}")
    assert r.status_code == 200, r.text
    text = html.unescape(r.text)
    assert "study of search" in text and "tpe (seed 7)" in text
    assert "minimize loss" in text and "complete 12" in text
    best_number = min(reported, key=lambda n: reported[n])
    assert f'data-best="{best_number}"' in r.text
    assert f"{reported[best_number]:.6g}" in text
    assert r.text.count("<circle") == 12  # a dot per complete trial
    assert 'class="best"' in r.text  # the best-so-far line
    # parallel coordinates: an axis per parameter (lr on a log axis), a line per trial
    assert "lr (log)" in text and text.count("<polyline") >= 12
    assert r.text.count('data-trial="') == 12  # the latest trials (all of them here)
    assert f'data-fragment="/ui/studies/{sid}/charts"' in r.text
    fragment = alice.get(f"/ui/studies/{sid}/charts")
    assert fragment.status_code == 200 and "<svg" in fragment.text and "<html" not in fragment.text


def test_two_objectives_draw_the_pareto_front(api: Api, browse: Any, agents: Agents) -> None:
    goals = [{"name": "a"}, {"name": "b", "direction": "maximize"}]
    wf = api.submit("alice", template(objectives=goals, max_trials=8))["id"]
    sid, reported = drive(api, wf, lambda p: {"a": p["x"] ** 2, "b": p["x"]})
    r = browse("alice").get(f"/ui/studies/{sid}")
    assert r.status_code == 200, r.text
    assert "the Pareto front in red" in r.text and 'class="front"' in r.text
    front = plots.pareto_front(
        [(v["a"], v["b"]) for v in reported.values()], ["minimize", "maximize"]
    )
    assert r.text.count("data-best=") == sum(front)


def test_who_may_see_a_study_and_bad_input(api: Api, browse: Any, agents: Agents) -> None:
    wf = api.submit("alice", template(max_trials=3), share_group="physics")["id"]
    sid, _ = drive(api, wf, lambda p: p["x"])
    assert browse("bob").get(f"/ui/studies/{sid}").status_code == 200  # the group's
    assert browse("root").get(f"/ui/studies/{sid}").status_code == 200
    carol = browse("carol")
    for path in (f"/ui/studies/{sid}", f"/ui/studies/{sid}/charts"):
        r = carol.get(path)
        assert r.status_code == 404 and f"no study {sid};" in r.text
    anonymous = browse()
    assert anonymous.get(f"/ui/studies/{sid}").status_code == 303  # to the login page
    alice = browse("alice")
    assert alice.get(f"/ui/studies/{sid + 1000}").status_code == 404
    r = alice.get(f"/ui/studies/{sid}", params={"segment": "nope"})
    assert r.status_code == 404 and "no segment" in html.unescape(r.text)
    for bad in ("0", "-1", "abc", str(2**63)):
        assert alice.get(f"/ui/studies/{bad}").status_code == 422


def test_big_studies_are_thinned_in_sql(api: Api, agents: Agents) -> None:
    wf = api.submit("alice", template())["id"]
    sid, reported = drive(api, wf, lambda p: p["x"] ** 2)
    with api.db.engine.connect() as conn:
        every = trial_rows.plot_points(conn, sid, "", max_points=5)
        whole = trial_rows.plot_points(conn, sid, "")
    assert whole.every == 1 and [n for _, n, _ in whole.points] == sorted(reported)
    assert every.every == 3 and [n for _, n, _ in every.points] == [0, 3, 6, 9]
    assert every.counts == whole.counts == {"complete": 12}
    assert whole.points[0][2] == [reported[0]]


def test_lines_keep_the_best_and_spread_the_rest() -> None:
    points = [(i, i, [float((i * 37) % 101)]) for i in range(1000)]
    chosen = choose_lines(points, "minimize", 100)
    assert len(chosen) == 100 and chosen == sorted(chosen)
    best = sorted(points, key=lambda p: p[2][0])[:50]
    assert {p[0] for p in best} <= {p[0] for p in chosen}
    assert max(p[1] for p in chosen) > 900  # the rest spread over the whole study
    assert choose_lines(points[:10], "maximize", 100) == points[:10]


def test_plot_helpers() -> None:
    assert plots.best_so_far([(0, 3.0), (1, 5.0), (2, 1.0)], "minimize") == [
        (0, 3.0),
        (1, 3.0),
        (2, 1.0),
    ]
    assert plots.best_so_far([(0, 3.0), (1, 5.0)], "maximize") == [(0, 3.0), (1, 5.0)]
    assert plots.pareto_front([(1, 1), (2, 2), (0, 3), (1, 1)], ["minimize", "minimize"]) == [
        True,
        False,
        True,
        True,
    ]
    lr = plots.Axis("lr", 1e-4, 1.0, log=True)
    assert lr.where(1e-2) == 0.5 and lr.where("x") is None and lr.where(True) is None
    kind = plots.Axis("kind", choices=("a", "b", "c"))
    assert kind.where("c") == 1.0 and kind.where("z") is None
    svg = plots.parallel_chart([lr, kind], [({"lr": 1e-3}, 1.0), ({"kind": "a"}, 2.0)], "minimize")
    assert "<polyline" not in svg  # a line needs two axes it has values on
    assert re.search(r"parameters of 2 complete trials", svg)
    assert "No trial" in plots.trials_chart([], "minimize", objective="loss")
