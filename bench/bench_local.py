"""No-op jobs per second, end to end: glasswork on SQLite vs Huey's `SqliteHuey`.

Both sides do the same work in one process: enqueue N no-op jobs one call at
a time into a fresh SQLite file (WAL), then drain them with one worker:

- glasswork: `JobService.enqueue` into `SQLiteQueueDriver`, then the local
  `Poller` (burst mode) feeding `bootstrap_worker`'s Lambda handler, batch
  size 10. Every message is claimed with a visibility timeout and deleted only
  after its job returned (at-least-once).
- Huey: `task(n)` into `SqliteHuey`, then a `Consumer` with one worker thread.
  Huey removes a task from the queue before running it (at-most-once).

Each side runs at two durability levels, both WAL: `full` (SQLite's
`synchronous=FULL`, an fsync per commit: Huey's default) and `normal`
(`synchronous=NORMAL`: survives a killed process, not a power cut: the
glasswork driver's default; Huey gets it through a storage subclass).

The drain is timed from the worker's start until the last job ran (glasswork:
until the burst run returned, which includes its final empty-queue check).

Run: `python bench/bench_local.py [-n 2000] [--durability normal|full]` (needs huey).
This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal, NamedTuple, TypeAlias

from glasswork import JobContext, JobService, Module, bootstrap_worker, define_job
from glasswork.drivers.sqlite import SQLiteQueueDriver
from glasswork.local import Poller

Durability: TypeAlias = Literal["normal", "full"]


class Result(NamedTuple):
    name: str
    jobs: int
    enqueue_seconds: float
    drain_seconds: float

    @property
    def total(self) -> float:
        return self.enqueue_seconds + self.drain_seconds

    def line(self) -> str:
        return (
            f"{self.name:<38} enqueue {self.jobs / self.enqueue_seconds:>8.0f}/s"
            f"  drain {self.jobs / self.drain_seconds:>8.0f} jobs/s"
            f"  end to end {self.jobs / self.total:>8.0f} jobs/s  ({self.total:.2f} s)"
        )


def _noop(payload: int, ctx: JobContext) -> None:
    return None


def bench_glasswork(
    jobs: int, directory: Path, *, durability: Durability, batch_size: int = 10, batch_enqueue: bool = False
) -> Result:
    """Enqueue `jobs` no-op jobs into a fresh SQLite file and drain them with the poller."""
    job = define_job(name="noop", handler=_noop, payload=int)
    module = Module(name="bench", jobs=[job])
    suffix = "batch" if batch_enqueue else "single"
    path = directory / f"glasswork-{durability}-{suffix}.db"
    with SQLiteQueueDriver(path, synchronous="FULL" if durability == "full" else "NORMAL") as driver:
        service = JobService(driver)
        started = time.perf_counter()
        if batch_enqueue:
            for first in range(0, jobs, 10):
                service.enqueue_batch([(job, n) for n in range(first, min(first + 10, jobs))])
        else:
            for n in range(jobs):
                service.enqueue(job, n)
        enqueued = time.perf_counter()
        handler = bootstrap_worker(module=module, driver=driver)
        report = Poller(handler, driver, batch_size=batch_size).run(burst=True)
        drained = time.perf_counter()
        if report.deleted != jobs or driver.counts().pending:
            msg = f"glasswork drained {report.deleted} of {jobs} jobs"
            raise RuntimeError(msg)
    how = "enqueue_batch" if batch_enqueue else "enqueue"
    name = f"glasswork SQLite ({how}, batch {batch_size})"
    return Result(name, jobs, enqueued - started, drained - enqueued)


def bench_huey(jobs: int, directory: Path, *, durability: Durability) -> Result:
    """Enqueue `jobs` no-op tasks into a fresh `SqliteHuey` and drain them with one worker thread."""
    from huey import SqliteHuey
    from huey.consumer import Consumer
    from huey.storage import SqliteStorage

    class NormalSyncStorage(SqliteStorage):  # type: ignore[misc]  # huey ships no types
        def _create_connection(self) -> sqlite3.Connection:
            conn: sqlite3.Connection = super()._create_connection()
            conn.execute("pragma synchronous=1")
            return conn

    storage = SqliteStorage if durability == "full" else NormalSyncStorage
    huey = SqliteHuey(
        "bench", filename=str(directory / f"huey-{durability}.db"), results=False, storage_class=storage
    )
    done = threading.Event()
    ran = [0]

    def noop(n: int) -> None:
        ran[0] += 1
        if ran[0] == jobs:
            done.set()

    task = huey.task()(noop)
    started = time.perf_counter()
    for n in range(jobs):
        task(n)
    enqueued = time.perf_counter()
    consumer = Consumer(huey, workers=1, worker_type="thread", periodic=False, initial_delay=0.01)
    consumer.start()
    try:
        if not done.wait(timeout=600):
            msg = f"huey ran {ran[0]} of {jobs} tasks"
            raise RuntimeError(msg)
        drained = time.perf_counter()
    finally:
        consumer.stop(graceful=True)
    return Result("huey SqliteHuey (1 worker thread)", jobs, enqueued - started, drained - enqueued)


def _best(runs: list[Result]) -> Result:
    return min(runs, key=lambda r: r.total)


def compare(
    jobs: int, directory: Path, *, durability: Durability, batch_size: int = 10, repeat: int = 1
) -> tuple[Result, Result, Result]:
    """Run glasswork and Huey at one durability level (best of `repeat`) and print the ratio.

    Returns:
        glasswork (per-call enqueue), Huey, glasswork (`enqueue_batch`).
    """
    print(f"\n{durability.upper()}: synchronous={durability.upper()}, WAL, best of {repeat}")
    mine: list[Result] = []
    huey: list[Result] = []
    batched: list[Result] = []
    for attempt in range(repeat):
        where = directory / f"{durability}-{attempt}"
        where.mkdir()
        mine.append(bench_glasswork(jobs, where, durability=durability, batch_size=batch_size))
        huey.append(bench_huey(jobs, where, durability=durability))
        batched.append(
            bench_glasswork(jobs, where, durability=durability, batch_size=batch_size, batch_enqueue=True)
        )
    ours, theirs, ours_batched = _best(mine), _best(huey), _best(batched)
    for result in (ours, theirs, ours_batched):
        print(result.line())
    print(
        f"ratio glasswork / huey: end to end {theirs.total / ours.total:.2f}x, "
        f"drain {theirs.drain_seconds / ours.drain_seconds:.2f}x, "
        f"enqueue {theirs.enqueue_seconds / ours.enqueue_seconds:.2f}x "
        f"(glasswork with enqueue_batch: end to end {theirs.total / ours_batched.total:.2f}x)"
    )
    return ours, theirs, ours_batched


def main(argv: list[str] | None = None) -> int:
    """Run both benchmarks once, side by side, and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--jobs", type=int, default=2_000, help="no-op jobs per run (2000)")
    parser.add_argument("--batch-size", type=int, default=10, help="glasswork records per batch (10)")
    parser.add_argument(
        "--durability",
        choices=["normal", "full"],
        action="append",
        help="synchronous level(s) to compare (default: both)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the best counts (1)")
    parser.add_argument("--dir", help="where the database files go (default: the temp directory)")
    args = parser.parse_args(argv)
    args.durability = args.durability or ["full", "normal"]
    try:
        import huey
    except ImportError:
        print("bench_local: needs huey (pip install huey)", file=sys.stderr)
        return 2
    print(
        f"{args.jobs} no-op jobs, enqueue then drain, one worker; "
        f"Python {sys.version.split()[0]}, huey {huey.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="glasswork-bench-", dir=args.dir) as tmp:
        for durability in args.durability:
            compare(
                args.jobs, Path(tmp), durability=durability, batch_size=args.batch_size, repeat=args.repeat
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
