"""Reading Lambda invocations: Lambda's context object and direct (EventBridge) job invocations."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import cast

from glasswork.context import LambdaContext
from glasswork.errors import InvalidEventError

__all__ = ["as_lambda_context", "direct_call"]


def as_lambda_context(context: object) -> LambdaContext | None:
    """`context` when it tells the remaining time as Lambda's does, else `None`."""
    if context is not None and callable(getattr(context, "get_remaining_time_in_millis", None)):
        return cast("LambdaContext", context)
    return None


def direct_call(event: object) -> tuple[str, object, str | None, datetime | None]:
    """The job name, payload, event id and time of a direct invocation.

    Raises:
        InvalidEventError: The event names no job, or is not a mapping.
    """
    expected = (
        "expected an SQS event ({'Records': [...]}) or a job invocation "
        "({'jobName': ..., 'payload': ...}, also under EventBridge's 'detail')"
    )
    if not isinstance(event, Mapping):
        msg = f"{expected}, got {type(event).__name__}"
        raise InvalidEventError(msg)
    source: Mapping[str, object] = event
    name = event.get("jobName")
    if name is None and isinstance(event.get("detail"), Mapping):
        source = event["detail"]
        name = source.get("jobName", source.get("name"))
    if not isinstance(name, str) or not name:
        keys = ", ".join(sorted(str(k) for k in event)) or "none"
        msg = f"{expected}; this event has keys: {keys}"
        raise InvalidEventError(msg)
    event_id = event.get("id")
    at = None
    when = event.get("time")
    if isinstance(when, str):
        try:
            at = datetime.fromisoformat(when)
        except ValueError:
            at = None
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
    return name, source.get("payload"), event_id if isinstance(event_id, str) else None, at
