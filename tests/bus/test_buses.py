"""Every event bus against the contract: memory, PostgreSQL LISTEN/NOTIFY, and the events
table (on SQLite and PostgreSQL); then what the cross-process buses do when the
database connection is lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orchid.bus import announce, make_bus
from orchid.bus.base import EventBus
from orchid.bus.db import DbBus
from orchid.bus.memory import MemoryBus
from orchid.bus.postgres import EVERYTHING, PostgresBus
from orchid.errors import ConfigError
from orchid.store import signals
from orchid.store.db import Database
from tests.bus.contract import DEADLINE_S, BusContract, MakeBus, collect


@pytest.fixture
def buses() -> Iterator[list[EventBus]]:
    made: list[EventBus] = []
    yield made
    for bus in made:
        bus.close()


class TestMemoryBus(BusContract):
    @pytest.fixture
    def make_bus(self) -> MakeBus:
        return MemoryBus


class TestDbBus(BusContract):
    crosses_processes = True

    @pytest.fixture
    def make_bus(self, db: Database, buses: list[EventBus]) -> MakeBus:
        def make() -> EventBus:
            bus = DbBus(db, interval=0.02)
            buses.append(bus)
            return bus

        return make


@pytest.mark.postgres
class TestPostgresBus(BusContract):
    crosses_processes = True

    @pytest.fixture
    def make_bus(self, pg_url: str, buses: list[EventBus]) -> MakeBus:
        def make() -> EventBus:
            bus = PostgresBus(pg_url)
            buses.append(bus)
            return bus

        return make


def test_make_bus_picks_by_database(db: Database, buses: list[EventBus]) -> None:
    bus = make_bus("auto", db)
    buses.append(bus)
    assert isinstance(bus, MemoryBus if db.is_sqlite else PostgresBus)
    with pytest.raises(ConfigError, match="unknown event bus"):
        make_bus("carrier-pigeon", db)


def test_the_postgres_bus_needs_postgres(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="needs a PostgreSQL database"):
        make_bus("postgres", Database(f"sqlite:///{tmp_path / 'x.db'}"))


@pytest.mark.postgres
def test_a_listener_whose_connection_dies_reconnects(pg_url: str, buses: list[EventBus]) -> None:
    """What a PostgreSQL restart does to a bus, without restarting the server: the
    listener's backend is terminated; it reconnects, says everything may have changed
    (``*``: notifications sent meanwhile are lost), and hears new ones."""
    one, two = PostgresBus(pg_url), PostgresBus(pg_url)
    buses += [one, two]
    assert one.listening.wait(DEADLINE_S)
    collect(one, "never", deadline_s=0.3)
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%' "
                "AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    admin.dispose()
    assert killed >= 1
    assert EVERYTHING in collect(one, EVERYTHING)
    two.notify("after")
    assert "after" in collect(one, "after")


def test_the_db_bus_forgets_old_signals(db: Database) -> None:
    with db.begin() as conn:
        signals.publish(conn, ["jobs", "ended"], "someone", now=100.0)
        signals.publish(conn, ["works"], "someone", now=200.0)
        assert signals.prune(conn, before=150.0) == 2
        assert [t for _, t, _ in signals.since(conn, 0)] == ["works"]


@pytest.mark.parametrize("kind", ["auto", "db"])
def test_an_announcement_reaches_other_processes_buses_when_it_commits(
    db: Database, buses: list[EventBus], kind: str
) -> None:
    """What a process without a bus of its own sends (the API's worker desk): heard by the
    agents' bus once the transaction commits, not before, and never at all if it is rolled
    back; with ``auto`` on SQLite nothing is sent (that bus reaches one process)."""
    if kind == "auto" and db.is_sqlite:
        pytest.skip("auto is the memory bus on SQLite: nothing crosses processes")
    listener = make_bus("auto" if kind == "auto" else kind, db)
    buses.append(listener)
    with pytest.raises(RuntimeError), db.begin() as conn:
        announce(conn, kind, ["rolled-back"], 1.0)
        raise RuntimeError("roll it back")
    with db.begin() as conn:
        announce(conn, kind, ["ended"], 1.0)
        assert "ended" not in listener.wait(0.3)  # not before the commit
    seen = collect(listener, "ended")
    assert "ended" in seen and "rolled-back" not in seen
