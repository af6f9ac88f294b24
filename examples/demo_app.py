"""A small shop's background jobs: the app `make demo` runs.

Run it yourself on the embedded queue:

    glasswork enqueue demo_app:app send_welcome '{"email": "ada@example.com"}' --queue sqlite:///demo.db
    glasswork worker demo_app:app --queue sqlite:///demo.db --burst

(from this directory). Each job notes its runs in a `Journal` service, so the
demo can show how often every job ran.
"""

from __future__ import annotations

import json
import os
import threading
import time

import msgspec

from glasswork import (
    JobContext,
    Module,
    PermanentJobError,
    RetryPolicy,
    TransientJobError,
    define_job,
)


class Signup(msgspec.Struct, frozen=True, kw_only=True):
    email: str


class Image(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    width: int = 640


class Sku(msgspec.Struct, frozen=True, kw_only=True):
    sku: str


class Charge(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    cents: int


class Journal:
    """Appends one JSON line per job run to `GLASSWORK_DEMO_JOURNAL` (nothing when unset)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> Journal:
        return cls(os.environ.get("GLASSWORK_DEMO_JOURNAL"))

    def ran(self, ctx: JobContext) -> None:
        if self.path is None:
            return
        line = json.dumps(
            {"job": ctx.job_name, "job_id": ctx.job_id, "attempt": ctx.attempt_number, "pid": os.getpid()}
        )
        with self._lock, open(self.path, "a", encoding="utf-8") as journal:
            journal.write(line + "\n")


def send_welcome(payload: Signup, ctx: JobContext) -> None:
    ctx.services.get("journal", Journal).ran(ctx)
    ctx.logger.info("welcome mail sent to %s", payload.email)


def resize_image(payload: Image, ctx: JobContext) -> None:
    ctx.services.get("journal", Journal).ran(ctx)
    time.sleep(0.05)
    ctx.logger.info("resized %s to %d px", payload.path, payload.width)


def sync_inventory(payload: Sku, ctx: JobContext) -> None:
    ctx.services.get("journal", Journal).ran(ctx)
    if ctx.attempt_number == 1:
        raise TransientJobError(f"inventory API timed out for {payload.sku}", retry_after=0)


def charge_card(payload: Charge, ctx: JobContext) -> None:
    ctx.services.get("journal", Journal).ran(ctx)
    raise PermanentJobError(f"card declined for order {payload.order_id}")


app = Module(
    name="shop",
    jobs=[
        define_job(name="send_welcome", handler=send_welcome, payload=Signup),
        define_job(name="resize_image", handler=resize_image, payload=Image),
        define_job(
            name="sync_inventory",
            handler=sync_inventory,
            payload=Sku,
            retry=RetryPolicy(max_attempts=3),
        ),
        define_job(name="charge_card", handler=charge_card, payload=Charge),
    ],
    services={"journal": Journal.from_environment},
)
