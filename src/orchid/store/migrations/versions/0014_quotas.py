"""quotas (limits and fair-share weights), share_usage (decayed usage), workflows.priority

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 11:10:00.000000

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "0014"
down_revision: Union[str, Sequence[str], None] = "0013"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "quotas",
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("executor", sa.String(100), nullable=False, server_default=""),
        sa.Column("quota", sa.String(40), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "subject", "executor", "quota", name="pk_quotas"),
    )
    op.create_table(
        "share_usage",
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("usage", sa.Float(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("owner", name="pk_share_usage"),
    )
    op.add_column(
        "workflows", sa.Column("priority", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("priority")
    op.drop_table("share_usage")
    op.drop_table("quotas")
