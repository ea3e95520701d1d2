"""Misuse fails at once, with the fix in the message; values and code are packed right."""

from __future__ import annotations

import io
import math
import zipfile
from collections import Counter
from pathlib import Path

import fat_tasks
import pytest

from orchid.backend.base import extract_traceback
from orchid.fat import codec, packaging
from orchid.fat.decorators import bind, task, workflow
from orchid.fat.errors import SerializationError, UsageError
from orchid.fat.job import main as job_main
from tests.fat.conftest import PAYLOADS


def test_decorators_check_their_options_and_targets() -> None:
    with pytest.raises(UsageError, match="cores"):
        task(cores=0)
    with pytest.raises(UsageError, match="executor"):
        task(executor="not a name")
    with pytest.raises(UsageError, match="include is a list"):
        task(include="*.py")
    with pytest.raises(UsageError, match="async"):
        task(_async)
    with pytest.raises(UsageError, match="generator"):
        task(_gen)
    with pytest.raises(UsageError, match="decorated twice"):
        task(fat_tasks.square)
    with pytest.raises(UsageError, match=r"name='\.\.\.'"):
        task(lambda: 1)
    with pytest.raises(UsageError, match="on="):
        workflow(on="cloud")  # type: ignore[call-overload]


async def _async() -> None: ...


def _gen() -> object:
    yield 1


def test_calls_that_do_not_fit_the_signature_fail_at_once() -> None:
    with pytest.raises(
        UsageError, match=r"square\(x\) cannot be called like this: missing a required argument"
    ):
        bind(fat_tasks.square.fn, "square", (), {"y": 1})
    with pytest.raises(UsageError, match="item 1"):
        with_run(lambda: fat_tasks.square.map([{"x": 1}, {"x": 2, "z": 3}]))
    with pytest.raises(UsageError, match="list of keyword-argument dicts"):
        with_run(lambda: fat_tasks.square.map({"x": 1}))


def with_run(body: object) -> object:
    from orchid.fat import runtime

    with runtime.running(runtime.LocalRun()):
        return body()  # type: ignore[operator]


def test_a_task_outside_a_workflow_says_to_use_local() -> None:
    with pytest.raises(UsageError, match=r"square.local\(\.\.\.\)"):
        fat_tasks.square(3)
    assert fat_tasks.square.local(3) == 9


def test_futures_are_not_values() -> None:
    def body() -> None:
        future = fat_tasks.square(2)
        assert future.result() == 4
        with pytest.raises(UsageError, match=r"call .result\(\)"):
            future + 1
        with pytest.raises(UsageError, match=r"call .result\(\)"):
            future["x"]
        with pytest.raises(UsageError, match="is a future: pass its value"):
            fat_tasks.square(future)  # type: ignore[arg-type]

    with_run(body)


def test_a_plain_function_used_as_a_task_is_explained() -> None:
    with pytest.raises(UsageError, match="decorate that function with @task"):
        fat_tasks.sloppy.local(3)


def test_local_runs_every_task_here() -> None:
    assert fat_tasks.squares.local(4) == 14
    out = fat_tasks.branchy.local(2)
    assert out["went"].startswith("fallback after: ValueError: no luck with 2")


def test_values_are_json_when_they_can_be_and_pickled_otherwise() -> None:
    assert codec.encode({"a": [1, 2.5, None, True]}, "x") == {"json": {"a": [1, 2.5, None, True]}}
    for value in [(1, 2), {1: "a"}, {"s": {1, 2}}, float("nan"), Counter("aab")]:
        env = codec.encode(value, "x")
        assert "pickle" in env
        back = codec.decode(env)
        assert back == value or math.isnan(value)
        assert type(back) is type(value)
    stored: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        stored["k"] = data
        return "k"

    big = codec.encode(b"x" * (codec.INLINE_BYTES + 1), "x", put)
    assert big == {"cache": "k", "size": len(stored["k"])}
    assert codec.decode(big, stored.__getitem__) == b"x" * (codec.INLINE_BYTES + 1)
    with pytest.raises(SerializationError, match="open files"):
        codec.encode(_Unpicklable(), "arg f")


class _Unpicklable:
    def __reduce__(self) -> object:
        raise TypeError("cannot pickle this")


def test_the_source_tree_is_zipped_deterministically(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text("X = 1\n")
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "mod.pyc").write_bytes(b"junk")
    (tmp_path / "pkg" / "data.csv").write_text("1,2\n")
    tree = packaging.Tree(tmp_path, "pkg", exclude=("*.csv",))
    first = packaging.zip_tree(tree)
    assert first == packaging.zip_tree(tree)  # same bytes, same sha256
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == ["pkg/__init__.py", "pkg/mod.py"]
    payload_tree = packaging.tree_of(__import__("fat_tasks"), (), ())
    assert payload_tree == packaging.Tree(PAYLOADS, "")
    assert packaging.tree_of(__import__("json"), (), ()) is None  # installed: not shipped
    assert packaging.reference(fat_tasks.square.fn) == "fat_tasks:square"
    assert packaging.reference(_gen) == "tests.fat.test_usage:_gen"
    assert packaging.reference(lambda: 1) is None


def test_orchid_job_exit_codes_and_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORCHID_URL", raising=False)
    monkeypatch.setenv("ORCHID_RESULT_FILE", str(tmp_path / "r.json"))
    call = '{"json": {"args": [], "kwargs": {"x": 3}}}'
    assert job_main(["--source", "-", "--function", "fat_tasks:square", "--call", call]) == 0
    assert (tmp_path / "r.json").read_text() == '{"json": 9}'
    assert job_main(["--source", "-", "--function", "fat_tasks:nope", "--call", call]) == 2
    assert job_main(["--source", "-", "--function", "fat_tasks:fragile", "--call", call]) == 1
    err = capsys.readouterr().err
    assert "has no 'nope'" in err
    assert "ValueError: no luck with 3" in extract_traceback(err)
    assert err.rstrip().splitlines()[-1].startswith("orchid-job: fragile raised ValueError")
