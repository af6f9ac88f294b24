"""How a record of a batch ended: `Settled`, `BatchReport`, and the one log line per outcome."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final, Literal, TypeAlias, assert_never

import msgspec

from glasswork.core import Ack, DeadLetter, Defer, Discard, RecordResult, Retry

__all__ = ["BatchReport", "Disposition", "Settled", "error_text", "failed_ids", "log_outcome", "named_job"]

Disposition: TypeAlias = Literal["succeeded", "failed", "dead_lettered", "discarded"]


class Settled(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """How one record of a batch ended, after the shell acted on its outcome.

    Attributes:
        result: The pure pipeline's result.
        disposition: `succeeded`, `failed` (reported in `batchItemFailures`),
            `dead_lettered` (the DLQ send succeeded) or `discarded`.
        duration: Seconds the record took, its handler and hooks included;
            0 for a success the handler did not report or log (not measured).
    """

    result: RecordResult
    disposition: Disposition
    duration: float = 0.0

    @property
    def message_id(self) -> str:
        """The record's SQS message id (`""` for a record without one)."""
        return self.result.message_id


class BatchReport(msgspec.Struct, frozen=True, kw_only=True):
    """Every record of an SQS batch, each settled exactly once, in input order.

    A record without a usable `messageId` cannot be reported to Lambda: it is
    listed with message id `""`, logged, and left out of the response (no
    record SQS sends lacks one).
    """

    settled: list[Settled]

    @property
    def failed_ids(self) -> list[str]:
        """Message ids to report in `batchItemFailures`, in input order, without repeats."""
        return failed_ids(self.settled)

    def response(self) -> dict[str, list[dict[str, str]]]:
        """The Lambda partial batch response."""
        return {"batchItemFailures": [{"itemIdentifier": i} for i in self.failed_ids]}

    def ids(self, disposition: Disposition) -> list[str]:
        """Message ids that ended with `disposition`."""
        return [s.message_id for s in self.settled if s.disposition == disposition]


def failed_ids(settled: Sequence[Settled]) -> list[str]:
    return list(
        dict.fromkeys(
            s.result.message_id for s in settled if s.disposition == "failed" and s.result.message_id
        )
    )


def error_text(error: BaseException) -> str:
    """An error's message with its cause, cut to 1,000 characters (for logs and dead letters)."""
    text = _text(error)
    cause = error.__cause__
    if cause is not None:
        reason = _text(cause)
        if reason not in text:
            text = f"{text} (caused by {type(cause).__name__}: {reason})"
    return text[:1000]


def _text(value: object) -> str:
    """`str(value)`, or a stand-in when its `__str__` raises (a job's error may do anything)."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001  # any failure of a user's __str__ gives the stand-in
        return f"<{type(value).__name__}: str() failed>"


_LEVELS: Final[dict[Disposition, int]] = {
    "succeeded": logging.DEBUG,
    "failed": logging.INFO,
    "discarded": logging.WARNING,
    "dead_lettered": logging.ERROR,
}


def _payload_text(payload: object) -> str:
    try:
        text = msgspec.json.encode(payload).decode()
    except (msgspec.EncodeError, TypeError, ValueError, RecursionError):
        dump = getattr(payload, "model_dump_json", None)  # a pydantic model: its JSON mode
        try:
            text = dump() if callable(dump) else _repr(payload)
        except Exception:  # noqa: BLE001  # any failure gives the stand-in
            text = _repr(payload)
        if not isinstance(text, str):
            text = _repr(payload)
    return text if len(text) <= 2_000 else f"{text[:2_000]}..."


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001  # any failure of a user's __repr__ gives the stand-in
        return f"<{type(value).__name__}: repr() failed>"


def log_outcome(log: logging.Logger, item: Settled, *, log_payloads: bool = False) -> None:
    """Log how a record ended: one line, at the level of its disposition, with its fields as extras."""
    disposition = item.disposition
    result = item.result
    if not result.message_id:
        log.error("a record has no usable messageId and cannot be reported; it was not run")
        return
    level = _LEVELS[disposition]
    if not log.isEnabledFor(level):
        return
    outcome = result.outcome
    execution = result.execution
    fields: dict[str, object] = {
        "message_id": result.message_id,
        "job_name": execution.job_name if execution is not None else None,
        "job_id": execution.job_id if execution is not None else None,
        "attempt": result.attempt,
        "outcome": disposition,
        "duration_ms": round(item.duration * 1000, 3),
    }
    if log_payloads and execution is not None:
        fields["payload"] = _payload_text(execution.payload)
    detail = ""
    match outcome:
        case Retry(delay=delay, error=error):
            fields["retry_in"] = delay
            message = error_text(error)
            fields["error"] = f"{type(error).__name__}: {message}"
            when = "the visibility timeout" if delay is None else f"{delay}s"
            detail = f" ({type(error).__name__}: {message}; retry in {when})"
        case DeadLetter(reason=reason, error=error) | Discard(reason=reason, error=error):
            fields["reason"] = reason
            fields["error"] = f"{type(error).__name__}: {error_text(error)}"
            detail = f" ({reason}: {type(error).__name__}: {error_text(error)})"
        case Defer(reason=reason):
            fields["reason"] = reason
            detail = f" ({reason})"
        case Ack():
            detail = ""
        case _:
            assert_never(outcome)
    if disposition == "failed" and isinstance(outcome, DeadLetter):
        detail += " [dead-letter send failed]"
    if execution is None and not isinstance(outcome, Ack | Defer):
        fields["job_name"] = named_job(outcome.error)  # an unknown job's name, when the body gave one
    name = fields["job_name"] or "?"
    log.log(
        level,
        "job %s %s message %s attempt %d%s",
        name,
        disposition,
        result.message_id,
        result.attempt,
        detail,
        extra=fields,
    )


def named_job(error: BaseException) -> str | None:
    """The job an error names when no job ran (`UnknownJobError`, `InvalidJobPayloadError`)."""
    name = getattr(error, "job_name", None)
    return name if isinstance(name, str) else None
