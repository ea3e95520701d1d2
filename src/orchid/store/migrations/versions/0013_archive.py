"""workflows: retention (archive state, archive file, summary of an archived workflow)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 10:30:00.000000

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "0013"
down_revision: Union[str, Sequence[str], None] = "0012"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("workflows", sa.Column("archive_state", sa.String(12), nullable=True))
    op.add_column("workflows", sa.Column("archive_uri", sa.Text(), nullable=True))
    op.add_column("workflows", sa.Column("archived_at", sa.Float(), nullable=True))
    op.add_column("workflows", sa.Column("archive_summary", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("workflows") as batch:
        for column in ("archive_summary", "archived_at", "archive_uri", "archive_state"):
            batch.drop_column(column)
