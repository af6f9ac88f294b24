"""OpenTelemetry tracing for glasswork (the `otel` extra: `pip install 'glasswork[otel]'`).

```python
from glasswork.otel import OpenTelemetryTracing

tracing = OpenTelemetryTracing()          # the global tracer provider, W3C trace context
service = JobService(driver, tracing=tracing)
handler = bootstrap_worker(module=app, tracing=tracing)
```

Spans follow OpenTelemetry's messaging semantic conventions:

- enqueue: a `PRODUCER` span `send <queue>` (`messaging.operation.type`
  `send`, the current name of what older conventions called `publish`). Its
  context is injected into each message: `metadata["traceparent"]` (and
  `tracestate`) on every driver, and the same as SQS message attributes on
  the SQS driver. A batch is one span (`messaging.batch.message_count`) whose
  context every message of it carries.
- worker: a `CONSUMER` span `process <queue>` per record, child of the
  context the message carries (attribute first, then metadata), which it
  also links, as the conventions ask; without one, a child of the current
  span (say, the Lambda invocation's). Attributes: `messaging.system`
  (`aws_sqs` on SQS), `messaging.operation.type` `process`,
  `messaging.destination.name`, `messaging.message.id`, and
  `glasswork.job.name`, `glasswork.job.id`, `glasswork.job.attempt`,
  `glasswork.job.outcome` (`succeeded`, `failed`, `dead_lettered`,
  `discarded`). A failed job records its exception, sets `error.type` and an
  error status.

This module imports `opentelemetry` (the API only); `import glasswork` never does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Final

import msgspec
from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from glasswork._settle import Settled
from glasswork._wire import (
    MAX_MESSAGE_BYTES,
    EnqueueResult,
    JobMessage,
    SQSRecord,
    encode_message,
    lambda_record,
)
from glasswork.core import Ack, DeadLetter, Defer, Discard, Retry
from glasswork.drivers.base import QueueDriver
from glasswork.errors import RetryExhaustedError
from glasswork.tracing import TRACE_KEYS, ProcessSpan, PublishSpan

__all__ = ["OpenTelemetryTracing"]

_SCOPE: Final = "glasswork"


class _Metadata(msgspec.Struct):
    """Only the body's `metadata` (msgspec skips the rest of the body without building it)."""

    metadata: dict[str, str] | None = None


_METADATA_DECODER: Final = msgspec.json.Decoder(_Metadata)


def _send_system(driver_name: str) -> str:
    """`messaging.system` of a send: `aws_sqs` for the SQS driver, else the driver's name."""
    return "aws_sqs" if driver_name == "sqs" else driver_name


def _process_system(driver_name: str | None, arn: str) -> str:
    """`messaging.system` of a record: `aws_sqs` unless its queue is local (region `local`)."""
    local = arn.split(":")[3:4] == ["local"]
    if not local or driver_name is None:
        return "aws_sqs" if not local else "glasswork"
    return _send_system(driver_name)


def _queue_name(queue: str) -> str:
    """A queue's name from a name, a URL or an ARN."""
    return queue.rstrip("/").rpartition("/")[2].rpartition(":")[2]


def record_carrier(record: object) -> dict[str, str]:
    """The trace context a record carries: its `traceparent` message attribute, else its body's metadata.

    Never raises: a record without a usable context gives `{}`.
    """
    fields: Mapping[str, object]
    if isinstance(record, SQSRecord):
        fields = lambda_record(record)
    elif isinstance(record, Mapping):
        fields = record
    else:
        return {}
    attributes = fields.get("messageAttributes")
    if isinstance(attributes, Mapping):
        carrier: dict[str, str] = {}
        for key in TRACE_KEYS:
            value = attributes.get(key)
            text = value.get("stringValue") if isinstance(value, Mapping) else None
            if isinstance(text, str) and text:
                carrier[key] = text
        if "traceparent" in carrier:
            return carrier
    body = fields.get("body")
    if not isinstance(body, str | bytes):
        return {}
    try:
        metadata = _METADATA_DECODER.decode(body).metadata
    except (msgspec.DecodeError, RecursionError):
        return {}
    return dict(metadata) if metadata else {}


class _Publish:
    """A `PublishSpan`: the messages with the context injected, and the span to annotate."""

    def __init__(self, span: trace.Span, messages: Sequence[JobMessage]) -> None:
        self._span = span
        self.messages = messages

    def sent(self, results: Sequence[EnqueueResult]) -> None:
        if len(results) == 1 and self._span.is_recording():
            self._span.set_attribute("messaging.message.id", results[0].message_id)


class _Process:
    """A `ProcessSpan`: sets the job's attributes and the outcome when the record settles."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def settled(self, done: Settled) -> None:
        span = self._span
        if not span.is_recording():
            return
        result = done.result
        execution = result.execution
        job = result.job
        if execution is not None:
            span.set_attribute("glasswork.job.name", execution.job_name)
            span.set_attribute("glasswork.job.id", execution.job_id)
        elif job is not None:
            span.set_attribute("glasswork.job.name", job.name)
        span.set_attribute("glasswork.job.attempt", result.attempt)
        span.set_attribute("glasswork.job.outcome", done.disposition)
        outcome = result.outcome
        match outcome:
            case Ack():
                return
            case Defer(reason=reason):
                span.set_attribute("glasswork.job.outcome_reason", reason)
                return
            case Retry(error=error):
                pass
            case DeadLetter(reason=reason, error=error) | Discard(reason=reason, error=error):
                span.set_attribute("glasswork.job.outcome_reason", reason)
        if isinstance(error, RetryExhaustedError) and error.__cause__ is not None:
            error = error.__cause__
        span.record_exception(error)
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {_text(error)}"))


def _text(error: BaseException) -> str:
    try:
        return str(error)[:1000]
    except Exception:  # noqa: BLE001  # a job's error may have any __str__
        return "<str() failed>"


class OpenTelemetryTracing:
    """Traces enqueues and job runs with OpenTelemetry (a `glasswork.tracing.Tracing`).

    Args:
        tracer_provider: Where spans go; `None` uses the global provider
            (`opentelemetry.trace.set_tracer_provider`), looked up at each span,
            so a provider set after this object is made still applies.
        propagator: How the context is written into and read from a message;
            default W3C trace context (`traceparent`, `tracestate`). Another
            propagator's keys travel in the body's `metadata` only.
        max_message_bytes: A message that the context would push over this
            size is sent without it (never refused because of tracing).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self._provider = tracer_provider
        self._propagator = propagator or TraceContextTextMapPropagator()
        self.max_message_bytes = max_message_bytes

    def _tracer(self) -> trace.Tracer:
        return trace.get_tracer(_SCOPE, tracer_provider=self._provider)

    def publish(
        self, driver: QueueDriver, messages: Sequence[JobMessage]
    ) -> AbstractContextManager[PublishSpan]:
        """A `PRODUCER` span `send <queue>` around a send; the messages carry its context."""
        return self._publish(driver, messages)

    @contextmanager
    def _publish(self, driver: QueueDriver, messages: Sequence[JobMessage]) -> Iterator[PublishSpan]:
        driver_name = driver.name
        default = getattr(driver, "default_queue", None)
        queues = {message.queue or default for message in messages}
        only = next(iter(queues)) if len(queues) == 1 else None
        queue = _queue_name(only) if isinstance(only, str) and only else None
        attributes: dict[str, str | int] = {
            "messaging.system": _send_system(driver_name),
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
        }
        if queue:
            attributes["messaging.destination.name"] = queue
        if len(messages) == 1:
            attributes["glasswork.job.name"] = messages[0].job_name
            attributes["glasswork.job.id"] = messages[0].job_id
        else:
            attributes["messaging.batch.message_count"] = len(messages)
        name = f"send {queue}" if queue else "send"
        with self._tracer().start_as_current_span(
            name, kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier)
            yield _Publish(span, [self._with_context(message, carrier) for message in messages])

    def _with_context(self, message: JobMessage, carrier: Mapping[str, str]) -> JobMessage:
        if not carrier:
            return message
        traced = msgspec.structs.replace(message, metadata={**message.metadata, **carrier})
        extra = sum(len(key) + len("String") + len(carrier[key]) for key in TRACE_KEYS if key in carrier)
        if len(encode_message(traced)) + extra + 64 > self.max_message_bytes:  # 64: the JobName attribute
            return message
        return traced

    def process(self, record: object, driver_name: str | None) -> AbstractContextManager[ProcessSpan]:
        """A `CONSUMER` span `process <queue>` around one record, in the trace its message carries."""
        return self._process(record, driver_name)

    @contextmanager
    def _process(self, record: object, driver_name: str | None) -> Iterator[ProcessSpan]:
        fields = record if isinstance(record, Mapping) else {}
        arn = fields.get("eventSourceARN")
        arn = (
            arn
            if isinstance(arn, str)
            else (record.event_source_arn if isinstance(record, SQSRecord) else "")
        )
        queue = _queue_name(arn) if arn else ""
        attributes: dict[str, str] = {
            "messaging.system": _process_system(driver_name, arn),
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
        }
        if queue:
            attributes["messaging.destination.name"] = queue
        message_id = fields.get("messageId") if fields else getattr(record, "message_id", None)
        if isinstance(message_id, str) and message_id:
            attributes["messaging.message.id"] = message_id
        carrier = record_carrier(record)
        parent = self._propagator.extract(carrier) if carrier else None
        producer = trace.get_current_span(parent).get_span_context() if parent is not None else None
        links = [Link(producer)] if producer is not None and producer.is_valid else []
        if not links:
            parent = None  # no usable context in the message: a child of whatever is current
        name = f"process {queue}" if queue else "process"
        with self._tracer().start_as_current_span(
            name,
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        ) as span:
            yield _Process(span)
