"""OpenTelemetry tracing: one trace from enqueue to job, over real SQS (moto over HTTP) and SQLite.

Spans go to the SDK's in-memory exporter through a provider given to
`OpenTelemetryTracing` (the global provider is left alone).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import msgspec
import pytest
from botocore.config import Config
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from glasswork import (
    AsyncJobService,
    JobService,
    MockQueueDriver,
    Module,
    PermanentJobError,
    bootstrap_worker,
    define_job,
)
from glasswork.context import JobContext
from glasswork.drivers.sqlite import SQLiteQueueDriver
from glasswork.drivers.sqs import SQSQueueDriver
from glasswork.otel import OpenTelemetryTracing, record_carrier
from glasswork.testing import FakeLambdaContext
from glasswork.worker import Worker

REGION = "us-east-1"


class Email(msgspec.Struct, frozen=True, kw_only=True):
    to: str


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[OpenTelemetryTracing]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield OpenTelemetryTracing(tracer_provider=provider)
    provider.shutdown()


def make_app(inner: list[str], tracing: OpenTelemetryTracing) -> Module:
    from opentelemetry import trace

    def send_email(payload: Email, ctx: JobContext) -> None:
        tracer = trace.get_tracer("app", tracer_provider=tracing._provider)
        with tracer.start_as_current_span("render email"):
            inner.append(payload.to)

    def charge(payload: Email, ctx: JobContext) -> None:
        raise PermanentJobError(f"card declined for {payload.to}")

    return Module(
        name="app",
        jobs=[
            define_job(name="send_email", handler=send_email, payload=Email),
            define_job(name="charge", handler=charge, payload=Email, retry=False),
        ],
    )


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def check_round_trip(spans: tuple[ReadableSpan, ...], queue: str, system: str) -> None:
    """Two traces: send -> process -> render (success), send -> process (error)."""
    sends = by_name(spans, f"send {queue}")
    processes = by_name(spans, f"process {queue}")
    assert len(sends) == 2
    assert len(processes) == 2
    for send in sends:
        assert send.kind is SpanKind.PRODUCER
        assert send.attributes is not None
        assert send.attributes["messaging.system"] == system
        assert send.attributes["messaging.operation.type"] == "send"
        assert send.attributes["messaging.destination.name"] == queue
        assert send.attributes["messaging.message.id"]
    by_job = {}
    for process in processes:
        assert process.kind is SpanKind.CONSUMER
        attributes = process.attributes
        assert attributes is not None
        by_job[attributes["glasswork.job.name"]] = process
        send = next(
            s
            for s in sends
            if s.attributes and s.attributes["glasswork.job.id"] == attributes["glasswork.job.id"]
        )
        assert process.context is not None
        assert send.context is not None
        assert process.context.trace_id == send.context.trace_id  # one trace per job
        assert process.parent is not None
        assert process.parent.span_id == send.context.span_id  # the producer is the consumer's parent
        assert [link.context.span_id for link in process.links] == [send.context.span_id]
        assert attributes["messaging.system"] == system
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.destination.name"] == queue
        assert attributes["messaging.message.id"] == send.attributes["messaging.message.id"]  # type: ignore[index]
        assert attributes["glasswork.job.attempt"] == 1
    ok, failed = by_job["send_email"], by_job["charge"]
    assert ok.attributes is not None
    assert ok.attributes["glasswork.job.outcome"] == "succeeded"
    assert ok.status.status_code is StatusCode.UNSET
    (render,) = by_name(spans, "render email")
    assert render.parent is not None
    assert ok.context is not None
    assert render.parent.span_id == ok.context.span_id  # the handler runs inside the consumer span
    assert failed.attributes is not None
    assert failed.attributes["glasswork.job.outcome"] == "discarded"
    assert failed.attributes["error.type"] == "PermanentJobError"
    assert failed.status.status_code is StatusCode.ERROR
    assert "card declined" in (failed.status.description or "")
    assert [event.name for event in failed.events] == ["exception"]


@pytest.mark.sqs
def test_sqs_round_trip_is_one_trace_per_job(
    moto_reset: str, exporter: InMemorySpanExporter, tracing: OpenTelemetryTracing
) -> None:
    sqs = boto3.client(
        "sqs", region_name=REGION, endpoint_url=moto_reset, config=Config(retries={"total_max_attempts": 1})
    )
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    driver = SQSQueueDriver({"jobs": url}, sqs)
    inner: list[str] = []
    module = make_app(inner, tracing)
    service = JobService(driver, tracing=tracing)
    jobs = {job.name: job for job in module.jobs}
    service.enqueue(jobs["send_email"], Email(to="ada@example.com"))
    service.enqueue(jobs["charge"], Email(to="bob@example.com"))

    records = driver.receive("jobs", max_messages=10)
    assert len(records) == 2
    for record in records:  # the context travels as a message attribute and in the body's metadata
        assert record.message_attributes["traceparent"].string_value
        assert "traceparent" in msgspec.json.decode(record.body)["metadata"]
    handler = bootstrap_worker(module=module, driver=driver, tracing=tracing)
    response = handler({"Records": [msgspec.to_builtins(r) for r in records]}, FakeLambdaContext())
    assert response == {"batchItemFailures": []}
    assert inner == ["ada@example.com"]
    check_round_trip(exporter.get_finished_spans(), "jobs", "aws_sqs")


def test_sqlite_round_trip_carries_the_context_in_metadata(
    tmp_path: Path, exporter: InMemorySpanExporter, tracing: OpenTelemetryTracing
) -> None:
    inner: list[str] = []
    module = make_app(inner, tracing)
    jobs = {job.name: job for job in module.jobs}
    with SQLiteQueueDriver(tmp_path / "q.db") as driver:
        service = JobService(driver, tracing=tracing)
        service.enqueue(jobs["send_email"], Email(to="ada@example.com"))
        service.enqueue(jobs["charge"], Email(to="bob@example.com"))
        records = driver.receive(max_messages=10)
        assert len(records) == 2
        assert all(not record.message_attributes.get("traceparent") for record in records)
        handler = bootstrap_worker(module=module, driver=driver, tracing=tracing)
        report = handler.process_batch({"Records": [msgspec.to_builtins(r) for r in records]})
    assert sorted(report.ids("succeeded") + report.ids("discarded")) == sorted(r.message_id for r in records)
    queue = driver.default_queue
    assert isinstance(queue, str)
    check_round_trip(exporter.get_finished_spans(), queue, "sqlite")


def test_the_attribute_wins_over_the_metadata() -> None:
    attribute = "00-11111111111111111111111111111111-2222222222222222-01"
    metadata = "00-33333333333333333333333333333333-4444444444444444-01"
    body = msgspec.json.encode({"jobName": "x", "metadata": {"traceparent": metadata}}).decode()
    record = {
        "messageId": "m",
        "body": body,
        "messageAttributes": {"traceparent": {"stringValue": attribute, "dataType": "String"}},
    }
    assert record_carrier(record) == {"traceparent": attribute}
    assert record_carrier({**record, "messageAttributes": {}}) == {"traceparent": metadata}
    assert record_carrier({"messageId": "m", "body": "not json"}) == {}
    assert record_carrier(42) == {}


def test_async_worker_and_async_service_and_batches_trace_too(
    exporter: InMemorySpanExporter, tracing: OpenTelemetryTracing
) -> None:
    seen: list[str] = []

    async def send_email(payload: Email, ctx: JobContext) -> None:
        seen.append(ctx.metadata["traceparent"])

    job = define_job(name="send_email", handler=send_email, payload=Email)
    driver = MockQueueDriver()
    service = AsyncJobService(driver, tracing=tracing)

    async def enqueue() -> None:
        async with service:
            await service.enqueue(job, Email(to="a@example.com"))
            await service.enqueue_batch([(job, Email(to="b@example.com")), (job, Email(to="c@example.com"))])

    asyncio.run(enqueue())
    sends = [span for span in exporter.get_finished_spans() if span.kind is SpanKind.PRODUCER]
    assert len(sends) == 2
    assert sends[1].attributes is not None
    assert sends[1].attributes["messaging.batch.message_count"] == 2
    assert all("traceparent" in queued.metadata for queued in driver.jobs)

    handler: Worker = bootstrap_worker(module=Module(name="app", jobs=[job]), driver=driver, tracing=tracing)
    records = driver.receive(max_messages=10)
    assert len(records) == 3
    assert handler({"Records": [msgspec.to_builtins(r) for r in records]}) == {"batchItemFailures": []}
    processes = [span for span in exporter.get_finished_spans() if span.kind is SpanKind.CONSUMER]
    assert len(processes) == 3
    assert len(seen) == 3
    assert {p.attributes["messaging.system"] for p in processes if p.attributes} == {"memory"}


def test_tracing_off_imports_no_opentelemetry() -> None:
    code = (
        "import sys, glasswork, glasswork.worker, glasswork.service, glasswork.async_service, "
        "glasswork.tracing, glasswork.metrics, glasswork.drivers.sqs\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'otel imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_direct_invocation_is_traced_like_a_record(
    exporter: InMemorySpanExporter, tracing: OpenTelemetryTracing, kind: str
) -> None:
    """EventBridge-style invocations ran without a span; now one CONSUMER span per invocation."""
    inner: list[str] = []
    app = make_app(inner, tracing)
    if kind == "async":

        async def nudge(payload: Email, ctx: JobContext) -> None:
            await asyncio.sleep(0)

        app = Module(
            name="both", imports=[app], jobs=[define_job(name="nudge", handler=nudge, payload=Email)]
        )
    handler: Worker = bootstrap_worker(module=app, driver=MockQueueDriver(), tracing=tracing)

    answer = handler({"detail": {"jobName": "send_email", "payload": {"to": "a@example.com"}}}, None)
    with pytest.raises(PermanentJobError, match="card declined"):
        handler({"jobName": "charge", "payload": {"to": "b@example.com"}}, None)

    assert answer["status"] == "succeeded"
    assert inner == ["a@example.com"]
    ok, failed = by_name(exporter.get_finished_spans(), "process")
    assert ok.kind is failed.kind is SpanKind.CONSUMER
    assert ok.attributes is not None
    assert failed.attributes is not None
    assert (ok.attributes["glasswork.job.name"], ok.attributes["glasswork.job.outcome"]) == (
        "send_email",
        "succeeded",
    )
    assert ok.attributes["glasswork.job.id"] == answer["jobId"]
    assert ok.status.status_code is StatusCode.UNSET
    (render,) = by_name(exporter.get_finished_spans(), "render email")
    assert render.parent is not None
    assert ok.context is not None
    assert render.parent.span_id == ok.context.span_id  # the handler runs inside it
    assert (failed.attributes["glasswork.job.name"], failed.attributes["glasswork.job.outcome"]) == (
        "charge",
        "failed",
    )
    assert failed.status.status_code is StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]
