"""tokens.worker_queue: a worker's token, scoped to one executor queue

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 10:30:00.000000

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("tokens", sa.Column("worker_queue", sa.String(100), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("worker_queue")
