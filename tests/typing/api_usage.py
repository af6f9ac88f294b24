"""A user's code: must pass `mypy --strict` against the installed wheel."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pydantic

from glasswork import (
    Ack,
    AsyncJobService,
    Backoff,
    DeadLetter,
    Defer,
    Discard,
    EnqueueResult,
    Job,
    JobContext,
    JobExecution,
    JobMessage,
    JobRegistry,
    JobService,
    MockQueueDriver,
    Module,
    Outcome,
    RecordOptions,
    RecordResult,
    Retry,
    RetryPolicy,
    Services,
    TransientJobError,
    WorkerHooks,
    bootstrap_worker,
    classify_error,
    decide_retry,
    define_job,
    define_periodic_job,
    process_record,
)
from glasswork.drivers.base import AsyncQueueDriver


class Order(msgspec.Struct, frozen=True):
    order_id: int
    email: str


def send_receipt(payload: Order, ctx: JobContext) -> None:
    ctx.logger.info("receipt for %s (attempt %d)", payload.order_id, ctx.attempt_number)
    if ctx.attempt_number < 2:
        raise TransientJobError("mail server busy", retry_after=timedelta(seconds=30))


async def refresh_cache(payload: dict[str, int], ctx: JobContext) -> None:
    assert ctx.enqueued_at.tzinfo is not None


def nightly(payload: None, ctx: JobContext) -> None:
    pass


receipts: Job[Order] = define_job(
    name="send_receipt",
    handler=send_receipt,
    payload=Order,
    retry=RetryPolicy(max_attempts=5, backoff=Backoff(base=timedelta(seconds=2), max=600)),
    unique=lambda order: f"receipt-{order.order_id}",
    permanent_errors=(ValueError, KeyError),
)
cache: Job[dict[str, int]] = define_job(
    name="refresh_cache", handler=refresh_cache, payload=dict[str, int], retry=3, permanent_errors=LookupError
)
periodic: Job[None] = define_periodic_job(
    name="nightly", handler=nightly, schedule="cron(0 3 * * ? *)", permanent_errors=[PermissionError]
)
listed: tuple[type[BaseException], ...] = receipts.permanent_errors
kind: str = classify_error(ValueError("no lines"), receipts.permanent_errors)
plain_kind: str = classify_error(ValueError("no lines"))
decision = decide_retry(
    KeyError("sku"), attempt=1, policy=receipts.retry, permanent=receipts.permanent_errors
)


def on_failed(job: JobExecution, ctx: JobContext, error: BaseException) -> None:
    print(job.job_name, job.attempt_number, error)


app = Module(name="app", jobs=[receipts, cache, periodic], services={"started": lambda: datetime.now(UTC)})
handler = bootstrap_worker(module=app, hooks=WorkerHooks(on_job_failed=on_failed), driver=MockQueueDriver())
response: dict[str, object] = handler({"Records": []}, None)

driver = MockQueueDriver()
service = JobService(driver, default_queue="jobs")
result: EnqueueResult = service.enqueue(receipts, Order(order_id=1, email="a@example.com"))
later: EnqueueResult = service.enqueue_in(
    receipts, Order(order_id=2, email="b@example.com"), timedelta(minutes=5)
)
at: EnqueueResult = service.enqueue_at(cache, {"a": 1}, datetime(2030, 1, 1, tzinfo=UTC))
batch: list[EnqueueResult] = service.enqueue_batch([(cache, {"a": 1}), (cache, {"b": 2})])
mixed: list[EnqueueResult] = service.enqueue_batch(
    [service.message(cache, {"a": 1}), service.message(receipts, Order(order_id=3, email="c@example.com"))]
)
names: list[str] = [job.name for job in driver.jobs]
job_id: str = result.job_id


# --- composing a handler by hand, from `glasswork` alone ------------------------------


def run_with_middleware(job: Job[object], payload: object, ctx: JobContext) -> object:
    return job.handler(payload, ctx)


def outcome_name(outcome: Outcome) -> str:
    match outcome:
        case Ack():
            return "ack"
        case Retry(delay=delay):
            return f"retry in {delay}"
        case DeadLetter(reason=reason) | Discard(reason=reason):
            return reason
        case Defer(reason=reason):
            return reason


registry = JobRegistry.from_module(app)
options = RecordOptions(services=Services({}), time_margin_ms=1_000)
record_result: RecordResult = process_record(
    {"messageId": "m-1", "body": "{}"}, registry, run=run_with_middleware, options=options
)
group: str | None = record_result.group
name: str = outcome_name(record_result.outcome)


# --- enqueueing from async code -----------------------------------------------------


async def enqueue_from_async_code() -> list[EnqueueResult]:
    async with AsyncJobService(driver, default_queue="jobs", max_workers=4) as jobs:
        one: EnqueueResult = await jobs.enqueue(receipts, Order(order_id=4, email="d@example.com"))
        later_async: EnqueueResult = await jobs.enqueue_in(cache, {"a": 1}, timedelta(seconds=5))
        at_async: EnqueueResult = await jobs.enqueue_at(cache, {"a": 1}, datetime(2030, 1, 1, tzinfo=UTC))
        pairs: list[EnqueueResult] = await jobs.enqueue_batch([(cache, {"a": 1}), (cache, {"b": 2})])
        messages: list[EnqueueResult] = await jobs.enqueue_batch(
            [jobs.message(cache, {"a": 1}), jobs.message(receipts, Order(order_id=5, email="e@example.com"))]
        )
    closed: bool = jobs.closed
    assert closed
    return [one, later_async, at_async, *pairs, *messages]


class NativeAsyncDriver:
    """A driver with native async sends: `AsyncJobService` awaits them instead of using a thread."""

    name = "native"

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        return EnqueueResult(message_id="m", job_id=message.job_id)

    async def enqueue_async(self, message: JobMessage) -> EnqueueResult:
        return self.enqueue(message)

    async def enqueue_batch_async(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        return [self.enqueue(m) for m in messages]


native: AsyncQueueDriver = NativeAsyncDriver()
native_jobs = AsyncJobService(native)


# --- a pydantic v2 model as the payload ---------------------------------------------


class Invoice(pydantic.BaseModel):
    invoice_id: int
    total: Decimal


def send_invoice(payload: Invoice, ctx: JobContext) -> None:
    print(payload.invoice_id, payload.total)


invoices: Job[Invoice] = define_job(
    name="send_invoice", handler=send_invoice, payload=Invoice, unique=lambda inv: f"inv-{inv.invoice_id}"
)
invoiced: EnqueueResult = service.enqueue(invoices, Invoice(invoice_id=1, total=Decimal("9.50")))
