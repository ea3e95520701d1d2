"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis).

Every operation gets valid (positive) and invalid (negative) requests as alice, with
generated ids and with the ids of real workflows and jobs. The server must never answer
5xx, every answer must match the documented schema, and invalid requests must be refused
with 4xx. Deterministic (derandomized Hypothesis, no example database) and bounded.

SQLite only: the fuzz checks the HTTP layer; the database layer has its own tests.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
)

from orchid.core.states import TERMINAL_WORKFLOW
from orchid.engine.runner import make_runner
from orchid.store import workflows
from tests.api.conftest import Api

pytestmark = pytest.mark.parametrize("db", ["sqlite"], indirect=True)

EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 12}
REACHED = [
    f"{method} /api/v1{path}"
    for method, path in [
        ("GET", "/ping"),
        ("GET", "/health"),
        ("GET", "/workflows"),
        ("GET", "/workflows/{workflow_id}"),
        ("GET", "/workflows/{workflow_id}/works"),
        ("GET", "/workflows/{workflow_id}/jobs"),
        ("GET", "/workflows/{workflow_id}/events"),
        ("POST", "/workflows/{workflow_id}/{action}"),
        ("GET", "/jobs/{job_id}"),
    ]
]
SEEDED_EXAMPLES = 8  # per mode, with the path ids of real objects
CHECKS: dict[GenerationMode, list[Callable[..., Any]]] = {
    GenerationMode.POSITIVE: [
        not_a_server_error,
        response_schema_conformance,
        content_type_conformance,
    ],
    GenerationMode.NEGATIVE: [
        not_a_server_error,
        response_schema_conformance,
        negative_data_rejection,
    ],
}


def finished_workflow(api: Api) -> tuple[int, int]:
    """A workflow run to its end (so that its event stream ends) and one of its jobs."""
    template = {"name": "seed", "works": [{"name": "a", "noop": True, "jobs": [{"name": "j"}]}]}
    wf_id = api.submit("alice", template, share_group="physics")["id"]
    runner = make_runner(api.settings, api.db)
    executor = runner.executor
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            runner.run_once()
            with api.db.engine.connect() as conn:
                if workflows.get(conn, wf_id).status in TERMINAL_WORKFLOW:
                    break
        else:
            pytest.fail("the seed workflow did not end")
    finally:
        executor.close()
        runner.close()
    job_id = api.client("alice").get(f"/workflows/{wf_id}/jobs").json()["items"][0]["id"]
    return wf_id, job_id


def order(label: str) -> tuple[int, str]:
    """Reads first (the event stream ends only for ended workflows; later POSTs may start
    new ones), then the commands, then submissions."""
    method, _, path = label.partition(" ")
    return (0 if method == "GET" else 2 if path.endswith("/workflows") else 1, label)


def test_the_whole_api_from_its_openapi_document(api: Api) -> None:
    wf_id, job_id = finished_workflow(api)
    api.submit("bob")  # someone else's: 403s
    base = api.base_url.removesuffix("/api/v1")
    schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
    # the test sends alice's token itself: generated (or left out) credentials would be
    # overridden, so a "missing Authorization" case could never be refused
    schema.config.generation.update(with_security_parameters=False)
    operations = {op.label: op for op in (r.ok() for r in schema.get_all_operations())}
    assert len(operations) >= 10, sorted(operations)
    headers = {"Authorization": f"Bearer {api.tokens['alice']}"}
    failures: list[str] = []
    statuses: dict[str, set[int]] = defaultdict(set)

    def fuzz(op: Any, mode: GenerationMode, n: int, ids: dict[str, Any] | None) -> None:
        @given(case=op.as_strategy(generation_mode=mode, path_parameters=ids))
        @settings(
            max_examples=n,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            r = case.call_and_validate(
                base_url=base, headers=headers, checks=CHECKS[mode], timeout=20
            )
            statuses[op.label].add(r.status_code)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (e.g. GET /ping)
        except Exception as exc:
            failures.append(f"--- {op.label} ({mode.value}, ids {ids}):\n{exc}")

    for label in sorted(operations, key=order):
        op = operations[label]
        names = {p.name for p in op.path_parameters}
        seeded = {k: v for k, v in {"workflow_id": wf_id, "job_id": job_id}.items() if k in names}
        for mode, n in EXAMPLES.items():
            fuzz(op, mode, n, None)
            if seeded and mode is GenerationMode.POSITIVE:
                fuzz(op, mode, SEEDED_EXAMPLES, seeded)
    assert not failures, f"{len(failures)} operation(s) failed:\n" + "\n".join(failures)
    assert not api.server_errors, api.server_errors
    # the fuzz got past validation: the workflow operations answered 2xx at least once
    # (a random template is never valid, and no job of a null executor has a log)
    missed = [label for label in REACHED if not any(c < 300 for c in statuses[label])]
    assert not missed, {label: sorted(statuses[label]) for label in missed}
