"""Fuzzing the worker's edges: any JSON event, any record field, any payload against typed jobs.

The properties (Hypothesis, the `ci` profile's 300 examples each; `HYPOTHESIS_PROFILE=long`
for 5,000):

- An SQS batch (a dict whose `Records` is a list of entries with `eventSource`
  `aws:sqs` or none) never makes the worker raise, whatever the entries hold.
- The response is one Lambda accepts: every `itemIdentifier` is a non-empty
  messageId of the batch, none twice.
- Every record with a usable messageId (a non-empty string) is accounted for
  exactly once: settled (succeeded, failed, dead-lettered, discarded); one
  without is listed unreported; what the driver dead-lettered is what the report says.
- Any other event raises a `GlassworkError` that says what was expected (or,
  for a direct invocation of a job that raises, the job's own error).
- A payload runs a typed job exactly when msgspec accepts it for the job's
  type, the handler gets the converted value, and what `JobService` accepts
  is what the worker accepts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, cast

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glasswork import (
    Defer,
    Job,
    JobContext,
    JobService,
    MockQueueDriver,
    Module,
    PermanentJobError,
    TransientJobError,
    WorkerHooks,
    bootstrap_worker,
    define_job,
)
from glasswork._wire import MAX_MESSAGE_BYTES, lambda_record
from glasswork.errors import (
    GlassworkError,
    InvalidEventError,
    InvalidJobPayloadError,
    PayloadTooLargeError,
    UnknownJobError,
)
from glasswork.testing import job_body, sqs_record
from glasswork.worker import BatchReport, Worker

# Each example builds at most a dozen records; a few carry a body near 1 MiB.
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class JobBoomError(Exception):
    """What the `boom` job raises: the one non-glasswork error a direct invocation may surface."""


class Address(msgspec.Struct, frozen=True):
    city: str
    zip: str


class Order(msgspec.Struct, frozen=True):
    order_id: int
    items: list[str]
    note: str | None = None
    address: Address | None = None


class Work(msgspec.Struct, frozen=True):
    behaviour: Literal["succeed", "transient", "permanent", "retry_after"] = "succeed"


def _work(payload: Work, ctx: JobContext) -> None:
    match payload.behaviour:
        case "transient":
            raise ConnectionError("flaky")
        case "permanent":
            raise PermanentJobError("never")
        case "retry_after":
            raise TransientJobError("later", retry_after=5)
        case "succeed":
            pass


def _boom(payload: object, ctx: JobContext) -> None:
    raise JobBoomError("the job itself failed")


def _accept(payload: object, ctx: JobContext) -> None:
    return None


async def _work_async(payload: Work, ctx: JobContext) -> None:
    await asyncio.sleep(0)
    _work(payload, ctx)


WORKER_JOBS: list[Job[Any]] = [
    define_job(name="work", handler=_work, payload=Work, retry=3),
    define_job(name="once", handler=_work, payload=Work, retry=False),
    define_job(name="boom", handler=_boom),
    define_job(name="any", handler=_accept),
    define_job(name="order", handler=_accept, payload=Order),
]
JOB_NAMES = [job.name for job in WORKER_JOBS]


class _FormatOnly(logging.Handler):
    """Formats every record (a logging bug on odd input would raise) and keeps none."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


LOG = logging.getLogger("tests.fuzz.worker")
LOG.propagate = False
LOG.setLevel(logging.DEBUG)
LOG.addHandler(_FormatOnly())


def _hook(*args: object) -> None:
    return None


VARIANTS = ("plain", "hooks", "async")
"""Worker shapes: no hooks (the lean path), every hook set, an `async def` job (the event loop path)."""


def _worker(variant: str = "plain") -> tuple[Worker, MockQueueDriver]:
    mock = MockQueueDriver()
    jobs = list(WORKER_JOBS)
    if variant == "async":
        jobs[0] = define_job(name="work", handler=_work_async, payload=Work, retry=3)
    hooks = WorkerHooks(
        on_job_start=_hook, on_job_complete=_hook, on_job_failed=_hook, on_job_dead_letter=_hook
    )
    worker = bootstrap_worker(
        module=Module(name="fuzz", jobs=jobs),
        driver=mock,
        jitter=lambda: 0.5,
        logger=LOG,
        hooks=hooks if variant == "hooks" else None,
    )
    return worker, mock


# --- strategies ---------------------------------------------------------------------

MISSING = object()
"""Leave the field out of the record."""

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
EVENT_KEYS = ["Records", "jobName", "payload", "detail", "name", "id", "time", "detail-type", "source"]
event_keys = st.sampled_from(EVENT_KEYS) | st.text(max_size=8)


def _event_values(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.lists(inner, max_size=3) | st.dictionaries(event_keys, inner, max_size=5)


json_events = st.recursive(
    json_scalars | st.sampled_from([*JOB_NAMES, "aws:sqs", "aws:s3", "2026-01-01T00:00:00Z"]),
    _event_values,
    max_leaves=16,
)
"""Any JSON, biased towards the keys the worker looks at."""


def _job_bodies() -> st.SearchStrategy[object]:
    behaviours = st.sampled_from(["succeed", "transient", "permanent", "retry_after"])
    return st.one_of(
        st.builds(
            lambda name, behaviour: job_body(name, {"behaviour": behaviour}),
            st.sampled_from(["work", "once"]),
            behaviours,
        ),
        st.builds(job_body, st.sampled_from(JOB_NAMES), json_values),
        st.builds(lambda name: job_body(name, {"behaviour": "succeed"}), st.text(max_size=10)),
        st.builds(
            lambda payload: msgspec.json.encode({"jobName": "order", "payload": payload}).decode(),
            json_values,
        ),
    )


def _huge_body(size: int, valid: bool) -> str:
    """A body of about `size` bytes, built without drawing its bytes (cheap)."""
    if not valid:
        return "x" * size
    shell = len(job_body("any", ""))
    return job_body("any", "a" * max(size - shell, 0))


huge_bodies = st.builds(
    _huge_body, st.integers(MAX_MESSAGE_BYTES - 2_048, MAX_MESSAGE_BYTES + 64), st.booleans()
)

bodies = st.one_of(
    _job_bodies(),
    st.text(max_size=40),
    json_values.map(lambda v: msgspec.json.encode(v).decode()),
    json_values,
    st.just(MISSING),
)

receive_counts = st.one_of(
    st.integers(1, 30).map(str),
    st.sampled_from(
        ["0", "-1", "-3", "", " 2", "2 ", "1.5", "1e3", "many", "\u0663", "99999999999999999999"]
    ),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.none(),
    st.just(MISSING),
)

system_attributes = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "ApproximateReceiveCount": receive_counts,
            "SentTimestamp": st.one_of(st.integers(0, 2**45).map(str), st.text(max_size=6), st.integers()),
            "MessageGroupId": st.one_of(st.sampled_from(["g1", "g2"]), st.text(max_size=4), st.integers()),
            "MessageDeduplicationId": st.text(max_size=6),
            "SequenceNumber": st.text(max_size=6),
            "SenderId": json_scalars,
        },
    ),
    json_values,
    st.just(MISSING),
)

message_attribute = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "dataType": st.sampled_from(["String", "Number", "Binary", "String.custom", ""]) | json_scalars,
            "stringValue": json_scalars,
            "binaryValue": st.one_of(st.binary(max_size=8).map(lambda b: b.hex()), json_scalars),
            "stringListValues": st.lists(json_scalars, max_size=2) | json_scalars,
            "binaryListValues": st.lists(json_scalars, max_size=2) | json_scalars,
        },
    ),
    json_values,
)
message_attributes = st.one_of(
    st.dictionaries(
        st.sampled_from(["JobName", "traceparent"]) | st.text(max_size=6), message_attribute, max_size=3
    ),
    json_values,
    st.just(MISSING),
)

RECORD_FIELDS: dict[str, st.SearchStrategy[object]] = {
    "receiptHandle": st.one_of(st.text(max_size=10), json_scalars, st.just(MISSING)),
    "body": bodies,
    "attributes": system_attributes,
    "messageAttributes": message_attributes,
    "md5OfBody": st.one_of(st.text(max_size=32), json_scalars, st.just(MISSING)),
    "eventSource": st.sampled_from(["aws:sqs", MISSING]),
    "eventSourceARN": st.one_of(
        st.sampled_from(["arn:aws:sqs:us-east-1:123456789012:jobs", "arn:aws:sqs:local:0:jobs.fifo", ""]),
        json_scalars,
        st.just(MISSING),
    ),
    "awsRegion": st.one_of(st.text(max_size=10), json_scalars, st.just(MISSING)),
}

id_kinds = st.sampled_from(["usable"] * 9 + ["empty", "missing", "not_a_string"])


ATTRIBUTE_MUTATIONS: dict[str, st.SearchStrategy[object]] = {
    "ApproximateReceiveCount": receive_counts,
    "MessageGroupId": st.one_of(st.sampled_from(["g1", "g2", ""]), json_scalars, st.just(MISSING)),
    "SentTimestamp": st.one_of(st.sampled_from(["", "-1", "1e3", "9" * 30]), json_scalars, st.just(MISSING)),
}
record_bodies = st.one_of(_job_bodies(), _job_bodies(), _job_bodies(), bodies)


def _set(target: dict[str, object], key: str, value: object) -> None:
    if value is MISSING:
        target.pop(key, None)
    else:
        target[key] = value


@st.composite
def records(draw: st.DrawFn, index: int, *, huge: bool = False) -> object:
    """One entry of `Records`: a record as Lambda sends it with a few fields fuzzed, or junk."""
    if draw(st.integers(0, 29)) == 0:
        return draw(json_scalars | st.lists(json_scalars, max_size=2))
    body = draw(huge_bodies) if huge else draw(record_bodies)
    base = sqs_record(
        body if isinstance(body, str) else "",
        message_id="placeholder",
        receive_count=draw(st.integers(1, 30)),
        group_id=draw(st.none() | st.sampled_from(["g1", "g2"])),
    )
    record = lambda_record(base)
    if not isinstance(body, str):
        _set(record, "body", body)
    kind = draw(id_kinds)
    if kind == "usable":
        record["messageId"] = f"m-{index}-" + draw(st.text(max_size=3))
    elif kind == "not_a_string":
        record["messageId"] = draw(st.none() | st.integers() | st.lists(st.text(max_size=2), max_size=2))
    else:
        _set(record, "messageId", "" if kind == "empty" else MISSING)
    attributes = record["attributes"]
    assert isinstance(attributes, dict)
    for name in draw(st.lists(st.sampled_from(sorted(ATTRIBUTE_MUTATIONS)), max_size=2, unique=True)):
        _set(attributes, name, draw(ATTRIBUTE_MUTATIONS[name]))
    for name in draw(st.lists(st.sampled_from(sorted(RECORD_FIELDS)), max_size=2, unique=True)):
        if name != "body" or not huge:
            _set(record, name, draw(RECORD_FIELDS[name]))
    if draw(st.integers(0, 4)) == 0:
        extra = draw(st.dictionaries(st.text(max_size=6), json_scalars, max_size=2))
        record.update({k: v for k, v in extra.items() if k != "eventSource"})
    return record


@st.composite
def sqs_batches(draw: st.DrawFn) -> dict[str, object]:
    """An SQS-shaped event: `Records` is a list, every dict entry has eventSource aws:sqs or none.

    About one batch in ten carries one or two bodies within 2 KiB of 1 MiB.
    """
    size = draw(st.integers(0, 12))
    big: set[int] = set()
    if size and draw(st.integers(0, 9)) == 0:
        big = draw(st.sets(st.integers(0, size - 1), min_size=1, max_size=2))
    entries = [draw(records(index, huge=index in big)) for index in range(size)]
    event: dict[str, object] = {"Records": entries}
    event.update(
        draw(st.dictionaries(st.sampled_from(["source", "detail", "jobName"]), json_values, max_size=2))
    )
    return event


# --- helpers ------------------------------------------------------------------------


def _usable_ids(event: Mapping[str, object]) -> list[str]:
    entries = event["Records"]
    assert isinstance(entries, list)
    return [
        entry["messageId"]
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("messageId"), str) and entry["messageId"]
    ]


def _check_response(response: object, batch_ids: list[str]) -> list[str]:
    """Assert the response is a partial batch response Lambda accepts; return the failed ids."""
    assert isinstance(response, dict)
    assert set(response) == {"batchItemFailures"}
    msgspec.json.encode(response)
    failures = response["batchItemFailures"]
    assert isinstance(failures, list)
    identifiers: list[str] = []
    for failure in failures:
        assert isinstance(failure, dict)
        assert set(failure) == {"itemIdentifier"}
        identifier = failure["itemIdentifier"]
        assert isinstance(identifier, str)
        assert identifier, "an empty itemIdentifier fails the whole batch on Lambda"
        identifiers.append(identifier)
    assert len(identifiers) == len(set(identifiers)), f"duplicate itemIdentifier in {identifiers}"
    assert set(identifiers) <= set(batch_ids), "an itemIdentifier that is not in the batch"
    return identifiers


def _check_accounting(report: BatchReport, event: Mapping[str, object], driver: MockQueueDriver) -> None:
    usable = _usable_ids(event)
    settled = [s.message_id for s in report.settled if s.message_id]
    assert sorted(settled) == sorted(usable), "every usable record accounted for exactly once"
    order = {message_id: position for position, message_id in enumerate(usable)}
    positions = [order[m] for m in settled]
    assert positions == sorted(positions), "settled in input order"
    assert all(
        s.result.outcome == Defer(reason="unreadable_record") for s in report.settled if not s.message_id
    )
    assert sorted(d.message_id for d in driver.dead_letters) == sorted(report.ids("dead_lettered"))
    failed = _check_response(report.response(), usable)
    assert sorted(failed) == sorted(m for m in report.ids("failed") if m)


# --- SQS batches --------------------------------------------------------------------


@FUZZ
@given(
    event=sqs_batches(),
    variant=st.sampled_from(VARIANTS),
    dlq_failures=st.integers(0, 3),
    copies=st.lists(st.integers(0, 11), max_size=4),
)
def test_an_sqs_batch_never_raises_and_accounts_for_every_record(
    event: dict[str, object], variant: str, dlq_failures: int, copies: list[int]
) -> None:
    worker, driver = _worker(variant)
    driver.simulate_failure(ConnectionError("DLQ down"), times=dlq_failures)
    report = worker.process_batch(event)
    _check_accounting(report, event, driver)

    entries = event["Records"]
    assert isinstance(entries, list)
    repeated = {"Records": entries + [entries[i] for i in copies if i < len(entries)]}
    response = _worker(variant)[0](repeated, None)
    _check_response(response, _usable_ids(repeated))


# --- any other event ----------------------------------------------------------------


def _is_sqs_batch(event: object) -> bool:
    if not isinstance(event, dict) or "Records" not in event:
        return False
    entries = event["Records"]
    return isinstance(entries, list) and all(
        not isinstance(e, dict) or e.get("eventSource", "aws:sqs") == "aws:sqs" for e in entries
    )


def _names_boom(event: object) -> bool:
    if not isinstance(event, dict):
        return False
    if event.get("jobName") == "boom":
        return True
    detail = event.get("detail")
    if event.get("jobName") is None and isinstance(detail, dict):
        return detail.get("jobName", detail.get("name")) == "boom"
    return False


EXPECTED_ERRORS = (InvalidEventError, UnknownJobError, InvalidJobPayloadError)


def _direct_events() -> st.SearchStrategy[object]:
    named = st.fixed_dictionaries(
        {"jobName": st.sampled_from(JOB_NAMES) | json_scalars},
        optional={"payload": json_values, "id": json_scalars, "time": json_scalars | st.datetimes().map(str)},
    )
    bridged = st.fixed_dictionaries(
        {
            "detail-type": st.just("Scheduled Event"),
            "detail": st.fixed_dictionaries(
                {},
                optional={
                    "jobName": st.sampled_from(JOB_NAMES) | json_scalars,
                    "name": st.sampled_from(JOB_NAMES) | json_scalars,
                    "payload": json_values,
                },
            )
            | json_values,
        },
        optional={"id": json_scalars, "time": json_scalars},
    )
    return st.one_of(json_events, named, bridged)


@FUZZ
@given(event=_direct_events())
def test_any_other_event_raises_a_clear_glasswork_error(event: object) -> None:
    worker, _ = _worker()
    error: Exception | None = None
    try:
        result = worker(event, None)  # type: ignore[arg-type]  # any JSON, on purpose
    except Exception as exc:
        error = exc
    if isinstance(error, JobBoomError):
        assert _names_boom(event)
        return
    if error is not None:
        assert isinstance(error, EXPECTED_ERRORS), (
            f"{type(error).__name__} is not a GlassworkError: {error!r}"
        )
        assert not _is_sqs_batch(event), f"an SQS batch raised {error!r}"
        assert str(error)
        if isinstance(error, InvalidEventError):
            assert "expected" in str(error)
        return
    assert isinstance(result, dict)
    msgspec.json.encode(result)
    if isinstance(event, dict) and "Records" in event:
        assert set(result) == {"batchItemFailures"}
    else:
        assert result["status"] == "succeeded"


@pytest.mark.parametrize(
    "event",
    [None, 0, "Records", [], {}, {"Records": None}, {"Records": {}}, {"detail": []}, {"jobName": ""}],
)
def test_every_shape_of_non_event_is_an_invalid_event_error(event: object) -> None:
    worker, _ = _worker()
    with pytest.raises(InvalidEventError, match="expected") as caught:
        worker(event, None)  # type: ignore[arg-type]  # any JSON, on purpose
    assert isinstance(caught.value, GlassworkError)


# --- payloads against typed jobs ----------------------------------------------------

TYPES: dict[str, object] = {
    "order": Order,
    "count": int,
    "tags": dict[str, int],
    "when": datetime,
    "choice": Literal["a", "b"],
    "pair": tuple[int, str],
    "maybe": float | None,
}


def _near(name: str) -> st.SearchStrategy[object]:
    """Payloads close to valid for the job `name`, so both branches get exercised."""
    strategies: dict[str, st.SearchStrategy[object]] = {
        "order": st.fixed_dictionaries(
            {"order_id": st.integers() | json_scalars, "items": st.lists(st.text(max_size=4)) | json_scalars},
            optional={
                "note": st.none() | st.text(max_size=4) | st.integers(),
                "address": st.none()
                | st.fixed_dictionaries(
                    {"city": st.text(max_size=4), "zip": st.text(max_size=5) | st.integers()}
                ),
                "extra": json_scalars,
            },
        ),
        "count": st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=4),
        "tags": st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=2), max_size=3),
        "when": st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=25),
        "choice": st.sampled_from(["a", "b", "c", "A", ""]),
        "pair": st.tuples(st.integers() | st.text(max_size=2), st.text(max_size=2) | st.integers()).map(list),
        "maybe": st.none()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.integers()
        | st.text(max_size=3),
    }
    return strategies[name] | json_values


@st.composite
def typed_cases(draw: st.DrawFn) -> tuple[str, object]:
    name = draw(st.sampled_from(sorted(TYPES)))
    return name, draw(_near(name))


def _typed_module(seen: list[tuple[str, object]]) -> Module:
    def make(name: str) -> Callable[[object, JobContext], None]:
        def handler(payload: object, ctx: JobContext) -> None:
            seen.append((name, payload))

        return handler

    return Module(
        name="typed",
        jobs=[
            define_job(name=name, handler=make(name), payload=cast("type[object]", kind))
            for name, kind in TYPES.items()
        ],
    )


def _oracle(kind: object, payload: object) -> tuple[bool, object]:
    try:
        return True, msgspec.json.decode(msgspec.json.encode(payload), type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return False, None


@FUZZ
@given(case=typed_cases())
def test_a_payload_runs_its_typed_job_exactly_when_it_fits_the_type(case: tuple[str, object]) -> None:
    name, payload = case
    fits, value = _oracle(TYPES[name], payload)
    seen: list[tuple[str, object]] = []
    driver = MockQueueDriver()
    worker = bootstrap_worker(module=_typed_module(seen), driver=driver)
    record = {"messageId": "m-1", "body": job_body(name, payload), "eventSource": "aws:sqs"}

    report = worker.process_batch({"Records": [record]})

    [settled] = report.settled
    if fits:
        assert settled.disposition == "succeeded"
        assert seen == [(name, value)]
    else:
        assert settled.disposition == "dead_lettered"
        assert seen == []
        assert [(d.reason, d.error_type) for d in driver.dead_letters] == [
            ("invalid_payload", "InvalidJobPayloadError")
        ]


@FUZZ
@given(case=typed_cases())
def test_what_the_service_accepts_the_worker_runs_and_nothing_else(case: tuple[str, object]) -> None:
    name, payload = case
    fits, value = _oracle(TYPES[name], payload)
    seen: list[tuple[str, object]] = []
    module = _typed_module(seen)
    job = next(j for j in module.jobs if j.name == name)
    driver = MockQueueDriver()
    service = JobService(driver)
    refused: InvalidJobPayloadError | None = None
    try:
        service.enqueue(job, payload)
    except InvalidJobPayloadError as exc:
        refused = exc
    if refused is not None:
        assert not fits, f"the service refused a payload the worker accepts: {refused}"
        assert driver.jobs == []
        return
    assert fits, "the service accepted a payload the worker refuses"
    driver.drain(bootstrap_worker(module=module, driver=driver))
    assert seen == [(name, value)]
    assert driver.dead_letters == []


@FUZZ
@given(case=typed_cases())
def test_a_direct_invocation_with_any_payload_runs_or_raises_invalid_payload(
    case: tuple[str, object],
) -> None:
    name, payload = case
    fits, value = _oracle(TYPES[name], payload)
    seen: list[tuple[str, object]] = []
    worker = bootstrap_worker(module=_typed_module(seen), driver=MockQueueDriver())
    if fits:
        assert worker({"jobName": name, "payload": payload}, None)["status"] == "succeeded"
        assert seen == [(name, value)]
    else:
        with pytest.raises(InvalidJobPayloadError, match=f"job '{name}': invalid payload"):
            worker({"jobName": name, "payload": payload}, None)
        assert seen == []


# --- size guards --------------------------------------------------------------------


@FUZZ
@given(size=st.integers(MAX_MESSAGE_BYTES - 512, MAX_MESSAGE_BYTES + 512))
def test_the_enqueue_size_guard_is_exact_near_one_mebibyte(size: int) -> None:
    any_job = WORKER_JOBS[3]
    driver = MockQueueDriver()
    service = JobService(driver)
    payload = "a" * max(size - len(job_body("any", "")), 0)
    too_large: PayloadTooLargeError | None = None
    try:
        service.enqueue(any_job, payload)
    except PayloadTooLargeError as exc:
        too_large = exc
    if too_large is not None:
        assert too_large.max_size == MAX_MESSAGE_BYTES
        assert too_large.actual_size > MAX_MESSAGE_BYTES
        assert driver.jobs == []
        return
    [job] = driver.jobs
    assert len(job.message.body.encode()) <= MAX_MESSAGE_BYTES
