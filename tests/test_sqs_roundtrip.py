"""The worker and the SQS driver together, over real HTTP against moto.

`deliver` stands in for Lambda's event source mapping: it receives a batch
with every attribute, hands the handler a Lambda-shaped event (plain dicts),
and deletes the records the handler did not report in `batchItemFailures`.
Moto may deliver a message twice, so assertions look at sets and orderings,
never at exact call counts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import boto3
import msgspec
import pytest
from botocore.config import Config
from mypy_boto3_sqs import SQSClient

from glasswork import (
    JobService,
    Module,
    PermanentJobError,
    RetryPolicy,
    TransientJobError,
    bootstrap_worker,
    define_job,
)
from glasswork._wire import SQSRecord
from glasswork.context import JobContext
from glasswork.drivers.base import ATTR_ATTEMPT, ATTR_ERROR_MESSAGE, ATTR_ERROR_TYPE, ATTR_REASON
from glasswork.drivers.sqs import SQSQueueDriver
from glasswork.testing import FakeLambdaContext
from glasswork.worker import Worker

pytestmark = pytest.mark.sqs

REGION = "us-east-1"


class Email(msgspec.Struct, frozen=True, kw_only=True):
    to: str


@pytest.fixture
def sqs(moto_reset: str) -> SQSClient:
    return boto3.client(
        "sqs", region_name=REGION, endpoint_url=moto_reset, config=Config(retries={"total_max_attempts": 1})
    )


def make_queue(
    sqs: SQSClient, name: str, *, visibility: int, dead_letter: str | None = None, max_receive: int = 5
) -> str:
    attributes: dict[str, str] = {"VisibilityTimeout": str(visibility)}
    if name.endswith(".fifo"):
        attributes["FifoQueue"] = "true"
    if dead_letter is not None:
        arn = sqs.get_queue_attributes(QueueUrl=dead_letter, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive})
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]  # attribute names are checked by SQS


def deliver(driver: SQSQueueDriver, handler: Worker, queue: str | None = None) -> list[SQSRecord]:
    """One poll of a stand-in for Lambda's event source mapping; returns the batch."""
    records = driver.receive(queue, max_messages=10)
    if not records:
        return []
    event = {"Records": [msgspec.to_builtins(record) for record in records]}
    response = handler(event, FakeLambdaContext())
    failures = response["batchItemFailures"]
    assert isinstance(failures, list)
    failed = {item["itemIdentifier"] for item in failures}
    assert failed <= {record.message_id for record in records}
    driver.delete([record for record in records if record.message_id not in failed])
    return records


def deliver_until(
    driver: SQSQueueDriver,
    handler: Worker,
    done: Callable[[], bool],
    *,
    seconds: float,
    queue: str | None = None,
) -> list[SQSRecord]:
    """Poll until `done()` holds (fails at the deadline); returns every record delivered."""
    delivered: list[SQSRecord] = []
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"not done within {seconds} s; delivered {len(delivered)} records")
        batch = deliver(driver, handler, queue)
        delivered.extend(batch)
        if not batch:
            time.sleep(0.1)
    return delivered


def test_permanent_failure_lands_in_the_redrive_dlq_and_successes_are_gone(sqs: SQSClient) -> None:
    dlq = make_queue(sqs, "jobs-dlq", visibility=30)
    url = make_queue(sqs, "jobs", visibility=2, dead_letter=dlq)
    driver = SQSQueueDriver({"jobs": url}, sqs)  # the DLQ is found through the RedrivePolicy
    sent: list[str] = []

    def send_email(payload: Email, ctx: JobContext) -> None:
        sent.append(payload.to)

    def charge(payload: Email, ctx: JobContext) -> None:
        raise PermanentJobError(f"card declined for {payload.to}")

    send_job = define_job(name="send_email", handler=send_email, payload=Email)
    charge_job = define_job(name="charge", handler=charge, payload=Email)
    handler = bootstrap_worker(module=Module(name="app", jobs=[send_job, charge_job]), driver=driver)
    service = JobService(driver)
    results = service.enqueue_batch(
        [(send_job, Email(to=f"user{i}@example.com")) for i in range(3)]
        + [(charge_job, Email(to="broke@example.com"))]
    )

    delivered = deliver_until(driver, handler, lambda: driver.counts().pending == 0, seconds=10)

    assert sorted(set(sent)) == ["user0@example.com", "user1@example.com", "user2@example.com"]
    counts = driver.counts()
    assert (counts.visible, counts.in_flight, counts.delayed, counts.dead) == (0, 0, 0, 1)
    original = next(r for r in delivered if json.loads(r.body)["jobName"] == "charge")
    assert json.loads(original.body)["jobId"] == results[3].job_id
    (dead,) = driver.receive(dlq, max_messages=10)
    assert dead.body == original.body
    attributes = {name: value.string_value for name, value in dead.message_attributes.items()}
    assert attributes["JobName"] == "charge"
    assert attributes[ATTR_REASON] == "permanent_error"
    assert attributes[ATTR_ERROR_TYPE] == "PermanentJobError"
    assert attributes[ATTR_ERROR_MESSAGE] == "card declined for broke@example.com"
    assert attributes[ATTR_ATTEMPT] == "1"


def test_retry_after_keeps_the_message_hidden_past_the_queue_visibility_timeout(sqs: SQSClient) -> None:
    url = make_queue(sqs, "jobs", visibility=1)
    driver = SQSQueueDriver({"jobs": url}, sqs)
    attempts: list[int] = []

    def flaky(payload: Email, ctx: JobContext) -> None:
        attempts.append(ctx.attempt_number)
        if ctx.attempt_number == 1:
            raise TransientJobError("rate limited", retry_after=3)

    job = define_job(name="flaky", handler=flaky, payload=Email)
    handler = bootstrap_worker(module=Module(name="app", jobs=[job]), driver=driver)
    JobService(driver).enqueue(job, Email(to="ada@example.com"))

    deliver_until(driver, handler, lambda: bool(attempts), seconds=5)
    failed_at = time.monotonic()
    time.sleep(1.6)  # past the queue's 1 s visibility timeout
    assert driver.counts().visible == 0
    assert driver.counts().in_flight == 1
    deliver_until(driver, handler, lambda: driver.counts().pending == 0, seconds=8)

    assert time.monotonic() - failed_at >= 2.5
    assert attempts[0] == 1
    assert 2 in attempts


def test_transient_failures_come_back_with_growing_attempt_numbers(sqs: SQSClient) -> None:
    dlq = make_queue(sqs, "jobs-dlq", visibility=30)
    url = make_queue(sqs, "jobs", visibility=1, dead_letter=dlq, max_receive=5)
    driver = SQSQueueDriver({"jobs": url}, sqs)
    attempts: list[int] = []

    def always_fails(payload: Email, ctx: JobContext) -> None:
        attempts.append(ctx.attempt_number)
        raise TransientJobError("still down", retry_after=0)

    job = define_job(name="unlucky", handler=always_fails, payload=Email, retry=RetryPolicy(max_attempts=3))
    handler = bootstrap_worker(module=Module(name="app", jobs=[job]), driver=driver)
    JobService(driver).enqueue(job, Email(to="ada@example.com"))

    deliver_until(driver, handler, lambda: driver.counts().dead == 1, seconds=10)

    assert attempts == sorted(attempts)
    assert sorted(set(attempts)) == [1, 2, 3]
    assert driver.counts().pending == 0
    (entry,) = driver.list_dead_letters()
    assert (entry.job_name, entry.reason, entry.attempt, entry.error_type) == (
        "unlucky",
        "retries_exhausted",
        3,
        "RetryExhaustedError",
    )


def test_sqs_redrives_first_when_max_receive_count_is_low_and_the_worker_warns(
    sqs: SQSClient, caplog: pytest.LogCaptureFixture
) -> None:
    dlq = make_queue(sqs, "jobs-dlq", visibility=30)
    url = make_queue(sqs, "jobs", visibility=1, dead_letter=dlq, max_receive=2)
    driver = SQSQueueDriver({"jobs": url}, sqs)
    attempts: list[int] = []

    def always_fails(payload: Email, ctx: JobContext) -> None:
        attempts.append(ctx.attempt_number)
        raise TransientJobError("down", retry_after=0)

    job = define_job(name="unlucky", handler=always_fails, payload=Email, retry=5)
    handler = bootstrap_worker(module=Module(name="app", jobs=[job]), driver=driver)
    JobService(driver).enqueue(job, Email(to="ada@example.com"))

    with caplog.at_level(logging.WARNING):
        deliver_until(driver, handler, lambda: driver.counts().dead == 1, seconds=10)

    assert sorted(set(attempts)) == [1, 2]  # SQS moved it before attempt 3
    assert any("maxReceiveCount=2" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    (entry,) = driver.list_dead_letters()
    assert (entry.job_name, entry.reason) == ("unlucky", None)  # SQS's redrive adds no details
    assert driver.redrive() == 1
    assert driver.counts().dead == 0


def test_fifo_defers_the_rest_of_a_group_after_a_failure(sqs: SQSClient) -> None:
    url = make_queue(sqs, "orders.fifo", visibility=1)
    driver = SQSQueueDriver({"orders": url}, sqs)
    ran: list[str] = []

    def step(payload: Email, ctx: JobContext) -> None:
        ran.append(f"{payload.to}#{ctx.attempt_number}")
        if payload.to == "first" and ctx.attempt_number == 1:
            raise TransientJobError("not yet", retry_after=0)

    job = define_job(name="step", handler=step, payload=Email, group=lambda p: "customer-1")
    handler = bootstrap_worker(module=Module(name="app", jobs=[job]), driver=driver)
    service = JobService(driver)
    service.enqueue(job, Email(to="first"))
    service.enqueue(job, Email(to="second"))

    first_batch = deliver(driver, handler)

    assert [json.loads(r.body)["payload"]["to"] for r in first_batch] == ["first", "second"]
    assert ran == ["first#1"]  # "second" was deferred behind the failed "first", not run
    deliver_until(driver, handler, lambda: driver.counts().pending == 0, seconds=10)
    # Which of the two moto hands out next is moto's business: after a
    # deferral it can release a FIFO group out of order, which SQS does not.
    assert "first#2" in ran
    assert any(entry.startswith("second#") for entry in ran[1:])
