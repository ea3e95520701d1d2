"""Fast edge cases of the PanDA executor against a FAKE PanDA server (fake_panda.py).

The executor is tested against a real panda-server and JEDI in test_panda_real.py
(the contract suite, DAGs, failures). These few cases need no PanDA at all or one the
real server in the tests cannot be pushed into (it checks no token): a GPU request
refused before anything is sent, and a server that refuses the caller's token.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchid.executors.base import Resources
from orchid.executors.panda import PandaExecutor, PandaOptions
from tests.executors.contract import (
    NOOP,
    finals,
    python,
    spec,
    wait_for,
)
from tests.executors.fake_panda import TOKEN, VO, FakePanda

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups"),
    pytest.mark.xdist_group("panda"),  # panda-client keeps its server in process globals
]


@pytest.fixture
def panda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePanda]:
    monkeypatch.setenv("ORCHID_TEST_PANDA_TOKEN", TOKEN)
    with FakePanda(tmp_path) as fake:
        yield fake


def options(panda: FakePanda, **kw: object) -> PandaOptions:
    base = {
        "url": panda.url,
        "vo": VO,
        "token_env": "ORCHID_TEST_PANDA_TOKEN",
        "python": sys.executable,
        "poll_interval": 0.05,
        "monitor_url": "https://bigpanda.example.org",
        "site": "DEFAULT_QUEUE",
    }
    return PandaOptions.model_validate({**base, **kw})


def make(panda: FakePanda, tmp_path: Path, **kw: object) -> PandaExecutor:
    return PandaExecutor(tmp_path / "logs", options(panda, **kw), namespace="test")


def test_gpus_are_refused_with_a_hint(panda: FakePanda, tmp_path: Path) -> None:
    ex = make(panda, tmp_path)
    try:
        ex.submit([spec(1, python("print(1)"), resources=Resources(gpus=1)), spec(2, NOOP)])
        done = finals(wait_for(ex, 2))
        assert done["1-1-1"].state == "failed" and "queue" in (done["1-1-1"].error or "")
        assert done["1-2-1"].state == "succeeded"
        assert panda.jobs == {}
    finally:
        ex.close()


def test_a_wrong_token_is_refused(
    panda: FakePanda, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHID_TEST_PANDA_TOKEN", "not the token")
    ex = make(panda, tmp_path)
    try:
        with pytest.raises(Exception, match="cannot upload"):
            ex.submit([spec(1, python("print(1)"))])
    finally:
        ex.close()
