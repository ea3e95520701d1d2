"""``@task`` and ``@workflow``: plain Python functions that become works, jobs and workflows.

::

    from orchid import task, workflow

    @task(cores=1, retries=2)
    def simulate(seed: int, energy: float) -> dict: ...

    @workflow(name="scan")                 # on="server": the function runs as a job
    def scan(energies: list[float]) -> float:
        results = simulate.map([{"seed": s, "energy": e} for s in range(10) for e in energies])
        best = max(results.result(), key=lambda r: r["score"])
        return refine(best).result()

    scan([10.0, 20.0])                     # embedded engine, or the server of ORCHID_URL

Both decorators return typed wrappers (the function stays callable here with ``.local``)
with a frozen definition, checked when the decorator runs.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

from orchid.backend.base import Backend
from orchid.fat import runtime
from orchid.fat.definitions import (
    Side,
    TaskDefinition,
    WorkflowDefinition,
    check_function,
    check_name,
    describe,
    make_policy,
)
from orchid.fat.errors import UsageError
from orchid.fat.futures import MapFuture, TaskFuture

P = ParamSpec("P")
R = TypeVar("R")


def bind(
    fn: Callable[..., Any], name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """The call as ``{"args": [...], "kwargs": {...}}`` (by name where it can be), checked
    against the signature now, not in a job later."""
    import inspect

    sig = inspect.signature(fn)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as exc:
        shown = ", ".join(str(p).split(":")[0].split("=")[0] for p in sig.parameters.values())
        raise UsageError(f"{name}({shown}) cannot be called like this: {exc}") from None
    for key, value in bound.arguments.items():
        values = (
            value.values()
            if isinstance(value, dict)
            else value
            if isinstance(value, tuple | list)
            else [value]
        )
        if any(isinstance(v, TaskFuture | MapFuture) for v in values):
            raise UsageError(
                f"argument {key!r} of {name} is a future: pass its value, "
                f"{key}.result() (a job gets values, not futures)"
            )
    params = sig.parameters
    positional = any(
        p.kind == inspect.Parameter.POSITIONAL_ONLY
        or (p.kind == inspect.Parameter.VAR_POSITIONAL and bound.arguments.get(n))
        for n, p in params.items()
    )
    if positional:
        return {"args": list(bound.args), "kwargs": dict(bound.kwargs)}
    by_name: dict[str, Any] = {}
    for key, value in bound.arguments.items():
        if params[key].kind == inspect.Parameter.VAR_KEYWORD:
            by_name.update(value)
        elif params[key].kind != inspect.Parameter.VAR_POSITIONAL:
            by_name[key] = value
    return {"args": [], "kwargs": by_name}


class Task(Generic[P, R]):
    """A function whose calls run as jobs. Inside a workflow, ``task(...)`` adds a work of
    one job and returns its :class:`TaskFuture`; ``task.map([kwargs, ...])`` adds one work
    with a job per item. ``task.local(...)`` calls the function here, as it is."""

    def __init__(self, fn: Callable[P, R], definition: TaskDefinition) -> None:
        self.fn = fn
        self.definition = definition
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<task {self.definition.name} ({self.definition.function})>"

    def _run(self) -> runtime.Run | runtime.LocalRun:
        run = runtime.current()
        if run is None:
            name = self.definition.name
            raise UsageError(
                f"{name} is a @task: calling it adds a job to the running workflow, and no "
                f"@workflow is running. Call it from a @workflow function, or call "
                f"{name}.local(...) to run it here and now"
            )
        return run

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskFuture[R]:
        call = bind(self.fn, self.definition.name, args, kwargs)
        handle = self._run().call(self, [call])
        return TaskFuture(handle, 0)

    def map(self, kwargs_list: Iterable[Mapping[str, Any]]) -> MapFuture[R]:
        """One work with one job per mapping of keyword arguments; its results, in order."""
        if isinstance(kwargs_list, (Mapping, str | bytes)):
            raise UsageError(
                f"{self.definition.name}.map takes a list of keyword-argument dicts, "
                "like [{'seed': 1}, {'seed': 2}]"
            )
        calls = []
        for i, kwargs in enumerate(kwargs_list):
            if not isinstance(kwargs, Mapping):
                raise UsageError(
                    f"{self.definition.name}.map: item {i} is a {type(kwargs).__name__}, not "
                    "a dict of keyword arguments (for positional ones write {'name': value})"
                )
            calls.append(bind(self.fn, f"{self.definition.name} (item {i})", (), kwargs))
        run = self._run()
        return MapFuture(run.call(self, calls))

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the function here, in this process (tests, debugging)."""
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> Any:
        from orchid.fat import packaging

        ref = packaging.reference(self.fn)
        if ref is not None:
            module, qualname = ref.split(":")
            return (_task_by_reference, (module, qualname))
        return (Task, (self.fn, self.definition))


def _task_by_reference(module: str, qualname: str) -> Any:
    import importlib

    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class WorkflowRun(Generic[R]):
    """A workflow started with :meth:`Workflow.submit`: wait for its result."""

    def __init__(self, target: Callable[[WorkflowRun[R]], R]) -> None:
        self.workflow_id: int | None = None
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(target,), daemon=True)
        self._thread.start()

    def _main(self, target: Callable[[WorkflowRun[R]], R]) -> None:
        try:
            self._value = target(self)
        except BaseException as exc:
            self._error = exc
        finally:
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> R:
        if not self._done.wait(timeout):
            raise TimeoutError(f"workflow {self.workflow_id} did not end in time")
        if self._error is not None:
            raise self._error
        value: R = self._value
        return value


class Workflow(Generic[P, R]):
    """A function whose call is a workflow. ``workflow(...)`` submits it and returns what
    the function returns; ``.submit(...)`` returns a :class:`WorkflowRun` at once;
    ``.local(...)`` runs it here with every task call run here too."""

    def __init__(
        self, fn: Callable[P, R], definition: WorkflowDefinition, backend: Backend | None = None
    ) -> None:
        self.fn = fn
        self.definition = definition
        self.backend = backend
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        d = self.definition
        return f"<workflow {d.name} ({d.function}, {d.side} side)>"

    def options(self, *, on: Side | None = None, backend: Backend | None = None) -> Workflow[P, R]:
        """The same workflow run on another side, or against another Orchid."""
        definition = self.definition
        if on is not None:
            if on not in ("client", "server"):
                raise UsageError(f"on= takes 'client' or 'server'; got {on!r}")
            definition = WorkflowDefinition(
                definition.name, definition.function, on, definition.policy
            )
        return Workflow(self.fn, definition, backend or self.backend)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        from orchid.fat.launch import launch

        value: R = launch(self, bind(self.fn, self.definition.name, args, kwargs), None)
        return value

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> WorkflowRun[R]:
        from orchid.fat.launch import launch

        call = bind(self.fn, self.definition.name, args, kwargs)
        return WorkflowRun(lambda handle: launch(self, call, handle))

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here, every task call run here at once (tests, debugging)."""
        from orchid.fat.launch import call_function

        call = bind(self.fn, self.definition.name, args, kwargs)
        with runtime.running(runtime.LocalRun()):
            value: R = call_function(self.fn, call, self.definition.name)
            return value


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    name: str | None = None,
    executor: str = "local",
    cores: int = 1,
    memory_mb: int | None = None,
    gpus: int = 0,
    walltime: float | None = None,
    queue: str | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    env: Mapping[str, str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    executor: str = "local",
    cores: int = 1,
    memory_mb: int | None = None,
    gpus: int = 0,
    walltime: float | None = None,
    queue: str | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    env: Mapping[str, str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make a function a task: each call in a workflow runs as a job (see :class:`Task`).

    ``retries`` extra attempts per failed job, ``retry_delay`` seconds before the first
    (doubling); ``cores``/``memory_mb``/``gpus``/``walltime``/``queue`` what each job asks
    for; ``env`` its environment; ``include``/``exclude`` glob patterns choosing the files
    of the source tree shipped with it.
    """
    policy = make_policy(
        executor=executor,
        cores=cores,
        memory_mb=memory_mb,
        gpus=gpus,
        walltime=walltime,
        queue=queue,
        retries=retries,
        retry_delay=retry_delay,
        env=env,
        include=include,
        exclude=exclude,
        decorator="task",
    )

    def decorate(f: Callable[P, R]) -> Task[P, R]:
        check_function(f, "task")
        return Task(f, TaskDefinition(check_name(name, f, "task"), describe(f), policy))

    return decorate(fn) if fn is not None else decorate


@overload
def workflow(fn: Callable[P, R], /) -> Workflow[P, R]: ...


@overload
def workflow(
    *,
    name: str | None = None,
    on: Side = "client",
    retries: int = 0,
    env: Mapping[str, str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Callable[[Callable[P, R]], Workflow[P, R]]: ...


def workflow(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    on: Side = "client",
    retries: int = 0,
    env: Mapping[str, str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Workflow[P, R] | Callable[[Callable[P, R]], Workflow[P, R]]:
    """Make a function a workflow (see :class:`Workflow`).

    ``on="client"``: the function runs in the caller's process, which must stay up while
    it runs (a restarted caller picks up where it stopped). ``on="server"``: it runs as a
    lightweight job (``retries`` extra attempts), and the caller only waits for its result.
    """
    if on not in ("client", "server"):
        raise UsageError(f"@workflow(on=...) takes 'client' or 'server'; got {on!r}")
    policy = make_policy(
        executor="local",
        cores=1,
        memory_mb=None,
        gpus=0,
        walltime=None,
        queue=None,
        retries=retries,
        retry_delay=1.0,
        env=env,
        include=include,
        exclude=exclude,
        decorator="workflow",
    )

    def decorate(f: Callable[P, R]) -> Workflow[P, R]:
        check_function(f, "workflow")
        definition = WorkflowDefinition(check_name(name, f, "workflow"), describe(f), on, policy)
        return Workflow(f, definition)

    return decorate(fn) if fn is not None else decorate
