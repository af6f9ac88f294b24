"""Fault injection: drivers that fail (through `glasswork.testing_faults.FaultyDriver`), throttling,
the Lambda time budget, hooks that raise, services that cannot start; and security hygiene.

Each test drives a whole run (enqueue, poll, redeliver, drain) and checks the
promise: every job runs at least once, nothing is lost, and only the jobs meant
to fail end in the dead-letter queue. Queues use an injected clock, so
visibility timeouts pass without sleeping.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, cast

import boto3
import msgspec
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from mypy_boto3_sqs import SQSClient

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
from glasswork._wire import JobMessage, lambda_event
from glasswork.cli import main
from glasswork.drivers.base import BatchQueueDriver, ConsumingDriver, QueueAdmin, WorkerDriver
from glasswork.drivers.sqlite import SQLiteQueueDriver
from glasswork.drivers.sqs import SQSQueueDriver
from glasswork.errors import BatchEnqueueError, DriverError, ThrottledError, UnknownJobError
from glasswork.local import Poller, PollReport
from glasswork.testing import FakeLambdaContext, job_body, sqs_event, sqs_record
from glasswork.testing_faults import Call, FaultyDriver

SRC = Path(__file__).resolve().parents[1] / "src" / "glasswork"
START = 1_700_000_000.0


class Clock:
    """A hand-driven clock shared by a driver, the poller and the jobs."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Task(msgspec.Struct, frozen=True):
    n: int
    kind: Literal["ok", "permanent", "transient"] = "ok"


class Runs:
    """Counts handler runs per task number."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

    def handler(self, payload: Task, ctx: JobContext) -> None:
        self.counts[payload.n] += 1
        if payload.kind == "permanent":
            raise PermanentJobError(f"task {payload.n} can never work")
        if payload.kind == "transient":
            raise ConnectionError(f"task {payload.n} failed")


def _module(runs: Runs, *, retry: int = 3) -> Module:
    return Module(
        name="faults", jobs=[define_job(name="task", handler=runs.handler, payload=Task, retry=retry)]
    )


def _noop(payload: int, ctx: JobContext) -> None:
    return None


TASK = define_job(name="task", handler=Runs().handler, payload=Task)
WORK = define_job(name="work", handler=_noop, payload=int)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sqlite(tmp_path: Path, clock: Clock) -> Iterator[SQLiteQueueDriver]:
    driver = SQLiteQueueDriver(tmp_path / "queue.db", clock=clock, visibility_timeout=30)
    yield driver
    driver.close()


def _poller(
    worker: Callable[..., object], driver: ConsumingDriver, clock: Clock, **options: object
) -> Poller:
    return Poller(worker, driver, clock=clock, sleep=clock.sleep, **options)  # type: ignore[arg-type]  # options are Poller's keywords


# --- the wrapper itself -------------------------------------------------------------


class SendOnly:
    """A driver with only the sending side."""

    name = "send-only"

    def __init__(self) -> None:
        self.sent: list[JobMessage] = []

    def enqueue(self, message: JobMessage) -> object:
        self.sent.append(message)
        return None


def test_the_wrapper_keeps_the_shape_of_the_driver_it_wraps(sqlite: SQLiteQueueDriver) -> None:
    sides = (BatchQueueDriver, WorkerDriver, ConsumingDriver, QueueAdmin)
    for driver in (MockQueueDriver(), sqlite, SendOnly()):
        faulty = FaultyDriver(driver)
        assert [isinstance(faulty, side) for side in sides] == [isinstance(driver, side) for side in sides]
        assert faulty.name == driver.name
    assert FaultyDriver(MockQueueDriver()).jobs == []


def test_the_nth_call_fails_and_the_rest_pass() -> None:
    mock = MockQueueDriver()
    faulty = FaultyDriver(mock)
    rule = faulty.fail("enqueue", DriverError("second send lost"), nth=2)
    service = JobService(faulty)

    service.enqueue(TASK, Task(n=1))
    with pytest.raises(DriverError, match="second send lost"):
        service.enqueue(TASK, Task(n=2))
    service.enqueue(TASK, Task(n=3))

    assert [j.payload for j in mock.jobs] == [Task(n=1), Task(n=3)]
    assert rule.fired == 1
    assert [(i.call.method, i.call.number, i.took_effect) for i in faulty.injected] == [("enqueue", 2, False)]
    assert faulty.count("enqueue") == 3


def test_a_predicate_picks_the_calls_and_an_error_factory_names_them() -> None:
    mock = MockQueueDriver()
    faulty = FaultyDriver(mock)

    def odd(call: Call) -> bool:
        message = call.args[0]
        return (
            isinstance(message, JobMessage)
            and isinstance(message.payload, Task)
            and message.payload.n % 2 == 1
        )

    def error(call: Call) -> BaseException:
        return ThrottledError(f"call {call.number} throttled")

    faulty.fail("enqueue", error, when=odd, times=None)
    service = JobService(faulty)
    outcomes = []
    for n in range(5):
        try:
            service.enqueue(TASK, Task(n=n))
            outcomes.append("sent")
        except ThrottledError as exc:
            outcomes.append(str(exc))

    assert outcomes == ["sent", "call 2 throttled", "sent", "call 4 throttled", "sent"]
    faulty.heal("enqueue")
    service.enqueue(TASK, Task(n=7))
    assert [cast("Task", j.payload).n for j in mock.jobs] == [0, 2, 4, 7]


def test_after_lets_the_call_take_effect_then_raises() -> None:
    mock = MockQueueDriver()
    faulty = FaultyDriver(mock)
    faulty.fail("enqueue", DriverError("response lost"), after=True)

    with pytest.raises(DriverError, match="response lost"):
        JobService(faulty).enqueue(TASK, Task(n=1))

    assert len(mock.jobs) == 1
    assert [i.took_effect for i in faulty.injected] == [True]


def test_fail_checks_its_arguments() -> None:
    faulty = FaultyDriver(SendOnly())
    with pytest.raises(AttributeError, match="no public method 'dead_letter'"):
        faulty.fail("dead_letter", DriverError("x"))
    with pytest.raises(ValueError, match="nth and times"):
        faulty.fail("enqueue", DriverError("x"), nth=0)


# --- the dead-letter queue is down --------------------------------------------------


def test_dlq_outage_on_the_mock_retries_until_the_dlq_is_back() -> None:
    runs = Runs()
    mock = MockQueueDriver()
    faulty = FaultyDriver(mock)
    faulty.fail("dead_letter", DriverError("DLQ down"), times=2)
    worker = bootstrap_worker(module=_module(runs), driver=faulty)
    service = JobService(mock)
    service.enqueue_batch([(TASK, Task(n=n)) for n in range(6)] + [(TASK, Task(n=6, kind="permanent"))])

    mock.drain(worker, batch_size=4)

    assert runs.counts == {**dict.fromkeys(range(6), 1), 6: 3}
    assert [(d.reason, d.attempt) for d in mock.dead_letters] == [("permanent_error", 3)]
    assert mock.counts().pending == 0
    assert len(faulty.injected) == 2


@pytest.mark.parametrize("after", [False, True], ids=["send failed", "send done, answer lost"])
@pytest.mark.parametrize("kind", ["permanent", "exhausted", "poison"])
def test_dlq_outage_on_sqlite_loses_nothing_and_dead_letters_once(
    sqlite: SQLiteQueueDriver, clock: Clock, kind: str, after: bool
) -> None:
    runs = Runs()
    faulty = FaultyDriver(sqlite)
    faulty.fail("dead_letter", DriverError("DLQ down"), times=None, after=after)
    worker = bootstrap_worker(module=_module(runs, retry=2), driver=faulty, jitter=lambda: 0.0)
    service = JobService(sqlite)
    service.enqueue_batch([(TASK, Task(n=n)) for n in range(8)])
    if kind == "poison":
        doomed = sqlite.send_raw("{not json", job_name="task")
    else:
        task = Task(n=99, kind="permanent" if kind == "permanent" else "transient")
        doomed = service.enqueue(TASK, task).message_id
    poller = _poller(worker, sqlite, clock, batch_size=10)

    for _ in range(4):
        poller.poll_once()
        clock.advance(31)

    assert sqlite.list_dead_letters() == [] or after
    assert all(runs.counts[n] == 1 for n in range(8))
    faulty.heal()
    poller.run(burst=True)

    dead = sqlite.list_dead_letters()
    assert [d.message_id for d in dead] == [doomed]
    assert sqlite.counts().pending == 0
    assert all(runs.counts[n] == 1 for n in range(8))
    reason = {"permanent": "permanent_error", "exhausted": "retries_exhausted", "poison": "poison_message"}[
        kind
    ]
    assert dead[0].reason == reason
    first_try = 2 if kind == "exhausted" else 1
    if after:
        assert (dead[0].attempt, len(faulty.injected), faulty.count("dead_letter")) == (first_try, 1, 1)
    else:
        assert dead[0].attempt == 5
        assert len(faulty.injected) == 5 - first_try
        assert faulty.count("dead_letter") == len(faulty.injected) + 1


# --- visibility changes fail --------------------------------------------------------


@pytest.mark.parametrize("fails", [False, True], ids=["backoff applied", "backoff lost"])
def test_a_failed_visibility_change_still_retries_at_the_queue_timeout(
    sqlite: SQLiteQueueDriver, clock: Clock, fails: bool
) -> None:
    attempts: list[int] = []

    def later(payload: Task, ctx: JobContext) -> None:
        attempts.append(ctx.attempt_number)
        if ctx.attempt_number == 1:
            raise TransientJobError("not yet", retry_after=120)

    faulty = FaultyDriver(sqlite)
    if fails:
        faulty.fail("change_visibility", DriverError("SQS unreachable"), times=None)
    job = define_job(name="later", handler=later, payload=Task)
    worker = bootstrap_worker(module=Module(name="vis", jobs=[job]), driver=faulty)
    message_id = JobService(sqlite).enqueue(job, Task(n=1)).message_id
    poller = _poller(worker, sqlite, clock)

    first = poller.poll_once()
    assert first.failed == (message_id,)
    assert faulty.count("change_visibility") == 1
    clock.advance(31)
    second = poller.poll_once()

    if fails:
        assert second.deleted == (message_id,)
        assert attempts == [1, 2]
    else:
        assert second.received == 0
        clock.advance(90)
        assert poller.poll_once().deleted == (message_id,)
    assert sqlite.counts().pending == 0
    assert sqlite.list_dead_letters() == []


# --- throttling on enqueue (SQS over HTTP, moto) ------------------------------------


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._data


def _throttled(request: AWSPreparedRequest) -> AWSResponse:
    """The HTTP answer SQS gives a throttled request (JSON protocol), for botocore to parse."""
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    headers["x-amzn-RequestId"] = str(uuid.uuid4())
    headers["x-amzn-query-error"] = "ThrottlingException;Sender"
    payload = {"__type": "com.amazonaws.sqs#ThrottlingException", "message": "Rate exceeded"}
    return AWSResponse(request.url, 400, headers, _Body(json.dumps(payload).encode()))


def _job_ids(request: AWSPreparedRequest) -> list[str]:
    body = request.body
    assert isinstance(body, bytes | str)
    data = json.loads(body)
    entries = data.get("Entries", [data])
    return [json.loads(e["MessageBody"])["jobId"] for e in entries]


def _throttle(client: SQSClient, operation: str, when: Callable[[AWSPreparedRequest], bool]) -> None:
    def handler(request: AWSPreparedRequest, **_: object) -> AWSResponse | None:
        return _throttled(request) if when(request) else None

    # botocore-stubs type handlers as returning None; a before-send handler may return a response
    client.meta.events.register(f"before-send.sqs.{operation}", cast("Callable[..., None]", handler))


@pytest.fixture
def sqs(moto_reset: str) -> SQSClient:
    return boto3.client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=moto_reset,
        config=Config(retries={"total_max_attempts": 1}),
    )


def _queued_job_ids(driver: SQSQueueDriver, expected: int) -> list[str]:
    seen: dict[str, str] = {}
    for _ in range(20):
        for record in driver.receive(max_messages=10, visibility_timeout=60):
            seen[record.message_id] = json.loads(record.body)["jobId"]
        if len(seen) >= expected:
            break
    return sorted(seen.values())


@pytest.mark.sqs
def test_a_throttled_enqueue_raises_a_retriable_error_and_a_retry_sends_it_once(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    driver = SQSQueueDriver({"jobs": url}, sqs)
    throttling = [True]
    _throttle(sqs, "SendMessage", lambda request: throttling[0])
    service = JobService(driver, new_id=lambda: "job-1")

    with pytest.raises(ThrottledError, match="throttled") as caught:
        service.enqueue(TASK, Task(n=1))
    assert isinstance(caught.value, DriverError)
    assert "Rate exceeded" in str(caught.value)

    throttling[0] = False
    service.enqueue(TASK, Task(n=1))
    assert _queued_job_ids(driver, 1) == ["job-1"]


@pytest.mark.sqs
def test_a_throttled_batch_reports_exactly_the_entries_not_sent(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    driver = SQSQueueDriver({"jobs": url}, sqs)
    ids = iter(f"job-{n:02d}" for n in range(25))
    service = JobService(driver, new_id=lambda: next(ids))
    throttled = {f"job-{n:02d}" for n in range(10, 20)}
    throttling = [True]
    _throttle(sqs, "SendMessageBatch", lambda r: throttling[0] and bool(throttled & set(_job_ids(r))))

    with pytest.raises(BatchEnqueueError) as caught:
        service.enqueue_batch([(TASK, Task(n=n)) for n in range(25)])

    failed = caught.value.failed
    assert sorted(m.job_id for m, _ in failed) == sorted(throttled)
    assert all(isinstance(error, ThrottledError) for _, error in failed)
    assert sorted(r.job_id for r in caught.value.succeeded) == sorted(
        f"job-{n:02d}" for n in range(25) if f"job-{n:02d}" not in throttled
    )
    throttling[0] = False
    driver.enqueue_batch([message for message, _ in failed])
    assert _queued_job_ids(driver, 25) == [f"job-{n:02d}" for n in range(25)]


# --- the Lambda time budget ---------------------------------------------------------


@pytest.mark.parametrize("asynchronous", [False, True], ids=["def", "async def"])
def test_jobs_over_the_time_budget_wait_for_the_next_invocation(
    sqlite: SQLiteQueueDriver, clock: Clock, asynchronous: bool
) -> None:
    runs: Counter[int] = Counter()

    def slow(payload: Task, ctx: JobContext) -> None:
        runs[payload.n] += 1
        clock.advance(2.5)

    async def slow_async(payload: Task, ctx: JobContext) -> None:
        slow(payload, ctx)
        await asyncio.sleep(0)

    job = define_job(name="slow", handler=slow_async if asynchronous else slow, payload=Task)
    worker = bootstrap_worker(module=Module(name="budget", jobs=[job]), driver=sqlite, time_margin=1.0)
    JobService(sqlite).enqueue_batch([(job, Task(n=n)) for n in range(20)])
    reports: list[PollReport] = []

    _poller(worker, sqlite, clock, function_timeout=10, visibility_timeout=10).run(
        burst=True, on_batch=reports.append
    )

    assert runs == dict.fromkeys(range(20), 1), "every job ran exactly once"
    assert sqlite.counts().pending == 0
    assert sqlite.list_dead_letters() == []
    assert all(len(r.deleted) == 4 and not r.timed_out for r in reports)
    assert sum(len(r.failed) for r in reports) > 0


def test_a_countdown_context_defers_the_rest_of_each_batch_and_loses_none() -> None:
    runs: Counter[int] = Counter()
    remaining = [0]

    def spend(payload: Task, ctx: JobContext) -> None:
        runs[payload.n] += 1
        remaining[0] -= 2_000

    driver = MockQueueDriver(clock=Clock(), visibility_timeout=0)
    job = define_job(name="spend", handler=spend, payload=Task)
    worker = bootstrap_worker(module=Module(name="budget", jobs=[job]), driver=driver)
    JobService(driver).enqueue_batch([(job, Task(n=n)) for n in range(25)])
    started: list[int] = []

    while records := driver.receive(max_messages=10):
        remaining[0] = 7_000
        report = worker.process_batch(lambda_event(records), FakeLambdaContext(lambda: remaining[0]))
        started.append(sum(s.result.ran for s in report.settled))
        assert [s.result.ran for s in report.settled] == [
            s.disposition == "succeeded" for s in report.settled
        ]
        failed = set(report.ids("failed"))
        driver.delete([r for r in records if r.message_id not in failed])

    assert runs == dict.fromkeys(range(25), 1), "every job ran exactly once"
    assert started == [4, 4, 4, 4, 4, 4, 1]
    assert driver.counts().pending == 0
    assert driver.dead_letters == []


# --- hooks that raise, with async jobs and FIFO groups ------------------------------

HOOKS = ("on_job_start", "on_job_complete", "on_job_failed", "on_job_dead_letter")


def _fifo_event() -> dict[str, object]:
    plan: list[tuple[str, dict[str, object]]] = [
        ("g1", {"n": 1}),
        ("g1", {"n": 2, "kind": "transient"}),
        ("g1", {"n": 3}),
        ("g2", {"n": 4, "kind": "permanent"}),
        ("g2", {"n": 5}),
        ("g3", {"n": "not a number"}),
        ("g3", {"n": 7}),
        ("g4", {"n": 8}),
    ]
    return sqs_event(
        sqs_record(job_body("task", payload), message_id=f"m-{i}", group_id=group)
        for i, (group, payload) in enumerate(plan)
    )


async def _async_task(payload: Task, ctx: JobContext) -> None:
    await asyncio.sleep(0)
    Runs().handler(payload, ctx)


def _run_fifo(hooks: WorkerHooks) -> tuple[dict[str, object], list[tuple[str, str]]]:
    driver = MockQueueDriver()
    worker = bootstrap_worker(
        module=Module(
            name="fifo", jobs=[define_job(name="task", handler=_async_task, payload=Task, retry=3)]
        ),
        driver=driver,
        hooks=hooks,
    )
    response = worker(_fifo_event(), FakeLambdaContext())
    return response, sorted((d.message_id, d.reason) for d in driver.dead_letters)


@pytest.mark.parametrize("failing", HOOKS)
@pytest.mark.parametrize("asynchronous", [False, True], ids=["def hook", "async def hook"])
def test_a_raising_hook_changes_no_outcome_of_async_fifo_jobs(
    failing: str, asynchronous: bool, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def boom(job: JobExecution, *rest: object) -> None:
        calls.append(job.message_id)
        raise RuntimeError(f"{failing} broke")

    async def boom_async(job: JobExecution, *rest: object) -> None:
        await asyncio.sleep(0)
        boom(job, *rest)

    baseline = _run_fifo(WorkerHooks())
    with caplog.at_level(logging.ERROR, logger="glasswork.worker"):
        outcome = _run_fifo(WorkerHooks(**{failing: boom_async if asynchronous else boom}))

    assert outcome == baseline
    assert baseline == (
        {"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]},
        [("m-3", "permanent_error"), ("m-5", "invalid_payload")],
    )
    assert calls, f"{failing} never ran"
    assert sum(f"{failing} broke" in (r.exc_text or "") for r in caplog.records) == len(calls)


# --- a service that cannot start ----------------------------------------------------

BROKEN_SERVICE_APP = """
from glasswork import Module, define_job

STARTS = []


def connect():
    STARTS.append(1)
    raise ConnectionRefusedError("database at 127.0.0.1:1 refused the connection")


def work(payload, ctx):
    ctx.services.db


app = Module(name="broken", jobs=[define_job(name="work", handler=work)], services={"db": connect})
"""


def test_a_service_that_cannot_start_stops_the_worker_at_cold_start_not_per_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "gw_broken_service.py").write_text(BROKEN_SERVICE_APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    with SQLiteQueueDriver(tmp_path / "queue.db") as driver:
        service = JobService(driver)
        service.enqueue_batch([(WORK, n) for n in range(3)])
    try:
        code = main(["worker", "gw_broken_service:app", "--queue", url, "--burst"])
        started = sys.modules["gw_broken_service"].STARTS
    finally:
        sys.modules.pop("gw_broken_service", None)

    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1
    assert "service 'db' failed to start" in lines[0]
    assert "ConnectionRefusedError" in lines[0]
    assert "Traceback" not in err
    assert started == [1]
    with SQLiteQueueDriver(tmp_path / "queue.db") as driver:
        counts = driver.counts()
        records = driver.receive(max_messages=10)
    assert (counts.visible, counts.in_flight, counts.dead) == (3, 0, 0)
    assert {r.attributes.approximate_receive_count for r in records} == {"1"}, "no record was received"


# --- security hygiene ---------------------------------------------------------------

FORBIDDEN_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "marshal",
    "shelve",
    "dill",
    "cloudpickle",
    "yaml",
    "jsonpickle",
}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


def _source_files() -> list[Path]:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 10
    return files


def test_the_package_never_uses_pickle_eval_or_exec() -> None:
    found: list[str] = []
    for path in _source_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                found += [
                    f"{where} import {a.name}"
                    for a in node.names
                    if a.name.split(".")[0] in FORBIDDEN_MODULES
                ]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{where} from {node.module} import")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in FORBIDDEN_CALLS
            ):
                found.append(f"{where} {node.func.id}()")
            elif isinstance(node, ast.Attribute) and node.attr in {"loads", "load"}:
                base = node.value
                if isinstance(base, ast.Name) and base.id in FORBIDDEN_MODULES:
                    found.append(f"{where} {base.id}.{node.attr}")
    assert found == []


def test_only_the_cli_imports_code_by_name_and_only_the_operators_app() -> None:
    importers = []
    for path in _source_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {
                "import_module",
                "find_spec",
                "spec_from_file_location",
            }:
                importers.append(str(path.relative_to(SRC)))
    assert set(importers) <= {"cli.py"}, importers


@pytest.mark.parametrize(
    "name",
    [
        "os:system",
        "os.system",
        "subprocess:run",
        "builtins:eval",
        "glasswork.worker:bootstrap_worker",
        "__import__",
    ],
)
def test_a_body_naming_python_code_is_just_an_unknown_job(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"touch {marker}"
    driver = MockQueueDriver()
    worker = bootstrap_worker(module=_module(Runs()), driver=driver)

    early = worker.process_batch(sqs_event([sqs_record(job_body(name, payload), message_id="m-1")]))
    last = worker.process_batch(
        sqs_event([sqs_record(job_body(name, payload), message_id="m-2", receive_count=25)])
    )

    [first] = early.settled
    assert first.disposition == "failed"
    assert isinstance(getattr(first.result.outcome, "error", None), UnknownJobError)
    assert [(d.message_id, d.reason) for d in driver.dead_letters] == [("m-2", "unknown_job")]
    assert last.ids("dead_lettered") == ["m-2"]
    with pytest.raises(UnknownJobError, match="unknown job"):
        worker({"jobName": name, "payload": payload}, None)
    assert not marker.exists()


SECRET = "s3cr3t-token-4f9a"


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(record.exc_text or "")
        parts.extend(f"{k}={v}" for k, v in vars(record).items() if k not in {"msg", "args"})
    return "\n".join(parts)


def _payload_logging_run(caplog: pytest.LogCaptureFixture, **options: object) -> str:
    class Secret(msgspec.Struct, frozen=True):
        token: str
        n: int

    def handler(payload: Secret, ctx: JobContext) -> None:
        if payload.n == 2:
            raise ConnectionError("upstream down")
        if payload.n == 3:
            raise PermanentJobError("refused")

    worker = bootstrap_worker(
        module=Module(
            name="logs", jobs=[define_job(name="secret", handler=handler, payload=Secret, retry=5)]
        ),
        driver=MockQueueDriver(),
        **options,  # type: ignore[arg-type]  # bootstrap_worker's keywords
    )
    records = [
        sqs_record(job_body("secret", {"token": SECRET, "n": n}), message_id=f"m-{n}") for n in (1, 2, 3)
    ] + [sqs_record(job_body("secret", {"token": SECRET, "n": "x"}), message_id="m-4")]
    with caplog.at_level(logging.DEBUG):
        worker(sqs_event(records), None)
    return _log_text(caplog)


def test_payloads_are_not_logged_by_default(caplog: pytest.LogCaptureFixture) -> None:
    text = _payload_logging_run(caplog)
    assert "m-3" in text
    assert SECRET not in text


def test_log_payloads_adds_the_payload_to_the_outcome_logs(caplog: pytest.LogCaptureFixture) -> None:
    text = _payload_logging_run(caplog, log_payloads=True)
    assert SECRET in text


def test_an_oversized_body_is_dead_lettered_as_poison_without_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = Runs()
    driver = MockQueueDriver()
    worker = bootstrap_worker(module=_module(runs), driver=driver, max_body_bytes=1_000)
    small = job_body("task", {"n": 1})
    big = job_body("task", {"n": 2, "kind": "ok", "pad": "x" * 1_000})

    report = worker.process_batch(
        sqs_event([sqs_record(small, message_id="m-1"), sqs_record(big, message_id="m-2")])
    )

    assert report.ids("succeeded") == ["m-1"]
    assert report.ids("dead_lettered") == ["m-2"]
    assert runs.counts == {1: 1}
    [dead] = driver.dead_letters
    assert dead.reason == "poison_message"
    assert "over the limit of 1000" in dead.error_message
    assert dead.job_name is None, "the body was not decoded, not even to find its job"


def test_faulty_driver_ships_in_the_package_with_a_sorted_all() -> None:
    from glasswork import testing_faults

    assert testing_faults.__all__ == sorted(set(testing_faults.__all__))
    assert all(hasattr(testing_faults, name) for name in testing_faults.__all__)
    assert FaultyDriver.__module__ == "glasswork.testing_faults"
    assert type(FaultyDriver(MockQueueDriver())).__module__ == "glasswork.testing_faults"
