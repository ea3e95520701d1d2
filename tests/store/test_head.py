"""The revision the CLI compares against is the newest migration script."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from orchid.store.db import HEAD, MIGRATIONS, Database


def test_head_constant_matches_the_scripts() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD


def test_ensure_schema_creates_then_is_a_no_op(db: Database) -> None:
    assert db.revision() == HEAD
    db.ensure_schema()
    assert db.revision() == HEAD
