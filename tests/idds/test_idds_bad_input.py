"""Whatever an iDDS client (or anyone) sends to the iDDS routes is a 4xx with a message,
never a 5xx: malformed bodies, descriptions of the wrong shape, ids that are not ids."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from orchid.server import create_app
from orchid.settings import Settings
from orchid.store import tokens
from orchid.store.db import Database

HPO = {"request_type": 4, "request_metadata": {"opt_space": {"x": [0.0, 1.0]}}}
COND = {"class": "Condition", "module": "idds.workflowv2.workflow"}
IS_A = {"idds_method": "is_finished", "idds_method_internal_id": "a"}
WF = {"class": "Workflow", "module": "idds.workflowv2.workflow"}


def workflow(template_attributes: Any) -> dict[str, Any]:
    base = {"class": "WorkflowBase", "module": "idds.workflowv2.workflow"}
    return {
        "request_type": 0,
        "request_metadata": {
            "workflow": {
                **WF,
                "attributes": {"template": {**base, "attributes": template_attributes}},
            }
        },
    }


def doma(**attributes: Any) -> dict[str, Any]:
    return {
        "class": "DomaPanDAWork",
        "module": "idds.doma.workflowv2.domapandawork",
        "attributes": {"task_name": "t", "executable": "echo", **attributes},
    }


BODIES: list[Any] = [
    b"not json",
    b"[1, 2]",
    b"{}",
    {"request_type": "Workflow"},
    {"request_type": {"class": "RequestType", "module": "idds.common.constants"}},
    {"request_type": 0, "request_metadata": []},
    {"request_type": 0, "request_metadata": {"workflow": 5}},
    {"request_type": 0, "request_metadata": {"workflow": {**WF, "attributes": []}}},
    {"request_type": 0, "request_metadata": {"workflow": {**WF, "attributes": {}}}},
    workflow({"_works": []}),
    workflow({"_works": {"a": 7}}),
    workflow({"_works": {"a": doma()}}),
    workflow({"_works": {"a": doma(_dependency_map="idds_zip:AAAA")}}),
    workflow({"_works": {"a": doma(_dependency_map=[{"name": 5}])}}),
    workflow({"_works": {"a": doma(_dependency_map=[{"name": "j", "dependencies": [7]}])}}),
    workflow({"_works": {"a": doma(_dependency_map=[{"name": "j"}], executable="")}}),
    workflow({"_works": {"a": doma(_dependency_map=[{"name": "j"}], arguments="'open")}}),
    workflow({"_works": {"a": doma(_dependency_map=[{"name": "j"}] * 2)}}),
    workflow({"_works": {"a": doma(_dependency_map=[{"name": "j"}])}, "_conditions": {"c": "x"}}),
    workflow({"_works": {"a": doma(_dependency_map=[{"name": "j"}])}, "_conditions": ["x"]}),
    {"request_type": 4, "request_metadata": {"opt_space": {"x": [0, 1]}, "max_points": True}},
    workflow({"_works": {"a": doma(_dependency_map=[{"name": "j", "dependencies": 5}])}}),
    workflow(
        {
            "_works": {"a": doma(_dependency_map=[{"name": "j"}])},
            "_conditions": {"c": {**COND, "attributes": {"_conditions": 5}}},
        }
    ),
    workflow(
        {
            "_works": {"a": doma(_dependency_map=[{"name": "j"}])},
            "_conditions": {"c": {**COND, "attributes": {"_conditions": [IS_A], "_true_works": 5}}},
        }
    ),
    workflow(
        {
            "_works": {"a": doma(_dependency_map=[{"name": "j"}])},
            "_loop_condition": {**COND, "attributes": {"_conditions": {"x": 1}}},
        }
    ),
    {
        "request_type": 4,
        "request_metadata": {"opt_space": {"x": {"type": "Choice", "params": [1]}}},
    },
    {
        "request_type": 4,
        "request_metadata": {
            "opt_space": {
                "x": {"type": "Scalar", "bounds": ["a", "b"], "params": {"integer": True}}
            }
        },
    },
    {"request_type": 4, "request_metadata": {"opt_space": {"x": "wide"}}},
    {"request_type": 4, "request_metadata": {"opt_space": {"x": [0, 1]}, "max_points": "9"}},
    {"request_type": 4, "request_metadata": {"opt_space": {"bad name": [0, 1]}}},
    {"request_type": 2, "request_metadata": {}},
    {"request_type": 2, "scope": "s", "name": "n", "request_metadata": {}},  # no rucio manager
    {"request_type": 0, "request_metadata": {"workflow": {"class": "X"}}},
    {"request_type": 0, "x": {"class": 1, "module": [], "attributes": {}}},
    {"request_type": 0, "x": {"class": "Popen", "module": "subprocess", "attributes": 3}},
    {
        "a": [
            [
                [
                    [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            [
                                                                                                                                                                                [
                                                                                                                                                                                    [
                                                                                                                                                                                        [
                                                                                                                                                                                            [
                                                                                                                                                                                                [
                                                                                                                                                                                                    [
                                                                                                                                                                                                        [
                                                                                                                                                                                                            [
                                                                                                                                                                                                                [
                                                                                                                                                                                                                    [
                                                                                                                                                                                                                        [
                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                        1
                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                ]
                                                                                                                                                                                                            ]
                                                                                                                                                                                                        ]
                                                                                                                                                                                                    ]
                                                                                                                                                                                                ]
                                                                                                                                                                                            ]
                                                                                                                                                                                        ]
                                                                                                                                                                                    ]
                                                                                                                                                                                ]
                                                                                                                                                                            ]
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                ]
            ]
        ]
    },
]
CALLS = [
    ("GET", "/idds/request/abc/null/False"),
    ("GET", "/idds/request/null/null/False"),
    ("GET", "/idds/request/0/null/False"),
    ("GET", f"/idds/request/{2**70}/null/False"),
    ("PUT", "/idds/request/abort/null/null"),
    ("GET", "/idds/hpo/null/null/null/null/null"),
    ("GET", "/idds/hpo/null/1/null/null/x"),
    ("PUT", "/idds/hpo/null/1/1/not-a-number"),
    ("GET", "/idds/transform/1/abc"),
    ("GET", "/idds/catalog/collections/1/x/null/null/null/null"),
    ("GET", "/idds/catalog/contents/1/null/null/null/null/7/x"),
    ("POST", "/idds/message/1/null/null/null"),
    ("GET", "/idds/nothing/here"),
]


@pytest.fixture
def app_and_token(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    settings = Settings.load(env={}, home=tmp_path, db=str(tmp_path / "o.db"))
    db = Database(settings.db_url)
    app = create_app(settings, db=db)
    with db.begin() as conn:
        token = tokens.create(conn, user="alice", admin=False, groups=[], now=1.0)[1]
    yield app, token
    db.dispose()


def test_bad_input_is_a_4xx_with_a_message(app_and_token: tuple[Any, str]) -> None:
    app, token = app_and_token
    headers = {"X-IDDS-Auth-Token": token}

    async def send() -> list[tuple[str, httpx.Response]]:
        out = []
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://orchid") as c:
            # request 1, which the calls below name
            made = await c.post("/idds/request", json=HPO, headers=headers)
            assert made.json() == {"request_id": 1}, made.text
            for body in BODIES:
                kw = {"content": body} if isinstance(body, bytes) else {"json": body}
                out.append((repr(body)[:80], await c.post("/idds/request", headers=headers, **kw)))
            for method, path in CALLS:
                out.append((f"{method} {path}", await c.request(method, path, headers=headers)))
        return out

    wrong = []
    for what, r in anyio.run(send):
        if not 400 <= r.status_code < 500 or not r.headers.get("ExceptionMessage"):
            wrong.append(f"{what}: {r.status_code} {r.text[:200]}")
    assert not wrong, "\n".join(wrong)
