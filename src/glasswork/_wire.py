"""What crosses the wire: message bodies, Lambda's SQS records, and the attempt they describe.

The body format is glasswork for TypeScript's: JSON, camelCase,
`{"jobName", "payload", "jobId", "enqueuedAt", "metadata"}`. The record
Structs are Lambda's SQS event, field for field. Every reader here is total:
a value of the wrong type or shape reads as "missing", never as an exception,
so the pipeline above can give any record an outcome.

This module imports nothing of glasswork's: it sits at the bottom of the
package with `errors`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Annotated, Final

import msgspec

__all__ = [
    "ENVELOPE_DECODER",
    "JSON_DECODER",
    "MAX_ENQUEUE_DELAY_SECONDS",
    "MAX_MESSAGE_BYTES",
    "MAX_NESTING",
    "NO_METADATA",
    "TRACE_KEYS",
    "EnqueueResult",
    "JobEnvelope",
    "JobExecution",
    "JobMessage",
    "SQSEvent",
    "SQSMessageAttribute",
    "SQSRecord",
    "SQSRecordAttributes",
    "as_record",
    "check_delay",
    "delay_problem",
    "encode_message",
    "enqueued_time",
    "format_timestamp",
    "iso_time",
    "lambda_event",
    "lambda_record",
    "nested_deeper_than",
    "read_count",
]

MAX_MESSAGE_BYTES: Final = 1_048_576
"""SQS's message size limit (1 MiB)."""
MAX_ENQUEUE_DELAY_SECONDS: Final = 31_536_000
"""The longest enqueue delay any driver accepts: 365 days.

SQS itself stops at 900 s (the SQS driver goes through EventBridge Scheduler
beyond that) and SQLite has no limit of its own; one bound for every driver
turns a unit mistake (milliseconds passed as seconds, `1e12`) into an error
at enqueue instead of a job that silently never runs. Work further out
belongs in a periodic job or a database.
"""
MAX_NESTING: Final = 256
"""The deepest nesting of arrays and objects a body may have (a deeper one is poison).

msgspec stops at Python's recursion limit, which counts the caller's stack
too, so without a limit of its own whether a body of ~990 levels decodes
would depend on who calls. 256 is far above any real payload and far below
what any caller's stack leaves.
"""

TRACE_KEYS: Final = ("traceparent", "tracestate")
"""The W3C trace context keys a traced message carries: in its `metadata` on every driver, and as
message attributes on SQS as well (see `glasswork.tracing`)."""

_TOKENS: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


# --- the enqueue side ---------------------------------------------------------


class _WireOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    job_name: str
    payload: msgspec.Raw
    job_id: str
    enqueued_at: str
    metadata: dict[str, str] | None = None


_encoder: Final = msgspec.json.Encoder()


def format_timestamp(at: datetime) -> str:
    """Format a time as JavaScript's `Date.toISOString()` does: UTC, milliseconds, `Z`."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


class JobMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A job on its way to a queue: what `JobService` hands a driver.

    Attributes:
        job_name: The job's name.
        payload: The validated payload (converted to the job's type; for a
            pydantic model, the JSON the worker will validate, as builtins).
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
    """What a driver returns for one enqueued job.

    Attributes:
        message_id: The queue's id for the message (SQS's `MessageId`). For
            a duplicate on a FIFO queue, the first message's id; on SQS, for
            a delay over 900 s, the name of the EventBridge Scheduler
            schedule that will deliver it (`SQSQueueDriver.cancel` takes it).
        job_id: The job's id: its `unique` key, else a random UUID.
    """

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


# --- the body -----------------------------------------------------------------


class JobEnvelope(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A decoded message body. `payload` stays raw JSON until the job's type is known.

    Only `jobName` is required so that a hand-written body such as
    `{"jobName": "send_email", "payload": {...}}` runs; the worker falls back to
    the SQS message id and `SentTimestamp` for a missing `jobId` and
    `enqueuedAt`. A field of the wrong type (`"jobId": 42`, an `enqueuedAt`
    that is not an RFC 3339 time) makes the body not a job message; an
    `enqueuedAt` without a zone is taken as UTC.
    """

    job_name: str
    payload: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))
    job_id: str = ""
    enqueued_at: datetime | None = None
    metadata: dict[str, str] | None = None


ENVELOPE_DECODER: Final = msgspec.json.Decoder(JobEnvelope)
"""Decodes a body to a `JobEnvelope` (payload left raw)."""
JSON_DECODER: Final = msgspec.json.Decoder()
"""Decodes any JSON to builtins (the payload of an untyped job)."""


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


def as_record(raw: object, message_id: str = "") -> SQSRecord:
    """A record as Lambda delivered it (a dict), as an `SQSRecord`; never raises.

    A record that is not a valid SQS record keeps whichever of its fields are
    valid (its `messageId`, `receiptHandle`, `body`, `eventSourceARN` and
    `MessageGroupId`), so that it can still be reported or dead-lettered.
    """
    if isinstance(raw, SQSRecord):
        return raw
    try:
        return msgspec.convert(raw, SQSRecord)
    except (msgspec.ValidationError, RecursionError):
        pass
    fields = raw if isinstance(raw, Mapping) else {}
    attributes = fields.get("attributes")
    group = attributes.get("MessageGroupId") if isinstance(attributes, Mapping) else None
    return SQSRecord(
        message_id=message_id or _text(fields.get("messageId")) or "-",
        receipt_handle=_text(fields.get("receiptHandle")),
        body=_text(fields.get("body")),
        attributes=SQSRecordAttributes(message_group_id=group if isinstance(group, str) else None),
        event_source_arn=_text(fields.get("eventSourceARN")),
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


# --- the attempt ------------------------------------------------------------------


class JobExecution(msgspec.Struct, frozen=True, gc=False):
    """One attempt of one job, as hooks see it.

    Not tracked by the garbage collector (`gc=False`): it holds the payload,
    ids and times of an attempt, and nothing it holds refers back to it.
    Built once per attempt that a hook or the handler looks at, positionally
    (in the order below) by the pipeline, where that is cheaper.
    """

    job_id: str
    job_name: str
    payload: object
    attempt_number: int
    enqueued_at: datetime
    metadata: Mapping[str, str]
    message_id: str


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
NO_METADATA: Final[Mapping[str, str]] = MappingProxyType({})
_MAX_DIGITS: Final = 18


def delay_problem(seconds: float) -> str | None:
    """Why `seconds` is not a valid enqueue delay (negative, not finite, over the bound), or `None`."""
    if not seconds >= 0:  # also NaN
        return f"delay must be >= 0 seconds, got {seconds!r}"
    if seconds > MAX_ENQUEUE_DELAY_SECONDS:
        return f"delay must be at most {MAX_ENQUEUE_DELAY_SECONDS} seconds (365 days), got {seconds!r}"
    return None


def check_delay(seconds: float) -> None:
    """Refuse an enqueue delay over `MAX_ENQUEUE_DELAY_SECONDS` or NaN; every driver calls it.

    Raises:
        ValueError: Naming the delay and the bound.
    """
    if seconds > MAX_ENQUEUE_DELAY_SECONDS or seconds != seconds:  # noqa: PLR0124  # NaN
        raise ValueError(delay_problem(seconds))


def nested_deeper_than(text: str | bytes, limit: int = MAX_NESTING) -> bool:
    """Whether JSON `text` nests arrays and objects more than `limit` levels deep.

    Cheap for the common body: text shorter than `2 * limit` characters, or
    with at most `limit` brackets, cannot be that deep (valid JSON closes
    what it opens), and is not scanned.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if len(text) <= 2 * limit or text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for token in _TOKENS.finditer(text):
        char = token.group()
        if char in {"[", "{"}:
            depth += 1
            if depth > limit:
                return True
        elif char in {"]", "}"}:
            depth -= 1
    return False


def read_count(value: object) -> int | None:
    """A non-negative integer written in ASCII digits (as SQS writes counts and timestamps), else `None`.

    `str.isdigit` alone accepts `"¹"` or `"٣"`, which `int()` then refuses or
    reads as something SQS never sent; more than 18 digits is no SQS value either.
    """
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS:
        return int(value)
    return None


def iso_time(text: str) -> datetime | None:
    """An ISO-8601 time, timezone-aware (a time without a zone is UTC); `None` when it does not parse."""
    try:
        at = datetime.fromisoformat(text)
    except (ValueError, TypeError):
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def enqueued_time(enqueued_at: object, sent_timestamp: object = None) -> datetime:
    """When a job was enqueued: its `enqueuedAt`, else SQS's `SentTimestamp` (ms), else the epoch.

    `enqueued_at` may be a `datetime` (as a decoded body holds it) or an
    ISO-8601 string. A time without a zone is taken as UTC; one that does not
    parse falls back like a missing one. Never raises.
    """
    if isinstance(enqueued_at, datetime):
        return enqueued_at if enqueued_at.tzinfo is not None else enqueued_at.replace(tzinfo=UTC)
    if isinstance(enqueued_at, str) and enqueued_at:
        at = iso_time(enqueued_at)
        if at is not None:
            return at
    millis = read_count(sent_timestamp)
    if millis is not None:
        try:
            return _EPOCH + timedelta(milliseconds=millis)
        except OverflowError:
            return _EPOCH
    return _EPOCH
