"""The SQS driver over real HTTP against moto's SQS and EventBridge Scheduler server.

Nothing here patches the boto3 client. Request counts come from botocore's own
event hooks on the real client. Where SQS behaviour moto cannot produce on
demand (throttling, a server-side failure of one batch entry) is needed, a
`before-send` hook answers one request with an SQS-shaped HTTP response that
real botocore then parses; every such test says so.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import cast

import boto3
import msgspec
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from mypy_boto3_scheduler import EventBridgeSchedulerClient
from mypy_boto3_sqs import SQSClient

from glasswork._wire import JobMessage, SQSMessageAttribute, SQSRecord
from glasswork.drivers.base import (
    ATTR_ATTEMPT,
    ATTR_ERROR_MESSAGE,
    ATTR_ERROR_TYPE,
    ATTR_JOB_NAME,
    ATTR_REASON,
    ATTR_SOURCE_QUEUE,
    BatchQueueDriver,
    ConsumingDriver,
    DeadLetterInfo,
    QueueAdmin,
    VisibilityChange,
    WorkerDriver,
)
from glasswork.drivers.sqs import SQSQueueDriver
from glasswork.errors import (
    BatchEnqueueError,
    ConfigurationError,
    DriverError,
    QueueNotFoundError,
    ThrottledError,
)

pytestmark = pytest.mark.sqs

REGION = "us-east-1"
ACCOUNT = "123456789012"
ENQUEUED_AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


# --- fixtures and helpers ---------------------------------------------------------


@pytest.fixture
def sqs(moto_reset: str) -> SQSClient:
    """A real boto3 SQS client on the moto server, without botocore's own retries."""
    return boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=moto_reset,
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
def scheduler(moto_reset: str) -> EventBridgeSchedulerClient:
    """A real boto3 EventBridge Scheduler client on the same moto server."""
    return boto3.client("scheduler", region_name=REGION, endpoint_url=moto_reset)


def make_queue(
    sqs: SQSClient,
    name: str,
    *,
    visibility: int = 30,
    dead_letter: str | None = None,
    max_receive: int | str = 5,
) -> str:
    attributes: dict[str, str] = {"VisibilityTimeout": str(visibility)}
    if name.endswith(".fifo"):
        attributes["FifoQueue"] = "true"
    if dead_letter is not None:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": queue_arn(sqs, dead_letter), "maxReceiveCount": max_receive}
        )
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]  # attribute names are checked by SQS


def queue_arn(sqs: SQSClient, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def job_message(
    job_name: str = "send_email",
    payload: object = None,
    *,
    job_id: str | None = None,
    queue: str | None = None,
    delay: int = 0,
    group_id: str | None = None,
) -> JobMessage:
    return JobMessage(
        job_name=job_name,
        payload={"to": "ada@example.com"} if payload is None else payload,
        job_id=job_id or str(uuid.uuid4()),
        queue=queue,
        delay_seconds=delay,
        enqueued_at=ENQUEUED_AT,
        group_id=group_id,
    )


def drain(
    receive: Callable[[], list[SQSRecord]], expected: int, *, seconds: float = 5.0
) -> dict[str, SQSRecord]:
    """Receive until `expected` distinct messages were seen or the deadline passes."""
    seen: dict[str, SQSRecord] = {}
    deadline = time.monotonic() + seconds
    while len(seen) < expected and time.monotonic() < deadline:
        for record in receive():
            seen.setdefault(record.message_id, record)
    return seen


def wait_until(condition: Callable[[], bool], *, seconds: float) -> float:
    """Poll `condition` until it holds; return the seconds it took (fails at the deadline)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            pytest.fail(f"condition not met within {seconds} s")
        time.sleep(0.1)
    return time.monotonic() - start


class CallCounter:
    """Counts requests of one operation through botocore's `before-call` event."""

    def __init__(self, client: SQSClient, operation: str) -> None:
        self.count = 0
        client.meta.events.register(f"before-call.sqs.{operation}", self._hit)

    def _hit(self, **_: object) -> None:
        self.count += 1


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._data


def sqs_response(
    request: AWSPreparedRequest, status: int, payload: object, error_code: str = ""
) -> AWSResponse:
    """An HTTP response as SQS's JSON protocol sends it, for botocore to parse."""
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    headers["x-amzn-RequestId"] = str(uuid.uuid4())
    if error_code:
        headers["x-amzn-query-error"] = f"{error_code};Sender"
    return AWSResponse(request.url, status, headers, _Body(json.dumps(payload).encode()))


def answer_requests(
    client: SQSClient, operation: str, answer: Callable[[AWSPreparedRequest], AWSResponse | None]
) -> None:
    """Answer requests before they are sent: botocore uses a response a `before-send` handler returns."""

    def handler(request: AWSPreparedRequest, **_: object) -> AWSResponse | None:
        return answer(request)

    # botocore-stubs type every handler as returning None; before-send handlers may return a response
    client.meta.events.register(f"before-send.sqs.{operation}", cast("Callable[..., None]", handler))


def request_entries(request: AWSPreparedRequest) -> list[dict[str, object]]:
    body = request.body
    assert isinstance(body, bytes | str)
    entries: list[dict[str, object]] = json.loads(body)["Entries"]
    return entries


# --- protocol conformance and imports ---------------------------------------------


def test_implements_every_driver_protocol() -> None:
    driver = SQSQueueDriver({"jobs": "http://127.0.0.1:1/123456789012/jobs"}, region=REGION)
    assert isinstance(driver, BatchQueueDriver)
    assert isinstance(driver, WorkerDriver)
    assert isinstance(driver, ConsumingDriver)
    assert isinstance(driver, QueueAdmin)
    assert driver.name == "sqs"


def test_boto3_is_imported_only_when_a_client_is_made() -> None:
    code = (
        "import sys\n"
        "import glasswork\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'import glasswork'\n"
        "from glasswork.drivers.sqs import SQSQueueDriver\n"
        "driver = SQSQueueDriver({'q': 'https://sqs.eu-west-1.amazonaws.com/123456789012/q'})\n"
        "assert 'boto3' not in sys.modules, 'driver made'\n"
        "print(driver.client.meta.region_name)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "eu-west-1"  # the region comes from the queue URL


# --- the enqueue side -----------------------------------------------------------


def test_enqueue_sends_the_wire_format_with_the_job_name_attribute(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs)
    message = job_message(payload={"to": "ada@example.com", "count": 2}, job_id="job-42")

    result = driver.enqueue(message)

    raw = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], MaxNumberOfMessages=10)
    (received,) = raw["Messages"]
    assert result.message_id == received["MessageId"]
    assert result.job_id == "job-42"
    assert received["Body"] == message.body
    assert json.loads(received["Body"]) == {
        "jobName": "send_email",
        "payload": {"to": "ada@example.com", "count": 2},
        "jobId": "job-42",
        "enqueuedAt": "2026-01-02T03:04:05.678Z",
    }
    assert received["MessageAttributes"] == {"JobName": {"DataType": "String", "StringValue": "send_email"}}


def test_receive_returns_records_in_the_exact_lambda_shape(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs)
    message = job_message(job_id="job-1")
    driver.enqueue(message)
    sqs.send_message(
        QueueUrl=url,
        MessageBody="raw",
        MessageAttributes={
            "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
            "Count": {"DataType": "Number", "StringValue": "3"},
        },
    )

    records = drain(lambda: driver.receive(max_messages=10), 2)

    by_body = {record.body: msgspec.to_builtins(record) for record in records.values()}
    job = by_body[message.body]
    assert set(job) >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSourceARN",
        "awsRegion",
    }
    assert job["messageAttributes"] == {"JobName": {"dataType": "String", "stringValue": "send_email"}}
    assert job["md5OfBody"] == hashlib.md5(message.body.encode(), usedforsecurity=False).hexdigest()
    assert job["eventSourceARN"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs"
    assert job["awsRegion"] == REGION
    assert job["attributes"]["SentTimestamp"].isdigit()
    assert job["attributes"]["SenderId"]
    assert job["attributes"]["ApproximateFirstReceiveTimestamp"].isdigit()
    raw = by_body["raw"]
    assert raw["messageAttributes"] == {
        "Blob": {"dataType": "Binary", "binaryValue": "AAH/"},
        "Count": {"dataType": "Number", "stringValue": "3"},
    }
    record = next(r for r in records.values() if r.body == message.body)
    # to_builtins omits values equal to the Struct's defaults ("1", "aws:sqs")
    assert record.attributes.approximate_receive_count == "1"
    assert record.event_source == "aws:sqs"
    assert not record.is_fifo


def test_short_delays_use_delay_seconds(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs)

    driver.enqueue(job_message(delay=900))

    counts = driver.counts()
    assert (counts.visible, counts.delayed) == (0, 1)
    assert driver.receive() == []


def test_long_delay_without_a_scheduler_names_the_option(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs)

    with pytest.raises(ConfigurationError, match="scheduler_role_arn"):
        driver.enqueue(job_message(delay=901))
    with pytest.raises(ConfigurationError, match="scheduler_role_arn"):
        driver.enqueue_batch([job_message(), job_message(delay=3600)])
    assert driver.counts().pending == 0  # nothing was sent, not even the batch's first message


def test_long_delay_creates_a_one_off_schedule_that_cancel_deletes(
    sqs: SQSClient, scheduler: EventBridgeSchedulerClient
) -> None:
    url = make_queue(sqs, "jobs")
    scheduler.create_schedule_group(Name="glasswork")
    role = f"arn:aws:iam::{ACCOUNT}:role/glasswork-scheduler"
    driver = SQSQueueDriver(
        {"jobs": url},
        sqs,
        scheduler_client=scheduler,
        scheduler_role_arn=role,
        scheduler_group="glasswork",
        clock=lambda: datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC),
    )
    message = job_message(delay=2 * 86400 + 1)

    result = driver.enqueue(message)

    schedule = scheduler.get_schedule(Name=result.message_id, GroupName="glasswork")
    assert schedule["ScheduleExpression"] == "at(2026-03-03T12:00:02)"  # rounded up to the second
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["Target"]["Arn"] == queue_arn(sqs, url)
    assert schedule["Target"]["RoleArn"] == role
    assert schedule["Target"]["Input"] == message.body
    assert result.job_id == message.job_id
    assert driver.counts().pending == 0

    assert driver.cancel(result.message_id) is True
    with pytest.raises(ClientError, match="ResourceNotFound"):
        scheduler.get_schedule(Name=result.message_id, GroupName="glasswork")
    assert driver.cancel(result.message_id) is False


def test_batch_sends_long_delays_through_the_scheduler(
    sqs: SQSClient, scheduler: EventBridgeSchedulerClient
) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver(
        {"jobs": url}, sqs, scheduler_client=scheduler, scheduler_role_arn=f"arn:aws:iam::{ACCOUNT}:role/s"
    )
    messages = [job_message(), job_message(delay=7200), job_message()]

    results = driver.enqueue_batch(messages)

    assert [r.job_id for r in results] == [m.job_id for m in messages]
    assert scheduler.get_schedule(Name=results[1].message_id)["Target"]["Input"] == messages[1].body
    received = drain(driver.receive, 2)
    assert {r.message_id for r in received.values()} == {results[0].message_id, results[2].message_id}


def test_fifo_sends_group_and_deduplication_ids_and_deduplicates(sqs: SQSClient) -> None:
    url = make_queue(sqs, "orders.fifo")
    driver = SQSQueueDriver({"orders": url}, sqs)
    first = job_message(job_id="order-7")
    again = job_message(job_id="order-7", payload={"to": "someone-else@example.com"})
    grouped = job_message(job_id="order-8", group_id="customer-1")
    long_id = job_message(job_id="x" * 200)

    driver.enqueue(first)
    driver.enqueue(again)
    driver.enqueue_batch([grouped, long_id])

    records = drain(lambda: driver.receive(visibility_timeout=30), 3)
    by_job = {json.loads(r.body)["jobId"]: r for r in records.values()}
    assert sorted(by_job) == sorted(["order-7", "order-8", "x" * 200])
    assert by_job["order-7"].body == first.body  # the duplicate was dropped by SQS
    assert by_job["order-7"].attributes.message_group_id == "orders"  # the queue's name
    assert by_job["order-7"].attributes.message_deduplication_id == "order-7"
    assert by_job["order-8"].attributes.message_group_id == "customer-1"
    assert by_job["x" * 200].attributes.message_deduplication_id == hashlib.sha256(b"x" * 200).hexdigest()
    assert all(r.is_fifo for r in records.values())


def test_fifo_refuses_a_per_message_delay(sqs: SQSClient) -> None:
    url = make_queue(sqs, "orders.fifo")
    driver = SQSQueueDriver({"orders": url}, sqs)

    with pytest.raises(ConfigurationError, match="FIFO"):
        driver.enqueue(job_message(delay=5))
    assert driver.counts().pending == 0


def test_batch_of_25_takes_three_requests_and_keeps_input_order(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs)
    calls = CallCounter(sqs, "SendMessageBatch")
    messages = [job_message(job_id=f"job-{i:02d}") for i in range(25)]

    results = driver.enqueue_batch(messages)

    assert calls.count == 3
    assert [r.job_id for r in results] == [m.job_id for m in messages]
    received = drain(lambda: driver.receive(max_messages=10), 25)
    assert {r.message_id: json.loads(r.body)["jobId"] for r in received.values()} == {
        r.message_id: r.job_id for r in results
    }


def test_batch_requests_stay_under_one_mebibyte(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs)
    calls = CallCounter(sqs, "SendMessageBatch")
    big = "x" * 400_000
    messages = [job_message(payload={"blob": big}) for _ in range(3)]

    results = driver.enqueue_batch(messages)

    assert calls.count == 2  # 2 x 400 kB, then 1: three would pass 1 MiB
    assert len({r.message_id for r in results}) == 3


def test_batch_retries_entries_that_failed_on_the_server_once(sqs: SQSClient) -> None:
    # The first SendMessageBatch is answered by a before-send hook: every entry
    # failed with a server fault (SenderFault false). The retry reaches moto.
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs)
    calls = CallCounter(sqs, "SendMessageBatch")
    answered: list[bool] = []

    def fail_first(request: AWSPreparedRequest) -> AWSResponse | None:
        if answered:
            return None
        answered.append(True)
        failed = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
            for e in request_entries(request)
        ]
        return sqs_response(request, 200, {"Successful": [], "Failed": failed})

    answer_requests(sqs, "SendMessageBatch", fail_first)
    messages = [job_message() for _ in range(3)]

    results = driver.enqueue_batch(messages)

    assert calls.count == 2
    assert [r.job_id for r in results] == [m.job_id for m in messages]
    assert len(drain(driver.receive, 3)) == 3


def test_batch_reports_exactly_the_entries_that_failed_twice(sqs: SQSClient) -> None:
    # Answered by a before-send hook (no moto): entry 1 fails with a server
    # fault on both tries, entry 3 with a sender fault (not retried).
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs)
    calls = CallCounter(sqs, "SendMessageBatch")
    messages = [job_message(job_id=f"job-{i}") for i in range(5)]
    sent_bodies: list[list[str]] = []

    def answer(request: AWSPreparedRequest) -> AWSResponse:
        entries = request_entries(request)
        sent_bodies.append([str(e["MessageBody"]) for e in entries])
        ok, failed = [], []
        for entry in entries:
            job_id = json.loads(str(entry["MessageBody"]))["jobId"]
            if job_id in ("job-1", "job-3"):
                fault = job_id == "job-3"
                failed.append({"Id": entry["Id"], "SenderFault": fault, "Code": "Boom", "Message": job_id})
            else:
                ok.append({"Id": entry["Id"], "MessageId": f"m-{job_id}", "MD5OfMessageBody": "x"})
        return sqs_response(request, 200, {"Successful": ok, "Failed": failed})

    answer_requests(sqs, "SendMessageBatch", answer)

    with pytest.raises(BatchEnqueueError) as caught:
        driver.enqueue_batch(messages)

    assert calls.count == 2
    assert sent_bodies[1] == [messages[1].body]  # only the server fault was retried
    assert [m.job_id for m, _ in caught.value.failed] == ["job-1", "job-3"]
    assert all(isinstance(e, DriverError) for _, e in caught.value.failed)
    assert [r.job_id for r in caught.value.succeeded] == ["job-0", "job-2", "job-4"]
    assert [r.message_id for r in caught.value.succeeded] == ["m-job-0", "m-job-2", "m-job-4"]


# --- errors -----------------------------------------------------------------------


def test_unknown_queue_name_is_named_and_nothing_is_sent(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs)
    calls = CallCounter(sqs, "SendMessage")

    with pytest.raises(QueueNotFoundError, match="'emails'"):
        driver.enqueue(job_message(queue="emails"))
    with pytest.raises(QueueNotFoundError, match="'emails'"):
        driver.enqueue_batch([job_message(), job_message(queue="emails")])
    assert calls.count == 0
    assert driver.counts().pending == 0


def test_nonexistent_queue_url_or_name_is_queue_not_found(sqs: SQSClient, moto_reset: str) -> None:
    missing = f"{moto_reset}/{ACCOUNT}/missing"
    driver = SQSQueueDriver({"missing": missing}, sqs)

    with pytest.raises(QueueNotFoundError, match="missing") as single:
        driver.enqueue(job_message())
    with pytest.raises(QueueNotFoundError, match="missing") as batch:
        driver.enqueue_batch([job_message(), job_message()])
    by_name = SQSQueueDriver(client=sqs)  # names looked up with GetQueueUrl
    with pytest.raises(QueueNotFoundError, match="'nowhere'"):
        by_name.enqueue(job_message(queue="nowhere"))
    assert isinstance(single.value.__cause__, ClientError)
    assert isinstance(batch.value.__cause__, ClientError)


def test_queues_can_be_looked_up_by_name(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver(client=sqs, default_queue="jobs")
    lookups = CallCounter(sqs, "GetQueueUrl")

    driver.enqueue(job_message())
    driver.enqueue(job_message(queue="jobs"))

    assert lookups.count == 1
    assert (
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
        == "2"
    )


def test_throttling_becomes_a_retriable_throttled_error(sqs: SQSClient) -> None:
    # A before-send hook answers as SQS does when it throttles (HTTP 400,
    # ThrottlingException); botocore parses it, the driver translates it.
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs)
    calls = CallCounter(sqs, "SendMessageBatch")

    def throttle(request: AWSPreparedRequest) -> AWSResponse:
        payload = {"__type": "com.amazonaws.sqs#ThrottlingException", "message": "Rate exceeded"}
        return sqs_response(request, 400, payload, "ThrottlingException")

    answer_requests(sqs, "SendMessage", throttle)
    answer_requests(sqs, "SendMessageBatch", throttle)

    with pytest.raises(ThrottledError, match="Rate exceeded") as single:
        driver.enqueue(job_message())
    with pytest.raises(ThrottledError) as batch:
        driver.enqueue_batch([job_message(), job_message()])

    assert isinstance(single.value.__cause__, ClientError)
    assert isinstance(batch.value.__cause__, ClientError)
    assert calls.count == 2  # the whole request was retried once


def test_connection_failure_is_a_driver_error_with_the_cause() -> None:
    client = boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    driver = SQSQueueDriver({"jobs": f"http://127.0.0.1:9/{ACCOUNT}/jobs"}, client)

    with pytest.raises(DriverError) as caught:
        driver.enqueue(job_message())
    assert isinstance(caught.value.__cause__, EndpointConnectionError)


def test_no_queue_and_no_default_is_a_configuration_error() -> None:
    driver = SQSQueueDriver({"a": "http://127.0.0.1:9/1/a", "b": "http://127.0.0.1:9/1/b"}, region=REGION)
    with pytest.raises(ConfigurationError, match="default_queue"):
        driver.enqueue(job_message())
    with pytest.raises(ConfigurationError, match="'c'"):
        SQSQueueDriver({"a": "http://127.0.0.1:9/1/a"}, default_queue="c")


# --- the worker side --------------------------------------------------------------


def dead_letter_info(record: SQSRecord, **changes: object) -> DeadLetterInfo:
    info = DeadLetterInfo(
        reason="permanent_error",
        error_type="PermanentJobError",
        error_message="card declined",
        attempt=3,
        source_queue=record.event_source_arn,
        job_name="send_email",
        job_id="job-1",
    )
    return msgspec.structs.replace(info, **changes)


def test_dead_letter_discovers_the_dlq_once_and_keeps_body_and_attributes(sqs: SQSClient) -> None:
    dlq = make_queue(sqs, "jobs-dlq")
    url = make_queue(sqs, "jobs", dead_letter=dlq)
    sqs.send_message(
        QueueUrl=url,
        MessageBody='{"jobName": "send_email", "payload": 1, "jobId": "job-1"}',
        MessageAttributes={
            **{f"A{i}": {"DataType": "String", "StringValue": f"v{i}"} for i in range(7)},
            "JobName": {"DataType": "String", "StringValue": "send_email"},
        },
    )
    driver = SQSQueueDriver(client=sqs)  # nothing configured: everything from the record's ARN
    (record,) = driver.receive(f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs")
    attribute_reads = CallCounter(sqs, "GetQueueAttributes")

    driver.dead_letter(record, dead_letter_info(record))
    driver.dead_letter(record, dead_letter_info(record, reason="poison_message", job_name=None))

    assert attribute_reads.count == 1  # the RedrivePolicy, read once
    received = drain(lambda: driver.receive(dlq), 2)
    assert len(received) == 2
    for copy in received.values():
        assert copy.body == record.body
        attributes = {k: v.string_value for k, v in copy.message_attributes.items()}
        assert len(attributes) == 10  # SQS's limit: ours, then the originals that fit
        assert attributes[ATTR_JOB_NAME] == "send_email"
        assert attributes[ATTR_ERROR_TYPE] == "PermanentJobError"
        assert attributes[ATTR_ERROR_MESSAGE] == "card declined"
        assert attributes[ATTR_ATTEMPT] == "3"
        assert copy.message_attributes[ATTR_ATTEMPT].data_type == "Number"
        assert attributes[ATTR_SOURCE_QUEUE] == record.event_source_arn
        assert {k for k in attributes if k.startswith("A")} == {"A0", "A1", "A2", "A3"}
    reasons = sorted(str(c.message_attributes[ATTR_REASON].string_value) for c in received.values())
    assert reasons == ["permanent_error", "poison_message"]


def test_dead_letter_uses_configured_queue_and_fifo_ids(sqs: SQSClient) -> None:
    dlq = make_queue(sqs, "orders-dlq.fifo")
    url = make_queue(sqs, "orders.fifo")
    driver = SQSQueueDriver({"orders": url}, sqs, dead_letter_queues={"orders": dlq})
    driver.enqueue(job_message(job_id="order-1", group_id="customer-9"))
    (record,) = driver.receive()

    driver.dead_letter(record, dead_letter_info(record))

    (copy,) = drain(lambda: driver.receive(dlq), 1).values()
    assert copy.body == record.body
    assert copy.attributes.message_group_id == "customer-9"
    assert copy.attributes.message_deduplication_id == "order-1"


def test_dead_letter_without_a_dlq_or_to_a_missing_one_raises(sqs: SQSClient, moto_reset: str) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs)
    driver.enqueue(job_message())
    (record,) = driver.receive()

    with pytest.raises(DriverError, match="dead_letter_queues"):
        driver.dead_letter(record, dead_letter_info(record))

    broken = SQSQueueDriver({"jobs": url}, sqs, dead_letter_queues={"jobs": f"{moto_reset}/{ACCOUNT}/gone"})
    with pytest.raises(DriverError) as caught:
        broken.dead_letter(record, dead_letter_info(record))
    assert isinstance(caught.value.__cause__, ClientError)


def test_change_visibility_batches_per_queue_and_clamps(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs", visibility=1)
    driver = SQSQueueDriver({"jobs": url}, sqs)
    driver.enqueue_batch([job_message() for _ in range(12)])
    records = list(drain(lambda: driver.receive(max_messages=12), 12).values())
    calls = CallCounter(sqs, "ChangeMessageVisibilityBatch")

    driver.change_visibility(
        [
            VisibilityChange(
                message_id=r.message_id,
                receipt_handle=r.receipt_handle,
                seconds=10**9,  # clamped to 42,300: SQS rejects 12 h past the receive
                source_queue=r.event_source_arn,
            )
            for r in records
        ]
    )

    assert calls.count == 2
    time.sleep(1.5)  # past the queue's own visibility timeout
    assert driver.counts().visible == 0
    assert driver.counts().in_flight == 12


def test_change_visibility_tries_every_change_then_raises(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs", visibility=30)
    driver = SQSQueueDriver({"jobs": url}, sqs)
    driver.enqueue(job_message())
    (record,) = driver.receive()
    arn = record.event_source_arn

    with pytest.raises(DriverError, match="1 of 2 visibility changes failed: bogus"):
        driver.change_visibility(
            [
                VisibilityChange(message_id="bogus", receipt_handle="nope", seconds=5, source_queue=arn),
                VisibilityChange(
                    message_id=record.message_id,
                    receipt_handle=record.receipt_handle,
                    seconds=0,
                    source_queue=arn,
                ),
            ]
        )
    assert driver.counts().visible == 1  # the valid change was applied


def test_check_redrive_warns_when_sqs_would_redrive_first(sqs: SQSClient) -> None:
    dlq = make_queue(sqs, "jobs-dlq")
    url = make_queue(sqs, "jobs", dead_letter=dlq, max_receive=3)
    plain = make_queue(sqs, "plain")
    driver = SQSQueueDriver(client=sqs)

    warning = driver.check_redrive(queue_arn(sqs, url), 5)

    assert warning is not None
    assert "maxReceiveCount=3" in warning
    assert "max_attempts=5" in warning
    assert driver.check_redrive(queue_arn(sqs, url), 3) is None
    assert driver.check_redrive(queue_arn(sqs, plain), 25) is None
    missing = driver.check_redrive(f"arn:aws:sqs:{REGION}:{ACCOUNT}:missing", 5)
    assert missing is not None
    assert "could not read" in missing


# --- consuming side and admin ----------------------------------------------------


def test_delete_and_counts(sqs: SQSClient) -> None:
    dlq = make_queue(sqs, "jobs-dlq")
    url = make_queue(sqs, "jobs", dead_letter=dlq)
    driver = SQSQueueDriver({"jobs": url}, sqs)
    driver.enqueue_batch([job_message() for _ in range(13)])
    driver.enqueue(job_message(delay=60))
    sqs.send_message(QueueUrl=dlq, MessageBody="dead")
    calls = CallCounter(sqs, "DeleteMessageBatch")

    records = list(drain(lambda: driver.receive(max_messages=13), 13).values())
    assert driver.counts().in_flight == 13
    driver.delete(records[:11])

    counts = driver.counts()
    assert (counts.visible, counts.in_flight, counts.delayed, counts.dead) == (0, 2, 1, 1)
    assert calls.count == 2


def test_list_dead_letters_peeks_and_redrive_moves_them_back(sqs: SQSClient) -> None:
    dlq = make_queue(sqs, "jobs-dlq")
    url = make_queue(sqs, "jobs", dead_letter=dlq)
    driver = SQSQueueDriver({"jobs": url}, sqs)
    driver.enqueue(job_message(job_id="job-1"))
    driver.enqueue(job_message(job_id="job-2"))
    for record in drain(driver.receive, 2).values():
        driver.dead_letter(record, dead_letter_info(record, job_id=None))
        driver.delete([record])

    entries = driver.list_dead_letters()

    assert sorted(str(e.job_id) for e in entries) == ["job-1", "job-2"]
    assert {(e.job_name, e.reason, e.attempt, e.error_type) for e in entries} == {
        ("send_email", "permanent_error", 3, "PermanentJobError")
    }
    assert driver.counts().dead == 2  # peeking left them there, visible again
    assert (
        sum(
            int(v)
            for v in sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ].values()
        )
        == 2
    )

    assert driver.redrive() == 2

    assert driver.counts().dead == 0
    back = drain(driver.receive, 2)
    assert sorted(json.loads(r.body)["jobId"] for r in back.values()) == ["job-1", "job-2"]
    for record in back.values():
        assert set(record.message_attributes) == {ATTR_JOB_NAME}  # the Glasswork* ones are dropped


def test_purge(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs)
    driver.enqueue_batch([job_message() for _ in range(3)])

    assert driver.purge() == 3
    assert driver.counts().pending == 0
    with pytest.raises(DriverError, match="PurgeQueue"):
        driver.purge()  # SQS allows one purge a minute


def test_sqs_redrives_after_max_receive_count(sqs: SQSClient) -> None:
    dlq = make_queue(sqs, "jobs-dlq")
    url = make_queue(sqs, "jobs", dead_letter=dlq, max_receive=2)
    driver = SQSQueueDriver({"jobs": url}, sqs)
    driver.enqueue(job_message(job_id="job-1"))

    attempts: list[int] = []
    for _ in range(3):
        attempts.extend(
            int(r.attributes.approximate_receive_count) for r in driver.receive(visibility_timeout=0)
        )

    assert attempts == [1, 2]
    assert driver.counts().dead == 1
    (entry,) = driver.list_dead_letters()
    assert (entry.job_id, entry.job_name, entry.reason) == ("job-1", "send_email", None)


def test_message_attribute_round_trip_through_lambda_shape() -> None:
    record = SQSRecord(
        message_id="m",
        body="{}",
        message_attributes={
            "Bin": SQSMessageAttribute(data_type="Binary", binary_value="AAH/"),
            "Only": SQSMessageAttribute(data_type="String", string_list_values=["a"]),
        },
        event_source_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs",
    )
    info = dead_letter_info(record)
    from glasswork.drivers.sqs import _dead_letter_attributes

    attributes = _dead_letter_attributes(record, info)
    assert attributes["Bin"] == {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"}
    assert "Only" not in attributes  # list values are reserved by SQS and cannot be sent


def test_redrive_refuses_to_send_a_queue_into_itself(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver({"jobs": url}, sqs, dead_letter_queues={"jobs": url})
    driver.enqueue(job_message())

    with pytest.raises(DriverError, match="own dead-letter queue"):
        driver.redrive()
    assert driver.counts().visible == 1  # released at once, not hidden for the peek's 30 s


def test_the_queues_visibility_timeout_bounds_the_local_function_timeout(sqs: SQSClient) -> None:
    from glasswork.local import Poller  # only this test

    url = make_queue(sqs, "short", visibility=4)
    driver = SQSQueueDriver.from_url(url, client=sqs)

    assert driver.queue_visibility_timeout() == 4
    assert Poller(lambda event, context: None, driver).function_timeout == 4.0
    with pytest.raises(QueueNotFoundError):
        SQSQueueDriver.from_url(url + "-gone", client=sqs).queue_visibility_timeout()


def test_from_url_names_the_queue_after_its_url(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs")
    driver = SQSQueueDriver.from_url(url, client=sqs)
    assert driver.default_queue == "jobs"

    driver.enqueue(job_message())
    driver.enqueue(job_message(queue="jobs"))

    assert driver.counts("jobs").visible == 2
