"""The worker shell: hooks, concurrency, invocations, malformed events and logging."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
import pytest

from glasswork import (
    Job,
    JobContext,
    JobExecution,
    MockQueueDriver,
    Module,
    PermanentJobError,
    RetryPolicy,
    TransientJobError,
    WorkerHooks,
    bootstrap_worker,
    define_job,
    define_periodic_job,
)
from glasswork.errors import InvalidEventError, InvalidJobPayloadError, UnknownJobError
from glasswork.testing import FakeLambdaContext, job_body, sqs_event, sqs_record


class Order(msgspec.Struct, frozen=True):
    order_id: int


def ok(payload: Order, ctx: JobContext) -> None:
    pass


def body(n: int, name: str = "job") -> str:
    return job_body(name, {"order_id": n}, job_id=f"job-{n}")


HOOK_NAMES = ("on_job_start", "on_job_complete", "on_job_failed", "on_job_dead_letter")


@pytest.mark.parametrize("failing", HOOK_NAMES)
@pytest.mark.parametrize("asynchronous", [False, True], ids=["def", "async def"])
def test_a_raising_hook_is_logged_and_changes_nothing(
    failing: str, asynchronous: bool, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError(f"{failing} is broken")

    async def boom_async(*args: object) -> None:
        raise RuntimeError(f"{failing} is broken")

    def handler(payload: Order, ctx: JobContext) -> None:
        if payload.order_id == 2:
            raise ConnectionError("retry me")
        if payload.order_id == 3:
            raise PermanentJobError("dead")

    driver = MockQueueDriver()
    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=driver,
        hooks=WorkerHooks(**{failing: boom_async if asynchronous else boom}),
    )
    records = [sqs_record(body(n), message_id=f"m-{n}") for n in (1, 2, 3)]
    with caplog.at_level(logging.ERROR, logger="glasswork.worker"):
        response = worker(sqs_event(records))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    assert [d.message_id for d in driver.dead_letters] == ["m-3"]
    assert any(f"{failing} is broken" in (r.exc_text or "") for r in caplog.records)


def test_async_hooks_run_in_order_for_sync_jobs() -> None:
    seen: list[str] = []

    async def start(job: JobExecution, ctx: JobContext) -> None:
        await asyncio.sleep(0)
        seen.append(f"start {job.job_id}")

    async def complete(job: JobExecution, ctx: JobContext) -> None:
        seen.append(f"complete {job.job_id}")

    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=ok, payload=Order)]),
        driver=MockQueueDriver(),
        hooks=WorkerHooks(on_job_start=start, on_job_complete=complete),
    )
    worker(sqs_event([sqs_record(body(1)), sqs_record(body(2))]))
    assert seen == ["start job-1", "complete job-1", "start job-2", "complete job-2"]


@pytest.mark.parametrize(("bound", "size"), [(1, 4), (3, 10), (10, 10)])
def test_async_jobs_run_concurrently_up_to_the_bound(bound: int, size: int) -> None:
    active = 0
    peak = 0

    async def handler(payload: Order, ctx: JobContext) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        for _ in range(3):
            await asyncio.sleep(0)
        active -= 1

    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=MockQueueDriver(),
        max_concurrency=bound,
    )
    response = worker(sqs_event([sqs_record(body(n)) for n in range(size)]))
    assert response == {"batchItemFailures": []}
    assert peak == min(bound, size)


def test_async_fifo_group_runs_in_order_one_at_a_time() -> None:
    events: list[str] = []

    async def handler(payload: Order, ctx: JobContext) -> None:
        events.append(f"start {payload.order_id}")
        await asyncio.sleep(0)
        events.append(f"end {payload.order_id}")

    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=MockQueueDriver(),
    )
    records = [sqs_record(body(n), group_id="g" if n < 3 else "h") for n in range(5)]
    worker(sqs_event(records))
    group_g = [e for e in events if e.split()[1] in {"0", "1", "2"}]
    assert group_g == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]


def test_context_carries_the_job_and_lambda_details() -> None:
    seen: list[JobContext] = []

    def handler(payload: Order, ctx: JobContext) -> None:
        seen.append(ctx)

    lambda_context = FakeLambdaContext(12_345)
    worker = bootstrap_worker(
        module=Module(
            name="app",
            jobs=[define_job(name="job", handler=handler, payload=Order)],
            services={"clock": lambda: "the clock"},
        ),
        driver=MockQueueDriver(),
    )
    text = job_body("job", {"order_id": 1}, job_id="j-9", metadata={"tenant": "acme"})
    worker(sqs_event([sqs_record(text, message_id="m-9", receive_count=4)]), lambda_context)
    [ctx] = seen
    assert (ctx.job_id, ctx.job_name, ctx.attempt_number, ctx.message_id) == ("j-9", "job", 4, "m-9")
    assert ctx.enqueued_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert ctx.metadata == {"tenant": "acme"}
    assert ctx.services.clock == "the clock"
    assert ctx.lambda_context is lambda_context
    assert ctx.remaining_time_ms() == 12_345


def test_a_hand_written_body_without_id_or_time_runs() -> None:
    seen: list[tuple[str, datetime]] = []

    def handler(payload: Order, ctx: JobContext) -> None:
        seen.append((ctx.job_id, ctx.enqueued_at))

    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=MockQueueDriver(),
    )
    record = sqs_record('{"jobName": "job", "payload": {"order_id": 1}}', message_id="m-1", sent_timestamp=0)
    assert worker(sqs_event([record])) == {"batchItemFailures": []}
    assert seen == [("m-1", datetime(1970, 1, 1, tzinfo=UTC))]


def test_a_warm_worker_keeps_no_state_between_batches() -> None:
    def handler(payload: Order, ctx: JobContext) -> None:
        if payload.order_id == 1:
            raise ConnectionError("once")

    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=MockQueueDriver(),
    )
    first = worker(sqs_event([sqs_record(body(1), message_id="m-1", group_id="g")]))
    second = worker(sqs_event([sqs_record(body(2), message_id="m-2", group_id="g")]))
    assert first == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert second == {"batchItemFailures": []}


def test_empty_batch() -> None:
    worker = bootstrap_worker(module=Module(name="app"), driver=MockQueueDriver())
    assert worker({"Records": []}) == {"batchItemFailures": []}


def test_malformed_records_are_poison_or_skipped_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    """A record with an id but an unreadable body is poison; one without an id cannot be reported."""
    driver = MockQueueDriver()
    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=ok, payload=Order)]),
        driver=driver,
    )
    good = msgspec.to_builtins(sqs_record(body(1), message_id="good"))
    event = {"Records": [good, {"messageId": "bad", "body": 42}, {"body": "no id"}, "junk"]}
    with caplog.at_level(logging.ERROR, logger="glasswork.worker"):
        assert worker(event) == {"batchItemFailures": []}
    assert [(d.message_id, d.reason) for d in driver.dead_letters] == [("bad", "poison_message")]
    assert sum("no usable messageId" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize(
    ("event", "needle"),
    [
        ({"Records": [{"eventSource": "aws:s3", "s3": {}}]}, "eventSource 'aws:s3'"),
        ({"Records": "nope"}, "'Records' is a list"),
        ({"hello": "world"}, "keys: hello"),
        ({"detail": {"other": 1}}, "keys: detail"),
        (["not", "a", "dict"], "got list"),
    ],
)
def test_an_event_that_is_neither_sqs_nor_a_job_gets_a_clear_error(event: object, needle: str) -> None:
    worker = bootstrap_worker(module=Module(name="app"), driver=MockQueueDriver())
    with pytest.raises(InvalidEventError, match="expected an SQS event") as info:
        worker(event, None)  # type: ignore[arg-type]
    assert needle in str(info.value)


@pytest.mark.parametrize(
    "event",
    [
        {"jobName": "job", "payload": {"order_id": 7}},
        {
            "detail": {"jobName": "job", "payload": {"order_id": 7}},
            "id": "evt-1",
            "time": "2026-01-01T00:00:00Z",
        },
        {"detail-type": "Scheduled Event", "detail": {"name": "job", "payload": {"order_id": 7}}},
    ],
    ids=["top level", "EventBridge detail", "detail.name"],
)
def test_a_direct_invocation_runs_the_job_once(event: dict[str, object]) -> None:
    seen: list[int] = []

    def handler(payload: Order, ctx: JobContext) -> None:
        seen.append(payload.order_id)

    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=MockQueueDriver(),
    )
    result = worker(event, FakeLambdaContext())
    assert seen == [7]
    assert result["status"] == "succeeded"
    assert result["jobName"] == "job"


def test_a_direct_invocation_raises_the_job_error_so_lambda_retries() -> None:
    failed: list[BaseException] = []

    def handler(payload: None, ctx: JobContext) -> None:
        raise TransientJobError("try later")

    worker = bootstrap_worker(
        module=Module(
            name="app", jobs=[define_periodic_job(name="nightly", handler=handler, schedule="rate(1 day)")]
        ),
        driver=MockQueueDriver(),
        hooks=WorkerHooks(on_job_failed=lambda job, ctx, error: failed.append(error)),
    )
    with pytest.raises(TransientJobError, match="try later"):
        worker({"detail-type": "Scheduled Event", "detail": {"jobName": "nightly"}})
    assert len(failed) == 1


def test_a_direct_invocation_of_an_unknown_job_or_bad_payload_is_a_glasswork_error() -> None:
    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=ok, payload=Order)]),
        driver=MockQueueDriver(),
    )
    with pytest.raises(UnknownJobError, match="unknown job 'nope' \\(known: job\\)"):
        worker({"jobName": "nope"})
    with pytest.raises(InvalidJobPayloadError, match="order_id"):
        worker({"jobName": "job", "payload": {"order_id": "x"}})


def test_a_direct_invocation_of_an_async_job() -> None:
    seen: list[int] = []

    async def handler(payload: Order, ctx: JobContext) -> None:
        await asyncio.sleep(0)
        seen.append(payload.order_id)

    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=MockQueueDriver(),
    )
    worker({"jobName": "job", "payload": {"order_id": 3}})
    assert seen == [3]


def test_visibility_change_failure_is_logged_and_the_record_stays_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(payload: Order, ctx: JobContext) -> None:
        raise TransientJobError("later", retry_after=30)

    driver = MockQueueDriver()
    driver.simulate_failure(ConnectionError("SQS unreachable"))
    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=driver,
    )
    with caplog.at_level(logging.WARNING, logger="glasswork.worker"):
        response = worker(sqs_event([sqs_record(body(1), message_id="m-1")]))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert any("could not change visibility" in r.getMessage() for r in caplog.records)


def _outcome_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "glasswork.worker" and hasattr(r, "outcome")]


def test_one_structured_log_record_per_outcome(caplog: pytest.LogCaptureFixture) -> None:
    def handler(payload: Order, ctx: JobContext) -> None:
        if payload.order_id == 2:
            raise PermanentJobError("secret payload must not be logged")

    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=MockQueueDriver(),
    )
    with caplog.at_level(logging.DEBUG, logger="glasswork.worker"):
        worker(sqs_event([sqs_record(body(1), message_id="m-1"), sqs_record(body(2), message_id="m-2")]))
    logs = _outcome_logs(caplog)
    fields = [
        (r.job_name, r.job_id, r.message_id, r.attempt, r.outcome)  # type: ignore[attr-defined]
        for r in logs
    ]
    assert fields == [("job", "job-1", "m-1", 1, "succeeded"), ("job", "job-2", "m-2", 1, "dead_lettered")]
    assert [r.levelno for r in logs] == [logging.DEBUG, logging.ERROR]
    assert all(isinstance(r.duration_ms, float) for r in logs)  # type: ignore[attr-defined]
    assert all('"order_id"' not in r.getMessage() for r in logs)


def test_successes_are_not_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=ok, payload=Order)]),
        driver=MockQueueDriver(),
    )
    with caplog.at_level(logging.INFO, logger="glasswork.worker"):
        worker(sqs_event([sqs_record(body(1))]))
    assert _outcome_logs(caplog) == []


def test_ctx_logger_carries_job_fields(caplog: pytest.LogCaptureFixture) -> None:
    def handler(payload: Order, ctx: JobContext) -> None:
        ctx.logger.info("working on %s", payload.order_id)

    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=MockQueueDriver(),
    )
    with caplog.at_level(logging.INFO, logger="glasswork.job"):
        worker(sqs_event([sqs_record(body(5), message_id="m-5")]))
    [record] = [r for r in caplog.records if r.name == "glasswork.job"]
    assert record.getMessage() == "working on 5"
    assert (record.job_id, record.job_name, record.message_id) == ("job-5", "job", "m-5")  # type: ignore[attr-defined]


def test_bootstrap_rejects_bad_options() -> None:
    from glasswork.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="max_concurrency"):
        bootstrap_worker(module=Module(name="app"), max_concurrency=0)
    with pytest.raises(ConfigurationError, match="time_margin"):
        bootstrap_worker(module=Module(name="app"), time_margin=-1)
    with pytest.raises(ConfigurationError, match="expected a glasswork Module"):
        bootstrap_worker(module="app")  # type: ignore[arg-type]


def test_handler_is_a_plain_callable() -> None:
    worker = bootstrap_worker(module=Module(name="app"), driver=MockQueueDriver())
    handler: Callable[[dict[str, object], object], dict[str, object]] = worker
    assert handler({"Records": []}, None) == {"batchItemFailures": []}


def test_a_job_renamed_with_replace_answers_to_its_new_name_only() -> None:
    """A job's one-pass body type is tagged with its name: a renamed copy does not answer to the old one."""
    ran: list[object] = []
    original: Job[object] = define_job(name="old", handler=lambda payload, ctx: ran.append(payload))
    renamed = msgspec.structs.replace(original, name="new")
    worker = bootstrap_worker(module=Module(name="app", jobs=[renamed]), driver=MockQueueDriver())
    event = sqs_event(
        [sqs_record(job_body("old", 1), message_id="a"), sqs_record(job_body("new", 2), message_id="b")]
    )

    assert worker(event) == {"batchItemFailures": [{"itemIdentifier": "a"}]}
    assert ran == [2]


@pytest.mark.parametrize(
    ("enqueued_at", "expected"),
    [
        ("2026-01-01T00:00:00.000Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T02:00:00+02:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
    ],
)
def test_enqueued_at_is_rfc3339_or_the_body_is_poison(enqueued_at: str, expected: datetime | None) -> None:
    """`enqueuedAt` is decoded with the body: a time without a zone is UTC; anything else is poison."""
    seen: list[datetime] = []
    driver = MockQueueDriver()
    job: Job[object] = define_job(name="job", handler=lambda payload, ctx: seen.append(ctx.enqueued_at))
    worker = bootstrap_worker(module=Module(name="app", jobs=[job]), driver=driver)
    body = json.dumps({"jobName": "job", "payload": None, "enqueuedAt": enqueued_at})

    assert worker(sqs_event([sqs_record(body, message_id="m")])) == {"batchItemFailures": []}
    if expected is None:
        assert seen == []
        assert [d.reason for d in driver.dead_letters] == ["poison_message"]
    else:
        assert seen == [expected]


# --- the redrive check: once per source queue, at its first failure ----------------------


def _later(payload: Order, ctx: JobContext) -> None:
    if payload.order_id < 0:
        raise ConnectionError("database unreachable")


REDRIVE_JOBS = (
    define_job(name="send", handler=_later, payload=Order),  # 25 attempts
    define_job(name="sync", handler=_later, payload=Order, retry=12),
    define_job(name="quick", handler=_later, payload=Order, retry=3),
    define_job(name="once", handler=_later, payload=Order, retry=False),
    define_job(name="plain", handler=_later, payload=Order, retry=RetryPolicy(max_attempts=25, backoff=None)),
)


class RedriveRecorder(MockQueueDriver):
    """A `MockQueueDriver` whose queues redrive after `max_receive_count` receives; notes each check."""

    def __init__(self, max_receive_count: int) -> None:
        super().__init__()
        self.max_receive_count = max_receive_count
        self.checks: list[tuple[str, int]] = []

    def check_redrive(self, queue_arn: str, max_attempts: int) -> str | None:
        self.checks.append((queue_arn, max_attempts))
        if max_attempts <= self.max_receive_count:
            return None
        return f"queue has maxReceiveCount={self.max_receive_count}, lower than max_attempts={max_attempts}"


def _redrive_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "glasswork.worker"
        and r.levelno == logging.WARNING
        and "maxReceiveCount" in r.getMessage()
    ]


def test_the_redrive_check_waits_for_the_first_failure_of_each_queue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver = RedriveRecorder(max_receive_count=10)
    worker = bootstrap_worker(module=Module(name="app", jobs=list(REDRIVE_JOBS)), driver=driver)
    remaining = [0]
    lambda_context = FakeLambdaContext(lambda: remaining[0])

    with caplog.at_level(logging.WARNING, logger="glasswork.worker"):
        assert driver.checks == []  # bootstrap touched nothing
        worker(sqs_event([sqs_record(body(1, "send"), message_id="ok")]))
        worker(sqs_event([sqs_record(body(-1, "send"), message_id="late")]), lambda_context)  # deferred
        assert driver.checks == []  # a success and a record not run touch nothing either
        assert _redrive_warnings(caplog) == []

        # `plain` retries at the queue's visibility timeout: no backoff, no dead letter, no driver
        # needed for the record; the check runs all the same (SQS could redrive it first).
        response = worker(sqs_event([sqs_record(body(-1, "plain"), message_id="m-1")]))
        assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
        assert driver.visibility_changes == []
        jobs_arn = "arn:aws:sqs:us-east-1:123456789012:jobs"
        assert {arn for arn, _ in driver.checks} == {jobs_arn}
        [warning] = _redrive_warnings(caplog)
        assert "maxReceiveCount=10" in warning
        assert "'plain' (25), 'send' (25), 'sync' (12)" in warning
        assert "quick" not in warning
        assert "once" not in warning

        checked = len(driver.checks)
        worker(sqs_event([sqs_record(body(-1, "send"), message_id="m-2", receive_count=2)]))
        assert len(driver.checks) == checked  # once per source queue
        assert len(_redrive_warnings(caplog)) == 1

        worker(sqs_event([sqs_record(body(-1, "quick"), message_id="m-3", queue="reports")]))
        reports_arn = "arn:aws:sqs:us-east-1:123456789012:reports"
        assert {arn for arn, _ in driver.checks[checked:]} == {reports_arn}
        assert len(_redrive_warnings(caplog)) == 2


def test_no_redrive_warning_when_the_queue_allows_every_attempt(caplog: pytest.LogCaptureFixture) -> None:
    driver = RedriveRecorder(max_receive_count=35)
    worker = bootstrap_worker(module=Module(name="app", jobs=list(REDRIVE_JOBS)), driver=driver)
    with caplog.at_level(logging.WARNING, logger="glasswork.worker"):
        worker(sqs_event([sqs_record(body(-1, "send"), message_id="m-1")]))
    assert driver.checks  # checked at the first failure
    assert _redrive_warnings(caplog) == []


def test_an_unreadable_redrive_policy_is_said_as_the_driver_says_it(caplog: pytest.LogCaptureFixture) -> None:
    class Unreadable(MockQueueDriver):
        def check_redrive(self, queue_arn: str, max_attempts: int) -> str | None:
            return f"could not read the RedrivePolicy of {queue_arn} (AccessDenied)"

    worker = bootstrap_worker(module=Module(name="app", jobs=list(REDRIVE_JOBS)), driver=Unreadable())
    with caplog.at_level(logging.WARNING, logger="glasswork.worker"):
        worker(sqs_event([sqs_record(body(-1, "send"), message_id="m-1")]))
    warnings = [r.getMessage() for r in caplog.records if "RedrivePolicy" in r.getMessage()]
    assert warnings == [
        "could not read the RedrivePolicy of arn:aws:sqs:us-east-1:123456789012:jobs (AccessDenied)"
    ]


@pytest.fixture
def moto_sqs(moto_reset: str) -> Any:
    """A real boto3 SQS client on the moto server (real HTTP), without botocore's own retries."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=moto_reset,
        config=Config(retries={"total_max_attempts": 1}),
    )


def _queue(sqs: Any, name: str, *, dead_letter_arn: str | None = None, max_receive_count: int = 0) -> str:
    attributes = {"VisibilityTimeout": "30"}
    if dead_letter_arn is not None:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": str(max_receive_count)}
        )
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


@pytest.mark.sqs
def test_the_redrive_warning_against_sqs_fires_once_per_queue_at_the_first_failure(
    moto_sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from glasswork import JobService
    from glasswork.drivers.sqs import SQSQueueDriver

    dlq = _queue(moto_sqs, "jobs-dlq")
    dlq_arn = moto_sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    _queue(moto_sqs, "jobs", dead_letter_arn=dlq_arn, max_receive_count=10)
    _queue(moto_sqs, "reports", dead_letter_arn=dlq_arn, max_receive_count=30)
    calls: list[str] = []
    moto_sqs.meta.events.register("before-call.sqs", lambda model, **_: calls.append(model.name))
    driver = SQSQueueDriver(client=moto_sqs)
    module = Module(name="app", jobs=list(REDRIVE_JOBS))

    def run(queue: str, *order_ids: int) -> dict[str, object]:
        service = JobService(driver, default_queue=queue)
        for order_id in order_ids:
            service.enqueue(REDRIVE_JOBS[0], Order(order_id=order_id))
        records = driver.receive(queue, max_messages=10)
        assert len(records) == len(order_ids)
        del calls[:]
        return worker(sqs_event(records))

    with caplog.at_level(logging.WARNING, logger="glasswork.worker"):
        worker = bootstrap_worker(module=module, driver=driver, jitter=lambda: 1.0)
        assert calls == []  # bootstrap makes no request

        assert run("jobs", 1, 2) == {"batchItemFailures": []}
        assert calls == []  # successes: no redrive check (Lambda deletes them)
        assert _redrive_warnings(caplog) == []

        response = run("jobs", 3, -1)
        assert len(cast("list[object]", response["batchItemFailures"])) == 1
        assert "GetQueueAttributes" in calls  # the RedrivePolicy, read at the first failure
        [warning] = _redrive_warnings(caplog)
        assert "queue 'jobs' has RedrivePolicy maxReceiveCount=10" in warning
        assert "'plain' (25), 'send' (25), 'sync' (12)" in warning
        assert "'quick'" not in warning
        assert "'once'" not in warning

        run("jobs", -2)
        assert "GetQueueAttributes" not in calls  # checked once per queue
        assert len(_redrive_warnings(caplog)) == 1

        run("reports", -3)
        assert len(_redrive_warnings(caplog)) == 1  # 30 receives: above every job's attempts
