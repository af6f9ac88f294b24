"""`AsyncJobService`: the loop never blocks, and it enqueues exactly as `JobService` does.

pytest-asyncio is not a dependency: each test drives its coroutine with
`asyncio.run`.

The loop's freedom is measured with a ticker task that sleeps 1 ms at a time
on the same loop and records every gap between its ticks while 200 enqueues
run, each driver call held `HOLD` seconds in the thread that makes it. A loop
that made those calls itself would tick at most once per call, each time
after a gap of at least `HOLD` (the control, one `JobService.enqueue` on the
loop, shows it). `assert_never_blocked` asks for the opposite: many ticks,
99% of gaps under 50 ms, gaps of `HOLD` or more rarer than one per ten calls
(on a shared 2-CPU machine an idle loop already misses its tick by 40-70 ms
now and then), and, directly, every call made on a pool thread.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast

import boto3
import msgspec
import pytest
from botocore.config import Config
from hypothesis import given
from hypothesis import strategies as st
from mypy_boto3_sqs import SQSClient

from glasswork import (
    AsyncJobService,
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
from glasswork.async_service import DEFAULT_MAX_WORKERS, POOL_THREAD_PREFIX
from glasswork.drivers.base import AsyncQueueDriver, BatchQueueDriver, QueueDriver
from glasswork.drivers.sqlite import SQLiteQueueDriver
from glasswork.drivers.sqs import SQSQueueDriver
from glasswork.errors import (
    BatchEnqueueError,
    ConfigurationError,
    DriverError,
    GlassworkError,
    ThrottledError,
)
from glasswork.testing_strategies import invalid_payloads, json_values

NOW: Final = datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
POOL_THREAD: Final = POOL_THREAD_PREFIX
MAX_GAP: Final = 0.050
"""The 99th percentile of the 1 ms ticker's gaps while enqueueing must stay under this."""
HOLD: Final = 0.150
"""How long each driver call of the ticker tests is held, in the thread that makes it."""


class Email(msgspec.Struct, frozen=True, kw_only=True):
    to: str
    subject: str = ""


def _take_email(payload: Email, ctx: JobContext) -> None:
    pass


def _take_int(payload: int, ctx: JobContext) -> None:
    pass


def _take_str(payload: str, ctx: JobContext) -> None:
    pass


def _take_any(payload: object, ctx: JobContext) -> None:
    pass


def _take_ints(payload: list[int], ctx: JobContext) -> None:
    pass


send_email: Job[Email] = define_job(name="send_email", handler=_take_email, payload=Email)
count: Job[int] = define_job(name="count", handler=_take_int, payload=int)
blob: Job[str] = define_job(name="blob", handler=_take_str, payload=str)
untyped: Job[object] = define_job(name="untyped", handler=_take_any)
numbers: Job[list[int]] = define_job(name="numbers", handler=_take_ints, payload=list[int])
keyed: Job[Email] = define_job(
    name="keyed", handler=_take_email, payload=Email, unique=lambda e: f"mail-{e.to}", queue="mail"
)
bad_key: Job[int] = define_job(name="bad_key", handler=_take_int, payload=int, unique=lambda n: n)  # type: ignore[arg-type, return-value]  # unique must return a str: the error is tested


def ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"id-{next(counter)}"


def loose(job: Job[Any]) -> Job[Any]:
    """The job typed loosely, to pass payloads its type refuses."""
    return job


class SpyDriver:
    """A sending-only driver (no `enqueue_batch`) that records the messages and the threads it ran in."""

    name = "spy"

    def __init__(self, fail: Callable[[JobMessage], BaseException | None] | None = None) -> None:
        self.sent: list[JobMessage] = []
        self.threads: set[str] = set()
        self._fail = fail

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        self.threads.add(threading.current_thread().name)
        if self._fail is not None:
            error = self._fail(message)
            if error is not None:
                raise error
        self.sent.append(message)
        return EnqueueResult(message_id=f"m-{message.job_id}", job_id=message.job_id)


class BatchSpyDriver(SpyDriver):
    """A driver with `enqueue_batch`, which may raise `error` (then nothing is recorded)."""

    name = "batch-spy"

    def __init__(self, error: BaseException | None = None) -> None:
        super().__init__()
        self.batches: list[list[JobMessage]] = []
        self._error = error

    def enqueue_batch(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        self.threads.add(threading.current_thread().name)
        if self._error is not None:
            raise self._error
        self.batches.append(list(messages))
        return [EnqueueResult(message_id=f"b-{m.job_id}", job_id=m.job_id) for m in messages]


class GateDriver(SpyDriver):
    """A driver whose `enqueue` waits for `release`, to cancel callers while a send is in its thread."""

    name = "gate"

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        self.started.set()
        if not self.release.wait(timeout=10):
            raise TimeoutError("the test never released the gate")
        return super().enqueue(message)


class NativeDriver(SpyDriver):
    """A driver with native async methods; its blocking `enqueue` must not be used by `AsyncJobService`."""

    name = "native"

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.native: list[JobMessage] = []
        self._error = error

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        raise AssertionError("the blocking enqueue was called")

    async def enqueue_async(self, message: JobMessage) -> EnqueueResult:
        await asyncio.sleep(0)
        if self._error is not None:
            raise self._error
        self.native.append(message)
        return EnqueueResult(message_id=f"n-{message.job_id}", job_id=message.job_id)

    async def enqueue_batch_async(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        return [await self.enqueue_async(m) for m in messages]


def async_service(driver: QueueDriver, **options: Any) -> AsyncJobService:
    """An `AsyncJobService` with a fixed clock and job ids `id-1`, `id-2`, ..."""
    return AsyncJobService(driver, clock=lambda: NOW, new_id=ids(), **options)


def sync_service(driver: QueueDriver, **options: Any) -> JobService:
    """A `JobService` set up as `async_service` sets up its twin."""
    return JobService(driver, clock=lambda: NOW, new_id=ids(), **options)


async def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Yield to the loop until `condition` holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {seconds} s")
        await asyncio.sleep(0.001)


# --- the ticker -----------------------------------------------------------------------


@pytest.fixture
def frozen_heap() -> Iterator[None]:
    """Move the objects the test session made so far out of the collector's way, for the test.

    A full collection of the ~90,000 objects pytest, Hypothesis and botocore
    hold takes 50-150 ms on a loaded machine, on whichever thread triggers it:
    a pause of the interpreter, not of the loop, that every asyncio app sees.
    The collector keeps running over what the test allocates.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class Ticker:
    """Ticks every 1 ms on the running loop, recording the gap between consecutive ticks."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._running = True
        self._task: asyncio.Task[None] | None = None

    @property
    def ticks(self) -> int:
        return len(self.gaps)

    @property
    def longest(self) -> float:
        return max(self.gaps)

    @property
    def p99(self) -> float:
        return sorted(self.gaps)[len(self.gaps) * 99 // 100]

    def stalls(self, seconds: float) -> int:
        """How many gaps lasted `seconds` or more."""
        return sum(gap >= seconds for gap in self.gaps)

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await wait_for(lambda: self.ticks >= 3)
        self.gaps.clear()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._running = False
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        last = time.perf_counter()
        while self._running:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.gaps.append(now - last)
            last = now

    def __str__(self) -> str:
        return (
            f"{self.ticks} ticks, longest gap {self.longest * 1000:.1f} ms, p99 {self.p99 * 1000:.1f} ms,"
            f" gaps >= {HOLD * 1000:.0f} ms: {self.stalls(HOLD)}"
        )


def assert_never_blocked(ticker: Ticker, *, calls: int) -> None:
    """What a loop that made `calls` driver calls of `HOLD` seconds itself could not show."""
    assert ticker.ticks >= 5 * calls  # a blocked loop: at most one tick per call
    assert ticker.p99 < MAX_GAP
    assert ticker.stalls(HOLD) <= calls // 10  # a blocked loop: one per call


async def idle_ticker(seconds: float) -> Ticker:
    """The ticker on an idle loop for `seconds`: the machine's own noise."""
    async with Ticker() as ticker:
        await asyncio.sleep(seconds)
    return ticker


async def timed(call: Awaitable[object], into: list[float]) -> None:
    start = time.perf_counter()
    await call
    into.append(time.perf_counter() - start)


def ms(seconds: Sequence[float]) -> str:
    ordered = sorted(seconds)
    low, median, high = (ordered[i] * 1000 for i in (0, len(ordered) // 2, -1))
    return f"min {low:.0f} / median {median:.0f} / max {high:.0f} ms"


# --- it never blocks the loop: SQS over real HTTP -------------------------------------


class SlowRequests:
    """Holds each SQS request `HOLD` s in the thread making it (`before-send`); times it, notes the thread."""

    def __init__(self, client: SQSClient) -> None:
        self.seconds: dict[str, list[float]] = {}
        self.threads: dict[str, list[str]] = {}
        self._starts: dict[int, float] = {}
        client.meta.events.register("before-call.sqs.*", self._before)
        client.meta.events.register("before-send.sqs.*", self._hold)
        client.meta.events.register("after-call.sqs.*", self._after)

    def _before(self, **_: object) -> None:
        self._starts[threading.get_ident()] = time.perf_counter()

    def _hold(self, **_: object) -> None:
        time.sleep(HOLD)

    def _after(self, event_name: str, **_: object) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        seconds = time.perf_counter() - self._starts.pop(threading.get_ident())
        self.seconds.setdefault(operation, []).append(seconds)
        self.threads.setdefault(operation, []).append(threading.current_thread().name)

    def sends(self) -> list[float]:
        """The durations of the `SendMessage` and `SendMessageBatch` requests."""
        return self.seconds.get("SendMessage", []) + self.seconds.get("SendMessageBatch", [])


@pytest.fixture
def sqs(moto_reset: str) -> SQSClient:
    """A real boto3 SQS client on the moto server, with as many connections as the service has threads."""
    return boto3.client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=moto_reset,
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=DEFAULT_MAX_WORKERS),
    )


@pytest.mark.sqs
@pytest.mark.usefixtures("frozen_heap")
def test_200_sqs_enqueues_never_block_the_loop(sqs: SQSClient, capsys: pytest.CaptureFixture[str]) -> None:
    url = sqs.create_queue(QueueName="async-ticks")["QueueUrl"]
    requests = SlowRequests(sqs)
    driver = SQSQueueDriver(queues={"default": url}, client=sqs)
    sent: list[str] = []
    singles_seconds: list[float] = []
    batch_seconds: list[float] = []
    loop_thread = threading.current_thread().name

    async def scenario() -> dict[str, Ticker]:
        tickers = {"idle": await idle_ticker(0.5)}
        async with AsyncJobService(driver, on_enqueued=lambda m, r: sent.append(r.job_id)) as service:
            async with Ticker() as tickers["200 concurrent enqueue"]:
                await asyncio.gather(*(timed(service.enqueue(count, n), singles_seconds) for n in range(200)))
            async with Ticker() as tickers["20 concurrent enqueue_batch of 10"]:
                await asyncio.gather(
                    *(
                        timed(service.enqueue_batch([(count, n) for n in range(k, k + 10)]), batch_seconds)
                        for k in range(0, 200, 10)
                    )
                )
            async with Ticker() as tickers["control: one JobService.enqueue on the loop"]:
                JobService(driver).enqueue(count, -1)
        return tickers

    tickers = asyncio.run(scenario())

    with capsys.disabled():
        print("\nAsyncJobService over moto SQS, each request held", f"{HOLD * 1000:.0f} ms:")
        for name, ticker in tickers.items():
            print(f"  {name}: {ticker}")
        print(f"  SQS send requests: {ms(requests.sends())} ({len(requests.sends())})")
        print(f"  await enqueue (200): {ms(singles_seconds)}; await enqueue_batch (20): {ms(batch_seconds)}")

    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "401"
    assert len(sent) == 400
    assert len(requests.seconds["SendMessage"]) == 200 + 1
    assert len(requests.seconds["SendMessageBatch"]) == 20
    assert min(requests.sends()) >= HOLD > MAX_GAP
    pool = {f"{POOL_THREAD}_{n}" for n in range(DEFAULT_MAX_WORKERS)}
    *enqueue_threads, control_thread = requests.threads["SendMessage"]
    assert control_thread == loop_thread
    assert set(enqueue_threads) == pool  # the pool's threads and no other
    assert set(requests.threads["SendMessageBatch"]) <= pool
    _, singles, batches, control = tickers.values()
    assert control.longest > HOLD  # the ticker sees a request made on the loop
    assert_never_blocked(singles, calls=200)
    assert_never_blocked(batches, calls=20)


# --- SQLite and the mock ----------------------------------------------------------------


class SlowSQLite(SQLiteQueueDriver):
    """The SQLite driver, each sending call held `HOLD` seconds; records the threads they ran in."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.threads: list[str] = []

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        self.threads.append(threading.current_thread().name)
        time.sleep(HOLD)
        return super().enqueue(message)

    def enqueue_batch(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        self.threads.append(threading.current_thread().name)
        time.sleep(HOLD)
        return super().enqueue_batch(messages)


@pytest.mark.usefixtures("frozen_heap")
def test_200_sqlite_enqueues_never_block_the_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    driver = SlowSQLite(tmp_path / "jobs.db")
    sent: list[str] = []

    async def scenario() -> tuple[Ticker, Ticker, list[EnqueueResult], list[list[EnqueueResult]]]:
        async with AsyncJobService(driver, on_enqueued=lambda m, r: sent.append(r.job_id)) as service:
            async with Ticker() as singles_ticker:
                singles = await asyncio.gather(*(service.enqueue(count, n) for n in range(200)))
            async with Ticker() as batches_ticker:
                batches = await asyncio.gather(
                    *(
                        service.enqueue_batch([(count, n) for n in range(k, k + 10)])
                        for k in range(0, 200, 10)
                    )
                )
        return singles_ticker, batches_ticker, list(singles), list(batches)

    try:
        singles_ticker, batches_ticker, singles, batches = asyncio.run(scenario())
        counts = driver.counts()
    finally:
        driver.close()

    with capsys.disabled():
        print(f"\nAsyncJobService over SQLite, each call held {HOLD * 1000:.0f} ms:")
        print(f"  200 concurrent enqueue: {singles_ticker}")
        print(f"  20 concurrent enqueue_batch of 10: {batches_ticker}")
    assert counts.visible == 400
    assert len({r.message_id for r in singles}) == 200
    assert [len(b) for b in batches] == [10] * 20
    assert sorted(sent) == sorted([r.job_id for r in singles] + [r.job_id for b in batches for r in b])
    assert len(driver.threads) == 220
    assert set(driver.threads) == {f"{POOL_THREAD}_{n}" for n in range(DEFAULT_MAX_WORKERS)}
    assert_never_blocked(singles_ticker, calls=200)
    assert_never_blocked(batches_ticker, calls=20)


class ThreadedMock(MockQueueDriver):
    """The mock driver, recording the threads its sending methods run in."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        self.threads.add(threading.current_thread().name)
        return super().enqueue(message)


def test_mock_driver_records_every_method_in_order() -> None:
    mock = ThreadedMock()

    async def scenario() -> list[EnqueueResult]:
        async with async_service(mock, default_queue="jobs") as service:
            return [
                await service.enqueue(count, 1, metadata={"k": "v"}),
                await service.enqueue_in(count, 2, timedelta(seconds=90)),
                await service.enqueue_at(count, 3, NOW + timedelta(minutes=5)),
                await service.enqueue_at(count, 4, datetime(2000, 1, 1)),  # naive and past: now
                *await service.enqueue_batch([(count, 5), (count, 6)]),
                *await service.enqueue_batch(
                    [service.message(send_email, Email(to="a@example.com")), service.message(count, 7)]
                ),
                await service.enqueue(keyed, Email(to="b@example.com")),
            ]

    results = asyncio.run(scenario())

    assert [j.payload for j in mock.jobs] == [
        1,
        2,
        3,
        4,
        5,
        6,
        Email(to="a@example.com"),
        7,
        Email(to="b@example.com"),
    ]
    assert [j.delay_seconds for j in mock.jobs] == [0, 90, 300, 0, 0, 0, 0, 0, 0]
    assert [j.queue for j in mock.jobs] == ["jobs"] * 8 + ["mail"]
    assert mock.jobs[0].metadata == {"k": "v"}
    assert [r.job_id for r in results] == [f"id-{n}" for n in range(1, 9)] + ["mail-b@example.com"]
    assert [r.job_id for r in results] == [j.job_id for j in mock.jobs]
    assert all(name.startswith(POOL_THREAD) for name in mock.threads)


def test_mock_driver_failure_surfaces_as_with_job_service() -> None:
    mock = MockQueueDriver()
    mock.simulate_failure(ThrottledError("slow down"))
    seen: list[JobMessage] = []

    async def scenario() -> None:
        async with async_service(mock, on_enqueued=lambda m, r: seen.append(m)) as service:
            with pytest.raises(ThrottledError, match="slow down"):
                await service.enqueue(count, 1)
            await service.enqueue(count, 2)

    asyncio.run(scenario())

    assert [j.payload for j in mock.jobs] == [2]
    assert [m.payload for m in seen] == [2]


# --- the same messages and the same errors as JobService ---------------------------------


def describe(error: BaseException) -> tuple[object, ...]:
    """Everything a caller can see of an error: type, text, attributes, and the cause's type and text."""
    cause = error.__cause__
    details: tuple[object, ...] = ()
    if isinstance(error, BatchEnqueueError):
        details = (error.succeeded, [(m, describe(e)) for m, e in error.failed])
    return (
        type(error),
        str(error),
        getattr(error, "job_name", None),
        getattr(error, "actual_size", None),
        getattr(error, "max_size", None),
        details,
        None if cause is None else (type(cause), str(cause)),
    )


Call = tuple[str, tuple[Any, ...], dict[str, Any]]


class Seen(msgspec.Struct, frozen=True, kw_only=True):
    """What one run showed: each call's result (or `describe(error)`), what the driver and hook got."""

    outcomes: list[object]
    sent: list[JobMessage]
    batches: list[list[JobMessage]]
    heard: list[object]


def seen(driver: SpyDriver, outcomes: list[object], heard: list[object]) -> Seen:
    return Seen(outcomes=outcomes, sent=driver.sent, batches=getattr(driver, "batches", []), heard=heard)


def run_both(
    calls: Sequence[Call], make_driver: Callable[[], SpyDriver], **options: Any
) -> tuple[Seen, Seen]:
    """Run `calls` on a `JobService` and on an `AsyncJobService`, each over a fresh driver."""

    sync_driver, sync_heard, sync_out = make_driver(), list[object](), list[object]()
    service = sync_service(sync_driver, on_enqueued=lambda m, r: sync_heard.append((m, r)), **options)
    for name, args, kwargs in calls:
        try:
            sync_out.append(getattr(service, name)(*args, **kwargs))
        except Exception as exc:
            sync_out.append(describe(exc))

    async_driver, async_heard, async_out = make_driver(), list[object](), list[object]()

    async def scenario() -> None:
        service = async_service(
            async_driver, on_enqueued=lambda m, r: async_heard.append((m, r)), max_workers=1, **options
        )
        async with service:
            for name, args, kwargs in calls:
                try:
                    value = getattr(service, name)(*args, **kwargs)
                    async_out.append(await value if asyncio.iscoroutine(value) else value)
                except Exception as exc:
                    async_out.append(describe(exc))

    asyncio.run(scenario())
    return seen(sync_driver, sync_out, sync_heard), seen(async_driver, async_out, async_heard)


def refuse(payloads: set[object]) -> Callable[[], SpyDriver]:
    """A spy driver refusing `payloads`: a vendor error for even ints, else a glasswork error."""

    def fail(message: JobMessage) -> BaseException | None:
        if message.payload not in payloads:
            return None
        if isinstance(message.payload, int) and message.payload % 2 == 0:
            return ConnectionError(f"socket closed for {message.payload}")
        return ThrottledError(f"throttled {message.payload}")

    return lambda: SpyDriver(fail=fail)


CASES: Final[dict[str, list[Call]]] = {
    "valid": [
        ("enqueue", (send_email, Email(to="a@example.com", subject="hi")), {}),
        ("enqueue", (loose(send_email), {"to": "b@example.com"}), {"metadata": {"k": "v"}}),
        ("enqueue", (count, 3), {"delay": timedelta(seconds=1.5), "queue": "other"}),
        ("enqueue_in", (blob, "x", 12.2), {}),
        ("enqueue_at", (count, 4, NOW + timedelta(hours=1)), {}),
        ("enqueue_at", (count, 5, datetime(2026, 1, 2, 4, 0, 0)), {}),
        ("enqueue", (keyed, Email(to="c@example.com")), {}),
        ("message", (numbers, [1, 2]), {"delay": 3}),
    ],
    "invalid-payloads": [
        ("enqueue", (loose(send_email), {"to": 5}), {}),
        ("enqueue", (loose(send_email), {"subject": "no recipient"}), {}),
        ("enqueue", (loose(count), "5"), {}),
        ("enqueue", (loose(count), 1.5), {}),
        ("enqueue", (loose(blob), 7), {}),
        ("enqueue", (untyped, object()), {}),
        ("enqueue", (loose(numbers), [1, "two"]), {}),
        ("message", (loose(count), None), {}),
        ("enqueue", (count, 1), {}),
    ],
    "too-large": [
        ("enqueue", (blob, "x" * 2_000), {}),
        ("enqueue_batch", ([(blob, "ok"), (blob, "y" * 5_000)],), {}),
        ("enqueue", (blob, "fits"), {}),
    ],
    "bad-delays-and-keys": [
        ("enqueue", (count, 1), {"delay": -1}),
        ("enqueue", (count, 1), {"delay": math.nan}),
        ("enqueue_in", (count, 1, timedelta(days=366)), {}),
        ("enqueue", (bad_key, 1), {}),
        ("enqueue_at", (count, 1, NOW - timedelta(days=1)), {}),
    ],
    "batches": [
        ("enqueue_batch", ([(count, 1), (count, 2), (count, 3)],), {"metadata": {"b": "1"}}),
        ("enqueue_batch", ([],), {}),
        ("enqueue_batch", ([(count, 1), (loose(count), "two")],), {}),
        ("enqueue_batch", ([JobMessage(job_name="raw", payload=1, job_id="raw-1", enqueued_at=NOW)],), {}),
    ],
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("driver", [SpyDriver, BatchSpyDriver], ids=["enqueue-only", "with-enqueue-batch"])
def test_both_services_build_the_same_messages_and_raise_the_same_errors(
    case: str, driver: Callable[[], SpyDriver]
) -> None:
    options: dict[str, Any] = {"default_queue": "jobs", "max_payload_bytes": 1_500}
    sync, concurrent = run_both(CASES[case], driver, **options)

    assert concurrent == sync


def test_driver_failures_are_translated_alike() -> None:
    calls: list[Call] = [
        ("enqueue", (count, 2), {}),  # a vendor error: DriverError with the cause
        ("enqueue", (count, 3), {}),  # a glasswork error: as is
        ("enqueue", (count, 5), {}),  # sent
        ("enqueue_batch", ([(count, n) for n in range(1, 8)],), {}),  # 2, 3, 4 fail: BatchEnqueueError
    ]

    sync, concurrent = run_both(calls, refuse({2, 3, 4}))

    assert concurrent == sync
    outcomes = cast("list[tuple[object, ...]]", sync.outcomes)
    assert outcomes[0][0] is DriverError
    assert outcomes[0][6] == (ConnectionError, "socket closed for 2")
    assert outcomes[1][0] is ThrottledError
    assert outcomes[3][0] is BatchEnqueueError
    assert "3 of 7" in cast("str", outcomes[3][1])


@pytest.mark.parametrize(
    "error", [OSError("network down"), ThrottledError("busy"), BatchEnqueueError(succeeded=[], failed=[])]
)
def test_driver_batch_failures_are_translated_alike(error: Exception) -> None:
    calls: list[Call] = [("enqueue_batch", ([(count, 1), (count, 2)],), {})]

    sync, concurrent = run_both(calls, lambda: BatchSpyDriver(error=error))

    assert concurrent == sync
    outcome = cast("tuple[object, ...]", sync.outcomes[0])
    assert outcome[0] is (DriverError if isinstance(error, OSError) else type(error))


@given(
    job=st.sampled_from([send_email, count, blob, untyped, numbers]),
    data=st.data(),
    delay=st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-10, 10**9)),
)
def test_any_payload_and_delay_gives_the_same_outcome_on_both(
    job: Job[Any], data: st.DataObject, delay: float | None
) -> None:
    payload = data.draw(
        st.one_of(json_values(), invalid_payloads(job)) if job is not untyped else json_values()
    )
    calls: list[Call] = [
        ("enqueue", (job, payload), {"delay": delay}),
        ("enqueue_batch", ([(job, payload), (job, payload)],), {}),
    ]

    sync, concurrent = run_both(calls, SpyDriver, max_payload_bytes=400)

    assert concurrent == sync


# --- on_enqueued ---------------------------------------------------------------------------


def test_on_enqueued_is_called_on_the_loop_thread_once_per_job() -> None:
    seen: list[tuple[object, str, str]] = []
    spy = BatchSpyDriver()

    def hook(message: JobMessage, result: EnqueueResult) -> None:
        seen.append((message.payload, result.message_id, threading.current_thread().name))

    async def scenario() -> None:
        async with async_service(spy, on_enqueued=hook) as service:
            await service.enqueue(count, 1)
            await service.enqueue_batch([(count, 2), (count, 3)])

    asyncio.run(scenario())

    loop_thread = threading.current_thread().name
    assert seen == [(1, "m-id-1", loop_thread), (2, "b-id-2", loop_thread), (3, "b-id-3", loop_thread)]
    assert all(name.startswith(POOL_THREAD) for name in spy.threads)


def test_on_enqueued_exception_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def explode(message: JobMessage, result: EnqueueResult) -> None:
        raise RuntimeError("hook broke")

    mock = MockQueueDriver()

    async def scenario() -> EnqueueResult:
        async with async_service(mock, on_enqueued=explode) as service:
            return await service.enqueue(count, 1)

    with caplog.at_level(logging.ERROR, logger="glasswork.service"):
        result = asyncio.run(scenario())

    assert result.job_id == "id-1"
    [record] = [r for r in caplog.records if r.name == "glasswork.service"]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "id-1" in record.getMessage()


# --- cancellation -------------------------------------------------------------------------


def test_cancelling_a_send_in_its_thread_lets_it_finish_and_reports_it() -> None:
    gate = GateDriver()
    heard: list[tuple[object, str]] = []

    def hook(message: JobMessage, result: EnqueueResult) -> None:
        heard.append((message.payload, threading.current_thread().name))

    async def scenario() -> EnqueueResult:
        async with async_service(gate, on_enqueued=hook) as service:
            task = asyncio.create_task(service.enqueue(count, 1))
            await wait_for(gate.started.is_set)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert gate.sent == []
            gate.release.set()
            await wait_for(lambda: len(heard) == 1)  # the send completed in its thread
            return await service.enqueue(count, 2)  # and the service still works

    result = asyncio.run(scenario())

    assert [m.payload for m in gate.sent] == [1, 2]
    assert result.job_id == "id-2"
    loop_thread = threading.current_thread().name
    assert heard == [(1, loop_thread), (2, loop_thread)]


def test_cancelling_a_send_still_waiting_for_a_thread_drops_it() -> None:
    gate = GateDriver()
    heard: list[object] = []

    async def scenario() -> None:
        async with async_service(
            gate, max_workers=1, on_enqueued=lambda m, r: heard.append(m.payload)
        ) as service:
            first = asyncio.create_task(service.enqueue(count, 1))
            await wait_for(gate.started.is_set)
            queued = asyncio.create_task(service.enqueue(count, 2))
            await asyncio.sleep(0.01)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            gate.release.set()
            await first

    asyncio.run(scenario())

    assert [m.payload for m in gate.sent] == [1]
    assert heard == [1]


def test_cancelled_batch_reports_what_it_sent() -> None:
    gate = GateDriver()
    heard: list[object] = []

    async def scenario() -> None:
        async with async_service(gate, on_enqueued=lambda m, r: heard.append(m.payload)) as service:
            task = asyncio.create_task(service.enqueue_batch([(count, 1), (count, 2), (count, 3)]))
            await wait_for(gate.started.is_set)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            gate.release.set()
        # aclose waited for the batch; its on_enqueued calls were scheduled on the loop
        await wait_for(lambda: len(heard) == 3)

    asyncio.run(scenario())

    assert heard == [1, 2, 3]


def test_a_send_that_outlives_its_loop_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    gate = GateDriver()
    heard: list[object] = []
    service = async_service(gate, on_enqueued=lambda m, r: heard.append(m.payload))

    async def cancelled_send() -> None:
        task = asyncio.create_task(service.enqueue(count, 1))
        await wait_for(gate.started.is_set)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.WARNING, logger="glasswork.service"):
        asyncio.run(cancelled_send())  # the loop closes with the send still in its thread
        gate.release.set()
        asyncio.run(service.aclose())  # waits for it

    assert [m.payload for m in gate.sent] == [1]
    assert heard == []
    assert any("loop closed" in r.getMessage() for r in caplog.records)


# --- closing ----------------------------------------------------------------------------


def test_using_the_service_after_aclose_raises_a_clear_error() -> None:
    mock = MockQueueDriver()

    async def scenario() -> AsyncJobService:
        async with async_service(mock) as service:
            await service.enqueue(count, 1)
        assert service.closed
        with pytest.raises(ConfigurationError, match=r"closed \(aclose\(\) was called\)"):
            await service.enqueue(count, 2)
        with pytest.raises(ConfigurationError, match="closed"):
            await service.enqueue_in(count, 2, 5)
        with pytest.raises(ConfigurationError, match="closed"):
            await service.enqueue_batch([(count, 3)])
        await service.aclose()  # again: nothing happens
        return service

    service = asyncio.run(scenario())

    assert [j.payload for j in mock.jobs] == [1]
    assert service.message(count, 4).payload == 4  # building a message sends nothing


def test_aclose_waits_for_sends_in_the_pool() -> None:
    gate = GateDriver()

    async def scenario() -> None:
        service = async_service(gate)
        task = asyncio.create_task(service.enqueue(count, 1))
        await wait_for(gate.started.is_set)
        closing = asyncio.create_task(service.aclose())
        await asyncio.sleep(0.02)
        assert not closing.done()
        gate.release.set()
        await closing
        assert (await task).job_id == "id-1"

    asyncio.run(scenario())

    assert [m.payload for m in gate.sent] == [1]


def pool_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """The pool threads alive now that were not alive in `before`."""
    return [t for t in threading.enumerate() if t not in before and t.name.startswith(POOL_THREAD)]


def wait_until_gone(before: set[threading.Thread]) -> None:
    deadline = time.monotonic() + 5
    while pool_threads(before):
        assert time.monotonic() < deadline, pool_threads(before)
        time.sleep(0.01)


def test_closing_an_unused_service_starts_no_thread() -> None:
    async def scenario() -> None:
        async with async_service(MockQueueDriver()):
            pass

    before = set(threading.enumerate())
    asyncio.run(scenario())

    assert pool_threads(before) == []


def test_the_pool_starts_all_its_threads_on_the_first_send_and_aclose_ends_them() -> None:
    before = set(threading.enumerate())

    async def scenario() -> list[threading.Thread]:
        async with async_service(MockQueueDriver(), max_workers=4) as service:
            await service.enqueue(count, 1)
            return pool_threads(before)

    started = asyncio.run(scenario())

    assert sorted(t.name for t in started) == [f"{POOL_THREAD}_{n}" for n in range(4)]
    assert all(t.daemon for t in started)  # never holds the interpreter open
    wait_until_gone(before)


def test_a_service_dropped_without_aclose_ends_its_threads() -> None:
    before = set(threading.enumerate())
    mock = MockQueueDriver()
    service = async_service(mock, max_workers=3)
    asyncio.run(service.enqueue(count, 1))
    assert len(pool_threads(before)) == 3

    del service
    gc.collect()

    wait_until_gone(before)
    assert [j.payload for j in mock.jobs] == [1]


# --- the pool ------------------------------------------------------------------------------


class ConcurrencyDriver(SpyDriver):
    """Records how many of its `enqueue` calls ran at the same time."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._now = 0
        self.most = 0

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        with self._lock:
            self._now += 1
            self.most = max(self.most, self._now)
        time.sleep(0.002)
        with self._lock:
            self._now -= 1
            return super().enqueue(message)


@pytest.mark.parametrize("workers", [1, 4, DEFAULT_MAX_WORKERS])
def test_at_most_max_workers_sends_run_at_once(workers: int) -> None:
    driver = ConcurrencyDriver()

    async def scenario() -> None:
        async with async_service(driver, max_workers=workers) as service:
            await asyncio.gather(*(service.enqueue(count, n) for n in range(60)))

    asyncio.run(scenario())

    assert len(driver.sent) == 60
    assert driver.most <= workers
    assert len(driver.threads) <= workers


def test_the_service_works_across_event_loops() -> None:
    mock = MockQueueDriver()
    service = async_service(mock)

    asyncio.run(service.enqueue(count, 1))
    asyncio.run(service.enqueue(count, 2))
    asyncio.run(service.aclose())

    assert [j.payload for j in mock.jobs] == [1, 2]


# --- native async drivers ------------------------------------------------------------------


def test_native_async_methods_are_used_instead_of_a_thread() -> None:
    native = NativeDriver()
    heard: list[object] = []
    assert isinstance(native, AsyncQueueDriver)
    assert not isinstance(native, BatchQueueDriver)

    async def scenario() -> list[EnqueueResult]:
        async with async_service(native, on_enqueued=lambda m, r: heard.append(m.payload)) as service:
            return [await service.enqueue(count, 1), *await service.enqueue_batch([(count, 2), (count, 3)])]

    before = {t.name for t in threading.enumerate()}
    results = asyncio.run(scenario())

    assert [m.payload for m in native.native] == [1, 2, 3]
    assert [r.message_id for r in results] == ["n-id-1", "n-id-2", "n-id-3"]
    assert heard == [1, 2, 3]
    assert not any(POOL_THREAD in t.name for t in threading.enumerate() if t.name not in before)


@pytest.mark.parametrize(
    ("error", "expected"),
    [(ConnectionError("reset"), DriverError), (ThrottledError("busy"), ThrottledError)],
)
def test_native_async_errors_are_translated_as_blocking_ones(
    error: Exception, expected: type[Exception]
) -> None:
    async def scenario() -> tuple[BaseException, BaseException]:
        async with async_service(NativeDriver(error=error)) as service:
            with pytest.raises(GlassworkError) as single:
                await service.enqueue(count, 1)
            with pytest.raises(GlassworkError) as batch:
                await service.enqueue_batch([(count, 2)])
        return single.value, batch.value

    single, batch = asyncio.run(scenario())
    blocking = SpyDriver(fail=lambda m: error)
    with pytest.raises(GlassworkError) as sync_single:
        sync_service(blocking).enqueue(count, 1)

    assert type(single) is expected
    assert type(batch) is expected
    assert str(single).replace("'native'", "'spy'") == str(sync_single.value)
    if expected is DriverError:
        assert single.__cause__ is error
        assert batch.__cause__ is error
        assert "failed to enqueue 1 jobs" in str(batch)


# --- construction -----------------------------------------------------------------------


def test_a_non_driver_is_refused_naming_the_async_service() -> None:
    with pytest.raises(ConfigurationError, match="AsyncJobService needs a queue driver"):
        AsyncJobService(cast("QueueDriver", ("driver", "queue")))


def test_max_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        AsyncJobService(MockQueueDriver(), max_workers=0)


def test_large_payload_error_carries_sizes() -> None:
    async def scenario() -> None:
        async with async_service(MockQueueDriver(), max_payload_bytes=100) as service:
            with pytest.raises(PayloadTooLargeError) as caught:
                await service.enqueue(blob, "x" * 200)
            assert caught.value.max_size == 100
            assert caught.value.actual_size > 200
            with pytest.raises(InvalidJobPayloadError):
                await service.enqueue(loose(count), "x")

    asyncio.run(scenario())
