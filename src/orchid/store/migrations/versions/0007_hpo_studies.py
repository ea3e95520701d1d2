"""hpo: studies and trials

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 18:40:00

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as store.tables.Id


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("workflow_id", Id, nullable=False),
        sa.Column("work_id", Id, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column("common", sa.JSON(), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("wake_seq", sa.Integer(), server_default="1", nullable=False),
        sa.Column("seen_seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("due_at", sa.Float(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name=op.f("fk_studies_workflow_id_workflows")
        ),
        sa.ForeignKeyConstraint(["work_id"], ["works.id"], name=op.f("fk_studies_work_id_works")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("work_id", name=op.f("uq_studies_work_id")),
    )
    op.create_index(op.f("ix_studies_status"), "studies", ["status"], unique=False)
    op.create_index(op.f("ix_studies_workflow_id"), "studies", ["workflow_id"], unique=False)
    op.create_table(
        "trials",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("study_id", Id, nullable=False),
        sa.Column("segment", sa.String(length=64), server_default="", nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("job_id", Id, nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("intermediate", sa.JSON(), nullable=False),
        sa.Column("system", sa.JSON(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_trials_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trials")),
        sa.UniqueConstraint(
            "study_id", "segment", "number", name=op.f("uq_trials_study_id_segment_number")
        ),
    )
    op.create_index(op.f("ix_trials_job_id"), "trials", ["job_id"], unique=False)
    op.create_index("ix_trials_study_status", "trials", ["study_id", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_trials_study_status", table_name="trials")
    op.drop_index(op.f("ix_trials_job_id"), table_name="trials")
    op.drop_table("trials")
    op.drop_index(op.f("ix_studies_workflow_id"), table_name="studies")
    op.drop_index(op.f("ix_studies_status"), table_name="studies")
    op.drop_table("studies")
