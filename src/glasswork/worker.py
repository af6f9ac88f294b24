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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias, assert_never

import msgspec

from glasswork._events import as_lambda_context, direct_call
from glasswork._jobs import JobRegistry, Module
from glasswork._runtime import is_async_callable, is_awaitable, new_id, run_on_thread_loop
from glasswork._settle import (
    BatchReport,
    Disposition,
    Settled,
    error_text,
    failed_ids,
    log_outcome,
    named_job,
)
from glasswork._wire import MAX_MESSAGE_BYTES, JobExecution, format_timestamp
from glasswork.context import JobContext, LambdaContext, Services
from glasswork.core import (
    Ack,
    DeadLetter,
    Defer,
    Discard,
    Duration,
    Job,
    Outcome,
    RecordOptions,
    RecordResult,
    Retry,
    Runner,
    _record_group,
    _run_record,
    _run_record_async,
    _succeeded,
    to_seconds,
)
from glasswork.drivers.base import DeadLetterInfo, VisibilityChange, WorkerDriver
from glasswork.errors import (
    ConfigurationError,
    GlassworkError,
    InvalidEventError,
    InvalidJobPayloadError,
    RetryExhaustedError,
    ServiceError,
    UnknownJobError,
)
from glasswork.tracing import ProcessSpan, Tracing

__all__ = [
    "BatchCallback",
    "BatchReport",
    "Disposition",
    "Settled",
    "Worker",
    "WorkerHooks",
    "bootstrap_worker",
]

_log: Final = logging.getLogger("glasswork.worker")

StartHook: TypeAlias = Callable[[JobExecution, JobContext], object | Awaitable[object]]
ErrorHook: TypeAlias = Callable[[JobExecution, JobContext, BaseException], object | Awaitable[object]]
_HookCall: TypeAlias = tuple[Callable[..., object], tuple[object, ...]]
BatchCallback: TypeAlias = Callable[[BatchReport], object]
"""`on_batch(report)`: called after every SQS batch with how each record ended (see `glasswork.metrics`)."""
_STOP: Final = (KeyboardInterrupt, SystemExit, GeneratorExit)


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


_NOT_SQS: Final = object()


class _NoSpan:
    """The span of a record when tracing is off: records nothing."""

    __slots__ = ()

    def settled(self, done: Settled) -> None:
        pass


_UNTRACED: Final[AbstractContextManager[ProcessSpan]] = nullcontext(_NoSpan())


class Worker:
    """A Lambda handler for a module tree; call it as `worker(event, context)`.

    Made by `bootstrap_worker`. Attributes are read-only configuration; the
    only state kept between invocations is per process (services, the default
    driver, the sources whose redrive policy was checked) or per thread (the
    event loop for async jobs). Each record goes through `process_record`;
    this shell fires the hooks, performs the outcome and answers Lambda.
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
        tracing: Tracing | None = None,
        on_batch: BatchCallback | None = None,
    ) -> None:
        self.registry = registry
        self.services = services
        self.hooks = hooks
        self.max_concurrency = max_concurrency
        self.time_margin_ms = time_margin_ms
        self.max_body_bytes = max_body_bytes
        self.log_payloads = log_payloads
        self.tracing = tracing
        self.on_batch = on_batch
        self._driver = driver
        self._driver_resolved = driver is not None
        self._given_driver = driver
        name = getattr(driver, "name", None)
        self._driver_name = name if isinstance(name, str) else None  # for spans: "sqlite", "redis", ...
        self._jitter = jitter
        self._log = logger
        self._use_loop = hooks.any_async() or any(j.is_async for j in registry.jobs.values())
        self._checked_sources: set[str] = set()
        self._record_options = RecordOptions(
            services=services,
            time_margin_ms=time_margin_ms,
            max_body_bytes=max_body_bytes,
            jitter=jitter,
        )
        self._on_start = hooks.on_job_start
        self._run_sync_job: Runner | None = self._call_job if hooks.on_job_start is not None else None
        self._run_async_job = self._call_job_async

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
        unsettled = self._run_batch(raw, context, every=False)
        if not unsettled:
            return {"batchItemFailures": []}
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed_ids(unsettled)]}

    def process_batch(self, event: Mapping[str, object], context: object = None) -> BatchReport:
        """Run an SQS event's records and settle each one; never raises for an SQS batch.

        Returns:
            How every record ended (the handler returns `report.response()`).

        Raises:
            InvalidEventError: `Records` is not a list, or its first record
                comes from another event source; nothing has run.
        """
        return BatchReport(settled=self._run_batch(event.get("Records"), context, every=True))

    # --- SQS batches ----------------------------------------------------------

    def _run_batch(self, raw: object, context: object, *, every: bool) -> list[Settled]:
        """Settle every record; return them all (`every`), or only those that did not succeed."""
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
        lambda_context = as_lambda_context(context)
        on_batch = self.on_batch
        every = every or on_batch is not None
        if self._use_loop:
            settled = run_on_thread_loop(self._run_async(raw, lambda_context, every))
        elif self.tracing is None:
            settled = self._run_sync(raw, lambda_context, every)
        else:
            settled = self._run_sync_traced(raw, lambda_context, every, self.tracing)
        if settled:
            if type(first) is not dict or first.get("eventSourceARN") not in self._checked_sources:
                self._check_failed_sources(settled)  # Lambda never mixes queues: else done already
            self._apply_visibility(settled)
        if on_batch is not None:
            self._report_batch(on_batch, settled)
        return settled

    def _report_batch(self, on_batch: BatchCallback, settled: list[Settled]) -> None:
        """Call `on_batch` with the whole batch; what it raises is logged and changes nothing."""
        try:
            on_batch(BatchReport(settled=settled))
        except _STOP:
            raise
        except BaseException as exc:  # noqa: BLE001  # a batch callback never changes an outcome
            self._hook_failed(on_batch, exc)

    def _run_sync_traced(
        self, raw: list[object], lambda_context: LambdaContext | None, every: bool, tracing: Tracing
    ) -> list[Settled]:
        """`_run_sync`, one record at a time, each inside its tracing span."""
        driver_name = self._driver_name
        blocked: set[str] = set()
        settled: list[Settled] = []
        for item in raw:
            with tracing.process(item, driver_name) as span:
                done = self._run_sync([item], lambda_context, True, blocked)[0]
                span.settled(done)
            if every or done.disposition != "succeeded":
                settled.append(done)
        return settled

    def _options(self, lambda_context: LambdaContext | None) -> RecordOptions:
        """The batch's `RecordOptions`: the worker's own, with this invocation's Lambda context."""
        if lambda_context is None:
            return self._record_options
        return msgspec.structs.replace(self._record_options, lambda_context=lambda_context)

    def _run_sync(
        self,
        raw: list[object],
        lambda_context: LambdaContext | None,
        every: bool,
        blocked: set[str] | None = None,
    ) -> list[Settled]:
        """Run the records one after another (see `_run_batch` for `every`; `blocked`: FIFO groups)."""
        options = self._options(lambda_context)
        remaining = lambda_context.get_remaining_time_in_millis if lambda_context is not None else None
        jobs, run, clock = self.registry, self._run_sync_job, time.perf_counter
        debug = self._log.isEnabledFor(logging.DEBUG)
        if blocked is None:
            blocked = set()
        settled: list[Settled] = []
        on_complete = self.hooks.on_job_complete
        for item in raw:
            started = clock()
            time_left = remaining() if remaining is not None else None
            result = _run_record(item, jobs, run, blocked, time_left, options)
            if type(result) is JobContext:  # the handler returned: a success (see `_run_record`)
                ctx = result
                if on_complete is not None:
                    try:  # `_fire`, inline: this runs after every success
                        completed = on_complete(ctx.execution, ctx)
                        if completed is not None and is_awaitable(completed):
                            run_on_thread_loop(completed)
                    except _STOP:
                        raise
                    except BaseException as exc:  # noqa: BLE001  # a hook never changes an outcome
                        self._hook_failed(on_complete, exc)
                if every or debug:
                    done = Settled(
                        result=_succeeded(ctx), disposition="succeeded", duration=clock() - started
                    )
                    if debug:
                        log_outcome(self._log, done, log_payloads=self.log_payloads)
                    settled.append(done)
                continue
            assert type(result) is RecordResult
            call = self._after_run(result)
            if call is not None:
                self._fire(*call)
            disposition = self._perform(result)
            call = self._after_perform(result, disposition)
            if call is not None:
                self._fire(*call)
            done = Settled(result=result, disposition=disposition, duration=clock() - started)
            self._settled(done, blocked)
            settled.append(done)
        return settled

    async def _run_async(
        self, raw: list[object], lambda_context: LambdaContext | None, every: bool
    ) -> list[Settled]:
        """Run the records concurrently, up to `max_concurrency`, each FIFO group in order."""
        import asyncio  # noqa: PLC0415  # only modules with async jobs or hooks load asyncio

        options = self._options(lambda_context)
        remaining = lambda_context.get_remaining_time_in_millis if lambda_context is not None else None
        semaphore = asyncio.Semaphore(self.max_concurrency)
        blocked: set[str] = set()
        settled: list[Settled | None] = [None] * len(raw)
        lanes: dict[str | int, list[int]] = {}
        for index, item in enumerate(raw):
            group = _record_group(item)
            lanes.setdefault(group if group is not None else index, []).append(index)

        tracing, driver_name = self.tracing, self._driver_name

        async def run_lane(indexes: list[int]) -> None:
            for index in indexes:
                async with semaphore:
                    traced = tracing.process(raw[index], driver_name) if tracing is not None else _UNTRACED
                    with traced as span:
                        done = await run_one(index)
                        span.settled(done)
                self._settled(done, blocked)
                settled[index] = done

        async def run_one(index: int) -> Settled:
            """One record: run it, fire its hooks, perform its outcome (the caller holds the semaphore)."""
            started = time.perf_counter()
            time_left = remaining() if remaining is not None else None
            result = await _run_record_async(
                raw[index], self.registry, self._run_async_job, blocked, time_left, options
            )
            call = self._after_run(result)
            if call is not None:
                await self._fire_async(*call)
            disposition = self._perform(result)
            call = self._after_perform(result, disposition)
            if call is not None:
                await self._fire_async(*call)
            duration = time.perf_counter() - started
            return Settled(result=result, disposition=disposition, duration=duration)

        await asyncio.gather(*(run_lane(indexes) for indexes in lanes.values()))
        return [done for done in settled if done is not None and (every or done.disposition != "succeeded")]

    def _settled(self, done: Settled, blocked: set[str]) -> None:
        """Log a settled record; a record reported failed blocks the rest of its FIFO group."""
        result = done.result
        if done.disposition == "failed" and result.group is not None and result.message_id:
            blocked.add(result.group)
        if done.disposition != "succeeded" or self._log.isEnabledFor(logging.DEBUG):
            log_outcome(self._log, done, log_payloads=self.log_payloads)

    # --- running jobs and hooks -------------------------------------------------

    def _call_job(self, job: Job[Any], payload: object, ctx: JobContext) -> object:
        """The sync shell's runner: the start hook, then the handler (async ones on the thread's loop)."""
        on_start = self._on_start
        if on_start is not None:
            try:  # `_fire`, inline: this runs before every handler
                started = on_start(ctx.execution, ctx)
                if started is not None and is_awaitable(started):
                    run_on_thread_loop(started)
            except _STOP:
                raise
            except BaseException as exc:  # noqa: BLE001  # a hook never changes an outcome
                self._hook_failed(on_start, exc)
        returned = job.handler(payload, ctx)
        if returned is not None and is_awaitable(returned):
            return run_on_thread_loop(returned)
        return returned

    async def _call_job_async(self, job: Job[Any], payload: object, ctx: JobContext) -> object:
        """The async shell's runner: the start hook, then the handler, awaited."""
        on_start = self.hooks.on_job_start
        if on_start is not None:
            await self._fire_async(on_start, (ctx.execution, ctx))
        returned = job.handler(payload, ctx)
        if returned is not None and is_awaitable(returned):
            return await returned
        return returned

    def _after_run(self, result: RecordResult) -> _HookCall | None:
        """`on_job_complete` after a success; `on_job_failed` after a handler error or an invalid payload."""
        ctx = result.context
        if ctx is None:
            return None
        outcome = result.outcome
        if type(outcome) is Ack:
            complete = self.hooks.on_job_complete
            return (complete, (ctx.execution, ctx)) if complete is not None else None
        failed = self.hooks.on_job_failed
        if failed is None or not (result.ran or _invalid_payload(outcome)):
            return None
        return failed, (ctx.execution, ctx, _error_of(outcome))

    def _after_perform(self, result: RecordResult, disposition: Disposition) -> _HookCall | None:
        """`on_job_dead_letter` once the message reached the dead-letter queue, when its job is known."""
        ctx = result.context
        hook = self.hooks.on_job_dead_letter
        outcome = result.outcome
        if ctx is None or hook is None or disposition != "dead_lettered":
            return None
        if not isinstance(outcome, DeadLetter):
            return None
        return hook, (ctx.execution, ctx, outcome.error)

    def _fire(self, hook: Callable[..., object], args: tuple[object, ...]) -> None:
        """Call a hook; whatever it raises is logged and changes nothing."""
        try:
            returned = hook(*args)
            if returned is not None and is_awaitable(returned):
                run_on_thread_loop(returned)
        except _STOP:
            raise
        except BaseException as exc:  # noqa: BLE001  # a hook never changes an outcome
            self._hook_failed(hook, exc)

    async def _fire_async(self, hook: Callable[..., object], args: tuple[object, ...]) -> None:
        """`_fire` on the running loop."""
        try:
            returned = hook(*args)
            if returned is not None and is_awaitable(returned):
                await returned
        except _STOP:
            raise
        except BaseException as exc:  # noqa: BLE001  # a hook never changes an outcome
            self._hook_failed(hook, exc)

    def _hook_failed(self, hook: Callable[..., object], error: BaseException) -> None:
        self._log.error(
            "hook %s raised; the outcome is unchanged",
            getattr(hook, "__name__", hook),
            exc_info=(type(error), error, error.__traceback__),
        )

    # --- performing outcomes ----------------------------------------------------

    def _perform(self, result: RecordResult) -> Disposition:
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
            error_message=error_text(outcome.error),
            attempt=result.attempt,
            source_queue=record.event_source_arn,
            job_name=execution.job_name if execution is not None else named_job(outcome.error),
            job_id=execution.job_id if execution is not None else None,
        )
        driver = self._driver_for(record.event_source_arn)
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
        except _STOP:
            raise
        except BaseException as exc:  # noqa: BLE001  # a failed DLQ send must never lose the message
            self._log.error(
                "message %s: dead-letter send failed, reported failed instead: %s",
                record.message_id,
                exc,
                extra={"message_id": record.message_id, "outcome": "failed"},
            )
            return False
        return True

    def _apply_visibility(self, settled: Sequence[Settled]) -> None:
        changes: list[VisibilityChange] = []
        for done in settled:
            outcome = done.result.outcome
            if type(outcome) is Retry and outcome.delay is not None:
                record = done.result.record
                changes.append(
                    VisibilityChange(
                        message_id=record.message_id,
                        receipt_handle=record.receipt_handle,
                        seconds=outcome.delay,
                        source_queue=record.event_source_arn,
                    )
                )
        if not changes:
            return
        driver = None
        for source in dict.fromkeys(change.source_queue for change in changes):
            driver = self._driver_for(source)
        if driver is None:
            self._log.warning(
                "no driver to apply backoff to %d records; the queue's visibility timeout applies",
                len(changes),
            )
            return
        try:
            driver.change_visibility(changes)
        except _STOP:
            raise
        except BaseException as exc:  # noqa: BLE001  # the records stay reported failed either way
            self._log.warning("could not change visibility of %d records: %s", len(changes), exc)

    def _driver_for(self, source_arn: str) -> WorkerDriver | None:
        """The driver, made on first need; the source queue's redrive policy is checked once, then."""
        driver = self.driver
        if driver is not None and source_arn and source_arn not in self._checked_sources:
            self._checked_sources.add(source_arn)
            self._check_redrive(driver, source_arn)
        return driver

    def _check_failed_sources(self, settled: Sequence[Settled]) -> None:
        """Check the redrive policy of each source queue once, at its first failed record.

        A failure that needs no driver (a retry at the queue's visibility
        timeout) is exactly when SQS may redrive a message before its last
        attempt, so the check does not wait for a dead letter or a backoff.
        Successes and deferred records never make the driver: a cold start
        and a batch that succeeds touch neither boto3 nor the queue.
        """
        checked = self._checked_sources
        for done in settled:
            outcome_type = type(done.result.outcome)
            if outcome_type is Ack or outcome_type is Defer:
                continue
            raw = done.result.raw
            source = raw.get("eventSourceARN") if type(raw) is dict else done.result.record.event_source_arn
            if type(source) is str and source and source not in checked:
                self._driver_for(source)

    def _check_redrive(self, driver: WorkerDriver, arn: str) -> None:
        """Warn when the source queue's `maxReceiveCount` is below a job's attempts, naming those jobs.

        Asks the driver's `check_redrive(arn, attempts)` (a driver without it
        has no redrive policy to check) for each distinct `max_attempts`,
        largest first, until one fits; the SQS driver reads the policy once.
        """
        check = getattr(driver, "check_redrive", None)
        if check is None:
            return
        by_attempts: dict[int, list[str]] = {}
        for job in self.registry.jobs.values():
            by_attempts.setdefault(job.retry.max_attempts, []).append(job.name)
        over: list[str] = []
        warning: str | None = None
        try:
            unreadable = check(arn, 1)  # every queue allows a first receive: this says it cannot tell
            if unreadable:
                self._log.warning("%s", unreadable)
                return
            for attempts in sorted(by_attempts, reverse=True):
                text = check(arn, attempts)
                if not text:
                    break
                warning = warning or text
                over += [f"{name!r} ({attempts})" for name in sorted(by_attempts[attempts])]
        except Exception as exc:  # noqa: BLE001  # a failed check must not fail the batch
            self._log.debug("could not check the redrive policy of %s: %s", arn, exc)
            return
        if warning:
            self._log.warning(
                "%s. Jobs whose max_attempts exceed it: %s. Leave a margin above the largest: a "
                "record deferred by the time guard or by its FIFO group, a crashed invocation and a "
                "throttled receive also count as receives",
                warning,
                ", ".join(over),
            )

    def with_driver(self, driver: WorkerDriver) -> Worker:
        """This handler with another worker-side driver (dead letters and backoff).

        Everything else is shared, not rebuilt: the jobs, the services already
        started, the hooks, the logger and the limits. `glasswork worker`
        uses it to run your handler against a local queue.
        """
        return Worker(
            registry=self.registry,
            services=self.services,
            hooks=self.hooks,
            driver=driver,
            max_concurrency=self.max_concurrency,
            time_margin_ms=self.time_margin_ms,
            jitter=self._jitter,
            logger=self._log,
            max_body_bytes=self.max_body_bytes,
            log_payloads=self.log_payloads,
            tracing=self.tracing,
            on_batch=self.on_batch,
        )

    @property
    def explicit_driver(self) -> WorkerDriver | None:
        """The driver given to `bootstrap_worker`, if any (never makes the default one)."""
        return self._given_driver

    @property
    def driver(self) -> WorkerDriver | None:
        """The worker-side driver; on Lambda without one, an `SQSQueueDriver` made on first use."""
        if not self._driver_resolved:
            self._driver_resolved = True
            self._driver = _default_driver(self._log)
        return self._driver

    # --- direct invocations ---------------------------------------------------

    def run_direct(self, event: object, context: object = None) -> dict[str, object]:
        """Run the job an EventBridge (or direct) invocation names, once, through `process_record`.

        The invocation becomes a one-record batch (attempt 1, the event's `id`
        as message and job id); hooks fire as for a record, but nothing is
        dead-lettered or retried by glasswork: a failure is raised so that
        Lambda's asynchronous retries and on-failure destination apply.

        Raises:
            InvalidEventError: The event names no job.
            UnknownJobError: The job is not registered.
            InvalidJobPayloadError: The payload does not fit the job's type.
            Exception: Whatever the job raised (an error that is not an
                `Exception`, such as `asyncio.CancelledError`, wrapped in a
                `GlassworkError`).
        """
        name, payload, event_id, at = direct_call(event)
        job = self.registry.get(name)
        if job is None:
            raise UnknownJobError(name, known=list(self.registry.jobs))
        job_id = event_id or new_id()
        try:
            body = msgspec.json.encode(
                {
                    "jobName": name,
                    "payload": payload,
                    "jobId": job_id,
                    "enqueuedAt": format_timestamp(at or datetime.now(UTC)),
                }
            ).decode()
        except (TypeError, ValueError, RecursionError) as exc:
            msg = f"job {name!r}: invalid payload: {exc}"
            raise InvalidJobPayloadError(msg, job_name=name) from exc
        record: dict[str, object] = {
            "messageId": job_id,
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
        }
        lambda_context = as_lambda_context(context)
        tracing = self.tracing
        with tracing.process(record, None) if tracing is not None else _UNTRACED as span:
            started = time.perf_counter()
            if self._use_loop:
                result = run_on_thread_loop(self._direct_async(record, lambda_context))
            else:
                options = self._options(lambda_context)
                ran = _run_record(record, self.registry, self._run_sync_job, (), None, options)
                result = ran if type(ran) is RecordResult else _succeeded(ran)  # type: ignore[arg-type]  # a JobContext
                call = self._after_run(result)
                if call is not None:
                    self._fire(*call)
            disposition: Disposition = "succeeded" if isinstance(result.outcome, Ack) else "failed"
            span.settled(
                Settled(result=result, disposition=disposition, duration=time.perf_counter() - started)
            )
        outcome = result.outcome
        if isinstance(outcome, Ack):
            return {"jobName": name, "jobId": job_id, "status": "succeeded"}
        error = _job_error(outcome)
        self._log.error(
            "job %s failed on a direct invocation: %s: %s",
            name,
            type(error).__name__,
            error,
            extra={"job_name": name, "job_id": job_id, "outcome": "failed"},
        )
        if isinstance(error, Exception):
            raise error
        msg = f"job {name!r} raised {type(error).__name__}"
        raise GlassworkError(msg) from error

    async def _direct_async(
        self, record: dict[str, object], lambda_context: LambdaContext | None
    ) -> RecordResult:
        options = self._options(lambda_context)
        result = await _run_record_async(record, self.registry, self._run_async_job, (), None, options)
        call = self._after_run(result)
        if call is not None:
            await self._fire_async(*call)
        return result


def _invalid_payload(outcome: Outcome) -> bool:
    return isinstance(outcome, DeadLetter | Discard) and outcome.reason == "invalid_payload"


def _error_of(outcome: Outcome) -> BaseException:
    match outcome:
        case Retry(error=error) | DeadLetter(error=error) | Discard(error=error):
            return error
        case Defer(reason=reason):
            return GlassworkError(reason)
        case _:
            return GlassworkError("succeeded")


def _job_error(outcome: Outcome) -> BaseException:
    """The error a failed job raised (not the `RetryExhaustedError` wrapped around it)."""
    error = _error_of(outcome)
    if isinstance(error, RetryExhaustedError) and error.__cause__ is not None:
        return error.__cause__
    return error


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
    tracing: Tracing | None = None,
    on_batch: BatchCallback | None = None,
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
        tracing: Opens a span per record, in the trace the message carries
            (`glasswork.otel.OpenTelemetryTracing`, the `otel` extra). `None`
            (the default) costs nothing.
        on_batch: Called after every SQS batch with its `BatchReport` (every
            record, its outcome and duration), for metrics such as
            `glasswork.metrics.EmbeddedMetrics`; what it raises is logged.
            `None` (the default) costs nothing: successes are then not even
            measured.

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
        tracing=tracing,
        on_batch=on_batch,
    )
