"""workflows.owner_groups: the submitter's groups, for data-manager access in the agents

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 05:00:00.000000

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("workflows", sa.Column("owner_groups", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("owner_groups")
