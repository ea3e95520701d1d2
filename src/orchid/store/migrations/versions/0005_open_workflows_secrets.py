"""open workflows (Function-as-a-Task) and shared secrets (job tokens)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 18:40:00.000000

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("open", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("close_error", sa.Text(), nullable=True))
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_secrets")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("secrets")
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("close_error")
        batch.drop_column("open")
