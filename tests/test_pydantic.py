"""pydantic v2 models as payload types: enqueue, the worker's one pipeline, `glasswork.testing`.

A model validates with `model_validate_json` at enqueue and in the worker (the
job's body Struct reads the payload raw and validates it in the table's one
decode); the wire body is pydantic's JSON mode, by alias. pydantic is only a
dev dependency: nothing here may make `import glasswork` load it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import msgspec
import pydantic
import pytest
from botocore.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st
from mypy_boto3_sqs import SQSClient
from pydantic.alias_generators import to_camel

from glasswork import (
    AsyncJobService,
    DeadLetter,
    Discard,
    InvalidJobPayloadError,
    Job,
    JobContext,
    JobExecution,
    JobService,
    MockQueueDriver,
    Module,
    WorkerHooks,
    bootstrap_worker,
    define_job,
)
from glasswork._jobs import ModelPayload
from glasswork.core import JobTable
from glasswork.drivers.base import ATTR_ERROR_MESSAGE, ATTR_ERROR_TYPE, ATTR_REASON
from glasswork.drivers.sqlite import SQLiteQueueDriver
from glasswork.drivers.sqs import SQSQueueDriver
from glasswork.errors import ConfigurationError
from glasswork.local import Poller
from glasswork.testing import job_body, run_job, run_job_async, sqs_event, sqs_record
from tests.test_sqs_roundtrip import deliver_until, make_queue

REGION = "us-east-1"
AT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
ORDER_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


class Line(pydantic.BaseModel):
    sku: str
    quantity: int = 1


class Order(pydantic.BaseModel):
    order_id: int
    email: str
    placed_at: datetime
    reference: uuid.UUID
    total: Decimal
    lines: list[Line] = []
    note: str = "none"

    @pydantic.field_validator("email")
    @classmethod
    def lower_email(cls, value: str) -> str:
        if "@" not in value:
            msg = f"not an email address: {value!r}"
            raise ValueError(msg)
        return value.lower()


class Camel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=to_camel, populate_by_name=True)

    order_id: int
    due_date: date


def an_order(order_id: int = 1, **changes: Any) -> Order:
    fields: dict[str, Any] = {
        "order_id": order_id,
        "email": "Ada@Example.com",
        "placed_at": AT,
        "reference": ORDER_UUID,
        "total": Decimal("19.90"),
        "lines": [Line(sku="tea", quantity=2)],
    }
    return Order(**(fields | changes))


def order_json(order_id: object = 1, **changes: Any) -> dict[str, Any]:
    """The order as JSON builtins, as pydantic's JSON mode writes it."""
    return {
        "order_id": order_id,
        "email": "ada@example.com",
        "placed_at": "2026-03-01T12:30:00Z",
        "reference": str(ORDER_UUID),
        "total": "19.90",
        "lines": [{"sku": "tea", "quantity": 2}],
        "note": "none",
    } | changes


def untyped(payload: object) -> Any:
    """A payload as code that is not type-checked passes it (a dict from JSON, say)."""
    return payload


class Seen:
    """A job over `Order` that records the payloads its handler got."""

    def __init__(self, **options: Any) -> None:
        self.payloads: list[Order] = []
        self.job: Job[Order] = define_job(name="ship_order", handler=self.handle, payload=Order, **options)

    def handle(self, payload: Order, ctx: JobContext) -> None:
        self.payloads.append(payload)


# --- define_job --------------------------------------------------------------------


def test_a_model_is_a_payload_type() -> None:
    job = Seen().job

    assert job.payload_type is Order
    assert isinstance(job.decoder, ModelPayload)
    assert job.decoder.decode(json.dumps(order_json()).encode()) == an_order()


def test_the_table_reads_a_model_job_and_a_struct_job_in_one_decode() -> None:
    class Ping(msgspec.Struct):
        n: int

    model_job = Seen().job
    struct_job = define_job(name="ping", handler=lambda p, ctx: None, payload=Ping)
    table = JobTable([model_job, struct_job])
    assert table.decoder is not None

    model_body = table.decoder.decode(job_body(model_job, an_order()))
    struct_body = table.decoder.decode(job_body(struct_job, Ping(n=3)))

    assert model_body.payload == an_order()
    assert struct_body.payload == Ping(n=3)


def test_a_model_inside_another_type_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigurationError, match="pydantic model is supported as the payload type itself"):
        define_job(name="many", handler=lambda p, ctx: None, payload=list[Order])


# --- enqueue -------------------------------------------------------------------------


def test_enqueue_sends_pydantic_json_mode() -> None:
    driver = MockQueueDriver()
    job = Seen().job

    JobService(driver).enqueue(job, an_order())

    (sent,) = driver.jobs
    assert sent.payload == order_json()
    assert json.loads(sent.message.body)["payload"] == order_json()
    driver.assert_enqueued(job, {"order_id": 1, "total": "19.90"})


def test_enqueue_accepts_a_dict_and_validates_it_as_the_worker_will() -> None:
    driver = MockQueueDriver()
    job = Seen().job
    given = {
        "order_id": "7",
        "email": "B@X.io",
        "placed_at": "2026-03-01T12:30:00Z",
        "reference": str(ORDER_UUID),
    }

    JobService(driver).enqueue(job, untyped(given | {"total": 5}))

    assert driver.jobs[0].payload == given | {"total": 5}  # sent as given: the worker validates the same JSON


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        (order_json(order_id="seven"), "order_id", "Input should be a valid integer"),
        (order_json(email="nobody"), "email", "not an email address: 'nobody'"),
        (order_json(lines=[{"quantity": 2}]), "lines.0.sku", "Field required"),
        ({"order_id": 1}, "placed_at", "Field required"),
        ("an order", "Order", "Input should be an object"),
    ],
)
def test_an_invalid_payload_at_enqueue_names_the_field(payload: object, field: str, text: str) -> None:
    driver = MockQueueDriver()
    job = Seen().job

    with pytest.raises(InvalidJobPayloadError) as caught:
        JobService(driver).enqueue(job, untyped(payload))

    assert field in str(caught.value)
    assert text in str(caught.value)
    assert caught.value.job_name == "ship_order"
    assert isinstance(caught.value.__cause__, pydantic.ValidationError)
    assert driver.jobs == []


def test_an_invalid_model_instance_is_refused_at_enqueue() -> None:
    unchecked = Order.model_construct(order_id="x", email="a@b", placed_at=AT, reference=ORDER_UUID, total=1)
    driver = MockQueueDriver()

    with pytest.raises(InvalidJobPayloadError, match="order_id"):
        JobService(driver).enqueue(Seen().job, unchecked)

    assert driver.jobs == []


def test_async_service_validates_and_sends_the_same() -> None:
    driver = MockQueueDriver()
    job = Seen().job

    async def enqueue() -> None:
        async with AsyncJobService(driver) as service:
            await service.enqueue(job, an_order(2))
            with pytest.raises(InvalidJobPayloadError, match="order_id"):
                await service.enqueue(job, untyped(order_json(order_id="x")))

    asyncio.run(enqueue())

    assert [j.payload for j in driver.jobs] == [order_json(2)]


def test_unique_and_group_get_the_model() -> None:
    keys: list[object] = []

    def unique(order: Order) -> str:
        keys.append(order)
        return f"order-{order.order_id}"

    job = define_job(
        name="fifo_order",
        handler=lambda p, ctx: None,
        payload=Order,
        unique=unique,
        group=lambda order: order.email,
        queue="orders.fifo",
    )
    driver = MockQueueDriver()

    result = JobService(driver).enqueue(job, an_order(4))
    from_dict = JobService(driver).enqueue(job, untyped(order_json(5)))

    assert (result.job_id, from_dict.job_id) == ("order-4", "order-5")
    assert keys == [an_order(4), an_order(5)]
    assert driver.jobs[0].message.group_id == "ada@example.com"


def test_unique_must_still_return_a_str() -> None:
    job = define_job(name="bad_key", handler=lambda p, ctx: None, payload=Order, unique=lambda o: o.order_id)  # type: ignore[arg-type,return-value]  # the mistake under test

    with pytest.raises(ValueError, match="unique\\(\\) must return a non-empty str, got 1"):
        JobService(MockQueueDriver()).enqueue(job, an_order())


# --- JSON mode, aliases, defaults, validators ---------------------------------------


def test_datetime_uuid_and_decimal_go_as_json_strings_and_come_back() -> None:
    driver = MockQueueDriver()
    seen = Seen()
    JobService(driver).enqueue(
        seen.job, an_order(total=Decimal("0.10"), placed_at=AT + timedelta(microseconds=5))
    )

    payload = json.loads(driver.jobs[0].message.body)["payload"]
    driver.drain(bootstrap_worker(module=Module(name="m", jobs=[seen.job]), driver=driver))

    assert (payload["placed_at"], payload["reference"], payload["total"]) == (
        "2026-03-01T12:30:00.000005Z",
        "12345678-1234-5678-1234-567812345678",
        "0.10",
    )
    (got,) = seen.payloads
    assert got.placed_at == AT + timedelta(microseconds=5)
    assert got.reference == ORDER_UUID
    assert got.total == Decimal("0.10")
    assert isinstance(got.lines[0], Line)


def test_aliases_are_written_and_read() -> None:
    got: list[Camel] = []
    job = define_job(name="camel", handler=lambda p, ctx: got.append(p), payload=Camel)
    driver = MockQueueDriver()

    JobService(driver).enqueue(job, Camel(order_id=3, due_date=date(2026, 4, 1)))
    hand_written = job_body(
        job, {"orderId": 4, "dueDate": "2026-04-02"}
    )  # as glasswork for TypeScript sends it
    driver.drain(bootstrap_worker(module=Module(name="m", jobs=[job]), driver=driver))
    run = run_job(job, {"orderId": 4, "dueDate": "2026-04-02"})

    assert driver.jobs[0].payload == {"orderId": 3, "dueDate": "2026-04-01"}
    assert json.loads(hand_written)["payload"] == {"orderId": 4, "dueDate": "2026-04-02"}
    assert got == [Camel(order_id=3, due_date=date(2026, 4, 1)), Camel(order_id=4, due_date=date(2026, 4, 2))]
    assert run.payload == Camel(order_id=4, due_date=date(2026, 4, 2))


def test_a_model_that_validates_by_name_is_written_by_name() -> None:
    class ByName(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(validate_by_alias=False, validate_by_name=True)

        order_id: int = pydantic.Field(alias="orderId")

    job = define_job(name="by_name", handler=lambda p, ctx: None, payload=ByName)
    driver = MockQueueDriver()

    JobService(driver).enqueue(job, ByName.model_validate({"order_id": 5}))

    assert driver.jobs[0].payload == {"order_id": 5}


def test_defaults_fill_in_what_the_body_leaves_out() -> None:
    seen = Seen()
    body = {k: v for k, v in order_json().items() if k not in {"lines", "note"}}

    run = run_job(seen.job, body)

    assert run.payload == an_order(lines=[], note="none")


def test_validators_run_in_the_worker() -> None:
    seen = Seen()

    run = run_job(seen.job, order_json(email="MiXeD@Example.COM"))

    assert run.payload is not None
    assert run.payload.email == "mixed@example.com"


def test_strict_models_read_json_as_json() -> None:
    class Strict(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(strict=True)

        at: datetime
        ref: uuid.UUID

    job = define_job(name="strict", handler=lambda p, ctx: None, payload=Strict)

    run = run_job(job, {"at": "2026-03-01T12:30:00Z", "ref": str(ORDER_UUID)})

    assert run.payload == Strict(at=AT, ref=ORDER_UUID)


def test_a_validator_that_raises_something_else_is_an_invalid_payload() -> None:
    class Touchy(pydantic.BaseModel):
        n: int

        @pydantic.field_validator("n")
        @classmethod
        def explode(cls, value: int) -> int:
            if value == 13:
                msg = "unlucky"
                raise RuntimeError(msg)
            return value

    job = define_job(name="touchy", handler=lambda p, ctx: None, payload=Touchy)

    run = run_job(job, {"n": 13})
    with pytest.raises(InvalidJobPayloadError, match="RuntimeError while validating Touchy: unlucky"):
        JobService(MockQueueDriver()).enqueue(job, untyped({"n": 13}))

    assert isinstance(run.outcome, DeadLetter)
    assert run.outcome.reason == "invalid_payload"
    assert "RuntimeError while validating Touchy: unlucky" in str(run.error)


# --- the worker: success, invalid payload, retry=False ------------------------------


def test_run_job_hands_the_handler_a_model() -> None:
    seen = Seen()

    from_model = run_job(seen.job, an_order(1))
    from_dict = run_job(seen.job, order_json(2))

    assert seen.payloads == [an_order(1), an_order(2)]
    assert from_model.payload == an_order(1)
    assert from_dict.execution.payload == an_order(2)


def test_run_job_async_hands_the_handler_a_model() -> None:
    got: list[Order] = []

    async def handle(payload: Order, ctx: JobContext) -> None:
        got.append(payload)

    job = define_job(name="async_order", handler=handle, payload=Order)

    run = asyncio.run(run_job_async(job, an_order(3)))

    assert got == [an_order(3)]
    assert run.payload == an_order(3)


def test_an_invalid_body_is_dead_lettered_with_pydantic_text() -> None:
    seen = Seen()
    failed: list[tuple[JobExecution, BaseException]] = []
    driver = MockQueueDriver()
    handler = bootstrap_worker(
        module=Module(name="m", jobs=[seen.job]),
        hooks=WorkerHooks(on_job_failed=lambda job, ctx, error: failed.append((job, error))),
        driver=driver,
    )
    event = sqs_event(
        [
            sqs_record(job_body(seen.job, order_json(order_id="seven")), message_id="bad"),
            sqs_record(job_body(seen.job, order_json(3)), message_id="good"),
        ]
    )

    response = handler(event, None)

    assert response == {"batchItemFailures": []}
    assert seen.payloads == [an_order(3)]
    (dead,) = driver.dead_letters
    assert (dead.message_id, dead.reason, dead.error_type) == (
        "bad",
        "invalid_payload",
        "InvalidJobPayloadError",
    )
    assert "order_id" in dead.error_message
    assert "Input should be a valid integer, unable to parse string as an integer" in dead.error_message
    ((execution, error),) = failed
    assert execution.payload is None
    assert isinstance(error, InvalidJobPayloadError)


def test_retry_false_discards_an_invalid_payload() -> None:
    seen = Seen(retry=False)

    run = run_job(seen.job, order_json(email="nobody"))

    assert isinstance(run.outcome, Discard)
    assert run.outcome.reason == "invalid_payload"
    assert not run.ran
    assert "not an email address" in str(run.error)
    assert seen.payloads == []


def test_a_direct_invocation_validates_the_model() -> None:
    seen = Seen()
    handler = bootstrap_worker(module=Module(name="m", jobs=[seen.job]), driver=MockQueueDriver())

    handler({"jobName": "ship_order", "payload": order_json(8)}, None)
    with pytest.raises(InvalidJobPayloadError, match="order_id"):
        handler({"jobName": "ship_order", "payload": order_json(order_id="eight")}, None)

    assert seen.payloads == [an_order(8)]


# --- real drivers: SQLite, SQS over HTTP ---------------------------------------------


def test_round_trip_through_sqlite(tmp_path: Path) -> None:
    seen = Seen()
    with SQLiteQueueDriver(tmp_path / "q.db") as driver:
        JobService(driver).enqueue_batch([(seen.job, an_order(n)) for n in (1, 2)])
        driver.enqueue(
            msgspec.structs.replace(
                JobService(driver).message(seen.job, an_order(3)), payload=order_json(order_id="three")
            )
        )  # a body the model refuses, as a producer without validation would send it
        handler = bootstrap_worker(module=Module(name="m", jobs=[seen.job]), driver=driver)

        Poller(handler, driver).run(burst=True)

        assert sorted(p.order_id for p in seen.payloads) == [1, 2]
        assert all(p == an_order(p.order_id) for p in seen.payloads)
        (dead,) = driver.list_dead_letters()
        assert dead.reason == "invalid_payload"
        assert dead.error_message is not None
        assert "order_id" in dead.error_message


@pytest.fixture
def sqs(moto_reset: str) -> SQSClient:
    return boto3.client(
        "sqs", region_name=REGION, endpoint_url=moto_reset, config=Config(retries={"total_max_attempts": 1})
    )


@pytest.mark.sqs
def test_round_trip_through_sqs(sqs: SQSClient) -> None:
    dlq = make_queue(sqs, "orders-dlq", visibility=30)
    url = make_queue(sqs, "orders", visibility=5, dead_letter=dlq)
    driver = SQSQueueDriver({"orders": url}, sqs)
    seen = Seen(queue="orders")
    handler = bootstrap_worker(module=Module(name="m", jobs=[seen.job]), driver=driver)
    JobService(driver).enqueue(seen.job, an_order(1))
    JobService(driver).enqueue_batch([(seen.job, an_order(2)), (seen.job, an_order(3))])
    sqs.send_message(QueueUrl=url, MessageBody=job_body(seen.job, order_json(order_id="four")))

    deliver_until(driver, handler, lambda: driver.counts().pending == 0, seconds=10)

    assert sorted({p.order_id for p in seen.payloads}) == [1, 2, 3]
    assert all(p == an_order(p.order_id) for p in seen.payloads)
    (dead,) = driver.receive(dlq, max_messages=10)
    assert json.loads(dead.body)["payload"]["order_id"] == "four"
    attributes = {name: value.string_value for name, value in dead.message_attributes.items()}
    assert attributes[ATTR_REASON] == "invalid_payload"
    assert attributes[ATTR_ERROR_TYPE] == "InvalidJobPayloadError"
    assert "Input should be a valid integer" in (attributes[ATTR_ERROR_MESSAGE] or "")


# --- pydantic is never imported for an app without models ----------------------------

_NO_MODELS = """
import json, sys
import msgspec
from glasswork import JobService, MockQueueDriver, Module, bootstrap_worker, define_job
from glasswork.testing import job_body, run_job, sqs_event, sqs_record

class Ping(msgspec.Struct):
    n: int

job = define_job(name="ping", handler=lambda p, ctx: None, payload=Ping)
driver = MockQueueDriver()
JobService(driver).enqueue(job, Ping(n=1))
handler = bootstrap_worker(module=Module(name="m", jobs=[job]), driver=driver)
driver.drain(handler)
handler(sqs_event([sqs_record(job_body(job, {"n": "x"}))]), None)
run_job(job, {"n": 2})
assert len(driver.dead_letters) == 1
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    "script", ["import json, sys, glasswork\nprint(json.dumps(sorted(sys.modules)))", _NO_MODELS]
)
def test_pydantic_is_not_imported_without_a_model(script: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(completed.stdout))

    assert "glasswork" in loaded
    assert not {name for name in loaded if name.split(".")[0] in {"pydantic", "pydantic_core"}}


def test_the_mock_asserts_and_the_outcome_log_show_a_model_as_json(caplog: pytest.LogCaptureFixture) -> None:
    from glasswork._settle import _payload_text

    driver = MockQueueDriver()
    job = Seen().job
    JobService(driver).enqueue(job, an_order())

    driver.assert_enqueued(job, an_order())  # a model compares as it was sent
    with pytest.raises(AssertionError, match="payload matching"):
        driver.assert_enqueued(job, an_order().model_copy(update={"order_id": 2}))
    assert json.loads(_payload_text(an_order())) == order_json()


@given(data=st.data())
@settings(max_examples=25)
def test_the_payloads_strategy_builds_models_the_worker_accepts(data: st.DataObject) -> None:
    from glasswork.testing_strategies import payloads

    class Signup(pydantic.BaseModel):
        email: str
        age: int = pydantic.Field(ge=0, le=150)
        tags: list[str] = []

    job = define_job(name="signup", handler=lambda payload, ctx: None, payload=Signup)

    value = data.draw(payloads(job))

    assert isinstance(value, Signup)
    assert 0 <= value.age <= 150
    assert JobService(MockQueueDriver()).enqueue(job, value).job_id
