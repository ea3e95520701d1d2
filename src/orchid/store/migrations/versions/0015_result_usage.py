"""result_usage: the bytes of job results each workflow holds (the result_bytes quota)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 13:00:00.000000

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "0015"
down_revision: Union[str, Sequence[str], None] = "0014"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema.

    Results recorded before this migration are counted once, here: one row per workflow
    that holds any (shard 0)."""
    op.create_table(
        "result_usage",
        sa.Column(
            "workflow_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "shard", name="pk_result_usage"),
    )
    # as store.resultbytes.size_sql: a JSON null is no result
    size = (
        "octet_length(nullif(CAST(result AS TEXT), 'null'))"
        if op.get_bind().dialect.name == "postgresql"
        else "length(CAST(nullif(result, 'null') AS BLOB))"
    )
    op.execute(
        "INSERT INTO result_usage (workflow_id, shard, bytes) "
        f"SELECT workflow_id, 0, sum({size}) FROM jobs WHERE {size} > 0 "
        "GROUP BY workflow_id"
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("result_usage")
