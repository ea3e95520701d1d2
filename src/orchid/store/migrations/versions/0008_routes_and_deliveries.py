"""executors per work, and the conductor's delivery ledger

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 19:30:00

work_routes: the executor a work's template names. deliveries: per subscriber of the
settings file, how far the outbox has been sent (cursor, late-commit gaps, retry state).
parked_notifications: batches a subscriber kept refusing.
"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "work_routes",
        sa.Column("workflow_id", Id, nullable=False),
        sa.Column("work", sa.String(length=100), nullable=False),
        sa.Column("executor", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name=op.f("fk_work_routes_workflow_id_workflows")
        ),
        sa.PrimaryKeyConstraint("workflow_id", "work", name=op.f("pk_work_routes")),
    )
    with op.batch_alter_table("work_routes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_routes_executor"), ["executor"], unique=False)
    op.create_table(
        "deliveries",
        sa.Column("subscriber", sa.String(length=100), nullable=False),
        sa.Column("cursor", Id, server_default="0", nullable=False),
        sa.Column("gaps", sa.JSON(), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_try_at", sa.Float(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent", Id, server_default="0", nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("subscriber", name=op.f("pk_deliveries")),
    )
    op.create_table(
        "parked_notifications",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("subscriber", sa.String(length=100), nullable=False),
        sa.Column("event_ids", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parked_notifications")),
    )
    with op.batch_alter_table("parked_notifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_parked_notifications_subscriber"), ["subscriber"], unique=False
        )


def downgrade() -> None:
    op.drop_table("parked_notifications")
    op.drop_table("deliveries")
    op.drop_table("work_routes")
