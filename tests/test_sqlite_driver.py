"""The embedded SQLite queue: SQS semantics with an injected clock, across connections and processes."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from glasswork._wire import JobMessage, SQSMessageAttribute, SQSRecord
from glasswork.core import RetryPolicy, decode_message
from glasswork.drivers.base import (
    BatchQueueDriver,
    ConsumingDriver,
    DeadLetterInfo,
    QueueAdmin,
    QueueCounts,
    VisibilityChange,
    WorkerDriver,
)
from glasswork.drivers.sqlite import MAX_RECEIVE_COUNT_REASON, SQLiteQueueDriver, queue_arn
from glasswork.errors import DriverError, InvalidQueueURLError, QueueNotFoundError, ThrottledError

SRC = Path(__file__).resolve().parents[1] / "src"


class FakeClock:
    """A settable clock (seconds since the epoch)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
def driver(db: Path, clock: FakeClock) -> Iterator[SQLiteQueueDriver]:
    with SQLiteQueueDriver(db, clock=clock, visibility_timeout=30, max_receive_count=25) as d:
        yield d


def message(
    n: int = 0,
    *,
    queue: str | None = None,
    job_id: str | None = None,
    delay: int = 0,
    group: str | None = None,
    name: str = "send_email",
) -> JobMessage:
    return JobMessage(
        job_name=name,
        payload={"n": n},
        job_id=job_id or f"job-{n}",
        queue=queue,
        delay_seconds=delay,
        group_id=group,
    )


def payloads(records: list[SQSRecord]) -> list[object]:
    return [msgspec.json.decode(decode_message(r.body).payload) for r in records]


def info(record: SQSRecord, *, reason: str = "permanent_error", attempt: int = 1) -> DeadLetterInfo:
    return DeadLetterInfo(
        reason=reason,
        error_type="ValueError",
        error_message="boom",
        attempt=attempt,
        source_queue=record.event_source_arn,
        job_name="send_email",
        job_id="job-0",
    )


def change(record: SQSRecord, seconds: int) -> VisibilityChange:
    return VisibilityChange(
        message_id=record.message_id,
        receipt_handle=record.receipt_handle,
        seconds=seconds,
        source_queue=record.event_source_arn,
    )


def counts(visible: int = 0, in_flight: int = 0, delayed: int = 0, dead: int = 0) -> QueueCounts:
    return QueueCounts(visible=visible, in_flight=in_flight, delayed=delayed, dead=dead)


# --- protocols and record shape ----------------------------------------------


def test_implements_every_driver_protocol(driver: SQLiteQueueDriver) -> None:
    assert isinstance(driver, BatchQueueDriver)
    assert isinstance(driver, WorkerDriver)
    assert isinstance(driver, ConsumingDriver)
    assert isinstance(driver, QueueAdmin)
    assert driver.name == "sqlite"


def test_record_has_the_lambda_shape(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    sent = driver.enqueue(message(7))
    clock.advance(2.5)
    (record,) = driver.receive()
    wire = msgspec.json.decode(msgspec.json.encode(record))
    assert record.message_attributes == {
        "JobName": SQSMessageAttribute(data_type="String", string_value="send_email")
    }
    assert wire.pop("messageAttributes")["JobName"]["stringValue"] == "send_email"
    assert wire == {
        "messageId": sent.message_id,
        "receiptHandle": record.receipt_handle,
        "body": message(7).body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1700000000000",
            "SenderId": "000000000000",
            "ApproximateFirstReceiveTimestamp": "1700000002500",
        },
        "md5OfBody": hashlib.md5(message(7).body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:local:000000000000:default",
        "awsRegion": "local",
    }
    assert sent.job_id == "job-7"
    assert record.queue_name == "default"
    assert decode_message(record.body).job_name == "send_email"


def test_named_queues_are_separate(driver: SQLiteQueueDriver) -> None:
    driver.enqueue(message(1, queue="emails"))
    driver.enqueue(message(2, queue="reports"))
    assert driver.counts("emails") == counts(visible=1)
    assert driver.counts("default") == counts()
    (record,) = driver.receive("reports")
    assert payloads([record]) == [{"n": 2}]
    assert record.event_source_arn == queue_arn("reports")
    assert driver.queues() == ["emails", "reports"]


# --- visibility and receive counts --------------------------------------------


def test_received_message_is_invisible_until_its_timeout_then_redelivered(
    driver: SQLiteQueueDriver, clock: FakeClock
) -> None:
    driver.enqueue(message())
    (first,) = driver.receive()
    assert driver.counts() == counts(in_flight=1)
    clock.advance(29.999)
    assert driver.receive() == []
    clock.advance(0.001)
    (second,) = driver.receive()
    assert second.message_id == first.message_id
    assert second.attributes.approximate_receive_count == "2"
    assert second.receipt_handle != first.receipt_handle
    assert (
        second.attributes.approximate_first_receive_timestamp
        == first.attributes.approximate_first_receive_timestamp
    )


def test_receive_count_rises_by_one_per_receive(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    driver.enqueue(message())
    seen = []
    for _ in range(5):
        (record,) = driver.receive(visibility_timeout=10)
        seen.append(record.attributes.approximate_receive_count)
        clock.advance(10)
    assert seen == ["1", "2", "3", "4", "5"]


def test_visibility_timeout_per_receive_and_per_queue(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    driver.configure_queue("slow", visibility_timeout=120)
    driver.enqueue(message(1, queue="slow"))
    driver.enqueue(message(2, queue="slow"))
    driver.receive("slow", max_messages=1)
    driver.receive("slow", max_messages=1, visibility_timeout=5)
    clock.advance(5)
    assert payloads(driver.receive("slow")) == [{"n": 2}]
    clock.advance(114)
    assert driver.receive("slow") == []
    clock.advance(1)
    assert payloads(driver.receive("slow")) == [{"n": 1}]


def test_zero_visibility_timeout_makes_the_message_visible_at_once(
    driver: SQLiteQueueDriver,
) -> None:
    driver.enqueue(message())
    driver.receive(visibility_timeout=0)
    (again,) = driver.receive()
    assert again.attributes.approximate_receive_count == "2"


def test_change_visibility_extends_and_shortens(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    driver.enqueue(message(1))
    driver.enqueue(message(2))
    one, two = driver.receive()
    driver.change_visibility([change(one, 300), change(two, 0)])
    (again,) = driver.receive(visibility_timeout=1000)
    assert again.message_id == two.message_id
    clock.advance(299)
    assert driver.receive() == []
    clock.advance(1)
    (late,) = driver.receive()
    assert late.message_id == one.message_id
    assert late.attributes.approximate_receive_count == "2"


def test_change_visibility_counts_from_now(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    driver.enqueue(message())
    (record,) = driver.receive()
    clock.advance(20)
    driver.change_visibility([change(record, 20)])
    clock.advance(19)
    assert driver.receive() == []
    clock.advance(1)
    assert len(driver.receive()) == 1


def test_max_messages_limits_a_receive(driver: SQLiteQueueDriver) -> None:
    driver.enqueue_batch([message(n) for n in range(25)])
    assert len(driver.receive(max_messages=10)) == 10
    assert len(driver.receive(max_messages=3)) == 3
    assert len(driver.receive(max_messages=100)) == 12
    with pytest.raises(ValueError, match="max_messages"):
        driver.receive(max_messages=0)


def test_standard_queue_delivers_oldest_first(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    for n in range(5):
        driver.enqueue(message(n))
        clock.advance(1)
    assert payloads(driver.receive(max_messages=5)) == [{"n": n} for n in range(5)]


# --- delays -------------------------------------------------------------------


def test_delayed_message_becomes_visible_after_its_delay(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    driver.enqueue(message(1, delay=60))
    driver.enqueue(message(2, delay=3 * 86_400))
    assert driver.counts() == counts(delayed=2)
    clock.advance(59)
    assert driver.receive() == []
    clock.advance(1)
    (first,) = driver.receive()
    assert payloads([first]) == [{"n": 1}]
    assert driver.counts() == counts(in_flight=1, delayed=1)
    driver.delete([first])
    clock.advance(3 * 86_400)
    (record,) = driver.receive()
    assert payloads([record]) == [{"n": 2}]
    assert record.attributes.approximate_receive_count == "1"


def test_long_poll_waits_for_a_message(driver: SQLiteQueueDriver, db: Path, clock: FakeClock) -> None:
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 3:
            driver.enqueue(message(9))

    waiting = SQLiteQueueDriver(db, clock=clock, sleep=sleep)
    records = waiting.receive(wait_seconds=30)
    waiting.close()
    assert payloads(records) == [{"n": 9}]
    assert len(polls) == 3
    assert all(0 < s <= 0.2 for s in polls)


def test_long_poll_gives_up_after_wait_seconds(db: Path, clock: FakeClock) -> None:
    with SQLiteQueueDriver(db, clock=clock, sleep=lambda _s: None) as waiting:
        started = time.monotonic()
        assert waiting.receive(wait_seconds=0.05) == []
        assert time.monotonic() - started >= 0.05


# --- FIFO ---------------------------------------------------------------------


def test_fifo_keeps_order_within_a_group(driver: SQLiteQueueDriver) -> None:
    driver.enqueue_batch([message(n, queue="orders.fifo", group="a" if n % 2 else "b") for n in range(8)])
    records = driver.receive("orders.fifo", max_messages=10)
    by_group: dict[str, list[object]] = {}
    for record, payload in zip(records, payloads(records), strict=True):
        assert record.attributes.message_group_id is not None
        by_group.setdefault(record.attributes.message_group_id, []).append(payload)
    assert by_group == {
        "a": [{"n": 1}, {"n": 3}, {"n": 5}, {"n": 7}],
        "b": [{"n": 0}, {"n": 2}, {"n": 4}, {"n": 6}],
    }
    sequence = [int(r.attributes.sequence_number or "") for r in records]
    assert sequence == sorted(sequence)
    assert [r.attributes.message_deduplication_id for r in records] == [f"job-{n}" for n in range(8)]


def test_fifo_group_in_flight_blocks_the_rest_of_the_group(
    driver: SQLiteQueueDriver, clock: FakeClock
) -> None:
    q = "orders.fifo"
    for n in range(3):
        driver.enqueue(message(n, queue=q, group="a"))
    driver.enqueue(message(10, queue=q, group="b"))
    (a0,) = driver.receive(q, max_messages=1)
    assert payloads([a0]) == [{"n": 0}]
    (b,) = driver.receive(q)
    assert payloads([b]) == [{"n": 10}]
    assert driver.receive(q) == []
    assert driver.counts(q) == counts(visible=2, in_flight=2)
    driver.delete([a0])
    assert payloads(driver.receive(q)) == [{"n": 1}, {"n": 2}]
    clock.advance(30)
    again = driver.receive(q)
    assert payloads(again) == [{"n": 1}, {"n": 2}, {"n": 10}]
    assert {r.attributes.approximate_receive_count for r in again} == {"2"}


def test_fifo_group_blocked_while_any_of_its_messages_is_in_flight(
    driver: SQLiteQueueDriver,
) -> None:
    q = "orders.fifo"
    for n in range(3):
        driver.enqueue(message(n, queue=q, group="a"))
    first, second = driver.receive(q, max_messages=2)
    driver.change_visibility([change(first, 0)])
    assert driver.receive(q) == []
    driver.change_visibility([change(second, 0)])
    assert payloads(driver.receive(q)) == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_fifo_delayed_head_holds_back_its_group(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    q = "orders.fifo"
    driver.enqueue(message(0, queue=q, group="a", delay=10))
    driver.enqueue(message(1, queue=q, group="a"))
    driver.enqueue(message(2, queue=q, group="b"))
    assert payloads(driver.receive(q)) == [{"n": 2}]
    clock.advance(10)
    assert payloads(driver.receive(q)) == [{"n": 0}, {"n": 1}]


def test_fifo_group_defaults_to_the_queue_name(driver: SQLiteQueueDriver) -> None:
    driver.enqueue(message(1, queue="orders.fifo"))
    driver.configure_queue("default", fifo=True)
    driver.enqueue(message(2))
    (named,) = driver.receive("orders.fifo")
    (unnamed,) = driver.receive()
    assert named.attributes.message_group_id == "orders.fifo"
    assert unnamed.attributes.message_group_id == "default"


def test_configured_fifo_queue_keeps_order_without_the_suffix(driver: SQLiteQueueDriver) -> None:
    config = driver.configure_queue("ordered", fifo=True)
    assert config.fifo
    assert config.deduplicate
    driver.enqueue_batch([message(n, queue="ordered", group="g") for n in range(3)])
    (head,) = driver.receive("ordered", max_messages=1)
    assert driver.receive("ordered") == []
    driver.delete([head])
    assert payloads(driver.receive("ordered")) == [{"n": 1}, {"n": 2}]


# --- deduplication ------------------------------------------------------------


def test_fifo_dedup_within_window_returns_the_original(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    q = "orders.fifo"
    original = driver.enqueue(message(1, queue=q, job_id="order-1"))
    clock.advance(299)
    duplicate = driver.enqueue(message(2, queue=q, job_id="order-1"))
    assert duplicate.message_id == original.message_id
    assert driver.counts(q) == counts(visible=1)
    (record,) = driver.receive(q)
    driver.delete([record])
    assert driver.enqueue(message(3, queue=q, job_id="order-1")).message_id == original.message_id
    assert driver.counts(q) == counts()
    clock.advance(1)
    later = driver.enqueue(message(4, queue=q, job_id="order-1"))
    assert later.message_id != original.message_id
    assert payloads(driver.receive(q)) == [{"n": 4}]


def test_dedup_within_one_batch(driver: SQLiteQueueDriver) -> None:
    q = "orders.fifo"
    results = driver.enqueue_batch(
        [message(1, queue=q, job_id="x"), message(2, queue=q, job_id="y"), message(3, queue=q, job_id="x")]
    )
    assert results[2].message_id == results[0].message_id
    assert results[1].message_id != results[0].message_id
    assert payloads(driver.receive(q)) == [{"n": 1}, {"n": 2}]


def test_dedup_window_is_configurable(db: Path, clock: FakeClock) -> None:
    with SQLiteQueueDriver(db, clock=clock, dedup_window=10) as d:
        first = d.enqueue(message(1, queue="q.fifo"))
        clock.advance(10)
        assert d.enqueue(message(1, queue="q.fifo")).message_id != first.message_id


def test_standard_queues_do_not_deduplicate_unless_configured(driver: SQLiteQueueDriver) -> None:
    a = driver.enqueue(message(1, job_id="same"))
    b = driver.enqueue(message(1, job_id="same"))
    assert a.message_id != b.message_id
    assert driver.counts() == counts(visible=2)
    driver.configure_queue("unique", deduplicate=True)
    c = driver.enqueue(message(1, queue="unique", job_id="same"))
    d = driver.enqueue(message(1, queue="unique", job_id="same"))
    assert c.message_id == d.message_id
    assert driver.counts("unique") == counts(visible=1)
    (record,) = driver.receive("unique")
    assert record.attributes.message_group_id is None


# --- redrive at receive time (max_receive_count) ------------------------------


def test_message_moves_to_dead_letters_after_max_receive_count(
    driver: SQLiteQueueDriver, clock: FakeClock
) -> None:
    driver.configure_queue("flaky", max_receive_count=3)
    sent = driver.enqueue(message(1, queue="flaky"))
    for attempt in range(1, 4):
        (record,) = driver.receive("flaky")
        assert record.attributes.approximate_receive_count == str(attempt)
        clock.advance(30)
    driver.enqueue(message(2, queue="flaky"))
    (behind,) = driver.receive("flaky")
    assert payloads([behind]) == [{"n": 2}]
    assert driver.counts("flaky") == counts(in_flight=1, dead=1)
    (dead,) = driver.list_dead_letters("flaky")
    assert dead.message_id == sent.message_id
    assert dead.reason == MAX_RECEIVE_COUNT_REASON
    assert dead.attempt == 3
    assert dead.job_name == "send_email"
    assert dead.job_id == "job-1"
    assert dead.body == message(1, queue="flaky").body


def test_by_default_every_attempt_of_the_default_policy_runs_with_ten_receives_to_spare(
    db: Path, clock: FakeClock
) -> None:
    """The default was 25, the default policy's attempts: one deferred receive cost the last attempt."""
    assert RetryPolicy().max_attempts == 25
    with SQLiteQueueDriver(db, clock=clock) as d:
        d.enqueue(message(1))
        for count in range(1, 36):  # 25 attempts and 10 receives that ran nothing
            (record,) = d.receive(visibility_timeout=0)
            assert record.attributes.approximate_receive_count == str(count)
        assert d.receive(visibility_timeout=0) == []
        assert [e.attempt for e in d.list_dead_letters()] == [35]
        assert d.queue_config().max_receive_count == 35


def test_fifo_head_redriven_lets_the_group_continue(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    q = "orders.fifo"
    driver.configure_queue(q, max_receive_count=1)
    driver.enqueue(message(0, queue=q, group="a"))
    driver.enqueue(message(1, queue=q, group="a"))
    assert payloads(driver.receive(q, max_messages=1)) == [{"n": 0}]
    clock.advance(30)
    assert payloads(driver.receive(q)) == [{"n": 1}]
    assert [e.reason for e in driver.list_dead_letters(q)] == [MAX_RECEIVE_COUNT_REASON]


def test_driver_default_max_receive_count(db: Path, clock: FakeClock) -> None:
    with SQLiteQueueDriver(db, clock=clock, max_receive_count=1) as d:
        d.enqueue(message())
        d.receive(visibility_timeout=0)
        assert d.receive() == []
        assert d.counts().dead == 1
        assert d.queue_config().max_receive_count == 1


# --- dead letters, redrive, purge ----------------------------------------------


def test_dead_letter_moves_the_message_atomically(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    driver.enqueue(message(0))
    (record,) = driver.receive()
    driver.dead_letter(record, info(record, attempt=1))
    assert driver.counts() == counts(dead=1)
    clock.advance(3600)
    assert driver.receive() == []
    (entry,) = driver.list_dead_letters()
    assert entry.message_id == record.message_id
    assert entry.body == record.body
    assert (entry.job_name, entry.job_id, entry.attempt, entry.reason) == (
        "send_email",
        "job-0",
        1,
        "permanent_error",
    )
    assert (entry.error_type, entry.error_message) == ("ValueError", "boom")
    driver.delete([record])
    assert driver.counts() == counts(dead=1)


def test_dead_letter_falls_back_to_the_stored_job_fields(driver: SQLiteQueueDriver) -> None:
    driver.enqueue(message(3))
    (record,) = driver.receive()
    bare = msgspec.structs.replace(info(record), job_name=None, job_id=None)
    driver.dead_letter(record, bare)
    (entry,) = driver.list_dead_letters()
    assert (entry.job_name, entry.job_id) == ("send_email", "job-3")


def test_redrive_moves_dead_letters_back_with_a_fresh_receive_count(
    driver: SQLiteQueueDriver,
) -> None:
    driver.enqueue_batch([message(n) for n in range(3)])
    records = driver.receive()
    for record in records[:2]:
        driver.dead_letter(record, info(record))
    driver.delete(records[2:])
    assert driver.counts() == counts(dead=2)
    assert driver.redrive() == 2
    assert driver.counts() == counts(visible=2)
    again = driver.receive()
    assert [r.message_id for r in again] == [r.message_id for r in records[:2]]
    assert {r.attributes.approximate_receive_count for r in again} == {"1"}
    assert driver.redrive() == 0


def test_redrive_only_touches_its_own_queue(driver: SQLiteQueueDriver) -> None:
    for q in ("a", "b"):
        driver.enqueue(message(queue=q))
        (record,) = driver.receive(q)
        driver.dead_letter(record, info(record))
    assert driver.redrive("a") == 1
    assert driver.counts("a") == counts(visible=1)
    assert driver.counts("b") == counts(dead=1)


def test_list_dead_letters_respects_the_limit_in_order(driver: SQLiteQueueDriver) -> None:
    driver.enqueue_batch([message(n) for n in range(5)])
    for record, payload in zip(records := driver.receive(), payloads(records), strict=True):
        assert isinstance(payload, dict)
        driver.dead_letter(record, info(record, attempt=payload["n"]))
    listed = driver.list_dead_letters(limit=3)
    assert [e.attempt for e in listed] == [0, 1, 2]


def test_purge_deletes_messages_but_keeps_dead_letters(driver: SQLiteQueueDriver) -> None:
    driver.enqueue_batch([message(n) for n in range(4)])
    driver.enqueue(message(9, delay=60))
    driver.enqueue(message(8, queue="other"))
    (record, *_rest) = driver.receive(max_messages=2)
    driver.dead_letter(record, info(record))
    assert driver.purge() == 4
    assert driver.counts() == counts(dead=1)
    assert driver.counts("other") == counts(visible=1)
    assert driver.purge_dead_letters() == 1
    assert driver.counts() == counts()


def test_purge_forgets_deduplication_ids(driver: SQLiteQueueDriver) -> None:
    first = driver.enqueue(message(1, queue="q.fifo"))
    driver.purge("q.fifo")
    assert driver.enqueue(message(1, queue="q.fifo")).message_id != first.message_id


# --- counts -------------------------------------------------------------------


def test_counts_track_every_state(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    driver.enqueue_batch([message(n) for n in range(4)])
    driver.enqueue(message(9, delay=100))
    assert driver.counts() == counts(visible=4, delayed=1)
    one, two = driver.receive(max_messages=2)
    assert driver.counts() == counts(visible=2, in_flight=2, delayed=1)
    driver.dead_letter(one, info(one))
    driver.delete([two])
    assert driver.counts() == counts(visible=2, delayed=1, dead=1)
    assert driver.counts().pending == 3
    clock.advance(100)
    assert driver.counts() == counts(visible=3, dead=1)


# --- receipt handles ----------------------------------------------------------


def test_stale_receipt_handle_cannot_touch_a_redelivered_message(
    driver: SQLiteQueueDriver, clock: FakeClock
) -> None:
    driver.enqueue(message())
    (old,) = driver.receive()
    clock.advance(30)
    (new,) = driver.receive()
    driver.delete([old])
    assert driver.counts() == counts(in_flight=1)
    with pytest.raises(DriverError, match="stale"):
        driver.change_visibility([change(old, 0)])
    assert driver.receive() == []
    with pytest.raises(DriverError, match="stale"):
        driver.dead_letter(old, info(old))
    assert driver.counts() == counts(in_flight=1)
    driver.delete([new])
    assert driver.counts() == counts()


def test_handle_of_a_deleted_message_cannot_touch_a_later_one(driver: SQLiteQueueDriver) -> None:
    driver.enqueue(message(1))
    (old,) = driver.receive()
    driver.delete([old])
    driver.enqueue(message(2))
    (new,) = driver.receive()
    driver.delete([old])
    with pytest.raises(DriverError, match="stale"):
        driver.dead_letter(old, info(old))
    assert driver.counts() == counts(in_flight=1)
    driver.delete([new])
    assert driver.counts() == counts()


def test_handle_of_an_expired_but_unclaimed_receive_still_works(
    driver: SQLiteQueueDriver, clock: FakeClock
) -> None:
    driver.enqueue(message())
    (record,) = driver.receive()
    clock.advance(60)
    driver.delete([record])
    assert driver.counts() == counts()


def test_change_visibility_applies_the_valid_changes_and_names_the_stale(
    driver: SQLiteQueueDriver, clock: FakeClock
) -> None:
    driver.enqueue(message(1))
    driver.enqueue(message(2))
    one, two = driver.receive()
    bogus = msgspec.structs.replace(two, receipt_handle="not-a-handle")
    with pytest.raises(DriverError, match=two.message_id):
        driver.change_visibility([change(one, 0), change(bogus, 0)])
    assert [r.message_id for r in driver.receive()] == [one.message_id]


def test_unknown_handles_are_ignored_by_delete(driver: SQLiteQueueDriver) -> None:
    driver.enqueue(message())
    (record,) = driver.receive()
    driver.delete(
        [
            msgspec.structs.replace(record, receipt_handle=""),
            msgspec.structs.replace(record, receipt_handle="999:1"),
        ]
    )
    assert driver.counts() == counts(in_flight=1)
    driver.delete([])
    driver.change_visibility([])


def test_send_raw_delivers_any_body(driver: SQLiteQueueDriver, clock: FakeClock) -> None:
    message_id = driver.send_raw("<order id=7>not json</order>")
    driver.send_raw("{}", job_name="resize", delay_seconds=5)
    (record,) = driver.receive()
    assert (record.message_id, record.body, record.message_attributes) == (
        message_id,
        "<order id=7>not json</order>",
        {},
    )
    clock.advance(5)
    (named,) = driver.receive()
    assert named.message_attributes["JobName"].string_value == "resize"


def test_send_raw_to_a_fifo_queue(driver: SQLiteQueueDriver) -> None:
    first = driver.send_raw("a", queue="q.fifo", group_id="g", deduplication_id="d")
    assert driver.send_raw("b", queue="q.fifo", group_id="g", deduplication_id="d") == first
    driver.send_raw("c", queue="q.fifo")
    records = driver.receive("q.fifo")
    assert [(r.body, r.attributes.message_group_id) for r in records] == [
        ("a", "g"),
        ("c", "q.fifo"),
    ]


def test_close_from_another_thread_closes_every_connection(db: Path) -> None:
    d = SQLiteQueueDriver(db)
    errors: list[BaseException] = []
    opened = threading.Event()
    closed = threading.Event()

    def use() -> None:
        d.enqueue(message(1))
        opened.set()
        closed.wait(10)
        try:
            d.enqueue(message(2))
        except DriverError as exc:
            errors.append(exc)

    thread = threading.Thread(target=use)
    thread.start()
    assert opened.wait(10)
    d.close()
    closed.set()
    thread.join(10)
    assert len(errors) == 1
    assert "closed" in str(errors[0])


# --- concurrency and durability ----------------------------------------------


def test_two_connections_claim_disjoint_messages(db: Path) -> None:
    producer = SQLiteQueueDriver(db)
    producer.enqueue_batch([message(n) for n in range(600)])
    consumers = [SQLiteQueueDriver(db, visibility_timeout=600) for _ in range(2)]
    got: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def consume(i: int) -> None:
        start.wait()
        while records := consumers[i].receive(max_messages=3):
            got[i].extend(r.message_id for r in records)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not set(got[0]) & set(got[1])
    assert len(got[0]) + len(got[1]) == 600
    for d in (producer, *consumers):
        d.close()


def test_one_driver_shared_by_threads_uses_a_connection_each(db: Path) -> None:
    with SQLiteQueueDriver(db, visibility_timeout=600) as shared:
        shared.enqueue_batch([message(n) for n in range(200)])
        got: list[str] = []
        lock = threading.Lock()

        def consume() -> None:
            while records := shared.receive(max_messages=2):
                with lock:
                    got.extend(r.message_id for r in records)

        threads = [threading.Thread(target=consume) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(got) == len(set(got)) == 200


_CONSUMER = """
import json, pathlib, sys, time
from glasswork.drivers.sqlite import SQLiteQueueDriver

db, ready, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
driver = SQLiteQueueDriver(db, visibility_timeout=600)
ready.touch()
deadline = time.monotonic() + 30
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("never told to start")
    time.sleep(0.001)
ids = []
while records := driver.receive(max_messages=2):
    ids.extend(r.message_id for r in records)
print(json.dumps(ids))
"""


@contextlib.contextmanager
def _processes(script: str, db: Path, tmp_path: Path, count: int) -> Iterator[list[tuple[str, str]]]:
    """Run `count` processes of `script`, release them together, yield their `(stdout, stderr)`."""
    path = [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    go = tmp_path / "go"
    procs: list[subprocess.Popen[str]] = []
    try:
        for i in range(count):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", script, str(db), str(tmp_path / f"ready-{i}"), str(go)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    text=True,
                )
            )
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{i}").exists() for i in range(count)):
            assert time.monotonic() < deadline, "processes did not start"
            assert all(p.poll() is None for p in procs), "a process died"
            time.sleep(0.01)
        go.touch()
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            outputs.append((out, err))
        yield outputs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


@pytest.mark.slow
def test_processes_receiving_concurrently_never_get_the_same_message(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with SQLiteQueueDriver(db) as producer:
        sent = {r.message_id for r in producer.enqueue_batch([message(n) for n in range(3000)])}
    with _processes(_CONSUMER, db, tmp_path, 3) as outputs:
        received: list[list[str]] = [json.loads(out) for out, _err in outputs]
    every = [m for ids in received for m in ids]
    assert len(every) == len(set(every)), "a message was received twice"
    assert set(every) == sent
    assert sum(1 for ids in received if ids) >= 2, "the consumers did not overlap"


_FIFO_CONSUMER = """
import json, pathlib, sys, time
from glasswork.core import RetryPolicy, decode_message
from glasswork.drivers.sqlite import SQLiteQueueDriver

db, ready, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
driver = SQLiteQueueDriver(db, visibility_timeout=600)
ready.touch()
deadline = time.monotonic() + 30
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("never told to start")
    time.sleep(0.001)
held = []
idle = 0
while idle < 20:
    records = driver.receive("orders.fifo", max_messages=3)
    got = time.monotonic()
    if not records:
        idle += 1
        time.sleep(0.001)
        continue
    idle = 0
    ns = [json.loads(bytes(decode_message(r.body).payload))["n"] for r in records]
    groups = [r.attributes.message_group_id for r in records]
    released = time.monotonic()
    driver.delete(records)
    held.append({"from": got, "to": released, "ns": ns, "groups": groups})
print(json.dumps(held))
"""


@pytest.mark.slow
def test_processes_never_hold_one_fifo_group_at_once_and_keep_its_order(tmp_path: Path) -> None:
    db = tmp_path / "fifo.db"
    with SQLiteQueueDriver(db) as producer:
        producer.enqueue_batch([message(n, queue="orders.fifo", group=f"g{n % 4}") for n in range(400)])
    with _processes(_FIFO_CONSUMER, db, tmp_path, 3) as outputs:
        pass
    holds: list[tuple[float, float, int, str, list[int]]] = []
    for i, (out, _err) in enumerate(outputs):
        for hold in json.loads(out):
            for group in set(hold["groups"]):
                ns = [n for n, g in zip(hold["ns"], hold["groups"], strict=True) if g == group]
                holds.append((hold["from"], hold["to"], i, group, ns))
    for group in ("g0", "g1", "g2", "g3"):
        mine = sorted(h for h in holds if h[3] == group)
        for earlier, later in itertools.pairwise(mine):
            assert earlier[1] <= later[0], f"group {group} held by two receives at once"
        order = [n for h in mine for n in h[4]]
        assert order == [n for n in range(400) if f"g{n % 4}" == group]
    assert len({h[2] for h in holds}) >= 2, "the consumers did not overlap"


_OPENER = """
import pathlib, sys, time
from glasswork._wire import JobMessage
from glasswork.drivers.sqlite import SQLiteQueueDriver

db, ready, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
ready.touch()
deadline = time.monotonic() + 30
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("never told to start")
    time.sleep(0.001)
with SQLiteQueueDriver(db) as driver:
    for n in range(50):
        driver.enqueue(JobMessage(job_name="noop", payload=n, job_id=f"{ready.name}-{n}"))
"""


@pytest.mark.slow
def test_processes_creating_the_same_file_at_once_all_succeed(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    with _processes(_OPENER, db, tmp_path, 4):
        pass
    with SQLiteQueueDriver(db) as driver:
        assert driver.counts() == counts(visible=200)


def test_state_survives_reopening_the_file(db: Path, clock: FakeClock) -> None:
    with SQLiteQueueDriver(db, clock=clock) as first:
        first.configure_queue("jobs", max_receive_count=2, visibility_timeout=50)
        first.enqueue_batch([message(n, queue="jobs") for n in range(3)])
        first.enqueue(message(5, queue="jobs", delay=500))
        (held,) = first.receive("jobs", max_messages=1)
        (dead,) = first.receive("jobs", max_messages=1)
        first.dead_letter(dead, info(dead))
    with SQLiteQueueDriver(db, clock=clock) as second:
        assert second.counts("jobs") == counts(visible=1, in_flight=1, delayed=1, dead=1)
        config = second.queue_config("jobs")
        assert (config.max_receive_count, config.visibility_timeout) == (2, 50)
        clock.advance(50)
        records = second.receive("jobs")
        assert held.message_id in {r.message_id for r in records}
        second.delete(records)
        assert [e.message_id for e in second.list_dead_letters("jobs")] == [dead.message_id]


def test_uses_wal_mode(driver: SQLiteQueueDriver, db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_enqueue_batch_is_one_transaction(driver: SQLiteQueueDriver) -> None:
    results = driver.enqueue_batch([message(n, queue="a" if n % 2 else "b") for n in range(6)])
    assert [r.job_id for r in results] == [f"job-{n}" for n in range(6)]
    assert len({r.message_id for r in results}) == 6
    assert driver.enqueue_batch([]) == []
    with pytest.raises(QueueNotFoundError):
        driver.enqueue_batch([message(1), message(2, queue="bad name")])
    assert driver.counts() == counts()
    assert driver.counts("a") == counts(visible=3)


# --- errors -------------------------------------------------------------------


def test_a_held_write_lock_surfaces_as_throttled(db: Path) -> None:
    with SQLiteQueueDriver(db, busy_timeout=0.05) as d:
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(ThrottledError) as caught:
                d.enqueue(message())
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            with pytest.raises(ThrottledError):
                d.receive()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        d.enqueue(message())
        assert d.counts() == counts(visible=1)


def test_missing_directory_is_a_clear_driver_error(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="does not exist"):
        SQLiteQueueDriver(tmp_path / "nope" / "queue.db")


def test_directory_path_is_a_clear_driver_error(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="directory"):
        SQLiteQueueDriver(tmp_path)


def test_non_database_file_is_a_driver_error_with_cause(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a database, just some text that is long enough" * 20)
    with pytest.raises(DriverError, match="cannot open") as caught:
        SQLiteQueueDriver(path)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


def test_foreign_schema_version_is_refused(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(DriverError, match="schema version 99"):
        SQLiteQueueDriver(db)


def test_invalid_queue_names_are_refused(driver: SQLiteQueueDriver) -> None:
    for bad in ("has space", "x" * 81, "semi;colon"):
        with pytest.raises(QueueNotFoundError):
            driver.enqueue(message(queue=bad))
    with pytest.raises(QueueNotFoundError):
        driver.counts("bad name")


def test_closed_driver_raises(db: Path) -> None:
    d = SQLiteQueueDriver(db)
    d.close()
    with pytest.raises(DriverError, match="closed"):
        d.enqueue(message())


def test_option_validation(db: Path) -> None:
    with pytest.raises(ValueError, match="max_receive_count"):
        SQLiteQueueDriver(db, max_receive_count=0)
    with pytest.raises(ValueError, match="visibility_timeout"):
        SQLiteQueueDriver(db, visibility_timeout=-1)
    with SQLiteQueueDriver(db) as d, pytest.raises(ValueError, match="max_receive_count"):
        d.configure_queue("q", max_receive_count=0)


# --- URLs ---------------------------------------------------------------------


def test_from_url_relative_absolute_and_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rel = SQLiteQueueDriver.from_url("sqlite:///rel.db")
    assert rel.default_queue == "default"
    assert rel.path == Path("rel.db")
    rel.close()
    absolute = tmp_path / "abs.db"
    d = SQLiteQueueDriver.from_url(f"sqlite:///{absolute}?queue=emails.fifo")
    assert (d.path, d.default_queue) == (absolute, "emails.fifo")
    d.enqueue(message())
    assert d.counts("emails.fifo") == counts(visible=1)
    d.close()
    assert (tmp_path / "rel.db").exists()


@pytest.mark.parametrize(
    "url",
    [
        "postgres:///x.db",
        "sqlite://host/x.db",
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///x.db?queue=bad name",
        "sqlite:///x.db?queue=a&queue=b",
        "sqlite:///x.db?visibility=3",
        "sqlite:///x.db?queue",
        "sqlite:///x.db#frag",
    ],
)
def test_from_url_rejects_bad_urls(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidQueueURLError):
        SQLiteQueueDriver.from_url(url)
    assert list(tmp_path.iterdir()) == []


def test_from_url_with_a_missing_directory_is_a_driver_error(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="does not exist"):
        SQLiteQueueDriver.from_url(f"sqlite:///{tmp_path}/missing/q.db")


def test_a_new_queue_file_and_its_wal_and_shm_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """The files hold every payload and dead letter: 0600, whatever the umask allows beyond it."""
    path = tmp_path / "jobs.db"
    driver = SQLiteQueueDriver(path)
    try:
        driver.enqueue(JobMessage(job_name="job", payload={"secret": 1}, job_id="j-1"))
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    finally:
        driver.close()

    assert set(modes) >= {"jobs.db", "jobs.db-wal", "jobs.db-shm"}
    assert all(mode == 0o600 for mode in modes.values()), modes


def test_an_existing_queue_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    path.touch(mode=0o640)
    path.chmod(0o640)

    SQLiteQueueDriver(path).close()

    assert path.stat().st_mode & 0o777 == 0o640
