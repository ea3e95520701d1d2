"""job_waits: the count of unfinished parents leaves the jobs row for a narrow table

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 23:00:00.000000

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "job_waits",
        sa.Column("job_id", ID, autoincrement=False, nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_waits")),
    )
    op.execute(
        "INSERT INTO job_waits (job_id, pending) "
        "SELECT id, pending_parents FROM jobs WHERE pending_parents > 0"
    )
    # SQLite 3.35+ drops a column that no index names in place (no table rebuild, which
    # would have to recreate the partial indexes)
    op.execute("ALTER TABLE jobs DROP COLUMN pending_parents")


def downgrade() -> None:
    """Downgrade schema."""
    op.execute("ALTER TABLE jobs ADD COLUMN pending_parents INTEGER NOT NULL DEFAULT 0")
    op.execute(
        "UPDATE jobs SET pending_parents = "
        "(SELECT pending FROM job_waits WHERE job_waits.job_id = jobs.id) "
        "WHERE id IN (SELECT job_id FROM job_waits)"
    )
    op.drop_table("job_waits")
