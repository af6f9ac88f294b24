"""Periodic jobs fire locally on their EventBridge schedules, once per tick across workers.

Every test drives an injected clock: nothing sleeps.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from glasswork import (
    JobContext,
    JobExecution,
    Module,
    WorkerHooks,
    bootstrap_worker,
    define_periodic_job,
)
from glasswork.drivers.memory import MockQueueDriver
from glasswork.drivers.sqlite import SQLiteQueueDriver
from glasswork.errors import ThrottledError
from glasswork.local import LocalLambdaContext, Poller
from glasswork.local_scheduler import InProcessLease, LocalScheduler, TickLease, scheduled_event

START = datetime(2026, 11, 29, 10, 3, 20, tzinfo=UTC)


class Wall:
    """A UTC clock that only moves when told."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Calls:
    def __init__(self, *, fail: bool = False) -> None:
        self.events: list[dict[str, object]] = []
        self.fail = fail

    def __call__(self, event: dict[str, object], context: object) -> object:
        self.events.append(event)
        if self.fail:
            raise RuntimeError("report failed")
        return {"status": "succeeded"}

    def times(self) -> list[str]:
        return [str(e["time"]) for e in self.events]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_rate_fires_on_aligned_ticks_without_catching_up() -> None:
    calls = Calls()
    scheduler = LocalScheduler(calls, {"report": "rate(5 minutes)"})
    wall = Wall()
    scheduler.start(wall())  # 10:03:20; the tick of 10:00 passed before the start: not fired

    assert scheduler.run_pending(wall()) == []
    assert scheduler.next_tick() == _at("2026-11-29T10:05:00")
    assert scheduler.seconds_until_next(wall()) == 100.0
    wall.advance(seconds=99)
    assert scheduler.run_pending(wall()) == []
    wall.advance(seconds=1)
    [fired] = scheduler.run_pending(wall())
    wall.advance(minutes=5)
    scheduler.run_pending(wall())

    assert (fired.job_name, fired.tick, fired.fired, fired.error) == (
        "report",
        _at("2026-11-29T10:05:00"),
        True,
        None,
    )
    assert calls.times() == ["2026-11-29T10:05:00Z", "2026-11-29T10:10:00Z"]


def test_cron_fires_on_its_eventbridge_ticks() -> None:
    calls = Calls()
    # 10:00 UTC on the last Friday of the month (day-of-week 6 is Friday: 1 is Sunday).
    scheduler = LocalScheduler(calls, {"payroll": "cron(0 10 ? * 6L *)"})
    wall = Wall(_at("2026-11-01T00:00:00"))
    scheduler.start(wall())

    while wall.now < _at("2027-01-31T00:00:00"):
        scheduler.run_pending(wall.advance(hours=1))

    assert calls.times() == ["2026-11-27T10:00:00Z", "2026-12-25T10:00:00Z", "2027-01-29T10:00:00Z"]


def test_the_event_is_eventbridges_scheduled_event_with_a_stable_id() -> None:
    tick = _at("2026-11-29T10:05:00")

    event = scheduled_event("report", tick)

    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["time"] == "2026-11-29T10:05:00Z"
    assert event["detail"] == {"jobName": "report"}
    assert event["id"] == scheduled_event("report", tick)["id"]
    assert event["id"] != scheduled_event("report", tick + timedelta(minutes=5))["id"]
    assert event["id"] != scheduled_event("other", tick)["id"]


def test_ticks_missed_while_busy_fire_once_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    calls = Calls()
    scheduler = LocalScheduler(calls, {"report": "rate(1 minute)"})
    wall = Wall()
    scheduler.start(wall())

    with caplog.at_level(logging.WARNING, logger="glasswork.scheduler"):
        [fired] = scheduler.run_pending(wall.advance(minutes=3, seconds=50))  # 10:07:10

    assert (fired.tick, fired.skipped) == (_at("2026-11-29T10:04:00"), 3)
    assert calls.times() == ["2026-11-29T10:04:00Z"]
    assert scheduler.next_tick() == _at("2026-11-29T10:08:00")
    assert "3 ticks after 2026-11-29T10:04:00+00:00 passed while the worker was busy" in caplog.text


def test_a_failing_tick_is_logged_and_the_next_one_still_fires(caplog: pytest.LogCaptureFixture) -> None:
    calls = Calls(fail=True)
    scheduler = LocalScheduler(calls, {"report": "rate(1 minute)"})
    wall = Wall()
    scheduler.start(wall())

    with caplog.at_level(logging.ERROR, logger="glasswork.scheduler"):
        [first] = scheduler.run_pending(wall.advance(minutes=1))
        [second] = scheduler.run_pending(wall.advance(minutes=1))

    assert first.error == second.error == "RuntimeError: report failed"
    assert len(calls.events) == 2
    assert "asynchronous invocation would retry it" in caplog.text


def test_a_schedule_that_never_fires_again_is_idle() -> None:
    scheduler = LocalScheduler(Calls(), {"old": "cron(0 0 1 1 ? 2020)"})
    scheduler.start(START)

    assert scheduler.next_tick() is None
    assert scheduler.seconds_until_next(START) is None
    assert scheduler.run_pending(START + timedelta(days=400)) == []


@pytest.mark.parametrize("store", ["sqlite", "memory", "in-process"])
def test_the_lease_grants_each_tick_once(store: str, tmp_path: Path) -> None:
    lease: TickLease
    if store == "sqlite":
        lease = SQLiteQueueDriver(tmp_path / "q.db")
    elif store == "memory":
        lease = MockQueueDriver()
    else:
        lease = InProcessLease()

    assert lease.claim_tick("q:report", 300.0, "a")
    assert not lease.claim_tick("q:report", 300.0, "b")
    assert not lease.claim_tick("q:report", 240.0, "b")  # an older tick is never fired late
    assert lease.claim_tick("other:report", 300.0, "b")
    assert lease.claim_tick("q:report", 360.0, "b")
    if isinstance(lease, SQLiteQueueDriver):
        lease.close()


def test_two_workers_on_one_database_run_each_tick_once(tmp_path: Path) -> None:
    """Two schedulers, each with its own connection to one file, on one clock."""
    calls = Calls()
    drivers = [SQLiteQueueDriver(tmp_path / "q.db") for _ in range(2)]
    schedulers = [
        LocalScheduler(
            calls, {"report": "rate(1 minute)", "audit": "cron(*/2 * * * ? *)"}, lease=d, owner=f"w{n}"
        )
        for n, d in enumerate(drivers)
    ]
    wall = Wall()
    for scheduler in schedulers:
        scheduler.start(wall())
    firers: list[str] = []

    for step in range(20):  # 20 minutes; the workers take turns at who looks first
        wall.advance(minutes=1)
        order = schedulers if step % 2 else schedulers[::-1]
        for scheduler in order:
            firers.extend(scheduler.owner for tick in scheduler.run_pending(wall()) if tick.fired)

    fired = sorted((str(e["detail"]["jobName"]), str(e["time"])) for e in calls.events)  # type: ignore[index]  # the scheduled event's detail
    assert len(fired) == len(set(fired)) == 20 + 10
    assert set(firers) == {"w0", "w1"}
    for driver in drivers:
        driver.close()


def test_two_threads_racing_for_one_tick_fire_it_once(tmp_path: Path) -> None:
    calls = Calls()
    drivers = [SQLiteQueueDriver(tmp_path / "q.db") for _ in range(8)]
    schedulers = [LocalScheduler(calls, {"report": "rate(1 minute)"}, lease=d) for d in drivers]
    for scheduler in schedulers:
        scheduler.start(START)
    barrier = threading.Barrier(len(schedulers))

    def race(scheduler: LocalScheduler) -> None:
        barrier.wait()
        scheduler.run_pending(START + timedelta(minutes=1))

    threads = [threading.Thread(target=race, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(calls.events) == 1
    for driver in drivers:
        driver.close()


# --- through the worker and the poller ------------------------------------------


def _app(runs: list[tuple[object, str]]) -> Module:
    def report(payload: None, ctx: JobContext) -> None:
        runs.append((payload, ctx.job_id))

    return Module(
        name="app", jobs=[define_periodic_job(name="report", handler=report, schedule="rate(1 minute)")]
    )


def test_a_tick_runs_the_job_through_the_handlers_direct_path_with_its_hooks() -> None:
    runs: list[tuple[object, str]] = []
    started: list[str] = []

    def on_start(execution: JobExecution, ctx: JobContext) -> None:
        started.append(execution.job_name)

    worker = bootstrap_worker(
        module=_app(runs), driver=MockQueueDriver(), hooks=WorkerHooks(on_job_start=on_start)
    )
    scheduler = LocalScheduler(worker, worker.registry.schedules())
    scheduler.start(START)

    [tick] = scheduler.run_pending(START + timedelta(minutes=1))

    assert tick.fired
    assert tick.error is None
    assert runs == [(None, scheduled_event("report", tick.tick)["id"])]
    assert started == ["report"]


def test_the_poller_fires_due_ticks_between_batches_but_not_in_burst_mode() -> None:
    runs: list[tuple[object, str]] = []
    mono = [0.0]
    wall = Wall()
    driver = MockQueueDriver()
    worker = bootstrap_worker(module=_app(runs), driver=driver)
    stop = threading.Event()
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        mono[0] += seconds
        wall.advance(seconds=seconds)
        if wall.now >= START + timedelta(minutes=3):
            stop.set()

    def handler(event: dict[str, object], context: LocalLambdaContext) -> object:
        return worker(event, context)

    scheduler = LocalScheduler(worker, worker.registry.schedules())
    poller = Poller(
        handler,
        driver,
        clock=lambda: mono[0],
        sleep=sleep,
        wait_seconds=0,
        idle_sleep=600.0,
        scheduler=scheduler,
        wall_clock=wall,
    )
    poller.run(stop_event=stop)

    assert len(runs) == 3  # 10:04, 10:05 and 10:06, none for 10:03 (before the start)
    assert max(pauses) <= 60.0  # an idle pause (up to 600 s here) never outlasts the next tick
    assert poller.run(burst=True).batches == 0
    assert len(runs) == 3


class FlakyLease:
    """A store that is busy (raises `ThrottledError`) the first `busy` times."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.inner = InProcessLease()

    def claim_tick(self, key: str, tick: float, owner: str) -> bool:
        if self.busy:
            self.busy -= 1
            raise ThrottledError("database is locked")
        return self.inner.claim_tick(key, tick, owner)


def test_a_busy_lease_store_delays_the_tick_instead_of_losing_it(caplog: pytest.LogCaptureFixture) -> None:
    calls = Calls()
    scheduler = LocalScheduler(calls, {"report": "rate(1 minute)"}, lease=FlakyLease(busy=2))
    wall = Wall()
    scheduler.start(wall())

    with caplog.at_level(logging.WARNING, logger="glasswork.scheduler"):
        assert scheduler.run_pending(wall.advance(seconds=40)) == []  # 10:04:00 due; store busy
        assert scheduler.run_pending(wall.advance(seconds=1)) == []  # busy again
        [fired] = scheduler.run_pending(wall.advance(seconds=1))

    assert (fired.tick, fired.fired) == (_at("2026-11-29T10:04:00"), True)
    assert calls.times() == ["2026-11-29T10:04:00Z"]
    assert caplog.text.count("could not claim the tick of 2026-11-29T10:04:00+00:00") == 2
