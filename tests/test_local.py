"""The local poller behaves like Lambda's SQS event source mapping (REFERENCE.md)."""

from __future__ import annotations

import hashlib
import json
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glasswork import (
    JobContext,
    JobService,
    MockQueueDriver,
    Module,
    PermanentJobError,
    TransientJobError,
    bootstrap_worker,
    define_job,
)
from glasswork._wire import SQSEvent
from glasswork.drivers.sqlite import SQLiteQueueDriver
from glasswork.errors import DriverError, QueueNotFoundError
from glasswork.local import (
    LocalLambdaContext,
    Poller,
    batch_item_failures,
    lambda_event,
    stop_on_signals,
)

START = 1_700_000_000.0


class Clock:
    """A hand-driven clock shared by the driver and the poller."""

    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _noop(payload: object, ctx: JobContext) -> None:
    return None


NOOP = define_job(name="noop", handler=_noop)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mock(clock: Clock) -> MockQueueDriver:
    return MockQueueDriver(clock=clock, visibility_timeout=30)


def _enqueue(driver: MockQueueDriver | SQLiteQueueDriver, count: int) -> list[str]:
    service = JobService(driver)
    return [service.enqueue(NOOP, {"n": n}).message_id for n in range(count)]


class Recorder:
    """A Lambda handler that records its calls and answers as told."""

    def __init__(self, answer: object = None) -> None:
        self.answer = answer
        self.events: list[dict[str, object]] = []
        self.contexts: list[LocalLambdaContext] = []

    def __call__(self, event: dict[str, object], context: LocalLambdaContext) -> object:
        self.events.append(event)
        self.contexts.append(context)
        return self.answer


def _ids(event: Mapping[str, object]) -> list[str]:
    records = event["Records"]
    assert isinstance(records, list)
    return [r["messageId"] for r in records]


# --- the event and the context ------------------------------------------------


def test_event_has_every_key_lambda_sends(mock: MockQueueDriver, clock: Clock) -> None:
    sent = _enqueue(mock, 2)
    handler = Recorder()
    Poller(handler, mock, clock=clock).poll_once()

    (event,) = handler.events
    assert list(event) == ["Records"]
    assert _ids(event) == sent
    records = event["Records"]
    assert isinstance(records, list)
    for record in records:
        assert set(record) == {
            "messageId",
            "receiptHandle",
            "body",
            "attributes",
            "messageAttributes",
            "md5OfBody",
            "eventSource",
            "eventSourceARN",
            "awsRegion",
        }
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].endswith(":default")
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        attributes = record["attributes"]
        assert attributes["ApproximateReceiveCount"] == "1"
        assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(attributes)
        assert record["messageAttributes"]["JobName"] == {
            "stringValue": "noop",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    assert json.loads(json.dumps(event)) == event
    assert [r.message_id for r in msgspec.convert(event, SQSEvent).records] == sent


def test_context_counts_down_from_the_function_timeout(mock: MockQueueDriver, clock: Clock) -> None:
    _enqueue(mock, 1)
    seen: list[int] = []

    def handler(event: dict[str, object], context: LocalLambdaContext) -> None:
        seen.append(context.get_remaining_time_in_millis())
        clock.advance(2.5)
        seen.append(context.get_remaining_time_in_millis())
        clock.advance(20)
        seen.append(context.get_remaining_time_in_millis())

    report = Poller(handler, mock, clock=clock, function_timeout=10).poll_once()

    assert seen == [10_000, 7_500, 0]
    assert report.timed_out
    assert report.deleted


def test_context_looks_like_lambdas(mock: MockQueueDriver, clock: Clock) -> None:
    _enqueue(mock, 2)
    handler = Recorder()
    poller = Poller(handler, mock, clock=clock, batch_size=1, function_name="emails", memory_limit_in_mb=256)
    first = poller.poll_once()
    second = poller.poll_once()

    one, two = handler.contexts
    assert one.function_name == "emails"
    assert one.memory_limit_in_mb == "256"
    assert one.function_version == "$LATEST"
    assert one.invoked_function_arn == "arn:aws:lambda:us-east-1:000000000000:function:emails"
    assert one.get_remaining_time_in_millis() == 30_000
    assert (one.aws_request_id, two.aws_request_id) == (first.request_id, second.request_id)
    assert one.aws_request_id != two.aws_request_id


# --- answers ------------------------------------------------------------------


def test_deletes_successes_and_leaves_failures(mock: MockQueueDriver, clock: Clock) -> None:
    sent = _enqueue(mock, 3)
    handler = Recorder({"batchItemFailures": [{"itemIdentifier": sent[1]}]})
    poller = Poller(handler, mock, clock=clock)

    report = poller.poll_once()

    assert report.deleted == (sent[0], sent[2])
    assert report.failed == (sent[1],)
    assert not report.whole_batch_failed
    assert mock.counts().in_flight == 1
    assert mock.counts().visible == 0
    clock.advance(30)
    handler.answer = None
    again = poller.poll_once()
    assert again.deleted == (sent[1],)
    assert handler.events[1]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"  # type: ignore[index]  # a Lambda event
    assert mock.counts().pending == 0


@pytest.mark.parametrize(
    "answer",
    [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, {"statusCode": 200}],
    ids=["none", "empty-dict", "empty-list", "null-list", "other-keys"],
)
def test_answers_meaning_all_succeeded(mock: MockQueueDriver, clock: Clock, answer: object) -> None:
    sent = _enqueue(mock, 3)
    report = Poller(Recorder(answer), mock, clock=clock).poll_once()

    assert report.deleted == tuple(sent)
    assert report.failed == ()
    assert mock.counts().pending == 0


MALFORMED: dict[str, Callable[[str], object]] = {
    "string": lambda i: "ok",
    "list": lambda i: [{"itemIdentifier": i}],
    "number": lambda i: 3,
    "failures-not-a-list": lambda i: {"batchItemFailures": {"itemIdentifier": i}},
    "failures-a-string": lambda i: {"batchItemFailures": i},
    "entry-not-a-dict": lambda i: {"batchItemFailures": [i]},
    "empty-identifier": lambda i: {"batchItemFailures": [{"itemIdentifier": ""}]},
    "null-identifier": lambda i: {"batchItemFailures": [{"itemIdentifier": None}]},
    "number-identifier": lambda i: {"batchItemFailures": [{"itemIdentifier": 5}]},
    "bad-key": lambda i: {"batchItemFailures": [{"itemIdentifer": i}]},
    "unknown-identifier": lambda i: {"batchItemFailures": [{"itemIdentifier": f"{i}-other"}]},
    "not-json": lambda i: {"batchItemFailures": [{"itemIdentifier": i}], "extra": object()},
}


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_answer_fails_the_whole_batch(
    mock: MockQueueDriver, clock: Clock, answer: Callable[[str], object]
) -> None:
    sent = _enqueue(mock, 3)

    report = Poller(Recorder(answer(sent[0])), mock, clock=clock).poll_once()

    assert report.whole_batch_failed
    assert report.deleted == ()
    assert report.failed == tuple(sent)
    assert mock.counts().in_flight == 3


def test_exception_fails_the_whole_batch(mock: MockQueueDriver, clock: Clock) -> None:
    sent = _enqueue(mock, 3)

    def handler(event: dict[str, object], context: LocalLambdaContext) -> None:
        raise RuntimeError("boom")

    poller = Poller(handler, mock, clock=clock)
    report = poller.poll_once()

    assert report.error is not None
    assert "RuntimeError: boom" in report.error
    assert report.deleted == ()
    assert mock.counts().in_flight == 3
    clock.advance(30)
    again = Poller(Recorder(), mock, clock=clock).poll_once()
    assert again.deleted == tuple(sent)


@given(st.data())
def test_batch_item_failures_returns_exactly_the_listed_ids(data: st.DataObject) -> None:
    ids = data.draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=10, unique=True))
    listed = data.draw(st.lists(st.sampled_from(ids)))
    answer = {"batchItemFailures": [{"itemIdentifier": i} for i in listed]}
    assert batch_item_failures(answer, ids) == frozenset(listed)


def test_lambda_event_round_trips(mock: MockQueueDriver) -> None:
    _enqueue(mock, 3)
    records = mock.receive(max_messages=10)
    converted = msgspec.convert(lambda_event(records), SQSEvent).records
    assert all(r.md5_of_body == hashlib.md5(r.body.encode()).hexdigest() for r in converted)
    assert [msgspec.structs.replace(r, md5_of_body="") for r in converted] == records


# --- options ------------------------------------------------------------------


def test_function_timeout_defaults_and_checks(mock: MockQueueDriver) -> None:
    assert Poller(Recorder(), mock).function_timeout == 30.0
    assert Poller(Recorder(), mock, visibility_timeout=5).function_timeout == 5.0
    assert Poller(Recorder(), mock, visibility_timeout=60).function_timeout == 30.0
    with pytest.raises(ValueError, match="must not exceed the visibility"):
        Poller(Recorder(), mock, visibility_timeout=5, function_timeout=10)
    with pytest.raises(ValueError, match="batch_size"):
        Poller(Recorder(), mock, batch_size=0)
    with pytest.raises(ValueError, match="visibility_timeout"):
        Poller(Recorder(), mock, visibility_timeout=0)


def test_batch_size_and_visibility_timeout_reach_the_driver(mock: MockQueueDriver, clock: Clock) -> None:
    _enqueue(mock, 5)
    handler = Recorder({"batchItemFailures": []})
    failing = Poller(Recorder("not a response"), mock, clock=clock, batch_size=2, visibility_timeout=7)

    report = failing.poll_once()

    assert report.received == 2
    clock.advance(6.9)
    assert mock.counts().in_flight == 2
    clock.advance(0.2)
    assert mock.counts().in_flight == 0
    assert Poller(handler, mock, clock=clock, batch_size=10).poll_once().received == 5


# --- run ----------------------------------------------------------------------


class Runs:
    """Jobs for end-to-end runs; records every attempt."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def module(self) -> Module:
        def ok(payload: object, ctx: JobContext) -> None:
            self.calls.append((ctx.job_name, ctx.attempt_number))

        def flaky(payload: object, ctx: JobContext) -> None:
            self.calls.append((ctx.job_name, ctx.attempt_number))
            if ctx.attempt_number == 1:
                raise TransientJobError("not yet", retry_after=5)

        def broken(payload: object, ctx: JobContext) -> None:
            self.calls.append((ctx.job_name, ctx.attempt_number))
            raise PermanentJobError("never")

        return Module(
            name="runs",
            jobs=[
                define_job(name="ok", handler=ok),
                define_job(name="flaky", handler=flaky),
                define_job(name="broken", handler=broken),
            ],
        )


def _mixed(driver: MockQueueDriver | SQLiteQueueDriver, module: Module) -> None:
    service = JobService(driver)
    jobs = {job.name: job for job in module.jobs}
    for name in ["ok", "ok", "flaky", "broken", "ok"]:
        service.enqueue(jobs[name], None)


def test_burst_runs_until_nothing_is_pending(mock: MockQueueDriver, clock: Clock) -> None:
    runs = Runs()
    module = runs.module()
    _mixed(mock, module)
    handler = bootstrap_worker(module=module, driver=mock)
    batches: list[int] = []

    report = Poller(handler, mock, clock=clock, sleep=clock.sleep).run(
        burst=True, on_batch=lambda b: batches.append(b.received)
    )

    assert sorted(runs.calls) == sorted(
        [("ok", 1), ("ok", 1), ("ok", 1), ("flaky", 1), ("flaky", 2), ("broken", 1)]
    )
    assert [d.reason for d in mock.dead_letters] == ["permanent_error"]
    assert mock.counts().pending == 0
    assert (report.received, report.deleted, report.failed) == (6, 5, 1)
    assert batches == [5, 1]
    assert clock.now - START >= 5
    assert clock.sleeps
    assert max(clock.sleeps) <= 0.5


def test_burst_waits_for_messages_held_by_a_dead_worker(mock: MockQueueDriver, clock: Clock) -> None:
    sent = _enqueue(mock, 2)
    mock.receive(max_messages=1)
    handler = Recorder()

    report = Poller(handler, mock, clock=clock, sleep=clock.sleep).run(burst=True)

    assert sorted(i for e in handler.events for i in _ids(e)) == sorted(sent)
    assert report.deleted == 2
    assert clock.now - START >= 30
    assert max(clock.sleeps) <= 0.5


def test_burst_on_an_empty_queue_stops_at_once(mock: MockQueueDriver, clock: Clock) -> None:
    report = Poller(Recorder(), mock, clock=clock, sleep=clock.sleep).run(burst=True)

    assert report.batches == 0
    assert clock.sleeps == []


def test_burst_on_sqlite_with_the_worker(tmp_path: Path, clock: Clock) -> None:
    runs = Runs()
    module = runs.module()
    driver = SQLiteQueueDriver(tmp_path / "q.db", clock=clock)
    _mixed(driver, module)

    Poller(bootstrap_worker(module=module, driver=driver), driver, clock=clock, sleep=clock.sleep).run(
        burst=True
    )

    assert len(runs.calls) == 6
    assert driver.counts().pending == 0
    assert [(e.job_name, e.reason) for e in driver.list_dead_letters()] == [("broken", "permanent_error")]
    driver.close()


def test_stop_event_finishes_the_batch_in_hand(mock: MockQueueDriver, clock: Clock) -> None:
    sent = _enqueue(mock, 3)
    stop = threading.Event()

    def handler(event: dict[str, object], context: LocalLambdaContext) -> None:
        stop.set()

    report = Poller(handler, mock, clock=clock, batch_size=1, sleep=clock.sleep).run(stop_event=stop)

    assert (report.batches, report.deleted) == (1, 1)
    assert mock.counts().visible == 2
    assert [j.message_id for j in mock.jobs] == sent


def test_run_retries_driver_errors_then_gives_up(mock: MockQueueDriver, clock: Clock) -> None:
    _enqueue(mock, 2)
    mock.simulate_failure(DriverError("disk busy"), times=3)
    report = Poller(Recorder(), mock, clock=clock, sleep=clock.sleep).run(burst=True)
    assert report.deleted == 2

    _enqueue(mock, 1)
    mock.simulate_failure(DriverError("disk gone"), times=50)
    with pytest.raises(DriverError, match="disk gone"):
        Poller(Recorder(), mock, clock=clock, sleep=clock.sleep).run(burst=True)


def test_run_raises_queue_not_found_at_once(mock: MockQueueDriver, clock: Clock) -> None:
    mock.simulate_failure(QueueNotFoundError("no such queue"))
    with pytest.raises(QueueNotFoundError):
        Poller(Recorder(), mock, clock=clock, sleep=clock.sleep).run(burst=True)
    assert clock.sleeps == []


def test_stop_on_signals_sets_the_event_and_restores_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    with stop_on_signals(stop):
        signal.raise_signal(signal.SIGTERM)
        assert stop.is_set()
    assert signal.getsignal(signal.SIGTERM) == before
