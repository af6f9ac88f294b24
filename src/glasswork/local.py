"""The local poller: a stand-in for Lambda's SQS event source mapping.

`Poller` receives batches from any driver with the consuming and worker sides
(SQLite, Redis, SQS, the in-memory mock), hands each batch to a Lambda handler
in the exact Lambda SQS event shape with a Lambda-like context, and then does
what the event source mapping does with the answer (AWS's partial batch
response for SQS):

- a `None`, `{}` or empty `batchItemFailures` answer: every record succeeded
  and is deleted;
- `{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}`: the listed
  records stay in the queue for redelivery, the others are deleted;
- a raised exception, or a malformed answer (not a dict, `batchItemFailures`
  not a list, an entry without an `itemIdentifier`, an empty or unknown one,
  an answer that is not JSON): the whole batch failed and nothing is deleted,
  so every record comes back once its visibility timeout passes.

The handler runs in this process; a batch that outlives the function timeout
is logged (Lambda would have stopped it) but its answer is still applied.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import FrameType
from typing import Final, TypeAlias

import msgspec

from glasswork._wire import SQSRecord, lambda_event, lambda_record
from glasswork.drivers.base import ConsumingDriver, QueueCounts, VisibilityTimeoutSource
from glasswork.errors import DriverError, QueueNotFoundError
from glasswork.local_scheduler import LocalScheduler, utc_now

__all__ = [
    "LambdaHandler",
    "LocalLambdaContext",
    "PollReport",
    "Poller",
    "RunReport",
    "batch_item_failures",
    "effective_visibility_timeout",
    "lambda_event",
    "lambda_record",
    "stop_on_signals",
]

_log = logging.getLogger("glasswork.local")

DEFAULT_FUNCTION_TIMEOUT: Final = 30.0
"""Lambda's default function timeout is 3 s; 30 s suits jobs better and is a common setting."""
_MAX_DRIVER_ERRORS: Final = 10
_MAX_ERROR_PAUSE: Final = 5.0


class LocalLambdaContext:
    """A Lambda-like context object for one invocation.

    It carries the attributes of the Python runtime's context object;
    `get_remaining_time_in_millis()` counts down from the function timeout by
    the poller's clock. As in the real runtime, `memory_limit_in_mb` is a string.

    Attributes:
        function_name: The function's name.
        function_version: Always `"$LATEST"`.
        invoked_function_arn: A Lambda function ARN built from region and account.
        memory_limit_in_mb: The memory setting, as a string.
        aws_request_id: A fresh UUID per invocation.
        log_group_name: `/aws/lambda/<function_name>`.
        log_stream_name: A local stand-in.
        identity: Always `None` (no Cognito identity).
        client_context: Always `None`.
    """

    __slots__ = (
        "_clock",
        "_deadline",
        "aws_request_id",
        "client_context",
        "function_name",
        "function_version",
        "identity",
        "invoked_function_arn",
        "log_group_name",
        "log_stream_name",
        "memory_limit_in_mb",
    )

    def __init__(
        self,
        *,
        deadline: float,
        clock: Callable[[], float],
        function_name: str = "glasswork-local",
        memory_limit_in_mb: int = 128,
        region: str = "us-east-1",
        account_id: str = "000000000000",
        aws_request_id: str | None = None,
    ) -> None:
        self._clock = clock
        self._deadline = deadline
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.memory_limit_in_mb = str(memory_limit_in_mb)
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local/[$LATEST]glasswork"
        self.identity: object | None = None
        self.client_context: object | None = None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function timeout, never below 0."""
        return max(int((self._deadline - self._clock()) * 1000), 0)

    def __repr__(self) -> str:
        return (
            f"LocalLambdaContext(function_name={self.function_name!r}, "
            f"aws_request_id={self.aws_request_id!r})"
        )


LambdaHandler: TypeAlias = Callable[[dict[str, object], LocalLambdaContext], object]
"""A Lambda handler: `handler(event, context)`, such as `bootstrap_worker`'s."""


class PollReport(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one received batch.

    Attributes:
        received: How many records the batch held (0: nothing was received).
        deleted: Message ids deleted: every record the handler did not report
            as failed (so those it dead-lettered or discarded too).
        failed: Message ids left in the queue for redelivery.
        error: Why the whole batch failed (exception or malformed answer), else `None`.
        request_id: The invocation's `aws_request_id`.
        duration: Seconds the handler took, by the poller's clock.
        timed_out: The handler ran past the function timeout.
        stale: Message ids the handler succeeded with whose delete found a
            stale receipt handle: they had been received again (their
            visibility timeout ran out during the batch) and will run again.
    """

    received: int
    deleted: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    error: str | None = None
    request_id: str = ""
    duration: float = 0.0
    timed_out: bool = False

    @property
    def whole_batch_failed(self) -> bool:
        """Whether the handler raised or answered something malformed."""
        return self.error is not None


class RunReport(msgspec.Struct, frozen=True, kw_only=True):
    """Totals of one `Poller.run`.

    Attributes:
        batches: Batches handed to the handler.
        received: Records received.
        deleted: Records deleted because the handler did not report them as
            failed (dead-lettered and discarded ones included).
        failed: Records left for redelivery.
        batch_errors: Batches that failed as a whole.
        elapsed: Seconds from start to stop, by the poller's clock.
    """

    batches: int = 0
    received: int = 0
    deleted: int = 0
    failed: int = 0
    batch_errors: int = 0
    elapsed: float = 0.0


class _Totals:
    __slots__ = ("batch_errors", "batches", "deleted", "failed", "received")

    def __init__(self) -> None:
        self.batches = self.received = self.deleted = self.failed = self.batch_errors = 0

    def add(self, report: PollReport) -> None:
        self.batches += 1
        self.received += report.received
        self.deleted += len(report.deleted)
        self.failed += len(report.failed)
        self.batch_errors += report.whole_batch_failed

    def report(self, elapsed: float) -> RunReport:
        return RunReport(
            batches=self.batches,
            received=self.received,
            deleted=self.deleted,
            failed=self.failed,
            batch_errors=self.batch_errors,
            elapsed=elapsed,
        )


def batch_item_failures(response: object, message_ids: Collection[str]) -> frozenset[str] | str:
    """Read a handler's answer as Lambda's event source mapping does.

    Args:
        response: What the handler returned.
        message_ids: The message ids of the batch.

    Returns:
        The message ids to leave for redelivery (empty: all succeeded), or a
        string saying why the answer is malformed, which fails the whole batch.
    """
    if response is None:
        return frozenset()
    if not isinstance(response, dict):
        return f"handler returned {type(response).__name__}, not a dict"
    try:
        msgspec.json.encode(response)
    except (TypeError, msgspec.EncodeError) as exc:
        return f"handler response is not JSON-serializable: {exc}"
    failures = response.get("batchItemFailures")
    if failures is None:
        return frozenset()
    if not isinstance(failures, list):
        return f"batchItemFailures is {type(failures).__name__}, not a list"
    failed: set[str] = set()
    for entry in failures:
        if not isinstance(entry, dict) or "itemIdentifier" not in entry:
            return f"batchItemFailures entry {entry!r} has no itemIdentifier"
        identifier = entry["itemIdentifier"]
        if not isinstance(identifier, str) or not identifier:
            return f"batchItemFailures entry {entry!r} has an empty or non-string itemIdentifier"
        if identifier not in message_ids:
            return f"batchItemFailures names {identifier!r}, which is not in the batch"
        failed.add(identifier)
    return frozenset(failed)


def effective_visibility_timeout(
    driver: object, queue: str | None, override: int | None = None
) -> int | None:
    """The visibility timeout records will be received with: `override`, else the queue's own.

    Args:
        driver: The queue's driver.
        queue: The queue name; `None` for the driver's default.
        override: A visibility timeout for this run (`--visibility-timeout`).

    Returns:
        Seconds, or `None` when there is no override and the driver cannot
        tell (it is not a `VisibilityTimeoutSource`).

    Raises:
        DriverError: The driver failed to read the queue's setting.
    """
    if override is not None:
        return override
    if isinstance(driver, VisibilityTimeoutSource):
        return driver.queue_visibility_timeout(queue)
    return None


class Poller:
    """Feed a Lambda handler from a queue, as Lambda's SQS event source mapping does.

    Args:
        handler: The Lambda handler, such as `bootstrap_worker(module=...)`.
        driver: A driver with the consuming side (`receive`, `delete`,
            `counts`); the handler's own driver does the dead-lettering.
        queue: The queue name; `None` for the driver's default.
        batch_size: Most records per invocation (Lambda: 10 by default).
        function_timeout: Seconds the context's remaining time counts down
            from. Defaults to 30 s, or to the effective visibility timeout
            when that is shorter; Lambda requires it to be at most the
            visibility timeout, and so does the poller.
        visibility_timeout: Seconds a received record stays hidden; `None`
            keeps the queue's setting, which the poller reads from a driver
            that can tell it (`VisibilityTimeoutSource`: SQLite, Redis, SQS,
            the mock) to bound the function timeout.
        wait_seconds: Long-poll time of each receive while not in burst mode.
        idle_sleep: Longest pause between receives while the queue is idle
            (the pause starts at 10 ms and doubles).
        clock: Monotonic seconds, for the remaining time and durations.
        sleep: Pauses the loop; defaults to waiting on the stop event, so a
            stop request ends a pause at once.
        function_name: The context's `function_name`.
        memory_limit_in_mb: The context's `memory_limit_in_mb`.
        scheduler: Fires the app's periodic jobs between batches while the
            poller runs (not in burst mode); see `glasswork.local_scheduler`.
        wall_clock: The UTC time the scheduler's ticks are compared with.

    Attributes:
        effective_visibility_timeout: The visibility timeout records are
            received with (`visibility_timeout`, else the queue's), or `None`
            when the driver cannot tell.

    Raises:
        ValueError: A batch size below 1, a timeout at or below 0, or a
            function timeout longer than the effective visibility timeout.
        DriverError: The driver could not tell the queue's visibility timeout.
    """

    def __init__(
        self,
        handler: LambdaHandler,
        driver: ConsumingDriver,
        *,
        queue: str | None = None,
        batch_size: int = 10,
        function_timeout: float | None = None,
        visibility_timeout: int | None = None,
        wait_seconds: float = 1.0,
        idle_sleep: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        function_name: str = "glasswork-local",
        memory_limit_in_mb: int = 128,
        scheduler: LocalScheduler | None = None,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if batch_size < 1:
            msg = f"batch_size must be >= 1, got {batch_size}"
            raise ValueError(msg)
        if visibility_timeout is not None and visibility_timeout < 1:
            msg = f"visibility_timeout must be >= 1 second, got {visibility_timeout}"
            raise ValueError(msg)
        effective = effective_visibility_timeout(driver, queue, visibility_timeout)
        if function_timeout is None:
            function_timeout = DEFAULT_FUNCTION_TIMEOUT
            if effective is not None:
                function_timeout = min(function_timeout, float(effective))
        if function_timeout <= 0:
            msg = f"function_timeout must be > 0 seconds, got {function_timeout}" + (
                f" (the queue's visibility timeout is {effective} s)" if effective is not None else ""
            )
            raise ValueError(msg)
        if effective is not None and function_timeout > effective:
            msg = (
                f"function_timeout ({function_timeout} s) must not exceed the visibility "
                f"timeout ({effective} s), or records reappear while they run"
            )
            raise ValueError(msg)
        self.handler = handler
        self.driver = driver
        self.queue = queue
        self.batch_size = batch_size
        self.function_timeout = float(function_timeout)
        self.visibility_timeout = visibility_timeout
        self.effective_visibility_timeout = effective
        self.wait_seconds = max(wait_seconds, 0.0)
        self.idle_sleep = max(idle_sleep, 0.0)
        self.function_name = function_name
        self.memory_limit_in_mb = memory_limit_in_mb
        self._clock = clock
        self._sleep = sleep
        self.scheduler = scheduler if scheduler else None
        self._wall_clock = wall_clock

    def context(self) -> LocalLambdaContext:
        """A fresh context whose remaining time starts at the function timeout."""
        return LocalLambdaContext(
            deadline=self._clock() + self.function_timeout,
            clock=self._clock,
            function_name=self.function_name,
            memory_limit_in_mb=self.memory_limit_in_mb,
        )

    def poll_once(self, *, wait_seconds: float = 0.0) -> PollReport:
        """Receive one batch and deliver it; `PollReport(received=0)` when none came.

        Raises:
            DriverError: The receive or the delete failed (records not deleted
                come back after their visibility timeout).
        """
        records = self.driver.receive(
            self.queue,
            max_messages=self.batch_size,
            visibility_timeout=self.visibility_timeout,
            wait_seconds=wait_seconds,
        )
        if not records:
            return PollReport(received=0)
        return self.deliver(records)

    def deliver(self, records: Sequence[SQSRecord]) -> PollReport:
        """Invoke the handler with received records and apply its answer.

        Returns:
            Which records were deleted and which were left for redelivery.

        Raises:
            DriverError: The delete failed (the records come back later).
        """
        ids = [record.message_id for record in records]
        context = self.context()
        started = self._clock()
        error: str | None
        try:
            response = self.handler(lambda_event(records), context)
        except Exception as exc:  # noqa: BLE001  # Lambda fails the batch on any exception
            error = f"handler raised {type(exc).__name__}: {exc}"
            _log.error("batch of %d failed as a whole: %s", len(records), error, exc_info=exc)
            failed = frozenset(ids)
        else:
            checked = batch_item_failures(response, ids)
            if isinstance(checked, str):
                error = f"malformed handler response: {checked}"
                _log.error("batch of %d failed as a whole: %s", len(records), error)
                failed = frozenset(ids)
            else:
                error = None
                failed = checked
        duration = self._clock() - started
        timed_out = duration > self.function_timeout
        if timed_out:
            _log.error(
                "batch of %d took %.1f s, over the function timeout of %.1f s: Lambda would "
                "have stopped the invocation at %.1f s, deleted none of its records and "
                "redelivered all %d after the visibility timeout (each with one more receive); "
                "here the answer is applied, but any record received again meanwhile runs twice. "
                "Shorten the jobs or the batch, or raise the queue's visibility timeout",
                len(records),
                duration,
                self.function_timeout,
                self.function_timeout,
                len(records),
                extra={"request_id": context.aws_request_id, "outcome": "timed_out"},
            )
        done = [record for record in records if record.message_id not in failed]
        stale: Sequence[str] = ()
        if done:
            stale = self.driver.delete(done) or ()
            for message_id in stale:
                _log.warning(
                    "message %s: not deleted, its receipt handle is stale: it was received again "
                    "after its visibility timeout ran out during this %.1f s batch, and will run again",
                    message_id,
                    duration,
                    extra={"message_id": message_id, "outcome": "stale_receipt"},
                )
        gone = set(stale)
        return PollReport(
            received=len(records),
            deleted=tuple(record.message_id for record in done if record.message_id not in gone),
            stale=tuple(stale),
            failed=tuple(message_id for message_id in ids if message_id in failed),
            error=error,
            request_id=context.aws_request_id,
            duration=duration,
            timed_out=timed_out,
        )

    def run(
        self,
        *,
        burst: bool = False,
        stop_event: threading.Event | None = None,
        on_batch: Callable[[PollReport], object] | None = None,
    ) -> RunReport:
        """Poll until stopped; with `burst`, until the queue has nothing left to run.

        A stop request (the event set, for example by `stop_on_signals`) lets
        the batch in hand finish. In burst mode the loop ends once a receive
        comes back empty and `counts().pending` is 0: nothing visible, delayed
        or in flight, so retries and messages held by a dead worker are waited
        for; meanwhile it pauses briefly between receives.

        With a `scheduler` and not in burst mode, due periodic jobs fire
        before each receive, and an idle pause never outlasts the next tick.

        Args:
            burst: Stop once the queue is drained.
            stop_event: Set it to stop after the current batch.
            on_batch: Called with each non-empty batch's report.

        Returns:
            The totals of the run.

        Raises:
            QueueNotFoundError: The queue does not exist.
            DriverError: The driver failed ten times in a row.
        """
        stop = stop_event if stop_event is not None else threading.Event()
        pause = self._sleep if self._sleep is not None else stop.wait
        totals = _Totals()
        started = self._clock()
        idle = 0
        errors = 0
        scheduler = None if burst else self.scheduler
        if scheduler is not None and not stop.is_set():
            scheduler.start(self._wall_clock())
        while not stop.is_set():
            if scheduler is not None:
                scheduler.run_pending(self._wall_clock())
            polled_at = self._clock()
            try:
                report = self.poll_once(wait_seconds=0.0 if burst else self.wait_seconds)
                drained = not report.received and burst and self._drained()
            except QueueNotFoundError:
                raise
            except DriverError as exc:
                errors += 1
                if errors >= _MAX_DRIVER_ERRORS:
                    raise
                _log.warning("queue error (%d in a row), retrying: %s", errors, exc)
                pause(min(0.1 * 2**errors, _MAX_ERROR_PAUSE))
                continue
            errors = 0
            if report.received:
                idle = 0
                totals.add(report)
                if on_batch is not None:
                    on_batch(report)
                continue
            if drained:
                break
            delay = min(0.01 * 2**idle, self.idle_sleep) - (self._clock() - polled_at)
            if scheduler is not None:
                until = scheduler.seconds_until_next(self._wall_clock())
                if until is not None:
                    delay = min(delay, until)
            idle = min(idle + 1, 30)
            if delay > 0:
                pause(delay)
        return totals.report(self._clock() - started)

    def _drained(self) -> bool:
        counts: QueueCounts = self.driver.counts(self.queue)
        return counts.pending == 0


@contextmanager
def stop_on_signals(
    stop_event: threading.Event,
    signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[threading.Event]:
    """Set `stop_event` on SIGINT/SIGTERM instead of raising, while the block runs.

    A second signal restores the default behaviour, so pressing Ctrl-C twice
    interrupts a batch that does not finish. Only the main thread can install
    signal handlers. The previous handlers are restored when the block ends.

    Args:
        stop_event: The event to set, such as `Poller.run`'s `stop_event`.
        signals: The signals to catch.

    Yields:
        The stop event.
    """
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop_event.is_set():
            _log.warning("%s again: stopping now", name)
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        _log.info("%s received: finishing the batch in hand, then stopping", name)
        stop_event.set()

    for sig in signals:
        signal.signal(sig, handle)
    try:
        yield stop_event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
