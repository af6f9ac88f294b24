"""One case per row of DESIGN.md's decision table, end to end through the worker.

Each case runs a one-record (or FIFO) batch through `bootstrap_worker` with a
`MockQueueDriver` and checks the disposition, the batch response, what the
driver was asked to do and the hooks that fired, in order. The worker's
jitter is fixed at 1 (the top of the full-jitter range), so a backoff is its
ceiling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import msgspec
import pytest

from glasswork import (
    Backoff,
    JobContext,
    JobExecution,
    MockQueueDriver,
    Module,
    PermanentJobError,
    RetryExhaustedError,
    RetryPolicy,
    TransientJobError,
    WorkerHooks,
    bootstrap_worker,
    classify_error,
    decide_retry,
    define_job,
)
from glasswork.core import (
    DEFAULT_BACKOFF,
    DEFAULT_POLICY,
    DeadLetter,
    Retry,
    RetrySpec,
    backoff_delay,
)
from glasswork.errors import InvalidJobPayloadError, MalformedMessageError, UnknownJobError
from glasswork.testing import FakeLambdaContext, job_body, sqs_event, sqs_record


class Order(msgspec.Struct, frozen=True):
    order_id: int


def succeed(payload: Order, ctx: JobContext) -> None:
    pass


def transient(payload: Order, ctx: JobContext) -> None:
    raise ConnectionError("database unreachable")


def permanent(payload: Order, ctx: JobContext) -> None:
    raise PermanentJobError("order was cancelled")


def value_error(payload: Order, ctx: JobContext) -> None:
    raise ValueError("order 1 has no lines")


def key_error(payload: Order, ctx: JobContext) -> None:
    raise KeyError("sku-7")


class RateLimitedError(TransientJobError, ValueError):
    """A transient error of the application's own that is also a `ValueError`."""


def rate_limited(payload: Order, ctx: JobContext) -> None:
    raise RateLimitedError("slow down")


def transient_job_error(payload: Order, ctx: JobContext) -> None:
    raise TransientJobError("try again")


@dataclass(frozen=True)
class Row:
    handler: Callable[[Order, JobContext], None] = succeed
    retry: RetrySpec = None
    permanent: tuple[type[BaseException], ...] = ()
    body: str = job_body("job", {"order_id": 1})
    attempt: int = 1
    disposition: str = "succeeded"
    hooks: tuple[str, ...] = ()
    reason: str | None = None
    error_type: type[BaseException] | None = None
    ran: bool = True
    visibility: tuple[int, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)


ROWS = {
    "handler returns: ack": Row(hooks=("start", "complete")),
    "transient, attempt < max: retry with the default backoff": Row(
        handler=transient, attempt=3, disposition="failed", hooks=("start", "failed"), visibility=(8,)
    ),
    "transient, attempt < max, backoff=None: retry with the queue's visibility timeout": Row(
        handler=transient,
        retry=RetryPolicy(backoff=None),
        attempt=3,
        disposition="failed",
        hooks=("start", "failed"),
    ),
    "transient, attempt >= max, dead: dead-letter with RetryExhaustedError": Row(
        handler=transient,
        retry=3,
        attempt=3,
        disposition="dead_lettered",
        hooks=("start", "failed", "dead_letter"),
        reason="retries_exhausted",
        error_type=RetryExhaustedError,
    ),
    "transient, attempt >= max, not dead: discard": Row(
        handler=transient,
        retry=RetryPolicy(max_attempts=2, dead=False),
        attempt=2,
        disposition="discarded",
        hooks=("start", "failed"),
    ),
    "permanent, dead: dead-letter now": Row(
        handler=permanent,
        attempt=1,
        disposition="dead_lettered",
        hooks=("start", "failed", "dead_letter"),
        reason="permanent_error",
        error_type=PermanentJobError,
    ),
    "permanent, retry=False: discard": Row(
        handler=permanent, retry=False, disposition="discarded", hooks=("start", "failed")
    ),
    "permanent, dead=False: discard": Row(
        handler=permanent,
        retry=RetryPolicy(dead=False),
        disposition="discarded",
        hooks=("start", "failed"),
    ),
    "permanent_errors match, dead: dead-letter now": Row(
        handler=value_error,
        permanent=(ValueError, KeyError),
        disposition="dead_lettered",
        hooks=("start", "failed", "dead_letter"),
        reason="permanent_error",
        error_type=ValueError,
    ),
    "permanent_errors match, retry=False: discard": Row(
        handler=key_error,
        retry=False,
        permanent=(ValueError, KeyError),
        disposition="discarded",
        hooks=("start", "failed"),
    ),
    "permanent_errors match, dead=False: discard": Row(
        handler=value_error,
        retry=RetryPolicy(dead=False),
        permanent=(ValueError,),
        attempt=2,
        disposition="discarded",
        hooks=("start", "failed"),
    ),
    "permanent_errors: a subclass matches": Row(
        handler=key_error,
        permanent=(LookupError,),
        disposition="dead_lettered",
        hooks=("start", "failed", "dead_letter"),
        reason="permanent_error",
        error_type=KeyError,
    ),
    "permanent_errors: another error stays transient": Row(
        handler=transient,
        permanent=(ValueError, KeyError),
        attempt=2,
        disposition="failed",
        hooks=("start", "failed"),
        visibility=(4,),
    ),
    "permanent_errors: an explicit TransientJobError of a matching type stays transient": Row(
        handler=rate_limited,
        permanent=(ValueError,),
        disposition="failed",
        hooks=("start", "failed"),
        visibility=(2,),
    ),
    "permanent_errors=(Exception,): a TransientJobError stays transient": Row(
        handler=transient_job_error,
        permanent=(Exception,),
        disposition="failed",
        hooks=("start", "failed"),
        visibility=(2,),
    ),
    "permanent_errors: a transient error past max attempts is still exhausted": Row(
        handler=transient,
        retry=2,
        permanent=(ValueError,),
        attempt=2,
        disposition="dead_lettered",
        hooks=("start", "failed", "dead_letter"),
        reason="retries_exhausted",
        error_type=RetryExhaustedError,
    ),
    "body not JSON: dead-letter as poison, no hooks": Row(
        body="{not json",
        disposition="dead_lettered",
        reason="poison_message",
        error_type=MalformedMessageError,
        ran=False,
    ),
    "body not a job message: dead-letter as poison, no hooks": Row(
        body='{"hello": "world"}',
        disposition="dead_lettered",
        reason="poison_message",
        error_type=MalformedMessageError,
        ran=False,
    ),
    "poison body naming a known job: dead_letter hook": Row(
        body='{"jobName": "job", "payload": {"order_id": 1}, "jobId": 42}',
        disposition="dead_lettered",
        hooks=("dead_letter",),
        reason="poison_message",
        error_type=MalformedMessageError,
        ran=False,
    ),
    "payload fails the type: dead-letter, handler not run": Row(
        body=job_body("job", {"order_id": "one"}),
        disposition="dead_lettered",
        hooks=("failed", "dead_letter"),
        reason="invalid_payload",
        error_type=InvalidJobPayloadError,
        ran=False,
    ),
    "payload fails the type, retry=False: discard": Row(
        body=job_body("job", {"order_id": "one"}),
        retry=False,
        disposition="discarded",
        hooks=("failed",),
        ran=False,
    ),
    "payload fails the type, permanent_errors=(ValueError,): still invalid_payload": Row(
        body=job_body("job", {"order_id": "one"}),
        permanent=(ValueError,),
        disposition="dead_lettered",
        hooks=("failed", "dead_letter"),
        reason="invalid_payload",
        error_type=InvalidJobPayloadError,
        ran=False,
    ),
    "poison body, permanent_errors=(ValueError,): still poison": Row(
        body='{"jobName": "job", "payload": {"order_id": 1}, "jobId": 42}',
        permanent=(ValueError,),
        disposition="dead_lettered",
        hooks=("dead_letter",),
        reason="poison_message",
        error_type=MalformedMessageError,
        ran=False,
    ),
    "job not registered, attempt < 25: retry, no hooks": Row(
        body=job_body("renamed_job", {"order_id": 1}), attempt=24, disposition="failed", ran=False
    ),
    "job not registered, attempt 25: dead-letter": Row(
        body=job_body("renamed_job", {"order_id": 1}),
        attempt=25,
        disposition="dead_lettered",
        reason="unknown_job",
        error_type=UnknownJobError,
        ran=False,
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_decision_table_row(row: Row) -> None:
    calls: list[str] = []
    errors: list[BaseException] = []

    def handler(payload: Order, ctx: JobContext) -> None:
        calls.append("run")
        row.handler(payload, ctx)

    def on(name: str) -> Callable[..., None]:
        def hook(job: JobExecution, ctx: JobContext, error: BaseException | None = None) -> None:
            calls.append(name)
            if error is not None:
                errors.append(error)

        return hook

    driver = MockQueueDriver()
    job = define_job(
        name="job", handler=handler, payload=Order, retry=row.retry, permanent_errors=row.permanent
    )
    worker = bootstrap_worker(
        module=Module(name="app", jobs=[job]),
        driver=driver,
        jitter=lambda: 1.0,
        hooks=WorkerHooks(
            on_job_start=on("start"),
            on_job_complete=on("complete"),
            on_job_failed=on("failed"),
            on_job_dead_letter=on("dead_letter"),
        ),
    )
    record = sqs_record(row.body, message_id="m-1", receive_count=row.attempt)

    response = worker(sqs_event([record]), FakeLambdaContext())

    expected_failures = [{"itemIdentifier": "m-1"}] if row.disposition == "failed" else []
    assert response == {"batchItemFailures": expected_failures}
    hooks = [c for c in calls if c != "run"]
    assert hooks == list(row.hooks)
    assert ("run" in calls) == row.ran
    if row.disposition == "dead_lettered":
        assert [(d.message_id, d.reason, d.attempt) for d in driver.dead_letters] == [
            ("m-1", row.reason, row.attempt)
        ]
        assert driver.dead_letters[0].body == row.body
        assert row.error_type is not None
        assert driver.dead_letters[0].error_type == row.error_type.__name__
    else:
        assert driver.dead_letters == []
    assert [c.seconds for c in driver.visibility_changes] == list(row.visibility)


def test_exhausted_error_keeps_the_original_as_its_cause() -> None:
    seen: list[BaseException] = []
    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=transient, payload=Order, retry=2)]),
        driver=MockQueueDriver(),
        hooks=WorkerHooks(on_job_dead_letter=lambda job, ctx, error: seen.append(error)),
    )
    worker(sqs_event([sqs_record(job_body("job", {"order_id": 1}), receive_count=2)]))
    [error] = seen
    assert isinstance(error, RetryExhaustedError)
    assert (error.job_name, error.attempt_number, error.max_attempts) == ("job", 2, 2)
    assert isinstance(error.__cause__, ConnectionError)


DELAYS = {
    "retry_after seconds": (TransientJobError("busy", retry_after=42), None, 0.5, [42]),
    "retry_after timedelta, rounded up": (
        TransientJobError("busy", retry_after=timedelta(seconds=1.2)),
        None,
        0.5,
        [2],
    ),
    "retry_after clamped to 12 hours": (
        TransientJobError("busy", retry_after=timedelta(days=3)),
        None,
        0.5,
        [43_200],
    ),
    "backoff with full jitter": (ConnectionError("x"), Backoff(base=10, factor=2, max=1_000), 0.5, [10]),
    "backoff capped by max": (ConnectionError("x"), Backoff(base=10, factor=10, max=60), 1.0, [60]),
    "no backoff: the queue's visibility timeout": (ConnectionError("x"), None, 0.5, []),
}


@pytest.mark.parametrize(("error", "backoff", "jitter", "expected"), DELAYS.values(), ids=DELAYS.keys())
def test_retry_delay_is_applied_through_the_driver(
    error: BaseException, backoff: Backoff | None, jitter: float, expected: list[int]
) -> None:
    def fail(payload: Order, ctx: JobContext) -> None:
        raise error

    driver = MockQueueDriver()
    worker = bootstrap_worker(
        module=Module(
            name="app",
            jobs=[define_job(name="job", handler=fail, payload=Order, retry=RetryPolicy(backoff=backoff))],
        ),
        driver=driver,
        jitter=lambda: jitter,
    )
    response = worker(
        sqs_event([sqs_record(job_body("job", {"order_id": 1}), message_id="m-1", receive_count=2)])
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert [(c.message_id, c.seconds) for c in driver.visibility_changes] == [("m-1", s) for s in expected]


DEFAULT_DELAYS = {
    # attempt n waits uniform(0, min(900, 2 * 2**(n-1))) seconds, rounded up; the 25th dead-letters
    0.0: [0] * 24,
    0.5: [1, 2, 4, 8, 16, 32, 64, 128, 256] + [450] * 15,
    1.0: [2, 4, 8, 16, 32, 64, 128, 256, 512] + [900] * 15,
}


@pytest.mark.parametrize(
    ("jitter", "expected"), DEFAULT_DELAYS.items(), ids=[f"jitter {j}" for j in DEFAULT_DELAYS]
)
def test_the_default_policy_backs_off_exponentially_with_full_jitter(
    jitter: float, expected: list[int]
) -> None:
    policy = define_job(name="job", handler=transient).retry
    assert policy == DEFAULT_POLICY
    assert (policy.max_attempts, policy.dead, policy.backoff) == (25, True, DEFAULT_BACKOFF)

    decisions = [
        decide_retry(ConnectionError("down"), attempt=n, policy=policy, jitter=jitter, job_name="job")
        for n in range(1, 26)
    ]

    assert [d.delay for d in decisions[:-1] if isinstance(d, Retry)] == expected
    assert isinstance(decisions[-1], DeadLetter)
    assert decisions[-1].reason == "retries_exhausted"


def test_the_default_policy_spends_at_most_about_four_hours() -> None:
    waits = [backoff_delay(DEFAULT_BACKOFF, n, 1.0) for n in range(1, DEFAULT_POLICY.max_attempts)]
    assert sum(waits) == 14_522  # about 4 h at the ceiling, 2 h on average: far inside SQS's 4-day retention


def test_a_default_retry_is_applied_through_the_driver() -> None:
    driver = MockQueueDriver()
    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=transient, payload=Order)]),
        driver=driver,
        jitter=lambda: 0.5,
    )
    records = [
        sqs_record(job_body("job", {"order_id": n}), message_id=f"m-{n}", receive_count=n) for n in (1, 4, 12)
    ]
    worker(sqs_event(records))
    assert [(c.message_id, c.seconds) for c in driver.visibility_changes] == [
        ("m-1", 1),
        ("m-4", 8),
        ("m-12", 450),
    ]


CLASSIFIED = {
    "plain error": (ValueError("x"), (), "transient"),
    "PermanentJobError": (PermanentJobError("x"), (), "permanent"),
    "InvalidJobPayloadError": (InvalidJobPayloadError("x", job_name="job"), (ValueError,), "permanent"),
    "TransientJobError": (TransientJobError("x"), (), "transient"),
    "listed type": (ValueError("x"), (KeyError, ValueError), "permanent"),
    "subclass of a listed type": (KeyError("x"), (LookupError,), "permanent"),
    "type not listed": (ConnectionError("x"), (ValueError,), "transient"),
    "explicit TransientJobError of a listed type": (RateLimitedError("x"), (ValueError,), "transient"),
    "TransientJobError under Exception": (TransientJobError("x"), (Exception,), "transient"),
    "CancelledError under BaseException": (asyncio.CancelledError(), (BaseException,), "permanent"),
}


@pytest.mark.parametrize(("error", "permanent", "kind"), CLASSIFIED.values(), ids=CLASSIFIED.keys())
def test_classify_error_and_decide_retry_agree_on_permanent_errors(
    error: BaseException, permanent: tuple[type[BaseException], ...], kind: str
) -> None:
    assert classify_error(error, permanent) == kind
    assert classify_error(error, permanent=permanent) == kind
    if not permanent:
        assert classify_error(error) == kind  # the one-argument call of before
    decision = decide_retry(error, attempt=1, policy=DEFAULT_POLICY, permanent=permanent)
    assert isinstance(decision, Retry) == (kind == "transient")
    if kind == "permanent":
        assert isinstance(decision, DeadLetter)
        reason = "invalid_payload" if isinstance(error, InvalidJobPayloadError) else "permanent_error"
        assert (decision.reason, decision.error) == (reason, error)


def test_fifo_group_stops_after_its_first_failure_and_others_go_on() -> None:
    ran: list[int] = []

    def handler(payload: Order, ctx: JobContext) -> None:
        ran.append(payload.order_id)
        if payload.order_id == 2:
            raise ConnectionError("down")

    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=MockQueueDriver(),
    )
    records = [
        sqs_record(job_body("job", {"order_id": n}), message_id=f"m-{n}", group_id=group)
        for n, group in [(1, "a"), (2, "a"), (3, "b"), (4, "a"), (5, "b")]
    ]
    response = worker(sqs_event(records))
    assert ran == [1, 2, 3, 5]
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}, {"itemIdentifier": "m-4"}]}


def test_fifo_dead_lettered_or_discarded_record_does_not_block_its_group() -> None:
    ran: list[int] = []

    def handler(payload: Order, ctx: JobContext) -> None:
        ran.append(payload.order_id)
        if payload.order_id in (1, 2):
            raise PermanentJobError("bad order")

    driver = MockQueueDriver()
    worker = bootstrap_worker(
        module=Module(
            name="app",
            jobs=[
                define_job(name="dead", handler=handler, payload=Order),
                define_job(name="gone", handler=handler, payload=Order, retry=False),
            ],
        ),
        driver=driver,
    )
    records = [
        sqs_record(job_body("dead", {"order_id": 1}), message_id="m-1", group_id="g"),
        sqs_record(job_body("gone", {"order_id": 2}), message_id="m-2", group_id="g"),
        sqs_record(job_body("dead", {"order_id": 3}), message_id="m-3", group_id="g"),
    ]
    assert worker(sqs_event(records)) == {"batchItemFailures": []}
    assert ran == [1, 2, 3]
    assert [d.message_id for d in driver.dead_letters] == ["m-1"]


def test_fifo_failed_dead_letter_send_blocks_the_group() -> None:
    ran: list[int] = []

    def handler(payload: Order, ctx: JobContext) -> None:
        ran.append(payload.order_id)
        raise PermanentJobError("bad order")

    driver = MockQueueDriver()
    driver.simulate_failure(ConnectionError("DLQ unreachable"))
    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=driver,
    )
    records = [
        sqs_record(job_body("job", {"order_id": n}), message_id=f"m-{n}", group_id="g") for n in (1, 2)
    ]
    assert worker(sqs_event(records)) == {
        "batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]
    }
    assert ran == [1]
    assert driver.dead_letters == []


def test_record_not_started_when_lambda_time_is_nearly_out() -> None:
    ran: list[int] = []
    remaining = [5_000]

    def handler(payload: Order, ctx: JobContext) -> None:
        ran.append(payload.order_id)
        remaining[0] -= 2_000

    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=MockQueueDriver(),
        time_margin=timedelta(milliseconds=1_500),
    )
    records = [sqs_record(job_body("job", {"order_id": n}), message_id=f"m-{n}") for n in (1, 2, 3, 4)]
    response = worker(sqs_event(records), FakeLambdaContext(lambda: remaining[0]))
    assert ran == [1, 2]
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-3"}, {"itemIdentifier": "m-4"}]}


def test_dead_letter_send_failure_reports_the_record_failed_and_skips_the_hook() -> None:
    dead: list[str] = []
    driver = MockQueueDriver()
    driver.simulate_failure(ConnectionError("DLQ unreachable"))
    worker = bootstrap_worker(
        module=Module(name="app", jobs=[define_job(name="job", handler=permanent, payload=Order)]),
        driver=driver,
        hooks=WorkerHooks(on_job_dead_letter=lambda job, ctx, error: dead.append(job.job_id)),
    )
    response = worker(sqs_event([sqs_record(job_body("job", {"order_id": 1}), message_id="m-1")]))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert dead == []
    response = worker(
        sqs_event([sqs_record(job_body("job", {"order_id": 1}), message_id="m-1", receive_count=2)])
    )
    assert response == {"batchItemFailures": []}
    assert dead == ["job-1"]
    assert [d.message_id for d in driver.dead_letters] == ["m-1"]
