"""`MockQueueDriver`: what it records, simulated failures, `drain`, and the consuming side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from glasswork import (
    Backoff,
    Job,
    JobContext,
    JobService,
    MockQueueDriver,
    Module,
    PermanentJobError,
    RetryPolicy,
    TransientJobError,
    bootstrap_worker,
    define_job,
)
from glasswork._wire import JobMessage, SQSRecord
from glasswork.drivers.base import (
    ATTR_JOB_NAME,
    BatchQueueDriver,
    ConsumingDriver,
    DeadLetterInfo,
    QueueAdmin,
    WorkerDriver,
)
from glasswork.errors import DriverError, ThrottledError
from glasswork.worker import Worker

T0 = 1_700_000_000.0


class Clock:
    """A settable clock in seconds since the epoch."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def event(records: Sequence[SQSRecord]) -> dict[str, object]:
    """A Lambda SQS event holding `records`."""
    return {"Records": [msgspec.to_builtins(r) for r in records]}


def failures(response: dict[str, object]) -> list[str]:
    """The message ids a handler reported failed."""
    items = response["batchItemFailures"]
    assert isinstance(items, list)
    return [item["itemIdentifier"] for item in items]


def setup(
    *jobs: Job[Any], clock: Clock | None = None, **worker: Any
) -> tuple[MockQueueDriver, JobService, Worker]:
    """A mock (with `clock`), a service over it and a worker for `jobs` that uses it."""
    mock = MockQueueDriver(clock=clock) if clock is not None else MockQueueDriver()
    handler = bootstrap_worker(module=Module(name="test", jobs=list(jobs)), driver=mock, **worker)
    return mock, JobService(mock), handler


def _noop(payload: object, ctx: JobContext) -> None:
    pass


noop: Job[Any] = define_job(name="noop", handler=_noop)


class Order(msgspec.Struct, frozen=True):
    order_id: int
    customer: str = "c"


# --- what it records ----------------------------------------------------------


def test_jobs_record_every_enqueued_job() -> None:
    def ship(payload: Order, ctx: JobContext) -> None:
        pass

    ship_job = define_job(name="ship", handler=ship, payload=Order, queue="orders")
    mock = MockQueueDriver()
    service = JobService(mock, default_queue="fallback")

    first = service.enqueue(ship_job, Order(order_id=1), metadata={"tenant": "t1"})
    second = service.enqueue_in(noop, {"x": 1}, 42)

    assert [j.name for j in mock.jobs] == ["ship", "noop"]
    shipped, delayed = mock.jobs
    assert shipped.payload == Order(order_id=1)
    assert shipped.queue == "orders"
    assert shipped.job_id == first.job_id
    assert shipped.message_id == first.message_id
    assert shipped.delay_seconds == 0
    assert shipped.metadata == {"tenant": "t1"}
    assert shipped.message.job_name == "ship"
    assert delayed.payload == {"x": 1}
    assert delayed.queue == "fallback"
    assert delayed.job_id == second.job_id
    assert delayed.delay_seconds == 42
    assert delayed.metadata == {}
    assert first.message_id != second.message_id


def test_enqueue_batch_records_in_order() -> None:
    mock = MockQueueDriver()

    results = JobService(mock).enqueue_batch([(noop, 1), (noop, 2), (noop, 3)])

    assert [j.payload for j in mock.jobs] == [1, 2, 3]
    assert [j.message_id for j in mock.jobs] == [r.message_id for r in results]


def test_mock_implements_every_driver_side() -> None:
    mock = MockQueueDriver()

    assert mock.name == "memory"
    assert isinstance(mock, BatchQueueDriver)
    assert isinstance(mock, WorkerDriver)
    assert isinstance(mock, ConsumingDriver)
    assert isinstance(mock, QueueAdmin)


def test_dead_letters_record_what_the_worker_dead_lettered() -> None:
    def refuse(payload: object, ctx: JobContext) -> None:
        raise PermanentJobError("card declined")

    refused = define_job(name="refuse", handler=refuse)
    mock, service, handler = setup(refused)
    sent = service.enqueue(refused, {"card": "x"})
    [record] = mock.receive()

    response = handler(event([record]), None)

    assert failures(response) == []
    [dead] = mock.dead_letters
    assert dead.message_id == record.message_id == sent.message_id
    assert dead.reason == "permanent_error"
    assert dead.error_type == "PermanentJobError"
    assert "card declined" in dead.error_message
    assert dead.attempt == 1
    assert (dead.job_name, dead.job_id) == ("refuse", sent.job_id)
    assert dead.body == record.body
    assert dead.source_queue == record.event_source_arn
    assert mock.counts().pending == 0
    assert mock.counts().dead == 1


def test_visibility_changes_record_backoff_and_hide_the_message() -> None:
    def busy(payload: object, ctx: JobContext) -> None:
        raise TransientJobError("busy", retry_after=45)

    busy_job = define_job(name="busy", handler=busy)
    clock = Clock()
    mock, service, handler = setup(busy_job, clock=clock)
    service.enqueue(busy_job, None)
    [record] = mock.receive()

    response = handler(event([record]), None)

    assert failures(response) == [record.message_id]
    [change] = mock.visibility_changes
    assert (change.message_id, change.seconds) == (record.message_id, 45)
    assert change.receipt_handle == record.receipt_handle
    clock.advance(44)
    assert mock.receive() == []
    assert mock.counts().in_flight == 1
    clock.advance(1)
    [again] = mock.receive()
    assert again.message_id == record.message_id
    assert again.attributes.approximate_receive_count == "2"


def test_backoff_policy_visibility_grows_per_attempt() -> None:
    def flaky(payload: object, ctx: JobContext) -> None:
        raise RuntimeError("flaky")

    policy = RetryPolicy(max_attempts=5, backoff=Backoff(base=10, factor=2, max=100))
    flaky_job = define_job(name="flaky", handler=flaky, retry=policy)
    clock = Clock()
    mock, service, handler = setup(flaky_job, clock=clock, jitter=lambda: 1.0)
    service.enqueue(flaky_job, None)

    for _ in range(3):
        records = mock.receive()
        assert len(records) == 1
        handler(event(records), None)
        clock.advance(mock.visibility_changes[-1].seconds)

    assert [c.seconds for c in mock.visibility_changes] == [10, 20, 40]


def test_no_visibility_change_without_a_delay() -> None:
    def flaky(payload: object, ctx: JobContext) -> None:
        raise RuntimeError("flaky")

    flaky_job = define_job(name="flaky", handler=flaky, retry=RetryPolicy(backoff=None))
    mock, service, handler = setup(flaky_job)
    service.enqueue(flaky_job, None)

    response = handler(event(mock.receive()), None)

    assert len(failures(response)) == 1
    assert mock.visibility_changes == []


# --- simulated failures -------------------------------------------------------


def test_simulate_failure_fails_only_the_next_call() -> None:
    mock = MockQueueDriver()
    service = JobService(mock)
    throttled = ThrottledError("slow down")
    mock.simulate_failure(throttled)

    with pytest.raises(ThrottledError) as caught:
        service.enqueue(noop, 1)
    service.enqueue(noop, 2)

    assert caught.value is throttled
    assert [j.payload for j in mock.jobs] == [2]


def test_simulated_vendor_error_reaches_the_service_as_driver_error() -> None:
    mock = MockQueueDriver()
    boom = ConnectionResetError("reset")
    mock.simulate_failure(boom)

    with pytest.raises(DriverError) as caught:
        JobService(mock).enqueue(noop, 1)

    assert caught.value.__cause__ is boom
    assert mock.jobs == []


def test_simulate_failure_times() -> None:
    mock = MockQueueDriver()
    service = JobService(mock)
    mock.simulate_failure(ThrottledError("slow"), times=2)

    for _ in range(2):
        with pytest.raises(ThrottledError):
            service.enqueue(noop, 1)
    service.enqueue(noop, 3)

    assert [j.payload for j in mock.jobs] == [3]


def test_simulated_failure_fails_a_whole_batch() -> None:
    mock = MockQueueDriver()
    mock.simulate_failure(ThrottledError("slow"))

    with pytest.raises(ThrottledError):
        JobService(mock).enqueue_batch([(noop, 1), (noop, 2)])

    assert mock.jobs == []


def test_failed_dead_letter_send_keeps_the_message() -> None:
    def refuse(payload: object, ctx: JobContext) -> None:
        raise PermanentJobError("no")

    refused = define_job(name="refuse", handler=refuse)
    clock = Clock()
    mock, service, handler = setup(refused, clock=clock)
    service.enqueue(refused, None)
    [record] = mock.receive(visibility_timeout=30)
    mock.simulate_failure(OSError("dlq unreachable"))

    response = handler(event([record]), None)

    assert failures(response) == [record.message_id]
    assert mock.dead_letters == []
    clock.advance(30)
    [again] = mock.receive()
    assert again.message_id == record.message_id
    assert failures(handler(event([again]), None)) == []
    assert [d.message_id for d in mock.dead_letters] == [record.message_id]


def test_simulated_failure_on_receive() -> None:
    mock = MockQueueDriver()
    JobService(mock).enqueue(noop, 1)
    mock.simulate_failure(ThrottledError("slow"))

    with pytest.raises(ThrottledError):
        mock.receive()
    assert len(mock.receive()) == 1


# --- clear --------------------------------------------------------------------


def test_clear_forgets_everything() -> None:
    def refuse(payload: object, ctx: JobContext) -> None:
        raise TransientJobError("later", retry_after=5) if payload else PermanentJobError("no")

    refused = define_job(name="refuse", handler=refuse)
    mock, service, handler = setup(refused)
    service.enqueue(refused, 0)
    service.enqueue(refused, 1)
    handler(event(mock.receive()), None)
    service.enqueue(refused, 2)
    mock.simulate_failure(ThrottledError("pending failure"))
    assert mock.jobs
    assert mock.dead_letters
    assert mock.visibility_changes

    mock.clear()

    assert mock.jobs == []
    assert mock.dead_letters == []
    assert mock.visibility_changes == []
    assert mock.receive() == []
    assert mock.counts().pending == 0
    service.enqueue(noop, "after")
    assert [j.payload for j in mock.jobs] == ["after"]


# --- drain --------------------------------------------------------------------


def test_drain_dead_letters_an_always_failing_job_after_exactly_its_attempts() -> None:
    attempts: list[int] = []

    def always(payload: object, ctx: JobContext) -> None:
        attempts.append(ctx.attempt_number)
        raise RuntimeError("always")

    failing = define_job(name="always", handler=always, retry=3)
    mock, service, handler = setup(failing)
    sent = service.enqueue(failing, None)

    batches = mock.drain(handler)

    assert attempts == [1, 2, 3]
    assert batches == 3
    [dead] = mock.dead_letters
    assert (dead.message_id, dead.job_id) == (sent.message_id, sent.job_id)
    assert dead.reason == "retries_exhausted"
    assert dead.error_type == "RetryExhaustedError"
    assert "always" in dead.error_message
    assert dead.attempt == 3
    assert mock.counts().pending == 0


def test_drain_runs_a_job_that_fails_once_twice() -> None:
    attempts: list[int] = []

    def once(payload: object, ctx: JobContext) -> None:
        attempts.append(ctx.attempt_number)
        if ctx.attempt_number == 1:
            raise TransientJobError("first time", retry_after=3600)

    flaky = define_job(name="flaky", handler=once)
    mock, service, handler = setup(flaky)
    service.enqueue(flaky, None)

    mock.drain(handler)

    assert attempts == [1, 2]
    assert mock.dead_letters == []
    assert [c.seconds for c in mock.visibility_changes] == [3600]
    assert mock.counts().pending == 0


def test_drain_discards_a_job_without_retries() -> None:
    runs: list[int] = []

    def fail(payload: object, ctx: JobContext) -> None:
        runs.append(1)
        raise RuntimeError("no")

    once = define_job(name="once", handler=fail, retry=False)
    mock, service, handler = setup(once)
    service.enqueue(once, None)

    assert mock.drain(handler) == 1
    assert runs == [1]
    assert mock.dead_letters == []
    assert mock.counts().pending == 0


def test_drain_runs_jobs_enqueued_by_jobs_and_skips_delays() -> None:
    ran: list[str] = []
    mock = MockQueueDriver()
    service = JobService(mock)

    def second(payload: str, ctx: JobContext) -> None:
        ran.append(payload)

    second_job = define_job(name="second", handler=second, payload=str)

    def first(payload: str, ctx: JobContext) -> None:
        ran.append(payload)
        service.enqueue_in(second_job, f"after {payload}", 3600)

    first_job = define_job(name="first", handler=first, payload=str)
    handler = bootstrap_worker(module=Module(name="m", jobs=[first_job, second_job]), driver=mock)
    service.enqueue_in(first_job, "a", 600)

    assert mock.drain(handler) == 2
    assert ran == ["a", "after a"]


def test_drain_counts_batches() -> None:
    mock, service, handler = setup(noop)
    for n in range(25):
        service.enqueue(noop, n)

    assert mock.drain(handler, batch_size=10) == 3
    assert mock.drain(handler) == 0


def test_drain_gives_up_after_max_batches() -> None:
    def always(payload: object, ctx: JobContext) -> None:
        raise RuntimeError("always")

    failing = define_job(name="always", handler=always, retry=100)
    mock, service, handler = setup(failing)
    service.enqueue(failing, None)

    with pytest.raises(RuntimeError, match="3 batches"):
        mock.drain(handler, max_batches=3)


def test_drain_only_drains_its_queue() -> None:
    ran: list[object] = []
    job: Job[Any] = define_job(name="j", handler=lambda p, ctx: ran.append(p))
    mock, service, handler = setup(job)
    service.enqueue(job, "default")
    service.enqueue(job, "other", queue="other")

    mock.drain(handler, queue="other")

    assert ran == ["other"]
    assert mock.counts().visible == 1


# --- the consuming side -------------------------------------------------------


def test_receive_shapes_records_like_lambda() -> None:
    clock = Clock()
    mock = MockQueueDriver(clock=clock)
    sent = JobService(mock).enqueue(noop, {"a": 1}, queue="work")

    [record] = mock.receive("work")

    assert record.message_id == sent.message_id
    assert record.body == mock.jobs[0].message.body
    assert record.receipt_handle
    assert record.event_source == "aws:sqs"
    assert record.event_source_arn.endswith(":work")
    assert record.queue_name == "work"
    assert record.attributes.approximate_receive_count == "1"
    assert record.attributes.sent_timestamp == str(int(T0 * 1000))
    assert record.attributes.message_group_id is None
    assert record.message_attributes[ATTR_JOB_NAME].string_value == "noop"
    assert mock.receive("default") == []


def test_delayed_message_is_invisible_until_its_delay_passes() -> None:
    clock = Clock()
    mock = MockQueueDriver(clock=clock)
    JobService(mock).enqueue_in(noop, 1, 30)

    clock.advance(29.9)
    assert mock.receive() == []
    counts = mock.counts()
    assert (counts.visible, counts.delayed, counts.in_flight) == (0, 1, 0)
    clock.advance(0.1)
    assert mock.counts().visible == 1
    assert len(mock.receive()) == 1


def test_visibility_timeout_hides_then_redelivers_with_a_higher_count() -> None:
    clock = Clock()
    mock = MockQueueDriver(clock=clock)
    JobService(mock).enqueue(noop, 1)

    [first] = mock.receive(visibility_timeout=20)
    clock.advance(19)
    assert mock.receive() == []
    assert mock.counts().in_flight == 1
    clock.advance(1)
    [second] = mock.receive(visibility_timeout=20)

    assert second.message_id == first.message_id
    assert second.receipt_handle != first.receipt_handle
    assert second.attributes.approximate_receive_count == "2"
    assert (
        second.attributes.approximate_first_receive_timestamp
        == first.attributes.approximate_first_receive_timestamp
        == str(int(T0 * 1000))
    )


def test_default_visibility_timeout_comes_from_the_constructor() -> None:
    clock = Clock()
    mock = MockQueueDriver(clock=clock, visibility_timeout=7)
    JobService(mock).enqueue(noop, 1)

    mock.receive()
    clock.advance(6)
    assert mock.receive() == []
    clock.advance(1)
    assert len(mock.receive()) == 1


def test_delete_removes_received_messages() -> None:
    clock = Clock()
    mock = MockQueueDriver(clock=clock)
    service = JobService(mock)
    service.enqueue(noop, 1)
    service.enqueue(noop, 2)

    first, second = mock.receive(visibility_timeout=10)
    mock.delete([first])
    clock.advance(10)

    assert [r.message_id for r in mock.receive()] == [second.message_id]


def test_receive_respects_max_messages_in_order() -> None:
    mock = MockQueueDriver()
    service = JobService(mock)
    for n in range(5):
        service.enqueue(noop, n)

    batch = mock.receive(max_messages=3)
    rest = mock.receive(max_messages=3)

    assert [r.message_id for r in batch + rest] == [j.message_id for j in mock.jobs]
    assert len(batch) == 3


def _grouped() -> Job[dict[str, str]]:
    def handler(payload: dict[str, str], ctx: JobContext) -> None:
        pass

    return define_job(name="grouped", handler=handler, payload=dict[str, str], group=lambda p: p["g"])


def test_fifo_keeps_one_receive_in_flight_per_group() -> None:
    clock = Clock()
    mock = MockQueueDriver(clock=clock)
    service = JobService(mock, default_queue="x.fifo")
    grouped = _grouped()
    a1 = service.enqueue(grouped, {"g": "a", "n": "1"})
    a2 = service.enqueue(grouped, {"g": "a", "n": "2"})
    b1 = service.enqueue(grouped, {"g": "b", "n": "1"})

    [first] = mock.receive("x.fifo", max_messages=1, visibility_timeout=30)
    others = mock.receive("x.fifo", visibility_timeout=30)

    assert first.message_id == a1.message_id
    assert first.attributes.message_group_id == "a"
    assert [r.message_id for r in others] == [b1.message_id]
    assert others[0].attributes.message_group_id == "b"
    assert mock.receive("x.fifo") == []

    mock.delete([first])
    [next_a] = mock.receive("x.fifo")
    assert next_a.message_id == a2.message_id


def test_fifo_redelivers_the_head_of_a_group_before_the_rest() -> None:
    clock = Clock()
    mock = MockQueueDriver(clock=clock)
    service = JobService(mock, default_queue="x.fifo")
    grouped = _grouped()
    a1 = service.enqueue(grouped, {"g": "a"})
    a2 = service.enqueue(grouped, {"g": "a"})

    [first] = mock.receive("x.fifo", max_messages=1, visibility_timeout=30)
    clock.advance(30)
    again = mock.receive("x.fifo", visibility_timeout=30)

    assert first.message_id == a1.message_id
    assert [r.message_id for r in again] == [a1.message_id, a2.message_id]
    assert again[0].attributes.approximate_receive_count == "2"


def test_fifo_without_a_group_key_uses_the_queue_as_group() -> None:
    mock = MockQueueDriver()
    service = JobService(mock, default_queue="x.fifo")
    first = service.enqueue(noop, 1)
    service.enqueue(noop, 2)

    [record] = mock.receive("x.fifo", max_messages=1)

    assert record.message_id == first.message_id
    assert record.attributes.message_group_id == "x.fifo"
    assert record.attributes.message_deduplication_id == first.job_id
    assert mock.receive("x.fifo") == []


def test_standard_queue_has_no_groups() -> None:
    mock = MockQueueDriver()
    service = JobService(mock)
    grouped = _grouped()
    service.enqueue(grouped, {"g": "a"})
    service.enqueue(grouped, {"g": "a"})

    records = mock.receive(max_messages=1) + mock.receive()

    assert len(records) == 2
    assert all(r.attributes.message_group_id is None for r in records)


def test_fifo_worker_run_through_the_mock_stops_the_group_after_a_failure() -> None:
    ran: list[str] = []

    def handler(payload: dict[str, str], ctx: JobContext) -> None:
        ran.append(f"{payload['g']}{payload['n']}")
        if payload["n"] == "1" and payload["g"] == "a" and ctx.attempt_number == 1:
            raise RuntimeError("a1 fails once")

    job = define_job(name="g", handler=handler, payload=dict[str, str], group=lambda p: p["g"])
    mock, _, worker = setup(job)
    service = JobService(mock, default_queue="x.fifo")
    for group, n in [("a", "1"), ("a", "2"), ("b", "1")]:
        service.enqueue(job, {"g": group, "n": n})

    mock.drain(worker, queue="x.fifo")

    assert ran == ["a1", "b1", "a1", "a2"]


def test_counts_and_dead_letter_admin() -> None:
    def refuse(payload: object, ctx: JobContext) -> None:
        raise PermanentJobError("no")

    refused = define_job(name="refuse", handler=refuse)
    mock, service, handler = setup(refused)
    sent = service.enqueue(refused, None)
    mock.drain(handler)

    [entry] = mock.list_dead_letters()
    assert (entry.message_id, entry.job_name, entry.reason) == (
        sent.message_id,
        "refuse",
        "permanent_error",
    )
    assert mock.redrive() == 1
    assert mock.dead_letters == []
    assert mock.counts().visible == 1
    [record] = mock.receive()
    assert record.message_id == sent.message_id


def test_fifo_duplicate_within_five_minutes_is_not_queued_again() -> None:
    now = [1_000.0]
    mock = MockQueueDriver(clock=lambda: now[0])
    first = mock.enqueue(JobMessage(job_name="j", payload=1, job_id="same", queue="q.fifo"))
    again = mock.enqueue(JobMessage(job_name="j", payload=1, job_id="same", queue="q.fifo"))
    assert again.message_id == first.message_id
    assert mock.counts("q.fifo").visible == 1
    assert len(mock.jobs) == 2  # both calls are recorded
    now[0] += 301
    later = mock.enqueue(JobMessage(job_name="j", payload=1, job_id="same", queue="q.fifo"))
    assert later.message_id != first.message_id
    assert mock.counts("q.fifo").visible == 2


def test_redrive_keeps_a_fifo_message_in_its_group() -> None:
    mock = MockQueueDriver()
    mock.enqueue(JobMessage(job_name="j", payload=1, job_id="a", queue="q.fifo", group_id="customer-7"))
    [record] = mock.receive("q.fifo")
    assert record.attributes.message_group_id == "customer-7"
    mock.dead_letter(
        record,
        DeadLetterInfo(
            reason="permanent_error",
            error_type="PermanentJobError",
            error_message="no",
            attempt=1,
            source_queue=record.event_source_arn,
        ),
    )
    assert mock.redrive("q.fifo") == 1
    [again] = mock.receive("q.fifo")
    assert again.attributes.message_group_id == "customer-7"
