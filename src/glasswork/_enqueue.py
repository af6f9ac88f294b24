"""What `JobService` and `AsyncJobService` share, so the two cannot drift apart.

- Building and checking a message (`checked_message`): payload conversion,
  the `unique` job id, the delay bound and the size limit. Pure, given the
  injected clock and id source.
- Translating driver failures (`enqueue_failed`, `batch_failed`,
  `entry_failed`) and settling a partly sent batch (`sent_pairs`). Pure.
- The two blocking driver calls (`send_one`, `send_many`): `JobService` makes
  them inline, `AsyncJobService` hands them to its thread pool.
- Calling the `on_enqueued` hook (`notify`), which logs what it raises.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias, TypeVar

from glasswork._jobs import Job, build_message
from glasswork._wire import EnqueueResult, JobMessage, delay_problem, encode_message
from glasswork.core import Duration, to_seconds
from glasswork.drivers.base import ATTR_JOB_NAME, BatchQueueDriver, QueueDriver
from glasswork.errors import (
    BatchEnqueueError,
    ConfigurationError,
    DriverError,
    GlassworkError,
    PayloadTooLargeError,
)

__all__ = [
    "EnqueuedHook",
    "batch_failed",
    "batch_messages",
    "check_driver",
    "checked_message",
    "delay_until",
    "enqueue_failed",
    "entry_failed",
    "notify",
    "send_many",
    "send_one",
    "sent_pairs",
    "utcnow",
]

P = TypeVar("P")

EnqueuedHook: TypeAlias = Callable[[JobMessage, EnqueueResult], object]
"""`on_enqueued(message, result)`, called after each job is sent."""

_log: Final = logging.getLogger("glasswork.service")


def utcnow() -> datetime:
    """The current time, timezone-aware (the services' default clock)."""
    return datetime.now(UTC)


def check_driver(driver: object, service: str) -> None:
    """Refuse what is not a driver at construction, naming what it is instead.

    Raises:
        ConfigurationError: `driver` has no `name` or no callable `enqueue`.
    """
    if callable(getattr(driver, "enqueue", None)) and hasattr(driver, "name"):
        return
    kind = type(driver).__name__
    hint = ""
    if isinstance(driver, tuple):
        hint = (
            "; pass the driver itself (every driver's from_url returns the driver,"
            " with the URL's queue as its default_queue)"
        )
    msg = f"{service} needs a queue driver (with name and enqueue()), got a {kind}{hint}"
    raise ConfigurationError(msg)


def checked_message(
    job: Job[P],
    payload: P,
    *,
    delay: Duration | None,
    metadata: Mapping[str, str] | None,
    queue: str | None,
    default_queue: str | None,
    max_payload_bytes: int,
    clock: Callable[[], datetime],
    new_id: Callable[[], str],
) -> JobMessage:
    """Validate `payload` against `job` and build the message to send.

    Raises:
        InvalidJobPayloadError: The payload does not fit the job's type.
        PayloadTooLargeError: The message is over `max_payload_bytes`.
        ValueError: A negative delay, one over 365 days, or a `unique` key that is not a non-empty str.
    """
    seconds = 0 if delay is None else to_seconds(delay)
    problem = delay_problem(seconds)
    if problem is not None:
        raise ValueError(problem)
    message = build_message(
        job,
        payload,
        job_id=new_id(),
        enqueued_at=clock(),
        queue=queue or job.queue or default_queue,
        metadata=metadata,
        delay_seconds=math.ceil(seconds),
    )  # the job id is the `unique` key of the converted payload (a pydantic model too), if any
    size = len(encode_message(message)) + len(ATTR_JOB_NAME) + len("String") + len(job.name.encode())
    if size > max_payload_bytes:
        raise PayloadTooLargeError(actual_size=size, max_size=max_payload_bytes, job_name=job.name)
    return message


def delay_until(at: datetime, now: datetime) -> float:
    """Seconds from `now` until `at` (a naive `at` is UTC; a past `at` gives 0)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max((at - now).total_seconds(), 0.0)


def batch_messages(
    items: Iterable[tuple[Job[Any], Any]] | Iterable[JobMessage],
    build: Callable[[Job[Any], Any], JobMessage],
) -> list[JobMessage]:
    """Every item as a checked message, in order: prebuilt messages as they are, pairs through `build`."""
    return [item if isinstance(item, JobMessage) else build(item[0], item[1]) for item in items]


def enqueue_failed(driver: QueueDriver, job_name: str, exc: Exception) -> DriverError:
    """The `DriverError` for a vendor error from sending one job (raise it `from exc`)."""
    return DriverError(f"driver {driver.name!r} failed to enqueue job {job_name!r}: {exc}")


def batch_failed(driver: QueueDriver, count: int, exc: Exception) -> DriverError:
    """The `DriverError` for a vendor error from a driver's whole batch call (raise it `from exc`)."""
    return DriverError(f"driver {driver.name!r} failed to enqueue {count} jobs: {exc}")


def entry_failed(driver: QueueDriver, exc: Exception) -> GlassworkError:
    """What a batch reports for a failed entry: a glasswork error as is, else wrapped with its cause."""
    if isinstance(exc, GlassworkError):
        return exc
    error = DriverError(f"driver {driver.name!r}: {exc}")
    error.__cause__ = exc
    return error


def send_one(driver: QueueDriver, message: JobMessage) -> EnqueueResult:
    """Send one message (blocking).

    Raises:
        GlassworkError: What the driver raised, when it is one.
        DriverError: Any other error, as its `__cause__`.
    """
    try:
        return driver.enqueue(message)
    except GlassworkError:
        raise
    except Exception as exc:
        raise enqueue_failed(driver, message.job_name, exc) from exc


def send_many(driver: QueueDriver, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
    """Send messages (blocking), with the driver's `enqueue_batch` when it has one, else one by one in order.

    Returns:
        One result per message, in order.

    Raises:
        BatchEnqueueError: Some messages were not sent; `sent_pairs` tells which were.
        GlassworkError: What the driver's `enqueue_batch` raised, when it is one.
        DriverError: Any other error from `enqueue_batch`, as its `__cause__`.
    """
    if isinstance(driver, BatchQueueDriver):
        try:
            return driver.enqueue_batch(messages)
        except GlassworkError:
            raise
        except Exception as exc:
            raise batch_failed(driver, len(messages), exc) from exc
    results: list[EnqueueResult] = []
    failed: list[tuple[JobMessage, GlassworkError]] = []
    for message in messages:
        try:
            results.append(driver.enqueue(message))
        except Exception as exc:  # noqa: BLE001  # reported per entry in BatchEnqueueError
            failed.append((message, entry_failed(driver, exc)))
    if failed:
        raise BatchEnqueueError(succeeded=results, failed=failed)
    return results


def sent_pairs(
    messages: Sequence[JobMessage], error: BatchEnqueueError
) -> list[tuple[JobMessage, EnqueueResult]]:
    """The `(message, result)` of each message of `messages` that `error` reports sent, in order.

    `error.succeeded` lists results in input order, so the messages not in
    `error.failed` pair with them one to one; a driver that reports otherwise
    is matched by job id.
    """
    failed = {id(message) for message, _ in error.failed}
    sent = [message for message in messages if id(message) not in failed]
    if len(sent) == len(error.succeeded) and all(
        message.job_id == result.job_id for message, result in zip(sent, error.succeeded, strict=True)
    ):
        return list(zip(sent, error.succeeded, strict=True))
    by_id = {message.job_id: message for message in messages}
    return [(by_id[result.job_id], result) for result in error.succeeded if result.job_id in by_id]


def notify(hook: EnqueuedHook | None, message: JobMessage, result: EnqueueResult) -> None:
    """Call `hook(message, result)`; what it raises is logged with its traceback, never raised."""
    if hook is None:
        return
    try:
        hook(message, result)
    except Exception:  # noqa: BLE001  # logged with its traceback; the job was sent
        _log.exception("on_enqueued hook raised for job %s (%s)", message.job_name, result.job_id)
