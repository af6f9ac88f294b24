"""Hypothesis properties of the decision table and the worker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from glasswork import (
    Backoff,
    Job,
    JobContext,
    MockQueueDriver,
    Module,
    PermanentJobError,
    RetryPolicy,
    TransientJobError,
    bootstrap_worker,
    classify_error,
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
from glasswork.testing import sqs_record
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


class RateLimitedError(TransientJobError, ValueError):
    """A transient error that is also a `ValueError`: it stays transient whatever the job lists."""


# Types a generated job may list in `permanent_errors` (never a TransientJobError: define_job refuses it).
PERMANENT_CHOICES: Final[tuple[type[BaseException], ...]] = (
    ValueError,
    KeyError,
    LookupError,
    ConnectionError,
    Exception,
    BaseException,
    PermanentJobError,
)
permanent_errors = st.lists(st.sampled_from(PERMANENT_CHOICES), max_size=3).map(tuple)


def is_permanent(error: BaseException, listed: tuple[type[BaseException], ...]) -> bool:
    """The oracle, written apart from `classify_error`: the rules in `glasswork.core`'s docstring."""
    if isinstance(error, PermanentJobError):
        return True
    if isinstance(error, TransientJobError):
        return False
    return any(isinstance(error, kind) for kind in listed)


@given(
    policy=policies,
    attempt=st.integers(1, 40),
    jitter=st.floats(0, 1),
    error=st.sampled_from(
        [
            ValueError("x"),
            KeyError("k"),
            ConnectionError("c"),
            RateLimitedError("r"),
            asyncio.CancelledError(),
            TransientJobError("t"),
            TransientJobError("t", retry_after=10**9),
            PermanentJobError("p"),
        ]
    ),
    permanent=permanent_errors,
)
def test_decide_retry_follows_the_table(
    policy: RetryPolicy,
    attempt: int,
    jitter: float,
    error: BaseException,
    permanent: tuple[type[BaseException], ...],
) -> None:
    decision = decide_retry(
        error, attempt=attempt, policy=policy, jitter=jitter, job_name="j", permanent=permanent
    )
    exhausted = attempt >= policy.max_attempts
    assert classify_error(error, permanent) == (
        "permanent" if is_permanent(error, permanent) else "transient"
    )
    if is_permanent(error, permanent) or exhausted:
        assert isinstance(decision, DeadLetter if policy.dead else Discard)
        assert decision.reason == (
            "permanent_error" if is_permanent(error, permanent) else "retries_exhausted"
        )
    else:
        assert isinstance(decision, Retry)
        assert decision.delay is None or 0 <= decision.delay <= MAX_DELAY_SECONDS
        if policy.backoff is None and not isinstance(error, TransientJobError):
            assert decision.delay is None
        if policy.backoff is not None and not isinstance(error, TransientJobError):
            assert decision.delay == backoff_delay(policy.backoff, attempt, jitter)
            assert decision.delay <= min(to_seconds(policy.backoff.max), MAX_DELAY_SECONDS)


# --- generated jobs, some with permanent_errors, against an oracle of the table ------------------

RAISES: Final[dict[str, BaseException | None]] = {
    "nothing": None,
    "value": ValueError("bad order"),
    "key": KeyError("sku"),
    "connection": ConnectionError("down"),
    "rate_limited": RateLimitedError("slow down"),
    "transient": TransientJobError("later"),
    "permanent": PermanentJobError("never"),
    "cancelled": asyncio.CancelledError(),
}


class Raise(msgspec.Struct, frozen=True):
    error: str


def raise_as_told(payload: Raise, ctx: JobContext) -> None:
    error = RAISES[payload.error]
    if error is not None:
        raise error


@dataclass(frozen=True)
class Spec:
    """A generated job: its policy and the types it lists as permanent."""

    policy: RetryPolicy
    permanent: tuple[type[BaseException], ...]

    def job(self, name: str) -> Job[Raise]:
        return define_job(
            name=name,
            handler=raise_as_told,
            payload=Raise,
            retry=self.policy,
            permanent_errors=self.permanent,
        )


@dataclass(frozen=True)
class Sent:
    """A generated record: which job, what it raises, its receive count and FIFO group."""

    job: int
    error: str
    attempt: int
    group: str | None


specs = st.builds(Spec, policy=policies, permanent=permanent_errors)
sents = st.builds(
    Sent,
    job=st.integers(0, 3),
    error=st.sampled_from(sorted(RAISES)),
    attempt=st.integers(1, 30),
    group=st.none() | st.sampled_from(["a", "b"]),
)


def expected_outcome(spec: Spec, sent: Sent, jitter: float) -> tuple[str, int | None]:
    """(disposition, backoff applied) of a record whose group is not blocked: the table, by hand."""
    error = RAISES[sent.error]
    policy = spec.policy
    if error is None:
        return "succeeded", None
    if is_permanent(error, spec.permanent) or sent.attempt >= policy.max_attempts:
        return ("dead_lettered" if policy.dead else "discarded"), None
    if policy.backoff is None:
        return "failed", None
    return "failed", backoff_delay(policy.backoff, sent.attempt, jitter)


@given(
    jobs=st.lists(specs, min_size=4, max_size=4),
    sent=st.lists(sents, max_size=12),
    jitter=st.floats(0, 1),
)
def test_generated_jobs_with_permanent_errors_settle_as_the_table_says(
    jobs: list[Spec], sent: list[Sent], jitter: float
) -> None:
    driver = MockQueueDriver()
    defined = [spec.job(f"j{index}") for index, spec in enumerate(jobs)]
    worker = bootstrap_worker(
        module=Module(name="generated", jobs=defined), driver=driver, jitter=lambda: jitter
    )
    records = [
        sqs_record(
            msgspec.json.encode({"jobName": f"j{s.job}", "payload": {"error": s.error}}).decode(),
            message_id=f"m-{index}",
            receive_count=s.attempt,
            group_id=s.group,
        )
        for index, s in enumerate(sent)
    ]

    report = run_batch(worker, records)

    blocked: set[str] = set()
    expected: list[tuple[str, str]] = []
    backoffs: list[tuple[str, int]] = []
    for index, s in enumerate(sent):
        message_id = f"m-{index}"
        if s.group is not None and s.group in blocked:
            expected.append((message_id, "failed"))
            continue
        disposition, delay = expected_outcome(jobs[s.job], s, jitter)
        expected.append((message_id, disposition))
        if delay is not None:
            backoffs.append((message_id, delay))
        if disposition == "failed" and s.group is not None:
            blocked.add(s.group)
    assert [(d.message_id, d.disposition) for d in report.settled] == expected  # each record once, in order
    failed = [f["itemIdentifier"] for f in report.response()["batchItemFailures"]]
    assert failed == [m for m, d in expected if d == "failed"]
    assert set(failed) <= {r.message_id for r in records}
    assert [(c.message_id, c.seconds) for c in driver.visibility_changes] == backoffs
    for change in driver.visibility_changes:
        spec = jobs[sent[int(change.message_id.removeprefix("m-"))].job]
        assert spec.policy.backoff is not None
        assert 0 <= change.seconds <= min(to_seconds(spec.policy.backoff.max), MAX_DELAY_SECONDS)
    assert [d.message_id for d in driver.dead_letters] == [m for m, d in expected if d == "dead_lettered"]
    for dead in driver.dead_letters:
        s = sent[int(dead.message_id.removeprefix("m-"))]
        error = RAISES[s.error]
        assert error is not None
        permanent = is_permanent(error, jobs[s.job].permanent)
        assert dead.reason == ("permanent_error" if permanent else "retries_exhausted")


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
