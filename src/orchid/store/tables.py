"""Table definitions (SQLAlchemy Core). Migrations under ``migrations/`` must match these.

Times are epoch seconds (float) so that release latency is one subtraction and
both databases store them alike. Statuses are the values of the enums in
``orchid.core.states``.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# plain JSON on PostgreSQL too: JSONB would rewrite 1e20 as an integer, and Orchid never
# queries inside these documents
Json = sa.JSON()

# ids: 64-bit on PostgreSQL (a busy server passes 2^31 events or jobs); on SQLite an
# INTEGER PRIMARY KEY is already the 64-bit rowid, and only that spelling autoincrements
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The predicates of the partial indexes on jobs. SQLite uses a partial index only for a
# query whose WHERE repeats its predicate word for word (and with literals, not bound
# parameters), so the store's queries use these very strings.
READY = "status = 'ready'"
UNPROPAGATED = "NOT propagated AND status IN ('succeeded', 'failed', 'cancelled', 'skipped')"
IN_FLIGHT = "status IN ('submitted', 'running')"

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False, index=True),
    sa.Column("share_group", sa.String(200), nullable=True),  # its members may see and act
    # the submitter's groups as the server knew them (agents check data-manager access)
    sa.Column("owner_groups", Json, nullable=True),
    # `finish`: start no new work, let what runs end
    sa.Column("finishing", sa.Boolean, nullable=False, server_default=sa.false()),
    # Function-as-a-Task: works are still being added; it ends only once closed
    sa.Column("open", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("close_error", sa.Text, nullable=True),  # closed as failed: why
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("template", Json, nullable=False),
    sa.Column("params", Json, nullable=False),
    sa.Column("loops", Json, nullable=False),
    sa.Column("base_dir", sa.Text, nullable=True),  # where relative paths of the template point
    # [[parent work, child work], ...] implied by job-level parents, recorded at submission
    sa.Column("links", Json, nullable=True),
    # the clerk looks at a workflow while wake_seq > seen_seq; a change bumps wake_seq
    sa.Column("wake_seq", sa.Integer, nullable=False, server_default="1"),
    sa.Column("seen_seq", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    # retention (store/archive.py): None while its rows are live; else writing, deleting,
    # archived (its rows are in the archive file archive_uri) or restoring
    sa.Column("archive_state", sa.String(12), nullable=True),
    sa.Column("archive_uri", sa.Text, nullable=True),
    sa.Column("archived_at", sa.Float, nullable=True),
    # what stays readable of an archived workflow: its works with their job counts
    sa.Column("archive_summary", Json, nullable=True),
    # fair share: within one user, jobs of higher-priority workflows are claimed first
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
)

works = sa.Table(
    "works",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workflow_id", Id, sa.ForeignKey("workflows.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("iteration", sa.Integer, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("cause", sa.String(16), nullable=True),  # why it was skipped/failed
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("inputs", Json, nullable=True),  # bound parameters and map, set when it starts
    sa.Column("static", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("n_jobs", sa.Integer, nullable=False, server_default="0"),
    sa.Column("remaining", sa.Integer, nullable=False, server_default="0"),  # jobs not final
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.UniqueConstraint("workflow_id", "name", "iteration"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workflow_id", Id, nullable=False),
    sa.Column("work_id", Id, sa.ForeignKey("works.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("args", Json, nullable=False),
    sa.Column("pending_parents", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("not_before", sa.Float, nullable=False, server_default="0"),  # retry back-off
    sa.Column("owner", sa.String(64), nullable=True),  # the carrier that submitted it
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    # false until the trigger has passed this job's end on to its children and its work
    sa.Column("propagated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("result", Json, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("log_uri", sa.Text, nullable=True),
    sa.Column("usage", Json, nullable=True),
    sa.Column("ready_at", sa.Float, nullable=True),
    sa.Column("submitted_at", sa.Float, nullable=True),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.UniqueConstraint("work_id", "name"),
    # work_id too: counts by work and status are an index-only scan (the monitor, the API)
    sa.Index("ix_jobs_workflow_status", "workflow_id", "status", "work_id"),
    sa.Index(
        "ix_jobs_ready",
        "not_before",
        "id",
        sqlite_where=sa.text(READY),
        postgresql_where=sa.text(READY),
    ),
    sa.Index(
        "ix_jobs_unpropagated",
        "id",
        sqlite_where=sa.text(UNPROPAGATED),
        postgresql_where=sa.text(UNPROPAGATED),
    ),
    sa.Index(
        "ix_jobs_in_flight",
        "lease_until",
        sqlite_where=sa.text(IN_FLIGHT),
        postgresql_where=sa.text(IN_FLIGHT),
    ),
)

job_edges = sa.Table(
    "job_edges",
    metadata,
    sa.Column("parent_id", Id, primary_key=True),
    sa.Column("child_id", Id, primary_key=True, index=True),
    sqlite_with_rowid=False,  # stored in key order: one B-tree entry per edge
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workflow_id", Id, nullable=False, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workflow_id", Id, sa.ForeignKey("workflows.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),  # pending|applied|rejected
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("applied_at", sa.Float, nullable=True),
)

collections = sa.Table(
    "collections",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workflow_id", Id, sa.ForeignKey("workflows.id"), nullable=False),
    sa.Column("work_id", Id, sa.ForeignKey("works.id"), nullable=True),
    sa.Column("scope", sa.String(100), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("manager", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # the data carousel (store/carousel.py): how the work uses it, and the transporter's state
    sa.Column("spec", Json, nullable=True),  # release, files_per_job, delete_after, attempts
    sa.Column("cursor", sa.Text, nullable=True),  # the data manager's position in its changes
    sa.Column("sealed", sa.Boolean, nullable=False, server_default=sa.false()),  # no new files
    sa.Column("next_poll_at", sa.Float, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("closed_at", sa.Float, nullable=True),
    sa.Index("ix_collections_status", "status"),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("collection_id", Id, sa.ForeignKey("collections.id"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("job_id", Id, nullable=True, index=True),  # the job that processes it
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),  # staging attempts
    sa.Column("url", sa.Text, nullable=True),  # where jobs read it while it is on disk
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("available_at", sa.Float, nullable=True),
    sa.UniqueConstraint("collection_id", "name"),
    sa.Index("ix_files_status_collection", "status", "collection_id"),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("roles", sa.String(100), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
)

# local API tokens: only the sha256 of each token is kept (see store/tokens.py)
tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("user", sa.String(200), nullable=False),
    sa.Column("groups", Json, nullable=False),
    sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(8), nullable=False),  # shown in listings to tell tokens apart
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float, nullable=True),
    sa.Column("revoked_at", sa.Float, nullable=True),
    # a worker's token (`orchid token create --worker QUEUE`): it leases that queue's jobs
    # and may do nothing else (docs/architecture.md, "Orchid workers")
    sa.Column("worker_queue", sa.String(100), nullable=True),
)

# messages posted to a workflow (results, control messages) by users or jobs
messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workflow_id", Id, sa.ForeignKey("workflows.id"), nullable=False, index=True),
    sa.Column("sender", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("body", Json, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# user payloads in the cache: content addressed by sha256; each uploader owns a reference
cache_objects = sa.Table(
    "cache_objects",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(200), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# keys the services share (the HMAC key of job tokens) and the database's instance id
# (the folder of its logs): made once, on first use
secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# the executor each work runs on, where its template names one (else: the agents' default)
work_routes = sa.Table(
    "work_routes",
    metadata,
    sa.Column("workflow_id", Id, sa.ForeignKey("workflows.id"), primary_key=True),
    sa.Column("work", sa.String(100), primary_key=True),
    sa.Column("executor", sa.String(100), nullable=False, index=True),
)

# the conductor's ledger: how far each subscriber of the settings file has been sent the outbox
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("subscriber", sa.String(100), primary_key=True),
    sa.Column("cursor", Id, nullable=False, server_default="0"),  # every event <= it was handled
    sa.Column("gaps", Json, nullable=False),  # [id, first seen]: ids below cursor not yet seen
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),  # tries in a row
    sa.Column("next_try_at", sa.Float, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("sent", Id, nullable=False, server_default="0"),  # notifications delivered
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# batches a subscriber refused max_attempts times: kept for people to look at and resend
parked_notifications = sa.Table(
    "parked_notifications",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("subscriber", sa.String(100), nullable=False, index=True),
    sa.Column("event_ids", Json, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# one row per hpo work (a loop's hpo work: one per iteration); its segments share it
studies = sa.Table(
    "studies",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("workflow_id", Id, sa.ForeignKey("workflows.id"), nullable=False, index=True),
    sa.Column("work_id", Id, sa.ForeignKey("works.id"), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("common", Json, nullable=False),  # the work's bound parameters: every trial's args
    sa.Column("segments", Json, nullable=False),  # per segment: stopped?, its generator job
    sa.Column("summary", Json, nullable=True),  # best trials and counts, once it ended
    # the HPO agent looks at a study while wake_seq > seen_seq, or once due_at has passed
    sa.Column("wake_seq", sa.Integer, nullable=False, server_default="1"),
    sa.Column("seen_seq", sa.Integer, nullable=False, server_default="0"),
    sa.Column("due_at", sa.Float, nullable=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
)

# the points of a study: each a job of the hpo work, or (pull mode) handed to a worker
trials = sa.Table(
    "trials",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("study_id", Id, sa.ForeignKey("studies.id"), nullable=False),
    sa.Column("segment", sa.String(64), nullable=False, server_default=""),
    sa.Column("number", sa.Integer, nullable=False),  # 0, 1, ... within its segment
    sa.Column("job_id", Id, nullable=True, index=True),
    sa.Column("status", sa.String(12), nullable=False),  # waiting|running|complete|pruned|failed
    sa.Column("params", Json, nullable=False),
    sa.Column("values", Json, nullable=True),  # objective values, once complete
    sa.Column("result", Json, nullable=True),  # what the payload returned or reported
    sa.Column("intermediate", Json, nullable=False),  # {"step": value} reported while running
    sa.Column("system", Json, nullable=False),  # the generator's and pruner's own notes
    sa.Column("worker", sa.String(200), nullable=True),  # pull mode: who fetched it
    sa.Column("lease_until", sa.Float, nullable=True),  # pull mode: offered again after this
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.UniqueConstraint("study_id", "segment", "number"),
    sa.Index("ix_trials_study_status", "study_id", "status"),
)
# the `db` event bus (bus/db.py): a wake-up signal per row, read by every agent process and
# deleted after a minute; never part of a workflow's history (that is `events`)
bus_events = sa.Table(
    "bus_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(40), nullable=False),
    sa.Column("origin", sa.String(32), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# limits and fair-share weights (store/quotas.py): one row per subject, executor and limit;
# ``executor`` '' means on every executor
quotas = sa.Table(
    "quotas",
    metadata,
    sa.Column("kind", sa.String(12), primary_key=True),  # user, group, executor
    sa.Column("subject", sa.String(200), primary_key=True),
    sa.Column("executor", sa.String(100), primary_key=True, server_default=""),
    sa.Column("quota", sa.String(40), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# fair share: each user's decayed usage of slots (an average of its jobs in flight, in slots)
share_usage = sa.Table(
    "share_usage",
    metadata,
    sa.Column("owner", sa.String(200), primary_key=True),
    sa.Column("usage", sa.Float, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("running", sa.Integer, nullable=False),  # its jobs in flight since ``at``
)

# the bytes of job results (JSON text as stored) each workflow holds, for the result_bytes
# quota (store/quotas.py): the recording of results adds to it in the same transaction, in
# one of a few shards per workflow so that carriers recording results of one workflow at
# once seldom wait for each other's row
result_usage = sa.Table(
    "result_usage",
    metadata,
    sa.Column("workflow_id", Id, primary_key=True, autoincrement=False),
    sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
)
