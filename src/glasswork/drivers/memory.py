"""`MockQueueDriver`: an in-memory driver for users' unit tests.

It records what was enqueued (`.jobs`) and what the worker did
(`.dead_letters`, `.visibility_changes`), can fail on demand
(`simulate_failure`), and runs what was enqueued through a worker (`drain`).
It also implements the consuming side (receive, delete, counts) with an
injectable clock, so the local poller and the driver conformance suite run on it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import msgspec

from glasswork._runtime import new_id
from glasswork.core import (
    EnqueueResult,
    JobMessage,
    SQSMessageAttribute,
    SQSRecord,
    SQSRecordAttributes,
    lambda_event,
)
from glasswork.drivers.base import (
    ATTR_JOB_NAME,
    DeadLetterEntry,
    DeadLetterInfo,
    QueueCounts,
    VisibilityChange,
)

__all__ = ["MockDeadLetter", "MockJob", "MockQueueDriver"]

_DEFAULT_QUEUE: Final = "default"


class MockJob(msgspec.Struct, frozen=True, kw_only=True):
    """One enqueued job, as `MockQueueDriver.jobs` records it."""

    name: str
    payload: object
    queue: str
    job_id: str
    message_id: str
    delay_seconds: int
    metadata: Mapping[str, str]
    message: JobMessage


class MockDeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One dead-lettered record, as `MockQueueDriver.dead_letters` records it."""

    message_id: str
    reason: str
    error_type: str
    error_message: str
    attempt: int
    job_name: str | None
    job_id: str | None
    body: str
    source_queue: str


class _Stored(msgspec.Struct, kw_only=True):
    message_id: str
    queue: str
    body: str
    job_name: str
    sent_at: float
    visible_at: float
    group_id: str | None
    dedup_id: str | None
    receive_count: int = 0
    first_receive: float = 0.0
    receipt: str = ""


class MockQueueDriver:
    """An in-memory queue driver for tests; no threads, no I/O.

    Args:
        clock: Seconds since the epoch; inject one to test delays and visibility.
        visibility_timeout: Seconds a received message stays invisible by default.

    Attributes:
        jobs: Every enqueued job, in order.
        dead_letters: Every record the worker dead-lettered.
        visibility_changes: Every backoff the worker applied.
    """

    name = "memory"

    def __init__(self, *, clock: Callable[[], float] = time.time, visibility_timeout: int = 30) -> None:
        self.jobs: list[MockJob] = []
        self.dead_letters: list[MockDeadLetter] = []
        self.visibility_changes: list[VisibilityChange] = []
        self.visibility_timeout = visibility_timeout
        self._clock = clock
        self._queues: dict[str, list[_Stored]] = {}
        self._failures: list[BaseException] = []
        self._receipts = itertools.count(1)

    # --- test controls --------------------------------------------------------

    def simulate_failure(self, error: BaseException, *, times: int = 1) -> None:
        """Make the next `times` driver calls raise `error`."""
        self._failures.extend([error] * times)

    def clear(self) -> None:
        """Forget every job, dead letter, visibility change and pending failure."""
        self.jobs.clear()
        self.dead_letters.clear()
        self.visibility_changes.clear()
        self._queues.clear()
        self._failures.clear()

    def _maybe_fail(self) -> None:
        if self._failures:
            raise self._failures.pop(0)

    # --- sending --------------------------------------------------------------

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        """Record a job and queue it."""
        self._maybe_fail()
        queue = message.queue or _DEFAULT_QUEUE
        message_id = new_id()
        now = self._clock()
        self._queues.setdefault(queue, []).append(
            _Stored(
                message_id=message_id,
                queue=queue,
                body=message.body,
                job_name=message.job_name,
                sent_at=now,
                visible_at=now + message.delay_seconds,
                group_id=message.group_id or queue if queue.endswith(".fifo") else None,
                dedup_id=message.deduplication_id if queue.endswith(".fifo") else None,
            )
        )
        self.jobs.append(
            MockJob(
                name=message.job_name,
                payload=message.payload,
                queue=queue,
                job_id=message.job_id,
                message_id=message_id,
                delay_seconds=message.delay_seconds,
                metadata=message.metadata,
                message=message,
            )
        )
        return EnqueueResult(message_id=message_id, job_id=message.job_id)

    def enqueue_batch(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        """Record several jobs (one simulated failure fails the whole call)."""
        self._maybe_fail()
        return [self.enqueue(m) for m in messages]

    # --- worker side ----------------------------------------------------------

    def dead_letter(self, record: SQSRecord, info: DeadLetterInfo) -> None:
        """Record a dead letter and take the message off its queue."""
        self._maybe_fail()
        self.dead_letters.append(
            MockDeadLetter(
                message_id=record.message_id,
                reason=info.reason,
                error_type=info.error_type,
                error_message=info.error_message,
                attempt=info.attempt,
                job_name=info.job_name,
                job_id=info.job_id,
                body=record.body,
                source_queue=info.source_queue,
            )
        )
        self._remove(lambda s: s.message_id == record.message_id)

    def change_visibility(self, changes: Sequence[VisibilityChange]) -> None:
        """Record backoffs and apply them to queued messages."""
        self._maybe_fail()
        now = self._clock()
        for change in changes:
            self.visibility_changes.append(change)
            for stored in self._all():
                if stored.receipt and stored.receipt == change.receipt_handle:
                    stored.visible_at = now + change.seconds

    # --- consuming side -------------------------------------------------------

    def receive(
        self,
        queue: str | None = None,
        *,
        max_messages: int = 10,
        visibility_timeout: int | None = None,
        wait_seconds: float = 0.0,
    ) -> list[SQSRecord]:
        """Receive visible messages as Lambda-shaped records (FIFO: one per group in flight)."""
        self._maybe_fail()
        name = queue or _DEFAULT_QUEUE
        now = self._clock()
        timeout = self.visibility_timeout if visibility_timeout is None else visibility_timeout
        busy = {
            s.group_id
            for s in self._queues.get(name, [])
            if s.group_id and s.visible_at > now and s.receive_count
        }
        records: list[SQSRecord] = []
        for stored in self._queues.get(name, []):
            if len(records) >= max_messages:
                break
            if stored.visible_at > now:
                if stored.group_id is not None:
                    busy.add(stored.group_id)
                continue
            if stored.group_id is not None and stored.group_id in busy:
                continue
            stored.receive_count += 1
            stored.first_receive = stored.first_receive or now
            stored.receipt = f"{stored.message_id}#{next(self._receipts)}"
            stored.visible_at = now + timeout
            records.append(_record(stored))
        return records

    def delete(self, records: Sequence[SQSRecord]) -> None:
        """Delete received records by receipt handle."""
        self._maybe_fail()
        handles = {r.receipt_handle for r in records}
        self._remove(lambda s: s.receipt in handles)

    def counts(self, queue: str | None = None) -> QueueCounts:
        """Visible, in-flight, delayed and dead counts of a queue."""
        name = queue or _DEFAULT_QUEUE
        now = self._clock()
        stored = self._queues.get(name, [])
        in_flight = sum(1 for s in stored if s.visible_at > now and s.receive_count)
        delayed = sum(1 for s in stored if s.visible_at > now and not s.receive_count)
        dead = sum(1 for d in self.dead_letters if d.source_queue.rpartition(":")[2] == name)
        return QueueCounts(
            visible=len(stored) - in_flight - delayed,
            in_flight=in_flight,
            delayed=delayed,
            dead=dead,
        )

    def list_dead_letters(self, queue: str | None = None, *, limit: int = 100) -> list[DeadLetterEntry]:
        """The recorded dead letters of a queue."""
        name = queue or _DEFAULT_QUEUE
        return [
            DeadLetterEntry(
                message_id=d.message_id,
                body=d.body,
                job_name=d.job_name,
                job_id=d.job_id,
                attempt=d.attempt,
                reason=d.reason,
                error_type=d.error_type,
                error_message=d.error_message,
            )
            for d in self.dead_letters
            if d.source_queue.rpartition(":")[2] == name
        ][:limit]

    def redrive(self, queue: str | None = None) -> int:
        """Move a queue's dead letters back onto it."""
        name = queue or _DEFAULT_QUEUE
        moving = [d for d in self.dead_letters if d.source_queue.rpartition(":")[2] == name]
        now = self._clock()
        for dead in moving:
            self.dead_letters.remove(dead)
            self._queues.setdefault(name, []).append(
                _Stored(
                    message_id=dead.message_id,
                    queue=name,
                    body=dead.body,
                    job_name=dead.job_name or "",
                    sent_at=now,
                    visible_at=now,
                    group_id=name if name.endswith(".fifo") else None,
                    dedup_id=None,
                )
            )
        return len(moving)

    def purge(self, queue: str | None = None) -> int:
        """Drop every message of a queue."""
        return len(self._queues.pop(queue or _DEFAULT_QUEUE, []))

    # --- running jobs ---------------------------------------------------------

    def drain(
        self,
        handler: Callable[[Mapping[str, object], None], Mapping[str, object]],
        *,
        queue: str | None = None,
        max_batches: int = 1_000,
        batch_size: int = 10,
    ) -> int:
        """Run every queued job through `handler` (a `bootstrap_worker` handler) until none is left.

        Delays and visibility timeouts are skipped: a failed record is
        redelivered at once with its receive count raised, so retries,
        exhaustion and dead-lettering all play out, the way Celery's eager
        mode or Dramatiq's `join` would.

        Returns:
            How many batches ran.

        Raises:
            RuntimeError: Jobs were still queued after `max_batches` batches.
        """
        name = queue or _DEFAULT_QUEUE
        for batches in range(max_batches):
            for stored in self._queues.get(name, []):
                stored.visible_at = 0.0
            records = self.receive(name, max_messages=batch_size)
            if not records:
                return batches
            response = handler(lambda_event(records), None)
            failures = response.get("batchItemFailures") if isinstance(response, Mapping) else None
            failed = {
                f.get("itemIdentifier")
                for f in (failures if isinstance(failures, list) else [])
                if isinstance(f, Mapping)
            }
            self.delete([r for r in records if r.message_id not in failed])
        msg = f"jobs were still queued after {max_batches} batches"
        raise RuntimeError(msg)

    def _all(self) -> list[_Stored]:
        return [s for stored in self._queues.values() for s in stored]

    def _remove(self, predicate: Callable[[_Stored], bool]) -> None:
        for name, stored in self._queues.items():
            self._queues[name] = [s for s in stored if not predicate(s)]


def _record(stored: _Stored) -> SQSRecord:
    return SQSRecord(
        message_id=stored.message_id,
        receipt_handle=stored.receipt,
        body=stored.body,
        attributes=SQSRecordAttributes(
            approximate_receive_count=str(stored.receive_count),
            sent_timestamp=str(int(stored.sent_at * 1000)),
            sender_id="glasswork-memory",
            approximate_first_receive_timestamp=str(int(stored.first_receive * 1000)),
            message_group_id=stored.group_id,
            message_deduplication_id=stored.dedup_id,
        ),
        message_attributes={
            ATTR_JOB_NAME: SQSMessageAttribute(data_type="String", string_value=stored.job_name)
        },
        event_source="aws:sqs",
        event_source_arn=f"arn:aws:sqs:local:000000000000:{stored.queue}",
        aws_region="local",
    )
