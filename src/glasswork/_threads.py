"""A small pool of threads that runs blocking calls for asyncio code (`AsyncJobService`'s sends).

Why not `concurrent.futures.ThreadPoolExecutor` with `asyncio.wrap_future`:

- Handing a call over costs the loop one `loop.create_future()` and one
  `SimpleQueue.put` (about 2 µs), against about 30 µs for the executor's
  locks, its `Future` and the chained asyncio future. A burst of 200
  enqueues spends that 200 times in one loop iteration, and busy sender
  threads stretch every microsecond of it by competing for the GIL.
- Every thread starts when the pool is made. The executor starts one per
  `submit` while none is idle, and each start waits, on the loop, for a new
  thread that competes with the busy ones (milliseconds each).
- A result whose caller was cancelled reaches `late` on the loop, in the
  callback that would have completed the caller.

The threads are daemons, so a pool never holds the interpreter open;
`aclose()` waits for every call handed over, and a pool dropped without it
stops its threads once their calls are done.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Generic, TypeAlias, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = ["Late", "ThreadPool"]

T = TypeVar("T")

Late: TypeAlias = Callable[[object, "BaseException | None"], None]
"""Called on the loop with `(result, error)` of a call that ran although its caller was cancelled."""

_log: Final = logging.getLogger("glasswork.service")


class _Call(Generic[T]):
    """One blocking call, and where its outcome goes."""

    __slots__ = ("call", "future", "late", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[T],
        call: Callable[[], T],
        late: Late | None,
    ) -> None:
        self.loop = loop
        self.future = future
        self.call = call
        self.late = late

    def run(self) -> None:
        """Run the call in this thread (unless its caller is gone) and hand the outcome to the loop."""
        # Read without the loop's help: a cancel that lands just after this check
        # lets the call run, and its outcome then goes to `late`, as for a call
        # cancelled while running.
        if self.future.cancelled():
            return
        result: T | None = None
        error: BaseException | None = None
        try:
            result = self.call()
        except BaseException as exc:  # noqa: BLE001  # raised to the caller, on the loop
            error = exc
        try:
            self.loop.call_soon_threadsafe(self._settle, result, error)
        except RuntimeError:  # the loop is closed: its caller is gone
            _log.warning(
                "a send %s after its event loop closed; on_enqueued was not called",
                "failed" if error is not None else "finished",
            )

    def _settle(self, result: T | None, error: BaseException | None) -> None:
        """On the loop: complete the caller's future, or tell `late` when the caller was cancelled."""
        if self.future.cancelled():
            if self.late is not None:
                self.late(result, error)
        elif error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)  # type: ignore[arg-type]  # no error: `call` returned a T


class _Stop:
    """Tells one thread to end, then `stopped` (on the loop) that it has."""

    __slots__ = ("loop", "stopped")

    def __init__(self, loop: asyncio.AbstractEventLoop, stopped: asyncio.Future[None]) -> None:
        self.loop = loop
        self.stopped = stopped

    def run(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self.loop.call_soon_threadsafe(_resolve, self.stopped)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_Work: TypeAlias = "_Call[object] | _Stop | None"


def _serve(work: queue.SimpleQueue[_Work]) -> None:
    """A thread's life: run what comes, until a `_Stop` or `None`."""
    while True:
        item = work.get()
        if item is None:
            return
        item.run()
        if isinstance(item, _Stop):
            return
        del item  # drop the call's result and error before waiting for the next


def _drop(work: queue.SimpleQueue[_Work], size: int) -> None:
    for _ in range(size):
        work.put(None)


class ThreadPool:
    """`size` daemon threads, all started now, running calls handed over by event loops.

    Args:
        size: The number of threads (at most that many calls run at once).
        name: Threads are named `name_0`, `name_1`, ...
    """

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.pid = os.getpid()
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._closed = False
        weakref.finalize(self, _drop, self._work, size)  # first: also ends the threads of a failed start
        for n in range(size):
            threading.Thread(target=_serve, args=(self._work,), name=f"{name}_{n}", daemon=True).start()

    def submit(
        self, loop: asyncio.AbstractEventLoop, call: Callable[[], T], late: Late | None
    ) -> asyncio.Future[T]:
        """Hand `call` to a thread; its outcome completes the returned future, on `loop`.

        Cancelling the future before a thread takes the call drops it; after,
        the call finishes and `late(result, error)` is called on the loop.

        Raises:
            RuntimeError: The pool is closed.
        """
        if self._closed:
            msg = "the thread pool is closed"
            raise RuntimeError(msg)
        future: asyncio.Future[T] = loop.create_future()
        self._work.put(_Call(loop, future, call, late))  # type: ignore[arg-type]  # the queue holds calls of any T
        return future

    async def aclose(self) -> None:
        """Refuse new calls, and wait (without blocking the loop) until every call handed over has run.

        Only the first call waits; in a child of a fork, whose copy of the pool has no threads, none does.
        """
        import asyncio  # noqa: PLC0415  # loaded already by whoever awaits this

        if self._closed or self.pid != os.getpid():
            self._closed = True
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        stops = [loop.create_future() for _ in range(self.size)]
        for stopped in stops:
            self._work.put(_Stop(loop, stopped))
        await asyncio.gather(*stops)
