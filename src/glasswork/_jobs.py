"""Defining jobs and modules, and the registry the worker builds from a module tree.

`Job` itself is a value of the core (`glasswork.core`); this module makes
jobs (`define_job`), groups them (`Module`), checks a module tree once
(`JobRegistry`) and validates a payload on the enqueue side (`build_message`).

A payload type is anything msgspec converts JSON to, or a pydantic v2 model
(`ModelPayload`). pydantic is never imported here: a program that defines a
model has imported it already, so `sys.modules` tells whether a class can be one.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Generic, TypeGuard, TypeVar

import msgspec

from glasswork._runtime import is_async_callable
from glasswork._wire import JSON_DECODER, MAX_NESTING, JobMessage, nested_deeper_than
from glasswork.context import JobContext
from glasswork.core import (
    Job,
    JobTable,
    PayloadDecoder,
    PermanentErrors,
    RetrySpec,
    normalize_retry,
)
from glasswork.errors import ConfigurationError, InvalidJobPayloadError, TransientJobError

__all__ = [
    "Job",
    "JobRegistry",
    "ModelPayload",
    "Module",
    "build_message",
    "define_job",
    "define_periodic_job",
    "encode_payload",
    "model_json",
]

P = TypeVar("P")

_NAME = re.compile(r"[A-Za-z0-9_.:\-/]{1,200}")
_PASS_THROUGH: Final = (KeyboardInterrupt, SystemExit, GeneratorExit)
"""What the pipeline never catches: naming one in `permanent_errors` could not take effect."""


def define_job(
    *,
    name: str,
    handler: Callable[[P, JobContext], object],
    payload: type[P] | None = None,
    retry: RetrySpec = None,
    queue: str | None = None,
    unique: Callable[[P], str] | None = None,
    group: Callable[[P], str] | None = None,
    permanent_errors: type[BaseException] | Iterable[type[BaseException]] = (),
) -> Job[P]:
    """Define a job.

    Args:
        name: The job's name on the wire; letters, digits and `_.:-/`.
        handler: Called as `handler(payload, ctx)`; `def` or `async def`.
        payload: A msgspec Struct (or any type msgspec can convert to), or a
            pydantic v2 `BaseModel` (validated with `model_validate_json`;
            sent as `model_dump_json` writes it, by alias). The worker
            converts the JSON payload to it before the handler runs and
            dead-letters a message that does not fit. Without it the handler
            gets the decoded JSON as it is.
        retry: `None` (25 attempts, then dead-letter), an attempt count
            (`<= 0` behaves as `False`), `False` (one attempt, discard on
            failure) or a `RetryPolicy`.
        queue: The queue name; `None` uses `JobService`'s default queue.
        unique: Payload -> deduplication key, used as the job id and as the
            FIFO `MessageDeduplicationId`.
        group: Payload -> FIFO `MessageGroupId` (default: the queue's name,
            so that the whole queue is one ordered group).
        permanent_errors: Exception types (one, or several) that are
            permanent for this job, subclasses included: dead-lettered at
            once, or discarded with `retry=False` or `dead=False`, exactly as
            a `PermanentJobError` (as Celery's `dont_autoretry_for` or
            Dramatiq's `throws=`). A `TransientJobError` raised by the handler
            stays transient even when its type matches one of them; errors
            glasswork makes itself (poison, invalid payload) keep their rows.

    Returns:
        The job, typed by its payload so that `JobService.enqueue(job, wrong)`
        is a type error.

    Raises:
        ConfigurationError: A bad name, handler or payload type; or a
            `permanent_errors` entry that is not an exception class, that is
            a `TransientJobError` (the job would contradict itself), or that
            is `KeyboardInterrupt`, `SystemExit` or `GeneratorExit` (they
            stop the process and are never handled as a job failure).
            A `retry` that is not `None`, a bool, an int or a `RetryPolicy`
            (its `__cause__` is the `TypeError` saying so).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        msg = f"job name {name!r} must be 1-200 characters of letters, digits and _.:-/"
        raise ConfigurationError(msg)
    if not callable(handler):
        msg = f"job {name!r}: handler must be callable, got {type(handler).__name__}"
        raise ConfigurationError(msg)
    model = ModelPayload[Any](payload) if _is_model(payload) else None
    decoder: PayloadDecoder[Any] | None
    try:
        decoder = model or (msgspec.json.Decoder(payload) if payload is not None else None)
        envelope_type = _envelope_type(name, payload, model)
        msgspec.json.Decoder(envelope_type)
    except TypeError as exc:
        msg = f"job {name!r}: payload type {payload!r} is not supported by msgspec: {exc}"
        raise ConfigurationError(msg) from exc
    custom = _custom_type(payload) if payload is not None and model is None else None
    if custom is not None:
        hint = (
            "a pydantic model is supported as the payload type itself only; wrap the rest in a model"
            if _is_model(custom)
            else "use a msgspec Struct, a dataclass, a TypedDict, a pydantic model or builtins"
        )
        msg = (
            f"job {name!r}: payload type {payload!r} contains {custom!r}, which msgspec cannot "
            f"decode from JSON; {hint}"
        )
        raise ConfigurationError(msg)
    permanent = _permanent_errors(name, permanent_errors)
    try:
        policy = normalize_retry(retry)
    except TypeError as exc:
        raise ConfigurationError(f"job {name!r}: {exc}") from exc
    return Job(
        name=name,
        handler=handler,
        payload_type=payload,
        retry=policy,
        queue=queue,
        unique=unique,
        group=group,
        is_async=is_async_callable(handler),
        permanent_errors=permanent,
        decoder=decoder,
        envelope_type=envelope_type,
    )


def _permanent_errors(name: str, given: type[BaseException] | Iterable[object]) -> PermanentErrors:
    """`define_job`'s `permanent_errors` as a tuple of exception classes, checked, in order, once each.

    Raises:
        ConfigurationError: An entry is not an exception class, or is one the
            option cannot apply to (see `define_job`).
    """
    entries: list[object]
    try:
        entries = [given] if isinstance(given, type) else list(given)
    except TypeError:
        msg = (
            f"job {name!r}: permanent_errors must be an exception class or a tuple of them, "
            f"got {type(given).__name__}"
        )
        raise ConfigurationError(msg) from None
    checked: dict[type[BaseException], None] = {}
    for entry in entries:
        if not isinstance(entry, type) or not issubclass(entry, BaseException):
            msg = f"job {name!r}: permanent_errors holds {entry!r}, which is not an exception class"
            raise ConfigurationError(msg)
        if issubclass(entry, TransientJobError):
            msg = (
                f"job {name!r}: permanent_errors holds {entry.__name__}, a TransientJobError: "
                "raising one always means 'retry'; list the permanent types only"
            )
            raise ConfigurationError(msg)
        if issubclass(entry, _PASS_THROUGH):
            msg = (
                f"job {name!r}: permanent_errors holds {entry.__name__}, which stops the process "
                "and is never handled as a job failure"
            )
            raise ConfigurationError(msg)
        checked[entry] = None
    return tuple(checked)


def _envelope_type(
    name: str, payload: object, model: ModelPayload[Any] | None = None
) -> type[msgspec.Struct]:
    """The body of job `name` as one Struct tagged by `jobName` (see `JobTable`).

    The other fields are those of `JobEnvelope`, typed alike, so a body
    this Struct refuses is refused by the two-step reading too (then told
    apart as poison or an invalid payload). A decoded body holds only
    decoded JSON, which cannot form a cycle: it is not tracked by the
    garbage collector (`gc=False`).

    For a pydantic model the payload is read as raw JSON and validated by
    the Struct's `__post_init__` (`model_validate_json`, which parses JSON
    faster than it validates decoded builtins), still within the table's
    one decode; a payload that does not fit fails that decode, and the
    two-step reading reports pydantic's error as an invalid payload.
    """
    fields: list[tuple[str, object] | tuple[str, object, object]] = [
        ("payload", msgspec.Raw)
        if model is not None
        else ("payload", payload)
        if payload is not None
        else ("payload", Any, None),
        ("job_id", str, ""),
        ("enqueued_at", datetime | None, None),
        ("metadata", dict[str, str] | None, None),
    ]
    return msgspec.defstruct(
        "JobBody",
        fields,
        tag_field="jobName",
        tag=name,
        rename="camel",
        frozen=True,
        kw_only=True,
        gc=False,
        module=__name__,
        namespace={"__post_init__": model.validate_body} if model is not None else None,
    )


def _is_model(payload: object) -> TypeGuard[type[Any]]:
    """Whether `payload` is a pydantic v2 model class; never imports pydantic."""
    base = _pydantic_base()
    return base is not None and isinstance(payload, type) and issubclass(payload, base)


def _pydantic_base() -> type | None:
    """`pydantic.BaseModel` if pydantic is imported (whoever defines a model has imported it), else `None`."""
    base = getattr(sys.modules.get("pydantic"), "BaseModel", None)
    return base if isinstance(base, type) else None


def model_json(value: object) -> bytes | None:
    """A pydantic model instance as JSON, as `ModelPayload` sends it; `None` for anything else.

    JSON mode (`model_dump_json`, `round_trip=True`) writes datetimes, UUIDs
    and decimals as strings, so the body is plain JSON; fields are named by
    alias when the model validates by alias (pydantic's default), so what is
    written is what `model_validate_json` reads. Serializer warnings are
    off: what is written is validated next, which says what is wrong.
    """
    base = _pydantic_base()
    if base is None or not isinstance(value, base):
        return None
    by_alias = value.model_config.get("validate_by_alias", True) is not False  # type: ignore[attr-defined]  # a BaseModel
    text: str = value.model_dump_json(by_alias=by_alias, round_trip=True, warnings=False)  # type: ignore[attr-defined]  # a BaseModel
    return text.encode()


def encode_payload(job: Job[Any], payload: object) -> bytes:
    """A payload as JSON for `job`: a model in JSON mode (`model_json`), else as msgspec encodes it.

    Raises:
        msgspec.EncodeError, TypeError, ValueError, RecursionError: The payload is not JSON.
    """
    if type(job.decoder) is ModelPayload:
        raw = model_json(payload)
        if raw is not None:
            return raw
    return msgspec.json.encode(payload)


class ModelPayload(Generic[P]):
    """The `PayloadDecoder` of a job whose payload is a pydantic model: `model_validate_json`.

    Whatever validation raises is a payload that does not fit: pydantic's
    `ValidationError` is a `ValueError` already, and any other exception
    (a validator that raised `RuntimeError`, say) becomes one, so it
    follows the invalid-payload row at enqueue and in the worker alike;
    only `KeyboardInterrupt`, `SystemExit` and `GeneratorExit` pass.
    """

    __slots__ = ("model",)

    def __init__(self, model: type[P]) -> None:
        self.model = model

    def decode(self, buf: bytes | str, /) -> P:
        """Validate the JSON `buf` (bytes, str or `msgspec.Raw`) with the model.

        Raises:
            ValueError: The payload does not fit the model (pydantic's error text).
        """
        if type(buf) is not bytes and not isinstance(buf, str):
            buf = bytes(buf)  # a msgspec.Raw: pydantic reads str, bytes and bytearray only
        try:
            value: P = self.model.model_validate_json(buf)  # type: ignore[attr-defined]  # a BaseModel
        except (ValueError, *_PASS_THROUGH):
            raise
        except BaseException as exc:  # a validator's bug is the payload's failure, not the pipeline's
            msg = f"{type(exc).__name__} while validating {self.model.__name__}: {exc}"
            raise ValueError(msg) from exc
        return value

    def validate_body(self, body: msgspec.Struct) -> None:
        """The `__post_init__` of the job's body Struct: replace its raw payload by the model."""
        msgspec.structs.force_setattr(body, "payload", self.decode(body.payload))  # type: ignore[attr-defined]  # the body Struct's field

    def __repr__(self) -> str:
        return f"ModelPayload({self.model.__name__})"


def _custom_type(payload: object) -> object | None:
    """The first type inside `payload` that msgspec would need a `dec_hook` for, if any."""
    import msgspec.inspect as mi  # noqa: PLC0415  # only at job definition

    seen: set[int] = set()

    def walk(node: object) -> object | None:
        if isinstance(node, mi.CustomType):
            return node.cls
        if isinstance(node, tuple | list):
            return next((found for item in node if (found := walk(item)) is not None), None)
        if isinstance(node, mi.Field):
            return walk(node.type)
        if isinstance(node, mi.Type) and id(node) not in seen:
            seen.add(id(node))
            return walk([getattr(node, f) for f in node.__struct_fields__])
        return None

    return walk(mi.type_info(payload))


def define_periodic_job(
    *,
    name: str,
    handler: Callable[[None, JobContext], object],
    schedule: str,
    retry: RetrySpec = None,
    queue: str | None = None,
    permanent_errors: type[BaseException] | Iterable[type[BaseException]] = (),
) -> Job[None]:
    """Define a job that runs on a schedule rather than being enqueued.

    On Lambda, an EventBridge rule with `schedule` (which you create, for
    instance as a SAM `Schedule` event) invokes the worker with
    `{"jobName": name}`; the worker runs the job once and raises on failure so
    that Lambda's asynchronous retries apply. Locally, `glasswork worker`
    fires it on the same expression (`glasswork.local_scheduler`). The
    handler receives `None` as its payload. `JobRegistry.schedules()` lists
    the expressions of a module tree.

    Args:
        name: The job's name, as for `define_job`.
        handler: Called as `handler(None, ctx)`; `def` or `async def`.
        schedule: An EventBridge expression: `rate(5 minutes)` or `cron(...)`.
        retry: As for `define_job` (used when the job is also enqueued).
        queue: As for `define_job`.
        permanent_errors: As for `define_job` (on a scheduled run the error
            is raised either way; it decides the outcome when the job is
            also enqueued).

    Raises:
        ConfigurationError: The schedule is not an expression EventBridge
            accepts (see `glasswork.schedule.parse_schedule`), or as for `define_job`.
    """
    from glasswork.schedule import parse_schedule  # noqa: PLC0415  # cold start: only apps with schedules pay

    try:
        parsed = parse_schedule(schedule)
    except ConfigurationError as exc:
        msg = f"job {name!r}: {exc}"
        raise ConfigurationError(msg) from None
    job = define_job(
        name=name,
        handler=handler,
        payload=None,
        retry=retry,
        queue=queue,
        permanent_errors=permanent_errors,
    )
    return msgspec.structs.replace(job, schedule=parsed.expression)


class Module(msgspec.Struct, frozen=True, kw_only=True):
    """A named group of jobs and services, composable through `imports`.

    Attributes:
        name: The module's name (used in error messages).
        jobs: The jobs this module defines.
        imports: Other modules whose jobs and services this one includes.
        services: `name -> zero-argument factory`; each factory is called once
            per worker process at bootstrap and its value is reachable as
            `ctx.services.<name>`.
    """

    name: str
    jobs: Sequence[Job[Any]] = ()
    imports: Sequence[Module] = ()
    services: Mapping[str, Callable[[], object]] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Module(name={self.name!r})"

    def walk(self) -> Iterator[Module]:
        """Yield every module of the tree once, imports before importers.

        Raises:
            ConfigurationError: An import cycle, naming the modules on it.
        """
        done: set[int] = set()
        path: list[Module] = []

        def visit(module: Module) -> Iterator[Module]:
            if any(m is module for m in path):
                cycle = " -> ".join(m.name for m in [*path[path.index(module) :], module])
                msg = f"import cycle between modules: {cycle}"
                raise ConfigurationError(msg)
            if id(module) in done:
                return
            if not isinstance(module, Module):
                msg = f"{path[-1].name}.imports holds {module!r}, not a Module"
                raise ConfigurationError(msg)
            path.append(module)
            for child in module.imports:
                yield from visit(child)
            path.pop()
            done.add(id(module))
            yield module

        yield from visit(self)


class JobRegistry(JobTable):
    """The jobs and service factories of a module tree, checked once.

    Build it with `JobRegistry.from_module`; it is the `JobTable` the worker
    hands `process_record`.
    """

    __slots__ = ("module", "service_factories")

    def __init__(self, module: Module) -> None:
        jobs: dict[str, Job[Any]] = {}
        owner: dict[str, str] = {}
        factories: dict[str, Callable[[], object]] = {}
        service_owner: dict[str, str] = {}
        for mod in module.walk():
            for job in mod.jobs:
                if not isinstance(job, Job):
                    msg = f"module {mod.name!r}: {job!r} is not a Job (use define_job)"
                    raise ConfigurationError(msg)
                known = jobs.get(job.name)
                if known is not None and known is not job:
                    msg = (
                        f"duplicate job name {job.name!r}: defined in module "
                        f"{owner[job.name]!r} and in module {mod.name!r}"
                    )
                    raise ConfigurationError(msg)
                jobs[job.name] = job
                owner[job.name] = mod.name
            for service, factory in mod.services.items():
                if not callable(factory):
                    msg = f"module {mod.name!r}: service {service!r} must be a zero-argument factory"
                    raise ConfigurationError(msg)
                if service in factories and factories[service] is not factory:
                    msg = (
                        f"service {service!r} is defined twice: in module {service_owner[service]!r} "
                        f"and in module {mod.name!r}"
                    )
                    raise ConfigurationError(msg)
                factories[service] = factory
                service_owner.setdefault(service, mod.name)
        super().__init__(jobs.values())
        self.module = module
        self.service_factories = factories

    def schedules(self) -> dict[str, str]:
        """Job name -> EventBridge expression, for every periodic job."""
        return {name: job.schedule for name, job in self.jobs.items() if job.schedule}

    @classmethod
    def from_module(cls, module: Module) -> JobRegistry:
        """Check a module tree and index its jobs by name."""
        if not isinstance(module, Module):
            msg = f"expected a glasswork Module, got {type(module).__name__}"
            raise ConfigurationError(msg)
        return cls(module)


def build_message(
    job: Job[Any],
    payload: object,
    *,
    job_id: str,
    enqueued_at: datetime,
    queue: str | None = None,
    metadata: Mapping[str, str] | None = None,
    delay_seconds: int = 0,
) -> JobMessage:
    """Validate a payload against its job and build the message to send.

    The payload is encoded and decoded with the job's own decoder, the exact
    path the worker takes, so what is accepted here is what the worker accepts
    (a payload nested deeper than `MAX_NESTING` levels included). The job id
    is the job's `unique` key of the converted payload, when it has one.

    For a pydantic model, the payload is a model instance (written in JSON
    mode, `model_json`) or anything JSON-encodable that validates (a dict,
    as from the command line); the message's `payload` is then the JSON
    the worker will validate, as builtins (a dict), so that a driver and
    `MockQueueDriver` see plain JSON.

    Raises:
        InvalidJobPayloadError: The payload cannot be encoded or does not fit the job's type.
        ValueError: `unique` returned something else than a non-empty str.
    """
    try:
        raw = encode_payload(job, payload)
        if nested_deeper_than(raw):
            raise RecursionError
        value = job.decoder.decode(raw) if job.decoder is not None else payload
    except (msgspec.EncodeError, ValueError, TypeError, RecursionError) as exc:
        reason = f"nested deeper than {MAX_NESTING} levels" if isinstance(exc, RecursionError) else str(exc)
        msg = f"job {job.name!r}: invalid payload: {reason}"
        raise InvalidJobPayloadError(msg, job_name=job.name) from exc
    group_id = job.group(value) if job.group is not None else None
    if job.unique is not None:
        job_id = job.unique(value)
        if not isinstance(job_id, str) or not job_id:
            msg = f"job {job.name!r}: unique() must return a non-empty str, got {job_id!r}"
            raise ValueError(msg)
    return JobMessage(
        job_name=job.name,
        payload=JSON_DECODER.decode(raw) if type(job.decoder) is ModelPayload else value,
        job_id=job_id,
        queue=queue,
        metadata=dict(metadata) if metadata else {},
        delay_seconds=delay_seconds,
        enqueued_at=enqueued_at,
        group_id=group_id,
    )
