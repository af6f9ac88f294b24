"""Hypothesis properties of the decision table and the worker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from glasswork import (
    Backoff,
    JobContext,
    MockQueueDriver,
    Module,
    PermanentJobError,
    RetryPolicy,
    TransientJobError,
    bootstrap_worker,
    decide_retry,
    define_job,
)
from glasswork._wire import (
    JobMessage,
    SQSRecord,
    encode_message,
    enqueued_time,
)
from glasswork.core import (
    MAX_DELAY_SECONDS,
    DeadLetter,
    Discard,
    Retry,
    backoff_delay,
    decode_message,
    to_seconds,
)
from glasswork.worker import BatchReport, Worker
from tests.strategies import backoffs, batches, messages, policies


class Work(msgspec.Struct, frozen=True):
    behaviour: Literal["succeed", "transient", "permanent", "retry_after"]
    n: int


def run(payload: Work, ctx: JobContext) -> None:
    match payload.behaviour:
        case "transient":
            raise ConnectionError("flaky network")
        case "permanent":
            raise PermanentJobError("cannot ever work")
        case "retry_after":
            raise TransientJobError("later", retry_after=payload.n)
        case "succeed":
            pass


async def run_async(payload: Work, ctx: JobContext) -> None:
    run(payload, ctx)


def module(handler: object) -> Module:
    return Module(
        name="props",
        jobs=[
            define_job(name="ok", handler=handler, payload=Work),  # type: ignore[arg-type]  # sync or async
            define_job(name="transient", handler=handler, payload=Work, retry=3),  # type: ignore[arg-type]
            define_job(name="permanent", handler=handler, payload=Work, retry=False),  # type: ignore[arg-type]
            define_job(
                name="flaky",
                handler=handler,  # type: ignore[arg-type]
                payload=Work,
                retry=RetryPolicy(max_attempts=5, dead=False, backoff=Backoff(base=1, max=60)),
            ),
        ],
    )


def run_batch(worker: Worker, records: list[SQSRecord]) -> BatchReport:
    return worker.process_batch({"Records": [msgspec.to_builtins(r) for r in records]})


@given(records=batches(), dlq_failures=st.integers(0, 3))
def test_every_record_is_settled_exactly_once(records: list[SQSRecord], dlq_failures: int) -> None:
    driver = MockQueueDriver()
    driver.simulate_failure(ConnectionError("DLQ down"), times=dlq_failures)
    worker = bootstrap_worker(module=module(run), driver=driver, jitter=lambda: 0.5)
    report = run_batch(worker, records)
    ids = [r.message_id for r in records]
    assert [s.message_id for s in report.settled] == ids
    assert {s.disposition for s in report.settled} <= {"succeeded", "failed", "dead_lettered", "discarded"}
    response = report.response()
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert failed == report.ids("failed")
    assert set(failed) <= set(ids)
    assert len(failed) == len(set(failed))
    assert sorted(d.message_id for d in driver.dead_letters) == sorted(report.ids("dead_lettered"))


@given(records=batches(fifo=True))
def test_a_fifo_group_stops_after_its_first_failure(records: list[SQSRecord]) -> None:
    worker = bootstrap_worker(module=module(run), driver=MockQueueDriver())
    report = run_batch(worker, records)
    stopped: set[str] = set()
    for settled in report.settled:
        group = settled.result.record.attributes.message_group_id
        assert group is not None
        if group in stopped:
            assert settled.disposition == "failed"
            assert not settled.result.ran
        if settled.disposition == "failed":
            stopped.add(group)


@given(records=batches())
def test_async_jobs_settle_exactly_as_sync_jobs(records: list[SQSRecord]) -> None:
    sync = run_batch(
        bootstrap_worker(module=module(run), driver=MockQueueDriver(), jitter=lambda: 0.3), records
    )
    concurrent = run_batch(
        bootstrap_worker(
            module=module(run_async), driver=MockQueueDriver(), jitter=lambda: 0.3, max_concurrency=3
        ),
        records,
    )
    assert [(s.message_id, s.disposition) for s in concurrent.settled] == [
        (s.message_id, s.disposition) for s in sync.settled
    ]


@given(backoff=backoffs, attempt=st.integers(1, 10_000), jitter=st.floats(0, 1))
def test_backoff_never_exceeds_the_cap(backoff: Backoff, attempt: int, jitter: float) -> None:
    delay = backoff_delay(backoff, attempt, jitter)
    assert 0 <= delay <= min(to_seconds(backoff.max), MAX_DELAY_SECONDS)


@given(backoff=backoffs, attempt=st.integers(1, 200), jitter=st.floats(0, 1))
def test_backoff_does_not_decrease_with_attempts(backoff: Backoff, attempt: int, jitter: float) -> None:
    assert backoff_delay(backoff, attempt, jitter) <= backoff_delay(backoff, attempt + 1, jitter)


@given(
    policy=policies,
    attempt=st.integers(1, 40),
    jitter=st.floats(0, 1),
    error=st.sampled_from(
        [
            ValueError("x"),
            TransientJobError("t"),
            TransientJobError("t", retry_after=10**9),
            PermanentJobError("p"),
        ]
    ),
)
def test_decide_retry_follows_the_table(
    policy: RetryPolicy, attempt: int, jitter: float, error: BaseException
) -> None:
    decision = decide_retry(error, attempt=attempt, policy=policy, jitter=jitter, job_name="j")
    exhausted = attempt >= policy.max_attempts
    if isinstance(error, PermanentJobError) or exhausted:
        assert isinstance(decision, DeadLetter if policy.dead else Discard)
    else:
        assert isinstance(decision, Retry)
        assert decision.delay is None or 0 <= decision.delay <= MAX_DELAY_SECONDS
        if policy.backoff is None and not isinstance(error, TransientJobError):
            assert decision.delay is None


@given(message=messages)
def test_wire_encode_decode_round_trips(message: JobMessage) -> None:
    envelope = decode_message(encode_message(message))
    assert envelope.job_name == message.job_name
    assert envelope.job_id == message.job_id
    assert msgspec.json.decode(envelope.payload) == msgspec.to_builtins(message.payload)
    assert (envelope.metadata or {}) == message.metadata
    truncated = message.enqueued_at.replace(microsecond=message.enqueued_at.microsecond // 1000 * 1000)
    assert enqueued_time(envelope.enqueued_at) == truncated.astimezone(UTC)


def test_a_body_written_by_glasswork_for_typescript_decodes() -> None:
    body = (
        '{"jobName":"send-welcome-email","payload":{"userId":"u_123","locale":"en-GB"},'
        '"jobId":"6f1c1a52-2d0e-4d4c-9a0c-1a8f1f7f3e21","enqueuedAt":"2025-06-01T12:34:56.789Z",'
        '"metadata":{"traceId":"1-5f84c7a5-2c5e"}}'
    )
    envelope = decode_message(body)
    assert envelope.job_name == "send-welcome-email"
    assert envelope.job_id == "6f1c1a52-2d0e-4d4c-9a0c-1a8f1f7f3e21"
    assert envelope.enqueued_at == datetime(2025, 6, 1, 12, 34, 56, 789_000, tzinfo=UTC)
    assert enqueued_time(envelope.enqueued_at) == datetime(2025, 6, 1, 12, 34, 56, 789_000, tzinfo=UTC)
    assert envelope.metadata == {"traceId": "1-5f84c7a5-2c5e"}
    assert msgspec.json.decode(envelope.payload) == {"userId": "u_123", "locale": "en-GB"}
