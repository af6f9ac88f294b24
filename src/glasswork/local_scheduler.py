"""Periodic jobs on a laptop: EventBridge's schedules, fired locally through the Lambda handler.

On AWS an EventBridge rule invokes the function with a scheduled event; here
`LocalScheduler` does the same for every periodic job of the app
(`define_periodic_job(schedule=...)`), calling the same handler with an
event shaped like EventBridge's (`"detail-type": "Scheduled Event"`, the job
in `detail`), so the job runs through the worker's direct-invocation path:
hooks fire, a failure is logged (on Lambda it would be raised for Lambda's
asynchronous retries; locally there is no retry).

Semantics, as on EventBridge where a local run has an equivalent:

- Expressions are parsed by `glasswork.schedule` (UTC; `rate(...)` ticks are
  aligned to the Unix epoch so every process agrees on them).
- No catch-up: at start the first tick is the next one after now; ticks that
  passed while no worker ran are not fired. A tick that comes due while the
  worker is busy is fired once, late; if more than one passed meanwhile, the
  extra ones are skipped and logged.
- Each tick runs once across workers: before firing, a worker claims the
  tick in the queue's store (`TickLease`: a row per job in the SQLite file,
  claimed inside one write transaction; a key on the Redis server, claimed by
  one Lua script). A driver without a store (SQS) gets
  a lease of this process only, and the worker says so at start: run the
  scheduler in one worker then (`--no-schedules` on the others).
- Fired ticks run between batches, one invocation at a time, as Lambda runs
  one invocation per execution environment; a tick waits for the batch in hand.

Nothing here reads the clock on its own or sleeps: the poller passes `now`
(an injectable clock), so tests drive it without waiting.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final, Protocol, runtime_checkable

import msgspec

from glasswork.errors import DriverError
from glasswork.schedule import CronSchedule, RateSchedule, parse_schedule

__all__ = ["FiredTick", "InProcessLease", "LocalScheduler", "TickLease", "scheduled_event", "utc_now"]

_log: Final = logging.getLogger("glasswork.scheduler")
_NAMESPACE: Final = uuid.UUID("6f1d2c1e-5a1b-4d47-9a43-3f0f6f3c8b21")


@runtime_checkable
class TickLease(Protocol):
    """Claims a schedule tick so that one worker among several fires it."""

    def claim_tick(self, key: str, tick: float, owner: str) -> bool:
        """Claim `tick` (seconds since the epoch) of the schedule `key`.

        Returns:
            True for the one caller that claims a tick later than any claimed
            before for `key`; False for every other.
        """
        ...


class InProcessLease:
    """A `TickLease` of one process: for drivers that keep no store (SQS)."""

    def __init__(self) -> None:
        self._claimed: dict[str, float] = {}

    def claim_tick(self, key: str, tick: float, owner: str) -> bool:  # one owner here
        """Claim `tick` if it is later than the last one claimed for `key` in this process."""
        if self._claimed.get(key, float("-inf")) >= tick:
            return False
        self._claimed[key] = tick
        return True


class FiredTick(msgspec.Struct, frozen=True, kw_only=True):
    """One tick a scheduler looked at.

    Attributes:
        job_name: The periodic job.
        tick: The tick's time (UTC).
        fired: This worker claimed the tick and invoked the handler.
        error: What the invocation raised (`"Type: message"`), if it failed.
        skipped: Ticks that passed while the worker was busy and were not fired.
    """

    job_name: str
    tick: datetime
    fired: bool
    error: str | None = None
    skipped: int = 0


def scheduled_event(job_name: str, tick: datetime, *, region: str = "local") -> dict[str, object]:
    """The event an EventBridge schedule rule for `job_name` delivers at `tick`.

    The id is derived from the job and the tick, so every worker would give a
    tick's run the same job id.
    """
    return {
        "version": "0",
        "id": str(uuid.uuid5(_NAMESPACE, f"{job_name}@{tick.isoformat()}")),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": tick.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:000000000000:rule/glasswork-{job_name}"],
        "detail": {"jobName": job_name},
    }


class LocalScheduler:
    """Fire the periodic jobs of an app on their schedules, through a Lambda handler.

    Args:
        handler: Called as `handler(event, context)` with a scheduled event;
            the worker's handler runs the job and raises if it failed.
        schedules: Job name -> EventBridge expression, for each periodic job
            (`JobRegistry.schedules()` gives them for an app).
        lease: Where ticks are claimed (the queue driver when it is a
            `TickLease`); `None` for a lease of this process only.
        namespace: Prefix of the lease keys (the queue name), so that apps
            sharing one database file do not claim each other's ticks.
        context: Makes the context object for one invocation.
        owner: Names this worker in the lease (default `host:pid`).

    Raises:
        ConfigurationError: An expression is not one EventBridge accepts.
    """

    def __init__(
        self,
        handler: Callable[[dict[str, object], object], object],
        schedules: Mapping[str, str],
        *,
        lease: TickLease | None = None,
        namespace: str = "default",
        context: Callable[[], object] = lambda: None,
        owner: str | None = None,
    ) -> None:
        self.handler = handler
        self.schedules: dict[str, RateSchedule | CronSchedule] = {
            name: parse_schedule(expression) for name, expression in schedules.items()
        }
        self.shared = lease is not None
        self.lease: TickLease = lease if lease is not None else InProcessLease()
        self.namespace = namespace
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self._context = context
        self._next: dict[str, datetime | None] = {}

    def __bool__(self) -> bool:
        return bool(self.schedules)

    def start(self, now: datetime) -> None:
        """Plan the first tick of each job: the next one after `now` (no catch-up)."""
        self._next = {name: schedule.next_after(now) for name, schedule in self.schedules.items()}

    def next_tick(self) -> datetime | None:
        """The earliest planned tick, or `None` when no schedule will fire again."""
        planned = [tick for tick in self._next.values() if tick is not None]
        return min(planned) if planned else None

    def seconds_until_next(self, now: datetime) -> float | None:
        """Seconds from `now` to the earliest planned tick (0 when one is due), or `None`."""
        tick = self.next_tick()
        return None if tick is None else max((tick - now).total_seconds(), 0.0)

    def run_pending(self, now: datetime) -> list[FiredTick]:
        """Fire every job whose planned tick is at or before `now`, then plan its next tick.

        Returns:
            One entry per due tick, fired or claimed by another worker.
        """
        if not self._next:
            self.start(now)
            return []
        done: list[FiredTick] = []
        for name, tick in self._next.items():
            if tick is None or tick > now:
                continue
            schedule = self.schedules[name]
            skipped = _ticks_between(schedule, tick, now)
            try:
                claimed = self.lease.claim_tick(f"{self.namespace}:{name}", tick.timestamp(), self.owner)
            except DriverError as exc:
                # The tick stays planned: the next pass claims it again (the store may be busy).
                _log.warning(
                    "periodic job %s: could not claim the tick of %s: %s", name, tick.isoformat(), exc
                )
                continue
            self._next[name] = schedule.next_after(now)
            done.append(self._fire(name, tick, skipped, claimed=claimed))
        return done

    def _fire(self, name: str, tick: datetime, skipped: int, *, claimed: bool) -> FiredTick:
        if skipped:
            _log.warning(
                "periodic job %s: %d tick%s after %s passed while the worker was busy and %s skipped",
                name,
                skipped,
                "s" if skipped != 1 else "",
                tick.isoformat(),
                "were" if skipped != 1 else "was",
            )
        if not claimed:
            _log.debug("periodic job %s: tick %s claimed by another worker", name, tick.isoformat())
            return FiredTick(job_name=name, tick=tick, fired=False, skipped=skipped)
        _log.info("periodic job %s: firing the tick of %s", name, tick.isoformat())
        try:
            self.handler(scheduled_event(name, tick), self._context())
        except Exception as exc:  # noqa: BLE001  # a failed tick is logged; the next one still fires
            error = f"{type(exc).__name__}: {exc}"
            _log.error(
                "periodic job %s: the tick of %s failed (%s); on Lambda, asynchronous invocation "
                "would retry it up to twice; locally the next tick runs as planned",
                name,
                tick.isoformat(),
                error,
            )
            return FiredTick(job_name=name, tick=tick, fired=True, error=error, skipped=skipped)
        return FiredTick(job_name=name, tick=tick, fired=True, skipped=skipped)


def _ticks_between(schedule: RateSchedule | CronSchedule, tick: datetime, now: datetime) -> int:
    """How many ticks after `tick` are at or before `now` (a busy worker skips them); counted to 1,000."""
    count = 0
    moment: datetime | None = schedule.next_after(tick)
    while moment is not None and moment <= now and count < 1_000:
        count += 1
        moment = schedule.next_after(moment)
    return count


def utc_now() -> datetime:
    """The current time in UTC (the scheduler's default clock)."""
    return datetime.now(UTC)
