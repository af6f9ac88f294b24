"""Small runtime helpers kept off the import path of `import glasswork`.

`asyncio` (with ssl, subprocess and concurrent.futures behind it), `inspect`
and `uuid` cost a third of glasswork's import time; a Lambda cold start pays
for them only when a module has async jobs or a job id is made.
"""

from __future__ import annotations

import atexit
import functools
import threading
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeGuard, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = ["is_async_callable", "is_awaitable", "new_id", "run_on_thread_loop", "thread_loop"]

T = TypeVar("T")

LOOP_RUNNING: str = (
    "glasswork runs async jobs and hooks on an event loop of its own, and an event loop is already "
    "running in this thread: from async code, await run_job_async(...), or call the worker in a thread "
    "(await asyncio.to_thread(...))"
)

_CO_COROUTINE = 0x80
_loops = threading.local()


def is_async_callable(fn: object) -> bool:
    """Whether calling `fn` returns a coroutine: an `async def`, or a partial or object wrapping one."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(fn, "__code__", None)
    if code is None:
        call = getattr(type(fn), "__call__", None)  # noqa: B004  # the callable object's own method
        code = getattr(call, "__code__", None)
    return code is not None and bool(code.co_flags & _CO_COROUTINE)


def is_awaitable(value: object) -> TypeGuard[Awaitable[object]]:
    """Whether `value` can be awaited (a coroutine or any object with `__await__`)."""
    return hasattr(type(value), "__await__")


def new_id() -> str:
    """A random UUID, as a string (the job id format of glasswork for TypeScript)."""
    import uuid  # noqa: PLC0415  # off the import path; cached after the first call

    return str(uuid.uuid4())


def thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop for async jobs, kept for the life of the process.

    Reusing one loop across warm invocations lets services hold loop-bound
    clients (an aiohttp session, say) from one batch to the next.
    """
    import asyncio  # noqa: PLC0415  # only modules with async jobs or hooks pay for it

    loop: asyncio.AbstractEventLoop | None = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
        atexit.register(loop.close)
    return loop


def run_on_thread_loop(awaitable: Awaitable[T]) -> T:
    """Run `awaitable` to its end on this thread's loop (`thread_loop`).

    Raises:
        RuntimeError: An event loop is already running in this thread (say, the
            worker was called from an `async def` test). The awaitable is closed
            first, so Python does not also warn that a coroutine was never awaited.
    """
    import asyncio  # noqa: PLC0415  # only modules with async jobs or hooks pay for it

    if asyncio._get_running_loop() is not None:
        close = getattr(awaitable, "close", None)
        if callable(close):
            close()
        raise RuntimeError(LOOP_RUNNING)
    return thread_loop().run_until_complete(_awaited(awaitable))


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
