"""Results over ``result_max_bytes`` and commands with NUL characters fail their job
cleanly, in a process of its own or in a pool worker, and the executor keeps working."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchid.core.limits import Limits
from orchid.executors import _process as proc
from orchid.executors.base import Payload
from orchid.executors.local import LocalExecutor
from tests.executors.contract import finals, python, spec, wait_for
from tests.executors.test_local import function

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")

LIMITS = Limits(result_max_bytes=1000)
WRITE = (
    "import json, os, sys\n"
    "with open(os.environ['ORCHID_RESULT_FILE'], 'w') as f: json.dump('x' * int(sys.argv[1]), f)"
)
CODE = """
def big(size):
    return "y" * size
"""


@pytest.fixture(params=[False, True], ids=["process", "pool"])
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalExecutor]:
    ex = LocalExecutor(1, tmp_path / "logs", reuse_workers=request.param, limits=LIMITS)
    yield ex
    ex.close()


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "orchid_big.py").write_text(CODE)
    return folder


def test_a_result_file_over_the_limit_fails_the_job(tmp_path: Path) -> None:
    ex = LocalExecutor(1, tmp_path / "logs", limits=LIMITS)
    try:
        ex.submit([spec(1, python(WRITE, "5000")), spec(2, python(WRITE, "500"))])
        done = finals(wait_for(ex, 2))
    finally:
        ex.close()
    big, small = done["1-1-1"], done["1-2-1"]
    assert (big.state, big.result) == ("failed", None)
    assert big.error is not None
    assert big.error.startswith("the result is 5,002 bytes as JSON, more than the limit of 1,000")
    assert "(setting result_max_bytes, ORCHID_RESULT_MAX_BYTES)" in big.error
    assert (small.state, small.result) == ("succeeded", "x" * 500)  # it keeps working


def test_a_function_result_over_the_limit_fails_the_job(
    executor: LocalExecutor, code: Path
) -> None:
    payload = function("orchid_big:big", code)
    executor.submit([spec(1, payload, {"size": 5000}), spec(2, payload, {"size": 10})])
    done = finals(wait_for(executor, 2))
    big, small = done["1-1-1"], done["1-2-1"]
    assert (big.state, big.result) == ("failed", None)
    assert big.error is not None and "more than the limit of 1,000" in big.error
    assert "result_max_bytes" in big.error
    assert (small.state, small.result) == ("succeeded", "y" * 10)


def test_a_result_file_that_is_a_link_or_a_fifo_is_not_read(tmp_path: Path) -> None:
    files = proc.AttemptFiles.at(tmp_path, 1, 1, 1)
    files.out.parent.mkdir(parents=True)
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "x"}')
    files.result.symlink_to(secret)
    result, error = proc.read_result(files)
    assert result is None and error is not None and "cannot read result file" in error
    files.result.unlink()
    os.mkfifo(files.result)  # no writer: reading it would wait forever
    result, error = proc.read_result(files)
    assert result is None and error == f"result file {files.result} is not a regular file"


def test_a_nul_character_in_a_command_fails_the_job_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One that came through a binding at run time (submission refuses them)."""
    caplog.set_level(logging.DEBUG)
    ex = LocalExecutor(1, tmp_path / "logs")
    nul = Payload(kind="command", command=(sys.executable, "-c", "pass", "{text}"))
    env = Payload(kind="command", command=(sys.executable, "-c", "pass"), env={"V": "{text}"})
    try:
        ex.submit(
            [
                spec(1, nul, {"text": "a\x00b"}),
                spec(2, env, {"text": "a\x00b"}),
                spec(3, nul, {"text": "ab"}),
            ]
        )
        done = finals(wait_for(ex, 3))
    finally:
        ex.close()
    assert done["1-1-1"].state == "failed"
    assert done["1-1-1"].error == (
        "item 3 of the command holds a NUL character (\\u0000), which the operating system "
        "cannot pass to a program"
    )
    assert done["1-2-1"].state == "failed"
    assert done["1-2-1"].error is not None
    assert done["1-2-1"].error.startswith("environment variable 'V' holds a NUL character")
    assert done["1-3-1"].state == "succeeded"
    assert not [r for r in caplog.records if r.exc_info]  # no traceback anywhere
