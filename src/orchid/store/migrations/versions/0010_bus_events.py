"""bus_events (the `db` event bus's table); job_edges clustered by parent on SQLite

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 18:00:00.000000

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""

    op.create_table(
        "bus_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bus_events")),
    )
    if op.get_bind().dialect.name == "sqlite":
        # a table ordered by its key, (parent, child): an edge is one B-tree entry, not a
        # row plus an index entry, and a parent's children are read in one range
        op.execute(
            "CREATE TABLE job_edges_new (parent_id INTEGER NOT NULL, child_id INTEGER NOT NULL, "
            "CONSTRAINT pk_job_edges PRIMARY KEY (parent_id, child_id)) WITHOUT ROWID"
        )
        op.execute("INSERT INTO job_edges_new SELECT parent_id, child_id FROM job_edges")
        op.execute("DROP TABLE job_edges")
        op.execute("ALTER TABLE job_edges_new RENAME TO job_edges")
        op.execute("CREATE INDEX ix_job_edges_child_id ON job_edges (child_id)")


def downgrade() -> None:
    """Downgrade schema."""

    op.drop_table("bus_events")
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TABLE job_edges_old (parent_id INTEGER NOT NULL, child_id INTEGER NOT NULL, "
            "CONSTRAINT pk_job_edges PRIMARY KEY (parent_id, child_id))"
        )
        op.execute("INSERT INTO job_edges_old SELECT parent_id, child_id FROM job_edges")
        op.execute("DROP TABLE job_edges")
        op.execute("ALTER TABLE job_edges_old RENAME TO job_edges")
        op.execute("CREATE INDEX ix_job_edges_child_id ON job_edges (child_id)")
