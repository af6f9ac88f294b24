"""The enqueue side for asyncio apps: `AsyncJobService` never blocks the running event loop.

It builds and checks messages with the code `JobService` uses (`glasswork._enqueue`),
so both accept and refuse the same payloads with the same errors, then sends:

- through the driver's native `enqueue_async` / `enqueue_batch_async` when it
  has them (`glasswork.drivers.base.AsyncQueueDriver`);
- otherwise by running the driver's blocking call in a pool of threads the
  service owns (`glasswork._threads.ThreadPool`, made on the first such send).
  The pool is bounded (`max_workers`, default 10: botocore's default
  connection pool per client, so no request waits for or discards a
  connection) and separate from the loop's default executor, so a burst of
  enqueues waits its turn in the pool's queue instead of starving
  `loop.getaddrinfo`, `asyncio.to_thread` and the rest of the app.
  `aclose()` (or `async with`) waits for the sends in it and stops its threads.

`asyncio` is imported on first use, so `import glasswork` stays as light as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Final, TypeVar, overload

from glasswork._enqueue import (
    EnqueuedHook,
    batch_failed,
    batch_messages,
    check_driver,
    checked_message,
    delay_until,
    enqueue_failed,
    notify,
    send_many,
    send_one,
    sent_pairs,
    utcnow,
)
from glasswork._jobs import Job
from glasswork._runtime import new_id
from glasswork._wire import MAX_MESSAGE_BYTES, EnqueueResult, JobMessage
from glasswork.core import Duration
from glasswork.drivers.base import AsyncQueueDriver, QueueDriver
from glasswork.errors import BatchEnqueueError, ConfigurationError, GlassworkError
from glasswork.tracing import Tracing

if TYPE_CHECKING:
    from glasswork._threads import ThreadPool

__all__ = ["DEFAULT_MAX_WORKERS", "POOL_THREAD_PREFIX", "AsyncJobService"]

P = TypeVar("P")
T = TypeVar("T")

DEFAULT_MAX_WORKERS: Final = 10
"""Threads per service: botocore's default `max_pool_connections`; raise both together."""

POOL_THREAD_PREFIX: Final = "glasswork-enqueue"
"""The name of the pool's threads (`glasswork-enqueue_0`, ...), as logs and debuggers show them."""


class AsyncJobService:
    """Enqueue jobs from async code without blocking the event loop.

    The same methods as `JobService`, awaited (`message` stays a plain call: it
    only builds and checks). Payloads are validated on the loop, before
    anything is handed to a thread, with `JobService`'s own code: the same
    `InvalidJobPayloadError`, `PayloadTooLargeError` and `ValueError`.

    A driver without native async methods is called in a thread pool owned
    by the service (at most `max_workers` calls at a time; the rest wait their
    turn in the pool's queue, off the loop). Each call (one `enqueue`, or one
    whole `enqueue_batch`) is one unit of work in the pool. Cancelling the
    await of a call whose unit has not started drops it: nothing is sent. A
    unit already running cannot be stopped: it may still send the job after
    the caller saw `CancelledError`, and `on_enqueued` is then still called,
    on the loop, for what was sent. A native async driver is cancelled as its
    own coroutine is.

    `on_enqueued`, `clock` and `new_id` are called on the event loop's thread,
    never in the pool.

    Args:
        driver: Where messages go (`SQSQueueDriver`, `SQLiteQueueDriver`, `MockQueueDriver`, ...).
        default_queue: The queue for jobs defined without `queue=`; `None`
            leaves the choice to the driver's default.
        max_payload_bytes: The largest message accepted (SQS: 1 MiB).
        on_enqueued: Called with `(message, result)` after each job is sent; an
            exception it raises is logged, not raised.
        clock: Returns the current time (timezone-aware); for tests.
        new_id: Makes a job id for jobs without a `unique` key; for tests.
        tracing: Opens a span around each send and puts its context in the
            message (`glasswork.otel.OpenTelemetryTracing`, the `otel` extra).
        max_workers: Threads in the service's pool (made on the first blocking
            send). For the SQS driver, give its boto3 client at least as many
            connections (`Config(max_pool_connections=...)`).

    Raises:
        ConfigurationError: `driver` is not a driver (no `name` and `enqueue`).
        ValueError: `max_workers` is below 1.
    """

    def __init__(
        self,
        driver: QueueDriver,
        *,
        default_queue: str | None = None,
        max_payload_bytes: int = MAX_MESSAGE_BYTES,
        on_enqueued: EnqueuedHook | None = None,
        clock: Callable[[], datetime] = utcnow,
        new_id: Callable[[], str] = new_id,
        max_workers: int = DEFAULT_MAX_WORKERS,
        tracing: Tracing | None = None,
    ) -> None:
        check_driver(driver, "AsyncJobService")
        if max_workers < 1:
            msg = f"max_workers must be >= 1, got {max_workers}"
            raise ValueError(msg)
        self._driver = driver
        self._native = driver if isinstance(driver, AsyncQueueDriver) else None  # checked once: it is slow
        self.default_queue = default_queue
        self.max_payload_bytes = max_payload_bytes
        self.on_enqueued = on_enqueued
        self.max_workers = max_workers
        self.tracing = tracing
        self._clock = clock
        self._new_id = new_id
        self._threads: ThreadPool | None = None
        self._closed = False

    @property
    def driver(self) -> QueueDriver:
        """The driver given at construction (fixed for the life of the service)."""
        return self._driver

    @property
    def closed(self) -> bool:
        """Whether `aclose()` was called."""
        return self._closed

    async def __aenter__(self) -> AsyncJobService:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Refuse new sends, wait for those already in the pool, and stop its threads.

        Calling it again does nothing. The driver is not closed: it is yours.
        """
        self._closed = True
        threads, self._threads = self._threads, None
        if threads is not None:
            await threads.aclose()

    def message(
        self,
        job: Job[P],
        payload: P,
        *,
        delay: Duration | None = None,
        metadata: Mapping[str, str] | None = None,
        queue: str | None = None,
    ) -> JobMessage:
        """Build and check the message `enqueue` would send, without sending it.

        A plain call, not a coroutine: it does no I/O, and a batch that mixes
        jobs is built with it (`await service.enqueue_batch([service.message(...), ...])`).

        Raises:
            InvalidJobPayloadError: The payload does not fit the job's type.
            PayloadTooLargeError: The message is over `max_payload_bytes`.
            ValueError: A negative delay, one over `MAX_ENQUEUE_DELAY_SECONDS`
                (365 days), or a `unique` key that is not a non-empty str.
        """
        return checked_message(
            job,
            payload,
            delay=delay,
            metadata=metadata,
            queue=queue,
            default_queue=self.default_queue,
            max_payload_bytes=self.max_payload_bytes,
            clock=self._clock,
            new_id=self._new_id,
        )

    async def enqueue(
        self,
        job: Job[P],
        payload: P,
        *,
        delay: Duration | None = None,
        metadata: Mapping[str, str] | None = None,
        queue: str | None = None,
    ) -> EnqueueResult:
        """Enqueue one job.

        Args:
            job: The job.
            payload: Its payload, of the job's payload type.
            delay: Seconds (or a `timedelta`) before it may run.
            metadata: String pairs carried with the job.
            queue: Overrides the job's and the service's queue.

        Returns:
            The driver's message id and the job id.

        Raises:
            InvalidJobPayloadError: The payload does not fit the job's type.
            PayloadTooLargeError: The message is too large.
            ValueError: A negative delay, one over `MAX_ENQUEUE_DELAY_SECONDS`
                (365 days), or a `unique` key that is not a non-empty str.
            DriverError: The driver could not send it.
            ConfigurationError: The service is closed, or the driver cannot
                send the message as asked (see `JobService.enqueue`).
        """
        self._check_open()
        message = self.message(job, payload, delay=delay, metadata=metadata, queue=queue)
        tracing = self.tracing
        if tracing is not None:
            with tracing.publish(self._driver, [message]) as span:
                message = span.messages[0]
                result = await self._send_one(message)
                span.sent([result])
        else:
            result = await self._send_one(message)
        notify(self.on_enqueued, message, result)
        return result

    async def _send_one(self, message: JobMessage) -> EnqueueResult:
        native, driver = self._native, self._driver
        if native is not None:
            try:
                result = await native.enqueue_async(message)
            except GlassworkError:
                raise
            except Exception as exc:
                raise enqueue_failed(native, message.job_name, exc) from exc
        else:
            result = await self._in_thread([message], lambda: send_one(driver, message))
        return result

    async def enqueue_in(
        self,
        job: Job[P],
        payload: P,
        delay: Duration,
        *,
        metadata: Mapping[str, str] | None = None,
        queue: str | None = None,
    ) -> EnqueueResult:
        """Enqueue a job to run after `delay` (seconds or `timedelta`)."""
        return await self.enqueue(job, payload, delay=delay, metadata=metadata, queue=queue)

    async def enqueue_at(
        self,
        job: Job[P],
        payload: P,
        at: datetime,
        *,
        metadata: Mapping[str, str] | None = None,
        queue: str | None = None,
    ) -> EnqueueResult:
        """Enqueue a job to run at `at` (a naive time is taken as UTC; a past time runs now)."""
        delay = delay_until(at, self._clock())
        return await self.enqueue(job, payload, delay=delay, metadata=metadata, queue=queue)

    @overload
    async def enqueue_batch(
        self, items: Iterable[tuple[Job[P], P]], *, metadata: Mapping[str, str] | None = None
    ) -> list[EnqueueResult]: ...

    @overload
    async def enqueue_batch(
        self, items: Iterable[JobMessage], *, metadata: Mapping[str, str] | None = None
    ) -> list[EnqueueResult]: ...

    async def enqueue_batch(
        self,
        items: Iterable[tuple[Job[P], P]] | Iterable[JobMessage],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> list[EnqueueResult]:
        """Enqueue many jobs, through the driver's `enqueue_batch` when it has one.

        Every item is validated before anything is sent. The driver gets the
        whole batch in one call, as from `JobService` (SQS: `SendMessageBatch`
        requests of 10, one after the other, in one pool thread; a driver
        without `enqueue_batch`: one `enqueue` per message, in order).

        Args:
            items: `(job, payload)` pairs of one job type, or messages built with `message`.
            metadata: String pairs added to each pair's message (not to prebuilt messages).

        Returns:
            One result per item, in order.

        Raises:
            InvalidJobPayloadError, PayloadTooLargeError, ValueError: An item is
                invalid, as for `message` (nothing was sent).
            BatchEnqueueError: Some items were not sent; it lists them and the results of the rest.
            DriverError: The driver's batch call failed as a whole (nothing was sent).
            ConfigurationError: The service is closed.
        """
        self._check_open()
        messages = batch_messages(items, lambda job, payload: self.message(job, payload, metadata=metadata))
        if not messages:
            return []
        try:
            if self.tracing is None:
                results = await self._send_many(messages)
            else:
                with self.tracing.publish(self._driver, messages) as span:
                    messages = list(span.messages)
                    results = await self._send_many(messages)
                    span.sent(results)
        except BatchEnqueueError as partial:
            self._notify_partial(messages, partial)
            raise
        self._notify_all(messages, results)
        return results

    async def _send_many(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        native, driver = self._native, self._driver
        if native is not None:
            return await _native_batch(native, messages)
        return await self._in_thread(messages, lambda: send_many(driver, messages))

    def _notify_all(self, messages: Sequence[JobMessage], results: Sequence[EnqueueResult]) -> None:
        for message, result in zip(messages, results, strict=True):
            notify(self.on_enqueued, message, result)

    def _notify_partial(self, messages: Sequence[JobMessage], partial: BatchEnqueueError) -> None:
        for message, result in sent_pairs(messages, partial):
            notify(self.on_enqueued, message, result)

    def _check_open(self) -> None:
        if self._closed:
            msg = "this AsyncJobService is closed (aclose() was called); make a new one to enqueue"
            raise ConfigurationError(msg)

    def _pool(self) -> ThreadPool:
        self._check_open()
        if self._threads is None or self._threads.pid != os.getpid():  # none yet, or made before a fork
            from glasswork._threads import ThreadPool  # noqa: PLC0415  # off the import path

            self._threads = ThreadPool(self.max_workers, POOL_THREAD_PREFIX)
        return self._threads

    async def _in_thread(self, messages: Sequence[JobMessage], call: Callable[[], T]) -> T:
        """Run the blocking `call` (sending `messages`) in the pool; await it without blocking the loop.

        When the caller is cancelled while `call` runs, `call` still finishes,
        and `on_enqueued` then hears, on the loop, of the jobs it sent.
        """
        import asyncio  # noqa: PLC0415  # off the import path of `import glasswork`

        def late(result: object, error: BaseException | None) -> None:
            self._notify_late(messages, result, error)

        future = self._pool().submit(asyncio.get_running_loop(), call, late)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # done, but this task was cancelled before resuming
                error = future.exception()
                late(None if error else future.result(), error)
            raise

    def _notify_late(
        self, messages: Sequence[JobMessage], result: object, error: BaseException | None
    ) -> None:
        if isinstance(error, BatchEnqueueError):
            self._notify_partial(messages, error)
        elif isinstance(result, EnqueueResult):
            self._notify_all(messages, [result])
        elif isinstance(result, list):
            self._notify_all(messages, result)


async def _native_batch(driver: AsyncQueueDriver, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
    try:
        return await driver.enqueue_batch_async(messages)
    except GlassworkError:
        raise
    except Exception as exc:
        raise batch_failed(driver, len(messages), exc) from exc
