"""The pure core: values, wire format and the retry/dead-letter decisions.

Nothing here does I/O, reads a clock or draws a random number: `now`, the
jitter and the handler runner are arguments. Decisions are values
(`Ack | Retry | DeadLetter | Discard | Defer`); the worker shell performs them.

The decision table (attempt = the record's `ApproximateReceiveCount`):

| situation                              | outcome                                   |
|----------------------------------------|-------------------------------------------|
| handler returns                        | `Ack`                                     |
| transient, attempt < max               | `Retry(delay)`                            |
| transient, attempt >= max, dead        | `DeadLetter("retries_exhausted")`         |
| transient, attempt >= max, not dead    | `Discard("retries_exhausted")`            |
| permanent, dead                        | `DeadLetter("permanent_error")`           |
| permanent, not dead                    | `Discard("permanent_error")`              |
| body not JSON / not a job message      | `DeadLetter("poison_message")`            |
| payload fails the job's type           | as permanent, reason `"invalid_payload"`  |
| job name not registered                | `Retry(None)`, then `DeadLetter("unknown_job")` |
| FIFO group blocked / time nearly out   | `Defer` (decided by the shell)            |
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Final, Generic, Literal, TypeAlias, TypeVar

import msgspec

from glasswork.errors import (
    InvalidJobPayloadError,
    MalformedMessageError,
    PermanentJobError,
    RetryExhaustedError,
    TransientJobError,
    UnknownJobError,
)

if TYPE_CHECKING:
    from glasswork._jobs import Job, JobRegistry

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "ENVELOPE_DECODER",
    "JSON_DECODER",
    "MAX_DELAY_SECONDS",
    "MAX_MESSAGE_BYTES",
    "NO_METADATA",
    "Ack",
    "Backoff",
    "DeadLetter",
    "DeadLetterReason",
    "Decision",
    "Defer",
    "Discard",
    "Duration",
    "EnqueueResult",
    "ErrorKind",
    "JobEnvelope",
    "JobExecution",
    "JobMessage",
    "Outcome",
    "RecordResult",
    "Retry",
    "RetryPolicy",
    "RetrySpec",
    "Runnable",
    "SQSEvent",
    "SQSMessageAttribute",
    "SQSRecord",
    "SQSRecordAttributes",
    "TypedEnvelope",
    "attempt_number",
    "backoff_delay",
    "build_message",
    "classify_error",
    "decide_retry",
    "decode_message",
    "encode_message",
    "enqueued_time",
    "format_timestamp",
    "job_execution",
    "lambda_event",
    "lambda_record",
    "normalize_retry",
    "prepare_record",
    "process_record",
    "to_seconds",
]

P = TypeVar("P")

DEFAULT_MAX_ATTEMPTS: Final = 25
MAX_DELAY_SECONDS: Final = 43_200
"""SQS's visibility timeout ceiling (12 hours); no backoff goes past it.

SQS counts those 12 hours from the receive, so the SQS driver clamps a
`ChangeMessageVisibility` a little lower (`glasswork.drivers.sqs.MAX_BACKOFF_SECONDS`).
"""
MAX_MESSAGE_BYTES: Final = 1_048_576
"""SQS's message size limit (1 MiB)."""

Duration: TypeAlias = float | timedelta
"""A duration in seconds or as a `timedelta`; accepted everywhere."""


def to_seconds(value: Duration) -> float:
    """Return a duration in seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


# --- retry policy -------------------------------------------------------------


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential backoff with full jitter: `uniform(0, min(max, base * factor**(n-1)))`.

    Args:
        base: The first delay's ceiling (seconds or `timedelta`).
        factor: The growth factor per attempt.
        max: The ceiling of any delay; never above 12 hours.
    """

    base: Duration = 1.0
    factor: float = 2.0
    max: Duration = 900.0

    def __post_init__(self) -> None:
        if to_seconds(self.base) < 0 or to_seconds(self.max) < 0 or self.factor < 1:
            msg = f"Backoff needs base >= 0, max >= 0 and factor >= 1, got {self!r}"
            raise ValueError(msg)


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How often a job is tried and what happens when it keeps failing.

    Args:
        max_attempts: Attempts before the job is dead-lettered or discarded.
        dead: Dead-letter when attempts run out (or on a permanent error);
            `False` discards instead (logged).
        backoff: Delay between attempts; `None` keeps the queue's visibility timeout.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    dead: bool = True
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            msg = f"max_attempts must be >= 1, got {self.max_attempts} (use retry=False)"
            raise ValueError(msg)


RetrySpec: TypeAlias = RetryPolicy | int | bool | None
"""What `define_job(retry=...)` accepts; see `normalize_retry`."""

_DEFAULT_POLICY: Final = RetryPolicy()
_NO_RETRY: Final = RetryPolicy(max_attempts=1, dead=False)


def normalize_retry(retry: RetrySpec) -> RetryPolicy:
    """Turn `define_job`'s `retry` option into a `RetryPolicy`.

    `None` or `True`: 25 attempts then dead-letter. `n`: n attempts then
    dead-letter (`n <= 0` behaves as `False`). `False`: one attempt, discard on
    failure.
    """
    if retry is None or retry is True:
        return _DEFAULT_POLICY
    if retry is False:
        return _NO_RETRY
    if isinstance(retry, RetryPolicy):
        return retry
    if isinstance(retry, int):
        return RetryPolicy(max_attempts=retry) if retry > 0 else _NO_RETRY
    msg = f"retry must be None, a bool, an int or a RetryPolicy, got {type(retry).__name__}"
    raise TypeError(msg)


# --- the enqueue side ---------------------------------------------------------


class _WireOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    job_name: str
    payload: msgspec.Raw
    job_id: str
    enqueued_at: str
    metadata: dict[str, str] | None = None


class JobEnvelope(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A decoded message body. `payload` stays raw JSON until the job's type is known.

    Only `jobName` is required so that a hand-written body such as
    `{"jobName": "send_email", "payload": {...}}` runs; the worker falls back to
    the SQS message id and `SentTimestamp` for a missing `jobId` and `enqueuedAt`
    (and for an `enqueuedAt` that is not an ISO-8601 time).
    """

    job_name: str
    payload: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))
    job_id: str = ""
    enqueued_at: str | None = None
    metadata: dict[str, str] | None = None


class TypedEnvelope(msgspec.Struct, Generic[P], frozen=True, kw_only=True, rename="camel"):
    """`jobName` and the payload of a body, decoded in one pass with the job's payload type.

    The worker's fast path: each job keeps a decoder for its own
    `TypedEnvelope[PayloadType]`, and the other fields (`jobId`, `enqueuedAt`,
    `metadata`) are read only when a handler or hook asks for them. A body it
    cannot decode goes the two-step way (`JobEnvelope`, then the payload),
    which tells a poison body from an invalid payload.
    """

    job_name: str
    payload: P


_encoder: Final = msgspec.json.Encoder()
ENVELOPE_DECODER: Final = msgspec.json.Decoder(JobEnvelope)
"""Decodes a body to a `JobEnvelope` (payload left raw)."""
JSON_DECODER: Final = msgspec.json.Decoder()
"""Decodes any JSON to builtins (the payload of an untyped job)."""


def format_timestamp(at: datetime) -> str:
    """Format a time as JavaScript's `Date.toISOString()` does: UTC, milliseconds, `Z`."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


class JobMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A job on its way to a queue: what `JobService` hands a driver.

    Attributes:
        job_name: The job's name.
        payload: The validated payload (converted to the job's type).
        job_id: The job's id: its `unique` key, else a random UUID.
        queue: The queue name, or `None` for the driver's default.
        metadata: String pairs carried beside the payload.
        delay_seconds: Seconds before the message becomes visible.
        enqueued_at: When `JobService` built the message (timezone-aware).
        group_id: The FIFO message group (the job's `group` key), if any.
    """

    job_name: str
    payload: object
    job_id: str
    queue: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    delay_seconds: int = 0
    enqueued_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    group_id: str | None = None

    @property
    def body(self) -> str:
        """The message body on the wire (JSON, camelCase, TypeScript-compatible)."""
        return encode_message(self).decode()

    @property
    def deduplication_id(self) -> str:
        """The FIFO `MessageDeduplicationId`: the job id (its `unique` key when set)."""
        return self.job_id


class EnqueueResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a driver returns for one enqueued job."""

    message_id: str
    job_id: str


def encode_message(message: JobMessage) -> bytes:
    """Encode a message's wire body: `{"jobName", "payload", "jobId", "enqueuedAt", "metadata"}`."""
    return _encoder.encode(
        _WireOut(
            job_name=message.job_name,
            payload=msgspec.Raw(_encoder.encode(message.payload)),
            job_id=message.job_id,
            enqueued_at=format_timestamp(message.enqueued_at),
            metadata=message.metadata or None,
        )
    )


def decode_message(body: str | bytes) -> JobEnvelope:
    """Decode a message body.

    Raises:
        MalformedMessageError: The body is not JSON or not a job message.
    """
    try:
        return ENVELOPE_DECODER.decode(body)
    except msgspec.DecodeError as exc:
        msg = f"not a glasswork job message: {exc}"
        raise MalformedMessageError(msg) from exc


def build_message(
    job: Job[Any],
    payload: object,
    *,
    job_id: str,
    enqueued_at: datetime,
    queue: str | None = None,
    metadata: Mapping[str, str] | None = None,
    delay_seconds: int = 0,
) -> JobMessage:
    """Validate a payload against its job and build the message to send.

    The payload is encoded and decoded with the job's own decoder, the exact
    path the worker takes, so what is accepted here is what the worker accepts.

    Raises:
        InvalidJobPayloadError: The payload cannot be encoded or does not fit the job's type.
    """
    try:
        raw = _encoder.encode(payload)
        value = job.decoder.decode(raw) if job.decoder is not None else payload
    except (msgspec.EncodeError, msgspec.DecodeError, TypeError) as exc:
        msg = f"job {job.name!r}: invalid payload: {exc}"
        raise InvalidJobPayloadError(msg, job_name=job.name) from exc
    group_id = job.group(value) if job.group is not None else None
    return JobMessage(
        job_name=job.name,
        payload=value,
        job_id=job_id,
        queue=queue,
        metadata=dict(metadata) if metadata else {},
        delay_seconds=delay_seconds,
        enqueued_at=enqueued_at,
        group_id=group_id,
    )


# --- the Lambda SQS event -----------------------------------------------------


class SQSMessageAttribute(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """One message attribute as Lambda delivers it (lower camel case)."""

    data_type: str = "String"
    string_value: str | None = None
    binary_value: str | None = None
    string_list_values: list[str] = msgspec.field(default_factory=list)
    binary_list_values: list[str] = msgspec.field(default_factory=list)


class SQSRecordAttributes(msgspec.Struct, frozen=True, kw_only=True, rename="pascal", omit_defaults=True):
    """A record's system attributes; every value is a string, as Lambda sends them."""

    approximate_receive_count: str = "1"
    sent_timestamp: str = "0"
    sender_id: str = ""
    approximate_first_receive_timestamp: str = "0"
    message_group_id: str | None = None
    message_deduplication_id: str | None = None
    sequence_number: str | None = None
    aws_trace_header: str | None = msgspec.field(default=None, name="AWSTraceHeader")
    dead_letter_queue_source_arn: str | None = None


class SQSRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """One record of a Lambda SQS event, field for field."""

    message_id: Annotated[str, msgspec.Meta(min_length=1)]
    receipt_handle: str = ""
    body: str = ""
    attributes: SQSRecordAttributes = SQSRecordAttributes()
    message_attributes: dict[str, SQSMessageAttribute] = msgspec.field(default_factory=dict)
    md5_of_body: str = ""
    event_source: str = "aws:sqs"
    event_source_arn: str = msgspec.field(default="", name="eventSourceARN")
    aws_region: str = ""

    @property
    def queue_name(self) -> str:
        """The source queue's name, from `eventSourceARN`."""
        return self.event_source_arn.rpartition(":")[2]

    @property
    def is_fifo(self) -> bool:
        """Whether the record came from a FIFO queue."""
        return self.attributes.message_group_id is not None


class SQSEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A Lambda SQS event: `{"Records": [...]}`."""

    records: list[SQSRecord] = msgspec.field(name="Records")


_RECORD_ATTRIBUTE_DEFAULTS: Final = {
    "ApproximateReceiveCount": "1",
    "SentTimestamp": "0",
    "SenderId": "",
    "ApproximateFirstReceiveTimestamp": "0",
}


def lambda_record(record: SQSRecord) -> dict[str, object]:
    """One record as Lambda delivers it: every key present, even when empty.

    `msgspec.to_builtins` leaves out fields equal to their defaults (such as
    `ApproximateReceiveCount` of `"1"` or `eventSource`); Lambda always sends
    them, so they are put back here. A missing `md5OfBody` is computed.
    """
    built = msgspec.to_builtins(record)
    attributes = {**_RECORD_ATTRIBUTE_DEFAULTS, **built.get("attributes", {})}
    message_attributes = {
        name: {"stringListValues": [], "binaryListValues": [], "dataType": "String", **value}
        for name, value in built.get("messageAttributes", {}).items()
    }
    return {
        "messageId": record.message_id,
        "receiptHandle": record.receipt_handle,
        "body": record.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": record.md5_of_body or _md5(record.body),
        "eventSource": record.event_source,
        "eventSourceARN": record.event_source_arn,
        "awsRegion": record.aws_region,
    }


def _md5(text: str) -> str:
    import hashlib  # noqa: PLC0415  # OpenSSL loads only when a record lacks md5OfBody

    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def lambda_event(records: Iterable[SQSRecord]) -> dict[str, object]:
    """The Lambda SQS event for a batch: `{"Records": [...]}`."""
    return {"Records": [lambda_record(record) for record in records]}


def attempt_number(record: SQSRecord) -> int:
    """The attempt number: `ApproximateReceiveCount`, at least 1.

    SQS counts receives, not runs: a receive that Lambda throttled before the
    function ran still counts, so this can overcount but never undercounts. A
    missing or malformed count reads as 1.
    """
    count = record.attributes.approximate_receive_count
    if count.isdigit():
        return max(int(count), 1)
    return 1


# --- decisions ----------------------------------------------------------------

ErrorKind: TypeAlias = Literal["transient", "permanent"]
DeadLetterReason: TypeAlias = Literal[
    "permanent_error", "retries_exhausted", "invalid_payload", "poison_message", "unknown_job"
]


class Ack(msgspec.Struct, frozen=True, tag=True):
    """Success: the message is deleted."""


class Retry(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Report the record failed so SQS redelivers it.

    Attributes:
        delay: Seconds until the redelivery (`ChangeMessageVisibility`), or
            `None` to keep the queue's visibility timeout.
        error: The error that caused the retry.
    """

    delay: int | None
    error: BaseException


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Send the message to the dead-letter queue, then delete it."""

    reason: DeadLetterReason
    error: BaseException


class Discard(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Delete the message without dead-lettering it (logged)."""

    reason: DeadLetterReason
    error: BaseException


class Defer(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Not run: reported failed so SQS redelivers it, no hooks."""

    reason: Literal["fifo_group_blocked", "time_budget", "unreadable_record"]


Decision: TypeAlias = Retry | DeadLetter | Discard
"""What `decide_retry` returns for a failed attempt."""
Outcome: TypeAlias = Ack | Retry | DeadLetter | Discard | Defer
"""What becomes of a record."""

ACK: Final = Ack()


def classify_error(error: BaseException) -> ErrorKind:
    """`"permanent"` for a `PermanentJobError` (subclasses included), else `"transient"`."""
    return "permanent" if isinstance(error, PermanentJobError) else "transient"


def backoff_delay(backoff: Backoff, attempt: int, jitter: float) -> int:
    """The delay in whole seconds before attempt `attempt + 1`.

    `jitter` in `[0, 1]` scales the exponential ceiling (full jitter). The
    result never exceeds `backoff.max` nor 12 hours, and for a fixed jitter it
    never decreases as `attempt` grows.
    """
    cap = min(to_seconds(backoff.max), MAX_DELAY_SECONDS)
    base = to_seconds(backoff.base)
    try:
        ceiling = min(cap, base * backoff.factor ** max(attempt - 1, 0))
    except OverflowError:
        ceiling = cap
    jitter = min(max(jitter, 0.0), 1.0)
    return min(math.ceil(ceiling * jitter), int(cap))


def decide_retry(
    error: BaseException,
    *,
    attempt: int,
    policy: RetryPolicy,
    jitter: float = 1.0,
    job_name: str = "",
) -> Decision:
    """Decide what becomes of a failed attempt.

    Args:
        error: What the handler raised.
        attempt: The attempt that failed (1-based).
        policy: The job's retry policy.
        jitter: A number in `[0, 1]` drawn by the caller, for full jitter.
        job_name: Named in a `RetryExhaustedError`.

    Returns:
        `Retry(delay)` while attempts remain for a transient error; otherwise
        `DeadLetter` when the policy dead-letters, else `Discard`.
    """
    if classify_error(error) == "permanent":
        reason: DeadLetterReason = (
            "invalid_payload" if isinstance(error, InvalidJobPayloadError) else "permanent_error"
        )
        if policy.dead:
            return DeadLetter(reason=reason, error=error)
        return Discard(reason=reason, error=error)
    if attempt >= policy.max_attempts:
        exhausted = RetryExhaustedError(
            job_name=job_name, attempt_number=attempt, max_attempts=policy.max_attempts
        )
        exhausted.__cause__ = error
        if policy.dead:
            return DeadLetter(reason="retries_exhausted", error=exhausted)
        return Discard(reason="retries_exhausted", error=exhausted)
    retry_after = error.retry_after if isinstance(error, TransientJobError) else None
    if retry_after is not None:
        delay: int | None = min(math.ceil(retry_after), MAX_DELAY_SECONDS)
    elif policy.backoff is not None:
        delay = backoff_delay(policy.backoff, attempt, jitter)
    else:
        delay = None
    return Retry(delay=delay, error=error)


# --- records ------------------------------------------------------------------


class JobExecution(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt of one job, as hooks see it."""

    job_id: str
    job_name: str
    payload: object
    attempt_number: int
    enqueued_at: datetime
    metadata: Mapping[str, str]
    message_id: str


class RecordResult(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one record.

    Attributes:
        record: The record.
        outcome: The decision.
        attempt: The attempt number.
        job: The job, when the body named a registered one.
        execution: The attempt as hooks see it, when the job is known.
        ran: Whether the handler was called.
    """

    record: SQSRecord
    outcome: Outcome
    attempt: int
    job: Job[Any] | None = None
    execution: JobExecution | None = None
    ran: bool = False


class Runnable(msgspec.Struct, frozen=True, kw_only=True):
    """A record ready to run: the job found and the payload converted."""

    record: SQSRecord
    job: Job[Any]
    execution: JobExecution
    attempt: int

    def result(self, outcome: Outcome, *, ran: bool = True) -> RecordResult:
        """The record's result with this outcome."""
        return RecordResult(
            record=self.record,
            outcome=outcome,
            attempt=self.attempt,
            job=self.job,
            execution=self.execution,
            ran=ran,
        )


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
NO_METADATA: Final[Mapping[str, str]] = MappingProxyType({})


def enqueued_time(enqueued_at: str | None, sent_timestamp: object = None) -> datetime:
    """When a job was enqueued: its `enqueuedAt`, else SQS's `SentTimestamp` (ms), else the epoch.

    A time without a zone is taken as UTC; one that does not parse falls back
    like a missing one.
    """
    if enqueued_at:
        try:
            at = datetime.fromisoformat(enqueued_at)
        except ValueError:
            pass
        else:
            return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    if isinstance(sent_timestamp, str) and sent_timestamp.isdigit():
        try:
            return _EPOCH + timedelta(milliseconds=int(sent_timestamp))
        except OverflowError:
            return _EPOCH
    return _EPOCH


def job_execution(
    envelope: JobEnvelope,
    payload: object,
    *,
    message_id: str,
    attempt: int,
    sent_timestamp: object = None,
) -> JobExecution:
    """The `JobExecution` of a decoded body (ids and times fall back as `JobEnvelope` says)."""
    return JobExecution(
        job_id=envelope.job_id or message_id,
        job_name=envelope.job_name,
        payload=payload,
        attempt_number=attempt,
        enqueued_at=enqueued_time(envelope.enqueued_at, sent_timestamp),
        metadata=envelope.metadata if envelope.metadata is not None else NO_METADATA,
        message_id=message_id,
    )


def _execution(record: SQSRecord, envelope: JobEnvelope, payload: object, attempt: int) -> JobExecution:
    return job_execution(
        envelope,
        payload,
        message_id=record.message_id,
        attempt=attempt,
        sent_timestamp=record.attributes.sent_timestamp,
    )


def _poison(record: SQSRecord, registry: JobRegistry, attempt: int, error: Exception) -> RecordResult:
    failure = MalformedMessageError(f"message {record.message_id}: not a glasswork job message: {error}")
    failure.__cause__ = error
    outcome = DeadLetter(reason="poison_message", error=failure)
    try:
        loose = JSON_DECODER.decode(record.body)
    except msgspec.DecodeError:
        return RecordResult(record=record, outcome=outcome, attempt=attempt)
    name = loose.get("jobName") if isinstance(loose, dict) else None
    job = registry.jobs.get(name) if isinstance(name, str) else None
    if job is None:
        return RecordResult(record=record, outcome=outcome, attempt=attempt)
    envelope = JobEnvelope(job_name=job.name)
    return RecordResult(
        record=record,
        outcome=outcome,
        attempt=attempt,
        job=job,
        execution=_execution(record, envelope, loose.get("payload"), attempt),
    )


def prepare_record(
    record: SQSRecord,
    registry: JobRegistry,
    *,
    default_policy: RetryPolicy = _DEFAULT_POLICY,
    max_body_bytes: int = MAX_MESSAGE_BYTES,
) -> Runnable | RecordResult:
    """Decode a record's body, find its job and convert its payload.

    Args:
        record: The record.
        registry: The jobs, by name.
        default_policy: The policy for a job name that is not registered.
        max_body_bytes: A larger body is dead-lettered as poison without being decoded.

    Returns:
        A `Runnable` when the handler should run; otherwise the record's
        `RecordResult` (poison body, unknown job, invalid payload).
    """
    attempt = attempt_number(record)
    body = record.body
    if len(body) * 4 > max_body_bytes and len(body.encode()) > max_body_bytes:
        too_big = MalformedMessageError(
            f"message {record.message_id}: body is {len(body.encode())} bytes, "
            f"over the limit of {max_body_bytes}"
        )
        return RecordResult(
            record=record, outcome=DeadLetter(reason="poison_message", error=too_big), attempt=attempt
        )
    try:
        envelope = ENVELOPE_DECODER.decode(record.body)
    except msgspec.DecodeError as exc:
        return _poison(record, registry, attempt, exc)
    job = registry.jobs.get(envelope.job_name)
    if job is None:
        unknown = UnknownJobError(envelope.job_name)
        outcome: Outcome
        if attempt < default_policy.max_attempts:
            outcome = Retry(delay=None, error=unknown)
        else:
            outcome = DeadLetter(reason="unknown_job", error=unknown)
        return RecordResult(record=record, outcome=outcome, attempt=attempt)
    decoder = job.decoder
    try:
        payload = (decoder or JSON_DECODER).decode(envelope.payload)
    except msgspec.DecodeError as exc:
        invalid = InvalidJobPayloadError(f"job {job.name!r}: invalid payload: {exc}", job_name=job.name)
        invalid.__cause__ = exc
        return RecordResult(
            record=record,
            outcome=decide_retry(invalid, attempt=attempt, policy=job.retry, job_name=job.name),
            attempt=attempt,
            job=job,
            execution=_execution(record, envelope, None, attempt),
        )
    return Runnable(
        record=record,
        job=job,
        execution=_execution(record, envelope, payload, attempt),
        attempt=attempt,
    )


def process_record(
    record: SQSRecord,
    registry: JobRegistry,
    *,
    run: Callable[[Runnable], object],
    jitter: float = 1.0,
) -> RecordResult:
    """Run one record through the pipeline: decode, find the job, run, decide.

    Args:
        record: The Lambda SQS record.
        registry: The jobs, by name.
        run: Runs the handler of a `Runnable` (the one effect, injected);
            whatever it raises is the job's failure.
        jitter: A number in `[0, 1]` for the backoff's full jitter.

    Returns:
        The record's result; performing it (delete, dead-letter, visibility)
        is the caller's business.
    """
    prepared = prepare_record(record, registry)
    if isinstance(prepared, RecordResult):
        return prepared
    try:
        run(prepared)
    except Exception as exc:  # noqa: BLE001  # any handler error is data here
        return prepared.result(
            decide_retry(
                exc,
                attempt=prepared.attempt,
                policy=prepared.job.retry,
                jitter=jitter,
                job_name=prepared.job.name,
            )
        )
    return prepared.result(ACK)
