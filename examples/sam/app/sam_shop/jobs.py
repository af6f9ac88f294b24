"""The shop's jobs, shared by the API function (which enqueues) and the worker (which runs)."""

from __future__ import annotations

import msgspec

from glasswork import (
    Backoff,
    JobContext,
    Module,
    PermanentJobError,
    RetryPolicy,
    define_job,
)

MAX_ATTEMPTS = 5
"""Every job here gives up after this many attempts; the queue's maxReceiveCount is higher."""


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """What the receipt and review jobs need to know about an order."""

    order_id: int
    email: str


def send_receipt(payload: Receipt, ctx: JobContext) -> None:
    """Mail the receipt (here: log it). A bad address can never succeed: dead-letter it now."""
    if "@" not in payload.email:
        msg = f"cannot mail a receipt to {payload.email!r}"
        raise PermanentJobError(msg)
    ctx.logger.info("receipt for order %s sent to %s", payload.order_id, payload.email)


def ask_for_review(payload: Receipt, ctx: JobContext) -> None:
    """Ask the customer for a review, days after the order (enqueued with a long delay)."""
    ctx.logger.info("review request for order %s sent to %s", payload.order_id, payload.email)


send_receipt_job = define_job(
    name="send_receipt",
    handler=send_receipt,
    payload=Receipt,
    retry=RetryPolicy(max_attempts=MAX_ATTEMPTS, backoff=Backoff(base=10.0, max=600.0)),
    unique=lambda receipt: f"receipt-{receipt.order_id}",
)
ask_for_review_job = define_job(
    name="ask_for_review", handler=ask_for_review, payload=Receipt, retry=MAX_ATTEMPTS
)

app = Module(name="shop", jobs=[send_receipt_job, ask_for_review_job])
