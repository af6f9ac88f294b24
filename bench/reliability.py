"""Reliability figures: inject faults into whole runs and count lost and duplicated jobs.

Prints the README's "Reliability" table (Markdown). Each row is one fault,
run several times with different seeds; "jobs lost" must be 0 on every row.

- Process faults (the `kill -9` plans of `tests/test_process_faults.py`, made
  bigger): `glasswork worker --burst` processes on one SQLite file, or on
  moto's SQS server, killed with SIGKILL at random moments while busy and
  restarted until the queue is drained. Duplicates are jobs that ran to their
  end more than once; on SQLite the bound is `kills * batch_size`.
- Driver faults (`tests.faults.FaultyDriver` around the SQLite driver, a
  hand-driven clock, the local `Poller` standing in for Lambda): the DLQ send
  failing, visibility changes failing, the Lambda time budget running out,
  every hook raising; and SQS throttling `SendMessageBatch` (moto, answered by
  a botocore `before-send` hook) while the caller re-sends what
  `BatchEnqueueError` lists.

Run: `python bench/reliability.py` (about two minutes on 2 CPUs); `--quick`
for a smaller smoke run. It uses `GLASSWORK_TEST_SQS_ENDPOINT` when set (as
`make bench` sets it), else starts moto's threaded server on 127.0.0.1.
This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults import (  # noqa: E402  # after the repo root is on sys.path
    Call,
    FaultyDriver,
    KillPlan,
    KillReport,
    SQLiteTarget,
    SQSTarget,
    run_kill_plan,
)

from glasswork import (  # noqa: E402  # see above
    JobContext,
    JobMessage,
    JobService,
    Module,
    PermanentJobError,
    TransientJobError,
    WorkerHooks,
    bootstrap_worker,
    define_job,
)
from glasswork.drivers.sqlite import SQLiteQueueDriver  # noqa: E402  # see above
from glasswork.drivers.sqs import SQSQueueDriver  # noqa: E402  # see above
from glasswork.errors import BatchEnqueueError, DriverError, ThrottledError  # noqa: E402  # see above
from glasswork.local import Poller  # noqa: E402  # see above

SRC = ROOT / "src"


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the table: a fault, summed over its runs."""

    fault: str
    injected: str
    runs: int
    jobs: int
    lost: int
    duplicates: str


class Tally(msgspec.Struct, frozen=True, kw_only=True):
    """One run of an in-process scenario."""

    lost: int
    duplicates: int
    injected: int


class Clock:
    """A hand-driven clock shared by the driver, the poller and the jobs."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Task(msgspec.Struct, frozen=True):
    n: int
    kind: Literal["ok", "doomed", "once"] = "ok"
    delay: int = 0


@contextmanager
def _sqlite(clock: Clock) -> Iterator[SQLiteQueueDriver]:
    with tempfile.TemporaryDirectory() as root:
        driver = SQLiteQueueDriver(Path(root) / "queue.db", clock=clock, visibility_timeout=30)
        try:
            yield driver
        finally:
            driver.close()


def _tasks(jobs: int, rng: random.Random, *, doomed: float = 0.0, once: float = 0.0) -> list[Task]:
    tasks = []
    for n in range(jobs):
        draw = rng.random()
        kind: Literal["ok", "doomed", "once"] = (
            "doomed" if draw < doomed else "once" if draw < doomed + once else "ok"
        )
        tasks.append(Task(n=n, kind=kind, delay=rng.randint(30, 600)))
    return tasks


class Ledger:
    """Counts successful runs per task and knows which tasks are meant to be dead-lettered."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        self.tasks = list(tasks)
        self.done: Counter[int] = Counter()

    def handler(self, payload: Task, ctx: JobContext) -> None:
        if payload.kind == "doomed":
            raise PermanentJobError("designed to fail")
        if payload.kind == "once" and ctx.attempt_number == 1:
            raise TransientJobError("fails once", retry_after=payload.delay)
        self.done[payload.n] += 1

    def module(self) -> Module:
        return Module(name="reliability", jobs=[define_job(name="task", handler=self.handler, payload=Task)])

    def tally(self, driver: SQLiteQueueDriver, injected: int) -> Tally:
        dead = Counter(
            msgspec.json.decode(e.body, type=_Body).payload.n for e in driver.list_dead_letters(limit=100_000)
        )
        doomed = {t.n for t in self.tasks if t.kind == "doomed"}
        lost = sum(1 for t in self.tasks if t.kind != "doomed" and not self.done[t.n])
        lost += len(doomed - set(dead)) + len(set(dead) - doomed) + driver.counts().pending
        duplicates = sum(c - 1 for c in self.done.values()) + sum(c - 1 for c in dead.values())
        return Tally(lost=lost, duplicates=duplicates, injected=injected)


class _Body(msgspec.Struct, frozen=True):
    payload: Task


def _run(driver: SQLiteQueueDriver, worker: Callable[..., object], clock: Clock, **options: object) -> None:
    Poller(worker, driver, clock=clock, sleep=clock.sleep, **options).run(burst=True)  # type: ignore[arg-type]  # Poller's keywords


def dlq_outage(jobs: int, seed: int) -> Tally:
    """The DLQ refuses every send for 10 minutes, then one in five."""
    rng, clock = random.Random(seed), Clock()
    with _sqlite(clock) as driver:
        ledger = Ledger(_tasks(jobs, rng, doomed=0.05))
        faulty = FaultyDriver(driver)
        back_at = clock.now + 600

        def down(call: Call) -> bool:
            return clock.now < back_at or rng.random() < 0.2

        faulty.fail("dead_letter", DriverError("DLQ unreachable"), when=down, times=None)
        JobService(driver).enqueue_batch([(TASK, t) for t in ledger.tasks])
        _run(driver, bootstrap_worker(module=ledger.module(), driver=faulty, logger=_silent_logger()), clock)
        return ledger.tally(driver, len(faulty.injected))


def visibility_failures(jobs: int, seed: int) -> Tally:
    """Every job fails once with `retry_after`; half the `ChangeMessageVisibility` calls fail."""
    rng, clock = random.Random(seed), Clock()
    with _sqlite(clock) as driver:
        ledger = Ledger(_tasks(jobs, rng, once=1.0))
        faulty = FaultyDriver(driver)
        faulty.fail(
            "change_visibility", DriverError("SQS unreachable"), when=lambda c: rng.random() < 0.5, times=None
        )
        JobService(driver).enqueue_batch([(TASK, t) for t in ledger.tasks])
        _run(driver, bootstrap_worker(module=ledger.module(), driver=faulty, logger=_silent_logger()), clock)
        return ledger.tally(driver, len(faulty.injected))


def time_budget(jobs: int, seed: int) -> Tally:
    """Jobs take 2.5 s of a 10 s function timeout: each batch of 10 runs 4, defers 6."""
    rng, clock = random.Random(seed), Clock()
    with _sqlite(clock) as driver:
        ledger = Ledger(_tasks(jobs, rng, doomed=0.02))
        deferred = Counter[str]()

        def slow(payload: Task, ctx: JobContext) -> None:
            clock.sleep(2.5)
            ledger.handler(payload, ctx)

        worker = bootstrap_worker(
            module=Module(name="budget", jobs=[define_job(name="task", handler=slow, payload=Task)]),
            driver=driver,
            time_margin=1.0,
            logger=_silent_logger(),
        )
        JobService(driver).enqueue_batch([(TASK, t) for t in ledger.tasks])

        def handler(event: dict[str, object], context: object) -> dict[str, object]:
            report = worker.process_batch(event, context)
            deferred["n"] += sum(1 for s in report.settled if not s.result.ran)
            return dict(report.response())

        _run(driver, handler, clock, function_timeout=10, visibility_timeout=10)
        return ledger.tally(driver, deferred["n"])


def raising_hooks(jobs: int, seed: int) -> Tally:
    """All four hooks raise on every call; 5% of jobs fail for good, 5% fail once."""
    rng, clock = random.Random(seed), Clock()
    raised = Counter[str]()

    def boom(*args: object) -> None:
        raised["n"] += 1
        raise RuntimeError("hook failed")

    hooks = WorkerHooks(on_job_start=boom, on_job_complete=boom, on_job_failed=boom, on_job_dead_letter=boom)
    with _sqlite(clock) as driver:
        ledger = Ledger(_tasks(jobs, rng, doomed=0.05, once=0.05))
        JobService(driver).enqueue_batch([(TASK, t) for t in ledger.tasks])
        silent = _silent_logger()
        _run(
            driver, bootstrap_worker(module=ledger.module(), driver=driver, hooks=hooks, logger=silent), clock
        )
        return ledger.tally(driver, raised["n"])


def _silent_logger() -> logging.Logger:
    log = logging.getLogger("bench.reliability.silent")
    log.propagate = False
    log.addHandler(logging.NullHandler())
    logging.getLogger("glasswork").propagate = False
    logging.getLogger("glasswork").addHandler(logging.NullHandler())
    return log


def _noop(payload: Task, ctx: JobContext) -> None:
    return None


TASK = define_job(name="task", handler=_noop, payload=Task)


def throttled_enqueue(jobs: int, seed: int, endpoint: str) -> Tally:
    """3 in 10 `SendMessageBatch` requests throttled; the caller re-sends what `BatchEnqueueError` lists."""
    import boto3
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from botocore.compat import HTTPHeaders

    rng = random.Random(seed)
    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
    url = client.create_queue(QueueName=f"throttle-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    throttled = Counter[str]()

    class _Stream:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def stream(self, **_: object) -> Iterator[bytes]:
            yield self.data

    def throttle(request: AWSPreparedRequest, **_: object) -> AWSResponse | None:
        if rng.random() >= 0.3:
            return None
        throttled["n"] += 1
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        headers["x-amzn-query-error"] = "ThrottlingException;Sender"
        body = json.dumps({"__type": "com.amazonaws.sqs#ThrottlingException", "message": "Rate exceeded"})
        return AWSResponse(request.url, 400, headers, _Stream(body.encode()))

    client.meta.events.register("before-send.sqs.SendMessageBatch", cast("Callable[..., None]", throttle))
    driver = SQSQueueDriver({"jobs": url}, client)
    messages = [JobService(driver).message(TASK, Task(n=n)) for n in range(jobs)]
    pending: list[JobMessage] = messages
    while pending:
        try:
            driver.enqueue_batch(pending)
            pending = []
        except BatchEnqueueError as partial:
            pending = [m for m, _ in partial.failed]
        except ThrottledError:
            continue
    seen: Counter[str] = Counter()
    for _ in range(jobs):
        batch = driver.receive(max_messages=10, visibility_timeout=600)
        if not batch:
            break
        seen.update(json.loads(r.body)["jobId"] for r in batch)
    client.delete_queue(QueueUrl=url)
    client.close()
    lost = sum(1 for m in messages if not seen[m.job_id])
    return Tally(lost=lost, duplicates=sum(c - 1 for c in seen.values()), injected=throttled["n"])


# --- the table -----------------------------------------------------------------------


def _kill_row(
    fault: str,
    plans: Sequence[KillPlan],
    make: Callable[[KillPlan, Path], SQLiteTarget | SQSTarget],
    *,
    bounded: bool,
) -> Row:
    reports: list[KillReport] = []
    for plan in plans:
        with tempfile.TemporaryDirectory() as root:
            target = make(plan, Path(root))
            try:
                report = run_kill_plan(plan, target, Path(root), src=SRC)
            finally:
                target.close()
        _progress(
            f"{fault} seed {plan.seed}: {report.kills} kills ({report.kills_mid_job} mid-job), "
            f"{report.duplicates} duplicates, {report.dead_duplicates} duplicate dead letters, "
            f"lost {len(report.lost)}, left {report.left}, failed workers {len(report.failed_workers)}, "
            f"{report.elapsed:.1f} s"
        )
        reports.append(report)
    plan = plans[0]
    kills = sum(r.kills for r in reports)
    mid_job = sum(r.kills_mid_job for r in reports)
    lost = sum(len(r.lost) + r.left + len(r.unexpected_dead) + len(r.failed_workers) for r in reports)
    duplicates = sum(r.duplicates for r in reports)
    dead = sum(r.dead_duplicates for r in reports)
    text = f"{duplicates}"
    if bounded:
        text += f" (bound {kills * plan.batch_size})"
    if dead:
        text += f" + {dead} duplicate DLQ {'entry' if dead == 1 else 'entries'}"
    designed = plan.doomed + plan.exhausted + plan.poison
    return Row(
        fault=fault,
        injected=f"{kills} `kill -9` of busy workers ({mid_job} mid-job; {plan.workers} at a time, "
        f"batch {plan.batch_size}), "
        f"restarted until drained; {designed} jobs designed to fail",
        runs=len(reports),
        jobs=plan.jobs + designed,
        lost=lost,
        duplicates=text,
    )


def _sqlite_target(plan: KillPlan, root: Path) -> SQLiteTarget:
    return SQLiteTarget(root / "queue.db")


def _tally_row(fault: str, injected: str, jobs: int, runs: list[Tally]) -> Row:
    for index, tally in enumerate(runs):
        _progress(
            f"{fault} run {index}: lost {tally.lost}, duplicates {tally.duplicates}, "
            f"injected {tally.injected}"
        )
    return Row(
        fault=fault,
        injected=injected.format(injected=sum(t.injected for t in runs)),
        runs=len(runs),
        jobs=jobs,
        lost=sum(t.lost for t in runs),
        duplicates=str(sum(t.duplicates for t in runs)),
    )


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def _sqs_endpoint() -> Iterator[str]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    endpoint = os.environ.get("GLASSWORK_TEST_SQS_ENDPOINT")
    if endpoint:
        yield endpoint
        return
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| Fault | What was injected | Runs | Jobs per run | Jobs lost | Duplicates seen |",
        "|---|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r.fault} | {r.injected} | {r.runs} | {r.jobs:,} | {r.lost} | {r.duplicates} |" for r in rows
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each (a smoke run)")
    parser.add_argument("--seed", type=int, default=2026, help="the first run's seed (default 2026)")
    args = parser.parse_args(argv)
    runs, size, sqs_size = (1, 200, 40) if args.quick else (3, 1_000, 100)
    seeds = [args.seed + i for i in range(runs)]
    started = time.monotonic()
    rows: list[Row] = []
    with _sqs_endpoint() as endpoint:
        for workers, kills in ((2, 15), (4, 25)):
            plans = [
                KillPlan(
                    jobs=size,
                    workers=workers,
                    kills=kills * size // 1_000 or 2,
                    mean_job_ms=10,
                    seed=s,
                    deadline=300,
                )
                for s in seeds
            ]
            rows.append(
                _kill_row(
                    f"Worker killed, {workers} workers on one SQLite file",
                    plans,
                    _sqlite_target,
                    bounded=True,
                )
            )
        sqs_plans = [
            KillPlan(
                jobs=sqs_size,
                doomed=2,
                exhausted=2,
                poison=1,
                workers=2,
                kills=4 if sqs_size >= 100 else 2,
                batch_size=5,
                visibility_timeout=3,
                mean_job_ms=20,
                seed=s,
                deadline=300,
            )
            for s in seeds[:2]
        ]
        rows.append(
            _kill_row(
                "Worker killed, SQS (moto server)",
                sqs_plans,
                lambda plan, root: SQSTarget(endpoint, visibility_timeout=plan.visibility_timeout),
                bounded=False,
            )
        )
        rows.append(
            _tally_row(
                "DLQ send fails",
                "`dead_letter` raises for 10 min, then 1 in 5 calls ({injected} failures); "
                "5% of jobs permanent",
                size,
                [dlq_outage(size, s) for s in seeds],
            )
        )
        rows.append(
            _tally_row(
                "Visibility change fails",
                "every job fails once with `retry_after`; "
                "1 in 2 `change_visibility` calls (one per batch) raise ({injected} calls)",
                size,
                [visibility_failures(size, s) for s in seeds],
            )
        )
        rows.append(
            _tally_row(
                "Lambda time budget runs out",
                "jobs take 2.5 s of a 10 s timeout, margin 1 s ({injected} records deferred)",
                size,
                [time_budget(size, s) for s in seeds],
            )
        )
        rows.append(
            _tally_row(
                "Every hook raises",
                "all four hooks raise on every call ({injected} raised); 5% permanent, 5% fail once",
                size,
                [raising_hooks(size, s) for s in seeds],
            )
        )
        rows.append(
            _tally_row(
                "SQS throttles enqueue",
                "3 in 10 `SendMessageBatch` requests answered `ThrottlingException` ({injected} throttled); "
                "failed entries re-sent",
                sqs_size * 3,
                [throttled_enqueue(sqs_size * 3, s, endpoint) for s in seeds[:2]],
            )
        )
    print(table(rows))
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    print(
        f"\n`python bench/reliability.py{' --quick' if args.quick else ''} --seed {args.seed}`: "
        f"{when}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{time.monotonic() - started:.0f} s."
    )
    return 1 if any(r.lost for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
