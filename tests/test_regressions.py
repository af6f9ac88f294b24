"""Regressions from issue 10: one outcome per record, whatever the log level, hooks, input or runtime.

Each test names its bug (1-7 in the issue). Worker calls run on a fresh thread
(`_in_fresh_thread`): a worker keeps one event loop per thread, and a crash
inside it leaves tasks pending there, which must not leak into other tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

import msgspec
import pytest

import glasswork
from glasswork import (
    JobContext,
    JobExecution,
    JobService,
    MockQueueDriver,
    Module,
    PermanentJobError,
    TransientJobError,
    WorkerHooks,
    bootstrap_worker,
    define_job,
)
from glasswork.cli import main
from glasswork.core import Retry
from glasswork.testing import FakeLambdaContext, job_body, sqs_event, sqs_record

if TYPE_CHECKING:
    from glasswork.worker import Worker

T = TypeVar("T")

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_DELAY = 43_200
DEEP = "[" * 1000 + "]" * 1000
"""A 1,000-level nested JSON list."""


class Order(msgspec.Struct, frozen=True):
    order_id: int


Work = Callable[[Order, JobContext], None]


# --- helpers ---------------------------------------------------------------------


def _in_fresh_thread(call: Callable[[], T]) -> T:
    """Run `call` on a new thread (so an async worker gets a loop of its own); re-raise what it raised."""
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(call())
        except BaseException as exc:  # re-raised on the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="regression-worker")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


@pytest.fixture
def make_logger() -> Iterator[Callable[[str, int], logging.Logger]]:
    """A dedicated `test.regress.<n>` logger at a level, restored afterwards; root is left alone."""
    touched: list[tuple[logging.Logger, int]] = []

    def make(suffix: str, level: int) -> logging.Logger:
        logger = logging.getLogger(f"test.regress.{suffix}")
        touched.append((logger, logger.level))
        logger.setLevel(level)
        return logger

    yield make
    for logger, level in reversed(touched):
        logger.setLevel(level)


class Kind(NamedTuple):
    """How a worker is built: `def` or `async def` job, an async hook or none, the logger's level."""

    async_job: bool
    async_hook: bool
    level: int


KINDS: dict[str, Kind] = {
    "def": Kind(async_job=False, async_hook=False, level=logging.INFO),
    "def, DEBUG log": Kind(async_job=False, async_hook=False, level=logging.DEBUG),
    "async def job": Kind(async_job=True, async_hook=False, level=logging.INFO),
    "async def hook": Kind(async_job=False, async_hook=True, level=logging.INFO),
}
"""Sync workers take the fast path at INFO and the general path at DEBUG; the others run on the loop."""


async def _idle_hook(execution: JobExecution, ctx: JobContext) -> None:
    await asyncio.sleep(0)


def _worker(
    work: Work,
    kind: Kind,
    logger: logging.Logger,
    driver: MockQueueDriver,
    *,
    typed: bool = True,
) -> Worker:
    """A worker for one job named `job` whose handler calls `work` (inside a coroutine for async kinds)."""

    async def work_async(payload: Order, ctx: JobContext) -> None:
        work(payload, ctx)

    handler: Callable[[Order, JobContext], object] = work_async if kind.async_job else work
    job = define_job(name="job", handler=handler, payload=Order if typed else None)
    return bootstrap_worker(
        module=Module(name="regress", jobs=[job]),
        driver=driver,
        hooks=WorkerHooks(on_job_start=_idle_hook) if kind.async_hook else None,
        logger=logger,
    )


def _body(order_id: int) -> str:
    return job_body("job", {"order_id": order_id}, job_id=f"job-{order_id}")


def _records(event: dict[str, object]) -> list[dict[str, Any]]:
    records = event["Records"]
    assert isinstance(records, list)
    return records


def _env_with_src(env: dict[str, str]) -> dict[str, str]:
    """`env` with this checkout's `src` first on `PYTHONPATH`, for a child Python process."""
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _dead(driver: MockQueueDriver) -> list[tuple[str, str]]:
    return [(d.message_id, d.reason) for d in driver.dead_letters]


# --- bug 1: the outcome depends on the log level and on hooks ------------------------

INT_JOB_ID_BODY = '{"jobName": "job", "payload": {"order_id": 1}, "jobId": 42}'
"""`jobId` is a string on the wire; an int makes the body not a glasswork job message."""


def _start_hook(execution: JobExecution, ctx: JobContext) -> None:
    pass


HOOKS: dict[str, WorkerHooks | None] = {
    "no hook": None,
    "def on_job_start": WorkerHooks(on_job_start=_start_hook),
    "async def on_job_start": WorkerHooks(on_job_start=_idle_hook),
}


@pytest.mark.parametrize("hooks", HOOKS.values(), ids=HOOKS.keys())
@pytest.mark.parametrize(
    "level", [logging.DEBUG, logging.INFO, logging.WARNING], ids=["DEBUG", "INFO", "WARNING"]
)
def test_an_int_job_id_is_poison_at_every_log_level_and_with_any_hook(
    level: int, hooks: WorkerHooks | None, make_logger: Callable[[str, int], logging.Logger]
) -> None:
    """Bug 1: an int `jobId` is dead-lettered as poison whatever the logger's level or the hooks."""
    ran: list[int] = []

    def handler(payload: Order, ctx: JobContext) -> None:
        ran.append(payload.order_id)

    driver = MockQueueDriver()
    worker = bootstrap_worker(
        module=Module(name="regress", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=driver,
        hooks=hooks,
        logger=make_logger("1", level),
    )
    event = sqs_event([sqs_record(INT_JOB_ID_BODY, message_id="m-1", message_attributes={"JobName": "job"})])

    response = _in_fresh_thread(lambda: worker(event, FakeLambdaContext()))

    assert response == {"batchItemFailures": []}
    assert _dead(driver) == [("m-1", "poison_message")]
    assert ran == []


# --- bug 2: deep nesting -------------------------------------------------------------


@pytest.mark.parametrize("typed", [True, False], ids=["Struct payload", "untyped payload"])
@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_deeply_nested_bodies_are_poison_and_their_neighbour_succeeds(
    kind: Kind, typed: bool, make_logger: Callable[[str, int], logging.Logger]
) -> None:
    """Bug 2: 1,000-level nested bodies and payloads are dead-lettered as poison; the batch goes on."""
    ran: list[object] = []

    def work(payload: object, ctx: JobContext) -> None:
        ran.append(msgspec.to_builtins(payload))

    driver = MockQueueDriver()
    worker = _worker(work, kind, make_logger("2", kind.level), driver, typed=typed)
    deep_payload = f'{{"jobName": "job", "payload": {DEEP}}}'
    event = sqs_event(
        [
            sqs_record(DEEP, message_id="deep-body"),
            sqs_record(deep_payload, message_id="deep-payload", message_attributes={"JobName": "job"}),
            sqs_record(deep_payload, message_id="deep-payload-no-attribute"),
            sqs_record(_body(1), message_id="good", message_attributes={"JobName": "job"}),
        ]
    )

    response = _in_fresh_thread(lambda: worker(event, FakeLambdaContext()))

    assert response == {"batchItemFailures": []}
    assert _dead(driver) == [
        ("deep-body", "poison_message"),
        ("deep-payload", "poison_message"),
        ("deep-payload-no-attribute", "poison_message"),
    ]
    assert ran == [{"order_id": 1}]


APP = """
import msgspec

from glasswork import Module, define_job


class Order(msgspec.Struct):
    order_id: int


def handle(payload, ctx):
    pass


app = Module(
    name="regressapp",
    jobs=[define_job(name="job", handler=handle, payload=Order), define_job(name="untyped", handler=handle)],
)
"""


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory holding `gw_regress_app.py`, as the cwd; sys.path and sys.modules are restored."""
    root = tmp_path / "app"
    root.mkdir()
    (root / "gw_regress_app.py").write_text(APP)
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield root
    sys.modules.pop("gw_regress_app", None)


@pytest.mark.parametrize("job", ["job", "untyped"])
def test_cli_enqueue_of_deeply_nested_json_is_a_one_line_mistake(
    app_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], job: str
) -> None:
    """Bug 2: `glasswork enqueue` with 1,000-level nested JSON exits 2 with one line, no traceback."""
    url = f"sqlite:///{tmp_path / 'queue.db'}"

    code = main(["enqueue", "gw_regress_app:app", job, DEEP, "--queue", url])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("glasswork: error: ")
    assert "Traceback" not in err


def test_cli_enqueue_of_deeply_nested_json_as_a_process(app_dir: Path, tmp_path: Path) -> None:
    """Bug 2: the `glasswork` process prints one line for 1,000-level nested JSON and exits 2."""
    url = f"sqlite:///{tmp_path / 'queue.db'}"

    done = subprocess.run(
        [sys.executable, "-m", "glasswork", "enqueue", "gw_regress_app:app", "job", DEEP, "--queue", url],
        cwd=app_dir,
        env=_env_with_src(dict(os.environ)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert "Traceback" not in done.stderr
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("glasswork: error: ")


# --- bug 3: CancelledError and KeyboardInterrupt ------------------------------------


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_a_job_raising_cancelled_error_is_retried_and_the_batch_goes_on(
    kind: Kind, make_logger: Callable[[str, int], logging.Logger]
) -> None:
    """Bug 3: a job raising `asyncio.CancelledError` is reported failed (a retry); the next record runs."""
    ran: list[int] = []

    def work(payload: Order, ctx: JobContext) -> None:
        ran.append(payload.order_id)
        if payload.order_id == 1:
            raise asyncio.CancelledError

    driver = MockQueueDriver()
    worker = _worker(work, kind, make_logger("3", kind.level), driver)
    event = sqs_event([sqs_record(_body(1), message_id="m-1"), sqs_record(_body(2), message_id="m-2")])

    response = _in_fresh_thread(lambda: worker(event, FakeLambdaContext()))

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert sorted(ran) == [1, 2]
    assert _dead(driver) == []


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_a_job_raising_cancelled_error_is_a_failed_record_in_the_report(
    kind: Kind, make_logger: Callable[[str, int], logging.Logger]
) -> None:
    """Bug 3: in a `BatchReport` the cancelled record is `failed` and its neighbour `succeeded`."""

    def work(payload: Order, ctx: JobContext) -> None:
        if payload.order_id == 1:
            raise asyncio.CancelledError

    worker = _worker(work, kind, make_logger("3", kind.level), MockQueueDriver())
    event = sqs_event([sqs_record(_body(1), message_id="m-1"), sqs_record(_body(2), message_id="m-2")])

    report = _in_fresh_thread(lambda: worker.process_batch(event, FakeLambdaContext()))

    assert (report.ids("failed"), report.ids("succeeded")) == (["m-1"], ["m-2"])


HOOK_KINDS: dict[str, tuple[bool, bool, int]] = {
    "def job, def hook": (False, False, logging.INFO),
    "def job, def hook, DEBUG log": (False, False, logging.DEBUG),
    "async def job, def hook": (True, False, logging.INFO),
    "def job, async def hook": (False, True, logging.INFO),
}


@pytest.mark.parametrize(("async_job", "async_hook", "level"), HOOK_KINDS.values(), ids=HOOK_KINDS.keys())
def test_a_start_hook_raising_cancelled_error_changes_nothing(
    async_job: bool, async_hook: bool, level: int, make_logger: Callable[[str, int], logging.Logger]
) -> None:
    """Bug 3: an `on_job_start` hook raising `CancelledError` is a hook failure: the job still succeeds."""
    ran: list[int] = []

    def work(payload: Order, ctx: JobContext) -> None:
        ran.append(payload.order_id)

    async def work_async(payload: Order, ctx: JobContext) -> None:
        work(payload, ctx)

    def start(execution: JobExecution, ctx: JobContext) -> None:
        raise asyncio.CancelledError

    async def start_async(execution: JobExecution, ctx: JobContext) -> None:
        raise asyncio.CancelledError

    handler: Callable[[Order, JobContext], object] = work_async if async_job else work
    driver = MockQueueDriver()
    worker = bootstrap_worker(
        module=Module(name="regress", jobs=[define_job(name="job", handler=handler, payload=Order)]),
        driver=driver,
        hooks=WorkerHooks(on_job_start=start_async if async_hook else start),
        logger=make_logger("3", level),
    )
    event = sqs_event([sqs_record(_body(1), message_id="m-1")])

    response = _in_fresh_thread(lambda: worker(event, FakeLambdaContext()))

    assert response == {"batchItemFailures": []}
    assert ran == [1]
    assert _dead(driver) == []


KEYBOARD_INTERRUPT = """
import asyncio
import logging
import sys

import msgspec

import glasswork
from glasswork.testing import job_body, sqs_event, sqs_record

async_job, async_hook, level = sys.argv[1] == "1", sys.argv[2] == "1", int(sys.argv[3])
ran = []


class Order(msgspec.Struct):
    order_id: int


def work(payload, ctx):
    ran.append(payload.order_id)
    raise KeyboardInterrupt


async def work_async(payload, ctx):
    work(payload, ctx)


async def idle(execution, ctx):
    await asyncio.sleep(0)


logger = logging.getLogger("test.regress.3")
logger.setLevel(level)
job = glasswork.define_job(name="job", handler=work_async if async_job else work, payload=Order)
handler = glasswork.bootstrap_worker(
    module=glasswork.Module(name="regress", jobs=[job]),
    driver=glasswork.MockQueueDriver(),
    hooks=glasswork.WorkerHooks(on_job_start=idle) if async_hook else None,
    logger=logger,
)
event = sqs_event([sqs_record(job_body("job", {"order_id": 1}), message_id="m-1")])
try:
    response = handler(event, None)
except KeyboardInterrupt:
    print("KeyboardInterrupt propagated; ran", ran)
else:
    print("returned", response, "; ran", ran)
"""


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_keyboard_interrupt_from_a_job_stops_the_handler(kind: Kind) -> None:
    """Bug 3: unlike `CancelledError`, a `KeyboardInterrupt` from a job propagates out of the handler.

    In a process of its own: the interrupt leaves the worker's event loop with a
    task whose error nobody retrieves, which is fine for a process that stops.
    """
    flags = [str(int(kind.async_job)), str(int(kind.async_hook)), str(kind.level)]

    done = subprocess.run(
        [sys.executable, "-c", KEYBOARD_INTERRUPT, *flags],
        env=_env_with_src(dict(os.environ)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.stdout.strip() == "KeyboardInterrupt propagated; ran [1]", done.stderr
    assert done.returncode == 0, done.stderr


# --- bug 4: non-finite retry_after ----------------------------------------------------

NON_FINITE = pytest.mark.parametrize("value", [float("inf"), float("nan")], ids=["inf", "nan"])


def _non_finite_error(value: float) -> TransientJobError | None:
    """The error, or `None` when the constructor rejects the value with `ValueError` (a valid fix)."""
    try:
        return TransientJobError("x", retry_after=value)
    except ValueError:
        return None


@NON_FINITE
@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_a_non_finite_retry_after_is_rejected_or_clamped_by_the_worker(
    value: float, kind: Kind, make_logger: Callable[[str, int], logging.Logger]
) -> None:
    """Bug 4: `retry_after` inf/nan is refused by `TransientJobError` or retried within 12 hours."""
    if _non_finite_error(value) is None:
        return  # the constructor refuses it: no job can raise one

    def work(payload: Order, ctx: JobContext) -> None:
        raise TransientJobError("x", retry_after=value)

    driver = MockQueueDriver()
    worker = _worker(work, kind, make_logger("4", kind.level), driver)
    event = sqs_event([sqs_record(_body(1), message_id="m-1")])

    response = _in_fresh_thread(lambda: worker(event, FakeLambdaContext()))

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert _dead(driver) == []
    delays = [change.seconds for change in driver.visibility_changes]
    assert all(type(seconds) is int and 0 <= seconds <= MAX_DELAY for seconds in delays), delays


@NON_FINITE
def test_decide_retry_with_a_non_finite_retry_after_gives_a_finite_delay(value: float) -> None:
    """Bug 4: `decide_retry` turns an inf/nan `retry_after` (if constructible) into a bounded Retry."""
    error = _non_finite_error(value)
    if error is None:
        return  # the constructor refuses it: decide_retry never sees one

    decision = glasswork.decide_retry(error, attempt=1, policy=glasswork.RetryPolicy())

    assert isinstance(decision, Retry)
    assert decision.delay is None or (type(decision.delay) is int and 0 <= decision.delay <= MAX_DELAY)


# --- bug 5: FIFO ordering, sync and async ----------------------------------------------

ORDER_IDS: dict[str, int] = {"fail": 2, "good": 3, "bad": 4}
"""The order id each job record carries; order 2 fails transiently."""

FIFO_BATCHES: dict[str, list[str]] = {
    "poison, failure, good": ["poison", "fail", "good"],
    "invalid record, good": ["bad", "good"],
    "failure, invalid record, good": ["fail", "bad", "good"],
    "invalid record, failure, good": ["bad", "fail", "good"],
}
"""Batches of one message group `g1`: `poison` is not JSON, `bad` is not a valid SQS record (int body)."""


DISPOSITIONS: tuple[Literal["succeeded", "failed", "dead_lettered", "discarded"], ...] = (
    "succeeded",
    "failed",
    "dead_lettered",
    "discarded",
)


class FifoRun(NamedTuple):
    dispositions: dict[str, str | None]
    ran: list[int]
    dead: list[tuple[str, str]]


def _fifo_event(names: Sequence[str]) -> dict[str, object]:
    records = []
    for name in names:
        if name == "poison":
            records.append(sqs_record("not json", message_id=name, group_id="g1"))
        else:
            body = _body(ORDER_IDS[name])
            records.append(
                sqs_record(body, message_id=name, group_id="g1", message_attributes={"JobName": "job"})
            )
    event = sqs_event(records)
    for record in _records(event):
        if record["messageId"] == "bad":
            record["body"] = 5
    return event


def _run_fifo(kind: Kind, names: Sequence[str], logger: logging.Logger) -> FifoRun:
    ran: list[int] = []

    def work(payload: Order, ctx: JobContext) -> None:
        ran.append(payload.order_id)
        if payload.order_id == ORDER_IDS["fail"]:
            raise TransientJobError("try again later")

    driver = MockQueueDriver()
    worker = _worker(work, kind, logger, driver)
    event = _fifo_event(names)
    report = _in_fresh_thread(lambda: worker.process_batch(event, FakeLambdaContext()))
    found: dict[str, str] = {}
    for disposition in DISPOSITIONS:
        for message_id in report.ids(disposition):
            found[message_id] = disposition
    return FifoRun(dispositions={n: found.get(n) for n in names}, ran=ran, dead=_dead(driver))


@pytest.mark.parametrize("names", FIFO_BATCHES.values(), ids=FIFO_BATCHES.keys())
@pytest.mark.parametrize("kind", ["def, DEBUG log", "async def job", "async def hook"])
def test_fifo_dispositions_are_the_same_for_sync_and_async_workers(
    kind: str, names: list[str], make_logger: Callable[[str, int], logging.Logger]
) -> None:
    """Bug 5: a FIFO batch ends the same, record for record, in a sync and an async worker."""
    sync = _run_fifo(KINDS["def"], names, make_logger("5", logging.INFO))
    other = _run_fifo(KINDS[kind], names, make_logger("5", KINDS[kind].level))

    assert other == sync


@pytest.mark.parametrize("names", FIFO_BATCHES.values(), ids=FIFO_BATCHES.keys())
@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_only_a_failed_fifo_record_blocks_the_rest_of_its_group(
    kind: Kind, names: list[str], make_logger: Callable[[str, int], logging.Logger]
) -> None:
    """Bug 5: after a failed record its group's later records are failed and not run; nothing else blocks."""
    run = _run_fifo(kind, names, make_logger("5", kind.level))

    assert None not in run.dispositions.values(), run.dispositions
    blocked = False
    for name in names:
        if blocked:
            assert run.dispositions[name] == "failed", (name, run.dispositions)
            assert ORDER_IDS.get(name) not in run.ran, (name, run.ran)
        elif name == "good":
            assert run.dispositions[name] == "succeeded", (name, run.dispositions)
        blocked = blocked or run.dispositions[name] == "failed"


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_fifo_poison_does_not_block_its_group_but_a_failure_does(
    kind: Kind, make_logger: Callable[[str, int], logging.Logger]
) -> None:
    """Bug 5: [poison, transient failure, good] in a group: dead-lettered, failed, failed and not run."""
    run = _run_fifo(kind, FIFO_BATCHES["poison, failure, good"], make_logger("5", kind.level))

    assert run.dispositions == {"poison": "dead_lettered", "fail": "failed", "good": "failed"}
    assert run.ran == [ORDER_IDS["fail"]]
    assert run.dead == [("poison", "poison_message")]


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_a_record_with_a_usable_message_id_but_an_int_body_is_poison(
    kind: Kind, make_logger: Callable[[str, int], logging.Logger]
) -> None:
    """Bug 5: a record that is not a valid SQS record but has a messageId is dead-lettered as poison."""
    run = _run_fifo(kind, FIFO_BATCHES["invalid record, good"], make_logger("5", kind.level))

    assert run.dispositions["bad"] == "dead_lettered"
    assert run.dead == [("bad", "poison_message")]


# --- bug 6: non-ASCII digits in attributes -------------------------------------------

ODD_DIGITS = {"superscript one": "\u00b9", "Arabic-Indic three": "\u0663"}
"""Both pass `str.isdigit()`; SQS sends ASCII digits, so neither is a count glasswork can read."""


def _seen_attempt(
    kind: Kind, logger: logging.Logger, event: dict[str, object]
) -> tuple[dict[str, object], list[tuple[int, datetime]]]:
    seen: list[tuple[int, datetime]] = []

    def work(payload: Order, ctx: JobContext) -> None:
        seen.append((ctx.attempt_number, ctx.enqueued_at))

    worker = _worker(work, kind, logger, MockQueueDriver())
    response = _in_fresh_thread(lambda: worker(event, FakeLambdaContext()))
    return response, seen


@pytest.mark.parametrize("count", ODD_DIGITS.values(), ids=ODD_DIGITS.keys())
@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_an_unreadable_receive_count_reads_as_attempt_1(
    kind: Kind, count: str, make_logger: Callable[[str, int], logging.Logger]
) -> None:
    """Bug 6: an `ApproximateReceiveCount` of non-ASCII digits reads as attempt 1; the job runs."""
    record = sqs_record(
        _body(1), message_id="m-1", receive_count=count, message_attributes={"JobName": "job"}
    )

    response, seen = _seen_attempt(kind, make_logger("6", kind.level), sqs_event([record]))

    assert response == {"batchItemFailures": []}
    [(attempt, enqueued_at)] = seen
    assert attempt == 1
    assert enqueued_at.utcoffset() is not None


@pytest.mark.parametrize("sent", ODD_DIGITS.values(), ids=ODD_DIGITS.keys())
@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_an_unreadable_sent_timestamp_still_gives_an_aware_enqueued_at(
    kind: Kind, sent: str, make_logger: Callable[[str, int], logging.Logger]
) -> None:
    """Bug 6: a `SentTimestamp` of non-ASCII digits (and no `enqueuedAt`) still runs the job."""
    body = '{"jobName": "job", "payload": {"order_id": 1}}'
    event = sqs_event([sqs_record(body, message_id="m-1", message_attributes={"JobName": "job"})])
    _records(event)[0]["attributes"]["SentTimestamp"] = sent

    response, seen = _seen_attempt(kind, make_logger("6", kind.level), event)

    assert response == {"batchItemFailures": []}
    [(attempt, enqueued_at)] = seen
    assert attempt == 1
    assert enqueued_at.utcoffset() is not None


# --- bug 7: a cold start without a driver must not import boto3 --------------------------
# Since issue 13 a job backs off by default and the redrive policy is checked at the first
# failure, so the first failed record makes the driver (and loads boto3); successes never do.

COLD_START = """
import json
import sys

import msgspec

import glasswork


class Order(msgspec.Struct):
    order_id: int


def handle(payload: Order, ctx: glasswork.JobContext) -> None:
    if payload.order_id < 0:
        raise glasswork.TransientJobError("try again later")


job = glasswork.define_job(name="job", handler=handle, payload=Order)
handler = glasswork.bootstrap_worker(module=glasswork.Module(name="cold", jobs=[job]))
response = handler(json.loads(sys.stdin.read()), None)
loaded = {name: name in sys.modules for name in ("boto3", "botocore")}
print(json.dumps({"response": response, **loaded}))
"""


def _cold_env(tmp_path: Path) -> dict[str, str]:
    """The test's environment without AWS settings, so a driver that loads anyway cannot reach AWS."""
    env = _env_with_src({k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
    return env


@pytest.mark.parametrize(
    ("order_ids", "failed"),
    [(list(range(10)), []), ([*range(9), -1], ["m-9"])],
    ids=["all succeed", "one transient failure"],
)
def test_a_cold_start_without_a_driver_does_not_import_boto3(
    tmp_path: Path, order_ids: list[int], failed: list[str]
) -> None:
    """Bug 7: a 10-record batch of successes with no driver given never imports boto3.

    A failed record needs the driver (its backoff, the redrive check): without
    AWS settings that driver fails, which is logged, and the record is still
    reported failed.
    """
    event = sqs_event(
        sqs_record(
            job_body("job", {"order_id": order_id}, job_id=f"job-{n}"),
            message_id=f"m-{n}",
            queue="glasswork-jobs",
            region="eu-west-1",
            message_attributes={"JobName": "job"},
        )
        for n, order_id in enumerate(order_ids)
    )
    assert _records(event)[0]["eventSourceARN"] == "arn:aws:sqs:eu-west-1:123456789012:glasswork-jobs"

    done = subprocess.run(
        [sys.executable, "-c", COLD_START],
        input=json.dumps(event),
        env=_cold_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["response"] == {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}
    imported = [name for name in ("boto3", "botocore") if result[name]]
    if not failed:
        assert imported == [], f"the handler imported {imported}; its stderr: {done.stderr}"


# --- attacks found after the fix: numbers too big for a float, errors that cannot be printed -------


class _HugeRetryAfterError(TransientJobError):
    """A TransientJobError whose retry_after was set past the constructor's check."""

    def __init__(self) -> None:
        super().__init__("later")
        self.retry_after = 10**400  # the attack: an int no float can hold


class _UnprintableError(PermanentJobError):
    """An error whose message cannot be computed."""

    def __str__(self) -> str:
        raise RuntimeError("no message for you")


def test_a_retry_after_too_big_for_a_float_is_clamped_to_12_hours() -> None:
    """decide_retry on an int past float range: 12 hours, not OverflowError."""

    def handler(payload: object, ctx: JobContext) -> None:
        raise _HugeRetryAfterError

    driver = MockQueueDriver()
    worker = bootstrap_worker(
        module=Module(name="m", jobs=[define_job(name="job", handler=handler)]), driver=driver
    )
    response = worker(sqs_event([sqs_record(job_body("job", {}), message_id="m-1")]), None)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert [c.seconds for c in driver.visibility_changes] == [MAX_DELAY]


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING])
def test_an_error_whose_str_raises_is_still_settled_and_logged(level: int) -> None:
    """An unprintable error is dead-lettered with a stand-in message; the batch goes on."""
    ran: list[str] = []

    def handler(payload: dict[str, str], ctx: JobContext) -> None:
        ran.append(payload["n"])
        if payload["n"] == "1":
            raise _UnprintableError

    log = logging.getLogger("test.regress.unprintable")
    log.setLevel(level)
    driver = MockQueueDriver()
    worker = bootstrap_worker(
        module=Module(name="m", jobs=[define_job(name="job", handler=handler)]), driver=driver, logger=log
    )
    event = sqs_event(
        [
            sqs_record(job_body("job", {"n": "1"}), message_id="m-1"),
            sqs_record(job_body("job", {"n": "2"}), message_id="m-2"),
        ]
    )

    assert worker(event, None) == {"batchItemFailures": []}
    assert ran == ["1", "2"]
    [dead] = driver.dead_letters
    assert dead.message_id == "m-1"
    assert dead.reason == "permanent_error"
    assert dead.error_message == "<_UnprintableError: str() failed>"


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("level", [logging.DEBUG, logging.WARNING])
def test_a_body_without_job_name_is_poison_even_in_a_one_job_module(jobs: int, level: int) -> None:
    """A lone tagged Struct decoded a body without `jobName` as that job: a one-job module ran it."""
    ran: list[object] = []
    names = ["only", "other"][:jobs]
    module = Module(name="m", jobs=[define_job(name=n, handler=lambda p, c: ran.append(p)) for n in names])
    log = logging.getLogger("test.regress.no-job-name")
    log.setLevel(level)
    driver = MockQueueDriver()
    worker = bootstrap_worker(module=module, driver=driver, logger=log)
    event = sqs_event(
        [
            sqs_record('{"payload": {"n": 1}}', message_id="untagged"),
            sqs_record('{"jobName": "", "payload": {"n": 2}}', message_id="empty-name"),
            sqs_record(job_body("only", {"n": 3}), message_id="tagged"),
        ]
    )

    assert worker(event, None) == {"batchItemFailures": [{"itemIdentifier": "empty-name"}]}  # unknown job
    assert ran == [{"n": 3}]
    assert [(d.message_id, d.reason) for d in driver.dead_letters] == [("untagged", "poison_message")]


def test_an_async_module_run_inside_a_running_loop_raises_clearly_and_leaves_no_unawaited_coroutine() -> None:
    """The worker raised asyncio's RuntimeError and Python warned `coroutine ... was never awaited`."""
    import gc
    import warnings

    async def handler(payload: dict[str, int], ctx: JobContext) -> None:
        await asyncio.sleep(0)

    def returns_a_coroutine(payload: dict[str, int], ctx: JobContext) -> object:
        return handler(payload, ctx)  # a `def` handed back an awaitable

    job_a = define_job(name="a", handler=handler)
    job_b = define_job(name="b", handler=returns_a_coroutine)
    module = Module(name="m", jobs=[job_a, job_b])
    driver = MockQueueDriver()
    worker = bootstrap_worker(module=module, driver=driver)
    event = sqs_event([sqs_record(job_body("a", {"n": 1}), message_id="m-1")])

    async def inside_a_loop() -> None:
        with pytest.raises(RuntimeError, match="an event loop is already running in this thread"):
            worker(event, None)
        with pytest.raises(RuntimeError, match="await run_job_async"):
            driver.run_all(worker)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        JobService(driver).enqueue(job_a, {"n": 1})
        asyncio.run(inside_a_loop())
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    # Outside a loop the same worker runs the job, and the sync path runs a returned coroutine too.
    driver.run_all(worker)
    assert driver.dead_letters == []
    sync_only = bootstrap_worker(module=Module(name="s", jobs=[job_b]), driver=driver)
    assert sync_only(sqs_event([sqs_record(job_body("b", {"n": 2}), message_id="m-2")]), None) == {
        "batchItemFailures": []
    }


def test_an_unknown_job_is_dead_lettered_and_logged_under_the_name_its_body_gives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The dead letter of an unregistered job had no job_name (so no JobName attribute on SQS)."""
    driver = MockQueueDriver()
    log = logging.getLogger("test.regress.unknown-name")
    worker = bootstrap_worker(
        module=Module(name="m", jobs=[define_job(name="known", handler=lambda p, c: None)]),
        driver=driver,
        logger=log,
    )
    event = sqs_event(
        [
            sqs_record(job_body("ghost", {}), message_id="last", receive_count=25),
            sqs_record(job_body("ghost", {}), message_id="early", receive_count=1),
        ]
    )
    with caplog.at_level(logging.INFO, logger=log.name):
        assert worker(event, None) == {"batchItemFailures": [{"itemIdentifier": "early"}]}

    [dead] = driver.dead_letters
    assert (dead.message_id, dead.reason, dead.job_name) == ("last", "unknown_job", "ghost")
    assert [(r.message_id, r.job_name) for r in caplog.records] == [("last", "ghost"), ("early", "ghost")]  # type: ignore[attr-defined]
    assert caplog.records[0].getMessage().startswith("job ghost dead_lettered message last")
