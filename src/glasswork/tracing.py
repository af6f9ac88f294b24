"""The tracing seam: what `JobService` and the worker ask of a tracer, without importing one.

`bootstrap_worker(..., tracing=...)`, `JobService(..., tracing=...)` and
`AsyncJobService(..., tracing=...)` take any object with the two methods of
`Tracing`. `glasswork.otel.OpenTelemetryTracing` is the one glasswork ships
(the `otel` extra); nothing here imports OpenTelemetry, and with `tracing=None`
(the default) neither side calls anything of this module.

- Enqueue side: `publish(driver, messages)` opens a span around the
  send and gives back the messages with the trace context added to their
  `metadata` (`traceparent`, `tracestate`); the SQS driver also sends those
  two keys as message attributes. `sent(results)` reports what the driver
  returned; an error raised inside the block is the span's error.
- Worker side: `process(record, driver_name)` opens one span per record
  around everything the worker does with it (decode, start hook, handler,
  completion or failure hooks, dead-letter send); `settled(done)` reports
  how the record ended before the span closes.

The context travels in two places, so that every driver carries it: the
message attribute `traceparent` (SQS only) and the body's `metadata` (every
driver; glasswork for TypeScript ignores keys it does not know). The worker
reads the attribute first, then the metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from glasswork._settle import Settled
from glasswork._wire import TRACE_KEYS, EnqueueResult, JobMessage
from glasswork.drivers.base import QueueDriver

__all__ = ["TRACE_KEYS", "ProcessSpan", "PublishSpan", "Tracing"]


class PublishSpan(Protocol):
    """The span around one send (`enqueue`) or one batch send (`enqueue_batch`)."""

    @property
    def messages(self) -> Sequence[JobMessage]:
        """The messages to send: the ones given, with the trace context in their `metadata`."""
        ...

    def sent(self, results: Sequence[EnqueueResult]) -> None:
        """Record what the driver returned (message ids), one result per message."""
        ...


class ProcessSpan(Protocol):
    """The span around one record on the worker side."""

    def settled(self, done: Settled) -> None:
        """Record how the record ended: job, attempt, outcome, and the error of a failure."""
        ...


class Tracing(Protocol):
    """Opens the enqueue side's and the worker side's spans (see the module docstring)."""

    def publish(
        self, driver: QueueDriver, messages: Sequence[JobMessage]
    ) -> AbstractContextManager[PublishSpan]:
        """A span around sending `messages` through `driver`."""
        ...

    def process(self, record: object, driver_name: str | None) -> AbstractContextManager[ProcessSpan]:
        """A span around the worker's handling of one record (a Lambda SQS record, as delivered)."""
        ...
