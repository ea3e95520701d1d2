"""64-bit ids on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 18:40:00

Ids were INTEGER (int4) on PostgreSQL: a long-lived server passes 2^31 events or jobs, and
the API already accepts ids up to 2^62. SQLite's INTEGER PRIMARY KEY is the 64-bit rowid,
so nothing changes there.
"""

from typing import Sequence, Union

from alembic import op


revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# (table, columns holding ids); the first table of each tuple with an `id` has a sequence
ID_COLUMNS = {
    "workflows": ["id"],
    "works": ["id", "workflow_id"],
    "jobs": ["id", "workflow_id", "work_id"],
    "job_edges": ["parent_id", "child_id"],
    "events": ["id", "workflow_id"],
    "commands": ["id", "workflow_id"],
    "collections": ["id", "workflow_id", "work_id"],
    "files": ["id", "collection_id"],
    "tokens": ["id"],
    "messages": ["id", "workflow_id"],
}


def _retype(kind: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in ID_COLUMNS.items():
        changes = ", ".join(f"ALTER COLUMN {c} TYPE {kind}" for c in columns)
        op.execute(f"ALTER TABLE {table} {changes}")
        if "id" in columns:
            op.execute(f"ALTER SEQUENCE {table}_id_seq AS {kind}")


def upgrade() -> None:
    _retype("bigint")


def downgrade() -> None:
    _retype("integer")
