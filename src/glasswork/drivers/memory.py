"""`MockQueueDriver`: an in-memory driver for users' unit tests.

It records what was enqueued (`.jobs`) and what the worker did
(`.dead_letters`, `.visibility_changes`), can fail on demand
(`simulate_failure`), and runs what was enqueued through a worker (`drain`).
It also implements the consuming side (receive, delete, counts) with an
injectable clock, so the local poller and the driver conformance suite run on it.

Assertion helpers for tests: `jobs_named`, `find`, `assert_enqueued`,
`assert_not_enqueued`, and `run_all` (every queue, until nothing is left).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec

from glasswork._jobs import model_json
from glasswork._runtime import new_id
from glasswork._wire import (
    EnqueueResult,
    JobMessage,
    SQSMessageAttribute,
    SQSRecord,
    SQSRecordAttributes,
    check_delay,
    lambda_event,
)
from glasswork.drivers.base import (
    ATTR_JOB_NAME,
    DeadLetterEntry,
    DeadLetterInfo,
    QueueCounts,
    VisibilityChange,
)

if TYPE_CHECKING:
    from glasswork._jobs import Job

__all__ = ["ANY_PAYLOAD", "MockDeadLetter", "MockJob", "MockQueueDriver"]

_DEFAULT_QUEUE: Final = "default"
_DEDUP_WINDOW: Final = 300.0


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


class _AnyPayload:
    """The `payload=` default of the assertion helpers: any payload matches."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ANY_PAYLOAD"


ANY_PAYLOAD: Final = _AnyPayload()
"""Matches every payload in `find`, `assert_enqueued` and `assert_not_enqueued`."""


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
    group_id: str | None = None


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
        self._sent_dedup: dict[tuple[str, str], tuple[str, float]] = {}
        self._dead_receipts: set[str] = set()
        self._ticks: dict[str, float] = {}

    def queue_visibility_timeout(self, queue: str | None = None) -> int:
        """The visibility timeout a `receive` without one uses: `visibility_timeout`, for every queue."""
        return self.visibility_timeout

    def claim_tick(self, key: str, tick: float, owner: str) -> bool:  # one process
        """Claim a periodic job's tick: True once per `key` for each later tick."""
        if self._ticks.get(key, float("-inf")) >= tick:
            return False
        self._ticks[key] = tick
        return True

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
        self._sent_dedup.clear()

    def _maybe_fail(self) -> None:
        if self._failures:
            raise self._failures.pop(0)

    # --- sending --------------------------------------------------------------

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        """Record a job and queue it.

        Raises:
            ValueError: A delay over `MAX_ENQUEUE_DELAY_SECONDS` (365 days), as every driver.
        """
        check_delay(message.delay_seconds)
        self._maybe_fail()
        queue = message.queue or _DEFAULT_QUEUE
        now = self._clock()
        fifo = queue.endswith(".fifo")
        key = (queue, message.deduplication_id)
        sent = self._sent_dedup.get(key) if fifo else None
        if sent is not None and now - sent[1] < _DEDUP_WINDOW:
            # SQS accepts a FIFO duplicate within 5 minutes and returns the first message's id.
            self.jobs.append(self._recorded(message, queue, sent[0]))
            return EnqueueResult(message_id=sent[0], job_id=message.job_id)
        message_id = new_id()
        if fifo:
            self._sent_dedup[key] = (message_id, now)
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
        self.jobs.append(self._recorded(message, queue, message_id))
        return EnqueueResult(message_id=message_id, job_id=message.job_id)

    @staticmethod
    def _recorded(message: JobMessage, queue: str, message_id: str) -> MockJob:
        return MockJob(
            name=message.job_name,
            payload=message.payload,
            queue=queue,
            job_id=message.job_id,
            message_id=message_id,
            delay_seconds=message.delay_seconds,
            metadata=message.metadata,
            message=message,
        )

    def enqueue_batch(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        """Record several jobs (one simulated failure fails the whole call)."""
        self._maybe_fail()
        return [self.enqueue(m) for m in messages]

    # --- worker side ----------------------------------------------------------

    def dead_letter(self, record: SQSRecord, info: DeadLetterInfo) -> None:
        """Record a dead letter and take the message off its queue."""
        self._maybe_fail()
        self._dead_receipts.add(record.receipt_handle)
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
                group_id=record.attributes.message_group_id,
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

    def delete(self, records: Sequence[SQSRecord]) -> list[str]:
        """Delete received records by receipt handle; return the ids whose handle was stale."""
        self._maybe_fail()
        handles = {r.receipt_handle for r in records}
        held = {s.receipt for stored in self._queues.values() for s in stored if s.receipt in handles}
        self._remove(lambda s: s.receipt in handles)
        gone = held | self._dead_receipts
        return [r.message_id for r in records if r.receipt_handle not in gone]

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

    def list_dead_letters(
        self, queue: str | None = None, *, limit: int = 100, job_name: str | None = None
    ) -> list[DeadLetterEntry]:
        """The recorded dead letters of a queue (of one job, when `job_name` is given), oldest first."""
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
            for d in self._dead_of(queue, job_name)
        ][:limit]

    def redrive(
        self, queue: str | None = None, *, job_name: str | None = None, limit: int | None = None
    ) -> int:
        """Move a queue's dead letters (of one job, at most `limit`, oldest first) back onto it."""
        name = queue or _DEFAULT_QUEUE
        moving = self._dead_of(queue, job_name)[:limit]
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
                    group_id=(dead.group_id or name) if name.endswith(".fifo") else None,
                    dedup_id=None,
                )
            )
        return len(moving)

    def _dead_of(self, queue: str | None, job_name: str | None) -> list[MockDeadLetter]:
        name = queue or _DEFAULT_QUEUE
        return [
            d
            for d in self.dead_letters
            if d.source_queue.rpartition(":")[2] == name and (job_name is None or d.job_name == job_name)
        ]

    def purge(self, queue: str | None = None) -> int:
        """Drop every message of a queue."""
        return len(self._queues.pop(queue or _DEFAULT_QUEUE, []))

    # --- assertions -----------------------------------------------------------

    def jobs_named(self, job: Job[Any] | str) -> list[MockJob]:
        """The enqueued jobs of one job (a `Job` or its name), in order."""
        name = _job_name(job)
        return [j for j in self.jobs if j.name == name]

    def find(
        self,
        job: Job[Any] | str,
        payload: object = ANY_PAYLOAD,
        *,
        queue: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> list[MockJob]:
        """The enqueued jobs of `job` whose payload matches `payload`, in order.

        Args:
            job: A `Job` or a job name.
            payload: A subset to match: a mapping matches when every key it
                names matches (recursively; other keys are ignored), anything
                else must be equal. Structs, dataclasses and datetimes are
                compared as msgspec converts them to builtins, so
                `{"order_id": 1}` matches `Order(order_id=1, email=...)`.
            queue: Only jobs sent to this queue.
            metadata: Only jobs whose metadata holds these pairs.

        Returns:
            The matching jobs (empty when none match).
        """
        return [j for j in self.jobs_named(job) if not _mismatches(j, payload, queue, metadata)]

    def assert_enqueued(
        self,
        job: Job[Any] | str,
        payload: object = ANY_PAYLOAD,
        *,
        count: int | None = None,
        queue: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> MockJob:
        """Assert that `job` was enqueued with a payload matching `payload` (see `find`).

        Args:
            job: A `Job` or a job name.
            payload: The payload subset to match.
            count: The exact number of matching jobs; `None` asks for at least one.
            queue: Only jobs sent to this queue.
            metadata: Only jobs whose metadata holds these pairs.

        Returns:
            The first matching job.

        Raises:
            AssertionError: No job (or not `count` jobs) matched; the message
                lists what was enqueued and how each candidate differs.
        """
        name = _job_name(job)
        found = self.find(name, payload, queue=queue, metadata=metadata)
        if found and (count is None or len(found) == count):
            return found[0]
        wanted = "at least one" if count is None else f"exactly {count}"
        lines = [f"expected {wanted} {name!r} job{_describe(payload, queue, metadata)}, found {len(found)}"]
        candidates = self.jobs_named(name)
        if not candidates:
            enqueued = sorted({j.name for j in self.jobs})
            lines.append(f"no {name!r} job was enqueued; enqueued: {', '.join(enqueued) or 'nothing'}")
        for index, candidate in enumerate(candidates):
            problems = _mismatches(candidate, payload, queue, metadata)
            state = "matches" if not problems else "differs: " + "; ".join(problems)
            lines.append(f"  {name}[{index}] (job id {candidate.job_id}) {state}")
        raise AssertionError("\n".join(lines))

    def assert_not_enqueued(self, job: Job[Any] | str, payload: object = ANY_PAYLOAD) -> None:
        """Assert that no job of `job` with a payload matching `payload` was enqueued.

        Raises:
            AssertionError: Some did; the message lists them.
        """
        found = self.find(job, payload)
        if found:
            shown = ", ".join(repr(_builtins(j.payload)) for j in found[:5])
            wanted = f"{_job_name(job)!r} job{_describe(payload, None, None)}"
            msg = f"expected no {wanted}, found {len(found)}: {shown}"
            raise AssertionError(msg)

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

    def run_all(
        self,
        handler: Callable[[Mapping[str, object], None], Mapping[str, object]],
        *,
        max_batches: int = 1_000,
        batch_size: int = 10,
    ) -> int:
        """Run every job queued on every queue through `handler` until nothing is left.

        `drain` for all queues at once: jobs that enqueue jobs on other queues
        run too, delays are skipped and retries play out at once.

        Args:
            handler: A `bootstrap_worker` handler (or any Lambda SQS handler).
            max_batches: Give up after this many batches in total.
            batch_size: Records per batch.

        Returns:
            How many batches ran.

        Raises:
            RuntimeError: Jobs were still queued after `max_batches` batches.
        """
        total = 0
        while True:
            pending = [name for name, stored in self._queues.items() if stored]
            if not pending:
                return total
            for name in pending:
                if total >= max_batches:
                    msg = f"jobs were still queued after {max_batches} batches"
                    raise RuntimeError(msg)
                total += self.drain(
                    handler, queue=name, max_batches=max_batches - total, batch_size=batch_size
                )

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


def _job_name(job: Job[Any] | str) -> str:
    return job if isinstance(job, str) else job.name


def _describe(payload: object, queue: str | None, metadata: Mapping[str, str] | None) -> str:
    parts = []
    if not isinstance(payload, _AnyPayload):
        parts.append(f"payload matching {_builtins(payload)!r}")
    if queue is not None:
        parts.append(f"on queue {queue!r}")
    if metadata is not None:
        parts.append(f"with metadata {dict(metadata)!r}")
    return f" with {' and '.join(parts)}" if parts else ""


def _mismatches(
    job: MockJob, payload: object, queue: str | None, metadata: Mapping[str, str] | None
) -> list[str]:
    problems: list[str] = []
    if queue is not None and job.queue != queue:
        problems.append(f"queue: expected {queue!r}, got {job.queue!r}")
    if metadata is not None:
        problems.extend(_subset_diff(dict(metadata), dict(job.metadata), "metadata"))
    if not isinstance(payload, _AnyPayload):
        problems.extend(_subset_diff(_builtins(payload), _builtins(job.payload), "payload"))
    return problems


def _subset_diff(expected: object, actual: object, path: str) -> list[str]:
    """How `actual` fails to contain `expected`: mappings by subset, lists item by item, else equality."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a mapping, got {actual!r}"]
        problems: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing (expected {value!r})")
            else:
                problems.extend(_subset_diff(value, actual[key], f"{path}.{key}"))
        return problems
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: expected {len(expected)} items, got {len(actual)}: {actual!r}"]
        return [
            problem
            for index, (want, got) in enumerate(zip(expected, actual, strict=True))
            for problem in _subset_diff(want, got, f"{path}[{index}]")
        ]
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []


def _builtins(value: object) -> object:
    """A payload as JSON-like builtins; a pydantic model as `JobService` sends it (JSON mode)."""
    raw = model_json(value)
    return msgspec.json.decode(raw) if raw is not None else msgspec.to_builtins(value)
