"""The composing examples run: a handler built by hand from the core, and Powertools' Logger."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glasswork import JobContext, MockQueueDriver, Module, bootstrap_worker, define_job
from glasswork.errors import DriverError
from glasswork.testing import FakeLambdaContext, job_body, job_record, sqs_event, sqs_record
from glasswork.testing_strategies import events, invalid_payload_bodies, job_bodies, poison_bodies, records

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    """Import `examples/<name>.py` once (msgspec resolves its Structs through `sys.modules`)."""
    module_name = f"glasswork_examples_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


compose = load_example("compose_by_hand")


def shop(reserved: list[tuple[str, int]]) -> Module:
    return Module(name="shop", jobs=[compose.reserve_stock_job], services={"reserved": lambda: reserved})


def reservation(sku: str, quantity: int, **options: object) -> str:
    return job_body(compose.reserve_stock_job, {"sku": sku, "quantity": quantity}, **options)  # type: ignore[arg-type]


# --- compose_by_hand ----------------------------------------------------------------


def test_hand_made_handler_settles_each_record() -> None:
    reserved: list[tuple[str, int]] = []
    driver = MockQueueDriver()
    handler = compose.make_handler(shop(reserved), driver=driver, jitter=lambda: 1.0)
    event = sqs_event(
        [
            sqs_record(reservation("apple", 2), message_id="ok"),
            sqs_record(reservation("busy-pear", 1), message_id="busy", receive_count=2),
            sqs_record(reservation("busy-fig", 1), message_id="exhausted", receive_count=3),
            sqs_record(reservation("plum", 0), message_id="zero"),
            sqs_record(job_body(compose.reserve_stock_job, {"sku": 1}), message_id="invalid"),
            sqs_record(job_body("not_deployed_yet", {}), message_id="unknown"),
            sqs_record("not json", message_id="poison"),
        ]
    )

    response = handler(event, FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "busy"}, {"itemIdentifier": "unknown"}]}
    assert reserved == [("apple", 2)]
    assert [(d.message_id, d.reason) for d in driver.dead_letters] == [
        ("exhausted", "retries_exhausted"),
        ("zero", "permanent_error"),
        ("invalid", "invalid_payload"),
        ("poison", "poison_message"),
    ]
    assert [(c.message_id, c.seconds) for c in driver.visibility_changes] == [("busy", 10)]
    dead = driver.dead_letters[0]
    assert (dead.job_name, dead.job_id, dead.attempt, dead.error_type) == (
        "reserve_stock",
        "job-1",
        3,
        "RetryExhaustedError",
    )


def test_hand_made_handler_keeps_fifo_order_per_group() -> None:
    driver = MockQueueDriver()
    handler = compose.make_handler(shop([]), driver=driver, jitter=lambda: 0.0)
    event = sqs_event(
        [
            sqs_record(reservation("busy-1", 1), message_id="a1", group_id="a"),
            sqs_record(reservation("apple", 1), message_id="b1", group_id="b"),
            sqs_record(reservation("apple", 1), message_id="a2", group_id="a"),
            sqs_record(reservation("plum", 0), message_id="b2", group_id="b"),
            sqs_record(reservation("apple", 1), message_id="b3", group_id="b"),
        ]
    )

    response = handler(event, None)

    assert response == {"batchItemFailures": [{"itemIdentifier": "a1"}, {"itemIdentifier": "a2"}]}
    assert [d.message_id for d in driver.dead_letters] == ["b2"]


def test_hand_made_handler_does_not_start_records_without_time() -> None:
    reserved: list[tuple[str, int]] = []
    handler = compose.make_handler(shop(reserved), driver=MockQueueDriver(), time_margin_ms=1_000)
    event = sqs_event([sqs_record(reservation("apple", 1), message_id="m")])

    response = handler(event, FakeLambdaContext(remaining_ms=999))

    assert response == {"batchItemFailures": [{"itemIdentifier": "m"}]}
    assert reserved == []


def test_hand_made_handler_reports_a_record_whose_dead_letter_send_failed() -> None:
    driver = MockQueueDriver()
    driver.simulate_failure(DriverError("DLQ unreachable"))
    handler = compose.make_handler(shop([]), driver=driver)

    response = handler(sqs_event([sqs_record("not json", message_id="poison")]), None)

    assert response == {"batchItemFailures": [{"itemIdentifier": "poison"}]}
    assert driver.dead_letters == []


def test_hand_made_handler_keeps_failures_when_backoff_cannot_be_applied() -> None:
    driver = MockQueueDriver()
    handler = compose.make_handler(shop([]), driver=driver, jitter=lambda: 1.0)
    driver.simulate_failure(DriverError("throttled"))

    response = handler(sqs_event([sqs_record(reservation("busy-1", 1), message_id="busy")]), None)

    assert response == {"batchItemFailures": [{"itemIdentifier": "busy"}]}
    assert driver.visibility_changes == []


def test_hand_made_handler_serves_other_events_of_the_same_function() -> None:
    handler = compose.make_handler(shop([]), driver=MockQueueDriver())

    assert handler({"httpMethod": "GET", "path": "/health"}, None) == {"statusCode": 200, "body": "ok"}
    with pytest.raises(ValueError, match="unexpected event"):
        handler({"detail-type": "Scheduled Event"}, None)


def test_hand_made_handler_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    compose._demo()

    out = capsys.readouterr().out.splitlines()
    assert out == [
        "{'batchItemFailures': [{'itemIdentifier': 'busy'}]}",
        "dead letters: [('zero', 'permanent_error'), ('poison', 'poison_message')]",
        "backoff: [('busy', 5)]",
    ]


reservations = st.builds(
    lambda sku, quantity: {"sku": sku, "quantity": quantity},
    st.sampled_from(["apple", "busy-pear", "plum"]),
    st.integers(-1, 3),
)


bodies = (
    job_bodies(compose.reserve_stock_job, reservations)
    | invalid_payload_bodies(compose.reserve_stock_job)
    | poison_bodies()
    | st.just(job_body("unknown_job", {}))
)
standard_events = events(records(bodies, receive_counts=st.integers(1, 4)), max_size=8)
fifo_events = events(records(bodies, fifo=True, receive_counts=st.integers(1, 4)), max_size=8)


def dead_letters(driver: MockQueueDriver) -> list[tuple[object, ...]]:
    """What was dead-lettered, but the error text (the worker adds the error's cause to it)."""
    return [
        (d.message_id, d.reason, d.error_type, d.attempt, d.job_name, d.job_id, d.body, d.source_queue)
        for d in driver.dead_letters
    ]


@given(
    event=standard_events | fifo_events,
    remaining=st.sampled_from([None, 500, 60_000]),
    failing_driver=st.booleans(),
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_hand_made_handler_answers_as_bootstrap_worker_does(
    event: dict[str, object], remaining: int | None, failing_driver: bool
) -> None:
    by_hand, by_worker = MockQueueDriver(), MockQueueDriver()
    if failing_driver:
        by_hand.simulate_failure(DriverError("down"))
        by_worker.simulate_failure(DriverError("down"))
    hand = compose.make_handler(shop([]), driver=by_hand, jitter=lambda: 1.0)
    worker = bootstrap_worker(module=shop([]), driver=by_worker, jitter=lambda: 1.0)
    context = None if remaining is None else FakeLambdaContext(remaining)

    assert hand(event, context) == worker(event, context)
    assert dead_letters(by_hand) == dead_letters(by_worker)
    assert by_hand.visibility_changes == by_worker.visibility_changes


# --- powertools_logger --------------------------------------------------------------


@pytest.fixture
def restore_glasswork_logging() -> Iterator[None]:
    """Powertools reconfigures the `glasswork` logger; put it back for the other tests."""
    logger = logging.getLogger("glasswork")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        yield
    finally:
        logger.handlers, logger.level, logger.propagate = list(saved[0]), saved[1], saved[2]


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.usefixtures("restore_glasswork_logging")
def test_powertools_logs_carry_job_id_and_name(request: pytest.FixtureRequest) -> None:
    from aws_lambda_powertools import Logger

    example = load_example("powertools_logger")
    service = f"billing-{request.node.name}"

    def audit(payload: object, ctx: JobContext) -> None:
        Logger(service=service).info("audited deep down, without ctx")

    audit_job = define_job(name="audit", handler=audit)
    module = Module(name="billing-test", jobs=[example.send_invoice_job, audit_job])
    stream = io.StringIO()
    driver = MockQueueDriver()
    handler = example.build_handler(module=module, driver=driver, service=service, stream=stream)
    event = sqs_event(
        [
            job_record(
                example.send_invoice_job, {"invoice_id": "i-1", "cents": 500}, job_id="j-1", message_id="m1"
            ),
            job_record(
                example.send_invoice_job, {"invoice_id": "i-2", "cents": -5}, job_id="j-2", message_id="m2"
            ),
            job_record(audit_job, None, job_id="j-3", message_id="m3", receive_count=2),
        ]
    )

    response = handler(event, FakeLambdaContext(function_name="billing-worker"))
    Logger(service=service).info("after the batch")

    assert response == {"batchItemFailures": []}
    assert [d.job_id for d in driver.dead_letters] == ["j-2"]
    lines = {str(line["message"]): line for line in json_lines(stream)}
    sent = lines["invoice i-1 sent"]
    assert (sent["job_id"], sent["job_name"], sent["attempt"], sent["message_id"]) == (
        "j-1",
        "send_invoice",
        1,
        "m1",
    )
    assert sent["level"] == "INFO"
    assert sent["service"] == service
    assert sent["function_name"] == "billing-worker"
    (dead,) = [line for line in lines.values() if line.get("outcome") == "dead_lettered"]
    assert (dead["job_id"], dead["job_name"], dead["level"]) == ("j-2", "send_invoice", "ERROR")
    assert dead["reason"] == "permanent_error"
    deep = lines["audited deep down, without ctx"]
    assert (deep["job_id"], deep["job_name"], deep["attempt"]) == ("j-3", "audit", 2)
    assert "job_id" not in lines["after the batch"]
