"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 04:46:48.196233

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""

    op.create_table(
        "agents",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("roles", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_agents")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column(
            "data",
            sa.JSON(),
            nullable=False,
        ),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_workflow_id"), ["workflow_id"], unique=False)

    op.create_table(
        "job_edges",
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("parent_id", "child_id", name=op.f("pk_job_edges")),
    )
    with op.batch_alter_table("job_edges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_edges_child_id"), ["child_id"], unique=False)

    op.create_table(
        "workflows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "template",
            sa.JSON(),
            nullable=False,
        ),
        sa.Column(
            "params",
            sa.JSON(),
            nullable=False,
        ),
        sa.Column(
            "loops",
            sa.JSON(),
            nullable=False,
        ),
        sa.Column("base_dir", sa.Text(), nullable=True),
        sa.Column("wake_seq", sa.Integer(), server_default="1", nullable=False),
        sa.Column("seen_seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflows")),
    )
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workflows_status"), ["status"], unique=False)

    op.create_table(
        "commands",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("applied_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name=op.f("fk_commands_workflow_id_workflows")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commands")),
    )
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commands_status"), ["status"], unique=False)

    op.create_table(
        "works",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("iteration", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=True),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "inputs",
            sa.JSON(),
            nullable=True,
        ),
        sa.Column("static", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("n_jobs", sa.Integer(), server_default="0", nullable=False),
        sa.Column("remaining", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name=op.f("fk_works_workflow_id_workflows")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_works")),
        sa.UniqueConstraint(
            "workflow_id", "name", "iteration", name=op.f("uq_works_workflow_id_name_iteration")
        ),
    )
    with op.batch_alter_table("works", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_works_status"), ["status"], unique=False)

    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("work_id", sa.Integer(), nullable=True),
        sa.Column("scope", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("manager", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["work_id"], ["works.id"], name=op.f("fk_collections_work_id_works")
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name=op.f("fk_collections_workflow_id_workflows")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("work_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column(
            "args",
            sa.JSON(),
            nullable=False,
        ),
        sa.Column("pending_parents", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default="1", nullable=False),
        sa.Column("not_before", sa.Float(), server_default="0", nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("propagated", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column(
            "result",
            sa.JSON(),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("log_uri", sa.Text(), nullable=True),
        sa.Column(
            "usage",
            sa.JSON(),
            nullable=True,
        ),
        sa.Column("ready_at", sa.Float(), nullable=True),
        sa.Column("submitted_at", sa.Float(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["work_id"], ["works.id"], name=op.f("fk_jobs_work_id_works")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("work_id", "name", name=op.f("uq_jobs_work_id_name")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_in_flight",
            ["lease_until"],
            unique=False,
            sqlite_where=sa.text("status IN ('submitted', 'running')"),
            postgresql_where=sa.text("status IN ('submitted', 'running')"),
        )
        batch_op.create_index(
            "ix_jobs_ready",
            ["not_before", "id"],
            unique=False,
            sqlite_where=sa.text("status = 'ready'"),
            postgresql_where=sa.text("status = 'ready'"),
        )
        batch_op.create_index(
            "ix_jobs_unpropagated",
            ["id"],
            unique=False,
            sqlite_where=sa.text(
                "NOT propagated AND status IN ('succeeded', 'failed', 'cancelled', 'skipped')"
            ),
            postgresql_where=sa.text(
                "NOT propagated AND status IN ('succeeded', 'failed', 'cancelled', 'skipped')"
            ),
        )
        batch_op.create_index("ix_jobs_workflow_status", ["workflow_id", "status"], unique=False)

    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name=op.f("fk_files_collection_id_collections")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("collection_id", "name", name=op.f("uq_files_collection_id_name")),
    )


def downgrade() -> None:
    """Downgrade schema."""

    op.drop_table("files")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_workflow_status")
        batch_op.drop_index(
            "ix_jobs_unpropagated",
            sqlite_where=sa.text(
                "NOT propagated AND status IN ('succeeded', 'failed', 'cancelled', 'skipped')"
            ),
            postgresql_where=sa.text(
                "NOT propagated AND status IN ('succeeded', 'failed', 'cancelled', 'skipped')"
            ),
        )
        batch_op.drop_index(
            "ix_jobs_ready",
            sqlite_where=sa.text("status = 'ready'"),
            postgresql_where=sa.text("status = 'ready'"),
        )
        batch_op.drop_index(
            "ix_jobs_in_flight",
            sqlite_where=sa.text("status IN ('submitted', 'running')"),
            postgresql_where=sa.text("status IN ('submitted', 'running')"),
        )

    op.drop_table("jobs")
    op.drop_table("collections")
    with op.batch_alter_table("works", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_works_status"))

    op.drop_table("works")
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commands_status"))

    op.drop_table("commands")
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflows_status"))

    op.drop_table("workflows")
    with op.batch_alter_table("job_edges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_edges_child_id"))

    op.drop_table("job_edges")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_workflow_id"))

    op.drop_table("events")
    op.drop_table("agents")
