"""The worker shell: turns Lambda events into job runs and performs the decisions.

`bootstrap_worker` checks a module tree, builds its services and returns a
`Worker`, a plain Lambda handler. For an SQS batch it runs every record as its
own job (`process_record`'s pipeline), dead-letters and changes visibility
through the driver, fires hooks and returns a partial batch response. It never
raises for an SQS batch. Other invocations (an EventBridge schedule) run one
job and raise on failure.

A `Worker` keeps no per-batch state: a warm Lambda cannot leak one batch into
the next.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, TypeAlias, assert_never, cast

import msgspec

if TYPE_CHECKING:
    import asyncio

from glasswork._jobs import Job, JobRegistry, Module
from glasswork._runtime import is_async_callable, is_awaitable, new_id, thread_loop
from glasswork.context import JobContext, LambdaContext, Services
from glasswork.core import (
    ACK,
    ENVELOPE_DECODER,
    JSON_DECODER,
    MAX_MESSAGE_BYTES,
    Ack,
    DeadLetter,
    Defer,
    Discard,
    Duration,
    JobExecution,
    Outcome,
    RecordResult,
    Retry,
    Runnable,
    SQSRecord,
    decide_retry,
    prepare_record,
    to_seconds,
)
from glasswork.drivers.base import DeadLetterInfo, VisibilityChange, WorkerDriver
from glasswork.errors import (
    ConfigurationError,
    GlassworkError,
    InvalidEventError,
    InvalidJobPayloadError,
    ServiceError,
    UnknownJobError,
)

__all__ = ["BatchReport", "Disposition", "Settled", "Worker", "WorkerHooks", "bootstrap_worker"]

_log: Final = logging.getLogger("glasswork.worker")

StartHook: TypeAlias = Callable[[JobExecution, JobContext], object | Awaitable[object]]
ErrorHook: TypeAlias = Callable[[JobExecution, JobContext, BaseException], object | Awaitable[object]]
Disposition: TypeAlias = Literal["succeeded", "failed", "dead_lettered", "discarded"]


class WorkerHooks(msgspec.Struct, frozen=True, kw_only=True):
    """Lifecycle hooks; each may be a `def` or an `async def`.

    A hook that raises is logged and changes nothing: the record's outcome
    stays what the job decided.

    Attributes:
        on_job_start: Before the handler runs.
        on_job_complete: After the handler returned.
        on_job_failed: After the handler raised, or its payload was invalid.
        on_job_dead_letter: After the message reached the dead-letter queue.
    """

    on_job_start: StartHook | None = None
    on_job_complete: StartHook | None = None
    on_job_failed: ErrorHook | None = None
    on_job_dead_letter: ErrorHook | None = None

    def any_async(self) -> bool:
        """Whether any hook is an `async def`."""
        hooks = (
            self.on_job_start,
            self.on_job_complete,
            self.on_job_failed,
            self.on_job_dead_letter,
        )
        return any(is_async_callable(h) for h in hooks if h is not None)


class Settled(msgspec.Struct, frozen=True, kw_only=True):
    """How one record of a batch ended, after the shell acted on its outcome.

    Attributes:
        result: The pure pipeline's result.
        disposition: `succeeded`, `failed` (reported in `batchItemFailures`),
            `dead_lettered` (the DLQ send succeeded) or `discarded`.
        duration: Seconds the handler ran (0 when it did not run).
    """

    result: RecordResult
    disposition: Disposition
    duration: float = 0.0

    @property
    def message_id(self) -> str:
        """The record's SQS message id."""
        return self.result.record.message_id


class BatchReport(msgspec.Struct, frozen=True, kw_only=True):
    """Every record of an SQS batch, each settled exactly once, in input order.

    A record without a usable `messageId` cannot be reported to Lambda and is
    not listed (it is logged); no record SQS sends lacks one.
    """

    settled: list[Settled]

    @property
    def failed_ids(self) -> list[str]:
        """Message ids to report in `batchItemFailures`, in input order, without repeats."""
        return list(dict.fromkeys(s.message_id for s in self.settled if s.disposition == "failed"))

    @property
    def unreadable(self) -> list[str]:
        """Message ids of records that were not valid SQS records (reported failed)."""
        return [s.message_id for s in self.settled if s.result.outcome is _DEFER_UNREADABLE]

    def response(self) -> dict[str, list[dict[str, str]]]:
        """The Lambda partial batch response."""
        return {"batchItemFailures": [{"itemIdentifier": i} for i in self.failed_ids]}

    def ids(self, disposition: Disposition) -> list[str]:
        """Message ids that ended with `disposition`."""
        return [s.message_id for s in self.settled if s.disposition == disposition]


class _Call(NamedTuple):
    """A call the general path asks its driver to make: a hook, or the job's handler."""

    fn: Callable[..., object]
    args: tuple[object, ...]
    hook: bool = True


_Steps: TypeAlias = Generator[_Call, Exception | None, "Settled"]

_DEFER_GROUP: Final = Defer(reason="fifo_group_blocked")
_DEFER_TIME: Final = Defer(reason="time_budget")
_DEFER_UNREADABLE: Final = Defer(reason="unreadable_record")
_SKIPPED: Final = Settled(
    result=RecordResult(record=SQSRecord(message_id="-"), outcome=_DEFER_UNREADABLE, attempt=0),
    disposition="failed",
)
"""Marks a record without a usable `messageId`: logged, and left out of the response."""
_ATTEMPTS: Final = {str(n): n for n in range(1, 1001)}
"""`ApproximateReceiveCount` strings the fast path reads without parsing; others take the general path."""
_NOT_SQS: Final = object()
_MISSING: Final = object()


def _error_text(error: BaseException) -> str:
    text = f"{error}"
    cause = error.__cause__
    if cause is not None and str(cause) not in text:
        text = f"{text} (caused by {type(cause).__name__}: {cause})"
    return text[:1000]


class Worker:
    """A Lambda handler for a module tree; call it as `worker(event, context)`.

    Made by `bootstrap_worker`. Attributes are read-only configuration; the
    only state kept between invocations is per process (services, the default
    driver) or per thread (the event loop for async jobs).
    """

    def __init__(
        self,
        *,
        registry: JobRegistry,
        services: Services,
        hooks: WorkerHooks,
        driver: WorkerDriver | None,
        max_concurrency: int,
        time_margin_ms: int,
        jitter: Callable[[], float],
        logger: logging.Logger,
        max_body_bytes: int = MAX_MESSAGE_BYTES,
        log_payloads: bool = False,
    ) -> None:
        self.registry = registry
        self.services = services
        self.hooks = hooks
        self.max_concurrency = max_concurrency
        self.time_margin_ms = time_margin_ms
        self._driver = driver
        self._driver_resolved = driver is not None
        self._jitter = jitter
        self._log = logger
        self.max_body_bytes = max_body_bytes
        self.log_payloads = log_payloads
        self._use_loop = hooks.any_async() or any(j.is_async for j in registry.jobs.values())
        self._checked_sources: set[str] = set()

    # --- entry point ----------------------------------------------------------

    def __call__(self, event: Mapping[str, object], context: object = None) -> dict[str, object]:
        """Handle a Lambda invocation.

        Args:
            event: An SQS event, or `{"jobName", "payload"}` (top level or
                under EventBridge's `detail`; `detail.name` also works).
            context: Lambda's context object, or `None`.

        Returns:
            For SQS: `{"batchItemFailures": [...]}`. Otherwise a summary of the run.

        Raises:
            InvalidEventError: The event is neither an SQS batch nor a job invocation.
            Exception: Whatever a directly invoked job raised (so Lambda retries it).
        """
        raw = (
            event.get("Records", _NOT_SQS) if type(event) is dict or isinstance(event, Mapping) else _NOT_SQS
        )
        if raw is _NOT_SQS:
            return self.run_direct(event, context)
        others: list[Settled] = []
        self._run_batch(raw, context, others)
        if not others:
            return {"batchItemFailures": []}
        failed = [
            m.result.record.message_id for m in others if m.disposition == "failed" and m is not _SKIPPED
        ]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in dict.fromkeys(failed)]}

    # --- SQS batches ----------------------------------------------------------

    def process_batch(self, event: Mapping[str, object], context: object = None) -> BatchReport:
        """Run an SQS event's records and settle each one; never raises for an SQS batch.

        Returns:
            How every record ended (the handler returns `report.response()`).

        Raises:
            InvalidEventError: `Records` is not a list, or its first record
                comes from another event source; nothing has run.
        """
        raw = event.get("Records")
        marks = self._run_batch(raw, context, [])
        assert isinstance(raw, list)
        return BatchReport(
            settled=[
                mark if mark is not None else self._succeeded(item)
                for item, mark in zip(raw, marks, strict=True)
                if mark is not _SKIPPED
            ]
        )

    def _run_batch(self, raw: object, context: object, others: list[Settled]) -> list[Settled | None]:
        """Settle every record; `None` marks a success of the fast path (see `_run_sync`).

        Every other settlement is also appended to `others`, in input order.
        """
        if not isinstance(raw, list):
            msg = f"expected an SQS event whose 'Records' is a list, got {type(raw).__name__}"
            raise InvalidEventError(msg)
        if not raw:
            return []
        first = raw[0]
        source = first.get("eventSource", "aws:sqs") if isinstance(first, dict) else "aws:sqs"
        if source != "aws:sqs":
            msg = f"expected an SQS event, but its records have eventSource {source!r}"
            raise InvalidEventError(msg)
        if isinstance(first, dict):
            self._check_source(first.get("eventSourceARN"))
        lambda_context = _lambda_context(context) if context is not None else None
        if self._use_loop:
            settled = self._event_loop().run_until_complete(self._run_async(raw, lambda_context))
            others.extend(settled)
            marks: list[Settled | None] = list(settled)
        else:
            marks = self._run_sync(raw, lambda_context, others)
        if others:
            self._apply_visibility(others)
        return marks

    def _convert(self, item: object) -> SQSRecord | Settled:
        """A raw record as an `SQSRecord`, or its settlement when it is not a valid one."""
        try:
            return msgspec.convert(item, SQSRecord)
        except msgspec.ValidationError as exc:
            message_id = item.get("messageId") if isinstance(item, dict) else None
            if isinstance(message_id, str) and message_id:
                self._log.error(
                    "record %s is not a valid SQS record, reported failed: %s",
                    message_id,
                    exc,
                    extra={"message_id": message_id, "outcome": "failed"},
                )
                return Settled(
                    result=RecordResult(
                        record=SQSRecord(message_id=message_id), outcome=_DEFER_UNREADABLE, attempt=0
                    ),
                    disposition="failed",
                )
            self._log.error("a record has no usable messageId and cannot be reported: %s", exc)
            return _SKIPPED

    def _deferred(self, item: object, defer: Defer) -> Settled:
        record = self._convert(item)
        if not isinstance(record, SQSRecord):
            return record
        return Settled(result=RecordResult(record=record, outcome=defer, attempt=0), disposition="failed")

    def _succeeded(self, item: object) -> Settled:
        """The settlement of a fast-path success, rebuilt for a `BatchReport`."""
        record = self._convert(item)
        if not isinstance(record, SQSRecord):
            return record
        prepared = prepare_record(record, self.registry, max_body_bytes=self.max_body_bytes)
        if isinstance(prepared, RecordResult):
            return Settled(result=prepared, disposition="succeeded")
        return Settled(result=prepared.result(ACK), disposition="succeeded")

    def _check_source(self, arn: object) -> None:
        if not isinstance(arn, str) or arn in self._checked_sources:
            return
        self._checked_sources.add(arn)
        check = getattr(self.driver, "check_redrive", None)
        if check is None:
            return
        longest = max((j.retry.max_attempts for j in self.registry.jobs.values()), default=1)
        try:
            warning = check(arn, longest)
        except Exception as exc:  # noqa: BLE001  # a failed check must not fail the batch
            self._log.debug("could not check the redrive policy of %s: %s", arn, exc)
            return
        if warning:
            self._log.warning("%s", warning)

    def _out_of_time(self, lambda_context: LambdaContext | None) -> bool:
        if lambda_context is None:
            return False
        return lambda_context.get_remaining_time_in_millis() < self.time_margin_ms

    def _run_sync(  # noqa: PLR0915  # one loop, inlined: it is the per-record hot path
        self,
        raw: list[object],
        lambda_context: LambdaContext | None,
        others: list[Settled],
    ) -> list[Settled | None]:
        """Run records one after another; non-`None` marks are appended to `others` too.

        A well-formed record (a string `ApproximateReceiveCount`, the body of a
        registered job) goes the fast path: one typed decode when the record
        carries the `JobName` attribute (two without it), a lazily built
        context, and `None` as its mark when it succeeds. Everything else, and every
        failure, goes through `prepare_record`/`decide_retry`, the same pure
        decisions. DEBUG logging (which logs every success with its duration)
        turns the fast path off.
        """
        jobs = self.registry.jobs
        services = self.services
        new_context = object.__new__
        remaining = lambda_context.get_remaining_time_in_millis if lambda_context is not None else None
        margin = self.time_margin_ms
        max_chars = self.max_body_bytes // 4
        fast = not self._log.isEnabledFor(logging.DEBUG)
        on_start = self.hooks.on_job_start
        on_complete = self.hooks.on_job_complete
        blocked: set[str] | None = None
        marks: list[Settled | None] = []
        for item in raw:
            group = None
            eligible = False
            try:
                attributes = item["attributes"]  # type: ignore[index]  # any shape; errors go the general way
                group = attributes.get("MessageGroupId")
                if fast:
                    message_id = item["messageId"]  # type: ignore[index]
                    body = item["body"]  # type: ignore[index]
                    attempt = _ATTEMPTS[attributes["ApproximateReceiveCount"]]
                    eligible = (
                        type(message_id) is str
                        and message_id != ""
                        and type(body) is str
                        and len(body) <= max_chars
                    )
                    name = None
                    message_attributes = item.get("messageAttributes")  # type: ignore[attr-defined]
                    if message_attributes:
                        job_name_attribute = message_attributes.get("JobName")
                        if job_name_attribute:
                            name = job_name_attribute.get("stringValue")
            except (KeyError, TypeError, AttributeError):
                eligible = False
            mark: Settled | None
            if group is not None and blocked is not None and type(group) is str and group in blocked:
                mark = self._deferred(item, _DEFER_GROUP)
            elif remaining is not None and remaining() < margin:
                mark = self._deferred(item, _DEFER_TIME)
            elif not eligible:
                mark = self._general_sync(item, lambda_context)
            else:
                job = None
                payload: object = _MISSING
                try:
                    if name is not None:
                        job = jobs.get(name)
                        if job is not None:
                            envelope = job.envelope_decoder.decode(body)  # type: ignore[union-attr]  # set by define_job
                            if envelope.job_name == name:
                                payload = envelope.payload
                    else:
                        loose = ENVELOPE_DECODER.decode(body)
                        job = jobs.get(loose.job_name)
                        if job is not None:
                            payload = (job.decoder or JSON_DECODER).decode(loose.payload)
                except (msgspec.DecodeError, TypeError):
                    payload = _MISSING
                if payload is _MISSING or job is None:
                    mark = self._general_sync(item, lambda_context)
                else:
                    ctx = new_context(JobContext)
                    ctx.services = services
                    ctx.lambda_context = lambda_context
                    ctx._payload = payload  # the fast path builds contexts in place
                    ctx._body = body
                    ctx._message_id = message_id
                    ctx._attempt = attempt
                    ctx._sent = attributes
                    if on_start is not None:
                        self._call_sync(on_start, ctx.execution, ctx)
                    try:
                        returned = job.handler(payload, ctx)
                        if returned is not None and is_awaitable(returned):
                            self._event_loop().run_until_complete(_awaited(returned))
                        mark = None
                    except Exception as exc:  # noqa: BLE001  # every handler error becomes a decision
                        mark = self._failed_fast(item, job, ctx, exc, lambda_context)
                    else:
                        if on_complete is not None:
                            self._call_sync(on_complete, ctx.execution, ctx)
            if mark is not None:
                others.append(mark)
                if mark is not _SKIPPED:
                    if group is not None and mark.disposition == "failed" and type(group) is str:
                        blocked = blocked or set()
                        blocked.add(group)
                    self._log_settled(mark)
            marks.append(mark)
        return marks

    def _general_sync(self, item: object, lambda_context: LambdaContext | None) -> Settled:
        record = self._convert(item)
        if not isinstance(record, SQSRecord):
            return record
        return self._process_sync(record, lambda_context)

    def _failed_fast(
        self,
        item: object,
        job: Job[Any],
        ctx: JobContext,
        error: Exception,
        lambda_context: LambdaContext | None,
    ) -> Settled:
        """Settle a fast-path record whose handler raised (the handler never runs again)."""
        execution = ctx.execution
        if self.hooks.on_job_failed is not None:
            self._call_sync(self.hooks.on_job_failed, execution, ctx, error)
        record = self._convert(item)
        if not isinstance(record, SQSRecord):
            record = SQSRecord(message_id=execution.message_id, body=str(item.get("body", "")))  # type: ignore[attr-defined]  # a dict: the fast path read it
        decision = decide_retry(
            error,
            attempt=execution.attempt_number,
            policy=job.retry,
            jitter=self._jitter(),
            job_name=job.name,
        )
        result = RecordResult(
            record=record,
            outcome=decision,
            attempt=execution.attempt_number,
            job=job,
            execution=execution,
            ran=True,
        )
        return self._drive_sync(self._settle(result, lambda_context, 0.0, ctx))

    def _steps(self, record: SQSRecord, lambda_context: LambdaContext | None) -> _Steps:
        """One record through the general path, as the calls to make (hooks, the handler).

        The sync and async drivers (`_drive_sync`, `_drive_async`) perform each
        call and send back the handler's error, if any; hooks' errors are
        logged by the drivers and never sent back.
        """
        prepared = prepare_record(record, self.registry, max_body_bytes=self.max_body_bytes)
        if isinstance(prepared, RecordResult):
            ctx = None
            if self.hooks.on_job_failed is not None and _invalid_payload(prepared):
                ctx = self._context(prepared, lambda_context)
                yield _Call(self.hooks.on_job_failed, (prepared.execution, ctx, _error_of(prepared.outcome)))
            return (yield from self._settle(prepared, lambda_context, 0.0, ctx))
        ctx = self._context(prepared, lambda_context)
        execution = prepared.execution
        if self.hooks.on_job_start is not None:
            yield _Call(self.hooks.on_job_start, (execution, ctx))
        started = time.perf_counter()
        error = yield _Call(prepared.job.handler, (execution.payload, ctx), hook=False)
        duration = time.perf_counter() - started
        if error is not None:
            result = prepared.result(
                decide_retry(
                    error,
                    attempt=prepared.attempt,
                    policy=prepared.job.retry,
                    jitter=self._jitter(),
                    job_name=prepared.job.name,
                )
            )
            if self.hooks.on_job_failed is not None:
                yield _Call(self.hooks.on_job_failed, (execution, ctx, error))
            return (yield from self._settle(result, lambda_context, duration, ctx))
        if self.hooks.on_job_complete is not None:
            yield _Call(self.hooks.on_job_complete, (execution, ctx))
        return Settled(result=prepared.result(ACK), disposition="succeeded", duration=duration)

    def _settle(
        self,
        result: RecordResult,
        lambda_context: LambdaContext | None,
        duration: float,
        ctx: JobContext | None = None,
    ) -> _Steps:
        """Perform a failed record's outcome; the dead-letter hook follows a DLQ send that worked."""
        outcome = result.outcome
        disposition = self._disposition(result)
        if (
            disposition == "dead_lettered"
            and isinstance(outcome, DeadLetter)
            and result.execution is not None
            and self.hooks.on_job_dead_letter is not None
        ):
            hook_ctx = ctx or self._context(result, lambda_context)
            yield _Call(self.hooks.on_job_dead_letter, (result.execution, hook_ctx, outcome.error))
        return Settled(result=result, disposition=disposition, duration=duration)

    def _process_sync(self, record: SQSRecord, lambda_context: LambdaContext | None) -> Settled:
        return self._drive_sync(self._steps(record, lambda_context))

    def _drive_sync(self, steps: _Steps) -> Settled:
        try:
            call = next(steps)
            while True:
                call = steps.send(self._perform_sync(call))
        except StopIteration as done:
            settled: Settled = done.value
            return settled

    async def _drive_async(self, steps: _Steps) -> Settled:
        try:
            call = next(steps)
            while True:
                call = steps.send(await self._perform_async(call))
        except StopIteration as done:
            settled: Settled = done.value
            return settled

    def _perform_sync(self, call: _Call) -> Exception | None:
        try:
            returned = call.fn(*call.args)
            if is_awaitable(returned):
                self._event_loop().run_until_complete(_awaited(returned))
        except Exception as exc:  # noqa: BLE001  # a handler's error is data; a hook's is logged
            return self._call_failed(call, exc)
        return None

    async def _perform_async(self, call: _Call) -> Exception | None:
        try:
            returned = call.fn(*call.args)
            if is_awaitable(returned):
                await returned
        except Exception as exc:  # noqa: BLE001  # a handler's error is data; a hook's is logged
            return self._call_failed(call, exc)
        return None

    def _call_failed(self, call: _Call, error: Exception) -> Exception | None:
        if not call.hook:
            return error
        self._log.error(
            "hook %s raised; the outcome is unchanged",
            getattr(call.fn, "__name__", call.fn),
            exc_info=(type(error), error, error.__traceback__),
        )
        return None

    async def _run_async(self, raw: list[object], lambda_context: LambdaContext | None) -> list[Settled]:
        import asyncio  # noqa: PLC0415  # only modules with async jobs or hooks load asyncio

        semaphore = asyncio.Semaphore(self.max_concurrency)
        settled: list[Settled] = [_SKIPPED] * len(raw)
        records: dict[int, SQSRecord] = {}
        lanes: dict[str, list[int]] = {}
        for index, item in enumerate(raw):
            record = self._convert(item)
            if not isinstance(record, SQSRecord):
                settled[index] = record
                continue
            records[index] = record
            group = record.attributes.message_group_id
            lanes.setdefault(group if group is not None else f"\0{index}", []).append(index)

        async def run_lane(indexes: list[int]) -> None:
            blocked = False
            for index in indexes:
                record = records[index]
                if blocked:
                    item = Settled(
                        result=RecordResult(record=record, outcome=_DEFER_GROUP, attempt=0),
                        disposition="failed",
                    )
                else:
                    async with semaphore:
                        if self._out_of_time(lambda_context):
                            item = Settled(
                                result=RecordResult(record=record, outcome=_DEFER_TIME, attempt=0),
                                disposition="failed",
                            )
                        else:
                            item = await self._process_async(record, lambda_context)
                blocked = blocked or (
                    record.attributes.message_group_id is not None and item.disposition == "failed"
                )
                self._log_settled(item)
                settled[index] = item

        await asyncio.gather(*(run_lane(indexes) for indexes in lanes.values()))
        return settled

    async def _process_async(self, record: SQSRecord, lambda_context: LambdaContext | None) -> Settled:
        return await self._drive_async(self._steps(record, lambda_context))

    def _disposition(self, result: RecordResult) -> Disposition:
        """Perform a dead-letter decision; map every outcome to how the record ends."""
        outcome = result.outcome
        match outcome:
            case Ack():
                return "succeeded"
            case Retry() | Defer():
                return "failed"
            case Discard():
                return "discarded"
            case DeadLetter():
                return "dead_lettered" if self._send_dead_letter(result, outcome) else "failed"
            case _:
                assert_never(outcome)

    def _send_dead_letter(self, result: RecordResult, outcome: DeadLetter) -> bool:
        record = result.record
        execution = result.execution
        info = DeadLetterInfo(
            reason=outcome.reason,
            error_type=type(outcome.error).__name__,
            error_message=_error_text(outcome.error),
            attempt=result.attempt,
            source_queue=record.event_source_arn,
            job_name=execution.job_name if execution is not None else None,
            job_id=execution.job_id if execution is not None else None,
        )
        driver = self.driver
        if driver is None:
            self._log.error(
                "message %s: no driver to dead-letter it (%s); reported failed so SQS redrives it",
                record.message_id,
                outcome.reason,
                extra={"message_id": record.message_id, "outcome": "failed"},
            )
            return False
        try:
            driver.dead_letter(record, info)
        except Exception as exc:  # noqa: BLE001  # a failed DLQ send must never lose the message
            self._log.error(
                "message %s: dead-letter send failed, reported failed instead: %s",
                record.message_id,
                exc,
                extra={"message_id": record.message_id, "outcome": "failed"},
            )
            return False
        return True

    def _apply_visibility(self, settled: Sequence[Settled]) -> None:
        changes = [
            VisibilityChange(
                message_id=m.result.record.message_id,
                receipt_handle=m.result.record.receipt_handle,
                seconds=m.result.outcome.delay,
                source_queue=m.result.record.event_source_arn,
            )
            for m in settled
            if isinstance(m.result.outcome, Retry) and m.result.outcome.delay is not None
        ]
        if not changes:
            return
        driver = self.driver
        if driver is None:
            self._log.warning(
                "no driver to apply backoff to %d records; the queue's visibility timeout applies",
                len(changes),
            )
            return
        try:
            driver.change_visibility(changes)
        except Exception as exc:  # noqa: BLE001  # the records stay reported failed either way
            self._log.warning("could not change visibility of %d records: %s", len(changes), exc)

    @property
    def driver(self) -> WorkerDriver | None:
        """The worker-side driver; on Lambda without one, an `SQSQueueDriver` made on first use."""
        if not self._driver_resolved:
            self._driver_resolved = True
            self._driver = _default_driver(self._log)
        return self._driver

    # --- helpers --------------------------------------------------------------

    def _context(self, prepared: Runnable | RecordResult, lambda_context: LambdaContext | None) -> JobContext:
        execution = prepared.execution
        assert execution is not None
        return JobContext(services=self.services, execution=execution, lambda_context=lambda_context)

    def _call_sync(self, hook: Callable[..., object], *args: object) -> None:
        self._perform_sync(_Call(hook, args))

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        return thread_loop()

    def _log_settled(self, item: Settled) -> None:
        disposition = item.disposition
        level = _LEVELS[disposition]
        if not self._log.isEnabledFor(level):
            return
        result = item.result
        outcome = result.outcome
        execution = result.execution
        fields: dict[str, object] = {
            "message_id": result.record.message_id,
            "job_name": execution.job_name if execution is not None else None,
            "job_id": execution.job_id if execution is not None else None,
            "attempt": result.attempt,
            "outcome": disposition,
            "duration_ms": round(item.duration * 1000, 3),
        }
        if self.log_payloads and execution is not None:
            fields["payload"] = _payload_text(execution.payload)
        detail = ""
        match outcome:
            case Retry(delay=delay, error=error):
                fields["retry_in"] = delay
                fields["error"] = f"{type(error).__name__}: {error}"
                when = "the visibility timeout" if delay is None else f"{delay}s"
                detail = f" ({type(error).__name__}: {error}; retry in {when})"
            case DeadLetter(reason=reason, error=error) | Discard(reason=reason, error=error):
                fields["reason"] = reason
                fields["error"] = f"{type(error).__name__}: {_error_text(error)}"
                detail = f" ({reason}: {type(error).__name__}: {_error_text(error)})"
            case Defer(reason=reason):
                fields["reason"] = reason
                detail = f" ({reason})"
            case Ack():
                detail = ""
            case _:
                assert_never(outcome)
        if disposition == "failed" and isinstance(outcome, DeadLetter):
            detail += " [dead-letter send failed]"
        name = fields["job_name"] or "?"
        self._log.log(
            level,
            "job %s %s message %s attempt %d%s",
            name,
            disposition,
            result.record.message_id,
            result.attempt,
            detail,
            extra=fields,
        )

    # --- direct invocations ---------------------------------------------------

    def run_direct(self, event: object, context: object = None) -> dict[str, object]:
        """Run the job an EventBridge (or direct) invocation names, once.

        Raises:
            InvalidEventError: The event names no job.
            UnknownJobError: The job is not registered.
            InvalidJobPayloadError: The payload does not fit the job's type.
            Exception: Whatever the job raised, so Lambda's async retries apply.
        """
        name, payload, event_id, at = _direct_call(event)
        job = self.registry.get(name)
        if job is None:
            raise UnknownJobError(name, known=list(self.registry.jobs))
        value = _convert_direct(job, payload)
        lambda_context = _lambda_context(context)
        execution = JobExecution(
            job_id=event_id or new_id(),
            job_name=name,
            payload=value,
            attempt_number=1,
            enqueued_at=at or datetime.now(UTC),
            metadata={},
            message_id=event_id or "",
        )
        ctx = JobContext(services=self.services, execution=execution, lambda_context=lambda_context)
        loop_needed = self._use_loop
        runner = self._event_loop().run_until_complete if loop_needed else None
        if self.hooks.on_job_start is not None:
            self._call_sync(self.hooks.on_job_start, execution, ctx)
        try:
            returned = job.handler(value, ctx)
            if is_awaitable(returned):
                (runner or self._event_loop().run_until_complete)(_awaited(returned))
        except Exception as exc:
            if self.hooks.on_job_failed is not None:
                self._call_sync(self.hooks.on_job_failed, execution, ctx, exc)
            self._log.error(
                "job %s failed on a direct invocation: %s",
                name,
                exc,
                extra={"job_name": name, "job_id": execution.job_id, "outcome": "failed"},
            )
            raise
        if self.hooks.on_job_complete is not None:
            self._call_sync(self.hooks.on_job_complete, execution, ctx)
        return {"jobName": name, "jobId": execution.job_id, "status": "succeeded"}


_LEVELS: Final[dict[Disposition, int]] = {
    "succeeded": logging.DEBUG,
    "failed": logging.INFO,
    "discarded": logging.WARNING,
    "dead_lettered": logging.ERROR,
}


def _payload_text(payload: object) -> str:
    try:
        text = msgspec.json.encode(payload).decode()
    except (msgspec.EncodeError, TypeError):
        text = repr(payload)
    return text if len(text) <= 2_000 else f"{text[:2_000]}..."


def _lambda_context(context: object) -> LambdaContext | None:
    if callable(getattr(context, "get_remaining_time_in_millis", None)):
        return cast("LambdaContext", context)
    return None


def _invalid_payload(result: RecordResult) -> bool:
    outcome = result.outcome
    return (
        result.execution is not None
        and isinstance(outcome, DeadLetter | Discard)
        and outcome.reason == "invalid_payload"
    )


def _error_of(outcome: Outcome) -> BaseException:
    match outcome:
        case Retry(error=error) | DeadLetter(error=error) | Discard(error=error):
            return error
        case Defer(reason=reason):
            return GlassworkError(reason)
        case _:
            return GlassworkError("succeeded")


async def _awaited(awaitable: Awaitable[object]) -> object:
    return await awaitable


def _direct_call(event: object) -> tuple[str, object, str | None, datetime | None]:
    expected = (
        "expected an SQS event ({'Records': [...]}) or a job invocation "
        "({'jobName': ..., 'payload': ...}, also under EventBridge's 'detail')"
    )
    if not isinstance(event, Mapping):
        msg = f"{expected}, got {type(event).__name__}"
        raise InvalidEventError(msg)
    source: Mapping[str, object] = event
    name = event.get("jobName")
    if name is None and isinstance(event.get("detail"), Mapping):
        source = event["detail"]
        name = source.get("jobName", source.get("name"))
    if not isinstance(name, str) or not name:
        keys = ", ".join(sorted(str(k) for k in event)) or "none"
        msg = f"{expected}; this event has keys: {keys}"
        raise InvalidEventError(msg)
    event_id = event.get("id")
    at = None
    when = event.get("time")
    if isinstance(when, str):
        try:
            at = datetime.fromisoformat(when)
        except ValueError:
            at = None
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
    return name, source.get("payload"), event_id if isinstance(event_id, str) else None, at


def _convert_direct(job: Job[Any], payload: object) -> object:
    if job.decoder is None:
        return payload
    try:
        return job.decoder.decode(msgspec.json.encode(payload))
    except (msgspec.DecodeError, msgspec.EncodeError, TypeError) as exc:
        msg = f"job {job.name!r}: invalid payload: {exc}"
        raise InvalidJobPayloadError(msg, job_name=job.name) from exc


def _default_driver(log: logging.Logger) -> WorkerDriver | None:
    try:
        from glasswork.drivers.sqs import (  # noqa: PLC0415  # boto3 only when needed
            SQSQueueDriver,
        )
    except ImportError as exc:
        log.error(
            "no worker driver given and the SQS driver cannot load (%s); install glasswork[sqs]",
            exc,
        )
        return None
    return SQSQueueDriver()


def _build_services(registry: JobRegistry) -> Services:
    values: dict[str, object] = {}
    for name, factory in registry.service_factories.items():
        try:
            values[name] = factory()
        except Exception as exc:
            msg = f"service {name!r} failed to start: {type(exc).__name__}: {exc}"
            raise ServiceError(msg) from exc
    return Services(values)


def bootstrap_worker(
    *,
    module: Module,
    hooks: WorkerHooks | None = None,
    driver: WorkerDriver | None = None,
    max_concurrency: int = 10,
    time_margin: Duration = 1.0,
    jitter: Callable[[], float] = random.random,
    logger: logging.Logger | None = None,
    max_body_bytes: int = MAX_MESSAGE_BYTES,
    log_payloads: bool = False,
) -> Worker:
    """Check a module tree, start its services and return the Lambda handler.

    Call it at module level of your handler file so the work happens once per
    cold start: `handler = bootstrap_worker(module=app)`.

    Args:
        module: The root of the module tree.
        hooks: Lifecycle hooks.
        driver: The worker-side driver (dead-letter, visibility). `None` makes
            an `SQSQueueDriver` on first need (requires the `sqs` extra).
        max_concurrency: How many `async def` jobs of one batch run at once;
            records of one FIFO message group always run in order.
        time_margin: Do not start a record with less Lambda time than this left
            (seconds or `timedelta`); it is reported failed instead.
        jitter: Draws the full-jitter factor in `[0, 1]` for backoff.
        logger: Where outcomes are logged (default `glasswork.worker`).
        max_body_bytes: A larger message body is dead-lettered as poison
            without being decoded (SQS's own limit is 1 MiB).
        log_payloads: Add the payload (as JSON, cut to 2,000 characters) to
            outcome logs. Off by default: payloads may hold personal data.

    Returns:
        The handler: `handler(event, context) -> dict`.

    Raises:
        ConfigurationError: A duplicate job name, an import cycle or a bad option.
        ServiceError: A service factory raised.
    """
    if max_concurrency < 1:
        msg = f"max_concurrency must be >= 1, got {max_concurrency}"
        raise ConfigurationError(msg)
    margin = to_seconds(time_margin)
    if margin < 0:
        msg = f"time_margin must be >= 0, got {time_margin!r}"
        raise ConfigurationError(msg)
    registry = JobRegistry.from_module(module)
    return Worker(
        registry=registry,
        services=_build_services(registry),
        hooks=hooks or WorkerHooks(),
        driver=driver,
        max_concurrency=max_concurrency,
        time_margin_ms=int(margin * 1000),
        jitter=jitter,
        logger=logger or _log,
        max_body_bytes=max_body_bytes,
        log_payloads=log_payloads,
    )
