"""rucio: the data-manager contract against a real Rucio server and its transfer daemons."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchid.datamgr.rucio import RucioManager
from orchid.errors import DataManagerError, UnknownCollection
from tests.datamgr import rucio_server
from tests.datamgr.contract import DataManagerContract, Harness

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("rucio")]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rucio_server.RucioServer]:
    if not rucio_server.available():
        if os.environ.get("CI"):
            pytest.fail("the Rucio server venv is missing: `make .venv-rucio/.installed`")
        pytest.skip("no Rucio server venv (.venv-rucio); `make .venv-rucio/.installed`")
    srv = rucio_server.start(tmp_path_factory.mktemp("rucio"))
    yield srv
    srv.stop()


def fresh_dataset(server: rucio_server.RucioServer, n: int = 4) -> tuple[str, dict[str, int]]:
    tag = uuid.uuid4().hex[:8]
    sizes = {f"raw_{tag}_{k}.dat": 1000 + k for k in range(n)}
    rucio_server.add_tape_dataset(server.client(), "data18", f"ds_{tag}", sizes)
    return f"data18:ds_{tag}", sizes


def manager(server: rucio_server.RucioServer) -> RucioManager:
    return RucioManager(
        server.client(), source="TAPE", destination="DISK", account="root", poll_interval=0.5
    )


@pytest.fixture(scope="session")
def datasets(server: rucio_server.RucioServer) -> list[tuple[str, dict[str, int]]]:
    """Datasets for the contract tests, staged together so their transfers overlap
    (each test stages its own again: staging is idempotent)."""
    made = [fresh_dataset(server) for _ in range(8)]
    mgr = manager(server)
    for collection, _ in made:
        mgr.stage(collection)
    return made


class TestRucioContract(DataManagerContract):
    @pytest.fixture
    def harness(
        self, server: rucio_server.RucioServer, datasets: list[tuple[str, dict[str, int]]]
    ) -> Harness:
        collection, sizes = datasets.pop()
        return Harness(
            manager(server), collection, sizes, wait=lambda: time.sleep(0.5), deadline_s=90.0
        )


def test_staging_twice_makes_one_rule(server: rucio_server.RucioServer) -> None:
    collection, _ = fresh_dataset(server, 2)
    mgr = manager(server)
    mgr.stage(collection)
    manager(server).stage(collection)  # another process, after a crash: finds the rule
    scope, name = collection.split(":")
    rules = list(server.client().list_did_rules(scope, name))
    assert len(rules) == 1 and rules[0]["source_replica_expression"] == "TAPE"
    mgr.release(collection, None)
    (rule,) = server.client().list_did_rules(scope, name)
    assert rule["expires_at"] is not None  # Rucio removes it after its grace period
    assert manager(server).list_files(collection)[0].status == "new"  # no longer pinned


def test_configuration_errors_are_explained(server: rucio_server.RucioServer) -> None:
    with pytest.raises(DataManagerError, match="authenticate"):
        RucioManager.from_options(
            {
                "host": server.url,
                "account": "root",
                "username": USER_BAD,
                "password": "x",
                "destination": "DISK",
            }
        )
    mgr = RucioManager.from_options(
        {
            "host": server.url,
            "account": "root",
            "auth_type": "userpass",
            "username": "ddmlab",
            "password": "secret",
            "destination": "DISK",
        }
    )
    with pytest.raises(UnknownCollection):
        mgr.list_files("data18:no-such-dataset")


USER_BAD = "nobody"


def test_an_unreachable_server_is_a_data_manager_error(tmp_path: Path) -> None:
    with pytest.raises(DataManagerError):
        RucioManager.from_options(
            {
                "host": "http://127.0.0.1:9",
                "account": "root",
                "username": "u",
                "password": "p",
                "destination": "DISK",
            }
        )


def test_a_workflow_fed_by_rucio_processes_the_dataset_and_removes_its_rule(
    server: rucio_server.RucioServer, tmp_path: Path
) -> None:
    from orchid.core.states import TERMINAL_WORKFLOW
    from orchid.engine.runner import make_runner
    from orchid.engine.submit import submit
    from orchid.store import workflows
    from orchid.store.db import Database
    from tests.engine.carouselkit import file_rows, job_rows
    from tests.engine.enginekit import settings_for

    collection, sizes = fresh_dataset(server, 5)
    db = Database(f"sqlite:///{tmp_path / 'o.db'}")
    db.upgrade()
    runner = make_runner(
        settings_for(db, tmp_path / "home"), db, data_managers={"atlas": manager(server)}
    )
    exe = runner.executor
    template = {
        "name": "from-rucio",
        "works": [
            {
                "name": "reco",
                "noop": True,
                "input": {
                    "manager": "atlas",
                    "collection": collection,
                    "delete_after": "processed",
                },
            }
        ],
    }
    wf = submit(db, template, base_dir=None, now=time.time())
    deadline = time.monotonic() + 120

    def ended() -> bool:
        with db.engine.connect() as conn:
            return (
                time.monotonic() > deadline or workflows.get(conn, wf).status in TERMINAL_WORKFLOW
            )

    runner.run(until=ended, check_every=0.2)
    exe.close()
    with db.engine.connect() as conn:
        assert workflows.get(conn, wf).status == "succeeded"
    assert {r.name: r.status for r in file_rows(db)} == dict.fromkeys(sizes, "deleted")
    assert all(j.args["url"].startswith("mock://") for j in job_rows(db).values())  # PFNs on DISK
    scope, name = collection.split(":")
    (rule,) = server.client().list_did_rules(scope, name)
    assert rule["expires_at"] is not None  # removed once the collection was processed
    db.dispose()
