"""carousel: collections a transporter follows, files with their job, attempts and url

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 19:00:00

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0009"
down_revision: Union[str, Sequence[str], None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spec", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("cursor", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("sealed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("next_poll_at", sa.Float(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("message", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("closed_at", sa.Float(), nullable=True))
        batch_op.create_index("ix_collections_status", ["status"], unique=False)
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.add_column(sa.Column("attempt", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("available_at", sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f("ix_files_job_id"), ["job_id"], unique=False)
        batch_op.create_index(
            "ix_files_status_collection", ["status", "collection_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index("ix_files_status_collection")
        batch_op.drop_index(batch_op.f("ix_files_job_id"))
        for column in ("available_at", "error", "url", "attempt", "job_id"):
            batch_op.drop_column(column)
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_index("ix_collections_status")
        for column in (
            "closed_at",
            "message",
            "lease_until",
            "lease_owner",
            "next_poll_at",
            "sealed",
            "cursor",
            "spec",
        ):
            batch_op.drop_column(column)
