"""CPU-heavy request work off the event loop, in threads that never hold up a shutdown.

Parsing, validating, planning and writing a submission of 10^4 works, or unpacking a
gzip body, takes CPU for a while: on the event loop it would stall every other request
(``/ping`` included). Starlette's thread pool (anyio's) would take it off the loop, but
its threads are not daemons: a request still being worked on when the server is told to
stop keeps the process alive until it is done. These threads are daemons, so ``orchid
server`` stops within its graceful-shutdown timeout whatever its requests are doing (a
transaction cut short that way is rolled back by the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``func(*args, **kwargs)`` in a daemon thread of its own; its result or its exception.

    If the awaiting request is cancelled (the server stops), the thread runs on until
    ``func`` returns, or until the process exits, and its result is dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = context.run(func, *args, **kwargs)
        except BaseException as exc:  # handed to the awaiting request
            outcome: tuple[T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name="orchid-request", daemon=True).start()
    return await future
