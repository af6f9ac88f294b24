"""Fault injection for the tests: driver faults and process faults.

`FaultyDriver` (and its `Call`, `Injected`, `Rule`) ships as
`glasswork.testing_faults` and is re-exported here for the tests. The rest is
the process-fault harness: `kill -9` workers during a run (`run_kill_plan`).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from glasswork import Job, JobService, define_job
from glasswork.drivers.sqlite import SQLiteQueueDriver
from glasswork.drivers.sqs import SQSQueueDriver
from glasswork.testing_faults import Call, FaultyDriver, Injected, Rule

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

__all__ = [
    "Call",
    "FaultyDriver",
    "Injected",
    "KillPlan",
    "KillReport",
    "Rule",
    "SQLiteTarget",
    "SQSTarget",
    "Target",
    "run_kill_plan",
]


# --- process faults: kill -9 workers during a run -----------------------------------

PROCESS_APP = '''
"""The app the process-fault runs start `glasswork worker` on (written by tests/faults.py)."""

import json
import os
import time

from glasswork import Module, PermanentJobError, TransientJobError, define_job

_RUNS = os.environ["GW_FAULT_RUNS"]


def _note(event, ctx):
    line = json.dumps(
        {"e": event, "j": ctx.job_id, "k": ctx.job_name, "p": os.getpid(), "a": ctx.attempt_number}
    )
    fd = os.open(_RUNS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


def work(payload, ctx):
    _note("start", ctx)
    time.sleep(payload["ms"] / 1000)
    _note("end", ctx)


def doomed(payload, ctx):
    _note("start", ctx)
    raise PermanentJobError("designed to fail")


def exhausted(payload, ctx):
    _note("start", ctx)
    raise TransientJobError("designed to fail on every attempt", retry_after=0)


app = Module(
    name="faultapp",
    jobs=[
        define_job(name="work", handler=work),
        define_job(name="doomed", handler=doomed),
        define_job(name="exhausted", handler=exhausted, retry=2),
    ],
)
'''
"""Jobs for process-fault runs: `work` (logs start and end), and two designed to fail."""

APP_MODULE = "gw_fault_app"


class Target(Protocol):
    """The queue a process-fault run uses: how to fill it, point workers at it and inspect it."""

    @property
    def label(self) -> str:
        """`sqlite` or `sqs`, for reports."""
        ...

    def worker_args(self) -> list[str]:
        """The `--queue` (and `--endpoint-url`) arguments of `glasswork worker`."""
        ...

    def enqueue(self, items: Sequence[tuple[str, object]]) -> list[str]:
        """Enqueue `(job name, payload)` pairs; return the job ids in order."""
        ...

    def send_poison(self, body: str) -> None:
        """Send a body that is not a job message."""
        ...

    def pending(self) -> int:
        """Messages visible, delayed or in flight."""
        ...

    def dead_letters(self) -> list[str]:
        """One identity per DLQ entry: its job id, else its body."""
        ...


def _stand_in(name: str) -> Job[Any]:
    def handler(payload: object, ctx: object) -> None:
        return None

    return define_job(name=name, handler=handler)


class SQLiteTarget:
    """A fresh SQLite queue file."""

    label = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.driver = SQLiteQueueDriver(path)

    def worker_args(self) -> list[str]:
        return ["--queue", f"sqlite:///{self.path}"]

    def enqueue(self, items: Sequence[tuple[str, object]]) -> list[str]:
        jobs = {name: _stand_in(name) for name, _ in items}
        service = JobService(self.driver)
        return [r.job_id for r in service.enqueue_batch([(jobs[name], payload) for name, payload in items])]

    def send_poison(self, body: str) -> None:
        self.driver.send_raw(body)

    def pending(self) -> int:
        return self.driver.counts().pending

    def dead_letters(self) -> list[str]:
        return [e.job_id or e.body for e in self.driver.list_dead_letters(limit=100_000)]

    def close(self) -> None:
        self.driver.close()


class SQSTarget:
    """A fresh standard queue and its DLQ on an SQS-compatible server (moto) at `endpoint`."""

    label = "sqs"

    def __init__(self, endpoint: str, *, visibility_timeout: int) -> None:
        import boto3  # only SQS runs need boto3

        self.endpoint = endpoint
        self.client: SQSClient = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
        suffix = uuid.uuid4().hex[:8]
        dlq = self.client.create_queue(QueueName=f"faults-dlq-{suffix}")["QueueUrl"]
        arn = self.client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "50"})
        self.url = self.client.create_queue(
            QueueName=f"faults-{suffix}",
            Attributes={"VisibilityTimeout": str(visibility_timeout), "RedrivePolicy": redrive},
        )["QueueUrl"]
        self.driver = SQSQueueDriver({"faults": self.url}, self.client)

    def worker_args(self) -> list[str]:
        return ["--queue", self.url, "--endpoint-url", self.endpoint]

    def enqueue(self, items: Sequence[tuple[str, object]]) -> list[str]:
        jobs = {name: _stand_in(name) for name, _ in items}
        service = JobService(self.driver)
        return [r.job_id for r in service.enqueue_batch([(jobs[name], payload) for name, payload in items])]

    def send_poison(self, body: str) -> None:
        self.client.send_message(QueueUrl=self.url, MessageBody=body)

    def pending(self) -> int:
        return self.driver.counts().pending

    def dead_letters(self) -> list[str]:
        return [e.job_id or e.body for e in self.driver.list_dead_letters(limit=10_000)]

    def close(self) -> None:
        self.client.close()


class KillPlan(msgspec.Struct, frozen=True, kw_only=True):
    """A process-fault run: how many jobs and workers, and how many `kill -9`s.

    Attributes:
        jobs: `work` jobs (each sleeps up to twice `mean_job_ms`).
        doomed: Jobs that raise `PermanentJobError` (dead-lettered at once).
        exhausted: Jobs that always fail transiently (`retry=2`: dead-lettered on attempt 2).
        poison: Bodies that are not job messages (dead-lettered as poison).
        workers: Concurrent `glasswork worker --burst` processes.
        kills: `kill -9`s, each of a random worker that has started a job, at
            a random moment up to `max_kill_delay` later; a killed worker is
            replaced at once.
        batch_size: `--batch-size`.
        visibility_timeout: `--visibility-timeout` (also the function timeout).
        mean_job_ms: Mean sleep of a `work` job.
        max_kill_delay: The longest pause before each kill.
        seed: Seeds job durations, victims and kill times.
        deadline: Seconds the whole run may take.
    """

    jobs: int = 300
    doomed: int = 4
    exhausted: int = 3
    poison: int = 3
    workers: int = 2
    kills: int = 5
    batch_size: int = 10
    visibility_timeout: int = 3
    mean_job_ms: float = 8.0
    max_kill_delay: float = 0.4
    seed: int = 0
    deadline: float = 120.0

    @property
    def duplicate_bound(self) -> int:
        """At most one batch's deletions are lost per kill: `kills * batch_size`."""
        return self.kills * self.batch_size


class KillReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a process-fault run found.

    Attributes:
        plan: The plan that ran.
        kills: `kill -9`s done.
        kills_mid_job: Kills that landed while the victim had a `work` job started and not ended.
        worker_starts: Worker processes started (first ones, replacements, restarts).
        runs: Handler runs of `work` jobs that reached their end.
        lost: `work` job ids that never ended, plus designed-to-fail ones missing from the DLQ.
        duplicates: Extra ends of `work` jobs (a job that ended twice counts 1).
        unexpected_dead: DLQ entries that were not designed to fail.
        dead_duplicates: Extra DLQ entries of designed-to-fail jobs.
        left: Messages still pending in the queue at the end.
        failed_workers: Exit status and stderr tail of workers that exited badly (not killed).
        elapsed: Seconds the run took.
    """

    plan: KillPlan
    kills: int
    kills_mid_job: int
    worker_starts: int
    runs: int
    lost: list[str]
    duplicates: int
    unexpected_dead: list[str]
    dead_duplicates: int
    left: int
    failed_workers: list[str]
    elapsed: float


class _RunLog:
    """Reads the runs file the app appends to, incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = []
        self._offset = 0
        self._started_pids: set[int] = set()

    def refresh(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data.rfind(b"\n") + 1
        self._offset += complete
        for line in data[:complete].splitlines():
            event = json.loads(line)
            self.events.append(event)
            if event["e"] == "start":
                self._started_pids.add(event["p"])

    def has_started(self, pid: int) -> bool:
        self.refresh()
        return pid in self._started_pids


class _Fleet:
    """The worker processes of one run, each logging to a file of its own."""

    def __init__(self, command: list[str], root: Path, env: dict[str, str], deadline: float) -> None:
        self.command = command
        self.root = root
        self.env = env
        self.deadline = deadline
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.killed: set[int] = set()

    def start(self) -> subprocess.Popen[bytes]:
        err = self.root / f"worker-{len(self.started)}.log"
        with err.open("wb") as stderr:
            process = subprocess.Popen(
                self.command, cwd=self.root, env=self.env, stdout=subprocess.DEVNULL, stderr=stderr
            )
        self.started.append((process, err))
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        process.kill()
        process.wait()
        self.killed.add(process.pid)

    def settle(self, process: subprocess.Popen[bytes]) -> None:
        try:
            process.wait(timeout=max(self.deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def failures(self) -> list[str]:
        """Workers that exited with an error, or were killed by anything but a planned kill."""
        failed = []
        for process, err in self.started:
            planned = process.returncode == -signal.SIGKILL and process.pid in self.killed
            if process.returncode != 0 and not planned:
                tail = err.read_text(errors="replace")[-2_000:]
                failed.append(f"pid {process.pid} exit {process.returncode}: {tail}")
        return failed


def _fill(plan: KillPlan, target: Target, rng: random.Random) -> tuple[set[str], Counter[str]]:
    """Enqueue the plan's jobs in random order; return the `work` job ids and the designed failures."""
    items: list[tuple[str, object]] = [
        ("work", {"n": n, "ms": rng.uniform(0, 2 * plan.mean_job_ms)}) for n in range(plan.jobs)
    ]
    items += [("doomed", {"n": n}) for n in range(plan.doomed)]
    items += [("exhausted", {"n": n}) for n in range(plan.exhausted)]
    rng.shuffle(items)
    job_ids = target.enqueue(items)
    named = list(zip(job_ids, (name for name, _ in items), strict=True))
    designed = Counter(job_id for job_id, name in named if name != "work")
    for n in range(plan.poison):
        body = f"poison {n}: not a job message"
        target.send_poison(body)
        designed[body] += 1
    return {job_id for job_id, name in named if name == "work"}, designed


def _kill_some(
    plan: KillPlan, fleet: _Fleet, log: _RunLog, rng: random.Random
) -> list[subprocess.Popen[bytes]]:
    """Kill `plan.kills` running workers at random points, replacing each; return the live ones."""
    live = [fleet.start() for _ in range(plan.workers)]
    while len(fleet.killed) < plan.kills and time.monotonic() < fleet.deadline:
        live = [p for p in live if p.poll() is None]
        if not live:
            break
        busy = [p for p in live if log.has_started(p.pid)]
        if not busy:
            time.sleep(0.005)
            continue
        victim = rng.choice(busy)
        time.sleep(rng.uniform(0, plan.max_kill_delay))
        if victim.poll() is not None:
            continue
        fleet.kill(victim)
        live.remove(victim)
        live.append(fleet.start())
    return live


def _mid_job_kills(log: _RunLog, killed: set[int]) -> int:
    open_jobs: dict[int, set[tuple[str, int]]] = {}
    for event in log.events:
        if event["k"] != "work":
            continue
        running = open_jobs.setdefault(event["p"], set())
        key = (event["j"], event["a"])
        if event["e"] == "start":
            running.add(key)
        else:
            running.discard(key)
    return sum(1 for pid in killed if open_jobs.get(pid))


def run_kill_plan(plan: KillPlan, target: Target, root: Path, *, src: Path | None = None) -> KillReport:
    """Run `plan` against `target`: fill the queue, start workers, kill some, restart until drained.

    Args:
        plan: The run.
        target: The queue (empty).
        root: A directory for the app, the runs file and the worker logs.
        src: Put this directory first on the workers' `PYTHONPATH` (the package source).

    Returns:
        What the run found; it does not raise for lost jobs (the caller asserts).
    """
    started_at = time.monotonic()
    rng = random.Random(plan.seed)
    (root / f"{APP_MODULE}.py").write_text(PROCESS_APP)
    runs_path = root / "runs.jsonl"
    runs_path.unlink(missing_ok=True)
    log = _RunLog(runs_path)
    work_ids, designed = _fill(plan, target, rng)

    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["GW_FAULT_RUNS"] = str(runs_path)
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    command = [sys.executable, "-m", "glasswork", "worker", f"{APP_MODULE}:app", *target.worker_args()]
    command += ["--burst", "--batch-size", str(plan.batch_size)]
    command += ["--visibility-timeout", str(plan.visibility_timeout)]
    fleet = _Fleet(command, root, env, started_at + plan.deadline)

    for process in _kill_some(plan, fleet, log, rng):
        fleet.settle(process)
    while target.pending() and time.monotonic() < fleet.deadline:
        fleet.settle(fleet.start())

    log.refresh()
    ends = Counter(e["j"] for e in log.events if e["e"] == "end" and e["j"] in work_ids)
    dead = Counter(target.dead_letters())
    return KillReport(
        plan=plan,
        kills=len(fleet.killed),
        kills_mid_job=_mid_job_kills(log, fleet.killed),
        worker_starts=len(fleet.started),
        runs=sum(ends.values()),
        lost=sorted(work_ids - set(ends)) + sorted(set(designed) - set(dead)),
        duplicates=sum(count - 1 for count in ends.values()),
        unexpected_dead=sorted(set(dead) - set(designed)),
        dead_duplicates=sum(count - 1 for key, count in dead.items() if key in designed),
        left=target.pending(),
        failed_workers=fleet.failures(),
        elapsed=time.monotonic() - started_at,
    )
