"""Helpers for testing jobs, modules and handlers, with pytest or anything else.

- Lambda SQS records and events exactly as AWS sends them (`sqs_record`,
  `job_record`, `sqs_event`, `job_body`) and a Lambda context whose remaining
  time you control (`FakeLambdaContext`).
- `run_job`: one job's handler run with a test context, its outcome returned
  as a value (`JobRun`), no queue involved.
- `bootstrap_test_worker`: the real worker for a module tree, with test
  services in place of the module's factories and a `MockQueueDriver`.

Hypothesis strategies live in `glasswork.testing_strategies` (it needs
`hypothesis`; this module does not). Not needed at runtime: `import glasswork`
does not import this module.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeAlias, TypeVar, assert_never

import msgspec

from glasswork._jobs import JobRegistry, Module, encode_payload, model_json
from glasswork._runtime import is_awaitable, run_on_thread_loop
from glasswork._wire import (
    JSON_DECODER,
    MAX_NESTING,
    JobExecution,
    JobMessage,
    SQSMessageAttribute,
    SQSRecord,
    SQSRecordAttributes,
    encode_message,
    format_timestamp,
    lambda_event,
    nested_deeper_than,
)
from glasswork.context import JobContext, LambdaContext, Services
from glasswork.core import (
    Ack,
    DeadLetter,
    DeadLetterReason,
    Defer,
    Discard,
    Job,
    JobTable,
    RecordOptions,
    RecordResult,
    Retry,
    decide_retry,
    process_record,
    process_record_async,
)
from glasswork.drivers.base import ATTR_JOB_NAME, WorkerDriver
from glasswork.drivers.memory import MockQueueDriver
from glasswork.errors import InvalidJobPayloadError, RetryExhaustedError
from glasswork.worker import Worker, WorkerHooks, bootstrap_worker

__all__ = [
    "AttributeValue",
    "FakeLambdaContext",
    "JobOutcome",
    "JobRun",
    "bootstrap_test_worker",
    "job_body",
    "job_record",
    "message_attribute",
    "run_job",
    "run_job_async",
    "sqs_event",
    "sqs_record",
]

P = TypeVar("P")

_sequence = itertools.count(1)

AttributeValue: TypeAlias = str | int | float | bytes | SQSMessageAttribute
"""A message attribute for `sqs_record`: `str` (String), `int`/`float` (Number),
`bytes` (Binary, base64 as Lambda sends it) or a ready `SQSMessageAttribute`."""

JobOutcome: TypeAlias = Ack | Retry | DeadLetter | Discard
"""What the worker would do with one attempt of a job."""

_DEFAULT_ENQUEUED_AT = datetime(2026, 1, 1, tzinfo=UTC)


# --- bodies, records, events ---------------------------------------------------


def job_body(
    job: Job[Any] | str,
    payload: object = None,
    *,
    job_id: str = "job-1",
    enqueued_at: str = "2026-01-01T00:00:00.000Z",
    metadata: Mapping[str, str] | None = None,
) -> str:
    """A message body as `JobService` (or glasswork for TypeScript) would send it.

    Args:
        job: The job, or its name (any name: an unknown one tests deploy skew).
        payload: The payload; Structs, dataclasses and datetimes are converted
            as msgspec encodes them, a pydantic model as `JobService` sends it
            (JSON mode). It is not validated, so an invalid payload makes an
            `invalid_payload` body.
        job_id: The `jobId` field.
        enqueued_at: The `enqueuedAt` field (ISO 8601).
        metadata: The `metadata` field (left out when empty).

    Returns:
        The JSON body.
    """
    name = job if isinstance(job, str) else job.name
    body: dict[str, object] = {
        "jobName": name,
        "payload": msgspec.to_builtins(payload) if (raw := model_json(payload)) is None else msgspec.Raw(raw),
        "jobId": job_id,
        "enqueuedAt": enqueued_at,
    }
    if metadata:
        body["metadata"] = dict(metadata)
    return msgspec.json.encode(body).decode()


def message_attribute(value: AttributeValue) -> SQSMessageAttribute:
    """One message attribute in Lambda's lower camel case shape.

    Args:
        value: `str` becomes `String`, `int`/`float` `Number` (sent as a
            string, as SQS does), `bytes` `Binary` (base64); an
            `SQSMessageAttribute` is kept as it is.

    Returns:
        The attribute.
    """
    if isinstance(value, SQSMessageAttribute):
        return value
    if isinstance(value, bytes):
        return SQSMessageAttribute(data_type="Binary", binary_value=base64.b64encode(value).decode())
    if isinstance(value, bool):
        msg = "a message attribute cannot be a bool; SQS has String, Number and Binary"
        raise TypeError(msg)
    if isinstance(value, int | float):
        return SQSMessageAttribute(data_type="Number", string_value=str(value))
    return SQSMessageAttribute(data_type="String", string_value=value)


def sqs_record(
    body: str | JobMessage,
    *,
    message_id: str | None = None,
    receive_count: int | str = 1,
    group_id: str | None = None,
    queue: str = "jobs",
    region: str = "us-east-1",
    account: str = "123456789012",
    sent_timestamp: int = 1_767_225_600_000,
    message_attributes: Mapping[str, AttributeValue] | None = None,
    deduplication_id: str | None = None,
    sequence_number: str | None = None,
    sender_id: str = "AROAEXAMPLE:sender",
    trace_header: str | None = None,
) -> SQSRecord:
    """One Lambda SQS record, field for field as AWS sends it.

    Turn it into the dict Lambda passes with `glasswork.core.lambda_record`, or
    wrap records in an event with `sqs_event`.

    Args:
        body: The body, or a `JobMessage` to encode (adds the `JobName`
            attribute; on a `.fifo` queue its `group_id`, else the queue
            name, is the default message group).
        message_id: Defaults to a fresh UUID.
        receive_count: `ApproximateReceiveCount` (the attempt number).
        group_id: Makes it a FIFO record: `MessageGroupId`,
            `MessageDeduplicationId` and `SequenceNumber` are set.
        queue: The source queue's name (`.fifo` is appended for FIFO records when missing).
        region: The region in `eventSourceARN` and `awsRegion`.
        account: The account in `eventSourceARN`.
        sent_timestamp: `SentTimestamp` in epoch milliseconds.
        message_attributes: Message attributes by name (see `message_attribute`).
        deduplication_id: FIFO `MessageDeduplicationId` (default: the body's SHA-256,
            as content-based deduplication makes it).
        sequence_number: FIFO `SequenceNumber` (default: a rising 20-digit number).
        sender_id: `SenderId`.
        trace_header: `AWSTraceHeader` (X-Ray), when set.

    Returns:
        The record.
    """
    attributes: dict[str, SQSMessageAttribute] = {}
    if isinstance(body, JobMessage):
        attributes[ATTR_JOB_NAME] = SQSMessageAttribute(string_value=body.job_name)
        text = encode_message(body).decode()
        if group_id is None and queue.endswith(".fifo"):
            group_id = body.group_id or queue
    else:
        text = body
    for key, value in (message_attributes or {}).items():
        attributes[key] = message_attribute(value)
    message_id = message_id or str(uuid.uuid4())
    fifo = group_id is not None
    if fifo and not queue.endswith(".fifo"):
        queue = f"{queue}.fifo"
    return SQSRecord(
        message_id=message_id,
        receipt_handle=f"AQEB{message_id}",
        body=text,
        attributes=SQSRecordAttributes(
            approximate_receive_count=str(receive_count),
            sent_timestamp=str(sent_timestamp),
            sender_id=sender_id,
            approximate_first_receive_timestamp=str(sent_timestamp + 10),
            message_group_id=group_id,
            message_deduplication_id=(deduplication_id or hashlib.sha256(text.encode()).hexdigest())
            if fifo
            else None,
            sequence_number=(sequence_number or f"{next(_sequence):020d}") if fifo else None,
            aws_trace_header=trace_header,
        ),
        message_attributes=attributes,
        md5_of_body=hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
        event_source="aws:sqs",
        event_source_arn=f"arn:aws:sqs:{region}:{account}:{queue}",
        aws_region=region,
    )


def job_record(
    job: Job[Any] | str,
    payload: object = None,
    *,
    job_id: str = "job-1",
    metadata: Mapping[str, str] | None = None,
    message_id: str | None = None,
    receive_count: int | str = 1,
    group_id: str | None = None,
    queue: str = "jobs",
) -> SQSRecord:
    """A record carrying one job: `sqs_record(job_body(...))` with the `JobName` attribute.

    Args:
        job: The job, or its name.
        payload: The payload (not validated; see `job_body`).
        job_id: The body's `jobId`.
        metadata: The body's `metadata`.
        message_id: Defaults to a fresh UUID.
        receive_count: `ApproximateReceiveCount` (the attempt number).
        group_id: Makes it a FIFO record in this message group.
        queue: The source queue's name.

    Returns:
        The record.
    """
    name = job if isinstance(job, str) else job.name
    return sqs_record(
        job_body(job, payload, job_id=job_id, metadata=metadata),
        message_id=message_id,
        receive_count=receive_count,
        group_id=group_id,
        queue=queue,
        message_attributes={ATTR_JOB_NAME: name},
    )


def sqs_event(records: Iterable[SQSRecord | str]) -> dict[str, object]:
    """A Lambda SQS event (`{"Records": [...]}`) as plain dicts; bare strings become records.

    Every record has every key Lambda sends (see `glasswork.core.lambda_record`).
    """
    return lambda_event(r if isinstance(r, SQSRecord) else sqs_record(r) for r in records)


class FakeLambdaContext:
    """A Lambda context whose remaining time you control.

    It has the attributes of the Python runtime's context object, so Powertools'
    `Logger.inject_lambda_context` and similar decorators accept it.

    Args:
        remaining_ms: Milliseconds left, or a function returning them (for a
            countdown driven by your own clock).
        function_name: The function's name.
        memory_limit_in_mb: The function's memory.
    """

    def __init__(
        self,
        remaining_ms: int | Callable[[], int] = 30_000,
        *,
        function_name: str = "glasswork-test",
        memory_limit_in_mb: int = 128,
    ) -> None:
        self._remaining = remaining_ms
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/01/01/[$LATEST]test"
        self.client_context: object = None
        self.identity: object = None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left in this invocation."""
        remaining = self._remaining
        return remaining() if callable(remaining) else remaining

    def advance(self, milliseconds: int) -> None:
        """Spend `milliseconds` of the remaining time (never below 0).

        Raises:
            TypeError: The remaining time comes from a function; advance its clock instead.
        """
        remaining = self._remaining
        if callable(remaining):
            msg = "this context reads its remaining time from a function; advance that clock instead"
            raise TypeError(msg)
        self._remaining = max(remaining - milliseconds, 0)


# --- running one job -------------------------------------------------------------


class JobRun(msgspec.Struct, Generic[P], frozen=True, kw_only=True):
    """What became of one attempt of a job run by `run_job`.

    Attributes:
        job_name: The job's name.
        outcome: What the worker would do: `Ack`, `Retry(delay)`,
            `DeadLetter(reason)` or `Discard(reason)` (from `decide_retry`
            with the job's policy and the attempt number).
        error: What the handler raised, or the `InvalidJobPayloadError` when
            the payload did not fit the job's type; `None` on success. (A
            `DeadLetter("retries_exhausted")` outcome carries a
            `RetryExhaustedError` whose cause is this error.)
        ran: Whether the handler was called (not when the payload was invalid).
        execution: The attempt as the handler and hooks saw it.
        payload: The payload the handler got (converted to the job's type),
            `None` when it was invalid.
        returned: What the handler returned (awaited for an `async def`).
    """

    job_name: str
    outcome: JobOutcome
    error: BaseException | None
    ran: bool
    execution: JobExecution
    payload: P | None
    returned: object = None

    @property
    def succeeded(self) -> bool:
        """Whether the handler returned (the worker would delete the message)."""
        return isinstance(self.outcome, Ack)

    @property
    def disposition(self) -> Literal["succeeded", "failed", "dead_lettered", "discarded"]:
        """How the worker would settle the record, assuming the dead-letter send succeeds.

        `failed` means reported in `batchItemFailures` for SQS to redeliver.
        """
        match self.outcome:
            case Ack():
                return "succeeded"
            case Retry():
                return "failed"
            case DeadLetter():
                return "dead_lettered"
            case Discard():
                return "discarded"
            case _:
                assert_never(self.outcome)

    @property
    def reason(self) -> DeadLetterReason | None:
        """The dead-letter or discard reason, else `None`."""
        if isinstance(self.outcome, DeadLetter | Discard):
            return self.outcome.reason
        return None

    @property
    def retry_delay(self) -> int | None:
        """Seconds until the retry for a `Retry` outcome (`None`: the queue's visibility timeout)."""
        return self.outcome.delay if isinstance(self.outcome, Retry) else None

    def raise_error(self) -> None:
        """Re-raise the job's error, if any (to see its traceback in a failing test)."""
        if self.error is not None:
            raise self.error


class _Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """A job and payload made into the record `process_record` reads, or the reason it cannot be."""

    table: JobTable
    record: dict[str, object]
    services: Services
    invalid: InvalidJobPayloadError | None = None


def _attempt(
    job: Job[Any],
    payload: object,
    *,
    services: Mapping[str, object] | Services | None,
    attempt: int,
    metadata: Mapping[str, str] | None,
    job_id: str | None,
    message_id: str,
    enqueued_at: datetime,
) -> _Attempt:
    values = services if isinstance(services, Services) else Services(services or {})
    invalid: InvalidJobPayloadError | None = None
    value: object = None
    try:
        raw = encode_payload(job, payload)
        if nested_deeper_than(raw):
            msg = f"nested deeper than {MAX_NESTING} levels"
            raise ValueError(msg)
    except (TypeError, ValueError, RecursionError) as exc:
        raw = b"null"
        invalid = InvalidJobPayloadError(f"job {job.name!r}: invalid payload: {exc}", job_name=job.name)
        invalid.__cause__ = exc
    else:
        with contextlib.suppress(ValueError, RecursionError):  # process_record reports it
            value = job.decoder.decode(raw) if job.decoder is not None else JSON_DECODER.decode(raw)
    if job_id is None:
        job_id = job.unique(value) if job.unique is not None and value is not None else f"{job.name}-test"
    at = enqueued_at if enqueued_at.tzinfo is not None else enqueued_at.replace(tzinfo=UTC)
    body = {
        "jobName": job.name,
        "payload": msgspec.Raw(raw),
        "jobId": job_id,
        "enqueuedAt": format_timestamp(at),
        "metadata": dict(metadata or {}),
    }
    record: dict[str, object] = {
        "messageId": message_id,
        "body": msgspec.json.encode(body).decode(),
        "attributes": {"ApproximateReceiveCount": str(max(attempt, 1))},
    }
    return _Attempt(table=JobTable([job]), record=record, services=values, invalid=invalid)


def _run_of(job: Job[Any], result: RecordResult, returned: list[object]) -> JobRun[Any]:
    outcome = result.outcome
    assert not isinstance(outcome, Defer)
    error: BaseException | None = None
    if not isinstance(outcome, Ack):
        error = outcome.error
        if isinstance(error, RetryExhaustedError) and error.__cause__ is not None:
            error = error.__cause__
    execution = result.execution
    assert execution is not None
    return JobRun(
        job_name=job.name,
        outcome=outcome,
        error=error,
        ran=result.ran,
        execution=execution,
        payload=execution.payload if result.ran else None,
        returned=returned[0] if returned else None,
    )


def _unencodable(
    job: Job[Any], attempt: _Attempt, invalid: InvalidJobPayloadError, jitter: float
) -> JobRun[Any]:
    """A payload that is not even JSON: the outcome `process_record` gives an invalid payload."""
    record = attempt.record
    execution = JobExecution(
        job_id=f"{job.name}-test",
        job_name=job.name,
        payload=None,
        attempt_number=int(str(record["attributes"]["ApproximateReceiveCount"])),  # type: ignore[index]  # built above
        enqueued_at=_DEFAULT_ENQUEUED_AT,
        metadata={},
        message_id=str(record["messageId"]),
    )
    outcome = decide_retry(
        invalid, attempt=execution.attempt_number, policy=job.retry, jitter=jitter, job_name=job.name
    )
    return JobRun(
        job_name=job.name, outcome=outcome, error=invalid, ran=False, execution=execution, payload=None
    )


def run_job(
    job: Job[P],
    payload: object,
    *,
    services: Mapping[str, object] | Services | None = None,
    attempt: int = 1,
    metadata: Mapping[str, str] | None = None,
    lambda_context: LambdaContext | None = None,
    job_id: str | None = None,
    message_id: str = "test-message",
    enqueued_at: datetime = _DEFAULT_ENQUEUED_AT,
    jitter: float = 1.0,
) -> JobRun[P]:
    """Run one job's handler once, as the worker would, and return its outcome.

    The job and payload become the record the worker would receive, and that
    record goes through `process_record`, the worker's own pipeline: a dict
    becomes the job's Struct (or pydantic model), and a payload that does not fit gives an
    `InvalidJobPayloadError` outcome without running the handler. An
    `async def` handler runs on this thread's event loop (from async code, use
    `run_job_async`). No hook, queue or driver is involved.

    Args:
        job: The job.
        payload: The payload, typed or as decoded JSON.
        services: `ctx.services` for this run: values (not factories) by name.
        attempt: The attempt number (the record's `ApproximateReceiveCount`).
        metadata: `ctx.metadata`.
        lambda_context: `ctx.lambda_context` (a `FakeLambdaContext`, say).
        job_id: `ctx.job_id`; default: the job's `unique` key, else `"<name>-test"`.
        message_id: `ctx.message_id`.
        enqueued_at: `ctx.enqueued_at`.
        jitter: The backoff's full-jitter factor in `[0, 1]` (1: the ceiling).

    Returns:
        The run: outcome, error, the payload the handler got, what it returned.

    Raises:
        RuntimeError: The handler is async and an event loop is already
            running in this thread (use `run_job_async`).
    """
    made = _attempt(
        job,
        payload,
        services=services,
        attempt=attempt,
        metadata=metadata,
        job_id=job_id,
        message_id=message_id,
        enqueued_at=enqueued_at,
    )
    if made.invalid is not None:
        return _unencodable(job, made, made.invalid, jitter)
    returned: list[object] = []
    refused: list[str] = []

    def run(job: Job[Any], payload: object, ctx: JobContext) -> None:
        value = job.handler(payload, ctx)
        if is_awaitable(value):
            if _loop_running():
                close = getattr(value, "close", None)
                if callable(close):
                    close()
                refused.append(job.name)
                raise _Refused
            value = run_on_thread_loop(value)
        returned.append(value)

    options = RecordOptions(services=made.services, lambda_context=lambda_context)
    result = process_record(made.record, made.table, run=run, jitter=jitter, options=options)
    if refused:
        msg = f"job {refused[0]!r} is async and an event loop is running here: use `await run_job_async(...)`"
        raise RuntimeError(msg)
    return _run_of(job, result, returned)


class _Refused(Exception):  # noqa: N818  # a signal inside run_job, never seen outside
    """Raised inside `run_job`'s runner when an async handler meets a running loop."""


def _loop_running() -> bool:
    import asyncio  # noqa: PLC0415  # only for async handlers

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def run_job_async(
    job: Job[P],
    payload: object,
    *,
    services: Mapping[str, object] | Services | None = None,
    attempt: int = 1,
    metadata: Mapping[str, str] | None = None,
    lambda_context: LambdaContext | None = None,
    job_id: str | None = None,
    message_id: str = "test-message",
    enqueued_at: datetime = _DEFAULT_ENQUEUED_AT,
    jitter: float = 1.0,
) -> JobRun[P]:
    """`run_job` for async tests: awaits an `async def` handler on the running loop.

    Args and Returns: as for `run_job`.
    """
    made = _attempt(
        job,
        payload,
        services=services,
        attempt=attempt,
        metadata=metadata,
        job_id=job_id,
        message_id=message_id,
        enqueued_at=enqueued_at,
    )
    if made.invalid is not None:
        return _unencodable(job, made, made.invalid, jitter)
    returned: list[object] = []

    async def run(job: Job[Any], payload: object, ctx: JobContext) -> None:
        value = job.handler(payload, ctx)
        if is_awaitable(value):
            value = await value
        returned.append(value)

    options = RecordOptions(services=made.services, lambda_context=lambda_context)
    result = await process_record_async(made.record, made.table, run=run, jitter=jitter, options=options)
    return _run_of(job, result, returned)


# --- running a module --------------------------------------------------------------


def bootstrap_test_worker(
    module: Module,
    *,
    services: Mapping[str, object] | None = None,
    driver: WorkerDriver | None = None,
    hooks: WorkerHooks | None = None,
    jitter: float = 1.0,
    time_margin: float = 1.0,
    max_concurrency: int = 10,
) -> Worker:
    """The real worker for a module tree, with test services and a fixed jitter.

    `services` replace the module tree's factories of the same name (given as
    values, not factories); factories not replaced still run, once, here. The
    tree is checked as `bootstrap_worker` checks it (duplicate job names,
    import cycles).

    Args:
        module: The root of the module tree.
        services: Service values by name, replacing the tree's factories.
        driver: The worker-side driver; default: a fresh `MockQueueDriver`.
        hooks: Lifecycle hooks.
        jitter: The backoff's full-jitter factor, fixed so delays are predictable.
        time_margin: As for `bootstrap_worker`.
        max_concurrency: As for `bootstrap_worker`.

    Returns:
        The handler; `worker.process_batch(event)` returns a `BatchReport`
        saying how each record ended.

    Raises:
        ConfigurationError: As `bootstrap_worker`, or a service named in
            `services` that the tree does not define.
        ServiceError: A factory that was not replaced raised.
    """
    registry = JobRegistry.from_module(module)
    overrides = dict(services or {})
    unknown = sorted(set(overrides) - set(registry.service_factories))
    if unknown:
        from glasswork.errors import ConfigurationError  # noqa: PLC0415  # only on this error

        known = ", ".join(sorted(registry.service_factories)) or "none"
        msg = f"no service named {', '.join(unknown)} in module {module.name!r} (services: {known})"
        raise ConfigurationError(msg)
    factories = {
        name: _constant(overrides[name]) if name in overrides else factory
        for name, factory in registry.service_factories.items()
    }
    flat = Module(name=f"{module.name} (test)", jobs=list(registry.jobs.values()), services=factories)
    return bootstrap_worker(
        module=flat,
        hooks=hooks,
        driver=driver if driver is not None else MockQueueDriver(),
        max_concurrency=max_concurrency,
        time_margin=time_margin,
        jitter=lambda: jitter,
    )


def _constant(value: object) -> Callable[[], object]:
    return lambda: value
