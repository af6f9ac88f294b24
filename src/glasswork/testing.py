"""Helpers for testing jobs and handlers: Lambda SQS events and contexts as AWS sends them.

Not needed at runtime; `import glasswork` does not import this module.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from glasswork._jobs import Job
from glasswork.core import (
    JobMessage,
    SQSMessageAttribute,
    SQSRecord,
    SQSRecordAttributes,
    encode_message,
    lambda_event,
)
from glasswork.drivers.base import ATTR_JOB_NAME

__all__ = ["FakeLambdaContext", "job_body", "sqs_event", "sqs_record"]

_sequence = itertools.count(1)


def job_body(
    job: Job[Any] | str,
    payload: object = None,
    *,
    job_id: str = "job-1",
    enqueued_at: str = "2026-01-01T00:00:00.000Z",
    metadata: Mapping[str, str] | None = None,
) -> str:
    """A message body as `JobService` (or glasswork for TypeScript) would send it."""
    name = job if isinstance(job, str) else job.name
    body: dict[str, object] = {
        "jobName": name,
        "payload": msgspec.to_builtins(payload),
        "jobId": job_id,
        "enqueuedAt": enqueued_at,
    }
    if metadata:
        body["metadata"] = dict(metadata)
    return msgspec.json.encode(body).decode()


def sqs_record(
    body: str | JobMessage,
    *,
    message_id: str | None = None,
    receive_count: int | str = 1,
    group_id: str | None = None,
    queue: str = "jobs",
    region: str = "us-east-1",
    account: str = "123456789012",
    sent_timestamp: int = 1_767_225_600_000,
    message_attributes: Mapping[str, str] | None = None,
) -> SQSRecord:
    """One Lambda SQS record, field for field as AWS sends it.

    Args:
        body: The body, or a `JobMessage` to encode.
        message_id: Defaults to a fresh UUID.
        receive_count: `ApproximateReceiveCount` (the attempt number).
        group_id: Makes it a FIFO record (`MessageGroupId`, dedup and sequence numbers).
        queue: The source queue's name (`.fifo` is appended for FIFO records when missing).
        region: The region in `eventSourceARN` and `awsRegion`.
        account: The account in `eventSourceARN`.
        sent_timestamp: `SentTimestamp` in epoch milliseconds.
        message_attributes: String message attributes; `JobName` is added for job bodies.
    """
    attributes: dict[str, SQSMessageAttribute] = {}
    if isinstance(body, JobMessage):
        attributes[ATTR_JOB_NAME] = SQSMessageAttribute(string_value=body.job_name)
        text = encode_message(body).decode()
    else:
        text = body
    for key, value in (message_attributes or {}).items():
        attributes[key] = SQSMessageAttribute(string_value=value)
    message_id = message_id or str(uuid.uuid4())
    if group_id is not None and not queue.endswith(".fifo"):
        queue = f"{queue}.fifo"
    return SQSRecord(
        message_id=message_id,
        receipt_handle=f"AQEB{message_id}",
        body=text,
        attributes=SQSRecordAttributes(
            approximate_receive_count=str(receive_count),
            sent_timestamp=str(sent_timestamp),
            sender_id="AROAEXAMPLE:sender",
            approximate_first_receive_timestamp=str(sent_timestamp + 10),
            message_group_id=group_id,
            message_deduplication_id=hashlib.sha256(text.encode()).hexdigest() if group_id else None,
            sequence_number=f"{next(_sequence):020d}" if group_id else None,
        ),
        message_attributes=attributes,
        md5_of_body=hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
        event_source="aws:sqs",
        event_source_arn=f"arn:aws:sqs:{region}:{account}:{queue}",
        aws_region=region,
    )


def sqs_event(records: Iterable[SQSRecord | str]) -> dict[str, object]:
    """A Lambda SQS event (`{"Records": [...]}`) as plain dicts; bare strings become records."""
    return lambda_event(r if isinstance(r, SQSRecord) else sqs_record(r) for r in records)


class FakeLambdaContext:
    """A Lambda context whose remaining time you control.

    Args:
        remaining_ms: Milliseconds left, or a function returning them (for a
            countdown driven by your own clock).
        function_name: The function's name.
    """

    def __init__(
        self,
        remaining_ms: int | Callable[[], int] = 30_000,
        *,
        function_name: str = "glasswork-test",
        memory_limit_in_mb: int = 128,
    ) -> None:
        self._remaining = remaining_ms
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/01/01/[$LATEST]test"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left in this invocation."""
        remaining = self._remaining
        return remaining() if callable(remaining) else remaining
