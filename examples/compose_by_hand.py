"""A Lambda handler composed by hand from glasswork's pure core, without `bootstrap_worker`.

For a Lambda that already exists and handles several event sources, or that
wraps each job in middleware of its own (a tracer segment, a metrics scope):
the core decodes and decides, this file performs the decisions.

- `process_record` is the worker's own pipeline: it reads a record as Lambda
  delivers it, finds its job, converts its payload, calls your runner (where
  your middleware goes) and decides: `Ack | Retry | DeadLetter | Discard | Defer`;
- the FIFO and time rules are arguments of it: the groups blocked so far in
  the batch and the Lambda time left;
- a `WorkerDriver` performs the outcomes (`dead_letter`, `change_visibility`),
  and the handler returns the partial batch response.

It keeps the worker's guarantees: a record is reported failed unless it
succeeded, was discarded or safely reached the dead-letter queue; a FIFO
group stops at its first failure; no record starts without enough Lambda time.
`def` jobs only (for `async def` ones, `process_record_async` takes an async runner).

Run it: `python examples/compose_by_hand.py`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, assert_never, cast

import msgspec

from glasswork import (
    Ack,
    Backoff,
    DeadLetter,
    DeadLetterInfo,
    Defer,
    Discard,
    Job,
    JobContext,
    JobRegistry,
    LambdaContext,
    Module,
    PermanentJobError,
    RecordOptions,
    RecordResult,
    Retry,
    RetryPolicy,
    Services,
    TransientJobError,
    VisibilityChange,
    WorkerDriver,
    define_job,
    process_record,
)

log = logging.getLogger("shop.worker")

Handler: TypeAlias = Callable[[Mapping[str, object], object], dict[str, object]]


# --- the jobs ---------------------------------------------------------------------


class Reservation(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    quantity: int


def reserve_stock(payload: Reservation, ctx: JobContext) -> None:
    if payload.quantity <= 0:
        raise PermanentJobError(f"cannot reserve {payload.quantity} of {payload.sku}")
    if payload.sku.startswith("busy-"):
        raise TransientJobError("warehouse busy")
    ctx.services.reserved.append((payload.sku, payload.quantity))


reserve_stock_job = define_job(
    name="reserve_stock",
    handler=reserve_stock,
    payload=Reservation,
    retry=RetryPolicy(max_attempts=3, backoff=Backoff(base=5, max=300)),
)

app = Module(name="shop", jobs=[reserve_stock_job], services={"reserved": list})


# --- the handler --------------------------------------------------------------------


def run_with_middleware(job: Job[Any], payload: object, ctx: JobContext) -> object:
    """The runner `process_record` calls: your middleware goes around the handler."""
    # a tracer segment, metrics or a database transaction would open here
    return job.handler(payload, ctx)


def send_to_dead_letter_queue(driver: WorkerDriver, result: RecordResult, outcome: DeadLetter) -> bool:
    """Dead-letter a record through the driver; `False` when the send failed."""
    execution = result.execution
    record = result.record
    info = DeadLetterInfo(
        reason=outcome.reason,
        error_type=type(outcome.error).__name__,
        error_message=str(outcome.error)[:1_000],
        attempt=result.attempt,
        source_queue=record.event_source_arn,
        job_name=execution.job_name if execution is not None else None,
        job_id=execution.job_id if execution is not None else None,
    )
    try:
        driver.dead_letter(record, info)
    except Exception:  # never lose a message: report it failed instead
        log.exception("message %s: dead-letter send failed", result.message_id)
        return False
    return True


def settle(driver: WorkerDriver, result: RecordResult) -> tuple[bool, VisibilityChange | None]:
    """Perform one record's outcome: whether to report it failed, and the backoff to apply."""
    match result.outcome:
        case Ack():
            return False, None
        case Defer():
            return True, None
        case Retry(delay=delay):  # redelivered after `delay`, else the visibility timeout
            backoff = None
            if delay is not None:
                record = result.record
                backoff = VisibilityChange(
                    message_id=record.message_id,
                    receipt_handle=record.receipt_handle,
                    seconds=delay,
                    source_queue=record.event_source_arn,
                )
            return True, backoff
        case DeadLetter() as dead:
            return not send_to_dead_letter_queue(driver, result, dead), None
        case Discard(reason=reason):
            log.warning("message %s discarded: %s", result.message_id, reason)
            return False, None
        case _:
            assert_never(result.outcome)


def make_handler(
    module: Module,
    *,
    driver: WorkerDriver,
    jitter: Callable[[], float] = random.random,
    time_margin_ms: int = 1_000,
) -> Handler:
    """A Lambda handler for SQS batches of `module`'s jobs, and for health checks.

    Args:
        module: The jobs.
        driver: Dead-letters and changes visibility (`SQSQueueDriver` on Lambda).
        jitter: Draws the backoff's full-jitter factor in `[0, 1]`.
        time_margin_ms: Do not start a record with less Lambda time than this left.

    Returns:
        `handler(event, context)`.
    """
    registry = JobRegistry.from_module(module)
    services = Services({name: factory() for name, factory in registry.service_factories.items()})

    def handle_batch(records: list[object], lambda_context: LambdaContext | None) -> dict[str, object]:
        options = RecordOptions(
            services=services, lambda_context=lambda_context, time_margin_ms=time_margin_ms
        )
        failed: list[str] = []
        blocked_groups: set[str] = set()
        delays: list[VisibilityChange] = []
        for record in records:
            result = process_record(
                record,
                registry,
                run=run_with_middleware,
                jitter=jitter(),
                blocked_groups=blocked_groups,  # keep each FIFO group's order
                time_left_ms=lambda_context.get_remaining_time_in_millis() if lambda_context else None,
                options=options,
            )
            reported_failed, delay = settle(driver, result)
            if delay is not None:
                delays.append(delay)
            if reported_failed and result.message_id:
                failed.append(result.message_id)
                if result.group is not None:
                    blocked_groups.add(result.group)
        if delays:
            try:
                driver.change_visibility(delays)
            except Exception:  # the records stay reported failed either way
                log.exception("could not apply backoff to %d records", len(delays))
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    def handler(event: Mapping[str, object], context: object = None) -> dict[str, object]:
        has_clock = callable(getattr(context, "get_remaining_time_in_millis", None))
        lambda_context = cast("LambdaContext", context) if has_clock else None
        records = event.get("Records")
        if isinstance(records, list):
            return handle_batch(records, lambda_context)
        if "httpMethod" in event or "requestContext" in event:  # the same function serves a health check
            return {"statusCode": 200, "body": "ok"}
        msg = f"unexpected event with keys {sorted(event)}"
        raise ValueError(msg)

    return handler


def _demo() -> None:
    from glasswork import MockQueueDriver  # noqa: PLC0415  # the demo only
    from glasswork.testing import FakeLambdaContext, job_body, sqs_event, sqs_record  # noqa: PLC0415

    driver = MockQueueDriver()
    handler = make_handler(app, driver=driver, jitter=lambda: 1.0)
    event = sqs_event(
        [
            sqs_record(job_body(reserve_stock_job, {"sku": "apple", "quantity": 2}), message_id="ok"),
            sqs_record(job_body(reserve_stock_job, {"sku": "busy-pear", "quantity": 1}), message_id="busy"),
            sqs_record(job_body(reserve_stock_job, {"sku": "plum", "quantity": 0}), message_id="zero"),
            sqs_record("not json", message_id="poison"),
        ]
    )
    print(handler(event, FakeLambdaContext()))
    print("dead letters:", [(d.message_id, d.reason) for d in driver.dead_letters])
    print("backoff:", [(c.message_id, c.seconds) for c in driver.visibility_changes])


if __name__ == "__main__":
    _demo()
