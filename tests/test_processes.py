"""Worker processes on one queue: exclusive delivery, crash safety, clean shutdown.

Each test runs on an SQLite file and on a real redis-server. These start real
`glasswork worker` processes, so they poll with deadlines instead of an
injected clock.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from glasswork import JobService, define_job
from glasswork.cli import open_queue
from glasswork.drivers.redis import RedisQueueDriver
from glasswork.drivers.sqlite import SQLiteQueueDriver

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[1] / "src"

APP = """
import contextlib
import itertools
import json
import os
import time

from glasswork import Module, define_job


def _log(event, ctx):
    line = json.dumps({
        "event": event, "message_id": ctx.message_id, "job_id": ctx.job_id,
        "attempt": ctx.attempt_number, "pid": os.getpid(), "t": time.time(),
    })
    with open(os.environ["GW_PROC_LOG"], "a") as log:
        log.write(line + "\\n")


def work(payload, ctx):
    _log("start", ctx)
    time.sleep(float(os.environ.get("GW_PROC_SLEEP", "0")))
    if os.environ.get("GW_PROC_HANG"):
        time.sleep(120)
    _log("end", ctx)


app = Module(name="procapp", jobs=[define_job(name="work", handler=work)])
"""


def _noop(payload: object, ctx: object) -> None:
    return None


WORK = define_job(name="work", handler=_noop)


class Setup:
    def __init__(self, root: Path, url: str | None = None) -> None:
        self.root = root
        self.db = root / "queue.db"
        self.url = url or f"sqlite:///{self.db}"
        self.log = root / "runs.jsonl"
        (root / "procapp.py").write_text(APP)

    @contextlib.contextmanager
    def driver(self) -> Iterator[SQLiteQueueDriver | RedisQueueDriver]:
        """The queue's driver, opened from its URL as the CLI opens it."""
        driver, _ = open_queue(self.url)
        assert isinstance(driver, SQLiteQueueDriver | RedisQueueDriver)
        with driver:
            yield driver

    def enqueue(self, count: int) -> list[str]:
        with self.driver() as driver:
            service = JobService(driver)
            return [r.job_id for r in service.enqueue_batch([(WORK, {"n": n}) for n in range(count)])]

    def worker(self, *options: str, **env: str) -> subprocess.Popen[str]:
        environ = dict(os.environ)
        environ["PYTHONPATH"] = os.pathsep.join([str(SRC), environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        environ["GW_PROC_LOG"] = str(self.log)
        environ.update(env)
        return subprocess.Popen(
            [sys.executable, "-m", "glasswork", "worker", "procapp:app", "--queue", self.url, *options],
            cwd=self.root,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def events(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def counts(self) -> tuple[int, int, int, int]:
        with self.driver() as driver:
            c = driver.counts()
        return c.visible, c.in_flight, c.delayed, c.dead


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _finish(process: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"worker did not exit within {timeout} s:\n{err}")
    return process.returncode, err


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Setup:
    if request.param == "redis":
        return Setup(tmp_path, request.getfixturevalue("redis_url"))
    return Setup(tmp_path)


def test_two_workers_never_run_one_message_at_the_same_time(setup: Setup) -> None:
    job_ids = setup.enqueue(40)
    options = ("--burst", "--batch-size", "2", "--visibility-timeout", "10")
    workers = [setup.worker(*options, GW_PROC_SLEEP="0.03") for _ in range(2)]

    results = [_finish(w, timeout=45) for w in workers]

    assert [code for code, _ in results] == [0, 0], results
    events = setup.events()
    runs: dict[str, list[tuple[float, float, object]]] = defaultdict(list)
    starts: dict[tuple[object, object, object], float] = {}
    for event in events:
        key = (event["message_id"], event["pid"], event["attempt"])
        if event["event"] == "start":
            starts[key] = float(event["t"])  # type: ignore[arg-type]  # a JSON number
        else:
            runs[str(event["message_id"])].append((starts.pop(key), float(event["t"]), event["pid"]))  # type: ignore[arg-type]  # a JSON number
    assert not starts, "a job started and never ended"
    assert sorted(str(e["job_id"]) for e in events if e["event"] == "end") == sorted(job_ids)
    for intervals in runs.values():
        intervals.sort()
        for (_, first_end, _), (second_start, _, _) in itertools.pairwise(intervals):
            assert first_end <= second_start
    assert len({pid for intervals in runs.values() for _, _, pid in intervals}) == 2
    assert setup.counts() == (0, 0, 0, 0)


def test_kill_9_mid_batch_loses_nothing(setup: Setup) -> None:
    job_ids = setup.enqueue(8)
    doomed = setup.worker("--batch-size", "4", "--visibility-timeout", "2", GW_PROC_HANG="1")
    _wait_for(lambda: any(e["event"] == "start" for e in setup.events()), 20, "the first job to start")
    doomed.kill()
    code, _ = _finish(doomed, timeout=10)
    assert code == -signal.SIGKILL
    running = {str(e["job_id"]) for e in setup.events() if e["event"] == "start"}
    assert len(running) == 1
    assert setup.counts() == (4, 4, 0, 0)

    survivor = setup.worker("--burst", "--batch-size", "4", "--visibility-timeout", "2")
    code, err = _finish(survivor, timeout=30)

    assert code == 0, err
    ended = [e for e in setup.events() if e["event"] == "end"]
    assert sorted(str(e["job_id"]) for e in ended) == sorted(job_ids)
    redelivered = {str(e["job_id"]) for e in ended if e["attempt"] == 2}
    assert len(redelivered) == 4
    assert running <= redelivered
    assert setup.counts() == (0, 0, 0, 0)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_finishes_the_batch_in_hand_then_exits_0(setup: Setup, signum: signal.Signals) -> None:
    setup.enqueue(9)
    worker = setup.worker("--batch-size", "3", GW_PROC_SLEEP="0.4")
    _wait_for(lambda: any(e["event"] == "start" for e in setup.events()), 20, "the first job to start")

    worker.send_signal(signum)
    code, err = _finish(worker, timeout=20)

    assert code == 0, err
    assert f"{signum.name} received" in err
    assert "Traceback" not in err
    events = setup.events()
    started = [e["job_id"] for e in events if e["event"] == "start"]
    ended = [e["job_id"] for e in events if e["event"] == "end"]
    assert sorted(started) == sorted(ended)  # type: ignore[type-var]  # JSON strings
    assert len(ended) == 3
    assert setup.counts() == (6, 0, 0, 0)


def test_finding_1_two_workers_on_a_short_visibility_timeout_run_each_job_once(setup: Setup) -> None:
    """Issue 11, finding 1: a queue of visibility timeout 2 s and jobs of 0.6 s.

    The workers used to run with a 30 s function timeout, so records came back
    to the other worker mid-batch, ran again and again, and the stale deletes
    deleted nothing: 10 jobs ran 250 times and all ended dead-lettered. The
    function timeout now follows the queue's visibility timeout, so the time
    guard hands unstarted records back before they reappear.
    """
    with setup.driver() as driver:
        driver.configure_queue("default", visibility_timeout=2)
    job_ids = setup.enqueue(10)
    workers = [setup.worker("--burst", GW_PROC_SLEEP="0.6") for _ in range(2)]

    results = [_finish(w, timeout=60) for w in workers]

    assert [code for code, _ in results] == [0, 0], results
    for _, err in results:
        assert "function timeout 2 s" in err
        assert "stale" not in err
        assert "over the function timeout" not in err
    events = setup.events()
    assert sorted(str(e["job_id"]) for e in events if e["event"] == "start") == sorted(job_ids)
    assert sorted(str(e["job_id"]) for e in events if e["event"] == "end") == sorted(job_ids)
    assert setup.counts() == (0, 0, 0, 0)


SLOW_START = """
import os
import pathlib
import time

pathlib.Path(os.environ["GW_STARTED"]).write_text("importing")
time.sleep(float(os.environ.get("GW_IMPORT_SLEEP", "0")))

from glasswork import Module, bootstrap_worker, define_job


def work(payload, ctx):
    pathlib.Path(os.environ["GW_PROC_LOG"]).write_text("a job ran")


def slow_service():
    pathlib.Path(os.environ["GW_STARTED"]).write_text("services")
    time.sleep(float(os.environ.get("GW_SERVICE_SLEEP", "0")))
    return "ready"


app = Module(name="slowapp", jobs=[define_job(name="work", handler=work)], services={"slow": slow_service})
handler = bootstrap_worker(module=app)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("phase", ["importing", "services"])
def test_a_signal_during_start_up_exits_0_and_receives_nothing(
    setup: Setup, signum: signal.Signals, phase: str
) -> None:
    (setup.root / "slowapp.py").write_text(SLOW_START)
    started = setup.root / "started.txt"
    setup.enqueue(3)
    sleeps = {"GW_IMPORT_SLEEP": "1.5"} if phase == "importing" else {"GW_SERVICE_SLEEP": "1.5"}
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join([str(SRC), environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    environ.update(GW_PROC_LOG=str(setup.log), GW_STARTED=str(started), **sleeps)
    process = subprocess.Popen(
        [sys.executable, "-m", "glasswork", "worker", "slowapp:handler", "--queue", setup.url],
        cwd=setup.root,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: started.exists() and started.read_text() == phase, 20, f"start-up to reach {phase}")

    process.send_signal(signum)
    code, err = _finish(process, timeout=20)

    assert code == 0, err
    assert "Traceback" not in err
    assert not setup.log.exists()  # no job ran
    assert setup.counts() == (3, 0, 0, 0)  # nothing was received, nothing lost
