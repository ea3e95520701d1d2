"""Futures of task calls: ``.result(timeout)``, ``.done()``, and iteration as jobs finish.

A future is not its value: using it as one (``future["score"]``, ``future + 1``, ``if
future:``) raises at once, saying to call ``.result()``, instead of failing later with a
puzzling message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar, cast

from orchid.fat.errors import TaskFailed, UsageError

if TYPE_CHECKING:
    from orchid.fat.runtime import WorkHandle

R = TypeVar("R")


class _NotAValue:
    """Operators that mistake a future for its value raise a message that says what to do."""

    def _misuse(self, *_: Any) -> NoReturn:
        raise UsageError(
            f"{self!r} is a future, not its value: call .result() to wait for the value "
            "(for a map: .result() for the list, or iterate to get values as jobs finish)"
        )

    __float__ = __int__ = __index__ = __round__ = _misuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _misuse
    __truediv__ = __rtruediv__ = __lt__ = __le__ = __gt__ = __ge__ = _misuse
    __contains__ = __abs__ = __neg__ = _misuse


class TaskFuture(_NotAValue, Generic[R]):
    """The result of one job: one call of a task, or one item of a map."""

    def __init__(self, handle: WorkHandle, index: int) -> None:
        self._handle = handle
        self.index = index

    def __repr__(self) -> str:
        return f"<TaskFuture {self._handle.task}[{self.index}] of work {self._handle.name}>"

    def __iter__(self) -> Iterator[Any]:
        self._misuse()

    def __bool__(self) -> bool:  # noqa: PLE0304 - it never returns
        self._misuse()

    def __getitem__(self, _: Any) -> Any:
        self._misuse()

    def __len__(self) -> int:  # noqa: PLE0303 - it never returns
        self._misuse()

    def __reduce__(self) -> Any:
        raise UsageError(f"{self!r} cannot be sent to a job: pass its value, .result(), instead")

    @property
    def job_id(self) -> int | None:
        outcome = self._handle.outcome(self.index)
        return outcome.job_id if outcome else None

    def done(self) -> bool:
        """Whether the job has ended (succeeded or failed); never blocks long."""
        return self._handle.wait([self.index], 0.0)

    def result(self, timeout: float | None = None) -> R:
        """The task's return value, waiting up to ``timeout`` seconds (None: for ever).

        Raises TaskFailed (with the remote traceback) if the job failed, TimeoutError if it
        did not end in time.
        """
        return cast(R, self._handle.value(self.index, timeout))

    def exception(self, timeout: float | None = None) -> TaskFailed | None:
        """The failure of the job, or None if it succeeded (waits like :meth:`result`)."""
        try:
            self._handle.value(self.index, timeout)
        except TaskFailed as exc:
            return exc
        return None


class MapFuture(_NotAValue, Generic[R]):
    """The results of one work with one job per item: ``len()``, ``[i]``, ``.result()``,
    and iteration, which gives each value as its job finishes (completion order)."""

    def __init__(self, handle: WorkHandle) -> None:
        self._handle = handle
        self._futures = [TaskFuture[R](handle, i) for i in range(handle.size)]

    def __repr__(self) -> str:
        return f"<MapFuture {self._handle.task} x{self._handle.size} (work {self._handle.name})>"

    def __len__(self) -> int:
        return self._handle.size

    def __getitem__(self, index: int) -> TaskFuture[R]:
        return self._futures[index]

    def __reduce__(self) -> Any:
        raise UsageError(f"{self!r} cannot be sent to a job: pass .result() instead")

    def __bool__(self) -> bool:
        return self._handle.size > 0

    def done(self) -> bool:
        return self._handle.wait(range(self._handle.size), 0.0)

    def result(self, timeout: float | None = None) -> list[R]:
        """Every value, in the order of the items; TaskFailed for the first that failed."""
        self._handle.wait_all(range(self._handle.size), timeout)
        return [f.result(0) for f in self._futures]

    def as_completed(self, timeout: float | None = None) -> Iterator[TaskFuture[R]]:
        """Each item's future as its job ends; ``.index`` says which item it is."""
        for index in self._handle.completed(timeout):
            yield self._futures[index]

    def __iter__(self) -> Iterator[R]:
        for future in self.as_completed():
            yield future.result(0)
