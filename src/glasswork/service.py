"""The enqueue side: `JobService` validates a job's payload and hands it to a driver."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TypeVar, overload

from glasswork._enqueue import (
    EnqueuedHook,
    batch_messages,
    check_driver,
    checked_message,
    delay_until,
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
from glasswork.drivers.base import QueueDriver
from glasswork.errors import BatchEnqueueError
from glasswork.tracing import Tracing

__all__ = ["JobService"]

P = TypeVar("P")


class JobService:
    """Enqueue jobs through a driver.

    Every payload is checked against its job's type, and every message against
    the size limit, before anything is sent.

    Args:
        driver: Where messages go (`SQSQueueDriver`, `SQLiteQueueDriver`, `MockQueueDriver`, ...).
        default_queue: The queue for jobs defined without `queue=`; `None`
            leaves the choice to the driver's default.
        max_payload_bytes: The largest message accepted (SQS: 1 MiB; set it
            lower when the queue's `MaximumMessageSize` is lower).
        on_enqueued: Called with `(message, result)` after each job is sent; an
            exception it raises is logged, not raised.
        clock: Returns the current time (timezone-aware); for tests.
        new_id: Makes a job id for jobs without a `unique` key; for tests.
        tracing: Opens a span around each send and puts its context in the
            message (`glasswork.otel.OpenTelemetryTracing`, the `otel` extra).

    Raises:
        ConfigurationError: `driver` is not a driver (no `name` and `enqueue`).
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
        tracing: Tracing | None = None,
    ) -> None:
        check_driver(driver, "JobService")
        self.driver = driver
        self.default_queue = default_queue
        self.max_payload_bytes = max_payload_bytes
        self.on_enqueued = on_enqueued
        self.tracing = tracing
        self._clock = clock
        self._new_id = new_id

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

    def enqueue(
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
            ConfigurationError: The driver cannot send it as asked (SQS: a
                delay on a FIFO queue, or over 900 s without `scheduler_role_arn`).
            DriverError: The driver could not send it (`QueueNotFoundError`,
                `ThrottledError`, or another failure with the vendor error as
                `__cause__`).
        """
        message = self.message(job, payload, delay=delay, metadata=metadata, queue=queue)
        tracing = self.tracing
        if tracing is None:
            result = send_one(self.driver, message)
        else:
            with tracing.publish(self.driver, [message]) as span:
                message = span.messages[0]
                result = send_one(self.driver, message)
                span.sent([result])
        notify(self.on_enqueued, message, result)
        return result

    def enqueue_in(
        self,
        job: Job[P],
        payload: P,
        delay: Duration,
        *,
        metadata: Mapping[str, str] | None = None,
        queue: str | None = None,
    ) -> EnqueueResult:
        """Enqueue a job to run after `delay` (seconds or `timedelta`)."""
        return self.enqueue(job, payload, delay=delay, metadata=metadata, queue=queue)

    def enqueue_at(
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
        return self.enqueue(job, payload, delay=delay, metadata=metadata, queue=queue)

    @overload
    def enqueue_batch(
        self, items: Iterable[tuple[Job[P], P]], *, metadata: Mapping[str, str] | None = None
    ) -> list[EnqueueResult]: ...

    @overload
    def enqueue_batch(
        self, items: Iterable[JobMessage], *, metadata: Mapping[str, str] | None = None
    ) -> list[EnqueueResult]: ...

    def enqueue_batch(
        self,
        items: Iterable[tuple[Job[P], P]] | Iterable[JobMessage],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> list[EnqueueResult]:
        """Enqueue many jobs, through the driver's `enqueue_batch` when it has one.

        Every item is validated before anything is sent. Items are `(job,
        payload)` pairs of one job type, or messages built with `message(job,
        payload)`: the way to type-check a batch that mixes jobs, since each
        `message` call checks its own pair.

        Args:
            items: The jobs to send.
            metadata: String pairs added to each pair's message (not to prebuilt messages).

        Returns:
            One result per item, in order.

        Raises:
            InvalidJobPayloadError, PayloadTooLargeError, ValueError: An item is
                invalid, as for `message` (nothing was sent).
            BatchEnqueueError: Some items were not sent; it lists them and the results of the rest.
            DriverError: The driver's batch call failed as a whole (nothing was sent).
        """
        messages = batch_messages(items, lambda job, payload: self.message(job, payload, metadata=metadata))
        if not messages:
            return []
        try:
            if self.tracing is None:
                results = send_many(self.driver, messages)
            else:
                with self.tracing.publish(self.driver, messages) as span:
                    messages = list(span.messages)
                    results = send_many(self.driver, messages)
                    span.sent(results)
        except BatchEnqueueError as partial:
            for message, result in sent_pairs(messages, partial):
                notify(self.on_enqueued, message, result)
            raise
        for message, result in zip(messages, results, strict=True):
            notify(self.on_enqueued, message, result)
        return results
