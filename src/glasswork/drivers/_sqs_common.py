"""What the SQS driver's two modules share; private to them.

`glasswork.drivers.sqs` (the hot path: enqueue, worker side, local consuming)
and `glasswork.drivers.sqs_admin` (EventBridge Scheduler and dead-letter
administration) both import this module, and it imports neither, so the
package has no import cycle: `sqs` -> `sqs_admin` -> `_sqs_common`, and
`sqs` -> `_sqs_common`.

Here: the resolved queue (`SQSQueue`), SQS's batch limit, FIFO ids, the
conversion of a received message to a Lambda-shaped record (and of a record's
attributes back to boto3's shape), and the translation of botocore errors into
glasswork's (`translated`, `translate`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from glasswork._wire import SQSMessageAttribute, SQSRecord, SQSRecordAttributes
from glasswork.errors import DriverError, QueueNotFoundError, ThrottledError

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import (
        MessageAttributeValueOutputTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
    )

__all__ = [
    "MAX_BATCH",
    "THROTTLE_CODES",
    "SQSQueue",
    "boto_attribute",
    "fifo_id",
    "name_of_url",
    "to_record",
    "translate",
    "translated",
]

MAX_BATCH: Final = 10
"""Entries per SQS batch request (and messages per `ReceiveMessage`)."""
THROTTLE_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "AWS.SimpleQueueService.RequestThrottled",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "KmsThrottled",
        "KMS.ThrottlingException",
    }
)
"""Error codes (of a request or of one batch entry) that mean "throttled"."""
_NOT_FOUND_CODES: Final = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)
_FIFO_ID: Final = re.compile(r"^[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}$")


class SQSQueue(msgspec.Struct, frozen=True, kw_only=True):
    """A queue the driver resolved: its name (for messages and FIFO groups) and URL."""

    name: str
    url: str

    @property
    def fifo(self) -> bool:
        return self.url.endswith(".fifo")


def name_of_url(url: str) -> str:
    """A queue URL's last segment: the queue's name."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def fifo_id(value: str) -> str:
    """A `MessageGroupId`/`MessageDeduplicationId` SQS accepts: the value, or its SHA-256."""
    if _FIFO_ID.match(value):
        return value
    return hashlib.sha256(value.encode()).hexdigest()


def boto_attribute(value: SQSMessageAttribute) -> MessageAttributeValueTypeDef | None:
    """A Lambda-shaped attribute as boto3 sends it; `None` for list-only values (SQS reserves those)."""
    if value.string_value is not None:
        return {"DataType": value.data_type, "StringValue": value.string_value}
    if value.binary_value is not None:
        return {"DataType": value.data_type, "BinaryValue": base64.b64decode(value.binary_value)}
    return None


def _lambda_attribute(value: MessageAttributeValueOutputTypeDef) -> SQSMessageAttribute:
    binary = value.get("BinaryValue")
    return SQSMessageAttribute(
        data_type=value.get("DataType", "String"),
        string_value=value.get("StringValue"),
        binary_value=base64.b64encode(binary).decode() if binary is not None else None,
        string_list_values=list(value.get("StringListValues", [])),
        binary_list_values=[base64.b64encode(b).decode() for b in value.get("BinaryListValues", [])],
    )


def to_record(message: MessageTypeDef, arn: str, region: str) -> SQSRecord:
    """A received message shaped as Lambda's event source mapping delivers it."""
    attributes = msgspec.convert(dict(message.get("Attributes", {})), SQSRecordAttributes)
    return SQSRecord(
        message_id=message.get("MessageId", ""),
        receipt_handle=message.get("ReceiptHandle", ""),
        body=message.get("Body", ""),
        attributes=attributes,
        message_attributes={
            name: _lambda_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        md5_of_body=message.get("MD5OfBody", ""),
        event_source="aws:sqs",
        event_source_arn=arn,
        aws_region=region,
    )


def translate(exc: ClientError | BotoCoreError, action: str, queue: str | None) -> DriverError:
    """Our error for a botocore one (the caller attaches it as `__cause__`)."""
    where = f" on queue {queue!r}" if queue else ""
    if isinstance(exc, ClientError):
        error: Mapping[str, object] = exc.response.get("Error", {})
        codes = {str(error.get("Code", "")), str(error.get("QueryErrorCode", ""))}
        text = str(error.get("Message", "")) or str(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(error.get("Code", ""))
        if codes & _NOT_FOUND_CODES:
            return QueueNotFoundError(f"SQS queue {queue!r} does not exist ({action}: {code})")
        if codes & THROTTLE_CODES or status == 429:
            return ThrottledError(f"{action}{where} was throttled: {code}: {text}")
        return DriverError(f"{action}{where} failed: {code}: {text}")
    return DriverError(f"{action}{where} failed: {exc}")


@contextmanager
def translated(action: str, queue: str | None) -> Iterator[None]:
    """Raise botocore errors inside the block as `translate` says, with the original as `__cause__`."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, action, queue) from exc
