"""The driver protocols: the only way glasswork touches a queue.

Three small sides, each a `typing.Protocol`, so a driver implements what it
supports and nothing more:

- `QueueDriver` (sending): `name` and `enqueue(message)`; optionally
  `enqueue_batch(messages)` (`BatchQueueDriver`), and optionally native
  `async def enqueue_async` / `enqueue_batch_async` (`AsyncQueueDriver`).
- `WorkerDriver` (what the Lambda handler needs): `dead_letter(record, info)`
  and `change_visibility(changes)`.
- `ConsumingDriver` (what the local poller needs): `receive`, `delete`, `counts`.
- `QueueAdmin` (what `glasswork stats` and `glasswork dlq` need).

Drivers raise `glasswork.errors.DriverError` (or a subclass) with the vendor
error as `__cause__`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol, runtime_checkable

import msgspec

from glasswork._wire import EnqueueResult, JobMessage, SQSRecord

__all__ = [
    "ATTR_ATTEMPT",
    "ATTR_ERROR_MESSAGE",
    "ATTR_ERROR_TYPE",
    "ATTR_JOB_NAME",
    "ATTR_REASON",
    "ATTR_SOURCE_QUEUE",
    "AsyncQueueDriver",
    "BatchQueueDriver",
    "ConsumingDriver",
    "DeadLetterEntry",
    "DeadLetterInfo",
    "QueueAdmin",
    "QueueCounts",
    "QueueDriver",
    "VisibilityChange",
    "VisibilityTimeoutSource",
    "WorkerDriver",
]

ATTR_JOB_NAME: Final = "JobName"
"""The message attribute carrying the job name (shared with glasswork for TypeScript)."""
ATTR_REASON: Final = "GlassworkReason"
ATTR_ERROR_TYPE: Final = "GlassworkErrorType"
ATTR_ERROR_MESSAGE: Final = "GlassworkErrorMessage"
ATTR_ATTEMPT: Final = "GlassworkAttempt"
ATTR_SOURCE_QUEUE: Final = "GlassworkSourceQueue"


class DeadLetterInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Why a record is dead-lettered; drivers store it beside the original body.

    Attributes:
        reason: A `DeadLetterReason` such as `"permanent_error"`.
        error_type: The error's class name.
        error_message: `str(error)`, cut to 1,000 characters.
        attempt: The attempt that failed.
        source_queue: The source queue's ARN (`eventSourceARN`).
        job_name: The job's name, when the body named one.
        job_id: The job's id, when known.
    """

    reason: str
    error_type: str
    error_message: str
    attempt: int
    source_queue: str
    job_name: str | None = None
    job_id: str | None = None


class VisibilityChange(msgspec.Struct, frozen=True, kw_only=True):
    """Hide a received message for `seconds` more (backoff before a retry).

    Attributes:
        message_id: The record's message id (to name it in errors).
        receipt_handle: The receipt handle of the receive to change.
        seconds: Seconds from now until the message is visible again.
        source_queue: The source queue's ARN (the record's `eventSourceARN`).
    """

    message_id: str
    receipt_handle: str
    seconds: int
    source_queue: str


class QueueCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Approximate message counts of one queue.

    Attributes:
        visible: Messages that a receive could get now.
        in_flight: Messages received and not yet deleted, hidden by their
            visibility timeout.
        delayed: Messages not received yet whose delay has not passed.
        dead: Messages in the queue's dead-letter queue (or table).
    """

    visible: int
    in_flight: int
    delayed: int
    dead: int

    @property
    def pending(self) -> int:
        """Messages still to be run: visible, delayed or in flight."""
        return self.visible + self.in_flight + self.delayed


class DeadLetterEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One message in a dead-letter queue, as `glasswork dlq list` shows it (`--json`: every field).

    Attributes:
        message_id: The message id in the dead-letter queue.
        body: The original body, in full.
        job_name: The job's name, when known.
        job_id: The job's id, when known.
        attempt: The attempt that failed (or the receive count at a redrive),
            when known.
        reason: Why (`"permanent_error"`, `"max_receive_count_exceeded"`,
            ...), when known: a message SQS's own `RedrivePolicy` moved has none.
        error_type: The error's class name, when known.
        error_message: The error's message (or why the redrive happened), when known.
    """

    message_id: str
    body: str
    job_name: str | None
    job_id: str | None
    attempt: int | None
    reason: str | None
    error_type: str | None = None
    error_message: str | None = None


class QueueDriver(Protocol):
    """The sending side: all a driver needs to accept jobs."""

    @property
    def name(self) -> str:
        """A short name for logs, such as `"sqs"` or `"sqlite"`."""
        ...

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        """Send one message; raise a `DriverError` when it was not sent."""
        ...


@runtime_checkable
class BatchQueueDriver(QueueDriver, Protocol):
    """A sending side that can send many messages per request."""

    def enqueue_batch(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        """Send messages; results in input order.

        Raises:
            BatchEnqueueError: Some entries were not sent (lists which).
        """
        ...


@runtime_checkable
class AsyncQueueDriver(QueueDriver, Protocol):
    """A sending side with native async methods, which `AsyncJobService` awaits instead of using a thread.

    They must not block the event loop; they follow `enqueue` and
    `enqueue_batch` (same results, same errors).
    """

    async def enqueue_async(self, message: JobMessage) -> EnqueueResult:
        """`enqueue`, awaited."""
        ...

    async def enqueue_batch_async(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        """`enqueue_batch`, awaited; results in input order (`BatchEnqueueError` when some were not sent)."""
        ...


@runtime_checkable
class WorkerDriver(Protocol):
    """The worker side: what the Lambda handler does besides returning failures."""

    def dead_letter(self, record: SQSRecord, info: DeadLetterInfo) -> None:
        """Store the record's body and attributes plus `info` in the dead-letter queue.

        Must raise when the message was not stored: the worker then reports
        the record failed instead of acknowledging it.
        """
        ...

    def change_visibility(self, changes: Sequence[VisibilityChange]) -> None:
        """Apply backoff delays; raise a `DriverError` if any change failed."""
        ...


@runtime_checkable
class ConsumingDriver(Protocol):
    """The consuming side, for the local poller (Lambda's event source mapping stand-in)."""

    def receive(
        self,
        queue: str | None = None,
        *,
        max_messages: int = 10,
        visibility_timeout: int | None = None,
        wait_seconds: float = 0.0,
    ) -> list[SQSRecord]:
        """Receive up to `max_messages` records, shaped as Lambda delivers them."""
        ...

    def delete(self, records: Sequence[SQSRecord]) -> Sequence[str] | None:
        """Delete received records (by receipt handle).

        Returns:
            The message ids whose receipt handle was stale (the message was
            received again after its visibility timeout, or is gone), so
            nothing was deleted for them; `None` when the driver cannot tell
            (SQS accepts a stale handle without deleting or saying so).
        """
        ...

    def counts(self, queue: str | None = None) -> QueueCounts:
        """Visible, in-flight, delayed and dead message counts."""
        ...


@runtime_checkable
class VisibilityTimeoutSource(Protocol):
    """A consuming driver that can tell a queue's own visibility timeout.

    The local poller keeps its function timeout within it, as Lambda requires
    of an event source mapping, so that no record reappears while it runs.
    """

    def queue_visibility_timeout(self, queue: str | None = None) -> int:
        """Seconds a record received without an explicit timeout stays hidden."""
        ...


@runtime_checkable
class QueueAdmin(Protocol):
    """Inspection and repair, for `glasswork stats` and `glasswork dlq`."""

    def counts(self, queue: str | None = None) -> QueueCounts:
        """Visible, in-flight, delayed and dead message counts."""
        ...

    def list_dead_letters(
        self, queue: str | None = None, *, limit: int = 100, job_name: str | None = None
    ) -> list[DeadLetterEntry]:
        """The messages in the queue's dead-letter queue, oldest first, unchanged.

        Args:
            queue: The source queue; `None` for the driver's default.
            limit: At most this many entries.
            job_name: Only the dead letters of this job (`None`: every one).

        Returns:
            Each entry in full: body and error message are never shortened.
        """
        ...

    def redrive(
        self, queue: str | None = None, *, job_name: str | None = None, limit: int | None = None
    ) -> int:
        """Move dead letters back to their source queue, oldest first, to be received afresh.

        A redriven message keeps its body and is received with receive count 1.
        A failure part-way neither loses nor duplicates a message beyond what
        the driver documents (SQS: see `SQSAdminMixin.redrive`).

        Args:
            queue: The source queue; `None` for the driver's default.
            job_name: Only the dead letters of this job (`None`: every one).
            limit: At most this many (`None`: every one selected).

        Returns:
            How many moved.
        """
        ...

    def purge(self, queue: str | None = None) -> int:
        """Delete every message of the queue; return how many (where known)."""
        ...
