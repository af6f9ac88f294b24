"""The pure core: the retry policy, the outcome values, the decisions and `process_record`.

`process_record` is the one decode → run → decide path: the Lambda worker
(sync and async), direct invocations, the local poller and `glasswork.testing`
all go through it. Nothing here reads a clock, draws a random number or does
I/O: the time left, the jitter and the handler runner are arguments.
Decisions are values (`Ack | Retry | DeadLetter | Discard | Defer`); the
worker shell performs them.

The decision table (attempt = the record's `ApproximateReceiveCount`):

| situation                                | outcome                                         |
|------------------------------------------|-------------------------------------------------|
| handler returns                          | `Ack`                                           |
| transient, attempt < max                 | `Retry(delay)`                                  |
| transient, attempt >= max, dead          | `DeadLetter("retries_exhausted")`               |
| transient, attempt >= max, not dead      | `Discard("retries_exhausted")`                  |
| permanent, dead                          | `DeadLetter("permanent_error")`                 |
| permanent, not dead                      | `Discard("permanent_error")`                    |
| error in the job's `permanent_errors`    | as permanent (a `TransientJobError` is not)     |
| body not JSON / not a job message        | `DeadLetter("poison_message")`                  |
| body nested deeper than `MAX_NESTING`    | `DeadLetter("poison_message")`                  |
| payload fails the job's type             | as permanent, reason `"invalid_payload"`        |
| job name not registered                  | `Retry(None)`, then `DeadLetter("unknown_job")` |
| FIFO: group blocked earlier in the batch | `Defer("fifo_group_blocked")`, not run          |
| Lambda time nearly out                   | `Defer("time_budget")`, not run                 |
| record without a usable `messageId`      | `Defer("unreadable_record")`, not reportable    |

Whatever the handler raises is data, `asyncio.CancelledError` included. Only
`KeyboardInterrupt`, `SystemExit` and `GeneratorExit` pass through (the
process is stopping; the record is neither deleted nor dead-lettered, so
SQS redelivers it after its visibility timeout). `classify_error` says which
rows an error follows, first rule first:

1. An error glasswork made itself keeps its row: a body that is not a job
   message is poison, a payload that does not fit is `"invalid_payload"`, an
   unknown job name is retried with the default policy.
2. A `PermanentJobError` (subclasses included) is permanent.
3. A `TransientJobError` (subclasses included) is transient, even when its
   type is also one of the job's `permanent_errors`: raising it is the
   handler saying "try again", the most specific statement there is.
4. An instance of one of the job's `permanent_errors` (`define_job(...,
   permanent_errors=(ValueError, KeyError))`, subclasses included) is
   permanent: dead-lettered at once, or discarded when the job does not
   dead-letter, exactly as a `PermanentJobError`.
5. Anything else is transient.

The default retry policy: 25 attempts, then dead-letter, with exponential
backoff and full jitter, `Backoff(base=2 s, factor=2, max=900 s)`: the wait
after attempt n is drawn uniformly from `[0, min(900, 2 * 2**(n-1))]`
seconds and applied with `ChangeMessageVisibility`. Why these numbers:

- 25 attempts is what glasswork for TypeScript does, so a job behaves the
  same whichever side enqueued it. With this backoff they span about 2 hours
  on average and 4 hours at most (the ceilings add up to 14,522 s: 1,022 s
  for the nine doubling waits, then 15 waits of at most 900 s): long enough
  to ride out a deploy, a failover or a throttled API, short enough that a
  job whose dependency is gone for good reaches the DLQ the same day.
- The 900 s cap is SQS's own ceiling for a message delay (`DelaySeconds`),
  keeps a recovered dependency from waiting more than 15 minutes for its
  jobs, and keeps the whole run far inside the queue's retention (4 days by
  default; a message whose retention runs out is deleted by SQS, never
  dead-lettered). A 12-hour cap, the most `ChangeMessageVisibility` allows,
  would let 25 attempts take up to 5 days: past that retention.
- The 2 s base retries a blip (a reset connection, one throttled call) at
  once: the first wait is 0-2 s, the next 0-4 s. Full jitter (the AWS
  Architecture Blog's "exponential backoff and jitter") spreads the retries
  of a batch that failed together.
- Peers: Celery retries 3 times, 180 s apart (`max_retries=3`,
  `default_retry_delay=180`; `retry_backoff=True` gives exponential backoff
  capped at 600 s with full jitter); Dramatiq retries 20 times, exponential
  from 15 s to at most 7 days with jitter (25 to 46 days in all); RQ retries only
  when asked (`Retry(max=..., interval=0)`); Powertools has no retry policy:
  SQS redelivers after the visibility timeout until `maxReceiveCount`.

The queue's `maxReceiveCount` must stay above every job's attempts, with a
margin: SQS counts every receive, also those that ran nothing (a record
deferred by the time guard or by its FIFO group, a crashed or timed-out
invocation, a receive Lambda throttled). The example SAM template uses 35
for the default 25 attempts; the worker warns, once per source queue at its
first failure, when the queue allows fewer receives than a job's attempts.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Final, Generic, Literal, Protocol, TypeAlias, TypeVar, Union

import msgspec

from glasswork._runtime import is_awaitable, run_on_thread_loop
from glasswork._wire import (
    ENVELOPE_DECODER,
    JSON_DECODER,
    MAX_MESSAGE_BYTES,
    MAX_NESTING,
    JobEnvelope,
    JobExecution,
    SQSRecord,
    as_record,
    lambda_record,
    nested_deeper_than,
    read_count,
)
from glasswork.context import NO_SERVICES, JobContext, LambdaContext, Services
from glasswork.errors import (
    InvalidJobPayloadError,
    MalformedMessageError,
    PermanentJobError,
    RetryExhaustedError,
    TransientJobError,
    UnknownJobError,
)

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_OPTIONS",
    "DEFAULT_POLICY",
    "MAX_DELAY_SECONDS",
    "Ack",
    "AsyncRunner",
    "Backoff",
    "DeadLetter",
    "DeadLetterReason",
    "Decision",
    "Defer",
    "Discard",
    "Duration",
    "ErrorKind",
    "Job",
    "JobTable",
    "Outcome",
    "PayloadDecoder",
    "PermanentErrors",
    "RecordOptions",
    "RecordResult",
    "Retry",
    "RetryPolicy",
    "RetrySpec",
    "Runner",
    "backoff_delay",
    "call_handler",
    "call_handler_async",
    "classify_error",
    "decide_retry",
    "decode_message",
    "normalize_retry",
    "process_record",
    "process_record_async",
    "to_seconds",
]

P = TypeVar("P")
P_co = TypeVar("P_co", covariant=True)

DEFAULT_MAX_ATTEMPTS: Final = 25
MAX_DELAY_SECONDS: Final = 43_200
"""SQS's visibility timeout ceiling (12 hours); no backoff goes past it.

SQS counts those 12 hours from the receive, so the SQS driver clamps a
`ChangeMessageVisibility` a little lower (`glasswork.drivers.sqs.MAX_BACKOFF_SECONDS`).
"""

Duration: TypeAlias = float | timedelta
"""A duration in seconds or as a `timedelta`; accepted everywhere."""


def to_seconds(value: Duration) -> float:
    """Return a duration in seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


# --- the retry policy -----------------------------------------------------------


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential backoff with full jitter: `uniform(0, min(max, base * factor**(n-1)))`.

    `Backoff()` is the default policy's backoff (`DEFAULT_BACKOFF`; the
    module docstring says why these numbers).

    Attributes:
        base: The first delay's ceiling (seconds or `timedelta`).
        factor: The growth factor per attempt.
        max: The ceiling of any delay; never above 12 hours.
    """

    base: Duration = 2.0
    factor: float = 2.0
    max: Duration = 900.0

    def __post_init__(self) -> None:
        numbers = (to_seconds(self.base), to_seconds(self.max), self.factor)
        if not all(math.isfinite(n) for n in numbers) or numbers[0] < 0 or numbers[1] < 0 or self.factor < 1:
            msg = f"Backoff needs finite base >= 0, max >= 0 and factor >= 1, got {self!r}"
            raise ValueError(msg)


DEFAULT_BACKOFF: Final = Backoff()
"""The default delay between attempts: base 2 s, factor 2, at most 900 s, full jitter."""


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How often a job is tried and what happens when it keeps failing.

    Attributes:
        max_attempts: Attempts before the job is dead-lettered or discarded.
        dead: Dead-letter when attempts run out (or on a permanent error);
            `False` discards instead (logged).
        backoff: Delay between attempts, by default `DEFAULT_BACKOFF`
            (exponential, full jitter); `None` keeps the queue's visibility
            timeout (no `ChangeMessageVisibility`).
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    dead: bool = True
    backoff: Backoff | None = DEFAULT_BACKOFF

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            msg = f"max_attempts must be >= 1, got {self.max_attempts} (use retry=False)"
            raise ValueError(msg)


RetrySpec: TypeAlias = RetryPolicy | int | bool | None
"""What `define_job(retry=...)` accepts; see `normalize_retry`."""

DEFAULT_POLICY: Final = RetryPolicy()
_NO_RETRY: Final = RetryPolicy(max_attempts=1, dead=False)


def normalize_retry(retry: RetrySpec) -> RetryPolicy:
    """Turn `define_job`'s `retry` option into a `RetryPolicy`.

    `None` or `True`: 25 attempts then dead-letter. `n`: n attempts then
    dead-letter (`n <= 0` behaves as `False`). Both back off with
    `DEFAULT_BACKOFF`. `False`: one attempt, discard on failure.
    """
    if retry is None or retry is True:
        return DEFAULT_POLICY
    if retry is False:
        return _NO_RETRY
    if isinstance(retry, RetryPolicy):
        return retry
    if isinstance(retry, int):
        return RetryPolicy(max_attempts=retry) if retry > 0 else _NO_RETRY
    msg = f"retry must be None, a bool, an int or a RetryPolicy, got {type(retry).__name__}"
    raise TypeError(msg)


# --- jobs -------------------------------------------------------------------------

Handler: TypeAlias = Callable[[P, JobContext], object | Awaitable[object]]
PermanentErrors: TypeAlias = tuple[type[BaseException], ...]
"""Exception types a job treats as permanent (`define_job(permanent_errors=...)`)."""


class PayloadDecoder(Protocol[P_co]):
    """Converts a JSON payload to a job's type: a `msgspec.json.Decoder`, or a pydantic model's validator.

    `decode` raises `ValueError` (or `RecursionError`) for a payload that does not fit.
    """

    def decode(self, buf: bytes | str, /) -> P_co:
        """The payload `buf` (JSON) converted to the job's type."""
        ...


class Job(msgspec.Struct, Generic[P], frozen=True, kw_only=True):
    """A named unit of work. Made by `define_job`; enqueue it with `JobService`.

    Attributes:
        name: The name on the wire (`jobName`); unique within a module tree.
        handler: `handler(payload, ctx)`, a `def` or an `async def`.
        payload_type: The type the decoded JSON payload is converted to, or
            `None` to pass the decoded JSON through unchanged.
        retry: The normalized retry policy.
        queue: The queue this job is sent to, or `None` for the service's default.
        unique: Payload -> deduplication key (also the job id).
        group: Payload -> FIFO message group.
        schedule: For periodic jobs, an EventBridge `rate(...)`/`cron(...)` expression.
        is_async: Whether the handler is an `async def`.
        permanent_errors: Exception types (subclasses included) that follow
            the permanent rows, as a `PermanentJobError` does; a
            `TransientJobError` stays transient (see `classify_error`).
        decoder: Decodes a JSON payload to `payload_type` (`None`: untyped):
            a `msgspec.json.Decoder`, or for a pydantic model a validator
            calling `model_validate_json`.
        envelope_type: The body of this job as one Struct, tagged by `jobName`,
            so that a `JobTable` reads the body of any of its jobs in one decode
            (for a pydantic model, the Struct validates its raw payload as it
            is decoded).
    """

    name: str
    handler: Handler[P]
    payload_type: type[P] | None = None
    retry: RetryPolicy = DEFAULT_POLICY
    queue: str | None = None
    unique: Callable[[P], str] | None = None
    group: Callable[[P], str] | None = None
    schedule: str | None = None
    is_async: bool = False
    permanent_errors: PermanentErrors = ()
    decoder: PayloadDecoder[P] | None = None
    envelope_type: type[msgspec.Struct] | None = None

    def __repr__(self) -> str:
        return f"Job(name={self.name!r})"


class _NoJob(msgspec.Struct, frozen=True, tag_field="jobName", tag=""):
    """A second member for a one-job union; no job is named "" (`define_job` refuses it).

    A lone tagged Struct decodes a body without its tag field as itself, so a
    one-job module would run a body with no `jobName`; in a union the tag is
    required, and such a body goes the slow way, which calls it poison.
    """


class JobTable:
    """Jobs by name, and the one decoder that reads the body of any of them.

    The decoder is a msgspec tagged union on `jobName` of every job's
    `envelope_type`: one pass finds the job and converts its payload. A job
    without one, or whose one is tagged with another name (a `Job` renamed
    with `msgspec.structs.replace`), is read by the slower two-step path.
    `JobRegistry` (built from a module tree) is a `JobTable`.
    """

    __slots__ = ("_by_type", "decoder", "jobs")

    def __init__(self, jobs: Iterable[Job[Any]]) -> None:
        self.jobs: dict[str, Job[Any]] = {job.name: job for job in jobs}
        self._by_type: dict[type, Job[Any]] = {
            job.envelope_type: job
            for job in self.jobs.values()
            if job.envelope_type is not None and job.envelope_type.__struct_config__.tag == job.name
        }
        types = tuple(self._by_type)
        if len(types) == 1:  # msgspec requires the tag only of a union: keep `jobName` required
            types = (*types, _NoJob)
        self.decoder: msgspec.json.Decoder[Any] | None = (
            msgspec.json.Decoder(Union[types]) if types else None  # noqa: UP007  # a runtime union of classes
        )

    def get(self, name: str) -> Job[Any] | None:
        """The job registered under `name`, if any."""
        return self.jobs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.jobs

    def __len__(self) -> int:
        return len(self.jobs)


# --- outcomes ---------------------------------------------------------------------

ErrorKind: TypeAlias = Literal["transient", "permanent"]
DeadLetterReason: TypeAlias = Literal[
    "permanent_error", "retries_exhausted", "invalid_payload", "poison_message", "unknown_job"
]


class Ack(msgspec.Struct, frozen=True, tag=True):
    """Success: the message is deleted."""


class Retry(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Report the record failed so SQS redelivers it.

    Attributes:
        delay: Seconds until the redelivery (`ChangeMessageVisibility`), or
            `None` to keep the queue's visibility timeout.
        error: The error that caused the retry.
    """

    delay: int | None
    error: BaseException


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Send the message to the dead-letter queue, then delete it.

    Attributes:
        reason: Why (`"permanent_error"`, `"retries_exhausted"`,
            `"invalid_payload"`, `"poison_message"` or `"unknown_job"`).
        error: The error behind it (for `"retries_exhausted"`, a
            `RetryExhaustedError` whose `__cause__` is what the handler raised).
    """

    reason: DeadLetterReason
    error: BaseException


class Discard(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Delete the message without dead-lettering it (logged).

    Attributes:
        reason: Why, as for `DeadLetter` (a job whose policy does not dead-letter).
        error: The error behind it.
    """

    reason: DeadLetterReason
    error: BaseException


class Defer(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Not run: reported failed so SQS redelivers it, no hooks.

    Attributes:
        reason: `"fifo_group_blocked"` (an earlier record of its FIFO group
            was reported failed in this batch), `"time_budget"` (less Lambda
            time left than the time margin) or `"unreadable_record"` (no
            usable `messageId`: it cannot be reported, only logged).
    """

    reason: Literal["fifo_group_blocked", "time_budget", "unreadable_record"]


Decision: TypeAlias = Retry | DeadLetter | Discard
"""What `decide_retry` returns for a failed attempt."""
Outcome: TypeAlias = Ack | Retry | DeadLetter | Discard | Defer
"""What becomes of a record."""

ACK: Final = Ack()
_DEFER_GROUP: Final = Defer(reason="fifo_group_blocked")
_DEFER_TIME: Final = Defer(reason="time_budget")
_DEFER_UNREADABLE: Final = Defer(reason="unreadable_record")


# --- decisions --------------------------------------------------------------------


def classify_error(error: BaseException, permanent: PermanentErrors = ()) -> ErrorKind:
    """Whether an error follows the permanent or the transient rows of the table.

    Args:
        error: What the handler raised.
        permanent: The job's `permanent_errors` (default: none).

    Returns:
        `"permanent"` for a `PermanentJobError` (subclasses included), or for
        an instance of one of `permanent` that is not a `TransientJobError`
        (an explicit `TransientJobError` stays transient); else `"transient"`.
    """
    if isinstance(error, PermanentJobError):
        return "permanent"
    if permanent and isinstance(error, permanent) and not isinstance(error, TransientJobError):
        return "permanent"
    return "transient"


def backoff_delay(backoff: Backoff, attempt: int, jitter: float) -> int:
    """The delay in whole seconds before attempt `attempt + 1`.

    `jitter` in `[0, 1]` scales the exponential ceiling (full jitter); a
    jitter outside it (or NaN) is clamped. The result never exceeds
    `backoff.max` nor 12 hours, and for a fixed jitter it never decreases as
    `attempt` grows.
    """
    # Comparisons rather than to_seconds/min/max calls: with the default policy this runs for every retry.
    given_cap, given_base = backoff.max, backoff.base
    cap = given_cap.total_seconds() if isinstance(given_cap, timedelta) else given_cap
    cap = MAX_DELAY_SECONDS if cap > MAX_DELAY_SECONDS else cap
    base = given_base.total_seconds() if isinstance(given_base, timedelta) else given_base
    try:
        ceiling = base * float(backoff.factor) ** (attempt - 1 if attempt > 1 else 0)
    except OverflowError:
        ceiling = cap
    ceiling = cap if ceiling > cap else ceiling
    if not 0.0 <= jitter <= 1.0:  # out of range, or NaN
        jitter = 1.0 if math.isnan(jitter) else 0.0 if jitter < 0.0 else 1.0
    delay = math.ceil(ceiling * jitter)
    return delay if delay <= cap else int(cap)


def _retry_after(error: BaseException) -> float | None:
    """A `TransientJobError`'s `retry_after` when it is a usable number (NaN and negatives are ignored)."""
    value = getattr(error, "retry_after", None) if isinstance(error, TransientJobError) else None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, int | float) and value >= 0:  # NaN fails the comparison
        return float(value) if value < MAX_DELAY_SECONDS else float(MAX_DELAY_SECONDS)
    return None


def decide_retry(
    error: BaseException,
    *,
    attempt: int,
    policy: RetryPolicy,
    jitter: float = 1.0,
    job_name: str = "",
    permanent: PermanentErrors = (),
) -> Decision:
    """Decide what becomes of a failed attempt.

    Args:
        error: What the handler raised.
        attempt: The attempt that failed (1-based).
        policy: The job's retry policy.
        jitter: A number in `[0, 1]` drawn by the caller, for full jitter.
        job_name: Named in a `RetryExhaustedError`.
        permanent: The job's `permanent_errors`, as `classify_error` takes them.

    Returns:
        `Retry(delay)` while attempts remain for a transient error; otherwise
        `DeadLetter` when the policy dead-letters, else `Discard` (a
        permanent error at once, reason `"permanent_error"`, or
        `"invalid_payload"` for an `InvalidJobPayloadError`). A
        `retry_after` above 12 hours (infinity included) is clamped to 12
        hours; one that is not a number `>= 0` is ignored for the policy's backoff.
    """
    # `classify_error(error, permanent) == "permanent"`, inline: this runs for every failure.
    if isinstance(error, PermanentJobError) or (
        permanent and isinstance(error, permanent) and not isinstance(error, TransientJobError)
    ):
        reason: DeadLetterReason = (
            "invalid_payload" if isinstance(error, InvalidJobPayloadError) else "permanent_error"
        )
        if policy.dead:
            return DeadLetter(reason=reason, error=error)
        return Discard(reason=reason, error=error)
    if attempt >= policy.max_attempts:
        exhausted = RetryExhaustedError(
            job_name=job_name, attempt_number=attempt, max_attempts=policy.max_attempts
        )
        exhausted.__cause__ = error
        if policy.dead:
            return DeadLetter(reason="retries_exhausted", error=exhausted)
        return Discard(reason="retries_exhausted", error=exhausted)
    retry_after = _retry_after(error)
    if retry_after is not None:
        delay: int | None = MAX_DELAY_SECONDS if retry_after >= MAX_DELAY_SECONDS else math.ceil(retry_after)
    elif policy.backoff is not None:
        delay = backoff_delay(policy.backoff, attempt, jitter)
    else:
        delay = None
    return Retry(delay=delay, error=error)


# --- records ----------------------------------------------------------------------


class RecordResult(msgspec.Struct, frozen=True, gc=False):
    """What became of one record.

    Attributes:
        message_id: The record's `messageId` (`""` when it has none usable).
        outcome: The decision.
        attempt: The attempt number (0 when the record was not read).
        group: The FIFO `MessageGroupId`, if any.
        job: The job, when the body named a registered one.
        context: The attempt's context (what the handler got or would have
            got), when the job is known.
        ran: Whether the handler was called.
        raw: The record as given to `process_record`.

    Not tracked by the garbage collector (`gc=False`): a result is never
    part of a reference cycle, and a batch makes one per record. Unlike the
    other values it may be built positionally, in the order above: the
    pipeline builds one per record and positional arguments cost less.
    """

    message_id: str
    outcome: Outcome
    attempt: int
    group: str | None = None
    job: Job[Any] | None = None
    context: JobContext | None = None
    ran: bool = False
    raw: object = None

    @property
    def record(self) -> SQSRecord:
        """The record as an `SQSRecord` (built on access; see `as_record`)."""
        return as_record(self.raw, self.message_id)

    @property
    def execution(self) -> JobExecution | None:
        """The attempt as hooks see it, when the job is known."""
        return self.context.execution if self.context is not None else None


def _full_jitter() -> float:
    """The jitter of `RecordOptions` by default: 1, the top of the backoff's range (deterministic)."""
    return 1.0


class RecordOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What `process_record` needs besides the record that stays the same for a batch.

    Attributes:
        services: `ctx.services`.
        lambda_context: `ctx.lambda_context`.
        time_margin_ms: Do not start a record with less Lambda time left than this.
        max_body_bytes: A larger body is poison, not decoded.
        default_policy: The policy of a job name that is not registered.
        jitter: Draws the backoff's full-jitter factor in `[0, 1]`, called
            only when a retry is decided (the randomness is injected, never
            drawn by the core itself).
    """

    services: Services = NO_SERVICES
    lambda_context: LambdaContext | None = None
    time_margin_ms: int = 0
    max_body_bytes: int = MAX_MESSAGE_BYTES
    default_policy: RetryPolicy = DEFAULT_POLICY
    jitter: Callable[[], float] = _full_jitter


Runner: TypeAlias = Callable[[Job[Any], object, JobContext], object]
"""Runs a job's handler: `run(job, payload, ctx)`; whatever it raises is the job's failure."""
AsyncRunner: TypeAlias = Callable[[Job[Any], object, JobContext], Awaitable[object]]
"""`Runner` for `process_record_async`."""

DEFAULT_OPTIONS: Final = RecordOptions()
_ATTEMPTS: Final[dict[object, int]] = {str(n): n for n in range(1, 101)}
_NO_GROUPS: Final[frozenset[str]] = frozenset()
_EMPTY: Final[Mapping[str, object]] = MappingProxyType({})
_STOP: Final = (KeyboardInterrupt, SystemExit, GeneratorExit)
_SCAN_ABOVE: Final = 2 * MAX_NESTING
"""A body this long or shorter cannot nest deeper than `MAX_NESTING` (see `nested_deeper_than`)."""
_new_context: Final = object.__new__


def _record_group(record: object) -> str | None:
    """A record's FIFO `MessageGroupId`, read as `process_record` reads it (`None`: no group)."""
    return _group(_attributes(_fields(record)))


def _fields(record: object) -> Mapping[str, object]:
    if type(record) is dict or isinstance(record, Mapping):
        return record
    if isinstance(record, SQSRecord):
        return lambda_record(record)
    return _EMPTY


def _attributes(fields: Mapping[str, object]) -> Mapping[str, object]:
    attributes = fields.get("attributes")
    if type(attributes) is dict or isinstance(attributes, Mapping):
        return attributes
    return _EMPTY


def _group(attributes: Mapping[str, object]) -> str | None:
    group = attributes.get("MessageGroupId")
    return group if type(group) is str else None


def _context(  # noqa: PLR0917  # positional: the slow path's one call site
    job: Job[Any],
    payload: object,
    envelope: object,
    message_id: str,
    attempt: int,
    group: str | None,
    record: object,
    options: RecordOptions,
) -> JobContext:
    """A record's `JobContext`, ready to run: the job and what `RecordResult` needs ride on it."""
    ctx: JobContext = _new_context(JobContext)
    ctx.services = options.services
    ctx.lambda_context = options.lambda_context
    ctx._execution = None
    ctx._logger = None
    ctx._job = job
    ctx._payload = payload
    ctx._envelope = envelope
    ctx._message_id = message_id
    ctx._attempt = attempt
    ctx._group = group
    ctx._record = record
    return ctx


class _Header(msgspec.Struct, frozen=True, kw_only=True):
    """What `_prepare` read of a record before its body, for the slow path."""

    message_id: str
    attempt: int
    group: str | None
    raw: object
    options: RecordOptions

    def result(
        self, outcome: Outcome, job: Job[Any] | None = None, ctx: JobContext | None = None
    ) -> RecordResult:
        return RecordResult(
            message_id=self.message_id,
            outcome=outcome,
            attempt=self.attempt,
            group=self.group,
            job=job,
            context=ctx,
            raw=self.raw,
        )

    def context(self, job: Job[Any], payload: object, envelope: object) -> JobContext:
        return _context(
            job,
            payload,
            envelope,
            self.message_id,
            self.attempt,
            self.group,
            self.raw,
            self.options,
        )


def _read_slowly(head: _Header, body: object, jobs: JobTable) -> JobContext | RecordResult:
    """Tell apart what the one-pass decode refused: poison, unknown job, invalid payload.

    A body can also pass here that the one-pass decode refused for a reason
    the two steps accept (a missing `payload` for a job whose type allows
    `null`); it then runs like any other.
    """
    limit = head.options.max_body_bytes
    if type(body) is not str:
        kind = type(body).__name__
        error = MalformedMessageError(f"message {head.message_id}: body is {kind}, not a string")
        return head.result(DeadLetter(reason="poison_message", error=error))
    size = len(body.encode("utf-8", "surrogatepass")) if len(body) * 4 > limit else 0
    if size > limit:
        error = MalformedMessageError(
            f"message {head.message_id}: body is {size} bytes, over the limit of {limit}"
        )
        return head.result(DeadLetter(reason="poison_message", error=error))
    if nested_deeper_than(body):
        error = MalformedMessageError(
            f"message {head.message_id}: not a glasswork job message: nested deeper than {MAX_NESTING} levels"
        )
        return head.result(DeadLetter(reason="poison_message", error=error))
    try:
        envelope = ENVELOPE_DECODER.decode(body)
    except (ValueError, RecursionError) as exc:
        return _poison(head, body, jobs, exc)
    job = jobs.jobs.get(envelope.job_name)
    if job is None:
        unknown = UnknownJobError(envelope.job_name)
        if head.attempt < head.options.default_policy.max_attempts:
            return head.result(Retry(delay=None, error=unknown))
        return head.result(DeadLetter(reason="unknown_job", error=unknown))
    try:
        payload = (job.decoder or JSON_DECODER).decode(envelope.payload)
    except (ValueError, RecursionError) as exc:
        reason = _reason(exc)
        invalid = InvalidJobPayloadError(f"job {job.name!r}: invalid payload: {reason}", job_name=job.name)
        invalid.__cause__ = exc
        decision = decide_retry(invalid, attempt=head.attempt, policy=job.retry, job_name=job.name)
        return head.result(decision, job, head.context(job, None, envelope))
    return head.context(job, payload, envelope)


def _reason(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error)


def _poison(head: _Header, body: str, jobs: JobTable, error: BaseException) -> RecordResult:
    reason = _reason(error)
    failure = MalformedMessageError(f"message {head.message_id}: not a glasswork job message: {reason}")
    failure.__cause__ = error
    outcome = DeadLetter(reason="poison_message", error=failure)
    try:
        loose = JSON_DECODER.decode(body)
    except (ValueError, RecursionError):
        return head.result(outcome)
    name = loose.get("jobName") if isinstance(loose, dict) else None
    job = jobs.jobs.get(name) if isinstance(name, str) else None
    if job is None:
        return head.result(outcome)
    return head.result(outcome, job, head.context(job, loose.get("payload"), None))


def _finish(ctx: JobContext, error: BaseException, options: RecordOptions) -> RecordResult:
    """The result of a record whose handler raised `error`."""
    job: Job[Any] = ctx._job
    decision = decide_retry(
        error,
        attempt=ctx._attempt,
        policy=job.retry,
        jitter=options.jitter(),
        job_name=job.name,
        permanent=job.permanent_errors,
    )
    return RecordResult(ctx._message_id, decision, ctx._attempt, ctx._group, job, ctx, True, ctx._record)


def _succeeded(ctx: JobContext) -> RecordResult:
    """The result of a record whose handler ran with `ctx` and returned."""
    return RecordResult(ctx._message_id, ACK, ctx._attempt, ctx._group, ctx._job, ctx, True, ctx._record)


def call_handler(job: Job[Any], payload: object, ctx: JobContext) -> object:
    """The default runner: call the handler; an `async def` handler runs on this thread's event loop."""
    returned = job.handler(payload, ctx)
    if returned is not None and is_awaitable(returned):
        return run_on_thread_loop(returned)
    return returned


async def call_handler_async(job: Job[Any], payload: object, ctx: JobContext) -> object:
    """The default async runner: call the handler and await what it returns, if awaitable."""
    returned = job.handler(payload, ctx)
    if returned is not None and is_awaitable(returned):
        return await returned
    return returned


class _Hold:
    """The type of `_HOLD`."""

    __slots__ = ()


_HOLD: Final = _Hold()
"""A `_run_record` runner that runs nothing: it returns the context to run instead (the async path)."""


def _run_record(  # noqa: PLR0915, PLR0917  # the hot path in one frame; positional: called per record
    record: object,
    jobs: JobTable,
    run: Runner | _Hold | None,
    blocked_groups: Container[str],
    time_left_ms: int | None,
    options: RecordOptions,
) -> RecordResult | JobContext:
    """`process_record` with positional arguments, as the worker's loop calls it once per record.

    The common record (a dict, a string `ApproximateReceiveCount`, the body of
    a registered job) takes one decode; whatever that decode refuses goes to
    `_read_slowly`, which says why. `run=None` calls the handler itself, as
    `call_handler` would, without the runner's extra call (the worker passes
    it when it has no start hook); `run=_HOLD` stops before the handler and
    returns the context to run (`_run_record_async` awaits the handler then).

    Returns:
        The record's `RecordResult`; or, when the handler ran and returned,
        the `JobContext` it ran with, which stands for `_succeeded(ctx)`: the
        worker builds that result only when it reports or logs successes.
        With `run=_HOLD`, the `JobContext` is the record ready to run.
    """
    ready: JobContext | RecordResult | None = None
    fields = record if type(record) is dict else _fields(record)
    try:  # subscripts: the common record has every key; the KeyError path reads the same with .get
        message_id = fields["messageId"]
        body = fields["body"]
        attributes = fields["attributes"]
    except KeyError:
        message_id, body, attributes = fields.get("messageId"), fields.get("body"), fields.get("attributes")
    if type(message_id) is not str or not message_id:
        return RecordResult(message_id="", outcome=_DEFER_UNREADABLE, attempt=0, raw=record)
    if type(attributes) is not dict:
        attributes = _attributes(fields)
    try:
        attempt = _ATTEMPTS[attributes["ApproximateReceiveCount"]]
    except (KeyError, TypeError):  # absent, unhashable, over 100 or not ASCII digits
        attempt = max(read_count(attributes.get("ApproximateReceiveCount")) or 1, 1)
    group = attributes.get("MessageGroupId")
    if type(group) is not str:
        group = None
    elif group in blocked_groups:
        return RecordResult(
            message_id=message_id, outcome=_DEFER_GROUP, attempt=attempt, group=group, raw=record
        )
    if time_left_ms is not None and time_left_ms < options.time_margin_ms:
        return RecordResult(
            message_id=message_id, outcome=_DEFER_TIME, attempt=attempt, group=group, raw=record
        )
    decoder = jobs.decoder
    if type(body) is str and decoder is not None and len(body) * 4 <= options.max_body_bytes:
        try:
            envelope = decoder.decode(body)
        except (ValueError, RecursionError):
            pass
        else:  # a body too deep to accept, whatever this stack allowed, goes the slow way, which says so
            found = jobs._by_type.get(type(envelope))  # the table's own index; None: `_NoJob`
            if found is not None and (len(body) <= _SCAN_ABOVE or not nested_deeper_than(body)):
                fresh: JobContext = _new_context(JobContext)  # as _context does, inline: the hot path
                fresh.services = options.services
                fresh.lambda_context = options.lambda_context
                fresh._execution = None
                fresh._logger = None
                fresh._job = found
                fresh._payload = envelope.payload
                fresh._envelope = envelope
                fresh._message_id = message_id
                fresh._attempt = attempt
                fresh._group = group
                fresh._record = record
                ready = fresh
    if ready is None:
        head = _Header(message_id=message_id, attempt=attempt, group=group, raw=record, options=options)
        ready = _read_slowly(head, body, jobs)
    if type(ready) is RecordResult or run is _HOLD:
        return ready
    ctx: JobContext = ready  # type: ignore[assignment]  # neither a RecordResult nor None here
    job: Job[Any] = ctx._job
    try:
        if run is None:
            returned = job.handler(ctx._payload, ctx)
            if returned is not None and is_awaitable(returned):
                run_on_thread_loop(returned)
        else:
            run(job, ctx._payload, ctx)  # type: ignore[operator]  # not _HOLD: returned above
    except _STOP:
        raise
    except BaseException as exc:  # noqa: BLE001  # whatever a job raises is data, CancelledError included
        return _finish(ctx, exc, options)
    return ctx


async def _run_record_async(  # noqa: PLR0917  # positional, as `_run_record`
    record: object,
    jobs: JobTable,
    run: AsyncRunner,
    blocked_groups: Container[str],
    time_left_ms: int | None,
    options: RecordOptions,
) -> RecordResult:
    """`_run_record` with an awaited runner: the same `_prepare` and `_finish` around `await run(...)`."""
    ctx = _run_record(record, jobs, _HOLD, blocked_groups, time_left_ms, options)
    if type(ctx) is not JobContext:
        return ctx  # type: ignore[return-value]  # the other arm of the union
    try:
        await run(ctx._job, ctx._payload, ctx)
    except _STOP:
        raise
    except BaseException as exc:  # noqa: BLE001  # whatever a job raises is data, CancelledError included
        return _finish(ctx, exc, options)
    return _succeeded(ctx)


def process_record(
    record: object,
    jobs: JobTable,
    *,
    run: Runner = call_handler,
    jitter: float | None = None,
    blocked_groups: Container[str] = _NO_GROUPS,
    time_left_ms: int | None = None,
    options: RecordOptions = DEFAULT_OPTIONS,
) -> RecordResult:
    """Run one record through the pipeline: read, decode, find the job, run, decide.

    Args:
        record: One record of a Lambda SQS event, as Lambda delivers it (a
            dict), or an `SQSRecord`. Any value is accepted: what cannot be
            read gets its outcome from the table.
        jobs: The jobs (a `JobRegistry` or `JobTable`).
        run: Runs the handler (the one effect, injected): `run(job, payload, ctx)`.
        jitter: A number in `[0, 1]` for the backoff's full jitter, drawn by
            the caller; `None` draws it with `options.jitter` (by default 1,
            the top of the range), and only for a retry.
        blocked_groups: FIFO message groups in which an earlier record of
            this batch was reported failed.
        time_left_ms: Milliseconds of Lambda time left (`None`: no limit).
        options: Services, Lambda context, time margin and limits (`RecordOptions`).

    Returns:
        The record's result; performing it (delete, dead-letter, visibility)
        and firing hooks is the caller's business. Never raises, but for
        `KeyboardInterrupt`, `SystemExit` and `GeneratorExit` from `run`.
    """
    if jitter is not None:
        options = msgspec.structs.replace(options, jitter=lambda: jitter)
    result = _run_record(record, jobs, run, blocked_groups, time_left_ms, options)
    return result if type(result) is RecordResult else _succeeded(result)  # type: ignore[arg-type]  # a JobContext


async def process_record_async(
    record: object,
    jobs: JobTable,
    *,
    run: AsyncRunner = call_handler_async,
    jitter: float | None = None,
    blocked_groups: Container[str] = _NO_GROUPS,
    time_left_ms: int | None = None,
    options: RecordOptions = DEFAULT_OPTIONS,
) -> RecordResult:
    """`process_record` with an awaited runner (`async def` jobs run concurrently in a shell of yours)."""
    if jitter is not None:
        options = msgspec.structs.replace(options, jitter=lambda: jitter)
    return await _run_record_async(record, jobs, run, blocked_groups, time_left_ms, options)


def decode_message(body: str | bytes) -> JobEnvelope:
    """Decode a message body to a `JobEnvelope` (payload left raw).

    Raises:
        MalformedMessageError: The body is not JSON, not a job message, or nested too deeply.
    """
    try:
        return ENVELOPE_DECODER.decode(body)
    except (ValueError, RecursionError) as exc:
        msg = f"not a glasswork job message: {_reason(exc)}"
        raise MalformedMessageError(msg) from exc
