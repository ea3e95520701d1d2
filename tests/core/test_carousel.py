"""The data carousel in templates and its pure decisions (core/carousel.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchid.core.carousel import (
    Feed,
    OnDisk,
    after_stage_failure,
    fed_work_outcome,
    files_room,
    job_args,
    job_groups,
    parse_collection,
)
from orchid.core.states import FileStatus, JobStatus, WorkStatus
from orchid.core.template import json_schema, parse_template
from orchid.core.validate import analyse
from orchid.errors import TemplateError


def fed(**input_: Any) -> dict[str, Any]:
    spec = {"manager": "tape", "collections": ["data18:A"], **input_}
    return {"name": "c", "works": [{"name": "reprocess", "noop": True, "input": spec}]}


def problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(TemplateError) as info:
        analyse(parse_template(raw))
    return info.value.problems


def test_a_fed_work_with_its_defaults() -> None:
    spec = parse_template(fed()).works[0].input
    assert spec is not None
    assert (spec.release, spec.files_per_job, spec.delete_after, spec.retries) == (
        "per-file",
        1,
        None,
        3,
    )
    analyse(parse_template(fed()))


def test_collection_is_a_shorthand_for_one() -> None:
    raw = fed()
    del raw["works"][0]["input"]["collections"]
    raw["works"][0]["input"]["collection"] = "incoming/run1"
    spec = parse_template(raw).works[0].input
    assert spec is not None and spec.collections == ["incoming/run1"]


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"release": "per-dataset"}, "works[0](reprocess).input.release", "per-file"),
        (
            {"files_per_job": 0},
            "works[0](reprocess).input.files_per_job",
            "greater than or equal to 1",
        ),
        ({"delete_after": "always"}, "works[0](reprocess).input.delete_after", "processed"),
        ({"collections": []}, "works[0](reprocess).input.collections", "at least 1"),
        ({"retries": -1}, "works[0](reprocess).input.retries", "greater than or equal to 0"),
        ({"manager": "no spaces"}, "works[0](reprocess).input.manager", "pattern"),
        ({"managr": "x"}, "works[0](reprocess).input.managr", "not a known field"),
    ],
)
def test_bad_input_values_name_their_path(change: dict[str, Any], path: str, words: str) -> None:
    found = problems(fed(**change))
    assert any(p == path and words in m for p, m in found), found


def test_both_collection_forms_at_once_are_refused() -> None:
    found = problems(fed(collection="data18:B"))
    assert any(p.startswith("works[0](reprocess).input") and "not both" in m for p, m in found)


def test_cross_checks_of_a_fed_work() -> None:
    raw = fed(collections=["data18:A", "data18:A", "data18:", ":x"])
    raw["works"][0]["map"] = {"items": [{"a": 1}]}
    found = dict(problems(raw))
    assert "jobs come from its files" in found["works[0](reprocess).map"]
    assert "listed twice" in found["works[0](reprocess).input.collections[1]"]
    assert "scope:name" in found["works[0](reprocess).input.collections[2]"]
    assert "scope:name" in found["works[0](reprocess).input.collections[3]"]
    looped = fed()
    looped["loops"] = [{"name": "l", "works": ["reprocess"], "until": "true", "max_iterations": 2}]
    assert any("inside a loop" in m for _, m in problems(looped))


def test_the_schema_documents_the_input() -> None:
    schema = json_schema()
    props = schema["$defs"]["InputSpec"]["properties"]
    assert {"manager", "collections", "release", "files_per_job", "delete_after"} <= set(props)


def disk(n: int) -> list[OnDisk]:
    return [OnDisk(i, f"f{i}", f"u{i}") for i in range(n)]


def test_per_file_release_makes_full_groups_then_the_rest_at_the_end() -> None:
    feed = Feed(files_per_job=3)
    assert [len(g) for g in job_groups(feed, disk(7), pending=True)] == [3, 3]
    assert [len(g) for g in job_groups(feed, disk(7), pending=False)] == [3, 3, 1]
    assert job_groups(Feed(), disk(2), pending=True) == [[disk(2)[0]], [disk(2)[1]]]


def test_no_job_gets_more_file_arguments_than_the_limit_leaves_room_for() -> None:
    """Long urls split a group before files_per_job: every job's arguments fit the limit,
    a group full by size is released at once, one file is always a job of its own."""
    cap = 1000
    feed = Feed(files_per_job=100)
    files = [OnDisk(i, f"f{i:03d}", "root://site/" + "x" * 80 + str(i)) for i in range(30)]
    room = files_room(feed, {"tag": "t"}, "data18:A", cap)
    groups = job_groups(feed, files, pending=True, max_bytes=room)
    assert len(groups) > 1 and sum(map(len, groups)) < len(files)  # the rest waits
    for g in groups:
        args = job_args(feed, {"tag": "t"}, "data18:A", g)
        assert len(json.dumps(args, separators=(",", ":"))) <= cap
    last = job_groups(feed, files, pending=False, max_bytes=room)
    assert [f for g in last for f in g] == files
    huge = [OnDisk(0, "f", "u" * 5000)]
    assert job_groups(Feed(), huge, pending=True, max_bytes=room) == [huge]


def test_per_collection_release_waits_for_the_whole_collection() -> None:
    feed = Feed(release="per-collection", files_per_job=2)
    assert job_groups(feed, disk(5), pending=True) == []
    assert [len(g) for g in job_groups(feed, disk(5), pending=False)] == [2, 2, 1]


def test_job_arguments() -> None:
    one = job_args(Feed(), {"tag": "x"}, "data18:A", disk(1))
    assert one == {
        "tag": "x",
        "collection": "data18:A",
        "files": ["f0"],
        "urls": ["u0"],
        "file": "f0",
        "url": "u0",
    }
    many = job_args(Feed(files_per_job=2), {}, "data18:A", disk(2))
    assert "file" not in many and many["files"] == ["f0", "f1"]


def test_staging_failures_and_outcomes() -> None:
    assert after_stage_failure(1, 4) == FileStatus.STAGING
    assert after_stage_failure(4, 4) == FileStatus.FAILED
    ok = {JobStatus.SUCCEEDED: 10}
    assert fed_work_outcome(ok, 0) == WorkStatus.SUCCEEDED
    assert fed_work_outcome(ok, 2) == WorkStatus.PARTIAL
    assert fed_work_outcome({}, 3) == WorkStatus.FAILED
    assert fed_work_outcome({JobStatus.CANCELLED: 1}, 3) == WorkStatus.CANCELLED
    assert Feed.from_json(Feed(files_per_job=4, delete_after=True).to_json()) == Feed(
        files_per_job=4, delete_after=True
    )
    assert parse_collection("data18:A", "tape") == ("data18", "A")
    assert parse_collection("inbox/run1", "posix") == ("posix", "inbox/run1")
