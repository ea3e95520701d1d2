"""Submissions the agents could not run are refused with a 422 naming the field: NUL
characters (issue 15, item 10) and listed jobs' arguments over the limit (item 8)."""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx
import pytest

from orchid.store import workflows
from tests.api.conftest import Api

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # nothing is stored
NDJSON = "application/x-ndjson"


def command_template(*argv: str, **work: Any) -> dict[str, Any]:
    return {
        "name": "nul",
        "parameters": {"p": "ok"},
        "works": [
            {
                "name": "echo",
                "command": [sys.executable, "-c", "pass", *argv],
                "parameters": {"p": "${params.p}"},  # {p} in the command: the work's parameter
                **work,
            }
        ],
    }


def refused(r: httpx.Response, field: str) -> str:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field, body
    assert "NUL character" in body["error"] or "limit" in body["error"], body
    return str(body["error"])


@SQLITE_ONLY
def test_nul_characters_are_refused_at_submission(api: Api) -> None:
    c = api.client("alice")
    r = c.post("/workflows", json={"template": command_template("a\x00b")})
    refused(r, "works[0](echo).command[3]")
    r = c.post("/workflows", json={"template": command_template(env={"V": "a\x00"})})
    refused(r, "works[0](echo).env.V")
    r = c.post("/workflows", json={"template": command_template("{p}"), "params": {"p": "\x00"}})
    refused(r, "params.p")
    yaml_text = "name: nul\nworks:\n  - name: echo\n    command: ['echo', \"a\\0b\"]\n"
    r = c.post("/workflows", json={"template": yaml_text})
    refused(r, "works[0](echo).command[1]")
    works = [{"name": "w", "noop": True, "jobs": "from_file"}]
    head = {"template": {"name": "f", "works": works, "jobs_file": "jobs.jsonl"}}
    line = {"work": "w", "name": "j", "args": {"x": "a\x00b"}}
    body = "".join(json.dumps(x) + "\n" for x in (head, line)).encode()
    r = c.post("/workflows", content=body, headers={"Content-Type": NDJSON})
    error = refused(r, "jobs.jsonl:1")
    assert "args.x holds a NUL character" in error
    with api.db.begin() as conn:
        assert workflows.list_recent(conn, owner="alice") == []
    # what is fine still goes through
    assert c.post("/workflows", json={"template": command_template("{p}")}).status_code == 201
