"""`JobService`: validation, the size guard, ids, delays, queues, hooks and the wire body."""

from __future__ import annotations

import itertools
import json
import logging
import math
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import msgspec
import pytest

from glasswork import (
    EnqueueResult,
    InvalidJobPayloadError,
    Job,
    JobContext,
    JobMessage,
    JobService,
    MockQueueDriver,
    PayloadTooLargeError,
    define_job,
)
from glasswork.core import decode_message
from glasswork.drivers.base import ATTR_JOB_NAME, QueueDriver
from glasswork.errors import BatchEnqueueError, DriverError, GlassworkError, ThrottledError

NOW = datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
NOW_ISO = "2026-01-02T03:04:05.678Z"
ONE_MIB = 1_048_576


class Email(msgspec.Struct, frozen=True, kw_only=True):
    to: str
    subject: str = ""


def _send_email(payload: Email, ctx: JobContext) -> None:
    pass


def _take_str(payload: str, ctx: JobContext) -> None:
    pass


def _take_int(payload: int, ctx: JobContext) -> None:
    pass


def _take_any(payload: object, ctx: JobContext) -> None:
    pass


send_email: Job[Email] = define_job(name="send_email", handler=_send_email, payload=Email)
blob: Job[str] = define_job(name="blob", handler=_take_str, payload=str)
count: Job[int] = define_job(name="count", handler=_take_int, payload=int)
untyped: Job[object] = define_job(name="untyped", handler=_take_any)


def ids() -> Callable[[], str]:
    """Job ids `id-1`, `id-2`, ... in call order."""
    counter = itertools.count(1)
    return lambda: f"id-{next(counter)}"


def make_service(
    driver: QueueDriver,
    *,
    now: datetime = NOW,
    default_queue: str | None = None,
    max_payload_bytes: int = ONE_MIB,
    on_enqueued: Callable[[JobMessage, EnqueueResult], object] | None = None,
) -> JobService:
    """A service over `driver` with a fixed clock and job ids `id-1`, `id-2`, ..."""
    return JobService(
        driver,
        default_queue=default_queue,
        max_payload_bytes=max_payload_bytes,
        on_enqueued=on_enqueued,
        clock=lambda: now,
        new_id=ids(),
    )


def mock_service(
    *,
    default_queue: str | None = None,
    max_payload_bytes: int = ONE_MIB,
    on_enqueued: Callable[[JobMessage, EnqueueResult], object] | None = None,
) -> tuple[JobService, MockQueueDriver]:
    """A service over a fresh `MockQueueDriver`, as `make_service` sets it up."""
    mock = MockQueueDriver()
    service = make_service(
        mock,
        default_queue=default_queue,
        max_payload_bytes=max_payload_bytes,
        on_enqueued=on_enqueued,
    )
    return service, mock


def loose(job: Job[Any]) -> Job[Any]:
    """The job typed loosely, to pass payloads its type would refuse (a dict, a wrong value)."""
    return job


def wire_size(body: str, job_name: str) -> int:
    """What SQS counts against the limit: the body plus the `JobName` attribute's name, type, value."""
    return len(body.encode()) + len(ATTR_JOB_NAME) + len("String") + len(job_name.encode())


class SpyDriver:
    """A sending-only driver (no `enqueue_batch`) that records every message it gets."""

    name = "spy"

    def __init__(self, fail: Callable[[JobMessage], BaseException | None] | None = None) -> None:
        self.sent: list[JobMessage] = []
        self.calls = 0
        self._fail = fail

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        self.calls += 1
        if self._fail is not None:
            error = self._fail(message)
            if error is not None:
                raise error
        self.sent.append(message)
        return EnqueueResult(message_id=f"m-{message.job_id}", job_id=message.job_id)


class BatchSpyDriver:
    """A driver with `enqueue_batch`; its `enqueue` must not be used for batches."""

    name = "batch-spy"

    def __init__(self, error: BaseException | None = None) -> None:
        self.batches: list[list[JobMessage]] = []
        self.single: list[JobMessage] = []
        self._error = error

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        self.single.append(message)
        return EnqueueResult(message_id=f"m-{message.job_id}", job_id=message.job_id)

    def enqueue_batch(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        self.batches.append(list(messages))
        if self._error is not None:
            raise self._error
        return [EnqueueResult(message_id=f"b-{m.job_id}", job_id=m.job_id) for m in messages]


# --- payload validation -------------------------------------------------------


def test_dict_payload_is_converted_to_the_struct_before_sending() -> None:
    service, mock = mock_service()

    service.enqueue(loose(send_email), {"to": "a@example.com"})

    [job] = mock.jobs
    assert job.payload == Email(to="a@example.com", subject="")
    assert type(job.payload) is Email
    assert json.loads(job.message.body)["payload"] == {"to": "a@example.com", "subject": ""}


def test_struct_payload_is_sent_as_is() -> None:
    service, mock = mock_service()

    service.enqueue(send_email, Email(to="a@example.com", subject="hi"))

    assert mock.jobs[0].payload == Email(to="a@example.com", subject="hi")


@pytest.mark.parametrize(
    ("job", "payload"),
    [
        (send_email, {"to": 5}),
        (send_email, {"subject": "no recipient"}),
        (send_email, "not an object"),
        (send_email, None),
        (count, "5"),
        (count, 1.5),
        (blob, 7),
        (untyped, object()),
    ],
    ids=[
        "wrong-field-type",
        "missing-field",
        "string",
        "none",
        "str-for-int",
        "float-for-int",
        "int-for-str",
        "unencodable",
    ],
)
def test_invalid_payload_raises_and_nothing_is_sent(job: Job[object], payload: object) -> None:
    seen: list[JobMessage] = []
    service, mock = mock_service(on_enqueued=lambda m, r: seen.append(m))

    with pytest.raises(InvalidJobPayloadError) as caught:
        service.enqueue(job, payload)

    assert caught.value.job_name == job.name
    assert job.name in str(caught.value)
    assert mock.jobs == []
    assert mock.receive() == []
    assert seen == []


def test_invalid_payload_is_a_permanent_glasswork_error() -> None:
    service, _ = mock_service()

    with pytest.raises(GlassworkError):
        service.enqueue(loose(count), "x")


def test_invalid_payload_never_reaches_a_driver() -> None:
    spy = SpyDriver()
    service = make_service(spy)

    with pytest.raises(InvalidJobPayloadError):
        service.enqueue(loose(count), "x")

    assert spy.calls == 0


def test_batch_with_one_invalid_item_sends_nothing() -> None:
    seen: list[JobMessage] = []
    service, mock = mock_service(on_enqueued=lambda m, r: seen.append(m))
    items: list[tuple[Job[Any], object]] = [
        (send_email, Email(to="a@example.com")),
        (send_email, {"to": 1}),
        (send_email, Email(to="c@example.com")),
    ]

    with pytest.raises(InvalidJobPayloadError):
        service.enqueue_batch(items)

    assert mock.jobs == []
    assert seen == []


def test_batch_with_one_invalid_item_sends_nothing_through_a_plain_driver() -> None:
    spy = SpyDriver()
    service = make_service(spy)
    items: list[tuple[Job[Any], object]] = [(count, 1), (count, 2), (count, "three")]

    with pytest.raises(InvalidJobPayloadError):
        service.enqueue_batch(items)

    assert spy.calls == 0


# --- the size guard -----------------------------------------------------------


def test_default_limit_is_one_mebibyte() -> None:
    assert JobService(MockQueueDriver()).max_payload_bytes == ONE_MIB


def _blob_overhead() -> int:
    """The counted size of the `blob` job with an empty string payload and job id `id-1`."""
    empty = f'{{"jobName":"blob","payload":"","jobId":"id-1","enqueuedAt":"{NOW_ISO}"}}'
    return wire_size(empty, "blob")


def test_message_exactly_at_the_default_limit_is_sent() -> None:
    service, mock = mock_service()
    payload = "a" * (ONE_MIB - _blob_overhead())

    service.enqueue(blob, payload)

    [job] = mock.jobs
    assert wire_size(job.message.body, "blob") == ONE_MIB
    assert job.payload == payload


def test_message_one_byte_over_the_default_limit_is_refused() -> None:
    service, mock = mock_service()

    with pytest.raises(PayloadTooLargeError) as caught:
        service.enqueue(blob, "a" * (ONE_MIB - _blob_overhead() + 1))

    assert caught.value.actual_size == ONE_MIB + 1
    assert caught.value.max_size == ONE_MIB
    assert str(ONE_MIB + 1) in str(caught.value)
    assert mock.jobs == []


def test_the_limit_counts_bytes_not_characters() -> None:
    size = _blob_overhead() + 2 * 100
    at_limit, _ = mock_service(max_payload_bytes=size)
    under, mock = mock_service(max_payload_bytes=size - 1)

    at_limit.enqueue(blob, "é" * 100)
    with pytest.raises(PayloadTooLargeError) as caught:
        under.enqueue(blob, "é" * 100)

    assert caught.value.actual_size == size
    assert caught.value.max_size == size - 1
    assert mock.jobs == []


def test_custom_limit_is_enforced() -> None:
    service, mock = mock_service(max_payload_bytes=1_000)

    service.enqueue(blob, "a" * 500)
    with pytest.raises(PayloadTooLargeError) as caught:
        service.enqueue(blob, "a" * 1_000)

    assert caught.value.max_size == 1_000
    assert caught.value.actual_size > 1_000
    assert [j.payload for j in mock.jobs] == ["a" * 500]


def test_metadata_counts_towards_the_size() -> None:
    service, mock = mock_service(max_payload_bytes=_blob_overhead() + 10)

    service.enqueue(blob, "a" * 10)
    with pytest.raises(PayloadTooLargeError):
        service.enqueue(blob, "a" * 10, metadata={"k": "v"})

    assert len(mock.jobs) == 1


def test_oversized_item_in_a_batch_sends_nothing() -> None:
    service, mock = mock_service(max_payload_bytes=1_000)

    with pytest.raises(PayloadTooLargeError):
        service.enqueue_batch([(blob, "small"), (blob, "a" * 2_000)])

    assert mock.jobs == []


# --- ids: unique and group ----------------------------------------------------

keyed: Job[Email] = define_job(
    name="keyed",
    handler=_send_email,
    payload=Email,
    unique=lambda p: f"mail-{p.to}",
    group=lambda p: f"group-{p.subject}",
)


def test_unique_key_becomes_job_id_and_deduplication_id() -> None:
    service, mock = mock_service()

    result = service.enqueue(keyed, Email(to="a@example.com", subject="s"))

    assert result.job_id == "mail-a@example.com"
    [job] = mock.jobs
    assert job.job_id == "mail-a@example.com"
    assert job.message.deduplication_id == "mail-a@example.com"
    assert json.loads(job.message.body)["jobId"] == "mail-a@example.com"


def test_unique_and_group_see_the_converted_payload() -> None:
    service, mock = mock_service()

    service.enqueue(loose(keyed), {"to": "b@example.com", "subject": "x"})

    assert mock.jobs[0].job_id == "mail-b@example.com"
    assert mock.jobs[0].message.group_id == "group-x"


def test_group_key_becomes_group_id_and_reaches_a_fifo_queue() -> None:
    service, mock = mock_service()

    service.enqueue(keyed, Email(to="a@example.com", subject="s"), queue="orders.fifo")

    [record] = mock.receive("orders.fifo")
    assert record.attributes.message_group_id == "group-s"
    assert record.attributes.message_deduplication_id == "mail-a@example.com"


def test_without_unique_the_job_id_comes_from_new_id() -> None:
    service, mock = mock_service()

    first = service.enqueue(send_email, Email(to="a@example.com"))
    second = service.enqueue(send_email, Email(to="a@example.com"))

    assert (first.job_id, second.job_id) == ("id-1", "id-2")
    assert mock.jobs[0].message.deduplication_id == "id-1"
    assert mock.jobs[0].message.group_id is None


def test_default_job_ids_are_distinct_uuids() -> None:
    service = JobService(MockQueueDriver())

    results = [service.enqueue(count, n) for n in range(3)]

    assert len({r.job_id for r in results}) == 3
    for result in results:
        assert str(uuid.UUID(result.job_id)) == result.job_id


@pytest.mark.parametrize("key", ["", 42, None])
def test_unique_returning_no_usable_key_is_refused(key: object) -> None:
    unique = cast("Callable[[int], str]", lambda p: key)
    bad: Job[int] = define_job(name="bad", handler=_take_int, payload=int, unique=unique)
    service, mock = mock_service()

    with pytest.raises(ValueError, match="unique"):
        service.enqueue(bad, 1)

    assert mock.jobs == []


# --- metadata -----------------------------------------------------------------


def test_metadata_is_carried_into_the_body_and_the_record() -> None:
    service, mock = mock_service()
    metadata = {"tenant": "t1", "trace": "abc"}

    service.enqueue(count, 1, metadata=metadata)
    metadata["tenant"] = "changed later"

    [job] = mock.jobs
    assert job.metadata == {"tenant": "t1", "trace": "abc"}
    assert json.loads(job.message.body)["metadata"] == {"tenant": "t1", "trace": "abc"}
    assert decode_message(job.message.body).metadata == {"tenant": "t1", "trace": "abc"}


def test_no_metadata_means_no_metadata_key() -> None:
    service, mock = mock_service()

    service.enqueue(count, 1)
    service.enqueue(count, 2, metadata={})

    for job in mock.jobs:
        assert "metadata" not in json.loads(job.message.body)
        assert job.metadata == {}


def test_batch_metadata_applies_to_every_item() -> None:
    service, mock = mock_service()

    service.enqueue_batch([(count, 1), (count, 2)], metadata={"source": "import"})

    assert [j.metadata for j in mock.jobs] == [{"source": "import"}] * 2


# --- delays -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "seconds"),
    [
        (0, 0),
        (30, 30),
        (0.2, 1),
        (59.5, 60),
        (timedelta(minutes=2), 120),
        (timedelta(seconds=1, milliseconds=1), 2),
    ],
)
def test_enqueue_in_sets_whole_delay_seconds(delay: float | timedelta, seconds: int) -> None:
    service, mock = mock_service()

    service.enqueue_in(count, 1, delay)
    service.enqueue(count, 2, delay=delay)

    assert [j.delay_seconds for j in mock.jobs] == [seconds, seconds]


def test_no_delay_is_zero() -> None:
    service, mock = mock_service()

    service.enqueue(count, 1)

    assert mock.jobs[0].delay_seconds == 0


@pytest.mark.parametrize(
    "at",
    [
        NOW + timedelta(seconds=90),
        (NOW + timedelta(seconds=90)).astimezone(timezone(timedelta(hours=5, minutes=30))),
        (NOW + timedelta(seconds=90)).replace(tzinfo=None),
    ],
    ids=["utc", "other-zone", "naive-is-utc"],
)
def test_enqueue_at_uses_the_injected_clock(at: datetime) -> None:
    service, mock = mock_service()

    service.enqueue_at(count, 1, at)

    assert mock.jobs[0].delay_seconds == 90


def test_enqueue_at_rounds_a_fraction_up() -> None:
    service, mock = mock_service()

    service.enqueue_at(count, 1, NOW + timedelta(seconds=90, milliseconds=400))

    assert mock.jobs[0].delay_seconds == 91


@pytest.mark.parametrize("ago", [timedelta(0), timedelta(seconds=1), timedelta(days=3)])
def test_enqueue_at_in_the_past_runs_now(ago: timedelta) -> None:
    service, mock = mock_service()

    service.enqueue_at(count, 1, NOW - ago)

    assert mock.jobs[0].delay_seconds == 0


@pytest.mark.parametrize("delay", [-1, -0.001, timedelta(seconds=-1), math.nan])
def test_negative_delay_is_a_value_error_and_nothing_is_sent(delay: float | timedelta) -> None:
    service, mock = mock_service()

    with pytest.raises(ValueError, match="delay"):
        service.enqueue_in(count, 1, delay)
    with pytest.raises(ValueError, match="delay"):
        service.enqueue(count, 1, delay=delay)

    assert mock.jobs == []


# --- queues -------------------------------------------------------------------

queued: Job[int] = define_job(name="queued", handler=_take_int, payload=int, queue="job-queue")


def test_no_queue_anywhere_leaves_it_to_the_driver() -> None:
    spy = SpyDriver()
    service = make_service(spy)
    mock_svc, mock = mock_service()

    service.enqueue(count, 1)
    mock_svc.enqueue(count, 1)

    assert spy.sent[0].queue is None
    assert mock.jobs[0].queue == "default"


def test_default_queue_is_used_for_jobs_without_one() -> None:
    service, mock = mock_service(default_queue="service-queue")

    service.enqueue(count, 1)

    assert mock.jobs[0].queue == "service-queue"
    assert mock.jobs[0].message.queue == "service-queue"


def test_job_queue_beats_the_default_queue() -> None:
    service, mock = mock_service(default_queue="service-queue")

    service.enqueue(queued, 1)

    assert mock.jobs[0].queue == "job-queue"


def test_explicit_queue_beats_the_job_queue() -> None:
    service, mock = mock_service(default_queue="service-queue")

    service.enqueue(queued, 1, queue="explicit")
    service.enqueue_in(queued, 2, 5, queue="explicit-in")
    service.enqueue_at(queued, 3, NOW, queue="explicit-at")

    assert [j.queue for j in mock.jobs] == ["explicit", "explicit-in", "explicit-at"]
    assert len(mock.receive("explicit")) == 1
    assert mock.receive("job-queue") == []


def test_batch_items_go_to_their_own_queues() -> None:
    service, mock = mock_service(default_queue="service-queue")
    items: list[tuple[Job[int], int]] = [(queued, 1), (count, 2)]

    service.enqueue_batch(items)

    assert [j.queue for j in mock.jobs] == ["job-queue", "service-queue"]


# --- on_enqueued --------------------------------------------------------------


def test_on_enqueued_is_called_once_per_job_with_message_and_result() -> None:
    seen: list[tuple[JobMessage, EnqueueResult]] = []
    service, mock = mock_service(on_enqueued=lambda m, r: seen.append((m, r)))

    result = service.enqueue(count, 7, metadata={"k": "v"})

    [(message, got)] = seen
    assert got is result
    assert message is mock.jobs[0].message
    assert (message.job_name, message.payload, message.job_id) == ("count", 7, result.job_id)


def test_on_enqueued_is_called_per_batch_item_in_order() -> None:
    seen: list[tuple[object, str]] = []
    service, _ = mock_service(on_enqueued=lambda m, r: seen.append((m.payload, r.job_id)))

    results = service.enqueue_batch([(count, 1), (count, 2), (count, 3)])

    assert seen == [(1, results[0].job_id), (2, results[1].job_id), (3, results[2].job_id)]


def test_on_enqueued_is_not_called_when_the_driver_fails() -> None:
    seen: list[JobMessage] = []
    mock = MockQueueDriver()
    service = make_service(mock, on_enqueued=lambda m, r: seen.append(m))
    mock.simulate_failure(ThrottledError("slow down"))

    with pytest.raises(ThrottledError):
        service.enqueue(count, 1)

    assert seen == []


def test_on_enqueued_exception_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def explode(message: JobMessage, result: EnqueueResult) -> None:
        raise RuntimeError("hook broke")

    service, mock = mock_service(on_enqueued=explode)

    with caplog.at_level(logging.ERROR, logger="glasswork.service"):
        result = service.enqueue(count, 1)
        batch = service.enqueue_batch([(count, 2), (count, 3)])

    assert result.job_id == "id-1"
    assert [r.job_id for r in batch] == ["id-2", "id-3"]
    assert [j.payload for j in mock.jobs] == [1, 2, 3]
    hook_records = [r for r in caplog.records if r.name == "glasswork.service"]
    assert len(hook_records) == 3
    for record, job_id in zip(hook_records, ["id-1", "id-2", "id-3"], strict=True):
        assert record.levelno == logging.ERROR
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], RuntimeError)
        assert "count" in record.getMessage()
        assert job_id in record.getMessage()


# --- drivers ------------------------------------------------------------------


def test_enqueue_returns_what_the_driver_returned() -> None:
    spy = SpyDriver()
    service = make_service(spy)

    result = service.enqueue(count, 1)

    assert result == EnqueueResult(message_id="m-id-1", job_id="id-1")
    assert [m.payload for m in spy.sent] == [1]


def test_driver_without_enqueue_batch_gets_one_enqueue_per_message() -> None:
    spy = SpyDriver()
    service = make_service(spy)

    results = service.enqueue_batch([(count, 1), (count, 2), (count, 3)])

    assert spy.calls == 3
    assert [m.payload for m in spy.sent] == [1, 2, 3]
    assert [r.message_id for r in results] == ["m-id-1", "m-id-2", "m-id-3"]


def test_driver_with_enqueue_batch_gets_one_call() -> None:
    spy = BatchSpyDriver()
    service = make_service(spy)

    results = service.enqueue_batch([(count, 1), (count, 2)])

    assert [[m.payload for m in batch] for batch in spy.batches] == [[1, 2]]
    assert spy.single == []
    assert [r.message_id for r in results] == ["b-id-1", "b-id-2"]


def test_empty_batch_sends_nothing() -> None:
    spy = BatchSpyDriver()
    plain = SpyDriver()

    assert make_service(spy).enqueue_batch([]) == []
    assert make_service(plain).enqueue_batch([]) == []
    assert spy.batches == []
    assert plain.calls == 0


def test_vendor_error_is_wrapped_in_driver_error_with_cause() -> None:
    boom = ConnectionError("socket closed")
    spy = SpyDriver(fail=lambda m: boom)
    service = make_service(spy)

    with pytest.raises(DriverError) as caught:
        service.enqueue(count, 1)

    assert caught.value.__cause__ is boom
    assert "spy" in str(caught.value)
    assert "count" in str(caught.value)


def test_glasswork_error_from_the_driver_is_raised_unchanged() -> None:
    throttled = ThrottledError("slow down")
    spy = SpyDriver(fail=lambda m: throttled)
    service = make_service(spy)

    with pytest.raises(ThrottledError) as caught:
        service.enqueue(count, 1)

    assert caught.value is throttled


def test_vendor_error_from_enqueue_batch_is_wrapped_with_cause() -> None:
    boom = OSError("network down")
    service = make_service(BatchSpyDriver(error=boom))

    with pytest.raises(DriverError) as caught:
        service.enqueue_batch([(count, 1), (count, 2)])

    assert caught.value.__cause__ is boom


def test_batch_enqueue_error_from_enqueue_batch_is_raised_unchanged() -> None:
    error = BatchEnqueueError(succeeded=[], failed=[])
    service = make_service(BatchSpyDriver(error=error))

    with pytest.raises(BatchEnqueueError) as caught:
        service.enqueue_batch([(count, 1)])

    assert caught.value is error


def test_fallback_failure_lists_exactly_the_failed_entries() -> None:
    boom = RuntimeError("entry 2 refused")
    throttled = ThrottledError("entry 4 throttled")
    failures: dict[object, BaseException] = {2: boom, 4: throttled}
    spy = SpyDriver(fail=lambda m: failures.get(m.payload))
    notified: list[object] = []
    service = make_service(spy, on_enqueued=lambda m, r: notified.append(m.payload))

    with pytest.raises(BatchEnqueueError) as caught:
        service.enqueue_batch([(count, n) for n in range(1, 6)])

    error = caught.value
    assert isinstance(error, DriverError)
    assert spy.calls == 5
    assert [r.job_id for r in error.succeeded] == ["id-1", "id-3", "id-5"]
    assert [r.message_id for r in error.succeeded] == ["m-id-1", "m-id-3", "m-id-5"]
    assert [(m.payload, m.job_id) for m, _ in error.failed] == [(2, "id-2"), (4, "id-4")]
    wrapped, passed = error.failed[0][1], error.failed[1][1]
    assert isinstance(wrapped, DriverError)
    assert wrapped.__cause__ is boom
    assert passed is throttled
    assert "2 of 5" in str(error)
    assert notified == [1, 3, 5]


def test_on_enqueued_is_called_for_sent_entries_of_a_partial_driver_batch() -> None:
    class PartialBatchDriver(BatchSpyDriver):
        def enqueue_batch(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
            first, second = messages
            sent = EnqueueResult(message_id="b-1", job_id=first.job_id)
            raise BatchEnqueueError(succeeded=[sent], failed=[(second, DriverError("refused"))])

    notified: list[str] = []
    service = make_service(
        PartialBatchDriver(),
        on_enqueued=lambda m, r: notified.append(r.job_id),
    )

    with pytest.raises(BatchEnqueueError):
        service.enqueue_batch([(count, 1), (count, 2)])

    assert notified == ["id-1"]


# --- the wire body ------------------------------------------------------------


def test_wire_body_is_exactly_the_typescript_shape() -> None:
    spy = SpyDriver()
    service = make_service(spy)

    service.enqueue(send_email, Email(to="a@example.com", subject="hi"))

    assert spy.sent[0].body == (
        '{"jobName":"send_email","payload":{"to":"a@example.com","subject":"hi"},'
        f'"jobId":"id-1","enqueuedAt":"{NOW_ISO}"}}'
    )


def test_wire_body_with_metadata_ends_with_it() -> None:
    service, mock = mock_service()

    service.enqueue(count, 3, metadata={"tenant": "t1"})

    body = mock.jobs[0].message.body
    assert body == (
        f'{{"jobName":"count","payload":3,"jobId":"id-1","enqueuedAt":"{NOW_ISO}",'
        '"metadata":{"tenant":"t1"}}'
    )
    assert list(json.loads(body)) == ["jobName", "payload", "jobId", "enqueuedAt", "metadata"]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC), "2026-01-02T03:04:05.678Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC), "2026-01-02T03:04:05.999Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 1_000, tzinfo=UTC), "2026-01-02T03:04:05.001Z"),
        (
            datetime(2026, 1, 2, 1, 0, 0, 5_000, tzinfo=timezone(timedelta(hours=-3))),
            "2026-01-02T04:00:00.005Z",
        ),
        (datetime(2025, 12, 31, 23, 59, 59, 250_000), "2025-12-31T23:59:59.250Z"),
    ],
    ids=["truncates-micros", "never-rounds-up", "zero-millis", "one-milli", "offset", "naive-utc"],
)
def test_enqueued_at_is_formatted_like_js_to_iso_string(now: datetime, expected: str) -> None:
    spy = SpyDriver()
    service = make_service(spy, now=now)

    service.enqueue(count, 1)

    assert json.loads(spy.sent[0].body)["enqueuedAt"] == expected


def test_wire_body_decodes_back_to_the_same_job() -> None:
    service, mock = mock_service()

    service.enqueue(keyed, Email(to="a@example.com", subject="s"), metadata={"k": "v"})

    envelope = decode_message(mock.jobs[0].message.body)
    assert envelope.job_name == "keyed"
    assert envelope.job_id == "mail-a@example.com"
    assert envelope.enqueued_at == datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    assert msgspec.json.decode(envelope.payload, type=Email) == Email(to="a@example.com", subject="s")
    assert envelope.metadata == {"k": "v"}


def test_message_builds_without_sending() -> None:
    spy = SpyDriver()
    service = make_service(spy, default_queue="q")

    message = service.message(count, 5, delay=3, metadata={"a": "b"})

    assert spy.calls == 0
    assert (message.job_name, message.payload, message.job_id) == ("count", 5, "id-1")
    assert (message.queue, message.delay_seconds, message.metadata) == ("q", 3, {"a": "b"})
    assert message.enqueued_at == NOW


def test_a_batch_of_different_jobs_is_sent_as_prebuilt_messages_in_order() -> None:
    service, mock = mock_service()
    messages = [
        service.message(count, 7),
        service.message(send_email, Email(to="a@example.com", subject="hi")),
        service.message(count, 8),
    ]
    results = service.enqueue_batch(messages)
    assert [r.job_id for r in results] == [m.job_id for m in messages]
    assert [(j.name, j.payload) for j in mock.jobs] == [
        ("count", 7),
        ("send_email", Email(to="a@example.com", subject="hi")),
        ("count", 8),
    ]
