"""Workload systems that run jobs, behind the :class:`~orchid.executors.base.Executor` Protocol."""
