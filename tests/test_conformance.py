"""One driver conformance suite: the protocols of `glasswork.drivers.base`, run on every driver.

The same tests run on the in-memory mock, the embedded SQLite queue, SQS
(moto's server over real HTTP) and Redis (a real redis-server). They use
only what the protocols promise, so nothing here waits on a clock:
visibility is driven with `change_visibility` (0 releases a message, a long
timeout hides it), which every backend applies at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec
import pytest

from glasswork._wire import JobMessage, SQSRecord
from glasswork.core import decode_message
from glasswork.drivers.base import (
    BatchQueueDriver,
    ConsumingDriver,
    DeadLetterInfo,
    QueueAdmin,
    QueueCounts,
    VisibilityChange,
    WorkerDriver,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType

QUEUE = "jobs"
FIFO_QUEUE = "orders.fifo"


class Driver(BatchQueueDriver, WorkerDriver, ConsumingDriver, QueueAdmin, Protocol):
    """Every side of the driver protocols at once."""


def _memory(_request: pytest.FixtureRequest, _tmp_path: Path) -> Iterator[Driver]:
    from glasswork.drivers.memory import MockQueueDriver

    yield MockQueueDriver()


def _sqlite(_request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    from glasswork.drivers.sqlite import SQLiteQueueDriver

    with SQLiteQueueDriver(tmp_path / "queue.db", default_queue=QUEUE) as driver:
        yield driver


def _sqs(request: pytest.FixtureRequest, _tmp_path: Path) -> Iterator[Driver]:
    import boto3

    from glasswork.drivers.sqs import SQSQueueDriver

    endpoint = request.getfixturevalue("moto_reset")
    client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    urls: dict[str, str] = {}
    dead: dict[str, str] = {}
    for name, dlq in ((QUEUE, "jobs-dlq"), (FIFO_QUEUE, "orders-dlq.fifo")):
        fifo: dict[QueueAttributeNameType, str] = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
        dead[name] = client.create_queue(QueueName=dlq, Attributes=fifo)["QueueUrl"]
        urls[name] = client.create_queue(QueueName=name, Attributes={**fifo, "VisibilityTimeout": "30"})[
            "QueueUrl"
        ]
    yield SQSQueueDriver(
        urls, client=client, dead_letter_queues=dead, default_queue=QUEUE, endpoint_url=endpoint
    )


def _redis(request: pytest.FixtureRequest, _tmp_path: Path) -> Iterator[Driver]:
    from glasswork.drivers.redis import RedisQueueDriver

    with RedisQueueDriver(request.getfixturevalue("redis_url"), default_queue=QUEUE) as driver:
        yield driver


_FACTORIES = {"memory": _memory, "sqlite": _sqlite, "sqs": _sqs, "redis": _redis}


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("sqs", marks=pytest.mark.sqs),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    yield from _FACTORIES[request.param](request, tmp_path)


def job(n: int, *, queue: str = QUEUE, delay: int = 0, group: str | None = None) -> JobMessage:
    return JobMessage(
        job_name="send_email",
        payload={"to": f"user{n}@example.com", "n": n},
        job_id=f"job-{n}",
        queue=queue,
        metadata={"tenant": "acme"},
        delay_seconds=delay,
        group_id=group,
    )


def info(record: SQSRecord, *, attempt: int = 1) -> DeadLetterInfo:
    envelope = decode_message(record.body)
    return DeadLetterInfo(
        reason="permanent_error",
        error_type="PermanentJobError",
        error_message="mailbox does not exist",
        attempt=attempt,
        source_queue=record.event_source_arn,
        job_name=envelope.job_name,
        job_id=envelope.job_id,
    )


def change(record: SQSRecord, seconds: int) -> VisibilityChange:
    return VisibilityChange(
        message_id=record.message_id,
        receipt_handle=record.receipt_handle,
        seconds=seconds,
        source_queue=record.event_source_arn,
    )


def receive_all(driver: Driver, queue: str = QUEUE) -> list[SQSRecord]:
    """Receive (hiding for 300 s) until a receive comes back empty; SQS may return fewer than asked."""
    records: list[SQSRecord] = []
    for _ in range(50):
        batch = driver.receive(queue, max_messages=10, visibility_timeout=300)
        if not batch:
            return records
        records.extend(batch)
    pytest.fail("the queue never came back empty")


def test_enqueue_then_receive_gives_a_lambda_shaped_record(driver: Driver) -> None:
    sent = driver.enqueue(job(1))
    assert sent.job_id == "job-1"
    (record,) = driver.receive(QUEUE)
    assert record.message_id == sent.message_id
    assert record.receipt_handle
    envelope = decode_message(record.body)
    assert (envelope.job_name, envelope.job_id, envelope.metadata) == (
        "send_email",
        "job-1",
        {"tenant": "acme"},
    )
    assert msgspec.json.decode(envelope.payload) == {"to": "user1@example.com", "n": 1}
    assert record.attributes.approximate_receive_count == "1"
    assert record.attributes.sent_timestamp.isdigit()
    assert int(record.attributes.sent_timestamp) > 1_600_000_000_000
    assert record.attributes.approximate_first_receive_timestamp.isdigit()
    assert record.attributes.message_group_id is None
    assert record.message_attributes["JobName"].string_value == "send_email"
    assert record.message_attributes["JobName"].data_type == "String"
    assert record.event_source == "aws:sqs"
    assert record.event_source_arn.startswith("arn:aws:sqs:")
    assert record.queue_name == QUEUE
    assert record.aws_region
    wire = msgspec.json.decode(msgspec.json.encode(record))
    assert {"messageId", "receiptHandle", "body", "attributes", "eventSourceARN"} <= set(wire)


def test_received_record_survives_the_lambda_event_round_trip(driver: Driver) -> None:
    driver.enqueue(job(2))
    (record,) = driver.receive(QUEUE)
    event = {"Records": [msgspec.to_builtins(record)]}
    (decoded,) = msgspec.convert(event, dict[str, list[SQSRecord]])["Records"]
    assert decoded == record


def test_delete_removes_the_message(driver: Driver) -> None:
    kept = driver.enqueue(job(1))
    gone = driver.enqueue(job(2))
    records = {r.message_id: r for r in receive_all(driver)}
    assert set(records) == {kept.message_id, gone.message_id}
    driver.delete([records[gone.message_id]])
    driver.change_visibility([change(records[kept.message_id], 0)])
    again = receive_all(driver)
    assert [r.message_id for r in again] == [kept.message_id]
    driver.delete(again)
    assert driver.receive(QUEUE) == []
    assert driver.counts(QUEUE) == QueueCounts(visible=0, in_flight=0, delayed=0, dead=0)


def test_a_received_message_is_hidden_from_other_receives(driver: Driver) -> None:
    driver.enqueue(job(1))
    (record,) = driver.receive(QUEUE, visibility_timeout=300)
    assert driver.receive(QUEUE) == []
    counts = driver.counts(QUEUE)
    assert (counts.visible, counts.in_flight) == (0, 1)
    driver.delete([record])


def test_change_visibility_hides_and_releases(driver: Driver) -> None:
    driver.enqueue(job(1))
    (first,) = driver.receive(QUEUE, visibility_timeout=300)
    driver.change_visibility([change(first, 0)])
    (second,) = driver.receive(QUEUE, visibility_timeout=300)
    assert second.message_id == first.message_id
    assert second.attributes.approximate_receive_count == "2"
    assert second.receipt_handle != first.receipt_handle
    driver.change_visibility([change(second, 3600)])
    assert driver.receive(QUEUE) == []
    assert driver.counts(QUEUE).in_flight == 1


def test_dead_letter_then_counts_and_list(driver: Driver) -> None:
    driver.enqueue(job(1))
    driver.enqueue(job(2))
    records = receive_all(driver)
    doomed = next(r for r in records if decode_message(r.body).job_id == "job-1")
    driver.dead_letter(doomed, info(doomed, attempt=3))
    driver.delete(records)  # the poller deletes what the worker acknowledged
    assert driver.counts(QUEUE) == QueueCounts(visible=0, in_flight=0, delayed=0, dead=1)
    (entry,) = driver.list_dead_letters(QUEUE)
    assert entry.body == doomed.body
    assert (entry.job_name, entry.job_id, entry.attempt, entry.reason) == (
        "send_email",
        "job-1",
        3,
        "permanent_error",
    )
    assert entry.error_type == "PermanentJobError"
    assert entry.error_message == "mailbox does not exist"


def test_redrive_brings_dead_letters_back(driver: Driver) -> None:
    driver.enqueue(job(1))
    (record,) = driver.receive(QUEUE)
    driver.dead_letter(record, info(record))
    driver.delete([record])
    assert driver.redrive(QUEUE) == 1
    (back,) = receive_all(driver)
    assert back.body == record.body
    assert back.attributes.approximate_receive_count == "1"
    assert driver.counts(QUEUE).dead == 0
    assert driver.list_dead_letters(QUEUE) == []


def test_enqueue_batch_results_are_in_input_order(driver: Driver) -> None:
    messages = [job(n) for n in range(12)]
    results = driver.enqueue_batch(messages)
    assert [r.job_id for r in results] == [m.job_id for m in messages]
    assert len({r.message_id for r in results}) == 12
    received = receive_all(driver)
    by_id = {r.message_id: decode_message(r.body).job_id for r in received}
    assert by_id == {r.message_id: r.job_id for r in results}
    assert driver.enqueue_batch([]) == []


def test_counts_visible_in_flight_delayed(driver: Driver) -> None:
    driver.enqueue_batch([job(1), job(2), job(3)])
    driver.enqueue(job(4, delay=600))
    assert driver.counts(QUEUE) == QueueCounts(visible=3, in_flight=0, delayed=1, dead=0)
    (record,) = driver.receive(QUEUE, max_messages=1, visibility_timeout=300)
    counts = driver.counts(QUEUE)
    assert counts == QueueCounts(visible=2, in_flight=1, delayed=1, dead=0)
    assert counts.pending == 4
    driver.delete([record])
    assert driver.counts(QUEUE).pending == 3


def test_purge_empties_the_queue(driver: Driver) -> None:
    driver.enqueue_batch([job(1), job(2)])
    assert driver.purge(QUEUE) == 2
    assert driver.receive(QUEUE) == []
    assert driver.counts(QUEUE).pending == 0


def test_fifo_group_order_and_one_receiver_at_a_time(driver: Driver) -> None:
    sent = driver.enqueue_batch([job(n, queue=FIFO_QUEUE, group="customer-1") for n in range(3)])
    first = driver.receive(FIFO_QUEUE, max_messages=1, visibility_timeout=300)
    assert [r.message_id for r in first] == [sent[0].message_id]
    assert first[0].attributes.message_group_id == "customer-1"
    assert first[0].attributes.message_deduplication_id == "job-0"
    assert driver.receive(FIFO_QUEUE, visibility_timeout=300) == []
    driver.delete(first)
    rest = receive_all(driver, FIFO_QUEUE)
    assert [r.message_id for r in rest] == [s.message_id for s in sent[1:]]
