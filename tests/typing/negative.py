"""Each line marked with an E comment must be a mypy error against the installed wheel."""

from __future__ import annotations

import msgspec
import pydantic

from glasswork import AsyncJobService, JobContext, JobService, MockQueueDriver, Module, define_job


class Order(msgspec.Struct):
    order_id: int


def handle(payload: Order, ctx: JobContext) -> None:
    pass


orders = define_job(name="orders", handler=handle, payload=Order)
service = JobService(MockQueueDriver())

service.enqueue(orders, {"order_id": 1})  # E: a dict is not an Order
service.enqueue(orders, "order 1")  # E: a str is not an Order
service.enqueue_in(orders, Order(order_id=1), "soon")  # E: a delay is seconds or a timedelta
define_job(name="bad", handler=handle, payload=str)  # E: the handler takes an Order, not a str
Module(name="m", jobs=orders)  # E: jobs is a sequence of jobs
message_id = service.enqueue(orders, Order(order_id=1)).message_idd  # E: no such attribute
service.enqueue_batch([(orders, Order(order_id=1)), (orders, "two")])  # E: every payload must be an Order
service.message(orders, {"order_id": 1})  # E: message checks its pair too
define_job(name="odd", handler=handle, payload=Order, permanent_errors=(int,))  # E: int is not an exception
define_job(name="odd2", handler=handle, payload=Order, permanent_errors="ValueError")  # E: a str is not one

async_service = AsyncJobService(MockQueueDriver())


async def enqueue_from_async_code() -> None:
    await async_service.enqueue(orders, {"order_id": 1})  # E: a dict is not an Order, awaited too
    await async_service.enqueue_in(orders, Order(order_id=1), "soon")  # E: a delay is seconds or a timedelta
    await async_service.enqueue_batch([(orders, Order(order_id=1)), (orders, "two")])  # E: every payload
    print((await async_service.enqueue(orders, Order(order_id=1))).message_idd)  # E: no such attribute
    async_service.enqueue(orders, Order(order_id=1))  # E: a coroutine that is never awaited sends nothing


class Invoice(pydantic.BaseModel):
    invoice_id: int


def send_invoice(payload: Invoice, ctx: JobContext) -> None:
    pass


invoices = define_job(name="invoices", handler=send_invoice, payload=Invoice)
service.enqueue(invoices, Order(order_id=1))  # E: an Order is not an Invoice
define_job(name="bad_invoice", handler=send_invoice, payload=Order)  # E: the handler takes an Invoice
