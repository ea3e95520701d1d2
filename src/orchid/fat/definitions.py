"""The frozen definitions the decorators attach, checked when the decorator runs."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from orchid.fat.errors import UsageError

Side = Literal["client", "server"]
CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR = 0x20, 0x80, 0x200  # as in `inspect`
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,79}$")


@dataclass(frozen=True)
class Policy:
    """How each job of a task runs: where, with what, and how often it is tried."""

    executor: str = "local"
    cores: int = 1
    memory_mb: int | None = None
    gpus: int = 0
    walltime: float | None = None
    queue: str | None = None
    retries: int = 0
    retry_delay: float = 1.0
    env: Mapping[str, str] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskDefinition:
    name: str
    function: str  # module:qualname, for people and messages
    policy: Policy


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    function: str
    side: Side
    policy: Policy  # of the server-side job that runs the workflow function


def describe(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def check_function(fn: Any, decorator: str) -> None:
    from orchid.fat.decorators import Task, Workflow

    if isinstance(fn, Task | Workflow):
        raise UsageError(f"{describe(fn.fn)} is decorated twice: use one @task or @workflow")
    flags = getattr(getattr(fn, "__code__", None), "co_flags", 0)
    if isinstance(fn, type) or not callable(fn):
        raise UsageError(
            f"@{decorator} decorates a function; {fn!r} is not one. Write a function "
            "(`def name(...)`) and decorate it"
        )
    if flags & (CO_COROUTINE | CO_ASYNC_GENERATOR):
        raise UsageError(
            f"@{decorator} cannot decorate async function {describe(fn)}: jobs call plain "
            "functions. Write it with `def`, calling asyncio.run(...) inside if it needs to"
        )
    if flags & CO_GENERATOR:
        raise UsageError(
            f"@{decorator} cannot decorate generator {describe(fn)}: a job returns one "
            "value. Return a list instead of yielding"
        )


def check_name(name: str | None, fn: Callable[..., Any], decorator: str) -> str:
    chosen = name if name is not None else getattr(fn, "__name__", "")
    if not isinstance(chosen, str) or not NAME.match(chosen):
        raise UsageError(
            f"@{decorator}: {chosen!r} cannot name a work: use 1 to 80 letters, digits, _ "
            f"and -, starting with a letter or _ (pass name='...' to @{decorator})"
        )
    return chosen


def _patterns(value: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(p, str) for p in value):
        raise UsageError(f"{what} is a list of glob patterns like ['data/*']; got {value!r}")
    return tuple(value)


def make_policy(
    *,
    executor: str,
    cores: int,
    memory_mb: int | None,
    gpus: int,
    walltime: float | None,
    queue: str | None,
    retries: int,
    retry_delay: float,
    env: Mapping[str, str] | None,
    include: Sequence[str],
    exclude: Sequence[str],
    decorator: str,
) -> Policy:
    """A checked policy; UsageError naming the bad option and what it takes."""

    def bad(option: str, wants: str, got: Any) -> UsageError:
        return UsageError(f"@{decorator}({option}=...) takes {wants}; got {got!r}")

    if not isinstance(executor, str) or not NAME.match(executor):
        # which names exist is the settings file's business: checked when the work is added
        raise bad("executor", "an executor name (local, or one of the settings file)", executor)
    if type(cores) is not int or cores < 1:
        raise bad("cores", "a whole number of at least 1", cores)
    if memory_mb is not None and (type(memory_mb) is not int or memory_mb < 1):
        raise bad("memory_mb", "None or a whole number of MiB of at least 1", memory_mb)
    if type(gpus) is not int or gpus < 0:
        raise bad("gpus", "a whole number of at least 0", gpus)
    if walltime is not None and (not isinstance(walltime, int | float) or not walltime > 0):
        raise bad("walltime", "None or a number of seconds above 0", walltime)
    if queue is not None and not isinstance(queue, str):
        raise bad("queue", "None or a queue name", queue)
    if type(retries) is not int or not 0 <= retries <= 100:
        raise bad("retries", "a whole number from 0 to 100", retries)
    if not isinstance(retry_delay, int | float) or retry_delay < 0:
        raise bad("retry_delay", "a number of seconds of at least 0", retry_delay)
    env = dict(env or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise bad("env", "a mapping of text to text", env)
    return Policy(
        executor=executor,
        cores=cores,
        memory_mb=memory_mb,
        gpus=gpus,
        walltime=float(walltime) if walltime is not None else None,
        queue=queue,
        retries=retries,
        retry_delay=float(retry_delay),
        env=env,
        include=_patterns(include, "include"),
        exclude=_patterns(exclude, "exclude"),
    )
