"""Orchid workers: ``orchid worker`` leases a worker queue's jobs from a server over HTTPS
and runs them with the local executor (docs/architecture.md, "Orchid workers")."""

from orchid.worker.loop import Lessor, Worker, WorkerOptions

__all__ = ["Lessor", "Worker", "WorkerOptions"]
