"""Every exception glasswork defines, under one root.

```
GlassworkError
├── TransientJobError          a job failed, try again (retry_after optional)
├── PermanentJobError          a job failed, retrying cannot help
│   ├── InvalidJobPayloadError the payload does not match the job's type
│   └── MalformedMessageError  the body is not a glasswork job message (poison)
├── RetryExhaustedError        the last attempt failed (cause = the last error)
├── PayloadTooLargeError       the encoded message is over the size limit
├── ConfigurationError         a module tree, option or service is wrong
│   └── ServiceError           a service factory raised at bootstrap
├── UnknownJobError            no job of that name is registered
├── InvalidEventError          a Lambda event glasswork cannot run
├── InvalidQueueURLError       a queue URL no driver understands
└── DriverError                a queue backend failed (cause = the vendor error)
    ├── QueueNotFoundError     a queue name or URL the driver does not know
    ├── ThrottledError         the backend asked us to slow down (retriable)
    └── BatchEnqueueError      some entries of an enqueue_batch failed
```

Jobs raise `TransientJobError` and `PermanentJobError` (or any other exception,
which counts as transient). Everything else is raised by glasswork itself, with
vendor errors (botocore, sqlite3, redis) attached as `__cause__`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from glasswork._wire import EnqueueResult, JobMessage

__all__ = [
    "BatchEnqueueError",
    "ConfigurationError",
    "DriverError",
    "GlassworkError",
    "InvalidEventError",
    "InvalidJobPayloadError",
    "InvalidQueueURLError",
    "MalformedMessageError",
    "PayloadTooLargeError",
    "PermanentJobError",
    "QueueNotFoundError",
    "RetryExhaustedError",
    "ServiceError",
    "ThrottledError",
    "TransientJobError",
    "UnknownJobError",
]


class GlassworkError(Exception):
    """The root of every exception glasswork defines."""


class TransientJobError(GlassworkError):
    """A job failed in a way that may succeed on a later attempt.

    Args:
        message: What went wrong.
        retry_after: When to try again, in seconds or as a `timedelta`;
            overrides the job's backoff for this attempt. Infinity (or
            anything above 12 hours) means 12 hours, SQS's longest delay.

    Raises:
        ValueError: `retry_after` is negative or NaN.
    """

    def __init__(self, message: str = "", *, retry_after: float | timedelta | None = None) -> None:
        super().__init__(message)
        if isinstance(retry_after, timedelta):
            retry_after = retry_after.total_seconds()
        if retry_after is not None and not retry_after >= 0:  # also refuses NaN
            msg = f"retry_after must be a number of seconds >= 0, got {retry_after}"
            raise ValueError(msg)
        self.retry_after: float | None = retry_after


class PermanentJobError(GlassworkError):
    """A job failed in a way no retry can fix: dead-letter (or discard) it now."""


class InvalidJobPayloadError(PermanentJobError):
    """The payload does not match the job's declared payload type."""

    def __init__(self, message: str, *, job_name: str) -> None:
        super().__init__(message)
        self.job_name = job_name


class MalformedMessageError(PermanentJobError):
    """The message body is not JSON or not a glasswork job message (a poison message)."""


class RetryExhaustedError(GlassworkError):
    """The job failed on its last allowed attempt; `__cause__` is the last error."""

    def __init__(self, *, job_name: str, attempt_number: int, max_attempts: int) -> None:
        super().__init__(f"job {job_name!r} failed on attempt {attempt_number} of {max_attempts}")
        self.job_name = job_name
        self.attempt_number = attempt_number
        self.max_attempts = max_attempts

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_exhausted, (self.job_name, self.attempt_number, self.max_attempts))


def _rebuild_exhausted(job_name: str, attempt_number: int, max_attempts: int) -> RetryExhaustedError:
    return RetryExhaustedError(job_name=job_name, attempt_number=attempt_number, max_attempts=max_attempts)


class PayloadTooLargeError(GlassworkError):
    """The encoded message is larger than the queue accepts."""

    def __init__(self, *, actual_size: int, max_size: int, job_name: str = "") -> None:
        what = f"job {job_name!r} message" if job_name else "message"
        super().__init__(f"{what} is {actual_size} bytes, over the limit of {max_size} bytes")
        self.actual_size = actual_size
        self.max_size = max_size
        self.job_name = job_name


class ConfigurationError(GlassworkError):
    """A module tree, an option or a service is set up wrong."""


class ServiceError(ConfigurationError):
    """A service factory raised while the worker was bootstrapping."""


class UnknownJobError(GlassworkError):
    """No job of that name is registered."""

    def __init__(self, job_name: str, *, known: Sequence[str] = ()) -> None:
        hint = f" (known: {', '.join(sorted(known))})" if known else ""
        super().__init__(f"unknown job {job_name!r}{hint}")
        self.job_name = job_name


class InvalidEventError(GlassworkError):
    """A Lambda event that is neither an SQS batch nor a job invocation."""


class InvalidQueueURLError(GlassworkError):
    """A queue URL that no driver understands."""


class DriverError(GlassworkError):
    """A queue backend failed; the vendor's exception is `__cause__`."""


class QueueNotFoundError(DriverError):
    """A queue name or URL the driver does not know."""


class ThrottledError(DriverError):
    """The backend throttled the request; retrying later is expected to work."""


class BatchEnqueueError(DriverError):
    """Some entries of an `enqueue_batch` call failed after one retry.

    Attributes:
        succeeded: Results of the entries that were sent, in input order.
        failed: `(message, error)` for each entry that was not sent.
    """

    def __init__(
        self,
        *,
        succeeded: Sequence[EnqueueResult],
        failed: Sequence[tuple[JobMessage, GlassworkError]],
    ) -> None:
        names = ", ".join(f"{m.job_id} ({e})" for m, e in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        super().__init__(f"{len(failed)} of {len(succeeded) + len(failed)} jobs not enqueued: {names}{more}")
        self.succeeded = list(succeeded)
        self.failed = list(failed)
