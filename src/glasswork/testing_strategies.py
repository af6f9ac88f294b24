"""Hypothesis strategies for property-testing jobs, handlers and worker shells.

Needs `hypothesis` (a test dependency; glasswork itself never imports it).

- `payloads(job)`: payloads the job accepts, derived from its msgspec type
  with the type's constraints (`msgspec.Meta(ge=..., max_length=...)`); every
  value is checked through the job's own decoder, so it is exactly what the
  worker would hand the handler. `invalid_payloads(job)`: JSON it rejects.
- `job_bodies`, `invalid_payload_bodies`, `poison_bodies`: message bodies;
  `records` and `events`: Lambda SQS records and events carrying them.
- `errors`, `retry_policies`, `outcomes`: what handlers raise and what the
  worker decides; `lambda_contexts`: contexts with some time left.

```python
from hypothesis import given

@given(payloads(place_order_job))
def test_place_order(order: Order) -> None:
    run = run_job(place_order_job, order)
    assert run.error is None or isinstance(run.error, PermanentJobError)
```
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Final, TypeVar, overload

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from glasswork._jobs import Job, _is_model, model_json
from glasswork._wire import SQSRecord, format_timestamp
from glasswork.core import (
    Ack,
    Backoff,
    Defer,
    Outcome,
    RetryPolicy,
    decide_retry,
    decode_message,
)
from glasswork.errors import MalformedMessageError, PermanentJobError, TransientJobError
from glasswork.testing import FakeLambdaContext, job_body, sqs_event, sqs_record

__all__ = [
    "errors",
    "events",
    "invalid_payload_bodies",
    "invalid_payloads",
    "job_bodies",
    "json_values",
    "lambda_contexts",
    "outcomes",
    "payloads",
    "poison_bodies",
    "records",
    "retry_policies",
]

P = TypeVar("P")
T = TypeVar("T")

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1
_OFFSETS: Final = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8)))
_REJECTED: Final = object()


def json_values(*, max_leaves: int = 12) -> st.SearchStrategy[object]:
    """Any JSON value (as decoded: `None`, bools, ints, finite floats, str, lists, dicts)."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**53), 2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=max_leaves,
    )


# --- payloads ---------------------------------------------------------------------


@overload
def payloads(job: Job[P]) -> st.SearchStrategy[P]: ...
@overload
def payloads(job: type[P]) -> st.SearchStrategy[P]: ...
def payloads(job: Job[P] | type[P]) -> st.SearchStrategy[P]:
    """Payloads a job accepts, as its handler receives them.

    Derived from the job's payload type through `msgspec.inspect`, honouring
    msgspec constraints (bounds, lengths, patterns): Structs (tagged, renamed,
    with defaults), dataclasses, TypedDicts, NamedTuples, lists, tuples, sets,
    dicts, unions and optionals, `Literal`, enums, and the scalar types msgspec
    decodes from JSON (str, int, float, bool, bytes, datetime, date, time,
    timedelta, UUID, Decimal). A type msgspec cannot describe falls back to
    `hypothesis.strategies.from_type`. Each value is encoded and decoded with
    the job's own decoder and kept only if that succeeds (a `__post_init__`
    check, say), so every example is one the worker would accept.

    Args:
        job: A job, or a payload type.

    Returns:
        A strategy of payloads; for a job without a payload type, of JSON values.
    """
    kind: object = job.payload_type if isinstance(job, Job) else job
    if kind is None:
        return json_values()  # type: ignore[return-value]  # an untyped job's payload is any JSON value
    if _is_model(kind):
        return _models(kind)
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(kind)
    strategy = _from_info(mi.type_info(kind), {})

    def accept(value: object) -> object:
        try:
            return decoder.decode(msgspec.json.encode(value))
        except (msgspec.EncodeError, msgspec.DecodeError, TypeError, ValueError, OverflowError):
            return _REJECTED

    return strategy.map(accept).filter(lambda v: v is not _REJECTED)  # type: ignore[return-value]  # checked by the type's decoder


def _models(model: type[Any]) -> st.SearchStrategy[Any]:
    """Instances of a pydantic model the worker would accept: built from its fields' types.

    Each field's value comes from `hypothesis.strategies.from_type` of its
    annotation with its constraints (optional fields are sometimes left to
    their defaults); a
    candidate is kept only if it validates and survives the JSON round trip
    `JobService` and the worker make (`model_dump_json`, `model_validate_json`).
    """
    fields: dict[str, Any] = model.model_fields

    def of(field: Any) -> st.SearchStrategy[Any]:
        # Constraints (`Field(ge=0)`, ...) are annotated-types metadata, which `from_type` honours.
        kind: Any = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        return st.from_type(kind)

    required = {name: of(f) for name, f in fields.items() if f.is_required()}
    optional = {name: of(f) for name, f in fields.items() if not f.is_required()}

    def accept(data: dict[str, Any]) -> object:
        try:
            built = model.model_validate(data)
            raw = model_json(built)
            return model.model_validate_json(raw) if raw is not None else _REJECTED
        except Exception:  # noqa: BLE001  # any validation failure rejects the candidate
            return _REJECTED

    strategy = st.fixed_dictionaries(required, optional=optional)
    return strategy.map(accept).filter(lambda v: v is not _REJECTED)


def _from_info(info: mi.Type, seen: dict[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """A strategy of Python values of a `msgspec.inspect` type (before the decoder check)."""
    match info:
        case mi.Metadata(type=inner):
            return _from_info(inner, seen)
        case mi.AnyType():
            return json_values()
        case mi.NoneType():
            return st.none()
        case mi.BoolType():
            return st.booleans()
        case mi.IntType():
            return _integers(info)
        case mi.FloatType():
            return _floats(info)
        case mi.StrType():
            return _text(info)
        case mi.BytesType(min_length=low, max_length=high):
            return st.binary(min_size=low or 0, max_size=high)
        case mi.ByteArrayType(min_length=low, max_length=high):
            return st.binary(min_size=low or 0, max_size=high).map(bytearray)
        case mi.DateTimeType(tz=tz):
            earliest, latest = datetime(1900, 1, 1), datetime(2200, 1, 1)
            return _by_tz(
                tz,
                st.datetimes(earliest, latest),
                st.datetimes(earliest, latest, timezones=st.sampled_from(_OFFSETS)),
            )
        case mi.TimeType(tz=tz):
            return _by_tz(tz, st.times(), st.times(timezones=st.sampled_from(_OFFSETS)))
        case mi.DateType():
            return st.dates()
        case mi.TimeDeltaType():
            return st.timedeltas(min_value=timedelta(days=-99_999), max_value=timedelta(days=99_999))
        case mi.UUIDType():
            return st.uuids()
        case mi.DecimalType():
            return st.decimals(allow_nan=False, allow_infinity=False)
        case mi.LiteralType(values=values):
            return st.sampled_from(values)
        case mi.EnumType(cls=enum_type):
            return st.sampled_from(list(enum_type))
        case mi.UnionType(types=types):
            return st.one_of([_from_info(t, seen) for t in types])
        case mi.ListType() | mi.VarTupleType() | mi.SetType() | mi.FrozenSetType():
            return _collection(info, seen)
        case mi.TupleType(item_types=items):
            return st.tuples(*(_from_info(t, seen) for t in items))
        case mi.DictType(key_type=key, value_type=value, min_length=low, max_length=high):
            return st.dictionaries(
                _from_info(key, seen),
                _from_info(value, seen),
                min_size=low or 0,
                max_size=high if high is not None else 5,
            )
        case mi.StructType() | mi.DataclassType() | mi.NamedTupleType() | mi.TypedDictType():
            return _fields(info, seen)
        case mi.RawType():
            return json_values().map(lambda v: msgspec.Raw(msgspec.json.encode(v)))
        case _:
            cls = getattr(info, "cls", None)
            if isinstance(cls, type):
                return st.from_type(cls)
            msg = f"cannot derive payloads for {info!r}"
            raise InvalidArgument(msg)


def _integers(info: mi.IntType) -> st.SearchStrategy[int]:
    low = max(
        _INT_MIN, info.ge if info.ge is not None else (info.gt + 1 if info.gt is not None else _INT_MIN)
    )
    high = min(
        _INT_MAX, info.le if info.le is not None else (info.lt - 1 if info.lt is not None else _INT_MAX)
    )
    step = info.multiple_of
    if step:
        return st.integers(-(-low // step), high // step).map(lambda k: k * step)
    return st.integers(low, high)


def _floats(info: mi.FloatType) -> st.SearchStrategy[float]:
    low = info.ge if info.ge is not None else info.gt
    high = info.le if info.le is not None else info.lt
    floats = st.floats(
        min_value=low,
        max_value=high,
        exclude_min=info.ge is None and info.gt is not None,
        exclude_max=info.le is None and info.lt is not None,
        allow_nan=False,
        allow_infinity=False,
    )
    step = info.multiple_of
    if step:
        bottom = math.ceil(low / step) if low is not None else -(10**6)
        top = math.floor(high / step) if high is not None else 10**6
        return st.integers(bottom, top).map(lambda k: k * step)
    return floats


def _text(info: mi.StrType) -> st.SearchStrategy[str]:
    low, high = info.min_length or 0, info.max_length
    if info.pattern is None:
        return st.text(min_size=low, max_size=high)
    return st.from_regex(re.compile(info.pattern)).filter(
        lambda s: len(s) >= low and (high is None or len(s) <= high)
    )


def _by_tz(tz: bool | None, naive: st.SearchStrategy[T], aware: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """msgspec's `tz` constraint: `True` aware only, `False` naive only, `None` either."""
    if tz is True:
        return aware
    if tz is False:
        return naive
    return naive | aware


def _collection(
    info: mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType,
    seen: dict[int, st.SearchStrategy[Any]],
) -> st.SearchStrategy[Any]:
    items = _from_info(info.item_type, seen)
    low = info.min_length or 0
    high = info.max_length if info.max_length is not None else max(low, 5)
    match info:
        case mi.SetType():
            return st.sets(items, min_size=low, max_size=high)
        case mi.FrozenSetType():
            return st.frozensets(items, min_size=low, max_size=high)
        case mi.VarTupleType():
            return st.lists(items, min_size=low, max_size=high).map(tuple)
        case _:
            return st.lists(items, min_size=low, max_size=high)


def _fields(
    info: mi.StructType | mi.DataclassType | mi.NamedTupleType | mi.TypedDictType,
    seen: dict[int, st.SearchStrategy[Any]],
) -> st.SearchStrategy[Any]:
    key = id(info.cls)
    if key in seen:
        return seen[key]
    seen[key] = st.deferred(lambda: built)
    required = {f.name: _from_info(f.type, seen) for f in info.fields if f.required}
    optional = {f.name: _from_info(f.type, seen) for f in info.fields if not f.required}
    cls: Callable[..., object] = info.cls
    # A recursive field (a tree of Structs) stays finite: optional fields are
    # often left out, so the default ends the recursion.
    built = st.fixed_dictionaries(required, optional=optional).map(lambda kwargs: _construct(cls, kwargs))
    seen[key] = built
    return built


def _construct(cls: Callable[..., object], kwargs: dict[str, Any]) -> object:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, msgspec.ValidationError):
        return _REJECTED


def invalid_payloads(job: Job[Any]) -> st.SearchStrategy[object]:
    """JSON values (as decoded) that the job's payload type rejects.

    Near misses (a valid payload with a field removed or set to a value of
    the wrong kind) and arbitrary JSON, each checked against the job's
    decoder. Run one through `run_job` or put it in a body with `job_body`.

    Raises:
        InvalidArgument: The job has no payload type, or accepts any JSON value.
    """
    kind = job.payload_type
    if kind is None or isinstance(_unwrap(mi.type_info(kind)), mi.AnyType):
        msg = f"job {job.name!r} accepts any JSON payload, so no payload is invalid"
        raise InvalidArgument(msg)
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(kind)

    def rejected(value: object) -> bool:
        try:
            decoder.decode(msgspec.json.encode(value))
        except msgspec.DecodeError:
            return True
        return False

    near_misses = st.builds(msgspec.to_builtins, payloads(job)).flatmap(_mutations)
    return (near_misses | json_values()).filter(rejected)


def _unwrap(info: mi.Type) -> mi.Type:
    return _unwrap(info.type) if isinstance(info, mi.Metadata) else info


_ODD_VALUES: Final[tuple[object, ...]] = (None, True, -1, 1.5, "", "x", [], {}, [None], {"": None})


def _mutations(value: object) -> st.SearchStrategy[object]:
    """`value` with one part removed or replaced by a value of another kind."""
    odd = st.sampled_from(_ODD_VALUES)
    if isinstance(value, dict) and value:
        keys = sorted(value, key=str)

        def at_key(key: object) -> st.SearchStrategy[object]:
            dropped = {k: v for k, v in value.items() if k != key}
            replaced = odd.map(lambda o: {**value, key: o})
            deeper = _mutations(value[key]).map(lambda inner: {**value, key: inner})
            return st.just(dropped) | replaced | deeper

        return st.sampled_from(keys).flatmap(at_key)
    if isinstance(value, list) and value:

        def at_index(index: int) -> st.SearchStrategy[object]:
            return (odd | _mutations(value[index])).map(
                lambda item: [*value[:index], item, *value[index + 1 :]]
            )

        return st.integers(0, len(value) - 1).flatmap(at_index)
    return odd


# --- bodies, records, events --------------------------------------------------------

_job_ids = st.uuids().map(str)
_metadata = st.dictionaries(
    st.text(string.ascii_letters, min_size=1, max_size=8), st.text(max_size=12), max_size=3
)
_enqueued = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
).map(format_timestamp)


def job_bodies(job: Job[Any], payload: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[str]:
    """Valid message bodies for a job, with random job ids, metadata and enqueue times.

    Args:
        job: The job.
        payload: The payloads to carry; default `payloads(job)`.
    """
    return st.builds(
        lambda p, job_id, metadata, at: job_body(job, p, job_id=job_id, metadata=metadata, enqueued_at=at),
        payload if payload is not None else payloads(job),
        _job_ids,
        _metadata,
        _enqueued,
    )


def invalid_payload_bodies(job: Job[Any]) -> st.SearchStrategy[str]:
    """Bodies naming the job whose payload it rejects (the `invalid_payload` row)."""
    return job_bodies(job, invalid_payloads(job))


def _is_poison(body: str) -> bool:
    try:
        decode_message(body)
    except MalformedMessageError:
        return True
    return False


def poison_bodies() -> st.SearchStrategy[str]:
    """Bodies that are not glasswork job messages: not JSON, or JSON without a string `jobName`."""
    not_json = st.text(max_size=40)
    other_json = json_values().map(lambda v: msgspec.json.encode(v).decode())
    wrong_name = st.builds(
        lambda name, payload: msgspec.json.encode({"jobName": name, "payload": payload}).decode(),
        st.none() | st.integers() | st.lists(st.text(max_size=3), max_size=2),
        json_values(max_leaves=3),
    )
    return (not_json | other_json | wrong_name).filter(_is_poison)


def records(
    bodies: st.SearchStrategy[str],
    *,
    fifo: bool = False,
    receive_counts: st.SearchStrategy[int] | None = None,
    groups: Sequence[str] = ("g1", "g2", "g3"),
    queue: str = "jobs",
) -> st.SearchStrategy[SQSRecord]:
    """Lambda SQS records carrying `bodies`.

    Args:
        bodies: The bodies, say `job_bodies(job) | poison_bodies()`.
        fifo: FIFO records (`MessageGroupId` drawn from `groups`).
        receive_counts: `ApproximateReceiveCount`s (attempt numbers); default 1 to 30.
        groups: FIFO message groups to draw from (few, so groups repeat in a batch).
        queue: The source queue's name.
    """
    counts = receive_counts if receive_counts is not None else st.integers(1, 30)
    group_ids: st.SearchStrategy[str | None] = st.sampled_from(groups) if fifo else st.none()
    return st.builds(
        lambda body, message_id, count, group: sqs_record(
            body, message_id=message_id, receive_count=count, group_id=group, queue=queue
        ),
        bodies,
        st.uuids().map(str),
        counts,
        group_ids,
    )


def events(
    record: st.SearchStrategy[SQSRecord], *, min_size: int = 1, max_size: int = 10
) -> st.SearchStrategy[dict[str, object]]:
    """Lambda SQS events (`{"Records": [...]}`) of records with distinct message ids.

    Args:
        record: The records, say `records(job_bodies(job))`.
        min_size: The fewest records in an event.
        max_size: The most records (Lambda sends at most 10 from a FIFO queue).
    """
    return st.lists(record, min_size=min_size, max_size=max_size, unique_by=lambda r: r.message_id).map(
        sqs_event
    )


# --- errors, policies, outcomes, contexts ---------------------------------------------


def errors() -> st.SearchStrategy[Exception]:
    """What a handler raises: plain exceptions, `TransientJobError`s (some with
    `retry_after`) and `PermanentJobError`s."""
    messages = st.text(max_size=20)
    return st.one_of(
        st.builds(RuntimeError, messages),
        st.builds(ConnectionError, messages),
        st.builds(KeyError, messages),
        st.builds(
            TransientJobError,
            messages,
            retry_after=st.none() | st.integers(0, 50_000) | st.integers(0, 3_600).map(_seconds),
        ),
        st.builds(PermanentJobError, messages),
    )


def _seconds(value: int) -> timedelta:
    return timedelta(seconds=value)


def retry_policies() -> st.SearchStrategy[RetryPolicy]:
    """Retry policies, as `define_job(retry=...)` normalizes them (with and without backoff)."""
    backoffs = st.builds(
        Backoff,
        base=st.floats(0, 3_600),
        factor=st.floats(1, 10),
        max=st.floats(0, 100_000),
    )
    return st.builds(
        RetryPolicy, max_attempts=st.integers(1, 30), dead=st.booleans(), backoff=st.none() | backoffs
    )


def outcomes() -> st.SearchStrategy[Outcome]:
    """Worker outcomes, as the pipeline makes them: `Ack`, `decide_retry`'s
    `Retry`/`DeadLetter`/`Discard` for a drawn error, policy and attempt, and `Defer`."""
    decided = st.builds(
        lambda error, attempt, policy, jitter: decide_retry(
            error, attempt=attempt, policy=policy, jitter=jitter, job_name="job"
        ),
        errors(),
        st.integers(1, 40),
        retry_policies(),
        st.floats(0, 1),
    )
    deferred = st.builds(Defer, reason=st.sampled_from(["fifo_group_blocked", "time_budget"]))
    return st.one_of(st.just(Ack()), decided, deferred)


def lambda_contexts(
    *, min_remaining_ms: int = 0, max_remaining_ms: int = 900_000
) -> st.SearchStrategy[FakeLambdaContext]:
    """Lambda contexts with a fixed remaining time in `[min_remaining_ms, max_remaining_ms]`."""
    return st.builds(FakeLambdaContext, st.integers(min_remaining_ms, max_remaining_ms))
