"""A Lambda handler composed by hand from glasswork's pure core, without `bootstrap_worker`.

For a Lambda that already exists and handles several event sources, or that
wraps each job in middleware of its own (a tracer segment, a metrics scope):
the core decodes and decides, this file performs the decisions.

- `SQSEvent` decodes Lambda's event once, at the edge;
- `prepare_record` decodes a body, finds its job and converts its payload
  (or says what becomes of a poison body, an unknown job, an invalid payload);
- the handler runs here, between your own middleware;
- `decide_retry` turns an error into `Retry | DeadLetter | Discard`;
- a `WorkerDriver` performs them (`dead_letter`, `change_visibility`), and the
  handler returns the partial batch response.

It keeps the worker's guarantees: a record is reported failed unless it
succeeded, was discarded or safely reached the dead-letter queue; a FIFO
group stops at its first failure; no record starts without enough Lambda time.
`def` jobs only (await an `async def` handler yourself if you have some).

Run it: `python examples/compose_by_hand.py`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from typing import TypeAlias, assert_never, cast

import msgspec

from glasswork import (
    Backoff,
    JobContext,
    JobRegistry,
    Module,
    PermanentJobError,
    RetryPolicy,
    TransientJobError,
    define_job,
)
from glasswork.context import LambdaContext, Services
from glasswork.core import (
    Ack,
    DeadLetter,
    Defer,
    Discard,
    RecordResult,
    Retry,
    SQSEvent,
    SQSRecord,
    decide_retry,
    prepare_record,
)
from glasswork.drivers.base import DeadLetterInfo, VisibilityChange, WorkerDriver

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


def run_record(
    record: SQSRecord,
    registry: JobRegistry,
    *,
    services: Services,
    lambda_context: LambdaContext | None,
    jitter: float,
) -> RecordResult:
    """Decode one record, run its job and decide what becomes of it (no I/O but the job)."""
    prepared = prepare_record(record, registry)
    if isinstance(prepared, RecordResult):  # poison body, unknown job, invalid payload
        return prepared
    ctx = JobContext(services=services, execution=prepared.execution, lambda_context=lambda_context)
    try:
        # your middleware goes here: a tracer segment, metrics, a database transaction
        prepared.job.handler(prepared.execution.payload, ctx)
    except Exception as exc:  # noqa: BLE001  # every job error becomes a decision
        decision = decide_retry(
            exc,
            attempt=prepared.attempt,
            policy=prepared.job.retry,
            jitter=jitter,
            job_name=prepared.job.name,
        )
        return prepared.result(decision)
    return prepared.result(Ack())


def send_to_dead_letter_queue(driver: WorkerDriver, result: RecordResult, outcome: DeadLetter) -> bool:
    """Dead-letter a record through the driver; `False` when the send failed."""
    execution = result.execution
    info = DeadLetterInfo(
        reason=outcome.reason,
        error_type=type(outcome.error).__name__,
        error_message=str(outcome.error)[:1_000],
        attempt=result.attempt,
        source_queue=result.record.event_source_arn,
        job_name=execution.job_name if execution is not None else None,
        job_id=execution.job_id if execution is not None else None,
    )
    try:
        driver.dead_letter(result.record, info)
    except Exception:  # never lose a message: report it failed instead
        log.exception("message %s: dead-letter send failed", result.record.message_id)
        return False
    return True


def settle(driver: WorkerDriver, result: RecordResult) -> tuple[bool, VisibilityChange | None]:
    """Perform one record's outcome: whether to report it failed, and the backoff to apply."""
    record = result.record
    match result.outcome:
        case Ack():
            return False, None
        case Defer():
            return True, None
        case Retry(delay=delay):  # redelivered after `delay`, else the visibility timeout
            backoff = None
            if delay is not None:
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
            log.warning("message %s discarded: %s", record.message_id, reason)
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

    def handle_batch(event: Mapping[str, object], lambda_context: LambdaContext | None) -> dict[str, object]:
        batch = msgspec.convert(event, SQSEvent)  # a malformed event raises: Lambda retries it whole
        failed: list[str] = []
        blocked_groups: set[str] = set()
        delays: list[VisibilityChange] = []
        for record in batch.records:
            group = record.attributes.message_group_id
            if group is not None and group in blocked_groups:  # keep the group's order
                result = RecordResult(record=record, outcome=Defer(reason="fifo_group_blocked"), attempt=0)
            elif (
                lambda_context is not None and lambda_context.get_remaining_time_in_millis() < time_margin_ms
            ):
                result = RecordResult(record=record, outcome=Defer(reason="time_budget"), attempt=0)
            else:
                result = run_record(
                    record, registry, services=services, lambda_context=lambda_context, jitter=jitter()
                )
            reported_failed, delay = settle(driver, result)
            if delay is not None:
                delays.append(delay)
            if reported_failed:
                failed.append(record.message_id)
                if group is not None:
                    blocked_groups.add(group)
        if delays:
            try:
                driver.change_visibility(delays)
            except Exception:  # the records stay reported failed either way
                log.exception("could not apply backoff to %d records", len(delays))
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    def handler(event: Mapping[str, object], context: object = None) -> dict[str, object]:
        has_clock = callable(getattr(context, "get_remaining_time_in_millis", None))
        lambda_context = cast("LambdaContext", context) if has_clock else None
        if isinstance(event.get("Records"), list):
            return handle_batch(event, lambda_context)
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
