"""What people trip on (issue 16, item 6), as `orchid run`, `status` and `graph` show it:
`one_success` after a partial work, works skipped behind a branch not taken (and why),
and loop iterations numbered as `loop.iteration` counts them, from 0."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_people import env, orchid, write  # noqa: F401

TRIPS = """name: trips
parameters: {n: 0}
works:
  - name: sweep
    command: [sh, -c, 'test {i} != 2']
    map: {product: {i: [1, 2, 3]}}
    on_failure: continue
  - {name: pick, after: [sweep], trigger: one_success, command: [echo, picked]}
  - {name: branch, after: [pick], when: "params.n > 1", noop: true}
  - {name: final, after: [branch], noop: true}
  - {name: body, command: [echo, '{i}'], parameters: {i: "${loop.iteration}"}}
loops:
  - {name: again, works: [body], until: "loop.iteration >= 2", max_iterations: 5}
"""


def flat(text: str) -> str:
    return " ".join(text.split())


def test_what_people_trip_on(env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    run = orchid(env, "run", write(tmp_path, TRIPS))
    assert run.returncode == 1  # partial: one job of the sweep failed (on_failure: continue)
    state = json.loads(orchid(env, "status", "1", "--json").stdout)
    works = {(w["name"], w["iteration"]): w for w in state["works"]}
    assert state["status"] == "partial"
    # one_success after a partial work: it has results to use, so it runs
    assert works[("sweep", 0)]["status"] == "partial"
    assert works[("pick", 0)]["status"] == "succeeded"
    # the works behind a branch not taken are skipped, and run and status say why
    assert works[("branch", 0)]["status"] == works[("final", 0)]["status"] == "skipped"
    why_branch = "branch (condition `params.n > 1` is false)"
    why_final = "final (upstream branch skipped: trigger all_success needs all to succeed)"
    status = orchid(env, "status", "1")
    for out in (flat(run.stdout), flat(status.stdout), state["message"]):
        assert why_branch in out and why_final in out, out
    # loop iterations: 0, 1, 2 in expressions, and so in status, jobs and graph
    assert sorted(it for name, it in works if name == "body") == [0, 1, 2]
    assert "body #2" in status.stdout and "body #3" not in status.stdout
    dot = orchid(env, "graph", "1", "-f", "dot").stdout
    assert "loop again: iteration 2 (0..4)" in dot
    jobs = json.loads(orchid(env, "jobs", "1", "--work", "body", "--json").stdout)
    assert [orchid(env, "logs", str(j["id"])).stdout for j in jobs] == ["0\n", "1\n", "2\n"]
    assert [j["iteration"] for j in jobs] == [0, 1, 2]
