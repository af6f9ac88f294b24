"""`glasswork.testing` and `glasswork.testing_strategies`: builders, `run_job`, strategies, mock helpers."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import enum
import hashlib
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, TypedDict, cast

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from glasswork import (
    Backoff,
    Job,
    JobContext,
    JobService,
    MockQueueDriver,
    Module,
    PermanentJobError,
    RetryExhaustedError,
    RetryPolicy,
    TransientJobError,
    bootstrap_worker,
    define_job,
)
from glasswork._wire import (
    SQSEvent,
    SQSMessageAttribute,
    SQSRecord,
    lambda_record,
)
from glasswork.core import (
    Ack,
    DeadLetter,
    Defer,
    Discard,
    Retry,
    decode_message,
)
from glasswork.drivers.memory import MockJob
from glasswork.errors import ConfigurationError, InvalidJobPayloadError, MalformedMessageError
from glasswork.testing import (
    FakeLambdaContext,
    JobRun,
    bootstrap_test_worker,
    job_body,
    job_record,
    message_attribute,
    run_job,
    run_job_async,
    sqs_event,
    sqs_record,
)
from glasswork.testing_strategies import (
    errors,
    events,
    invalid_payload_bodies,
    invalid_payloads,
    job_bodies,
    json_values,
    lambda_contexts,
    outcomes,
    payloads,
    poison_bodies,
    records,
    retry_policies,
)


def _noop(payload: object, ctx: JobContext) -> None:
    pass


# --- the AWS record shape ---------------------------------------------------------

AWS_STANDARD_RECORD: dict[str, object] = {
    "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
    "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
    "body": "Test message.",
    "attributes": {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1545082649183",
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": "1545082649185",
    },
    "messageAttributes": {
        "myAttribute": {
            "stringValue": "myValue",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    },
    "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
    "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
    "awsRegion": "us-east-2",
}
"""The standard-queue record of AWS's "Using Lambda with Amazon SQS" page, verbatim."""

AWS_FIFO_ATTRIBUTES: dict[str, str] = {
    "ApproximateReceiveCount": "1",
    "SentTimestamp": "1573251510774",
    "SequenceNumber": "18849496460467696128",
    "MessageGroupId": "1",
    "SenderId": "AIDAIO23YVJENQZJOL4VO",
    "MessageDeduplicationId": "1",
    "ApproximateFirstReceiveTimestamp": "1573251510774",
}
"""The FIFO record's `attributes` from the same page."""

ARN = re.compile(
    r"arn:aws:sqs:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):(?P<queue>[A-Za-z0-9_-]{1,80}(\.fifo)?)"
)


def shape(value: object) -> object:
    """Keys kept, leaves replaced by their type's name: two records of one shape compare equal."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def assert_aws_shape(built: dict[str, object], *, fifo: bool) -> None:
    reference = dict(AWS_STANDARD_RECORD)
    if fifo:
        reference["attributes"] = AWS_FIFO_ATTRIBUTES
    assert set(built) == set(reference)
    attributes = built["attributes"]
    assert isinstance(attributes, dict)
    assert set(attributes) - {"AWSTraceHeader"} == set(reference["attributes"])  # type: ignore[call-overload]
    assert all(isinstance(v, str) for v in attributes.values())
    assert attributes["ApproximateReceiveCount"].isdigit()
    assert attributes["SentTimestamp"].isdigit()
    assert attributes["ApproximateFirstReceiveTimestamp"].isdigit()
    for key in (
        "messageId",
        "receiptHandle",
        "body",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    ):
        assert isinstance(built[key], str), key
    assert built["eventSource"] == "aws:sqs"
    arn = ARN.fullmatch(str(built["eventSourceARN"]))
    assert arn is not None
    assert arn["region"] == built["awsRegion"]
    assert arn["queue"].endswith(".fifo") == fifo
    body = str(built["body"])
    assert built["md5OfBody"] == hashlib.md5(body.encode()).hexdigest()
    message_attributes = built["messageAttributes"]
    assert isinstance(message_attributes, dict)
    for attribute in message_attributes.values():
        assert set(attribute) >= {"stringListValues", "binaryListValues", "dataType"}
        assert set(attribute) <= {
            "stringValue",
            "binaryValue",
            "stringListValues",
            "binaryListValues",
            "dataType",
        }
        assert attribute["stringListValues"] == []
        assert attribute["binaryListValues"] == []
        assert attribute["dataType"].split(".")[0] in {"String", "Number", "Binary"}


def test_reference_record_md5_is_what_we_compute() -> None:
    assert hashlib.md5(b"Test message.").hexdigest() == AWS_STANDARD_RECORD["md5OfBody"]


def test_standard_record_has_the_aws_shape_key_for_key() -> None:
    record = sqs_record(
        "Test message.",
        message_id="059f36b4-87a3-44ab-83d2-661975830a7d",
        queue="my-queue",
        region="us-east-2",
        message_attributes={"myAttribute": "myValue"},
    )
    built = lambda_record(record)

    assert shape(built) == shape(AWS_STANDARD_RECORD)
    assert built["md5OfBody"] == AWS_STANDARD_RECORD["md5OfBody"]
    assert built["eventSourceARN"] == AWS_STANDARD_RECORD["eventSourceARN"]
    assert built["messageAttributes"] == AWS_STANDARD_RECORD["messageAttributes"]
    assert_aws_shape(built, fifo=False)


def test_fifo_record_has_the_aws_fifo_attributes() -> None:
    record = sqs_record("Test message.", group_id="1", queue="orders", receive_count=3)
    built = lambda_record(record)
    attributes = built["attributes"]

    assert isinstance(attributes, dict)
    assert shape(attributes) == shape(AWS_FIFO_ATTRIBUTES)
    assert attributes["MessageGroupId"] == "1"
    assert attributes["ApproximateReceiveCount"] == "3"
    assert re.fullmatch(r"[0-9]{20}", attributes["SequenceNumber"])
    assert attributes["MessageDeduplicationId"] == hashlib.sha256(b"Test message.").hexdigest()
    assert str(built["eventSourceARN"]).endswith(":orders.fifo")
    assert record.is_fifo
    assert record.queue_name == "orders.fifo"
    assert_aws_shape(built, fifo=True)


def test_fifo_sequence_numbers_rise_and_ids_can_be_given() -> None:
    first = sqs_record("a", group_id="g")
    second = sqs_record("b", group_id="g")
    fixed = sqs_record("c", group_id="g", deduplication_id="dedup-1", sequence_number="7" * 20)

    assert int(str(second.attributes.sequence_number)) > int(str(first.attributes.sequence_number))
    assert fixed.attributes.message_deduplication_id == "dedup-1"
    assert fixed.attributes.sequence_number == "7" * 20


def test_message_attributes_of_each_data_type() -> None:
    record = sqs_record(
        "x",
        message_attributes={
            "text": "hello",
            "count": 3,
            "ratio": 0.5,
            "blob": b"\x00\xff",
            "custom": SQSMessageAttribute(data_type="String.Custom", string_value="c"),
        },
    )
    attributes = lambda_record(record)["messageAttributes"]

    assert attributes == {
        "text": {
            "stringValue": "hello",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "count": {"stringValue": "3", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
        "ratio": {"stringValue": "0.5", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
        "blob": {
            "binaryValue": base64.b64encode(b"\x00\xff").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
        "custom": {
            "stringValue": "c",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String.Custom",
        },
    }


def test_a_bool_attribute_is_refused() -> None:
    with pytest.raises(TypeError, match="bool"):
        message_attribute(True)


def test_trace_header_and_sender_id() -> None:
    record = sqs_record("x", trace_header="Root=1-abc", sender_id="AIDAEXAMPLE")
    attributes = lambda_record(record)["attributes"]

    assert isinstance(attributes, dict)
    assert attributes["AWSTraceHeader"] == "Root=1-abc"
    assert attributes["SenderId"] == "AIDAEXAMPLE"


def test_a_job_message_body_carries_the_job_name_attribute() -> None:
    from glasswork._wire import JobMessage

    message = JobMessage(job_name="ship", payload={"n": 1}, job_id="j", group_id="tenant-1")
    plain = sqs_record(message)
    fifo = sqs_record(message, queue="ship.fifo")

    assert plain.message_attributes["JobName"].string_value == "ship"
    assert decode_message(plain.body).job_id == "j"
    assert not plain.is_fifo
    assert fifo.attributes.message_group_id == "tenant-1"


def test_job_record_is_a_job_body_with_the_job_name_attribute() -> None:
    job: Job[object] = define_job(name="ship", handler=_noop)
    record = job_record(job, {"n": 1}, job_id="j-9", metadata={"tenant": "t"}, receive_count=4, group_id="g")

    envelope = decode_message(record.body)
    assert (envelope.job_name, envelope.job_id, envelope.metadata) == ("ship", "j-9", {"tenant": "t"})
    assert msgspec.json.decode(envelope.payload) == {"n": 1}
    assert record.message_attributes["JobName"].string_value == "ship"
    assert record.attributes.approximate_receive_count == "4"
    assert record.attributes.message_group_id == "g"


@given(
    body=st.text(max_size=200),
    count=st.integers(1, 10_000),
    fifo=st.booleans(),
    names=st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,20}", fullmatch=True), max_size=3, unique=True),
    values=st.lists(st.text(max_size=10) | st.integers() | st.binary(max_size=10), min_size=3, max_size=3),
)
def test_any_built_record_has_the_aws_shape_and_round_trips(
    body: str, count: int, fifo: bool, names: list[str], values: list[str | int | bytes]
) -> None:
    record = sqs_record(
        body,
        receive_count=count,
        group_id="g" if fifo else None,
        message_attributes=dict(zip(names, values, strict=False)),
    )
    built = lambda_record(record)

    assert_aws_shape(built, fifo=fifo)
    assert msgspec.convert(built, SQSRecord) == record
    assert json.loads(json.dumps(built)) == built


def test_sqs_event_wraps_records_and_strings() -> None:
    event = sqs_event([sqs_record("a", message_id="m1"), "b"])
    decoded = msgspec.convert(event, SQSEvent)

    assert list(event) == ["Records"]
    assert [r.body for r in decoded.records] == ["a", "b"]
    assert decoded.records[0].message_id == "m1"
    for built in event["Records"]:  # type: ignore[attr-defined]
        assert_aws_shape(built, fifo=False)


def test_job_body_shape() -> None:
    class Point(msgspec.Struct):
        x: int
        at: datetime

    body = json.loads(
        job_body("p", Point(x=1, at=datetime(2026, 1, 2, tzinfo=UTC)), job_id="j", metadata={"k": "v"})
    )

    assert body == {
        "jobName": "p",
        "payload": {"x": 1, "at": "2026-01-02T00:00:00Z"},
        "jobId": "j",
        "enqueuedAt": "2026-01-01T00:00:00.000Z",
        "metadata": {"k": "v"},
    }


# --- FakeLambdaContext -----------------------------------------------------------------


def test_fake_context_remaining_time_fixed_advanced_and_from_a_clock() -> None:
    fixed = FakeLambdaContext(5_000)
    fixed.advance(1_500)
    ticks = iter([900, 800])
    clocked = FakeLambdaContext(lambda: next(ticks))

    assert fixed.get_remaining_time_in_millis() == 3_500
    fixed.advance(10_000)
    assert fixed.get_remaining_time_in_millis() == 0
    assert clocked.get_remaining_time_in_millis() == 900
    assert clocked.get_remaining_time_in_millis() == 800
    with pytest.raises(TypeError, match="clock"):
        clocked.advance(1)


def test_fake_context_has_the_runtime_attributes() -> None:
    context = FakeLambdaContext(function_name="worker", memory_limit_in_mb=512)

    assert context.function_name == "worker"
    assert context.memory_limit_in_mb == 512
    assert context.invoked_function_arn.endswith(":function:worker")
    assert uuid.UUID(context.aws_request_id)
    assert context.function_version == "$LATEST"
    assert context.log_group_name == "/aws/lambda/worker"
    assert context.client_context is None
    assert context.identity is None


def test_the_worker_stops_starting_records_when_the_fake_clock_runs_out() -> None:
    context = FakeLambdaContext(30_000)

    def slow(payload: object, ctx: JobContext) -> None:
        context.advance(12_000)

    job = define_job(name="slow", handler=slow)
    worker = bootstrap_worker(module=Module(name="m", jobs=[job]), driver=MockQueueDriver())
    event = sqs_event([job_record(job, message_id=f"m{i}") for i in range(4)])

    response = worker(event, context)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m3"}]}


# --- run_job ---------------------------------------------------------------------------


class Order(msgspec.Struct, frozen=True):
    order_id: int
    email: str = "a@example.com"


def _recorder() -> tuple[list[tuple[Order, JobContext]], Callable[[Order, JobContext], str]]:
    seen: list[tuple[Order, JobContext]] = []

    def handler(payload: Order, ctx: JobContext) -> str:
        seen.append((payload, ctx))
        return f"done {payload.order_id}"

    return seen, handler


def test_run_job_success_converts_the_payload_and_builds_the_context() -> None:
    seen, handler = _recorder()
    job = define_job(name="ship", handler=handler, payload=Order, unique=lambda o: f"order-{o.order_id}")
    context = FakeLambdaContext(7_000)

    run = run_job(
        job,
        {"order_id": 5},
        services={"db": "the-db"},
        attempt=3,
        metadata={"tenant": "t1"},
        lambda_context=context,
    )

    assert isinstance(run, JobRun)
    assert run.outcome == Ack()
    assert (run.succeeded, run.disposition, run.ran, run.error) == (True, "succeeded", True, None)
    assert run.returned == "done 5"
    assert run.payload == Order(order_id=5)
    payload, ctx = seen[0]
    assert payload == Order(order_id=5)
    assert ctx.services.db == "the-db"
    assert (ctx.attempt_number, ctx.job_name, ctx.job_id) == (3, "ship", "order-5")
    assert ctx.metadata == {"tenant": "t1"}
    assert ctx.remaining_time_ms() == 7_000
    assert ctx.enqueued_at.tzinfo is not None
    assert run.execution.payload == Order(order_id=5)
    run.raise_error()


def test_run_job_invalid_payload_does_not_run_the_handler() -> None:
    seen, handler = _recorder()
    dead = define_job(name="ship", handler=handler, payload=Order)
    discarding = define_job(name="ship", handler=handler, payload=Order, retry=False)

    run = run_job(dead, {"order_id": "five"})
    discarded = run_job(discarding, {"email": "x"})
    unencodable = run_job(dead, object())

    assert seen == []
    assert isinstance(run.error, InvalidJobPayloadError)
    assert run.outcome == DeadLetter(reason="invalid_payload", error=run.error)
    assert (run.ran, run.disposition, run.reason, run.payload) == (
        False,
        "dead_lettered",
        "invalid_payload",
        None,
    )
    assert isinstance(discarded.outcome, Discard)
    assert discarded.disposition == "discarded"
    assert isinstance(unencodable.error, InvalidJobPayloadError)
    with pytest.raises(InvalidJobPayloadError):
        run.raise_error()


@pytest.mark.parametrize(
    ("error", "attempt", "retry", "expected"),
    [
        (
            ConnectionError("down"),
            1,
            RetryPolicy(backoff=None),
            Retry(delay=None, error=ConnectionError("down")),
        ),
        (ConnectionError("down"), 3, None, "retry 8"),  # the default backoff, at the top of its jitter
        (TransientJobError("busy", retry_after=30), 2, 5, "retry 30"),
        (ConnectionError("down"), 3, RetryPolicy(max_attempts=5, backoff=Backoff(base=2, max=60)), "retry 8"),
        (ConnectionError("down"), 5, 5, "dead retries_exhausted"),
        (ConnectionError("down"), 5, RetryPolicy(max_attempts=5, dead=False), "discard retries_exhausted"),
        (PermanentJobError("no"), 1, None, "dead permanent_error"),
        (PermanentJobError("no"), 1, False, "discard permanent_error"),
        (ValueError("once"), 1, False, "discard retries_exhausted"),
    ],
)
def test_run_job_outcomes_follow_the_decision_table(
    error: Exception, attempt: int, retry: RetryPolicy | int | bool | None, expected: object
) -> None:
    def fail(payload: object, ctx: JobContext) -> None:
        raise error

    job = define_job(name="fail", handler=fail, retry=retry)

    run = run_job(job, {"any": "thing"}, attempt=attempt)

    assert run.error is error
    assert run.ran
    outcome = run.outcome
    match outcome:
        case Retry(delay=delay):
            assert expected == f"retry {delay}" or (isinstance(expected, Retry) and delay is None)
            assert run.disposition == "failed"
            assert run.retry_delay == delay
        case DeadLetter(reason=reason):
            assert expected == f"dead {reason}"
            assert run.disposition == "dead_lettered"
        case Discard(reason=reason):
            assert expected == f"discard {reason}"
            assert run.disposition == "discarded"
        case _:
            pytest.fail(f"unexpected {outcome!r}")
    if run.reason == "retries_exhausted":
        assert isinstance(outcome, DeadLetter | Discard)
        assert isinstance(outcome.error, RetryExhaustedError)
        assert outcome.error.__cause__ is error


def test_run_job_jitter_scales_the_backoff() -> None:
    def fail(payload: object, ctx: JobContext) -> None:
        raise ConnectionError

    job = define_job(name="fail", handler=fail, retry=RetryPolicy(backoff=Backoff(base=10, max=100)))

    assert run_job(job, None, attempt=2, jitter=1.0).retry_delay == 20
    assert run_job(job, None, attempt=2, jitter=0.5).retry_delay == 10
    assert run_job(job, None, attempt=2, jitter=0.0).retry_delay == 0


def test_run_job_untyped_payload_is_the_decoded_json() -> None:
    got: list[object] = []
    job: Job[object] = define_job(name="raw", handler=lambda p, c: got.append(p))

    run = run_job(job, {"a": (1, 2)}, job_id="given")

    assert got == [{"a": [1, 2]}]
    assert run.execution.job_id == "given"


def test_run_job_awaits_an_async_handler() -> None:
    async def handler(payload: Order, ctx: JobContext) -> int:
        await asyncio.sleep(0)
        if payload.order_id < 0:
            raise PermanentJobError("negative")
        return payload.order_id * 2

    job = define_job(name="double", handler=handler, payload=Order)

    assert run_job(job, Order(order_id=4)).returned == 8
    assert isinstance(run_job(job, Order(order_id=-1)).error, PermanentJobError)


def test_run_job_async_runs_on_the_callers_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def handler(payload: Order, ctx: JobContext) -> None:
        loops.append(asyncio.get_running_loop())
        raise TransientJobError("later", retry_after=timedelta(minutes=1))

    def sync_handler(payload: Order, ctx: JobContext) -> str:
        return "sync"

    job = define_job(name="a", handler=handler, payload=Order)
    sync_job = define_job(name="s", handler=sync_handler, payload=Order)

    async def main() -> tuple[JobRun[Order], JobRun[Order], JobRun[Order], asyncio.AbstractEventLoop]:
        return (
            await run_job_async(job, {"order_id": 1}),
            await run_job_async(sync_job, {"order_id": 1}),
            await run_job_async(job, {"order_id": "x"}),
            asyncio.get_running_loop(),
        )

    run, sync_run, invalid, loop = asyncio.run(main())

    assert loops == [loop]
    assert run.retry_delay == 60
    assert sync_run.returned == "sync"
    assert isinstance(invalid.error, InvalidJobPayloadError)
    assert not invalid.ran


def test_run_job_inside_a_running_loop_points_to_run_job_async() -> None:
    async def handler(payload: object, ctx: JobContext) -> None:
        pass

    job: Job[object] = define_job(name="a", handler=handler)

    async def main() -> None:
        run_job(job, None)

    with pytest.raises(RuntimeError, match="run_job_async"):
        asyncio.run(main())


@given(error=errors(), attempt=st.integers(1, 30), policy=retry_policies(), valid=st.booleans())
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_run_job_decides_what_the_worker_does(
    error: Exception, attempt: int, policy: RetryPolicy, valid: bool
) -> None:
    def handler(payload: Order, ctx: JobContext) -> None:
        if payload.order_id:
            raise error

    job = define_job(name="j", handler=handler, payload=Order, retry=policy)
    payload = {"order_id": 1} if valid else {"order_id": "one"}
    worker = bootstrap_test_worker(Module(name="m", jobs=[job]))

    run = run_job(job, payload, attempt=attempt)
    report = worker.process_batch(sqs_event([job_record(job, payload, receive_count=attempt)]))

    (settled,) = report.settled
    assert run.disposition == settled.disposition
    assert type(run.outcome) is type(settled.result.outcome)
    assert run.reason == getattr(settled.result.outcome, "reason", None)
    assert run.retry_delay == getattr(settled.result.outcome, "delay", None)


# --- bootstrap_test_worker -------------------------------------------------------------


def test_test_worker_replaces_services_and_keeps_the_others() -> None:
    started: list[str] = []

    def real_db() -> str:
        started.append("db")
        return "real-db"

    def clock() -> str:
        started.append("clock")
        return "real-clock"

    seen: list[tuple[object, object]] = []
    job: Job[object] = define_job(
        name="j", handler=lambda p, ctx: seen.append((ctx.services.db, ctx.services.clock))
    )
    child = Module(name="child", jobs=[job], services={"clock": clock})
    root = Module(name="root", imports=[child], services={"db": real_db})
    driver = MockQueueDriver()

    worker = bootstrap_test_worker(root, services={"db": "fake-db"}, driver=driver)
    response = worker(sqs_event([job_record(job)]))

    assert response == {"batchItemFailures": []}
    assert seen == [("fake-db", "real-clock")]
    assert started == ["clock"]
    assert worker.driver is driver


def test_test_worker_refuses_an_unknown_service() -> None:
    job: Job[object] = define_job(name="j", handler=_noop)

    with pytest.raises(ConfigurationError, match="no service named dbb"):
        bootstrap_test_worker(Module(name="m", jobs=[job], services={"db": object}), services={"dbb": 1})


def test_test_worker_has_a_mock_driver_and_a_fixed_jitter() -> None:
    def fail(payload: object, ctx: JobContext) -> None:
        raise PermanentJobError("no") if payload == "dead" else ConnectionError("down")

    job = define_job(name="j", handler=fail, retry=RetryPolicy(backoff=Backoff(base=4, max=100)))
    worker = bootstrap_test_worker(Module(name="m", jobs=[job]), jitter=0.5)
    event = sqs_event(
        [job_record(job, "dead", message_id="d"), job_record(job, "x", message_id="r", receive_count=2)]
    )

    response = worker(event)

    driver = worker.driver
    assert isinstance(driver, MockQueueDriver)
    assert response == {"batchItemFailures": [{"itemIdentifier": "r"}]}
    assert [(d.message_id, d.reason) for d in driver.dead_letters] == [("d", "permanent_error")]
    assert [(c.message_id, c.seconds) for c in driver.visibility_changes] == [("r", 4)]


def test_test_worker_checks_the_tree_like_bootstrap_worker() -> None:
    one: Job[object] = define_job(name="same", handler=_noop)
    two: Job[object] = define_job(name="same", handler=_noop)

    with pytest.raises(ConfigurationError, match="duplicate job name"):
        bootstrap_test_worker(Module(name="m", jobs=[one], imports=[Module(name="n", jobs=[two])]))


# --- MockQueueDriver assertion helpers -------------------------------------------------


class Line(msgspec.Struct, frozen=True):
    sku: str
    quantity: int


class Cart(msgspec.Struct, frozen=True):
    cart_id: int
    lines: list[Line]
    gift: bool = False
    note: str | None = None


checkout = define_job(name="checkout", handler=_noop, payload=Cart)
notify = define_job(name="notify", handler=_noop, queue="emails")


def _enqueued() -> MockQueueDriver:
    driver = MockQueueDriver()
    service = JobService(driver)
    service.enqueue(checkout, Cart(cart_id=1, lines=[Line(sku="a", quantity=1)]), metadata={"tenant": "t1"})
    service.enqueue(checkout, Cart(cart_id=2, lines=[Line(sku="b", quantity=2)], gift=True))
    service.enqueue(notify, {"to": "ada@example.com", "tags": ["x"]})
    return driver


def cart_ids(jobs: list[MockJob]) -> list[int]:
    return [cast("Cart", j.payload).cart_id for j in jobs]


def test_jobs_named_and_find() -> None:
    driver = _enqueued()

    assert cart_ids(driver.jobs_named(checkout)) == [1, 2]
    assert driver.jobs_named("notify") == driver.jobs_named(notify)
    assert cart_ids(driver.find(checkout, {"cart_id": 2})) == [2]
    assert cart_ids(driver.find(checkout, {"lines": [{"sku": "b"}]})) == [2]
    assert cart_ids(driver.find(checkout, {"gift": False})) == [1]
    assert driver.find(checkout, {"cart_id": 3}) == []
    assert driver.find(checkout, {"lines": [{"sku": "a"}, {"sku": "b"}]}) == []
    assert len(driver.find(checkout, metadata={"tenant": "t1"})) == 1
    assert len(driver.find(notify, queue="emails")) == 1
    assert driver.find(notify, queue="default") == []
    assert len(driver.find(checkout, Cart(cart_id=2, lines=[Line(sku="b", quantity=2)], gift=True))) == 1


def test_a_bool_never_matches_an_int() -> None:
    driver = MockQueueDriver()
    JobService(driver).enqueue(notify, {"flag": 1, "zero": 0})

    assert driver.find(notify, {"flag": True}) == []
    assert driver.find(notify, {"zero": False}) == []
    assert len(driver.find(notify, {"flag": 1})) == 1


def test_assert_enqueued_returns_the_first_match() -> None:
    driver = _enqueued()

    found = driver.assert_enqueued(checkout, {"lines": [{"quantity": 2}]})
    driver.assert_enqueued(checkout, count=2)
    driver.assert_enqueued("notify", {"to": "ada@example.com"}, count=1, queue="emails")

    assert cart_ids([found]) == [2]


def test_assert_enqueued_explains_each_candidate() -> None:
    driver = _enqueued()

    with pytest.raises(AssertionError) as failure:
        driver.assert_enqueued(checkout, {"cart_id": 2, "lines": [{"sku": "z"}], "coupon": "X"})

    message = str(failure.value)
    assert "expected at least one 'checkout' job with payload matching" in message
    assert "found 0" in message
    assert "checkout[0]" in message
    assert "payload.cart_id: expected 2, got 1" in message
    assert "payload.lines[0].sku: expected 'z', got 'b'" in message
    assert "payload.coupon: missing (expected 'X')" in message


def test_assert_enqueued_count_and_unknown_job_messages() -> None:
    driver = _enqueued()

    with pytest.raises(AssertionError, match="expected exactly 1 'checkout' job, found 2"):
        driver.assert_enqueued(checkout, count=1)
    with pytest.raises(AssertionError, match="no 'refund' job was enqueued; enqueued: checkout, notify"):
        driver.assert_enqueued("refund")
    with pytest.raises(AssertionError, match=r"metadata.tenant: expected 't2', got 't1'"):
        driver.assert_enqueued(checkout, {"cart_id": 1}, metadata={"tenant": "t2"})
    with pytest.raises(AssertionError, match="queue: expected 'sms', got 'emails'"):
        driver.assert_enqueued(notify, queue="sms")
    with pytest.raises(AssertionError, match="nothing"):
        MockQueueDriver().assert_enqueued(notify)


def test_assert_not_enqueued() -> None:
    driver = _enqueued()

    driver.assert_not_enqueued("refund")
    driver.assert_not_enqueued(checkout, {"cart_id": 9})
    with pytest.raises(AssertionError, match=r"expected no 'checkout' job with payload matching .*found 1"):
        driver.assert_not_enqueued(checkout, {"cart_id": 1})


def test_run_all_runs_every_queue_including_jobs_enqueued_by_jobs() -> None:
    driver = MockQueueDriver()
    service = JobService(driver)
    ran: list[str] = []

    def welcome(payload: str, ctx: JobContext) -> None:
        ran.append(f"welcome {payload}")
        service.enqueue(mail_job, payload)

    def mail(payload: str, ctx: JobContext) -> None:
        ran.append(f"mail {payload}")
        if payload == "bad":
            raise PermanentJobError("no such mailbox")

    welcome_job = define_job(name="welcome", handler=welcome, payload=str)
    mail_job = define_job(name="mail", handler=mail, payload=str, queue="emails")
    worker = bootstrap_worker(module=Module(name="m", jobs=[welcome_job, mail_job]), driver=driver)
    service.enqueue(welcome_job, "ada")
    service.enqueue_in(welcome_job, "bad", 600)

    batches = driver.run_all(worker)

    assert sorted(ran) == ["mail ada", "mail bad", "welcome ada", "welcome bad"]
    assert batches == 2
    assert [(d.job_name, d.reason) for d in driver.dead_letters] == [("mail", "permanent_error")]
    assert driver.counts("default").pending == 0
    assert driver.counts("emails").pending == 0
    assert driver.run_all(worker) == 0


def test_run_all_gives_up_after_max_batches() -> None:
    driver = MockQueueDriver()
    service = JobService(driver)

    def forever(payload: int, ctx: JobContext) -> None:
        service.enqueue(again, payload + 1)

    again = define_job(name="again", handler=forever, payload=int)
    worker = bootstrap_worker(module=Module(name="m", jobs=[again]), driver=driver)
    service.enqueue(again, 0)

    with pytest.raises(RuntimeError, match="still queued after 5 batches"):
        driver.run_all(worker, max_batches=5)


# --- strategies ---------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Node(msgspec.Struct):
    value: int
    child: Node | None = None


class Square(msgspec.Struct, frozen=True, tag=True):
    side: Annotated[float, msgspec.Meta(gt=0, le=1e6)]


class Circle(msgspec.Struct, frozen=True, tag=True):
    radius: Annotated[float, msgspec.Meta(ge=0, multiple_of=0.25)]


@dataclasses.dataclass
class Address:
    street: str
    zip_code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{5}$")]


class Extras(TypedDict, total=False):
    gift_wrap: bool


class Pair(NamedTuple):
    left: int
    right: str = "r"


class Everything(msgspec.Struct, frozen=True, rename="camel"):
    order_id: Annotated[int, msgspec.Meta(ge=1, le=10**9)]
    sku: Annotated[str, msgspec.Meta(min_length=2, max_length=6)]
    tags: Annotated[list[str], msgspec.Meta(max_length=3)]
    counts: dict[str, int]
    channel: Literal["web", "shop"] = "web"
    color: Color = Color.RED
    coupon: str | None = None
    at: datetime | None = None
    aware: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    day: date | None = None
    wait: timedelta | None = None
    ref: uuid.UUID | None = None
    price: Decimal | None = None
    blob: bytes = b""
    tree: Node | None = None
    shapes: list[Square | Circle] = []
    address: Address | None = None
    extras: Extras | None = None
    pair: Pair | None = None
    unique: frozenset[int] = frozenset()
    fixed: tuple[int, str] | None = None
    many: tuple[int, ...] = ()
    by_number: dict[int, float] = {}


def _decoder_accepts(kind: object, value: object) -> bool:
    try:
        msgspec.json.decode(msgspec.json.encode(value), type=kind)
    except msgspec.ValidationError:
        return False
    return True


everything_job = define_job(name="everything", handler=_noop, payload=Everything)


@given(payloads(everything_job))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_payloads_fit_the_type_constraints_included(value: Everything) -> None:
    assert isinstance(value, Everything)
    assert 1 <= value.order_id <= 10**9
    assert 2 <= len(value.sku) <= 6
    assert len(value.tags) <= 3
    assert value.aware is None or value.aware.tzinfo is not None
    assert msgspec.json.decode(msgspec.json.encode(value), type=Everything) == value
    assert run_job(everything_job, value).succeeded


@pytest.mark.parametrize(
    "kind",
    [int, str, bool, float, list[int], dict[str, int], int | None, Literal["a", "b"], Node, Pair, Address],
)
def test_payloads_of_plain_types(kind: type) -> None:
    @given(payloads(kind))
    @settings(max_examples=30)
    def check(value: object) -> None:
        assert _decoder_accepts(kind, value)

    check()


def test_payloads_of_an_untyped_job_are_json_values() -> None:
    job = define_job(name="raw", handler=_noop)

    @given(payloads(job))
    @settings(max_examples=30)
    def check(value: object) -> None:
        assert msgspec.json.decode(msgspec.json.encode(value)) == value

    check()


def test_payloads_skip_values_a_post_init_rejects() -> None:
    class Even(msgspec.Struct):
        n: Annotated[int, msgspec.Meta(ge=0, le=100)]

        def __post_init__(self) -> None:
            if self.n % 2:
                raise ValueError("odd")

    @given(payloads(Even))
    @settings(max_examples=30)
    def check(value: Even) -> None:
        assert value.n % 2 == 0

    check()


@given(invalid_payloads(everything_job))
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_invalid_payloads_are_rejected_by_the_job(value: object) -> None:
    run = run_job(everything_job, value)

    assert not run.ran
    assert isinstance(run.error, InvalidJobPayloadError)


def test_invalid_payloads_include_near_misses() -> None:
    misses: list[object] = []

    @given(invalid_payloads(checkout))
    @settings(max_examples=200)
    def collect(value: object) -> None:
        if isinstance(value, dict) and "cartId" not in value and "cart_id" in value:
            misses.append(value)

    collect()
    assert misses, "expected some valid-looking payloads with one part broken"


def test_invalid_payloads_need_a_typed_job() -> None:
    with pytest.raises(InvalidArgument, match="accepts any JSON"):
        invalid_payloads(define_job(name="raw", handler=_noop))
    with pytest.raises(InvalidArgument, match="accepts any JSON"):
        invalid_payloads(define_job(name="anything", handler=_noop, payload=Any))


@settings(max_examples=100)
@given(poison_bodies())
def test_poison_bodies_are_not_job_messages(body: str) -> None:
    with pytest.raises(MalformedMessageError):
        decode_message(body)


@settings(max_examples=100)
@given(job_bodies(checkout))
def test_job_bodies_decode_to_the_job(body: str) -> None:
    envelope = decode_message(body)

    assert envelope.job_name == "checkout"
    assert envelope.job_id
    assert envelope.enqueued_at is not None
    assert isinstance(msgspec.json.decode(envelope.payload, type=Cart), Cart)


@given(invalid_payload_bodies(checkout))
@settings(max_examples=100, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
def test_invalid_payload_bodies_name_the_job_but_do_not_fit(body: str) -> None:
    envelope = decode_message(body)

    assert envelope.job_name == "checkout"
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(envelope.payload, type=Cart)


@settings(max_examples=100)
@given(records(job_bodies(checkout) | poison_bodies(), fifo=True, receive_counts=st.integers(1, 3)))
def test_records_have_the_aws_shape(record: SQSRecord) -> None:
    assert_aws_shape(lambda_record(record), fifo=True)
    assert record.attributes.message_group_id in {"g1", "g2", "g3"}
    assert record.attributes.approximate_receive_count in {"1", "2", "3"}


@settings(max_examples=100)
@given(events(records(job_bodies(checkout)), min_size=2, max_size=4))
def test_events_have_distinct_message_ids(event: dict[str, object]) -> None:
    decoded = msgspec.convert(event, SQSEvent)
    ids = [r.message_id for r in decoded.records]

    assert 2 <= len(ids) <= 4
    assert len(set(ids)) == len(ids)


def _checkout_worker() -> tuple[Callable[..., object], MockQueueDriver]:
    driver = MockQueueDriver()
    return bootstrap_worker(module=Module(name="shop", jobs=[checkout]), driver=driver), driver


@given(
    events(
        records(job_bodies(checkout) | invalid_payload_bodies(checkout) | poison_bodies(), fifo=False),
        max_size=10,
    )
)
@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_the_worker_settles_any_generated_event(event: dict[str, object]) -> None:
    worker, driver = _checkout_worker()
    decoded = msgspec.convert(event, SQSEvent)

    response = worker(event, FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    dead = {d.message_id for d in driver.dead_letters}
    for record in decoded.records:
        try:
            envelope = decode_message(record.body)
            msgspec.json.decode(envelope.payload, type=Cart)
        except (MalformedMessageError, msgspec.ValidationError):
            assert record.message_id in dead
        else:
            assert record.message_id not in dead


@given(outcomes())
def test_outcomes_are_worker_outcomes(outcome: object) -> None:
    assert isinstance(outcome, Ack | Retry | DeadLetter | Discard | Defer)
    if isinstance(outcome, Retry) and outcome.delay is not None:
        assert 0 <= outcome.delay <= 43_200


@given(errors())
def test_errors_are_what_handlers_raise(error: Exception) -> None:
    assert isinstance(error, Exception)
    if isinstance(error, TransientJobError) and error.retry_after is not None:
        assert error.retry_after >= 0


@given(lambda_contexts(min_remaining_ms=10, max_remaining_ms=20))
def test_lambda_contexts_have_time_in_range(context: FakeLambdaContext) -> None:
    assert 10 <= context.get_remaining_time_in_millis() <= 20


@settings(max_examples=100)
@given(json_values())
def test_json_values_round_trip(value: object) -> None:
    assert msgspec.json.decode(msgspec.json.encode(value)) == value


# --- the README's property test --------------------------------------------------------


class OrderLine(msgspec.Struct, frozen=True):
    sku: Annotated[str, msgspec.Meta(min_length=1)]
    quantity: Annotated[int, msgspec.Meta(ge=1)]


class PlacedOrder(msgspec.Struct, frozen=True):
    order_id: int
    email: str
    lines: list[OrderLine]
    coupon: str | None = None


class FakeStock:
    def __init__(self) -> None:
        self.reserved: dict[str, int] = {}

    def reserve(self, sku: str, quantity: int) -> None:
        self.reserved[sku] = self.reserved.get(sku, 0) + quantity


def place_order(order: PlacedOrder, ctx: JobContext) -> None:
    if not order.lines:
        raise PermanentJobError("an order needs at least one line")
    if "@" not in order.email:
        raise PermanentJobError(f"cannot mail a receipt to {order.email!r}")
    if order.coupon is not None and not order.coupon.startswith("SAVE"):
        raise PermanentJobError(f"unknown coupon {order.coupon!r}")
    for line in order.lines:
        ctx.services.stock.reserve(line.sku, line.quantity)


place_order_job = define_job(name="place_order", handler=place_order, payload=PlacedOrder)


@given(payloads(place_order_job))
def test_place_order_succeeds_or_fails_permanently(order: PlacedOrder) -> None:
    run = run_job(place_order_job, order, services={"stock": FakeStock()})

    assert run.error is None or isinstance(run.error, PermanentJobError), run.error


def test_the_property_finds_a_handler_that_raises_something_else() -> None:
    def buggy(order: PlacedOrder, ctx: JobContext) -> None:
        percent = int(order.coupon.removeprefix("SAVE")) if order.coupon else 0  # ValueError for "SAVEx"
        ctx.services.stock.reserve(order.lines[0].sku, 100 - percent)  # IndexError for no lines

    buggy_job = define_job(name="place_order", handler=buggy, payload=PlacedOrder)

    @given(payloads(buggy_job))
    @settings(database=None, report_multiple_bugs=False)
    def property_(order: PlacedOrder) -> None:
        run = run_job(buggy_job, order, services={"stock": FakeStock()})
        assert run.error is None or isinstance(run.error, PermanentJobError), run.error

    with pytest.raises(AssertionError, match="Error"):
        property_()


# --- import hygiene ----------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_import_glasswork_loads_neither_testing_module_nor_hypothesis() -> None:
    probe = _python("import json, sys, glasswork; print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(probe.stdout))

    assert "glasswork" in loaded
    assert not {"glasswork.testing", "glasswork.testing_strategies", "hypothesis"} & loaded


def test_glasswork_testing_works_without_hypothesis() -> None:
    probe = _python(
        "import sys\n"
        "sys.modules['hypothesis'] = None\n"
        "import glasswork.testing as t\n"
        "print(t.sqs_event([t.sqs_record('x', message_id='m')])['Records'][0]['messageId'])\n"
        "try:\n"
        "    import glasswork.testing_strategies\n"
        "except ImportError:\n"
        "    print('strategies need hypothesis')\n"
    )

    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["m", "strategies", "need", "hypothesis"]


def test_enqueued_at_default_is_aware() -> None:
    run = run_job(define_job(name="n", handler=_noop), None, enqueued_at=datetime(2026, 5, 1))

    assert run.execution.enqueued_at == datetime(2026, 5, 1, tzinfo=UTC)
