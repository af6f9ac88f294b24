"""No-op jobs per second on one redis-server: glasswork's Redis driver vs RQ, Dramatiq and Celery.

Every side gets the same server (`--redis-url`, else `GLASSWORK_TEST_REDIS_URL`;
FLUSHALL before each run), the same N, the same no-op job (`noop(n)` returns
None) and the same number of worker processes:

- glasswork: `JobService(RedisQueueDriver).enqueue`, one call a job, and
  `enqueue_batch`, 10 a call (SQS's limit). Drained by `glasswork worker
  bench_redis:APP --queue redis://...?queue=bench --burst` (`glasswork.cli.main`,
  what `python -m glasswork` runs): the local `Poller`, burst mode, feeding
  `bootstrap_worker(module=...)`'s handler, batch size 10. One more row runs
  bench_local.py's way, that `Poller` in the benchmark's own process. A receive
  hides a message for its visibility timeout (30 s) and it is deleted only
  after its job returned; a dead worker's messages come back when the timeout
  passes: at-least-once.
- RQ: `Queue.enqueue("bench_redis.noop", n)` (and `enqueue_many`, 10 a call).
  Drained by `Worker(...).work(burst=True)`, what `rq worker --burst` runs, in
  two classes: `Worker`, the default, which forks a work-horse process per job,
  and `SimpleWorker`, which runs the job in the worker process. The faster of
  the two at each process count is the baseline of the ratios. An RQ worker
  moves the job id to an intermediate list and the started-job registry; a job
  whose worker dies is "abandoned" to the failed-job registry and does not run
  again unless it was enqueued with `Retry`: at-most-once by default. The
  workers log at WARNING here (`rq worker` logs at INFO, a few lines a job).
- Dramatiq (`dramatiq[redis]`, `RedisBroker`): `actor.send(n)`. Drained by
  `dramatiq.Worker(broker)`, one a process, with its default 8 threads: with
  one thread it drained about 7x slower here, since its consumer prefetches
  two messages a thread and backs off while they are out. A message is acked
  after the actor returned; a dead worker's unacked messages go back to the
  queue: at-least-once. No burst mode: it is killed once the queue is empty.
- Celery (`celery[redis]`): `task.delay(n)`. Drained by `app.Worker(pool_cls=
  "solo")`, what `celery worker --pool solo` runs, one a process, without
  mingle, gossip and heartbeat, results ignored. Celery acks a message before
  running it by default (at-most-once); here `task_acks_late=True` acks after,
  as glasswork deletes after (at-least-once). No burst mode either.

Each worker process is this script (`--worker KIND`): it imports its library,
builds its worker, says "ready", and starts working when the benchmark says
"go" to all of them at once. A drain is timed from "go" until the server shows
every job done, polled every 5 ms (glasswork: `counts().pending == 0`; RQ: N
jobs in the finished and failed registries; Dramatiq: its message hash empty;
Celery: the queue and the unacked hash empty twice 2 ms apart, since a fetched
message is briefly in neither). Interpreter start-up and imports are outside
the clock; each library's own start (parsing arguments, connecting,
registering the worker, Celery's boot steps: milliseconds to tens of them) is
inside it. Each run is checked: every job done, none failed or dead-lettered.
Every configuration runs once a round, `--repeat` rounds, and its fastest run
counts; a configuration whose slowest run took over 1.5x its fastest is named
on a "noisy" line.
The "redis CPU" column is the server's own CPU time per job during the run
(`INFO cpu`): the cost a shared server pays, whatever the client's speed.

At the default N glasswork drains in well under a tenth of a second, so its
fixed costs weigh on its rate (which makes its ratios conservative) and its
scaling at that N says little (four workers' start-up, about 15 ms of CPU
each on 2 cores, is as long as one worker's whole drain): it is also measured
alone at 10x N.

A second drain shows scaling where processes can scale: `--io-jobs` (320)
jobs that each wait 10 ms (`time.sleep`, as a call to an API would), at the
same worker counts, for the sides that run one job at a time a process:
glasswork (a batch's jobs run one after another), RQ's `SimpleWorker` (the
faster class; forking costs more than the job) and Celery's solo pool.
Dramatiq is left out: its 8 threads a process already run 8 jobs at once. Its
"redis CPU" column is mostly this script's polling. It has a PASS/FAIL line
of its own: glasswork gains at least 3x from 1 to 4 workers.

The cores are shared by the workers, the redis-server, this script and
whatever else runs on the machine (the load average is printed before and
after). No-op jobs are CPU-bound: a worker and the server take turns (two
round trips a batch), so one worker already keeps about one core busy, and on
2 cores four can at best approach 2x, less as each job costs more CPU with
four (their start-up inside the clock, context switches), and nothing when
other processes keep the cores busy: four workers then get no more CPU than
one, and the redis-server, which every job goes through, waits for a core
(measured on a 2-core VM: 40-55% of a four-worker drain). The "honest limit"
line puts numbers on it from the workers' CPU (Linux's
`/proc/<pid>/schedstat`, from "go" until done) and the server's: what 2
cores could do at four workers' CPU cost per job, over one worker's rate. A
side that gains more than the cores allow was waiting (on the network or its
own polling) with one worker. Quote ratios, not the absolute rates: these
machines are shared and noisy.

Run: `python bench/bench_redis.py [-n 300] [--io-jobs 320] [--repeat 3] [--workers 1 --workers 4]
[--only glasswork --only rq ...] [--redis-url redis://127.0.0.1:6379/0]`
(needs rq; the Dramatiq and Celery rows run when they are installed: the bench
extra has all three). `make bench` starts the redis-server. This is a
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Final, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis import Redis

from glasswork import JobContext, JobService, Module, bootstrap_worker, define_job
from glasswork.drivers.redis import RedisQueueDriver
from glasswork.local import Poller

if TYPE_CHECKING:
    from celery import Celery  # type: ignore[import-untyped, import-not-found, unused-ignore]  # no types
    from dramatiq import Broker  # type: ignore[import-not-found, unused-ignore]  # the bench extra
    from rq import Queue  # type: ignore[import-not-found, unused-ignore]  # the bench extra

QUEUE: Final = "bench"
SCRIPT: Final = Path(__file__).resolve()
LIBRARIES: Final = ("glasswork", "rq", "dramatiq", "celery")
CHUNK: Final = 10
POLL_SECONDS: Final = 0.005
DRAIN_TIMEOUT: Final = 600.0
STOP_TIMEOUT: Final = 30.0
NOISY: Final = 1.5
IO_SECONDS: Final = 0.01
IO_SIDES: Final = ("glasswork", "rq-simple", "celery")
"""The sides of the I/O-bound drain: one job at a time a process (RQ: the faster class; no Dramatiq, whose
8 threads a process already run 8 jobs at once)."""
IO_TARGET: Final = 3.0


def noop(n: int) -> None:
    """The job RQ, Dramatiq and Celery run: nothing."""


def io_wait(n: int) -> None:
    """The I/O-bound job RQ and Celery run: it waits IO_SECONDS, as a call to an API would."""
    time.sleep(IO_SECONDS)


def _noop(payload: int, ctx: JobContext) -> None:
    return None


def _io_wait(payload: int, ctx: JobContext) -> None:
    time.sleep(IO_SECONDS)


NOOP_JOB = define_job(name="noop", handler=_noop, payload=int)
IO_JOB = define_job(name="io_wait", handler=_io_wait, payload=int)
JOBS: Final = {"noop": NOOP_JOB, "io_wait": IO_JOB}
APP = Module(name="bench", jobs=[NOOP_JOB, IO_JOB])
"""What `glasswork worker bench_redis:APP` runs."""
PEER_JOBS: Final = {"noop": noop, "io_wait": io_wait}
"""The same jobs as the functions RQ and Celery run (`bench_redis.<name>`)."""


@dataclass(frozen=True, kw_only=True)
class Side:
    """One way of draining the queue with worker processes of this script."""

    kind: str
    label: str
    library: str
    burst: bool


SIDES: Final = {
    side.kind: side
    for side in (
        Side(kind="glasswork", label="glasswork worker CLI (batch 10)", library="glasswork", burst=True),
        Side(kind="rq-simple", label="rq SimpleWorker (no fork)", library="rq", burst=True),
        Side(kind="rq-fork", label="rq Worker (default: forks per job)", library="rq", burst=True),
        Side(kind="dramatiq", label="dramatiq Worker (8 threads, default)", library="dramatiq", burst=False),
        Side(kind="celery", label="celery solo pool (acks_late)", library="celery", burst=False),
    )
}
ENQUEUES: Final = {
    "glasswork": ("glasswork JobService.enqueue", "glasswork"),
    "glasswork-batch": ("glasswork JobService.enqueue_batch (10)", "glasswork"),
    "rq": ("rq Queue.enqueue", "rq"),
    "rq-batch": ("rq Queue.enqueue_many (10)", "rq"),
    "dramatiq": ("dramatiq actor.send", "dramatiq"),
    "celery": ("celery task.delay", "celery"),
}
FILL: Final = {"glasswork": "glasswork-batch", "rq-simple": "rq-batch", "rq-fork": "rq-batch"}
"""How a drain run fills the queue (untimed): the fastest way each library has."""


def queue_url(url: str) -> str:
    """The glasswork queue URL: the server's URL with `queue=bench`."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "queue"] + [("queue", QUEUE)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class Run(NamedTuple):
    """One measured run: its seconds, the CPU seconds the redis-server spent meanwhile, and the workers'.

    `worker_cpu` is `None` where `/proc/<pid>/schedstat` cannot be read (not Linux), and for enqueues.
    """

    seconds: float
    server_cpu: float
    worker_cpu: float | None = None


def process_cpu(pid: int) -> float | None:
    """The CPU seconds a process (running, or exited and not yet reaped) has used, from Linux's schedstat."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def server_cpu(conn: Redis) -> float:
    """The CPU seconds (user + system) the redis-server has used since it started."""
    info = conn.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def enqueue_run(kind: str, url: str, jobs: int) -> Run:
    """`enqueue`, with the server's CPU meanwhile (the FLUSHALL of an empty server included)."""
    with Redis.from_url(url) as conn:
        cpu = server_cpu(conn)
        seconds = enqueue(kind, url, jobs)
        return Run(seconds, server_cpu(conn) - cpu)


def flushall(url: str) -> None:
    """Empty the whole server."""
    with Redis.from_url(url) as conn:
        conn.flushall()


# --- the peers' objects (their imports are optional: the bench extra) -------------


def _rq_queue(conn: Redis) -> Queue:
    from rq import Queue  # type: ignore[import-not-found, unused-ignore]  # the bench extra

    return Queue(QUEUE, connection=conn)


def _rq_registry_keys(conn: Redis) -> tuple[str, str]:
    """The keys of the bench queue's finished-job and failed-job registries."""
    from rq.registry import (  # type: ignore[import-not-found, unused-ignore]  # the bench extra
        FailedJobRegistry,
        FinishedJobRegistry,
    )

    finished: str = FinishedJobRegistry(QUEUE, connection=conn).key
    failed: str = FailedJobRegistry(QUEUE, connection=conn).key
    return finished, failed


def _dramatiq_broker(url: str) -> tuple[Broker, Callable[[int], object]]:
    """A Redis broker and its `noop` actor's `send`."""
    import dramatiq  # type: ignore[import-not-found, unused-ignore]  # the bench extra
    from dramatiq.brokers.redis import (  # type: ignore[import-not-found, unused-ignore]  # the bench extra
        RedisBroker,
    )

    broker = RedisBroker(url=url)  # type: ignore[no-untyped-call, unused-ignore]  # untyped __init__
    actor = dramatiq.actor(broker=broker, actor_name="noop", queue_name=QUEUE)(noop)
    send: Callable[[int], object] = actor.send
    return broker, send


def _celery_app(url: str, job: str = "noop") -> tuple[Celery, Callable[[int], object]]:
    """A Celery app on the Redis broker (acks late, no results) and the `delay` of its task `job`."""
    from celery import Celery  # type: ignore[import-untyped, import-not-found, unused-ignore]  # no types

    app = Celery("bench_redis", broker=url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_ignore_result=True,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    tasks = {name: app.task(name=f"bench_redis.{name}")(func) for name, func in PEER_JOBS.items()}
    delay: Callable[[int], object] = tasks[job].delay
    return app, delay


# --- enqueue ----------------------------------------------------------------------


def enqueue(kind: str, url: str, jobs: int, job: str = "noop") -> float:
    """Empty the server and enqueue `jobs` jobs `job` (no-op, or I/O-bound) the way `kind` names.

    Returns:
        The seconds the enqueue calls took.
    """
    flushall(url)
    if kind in {"glasswork", "glasswork-batch"}:
        with RedisQueueDriver.from_url(queue_url(url)) as driver:
            service = JobService(driver)
            started = time.perf_counter()
            if kind == "glasswork-batch":
                for first in range(0, jobs, CHUNK):
                    service.enqueue_batch([(JOBS[job], n) for n in range(first, min(first + CHUNK, jobs))])
            else:
                for n in range(jobs):
                    service.enqueue(JOBS[job], n)
            return time.perf_counter() - started
    if kind in {"rq", "rq-batch"}:
        with Redis.from_url(url) as conn:
            queue = _rq_queue(conn)
            started = time.perf_counter()
            if kind == "rq-batch":
                for first in range(0, jobs, CHUNK):
                    queue.enqueue_many(
                        [
                            queue.prepare_data(f"bench_redis.{job}", (n,))
                            for n in range(first, min(first + CHUNK, jobs))
                        ]
                    )
            else:
                for n in range(jobs):
                    queue.enqueue(f"bench_redis.{job}", n)
            return time.perf_counter() - started
    close: Callable[[], object]
    if kind == "dramatiq" and job == "noop":
        broker, send = _dramatiq_broker(url)
        close = broker.close
    elif kind == "celery":
        app, send = _celery_app(url, job)
        close = app.close
    else:
        msg = f"unknown enqueue kind {kind!r} (job {job!r})"
        raise ValueError(msg)
    started = time.perf_counter()
    for n in range(jobs):
        send(n)
    seconds = time.perf_counter() - started
    close()
    return seconds


# --- drain ------------------------------------------------------------------------


def done_check(kind: str, conn: Redis, jobs: int) -> Callable[[], bool]:
    """A check that every job is done, as the server shows it."""
    if kind == "glasswork":
        driver = RedisQueueDriver(conn, default_queue=QUEUE)
        return lambda: driver.counts(QUEUE).pending == 0
    if kind in {"rq-simple", "rq-fork"}:
        finished, failed = _rq_registry_keys(conn)

        def rq_done() -> bool:
            pipe = conn.pipeline(transaction=False)
            pipe.zcard(finished)
            pipe.zcard(failed)
            return sum(int(n) for n in pipe.execute()) >= jobs

        return rq_done
    if kind == "dramatiq":
        return lambda: conn.hlen(f"dramatiq:{QUEUE}.msgs") == 0
    if kind == "celery":

        def empty() -> bool:
            pipe = conn.pipeline(transaction=False)
            pipe.llen(QUEUE)
            pipe.hlen("unacked")
            return sum(int(n) for n in pipe.execute()) == 0

        def celery_done() -> bool:
            if not empty():
                return False
            time.sleep(0.002)
            return empty()

        return celery_done
    msg = f"unknown worker kind {kind!r}"
    raise ValueError(msg)


def verify(kind: str, conn: Redis, jobs: int) -> None:
    """Raise unless the drained server shows every job run and none failed or dead-lettered."""
    if kind == "glasswork":
        counts = RedisQueueDriver(conn, default_queue=QUEUE).counts(QUEUE)
        problem, detail = bool(counts.pending or counts.dead), f"counts {counts}"
    elif kind in {"rq-simple", "rq-fork"}:
        finished, failed = (conn.zcard(key) for key in _rq_registry_keys(conn))
        problem, detail = finished != jobs or failed > 0, f"{finished} finished, {failed} failed of {jobs}"
    elif kind == "dramatiq":
        left, dead = conn.hlen(f"dramatiq:{QUEUE}.msgs"), conn.zcard(f"dramatiq:{QUEUE}.XQ")
        problem, detail = bool(left or dead), f"{left} left, {dead} dead-lettered"
    else:
        left = conn.llen(QUEUE) + conn.hlen("unacked")
        problem, detail = left > 0, f"{left} left"
    if problem:
        msg = f"{kind}: the queue was not drained cleanly: {detail}"
        raise RuntimeError(msg)


def _tail(logs: Path, kind: str) -> str:
    """The last lines the workers of `kind` logged, to explain a failed run."""
    lines = [line for path in sorted(logs.glob(f"{kind}-*.log")) for line in path.read_text().splitlines()]
    return "\n".join(lines[-20:]) or "(the workers logged nothing)"


def _tell(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


@contextlib.contextmanager
def workers(kind: str, url: str, count: int, logs: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Start `count` worker processes of `kind` and wait until each is ready; stop and reap them after."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for index in range(count):
            with (logs / f"{kind}-{index}.log").open("a") as log:
                command = [sys.executable, str(SCRIPT), "--worker", kind, "--redis-url", url]
                procs.append(
                    subprocess.Popen(
                        [*command, "--index", str(index)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        text=True,
                        cwd=SCRIPT.parent,
                    )
                )
        for proc in procs:
            assert proc.stdout is not None
            said = proc.stdout.readline().strip()
            if said != "ready":
                msg = f"{kind} worker did not start (said {said!r}):\n{_tail(logs, kind)}"
                raise RuntimeError(msg)
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None and not SIDES[kind].burst:
                proc.kill()  # the server shows every job done (or the run failed): nothing is lost
        for proc in procs:
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def drain(kind: str, url: str, jobs: int, count: int, logs: Path, *, job: str = "noop") -> Run:
    """Fill the emptied server with `jobs` jobs `job` and drain them with `count` worker processes.

    Returns:
        Seconds from "go" until the server showed every job done, and the server's and the workers' CPU
        meanwhile.

    Raises:
        RuntimeError: A worker failed, or the jobs did not all run cleanly.
    """
    enqueue(FILL.get(kind, kind), url, jobs, job)
    with Redis.from_url(url) as conn:
        done = done_check(kind, conn, jobs)
        with workers(kind, url, count, logs) as procs:
            before = [process_cpu(proc.pid) for proc in procs]
            cpu = server_cpu(conn)
            started = time.perf_counter()
            for proc in procs:
                _tell(proc, "go")
            while not done():
                if time.perf_counter() - started > DRAIN_TIMEOUT:
                    msg = f"{kind}: not drained after {DRAIN_TIMEOUT:.0f} s:\n{_tail(logs, kind)}"
                    raise RuntimeError(msg)
                if any(proc.poll() not in (None, 0) for proc in procs):
                    msg = f"{kind}: a worker failed:\n{_tail(logs, kind)}"
                    raise RuntimeError(msg)
                time.sleep(POLL_SECONDS)
            seconds = time.perf_counter() - started
            cpu = server_cpu(conn) - cpu
            after = [process_cpu(proc.pid) for proc in procs]
        used = [b - a for a, b in zip(before, after, strict=True) if a is not None and b is not None]
        worker_cpu = sum(used) if len(used) == count else None
        if SIDES[kind].burst and any(proc.returncode != 0 for proc in procs):
            msg = f"{kind}: exit codes {[p.returncode for p in procs]}:\n{_tail(logs, kind)}"
            raise RuntimeError(msg)
        verify(kind, conn, jobs)
    return Run(seconds, cpu, worker_cpu)


def drain_in_process(url: str, jobs: int) -> Run:
    """bench_local.py's way: the `Poller` and `bootstrap_worker`'s handler in this process, batch 10."""
    enqueue("glasswork-batch", url, jobs)
    with RedisQueueDriver.from_url(queue_url(url)) as driver:
        handler = bootstrap_worker(module=APP, driver=driver)
        cpu = server_cpu(driver.client)
        started = time.perf_counter()
        report = Poller(handler, driver, batch_size=10).run(burst=True)
        seconds = time.perf_counter() - started
        cpu = server_cpu(driver.client) - cpu
        verify("glasswork", driver.client, jobs)
    if report.deleted != jobs:
        msg = f"glasswork Poller deleted {report.deleted} of {jobs} jobs"
        raise RuntimeError(msg)
    return Run(seconds, cpu)


# --- a worker process ---------------------------------------------------------------


def prepare_worker(kind: str, url: str, index: int) -> Callable[[], object]:
    """Import and build one worker of `kind`; returns what runs it (until drained, or until "stop")."""
    importlib.import_module("bench_redis")  # the module the CLI and RQ load the job from: warm it
    if kind == "glasswork":
        importlib.import_module("glasswork.worker")  # the CLI imports lazily: warm it as the peers are
        from glasswork.cli import main as glasswork_cli

        argv = ["worker", "bench_redis:APP", "--queue", queue_url(url), "--burst"]
        return lambda: glasswork_cli(argv)
    if kind in {"rq-simple", "rq-fork"}:
        from rq import SimpleWorker, Worker  # type: ignore[import-not-found, unused-ignore]  # the bench extra

        conn = Redis.from_url(url)
        worker_class = SimpleWorker if kind == "rq-simple" else Worker
        rq_worker = worker_class([_rq_queue(conn)], connection=conn, name=f"bench-{index}-{os.getpid()}")
        return lambda: rq_worker.work(burst=True, logging_level="WARNING")
    if kind == "dramatiq":
        from dramatiq import Worker as DramatiqWorker  # type: ignore[import-not-found, unused-ignore]

        broker, _ = _dramatiq_broker(url)
        dramatiq_worker = DramatiqWorker(broker)

        def run_dramatiq() -> None:
            dramatiq_worker.start()
            sys.stdin.readline()  # "stop", or EOF if the benchmark went away
            dramatiq_worker.stop()
            broker.close()

        return run_dramatiq
    if kind == "celery":
        app, _ = _celery_app(url)
        celery_worker = app.Worker(
            hostname=f"bench{index}@%h",
            pool_cls="solo",
            concurrency=1,
            queues=[QUEUE],
            without_mingle=True,
            without_gossip=True,
            without_heartbeat=True,
            loglevel="WARNING",
            quiet=True,
        )
        start: Callable[[], object] = celery_worker.start
        return start
    msg = f"unknown worker kind {kind!r}"
    raise ValueError(msg)


def worker_main(kind: str, url: str, index: int) -> int:
    """Be one worker process: build the worker, say "ready", work after "go"."""
    run_worker = prepare_worker(kind, url, index)
    print("ready", flush=True)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # banners and prints go to the log, not the pipe
    if sys.stdin.readline().strip() != "go":
        return 1
    try:
        result = run_worker()
    except SystemExit as exc:  # Celery's warm shutdown
        return exc.code if isinstance(exc.code, int) else 0
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


# --- report -------------------------------------------------------------------------


@dataclass(kw_only=True)
class Results:
    """The best run per configuration, for `jobs` jobs (`scaled`: glasswork alone at `scale_jobs`)."""

    jobs: int
    counts: list[int]
    cores: int
    enqueued: dict[str, Run] = field(default_factory=dict)
    drained: dict[tuple[str, int], Run] = field(default_factory=dict)
    in_process: Run | None = None
    scale_jobs: int = 0
    scaled: dict[int, Run] = field(default_factory=dict)
    io_jobs: int = 0
    io_drained: dict[tuple[str, int], Run] = field(default_factory=dict)
    """The I/O-bound drain (`io_jobs` jobs of IO_SECONDS each), by side and worker count."""
    spread: dict[str, float] = field(default_factory=dict)
    """Slowest over fastest run, by configuration: how noisy the machine was."""

    def by_count(self, kind: str) -> dict[int, Run]:
        """The drain runs of one side, by worker count."""
        return {count: run for (k, count), run in self.drained.items() if k == kind}

    def seconds(self, kind: str) -> dict[int, float]:
        """The drain seconds of one side, by worker count."""
        return {count: run.seconds for count, run in self.by_count(kind).items()}

    def io_by_count(self, kind: str) -> dict[int, Run]:
        """The I/O-bound drain runs of one side, by worker count."""
        return {count: run for (k, count), run in self.io_drained.items() if k == kind}

    def rq_best(self, count: int) -> tuple[str, float] | None:
        """The faster RQ worker class at `count` processes, and its seconds."""
        found = [
            (self.drained[k, count].seconds, k)
            for k in ("rq-simple", "rq-fork")
            if (k, count) in self.drained
        ]
        return (min(found)[1], min(found)[0]) if found else None


def _workers_text(count: int) -> str:
    return f"{count} worker{'s' if count != 1 else ''}"


def _rate(jobs: int, seconds: float | None) -> str:
    return "-" if seconds is None else f"{jobs / seconds:.0f} jobs/s"


def _cpu(jobs: int, run: Run | None) -> str:
    return "-" if run is None else f"{run.server_cpu * 1e6 / jobs:.0f} us"


def _ratio(ours: float | None, theirs: float | None) -> str:
    """Our throughput over theirs, from the seconds each took for the same jobs."""
    return "n/a (not measured)" if ours is None or theirs is None else f"{theirs / ours:.2f}x"


def _scaling(seconds: dict[int, float], low: int, high: int) -> str:
    return "n/a" if low not in seconds or high not in seconds else f"{seconds[low] / seconds[high]:.2f}x"


def _row(label: str, jobs: int, runs: dict[int, Run], counts: list[int]) -> str:
    """A table row: the rate at each worker count, the scaling from the first to the last, server CPU."""
    seconds = {count: run.seconds for count, run in runs.items()}
    cells = "".join(f"{_rate(jobs, seconds.get(c)):>16}" for c in counts)
    scaling = f"{_scaling(seconds, counts[0], counts[-1]):>10}" if len(counts) > 1 else ""
    return f"{label:<44}{cells}{scaling}{_cpu(jobs, runs.get(counts[0])):>12}"


def report(results: Results) -> list[str]:
    """The tables, the ratio lines and the PASS/FAIL line."""
    jobs, counts = results.jobs, results.counts
    low, high = counts[0], counts[-1]
    lines = ["", "ENQUEUE: one process, one call a job unless a batch is named; redis-server CPU per job"]
    for kind, run in results.enqueued.items():
        lines.append(f"{ENQUEUES[kind][0]:<44}{_rate(jobs, run.seconds):>16}{_cpu(jobs, run):>12}")
    lines += [
        "",
        f"DRAIN: {jobs} jobs, timed from 'go' until the server shows every job done; "
        f"redis-server CPU per job with {_workers_text(low)}",
    ]
    header = "".join(f"{_workers_text(c):>16}" for c in counts)
    scaling = f"{f'{low} -> {high}':>10}" if high != low else ""
    lines.append(f"{'':<44}{header}{scaling}{'redis CPU':>12}")
    kinds = list(dict.fromkeys(kind for kind, _ in results.drained))
    for kind in kinds:
        lines.append(_row(SIDES[kind].label, jobs, results.by_count(kind), counts))
    if results.scaled:
        label = f"glasswork worker CLI, {results.scale_jobs} jobs"
        lines.append(_row(label, results.scale_jobs, results.scaled, counts))
    if results.in_process is not None:
        label = "glasswork Poller in this process (bench_local)"
        lines.append(_row(label, jobs, {low: results.in_process}, [low]))
    io_kinds = list(dict.fromkeys(kind for kind, _ in results.io_drained))
    if io_kinds:
        wait = f"{IO_SECONDS * 1000:g} ms"
        lines += [
            "",
            f"DRAIN, I/O-BOUND: {results.io_jobs} jobs that each wait {wait} (a call to an API), one at a "
            f"time a process; redis-server CPU per job with {_workers_text(low)}",
            f"{'':<44}{header}{scaling}{'redis CPU':>12}",
        ]
        lines += [_row(SIDES[k].label, results.io_jobs, results.io_by_count(k), counts) for k in io_kinds]

    lines.append("")
    ours = results.seconds("glasswork")
    for count in counts:
        best = results.rq_best(count)
        theirs, baseline = (None, "") if best is None else (best[1], f" (baseline: {SIDES[best[0]].label})")
        lines.append(
            f"glasswork / rq drain, {_workers_text(count)}: {_ratio(ours.get(count), theirs)}{baseline}"
        )
    for peer in ("rq-fork", "dramatiq", "celery"):
        if peer in kinds:
            theirs_by_count = results.seconds(peer)
            pairs = ", ".join(
                f"{_workers_text(c)} {_ratio(ours.get(c), theirs_by_count.get(c))}" for c in counts
            )
            lines.append(f"glasswork / {SIDES[peer].label} drain: {pairs}")
    enqueued = {kind: run.seconds for kind, run in results.enqueued.items()}
    lines.append(
        f"glasswork / rq enqueue: one call a job {_ratio(enqueued.get('glasswork'), enqueued.get('rq'))}, "
        f"batches of 10 {_ratio(enqueued.get('glasswork-batch'), enqueued.get('rq-batch'))}"
    )
    if high != low:
        rq_seconds = {c: best[1] for c in counts if (best := results.rq_best(c)) is not None}
        scaled = {count: run.seconds for count, run in results.scaled.items()}
        at_scale = f" ({results.scale_jobs} jobs: {_scaling(scaled, low, high)})" if scaled else ""
        lines.append(
            f"scaling {low} -> {high} workers: glasswork {_scaling(ours, low, high)}{at_scale}, "
            f"rq {_scaling(rq_seconds, low, high)} (on {results.cores} cores shared with the redis-server "
            f"and this script: CPU-bound work gains at most ~{min(high // low, results.cores)}x)"
        )
    else:
        lines.append(f"scaling 1 -> 4 workers: n/a (only {_workers_text(low)} measured)")
    lines += _limit_lines(results, io_kinds)
    noisy = [f"{label} {ratio:.1f}x" for label, ratio in results.spread.items() if ratio > NOISY]
    if noisy:
        lines.append(f"noisy (slowest run over {NOISY:g}x the fastest): {'; '.join(noisy)}")
    return lines + _targets(results)


def _targets(results: Results) -> list[str]:
    """The PASS/FAIL lines of issue 12."""
    lines = []
    ours = results.seconds("glasswork")
    target = "issue 12 target, glasswork drain throughput >= RQ's with one worker"
    rq_one = results.rq_best(1)
    if 1 not in ours or rq_one is None:
        lines.append(f"{target}: n/a (not measured)")
    else:
        ratio = rq_one[1] / ours[1]
        lines.append(f"{target}: {'PASS' if ratio >= 1.0 else 'FAIL'} ({ratio:.2f}x)")
    io_target = f"issue 12 target, glasswork I/O-bound scaling 1 -> 4 workers >= {IO_TARGET:g}x"
    io_ours = {count: run.seconds for count, run in results.io_by_count("glasswork").items()}
    if 1 not in io_ours or 4 not in io_ours:
        lines.append(f"{io_target}: n/a (not measured)")
    else:
        ratio = io_ours[1] / io_ours[4]
        lines.append(f"{io_target}: {'PASS' if ratio >= IO_TARGET else 'FAIL'} ({ratio:.2f}x)")
    return lines


def _limit_lines(results: Results, io_kinds: list[str]) -> list[str]:
    """The I/O-bound scaling, and what bounds scaling on this machine, from the measured CPU."""
    low, high, cores = results.counts[0], results.counts[-1], results.cores
    if high == low:
        return [f"scaling 1 -> 4 workers (I/O-bound jobs): n/a (only {_workers_text(low)} measured)"]
    if io_kinds:
        pairs = ", ".join(
            f"{SIDES[kind].library} "
            f"{_scaling({c: r.seconds for c, r in results.io_by_count(kind).items()}, low, high)}"
            for kind in io_kinds
        )
        io = f"scaling {low} -> {high} workers (I/O-bound jobs): {pairs}"
    else:
        io = f"scaling {low} -> {high} workers (I/O-bound jobs): n/a (not measured)"
    lines = [
        io,
        f"honest limit on {cores} cores, I/O-bound jobs: a process waiting on I/O leaves the cores idle, so "
        f"{high} processes can approach {high / low:.0f}x",
    ]
    jobs = results.scale_jobs if results.scaled else results.jobs
    runs = results.scaled or results.by_count("glasswork")
    one, many = runs.get(low), runs.get(high)
    limit = f"honest limit on {cores} cores, no-op jobs (glasswork, {jobs} jobs)"
    if one is None or many is None or one.worker_cpu is None or many.worker_cpu is None:
        return [*lines, f"{limit}: n/a (the workers' CPU was not measured)"]
    used_one, used_many = one.worker_cpu + one.server_cpu, many.worker_cpu + many.server_cpu
    lines.append(
        f"{limit}: CPU-bound; with {_workers_text(low)} a job cost {one.worker_cpu * 1e6 / jobs:.0f} us "
        f"of worker CPU + {one.server_cpu * 1e6 / jobs:.0f} us of redis-server CPU "
        f"({used_one / one.seconds:.2f} cores busy), "
        f"with {_workers_text(high)} {used_many * 1e6 / jobs:.0f} us: "
        f"{cores} cores to themselves allow at most {cores * one.seconds / used_many:.2f}x one worker's rate "
        f"(measured {one.seconds / many.seconds:.2f}x)"
    )
    return lines


# --- main ---------------------------------------------------------------------------


def _installed(library: str) -> str | None:
    try:
        return version(library)
    except PackageNotFoundError:
        return None


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def interleaved(
    repeat: int, plan: dict[tuple[str, str, int], Callable[[], Run]], url: str
) -> dict[tuple[str, str, int], list[Run]]:
    """Run every measurement of `plan` once per round, `repeat` rounds, the server emptied after each.

    Rounds rather than back-to-back repeats, so that a burst of load from
    elsewhere on the machine does not spoil every run of one configuration.
    """
    samples: dict[tuple[str, str, int], list[Run]] = {key: [] for key in plan}
    for _ in range(repeat):
        for key, measure in plan.items():
            try:
                samples[key].append(measure())
            finally:
                flushall(url)
    return samples


def run(args: argparse.Namespace) -> int:
    """Measure every side, best of `--repeat`, and print the report."""
    url: str = args.redis_url
    jobs: int = args.jobs
    repeat: int = args.repeat
    libraries = [lib for lib in LIBRARIES if lib in args.only and _installed(lib) is not None]
    if "rq" not in libraries:
        print("bench_redis: needs rq, the baseline (pip install -e '.[bench]')", file=sys.stderr)
        return 2
    load = _load()
    with Redis.from_url(url) as conn:
        server = conn.info("server").get("redis_version", "?")
    results = Results(jobs=jobs, counts=sorted(set(args.workers)), cores=os.cpu_count() or 1)
    versions = ", ".join(f"{lib} {_installed(lib)}" for lib in libraries)
    io = f", {args.io_jobs} I/O-bound jobs ({IO_SECONDS * 1000:g} ms each)" if args.io_jobs else ""
    print(
        f"{jobs} no-op jobs{io} per run, best of {repeat}; Python {sys.version.split()[0]}, "
        f"{results.cores} cores, redis-server {server}; {versions}"
    )
    skipped = [lib for lib in LIBRARIES if lib not in libraries]
    if skipped:
        print(f"not run (not installed, or left out by --only): {', '.join(skipped)}")

    kinds = [kind for kind, side in SIDES.items() if side.library in libraries]
    with tempfile.TemporaryDirectory(prefix="glasswork-bench-redis-") as tmp:
        logs = Path(tmp)
        plan: dict[tuple[str, str, int], Callable[[], Run]] = {}
        for kind, (_, library) in ENQUEUES.items():
            if library in libraries:
                plan["enqueue", kind, 0] = functools.partial(enqueue_run, kind, url, jobs)
        for count in results.counts:
            for kind in kinds:
                plan["drain", kind, count] = functools.partial(drain, kind, url, jobs, count, logs)
            for kind in IO_SIDES:
                if SIDES[kind].library in libraries and args.io_jobs:
                    plan["io", kind, count] = functools.partial(
                        drain, kind, url, args.io_jobs, count, logs, job="io_wait"
                    )
            if "glasswork" in libraries and args.scale_jobs:
                plan["scaled", "glasswork", count] = functools.partial(
                    drain, "glasswork", url, args.scale_jobs, count, logs
                )
        if "glasswork" in libraries:
            plan["in-process", "glasswork", 1] = functools.partial(drain_in_process, url, jobs)
        samples = interleaved(repeat, plan, url)
    results.scale_jobs = args.scale_jobs if "glasswork" in libraries else 0
    results.io_jobs = args.io_jobs
    collect(results, samples)
    print("\n".join(report(results)))
    print(f"load average before {load}, after {_load()} (1 min, on {results.cores} cores)")
    return 0


def collect(results: Results, samples: dict[tuple[str, str, int], list[Run]]) -> None:
    """Keep each configuration's fastest run in `results`, and how much slower its slowest was."""
    for (what, kind, count), runs in samples.items():
        best = min(runs, key=lambda run: run.seconds)
        if what == "enqueue":
            results.enqueued[kind] = best
            label = ENQUEUES[kind][0]
        elif what == "drain":
            results.drained[kind, count] = best
            label = f"{SIDES[kind].label}, {_workers_text(count)}"
        elif what == "io":
            results.io_drained[kind, count] = best
            label = f"{SIDES[kind].label}, I/O-bound, {_workers_text(count)}"
        elif what == "scaled":
            results.scaled[count] = best
            label = f"glasswork worker CLI, {results.scale_jobs} jobs, {_workers_text(count)}"
        else:
            results.in_process = best
            label = "glasswork Poller in this process"
        results.spread[label] = max(run.seconds for run in runs) / best.seconds


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, or (with `--worker`) one of its worker processes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--jobs", type=int, default=300, help="no-op jobs per run (300)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration; the best counts (3)")
    parser.add_argument(
        "--workers", type=int, action="append", help="worker process counts, repeatable (default: 1 and 4)"
    )
    parser.add_argument(
        "--scale-jobs",
        type=int,
        help="jobs for glasswork's scaling run on its own (default: 10 x --jobs; 0: skip it)",
    )
    parser.add_argument(
        "--io-jobs",
        type=int,
        default=320,
        help=f"I/O-bound jobs ({IO_SECONDS * 1000:g} ms each) per run of the second drain (320; 0: skip it)",
    )
    parser.add_argument(
        "--only", choices=LIBRARIES, action="append", help="libraries to run (default: every one installed)"
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("GLASSWORK_TEST_REDIS_URL"),
        help="the redis-server, emptied between runs (default: $GLASSWORK_TEST_REDIS_URL)",
    )
    parser.add_argument("--worker", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.redis_url:
        parser.error("no redis-server: pass --redis-url or set GLASSWORK_TEST_REDIS_URL")
    if args.worker:
        return worker_main(args.worker, args.redis_url, args.index)
    if args.jobs < 1 or args.repeat < 1 or any(count < 1 for count in args.workers or ()):
        parser.error("--jobs, --repeat and --workers must be at least 1")
    if args.io_jobs < 0:
        parser.error("--io-jobs must be at least 0")
    args.workers = args.workers or [1, 4]
    args.only = args.only or list(LIBRARIES)
    args.scale_jobs = 10 * args.jobs if args.scale_jobs is None else args.scale_jobs
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
