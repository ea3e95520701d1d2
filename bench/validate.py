"""Measure what one submission costs the server: validation, planning, submission, the request.

Generates templates of N works in one of four shapes and times each step on its own:

- ``chain``: work i waits for work i-1 and binds its outputs (``${works.wI.outputs}``);
- ``layered``: layers of about sqrt(N) works, each waiting for two works of the layer
  before and binding one of them;
- ``loops``: N works in N/2 loops of two works (the second after the first), each loop
  after the one before;
- ``jobs``: one work listing N jobs in a chain (each job the parent of the next), and a
  second work after it.

Columns:

- ``validate_s``: parsing and analysing the template (``compile_template``: structure,
  names, references, cycles, loops, job DAGs) and building its planner;
- ``plan_s``: the clerk's first decision on the submitted workflow (its run state read
  from the database, then ``Planner.decide``), and ``plan_half_s`` the same with half of
  the works succeeded;
- ``submit_s``: ``engine.submit.submit`` into a fresh SQLite database (validation again,
  then the workflow, its works and listed jobs in one transaction);
- ``*_cpu_s``: the CPU seconds of the same steps (this process, every thread);
- ``api_s``: ``POST /api/v1/workflows`` of the same template as a JSON body, through the
  ASGI application (decoding, checking, submitting; ``max_works`` raised to N);
- ``body_mb``: the size of that body.

Prints one JSON object per line, then a table. Everything runs in this process against
temporary SQLite files, and stops by itself.

    python bench/validate.py --works 1000 10000 100000 --shapes chain layered loops jobs
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit

from orchid.core.plan import RunState, WorkState
from orchid.core.states import WorkflowStatus, WorkStatus
from orchid.engine.submit import submit
from orchid.engine.templates import compile_template
from orchid.store import workflows
from orchid.store.db import Database

SHAPES = ("chain", "layered", "loops", "jobs")
FIELDS = (
    "shape",
    "works",
    "jobs",
    "body_mb",
    "validate_s",
    "validate_cpu_s",
    "plan_s",
    "plan_cpu_s",
    "plan_half_s",
    "submit_s",
    "submit_cpu_s",
    "api_s",
    "status",
)


def template(shape: str, n: int) -> dict[str, Any]:
    """A template of ``n`` works (``jobs``: of two works, the first listing ``n`` jobs)."""
    works: list[dict[str, Any]] = []
    loops: list[dict[str, Any]] = []
    if shape == "chain":
        works.append({"name": "w0", "noop": True})
        for i in range(1, n):
            prev = f"w{i - 1}"
            works.append(
                {
                    "name": f"w{i}",
                    "noop": True,
                    "after": [prev],
                    "parameters": {"x": f"${{works.{prev}.outputs}}"},
                }
            )
    elif shape == "layered":
        width = max(1, math.isqrt(n))
        for i in range(n):
            layer, k = divmod(i, width)
            work: dict[str, Any] = {"name": f"w{i}", "noop": True}
            if layer:
                base = (layer - 1) * width
                parents = sorted({f"w{base + k}", f"w{base + (k + 1) % width}"})
                work["after"] = parents
                work["parameters"] = {"x": f"${{works.{parents[0]}.outputs}}"}
            works.append(work)
    elif shape == "loops":
        for k in range(max(1, n // 2)):
            a, b = f"a{k}", f"b{k}"
            works.append({"name": a, "noop": True})
            works.append(
                {
                    "name": b,
                    "noop": True,
                    "after": [a],
                    "parameters": {"x": f"${{works.{a}.outputs}}"},
                }
            )
            loop: dict[str, Any] = {
                "name": f"l{k}",
                "works": [a, b],
                "until": f"works.{b}.status == 'succeeded'",
                "max_iterations": 2,
            }
            if k:
                loop["after"] = [f"l{k - 1}"]
            loops.append(loop)
    elif shape == "jobs":
        jobs = [{"name": "j0"}] + [{"name": f"j{i}", "parents": [f"j{i - 1}"]} for i in range(1, n)]
        works = [
            {"name": "listed", "noop": True, "jobs": jobs},
            {
                "name": "after",
                "noop": True,
                "after": ["listed"],
                "parameters": {"n": "${works.listed.counts}"},
            },
        ]
    else:
        raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")
    out: dict[str, Any] = {"name": f"bench-{shape}", "works": works}
    if loops:
        out["loops"] = loops
    return out


CPU: dict[str, float] = {}  # CPU seconds of the last timed call, by name


def timed(call: Callable[[], Any], name: str = "") -> tuple[Any, float]:
    """The value of ``call()`` and its wall time; its CPU time in CPU[name] (this process,
    all threads: less sensitive than the wall time to what else the machine runs)."""
    c0, t0 = time.process_time(), time.perf_counter()
    value = call()
    CPU[name] = time.process_time() - c0
    return value, time.perf_counter() - t0


def half_done(state: RunState, order: tuple[str, ...]) -> RunState:
    """The run state with the first half of the works (in run order) succeeded."""
    done = set(order[: len(order) // 2])
    works = [
        WorkState(w.id, w.name, w.iteration, WorkStatus.SUCCEEDED if w.name in done else w.status)
        for w in state.works
    ]
    return RunState(state.workflow_id, state.name, WorkflowStatus.RUNNING, state.params, {}, works)


def run(shape: str, n: int, api: bool, home: Path) -> dict[str, Any]:
    raw = template(shape, n)
    body = json.dumps({"template": raw}).encode()
    row: dict[str, Any] = {
        "shape": shape,
        "works": len(raw["works"]),
        "jobs": n if shape == "jobs" else None,
        "body_mb": round(len(body) / 2**20, 2),
    }
    gc.collect()
    compiled, row["validate_s"] = timed(lambda: compile_template(raw), "validate")
    row["validate_cpu_s"] = CPU["validate"]
    db = Database(f"sqlite:///{home / f'{shape}-{n}.db'}")
    db.ensure_schema()
    wf, row["submit_s"] = timed(lambda: submit(db, raw, base_dir=None, now=time.time()), "submit")
    row["submit_cpu_s"] = CPU["submit"]

    def plan(half: bool) -> Any:
        with db.engine.connect() as conn:
            state = workflows.run_state(
                conn, wf, compiled.analysis.read_outputs, compiled.analysis.read_counts
            )
        if half:
            state = half_done(state, compiled.analysis.order)
        return compiled.planner.decide(state)

    _, row["plan_s"] = timed(lambda: plan(False), "plan")
    row["plan_cpu_s"] = CPU["plan"]
    _, row["plan_half_s"] = timed(lambda: plan(True))
    db.engine.dispose()
    if api:
        row["api_s"], row["status"] = post(body, n, home / f"api-{shape}-{n}.db")
    for key in list(row):
        if key.endswith("_s") and row[key] is not None:
            row[key] = round(row[key], 3)
    return row


def post(body: bytes, n: int, path: Path) -> tuple[float, int]:
    from starlette.testclient import TestClient

    from orchid.auth import AuthConfig
    from orchid.server import create_app
    from orchid.settings import Settings
    from orchid.store import tokens

    settings = Settings.load(env={}, home=path.parent, db=str(path))
    if hasattr(settings, "max_works"):  # the limits of issue 15, where this code has them
        settings = settings.replace(max_works=n + 2)
    db = Database(settings.db_url)
    db.ensure_schema()
    with db.begin() as conn:
        _, token = tokens.create(conn, user="bench", admin=False, groups=[], now=time.time())
    app = create_app(settings, AuthConfig(), db=db, max_body_bytes=len(body) + 1)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        t0 = time.perf_counter()
        r = client.post("/api/v1/workflows", content=body, headers=headers)
        took = time.perf_counter() - t0
    db.engine.dispose()
    return took, r.status_code


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--works", type=int, nargs="+", default=[1000, 10_000, 100_000])
    p.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    p.add_argument("--no-api", action="store_true", help="skip the POST through the application")
    return p


def main() -> None:
    a = parser().parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="orchid-bench-validate-") as tmp:
        for n in a.works:
            for shape in a.shapes:
                rows.append(run(shape, n, not a.no_api, Path(tmp)))
                benchkit.emit(rows[-1])
    print()
    print(benchkit.table(rows, FIELDS))
    print(f"machine: {benchkit.machine()}; load {benchkit.load()}")


if __name__ == "__main__":
    main()
