"""The enqueue side: `JobService` validates a job's payload and hands it to a driver."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Final, TypeVar, overload

import msgspec

from glasswork._jobs import Job, build_message
from glasswork._runtime import new_id
from glasswork._wire import (
    MAX_MESSAGE_BYTES,
    EnqueueResult,
    JobMessage,
    delay_problem,
    encode_message,
)
from glasswork.core import Duration, to_seconds
from glasswork.drivers.base import ATTR_JOB_NAME, BatchQueueDriver, QueueDriver
from glasswork.errors import (
    BatchEnqueueError,
    ConfigurationError,
    DriverError,
    GlassworkError,
    PayloadTooLargeError,
)

__all__ = ["JobService"]

P = TypeVar("P")

_log: Final = logging.getLogger("glasswork.service")


def _utcnow() -> datetime:
    return datetime.now(UTC)


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

    Raises:
        ConfigurationError: `driver` is not a driver (no `name` and `enqueue`).
    """

    def __init__(
        self,
        driver: QueueDriver,
        *,
        default_queue: str | None = None,
        max_payload_bytes: int = MAX_MESSAGE_BYTES,
        on_enqueued: Callable[[JobMessage, EnqueueResult], object] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        new_id: Callable[[], str] = new_id,
    ) -> None:
        _check_driver(driver)
        self.driver = driver
        self.default_queue = default_queue
        self.max_payload_bytes = max_payload_bytes
        self.on_enqueued = on_enqueued
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
            ValueError: A negative delay, or one over `MAX_ENQUEUE_DELAY_SECONDS` (365 days).
        """
        seconds = 0 if delay is None else to_seconds(delay)
        problem = delay_problem(seconds)
        if problem is not None:
            raise ValueError(problem)
        message = build_message(
            job,
            payload,
            job_id=self._new_id(),
            enqueued_at=self._clock(),
            queue=queue or job.queue or self.default_queue,
            metadata=metadata,
            delay_seconds=math.ceil(seconds),
        )
        if job.unique is not None:
            message = _with_job_id(message, job.unique(message.payload))  # type: ignore[arg-type]  # build_message converted it to P
        size = len(encode_message(message)) + len(ATTR_JOB_NAME) + len("String") + len(job.name.encode())
        if size > self.max_payload_bytes:
            raise PayloadTooLargeError(actual_size=size, max_size=self.max_payload_bytes, job_name=job.name)
        return message

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
            DriverError: The driver could not send it.
        """
        message = self.message(job, payload, delay=delay, metadata=metadata, queue=queue)
        try:
            result = self.driver.enqueue(message)
        except GlassworkError:
            raise
        except Exception as exc:
            msg = f"driver {self.driver.name!r} failed to enqueue job {job.name!r}: {exc}"
            raise DriverError(msg) from exc
        self._notify(message, result)
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
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        delay = max((at - self._clock()).total_seconds(), 0.0)
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
            InvalidJobPayloadError, PayloadTooLargeError: An item is invalid (nothing was sent).
            BatchEnqueueError: Some items were not sent; it lists them and the results of the rest.
        """
        messages = [
            item if isinstance(item, JobMessage) else self.message(item[0], item[1], metadata=metadata)
            for item in items
        ]
        if not messages:
            return []
        if isinstance(self.driver, BatchQueueDriver):
            try:
                results = self.driver.enqueue_batch(messages)
            except BatchEnqueueError as partial:
                by_id = {m.job_id: m for m in messages}
                for result in partial.succeeded:
                    if result.job_id in by_id:
                        self._notify(by_id[result.job_id], result)
                raise
            except GlassworkError:
                raise
            except Exception as exc:
                msg = f"driver {self.driver.name!r} failed to enqueue {len(messages)} jobs: {exc}"
                raise DriverError(msg) from exc
        else:
            results = self._enqueue_each(messages)
        for message, result in zip(messages, results, strict=True):
            self._notify(message, result)
        return results

    def _enqueue_each(self, messages: list[JobMessage]) -> list[EnqueueResult]:
        results: list[EnqueueResult] = []
        failed: list[tuple[JobMessage, GlassworkError]] = []
        for message in messages:
            try:
                results.append(self.driver.enqueue(message))
            except GlassworkError as exc:
                failed.append((message, exc))
            except Exception as exc:  # noqa: BLE001  # reported per entry below
                error = DriverError(f"driver {self.driver.name!r}: {exc}")
                error.__cause__ = exc
                failed.append((message, error))
        if failed:
            sent = [m for m in messages if all(m is not f for f, _ in failed)]
            for message, result in zip(sent, results, strict=True):
                self._notify(message, result)
            raise BatchEnqueueError(succeeded=results, failed=failed)
        return results

    def _notify(self, message: JobMessage, result: EnqueueResult) -> None:
        if self.on_enqueued is None:
            return
        try:
            self.on_enqueued(message, result)
        except Exception:  # noqa: BLE001  # logged with its traceback; the job was sent
            _log.exception("on_enqueued hook raised for job %s (%s)", message.job_name, result.job_id)


def _with_job_id(message: JobMessage, job_id: object) -> JobMessage:
    if not isinstance(job_id, str) or not job_id:
        msg = f"job {message.job_name!r}: unique() must return a non-empty str, got {job_id!r}"
        raise ValueError(msg)
    return msgspec.structs.replace(message, job_id=job_id)


def _check_driver(driver: object) -> None:
    """Refuse what is not a driver at construction, naming what it is instead."""
    if callable(getattr(driver, "enqueue", None)) and hasattr(driver, "name"):
        return
    kind = type(driver).__name__
    hint = ""
    if isinstance(driver, tuple):
        hint = (
            "; pass the driver itself (every driver's from_url returns the driver,"
            " with the URL's queue as its default_queue)"
        )
    msg = f"JobService needs a queue driver (with name and enqueue()), got a {kind}{hint}"
    raise ConfigurationError(msg)
