"""Amazon SQS, off the hot path: EventBridge Scheduler and dead-letter administration.

`SQSAdminMixin` holds the parts of `glasswork.drivers.sqs.SQSQueueDriver`
that a Lambda worker (and an enqueue with a delay of 900 s or less) never
runs. `SQSQueueDriver` inherits it, so use the methods through the driver:
`driver.cancel(...)`, `driver.list_dead_letters(...)`, `driver.redrive(...)`,
`driver.purge(...)`, `driver.scheduler`. The split is of code, not of loading:
importing `glasswork.drivers.sqs` imports this module too.

This module does not import `glasswork.drivers.sqs` (that would be an import
cycle). The mixin's methods take `self` as `SQSDriverInternals`, a protocol
naming the few internals of the driver they use (its SQS client, queue
resolution, the raw receive, ...); mypy checks that `SQSQueueDriver`
satisfies it wherever one of these methods is called on a driver. What both
modules share lives in `glasswork.drivers._sqs_common`.

Delays over 900 s (`enqueue` and `enqueue_batch` call `_schedule`): a one-off
EventBridge Scheduler schedule (`at(...)`, `ActionAfterCompletion: DELETE`)
whose target is the queue's ARN with the body as input; the returned
`message_id` is the schedule's name, which `cancel()` deletes. Scheduler's
SQS target carries the body only, not message attributes, so such a message
arrives without `JobName` (the worker reads the name from the body). Needs the
driver's `scheduler_role_arn` (a role Scheduler assumes, allowed
`sqs:SendMessage` on the queue); the driver refuses a long delay without it.

Dead-letter administration (what `glasswork dlq` runs): `list_dead_letters`
peeks at a DLQ and releases what it received, `redrive` sends each dead
letter back to its source queue and deletes it from the DLQ. And `purge`
empties a queue with `PurgeQueue`.

IAM permissions, least privilege (on the named queues only):

- Long delays: `scheduler:CreateSchedule` (and `scheduler:DeleteSchedule`
  for `cancel`) on the schedule group's schedules, `iam:PassRole` on
  `scheduler_role_arn`, and `sqs:GetQueueAttributes` on the job queue (to
  learn its ARN).
- `list_dead_letters`: `sqs:ReceiveMessage` and `sqs:ChangeMessageVisibility`
  on the DLQ; `redrive`: also `sqs:DeleteMessage` on the DLQ and
  `sqs:SendMessage` on the source queues; `purge`: `sqs:PurgeQueue` and
  `sqs:GetQueueAttributes` on the queue. Finding the DLQ from a
  `RedrivePolicy` needs `sqs:GetQueueAttributes` on the source queue.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal, Protocol, cast

from botocore.exceptions import BotoCoreError, ClientError

from glasswork._wire import EnqueueResult, JobMessage, SQSRecord
from glasswork.core import decode_message
from glasswork.drivers._sqs_common import (
    MAX_BATCH,
    SQSQueue,
    boto_attribute,
    fifo_id,
    name_of_url,
    to_record,
    translate,
    translated,
)
from glasswork.drivers.base import (
    ATTR_ATTEMPT,
    ATTR_ERROR_MESSAGE,
    ATTR_ERROR_TYPE,
    ATTR_JOB_NAME,
    ATTR_REASON,
    ATTR_SOURCE_QUEUE,
    DeadLetterEntry,
)
from glasswork.errors import DriverError, GlassworkError, MalformedMessageError

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_scheduler.type_defs import CreateScheduleInputTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageRequestTypeDef,
    )

__all__ = ["SQSAdminMixin", "SQSDriverInternals"]

_PEEK_VISIBILITY_SECONDS: Final = 30
_PEEK_WAIT_SECONDS: Final = 1
_GLASSWORK_ATTRIBUTES: Final = frozenset(
    {ATTR_REASON, ATTR_ERROR_TYPE, ATTR_ERROR_MESSAGE, ATTR_ATTEMPT, ATTR_SOURCE_QUEUE}
)


class SQSDriverInternals(Protocol):
    """What `SQSAdminMixin` uses of the driver it is mixed into (`SQSQueueDriver`).

    Not an API: these are the driver's internals, named here so that this
    module need not import `glasswork.drivers.sqs`.
    """

    _scheduler: EventBridgeSchedulerClient | None
    """The Scheduler client, `None` until `_make_client` made one."""

    @property
    def _lock(self) -> threading.RLock:
        """Guards the lazily made clients."""
        ...

    @property
    def _scheduler_role_arn(self) -> str | None: ...

    @property
    def _scheduler_group(self) -> str | None: ...

    @property
    def _clock(self) -> Callable[[], datetime]: ...

    @property
    def client(self) -> SQSClient: ...

    def _make_client(self, service: Literal["sqs", "scheduler"]) -> BaseClient: ...

    def _resolve(self, queue: str | None) -> SQSQueue: ...

    def _queue_for_arn(self, arn: str) -> SQSQueue: ...

    def _queue_arn(self, url: str) -> str: ...

    def _require_dead_letter_url(self, source: SQSQueue) -> str: ...

    def _receive_raw(
        self, url: str, count: int, visibility_timeout: int | None, wait: int
    ) -> list[MessageTypeDef]: ...

    def _counts(self, url: str) -> tuple[int, int, int]: ...


class SQSAdminMixin:
    """EventBridge Scheduler (delays over 900 s) and DLQ administration for `SQSQueueDriver`.

    Only `SQSQueueDriver` (or a class providing `SQSDriverInternals`) can use it.
    """

    # --- delays over 15 minutes: EventBridge Scheduler ----------------------------

    @property
    def scheduler(self: SQSDriverInternals) -> EventBridgeSchedulerClient:
        """The boto3 EventBridge Scheduler client (made on first use when none was given)."""
        return _scheduler_client(self)

    def _schedule(self: SQSDriverInternals, message: JobMessage, target: SQSQueue) -> EnqueueResult:
        """Send `message` through a one-off schedule (the driver checked `scheduler_role_arn` is set)."""
        assert self._scheduler_role_arn is not None  # checked by SQSQueueDriver._check_sendable
        at = self._clock() + timedelta(seconds=message.delay_seconds)
        at = at.astimezone(UTC)
        if at.microsecond:
            at = at.replace(microsecond=0) + timedelta(seconds=1)
        name = f"glasswork-{uuid.uuid4().hex}"
        params: CreateScheduleInputTypeDef = {
            "Name": name,
            "ScheduleExpression": f"at({at:%Y-%m-%dT%H:%M:%S})",
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Description": f"glasswork job {message.job_name} ({message.job_id})"[:512],
            "Target": {
                "Arn": self._queue_arn(target.url),
                "RoleArn": self._scheduler_role_arn,
                "Input": message.body,
            },
        }
        if self._scheduler_group:
            params["GroupName"] = self._scheduler_group
        with translated("CreateSchedule", target.name):
            _scheduler_client(self).create_schedule(**params)
        return EnqueueResult(message_id=name, job_id=message.job_id)

    def cancel(self: SQSDriverInternals, schedule_name: str) -> bool:
        """Cancel a delayed job sent through EventBridge Scheduler.

        Args:
            schedule_name: The `message_id` that `enqueue` returned for a
                delay over 900 seconds.

        Returns:
            `True` if the schedule was deleted, `False` if it no longer
            exists (it already fired, or was cancelled).

        Raises:
            DriverError: Scheduler refused the deletion.
        """
        try:
            if self._scheduler_group:
                _scheduler_client(self).delete_schedule(Name=schedule_name, GroupName=self._scheduler_group)
            else:
                _scheduler_client(self).delete_schedule(Name=schedule_name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise translate(exc, "DeleteSchedule", None) from exc
        except BotoCoreError as exc:
            raise translate(exc, "DeleteSchedule", None) from exc
        return True

    # --- dead-letter administration -------------------------------------------------

    def list_dead_letters(
        self: SQSDriverInternals, queue: str | None = None, *, limit: int = 100
    ) -> list[DeadLetterEntry]:
        """Peek at the messages in a queue's dead-letter queue.

        Messages are received with a 30 s visibility timeout and released
        (visibility 0) before returning, so they stay in the DLQ. Peeking
        raises their receive count; a DLQ that has its own `RedrivePolicy`
        would count it.

        Args:
            queue: The source queue (name, URL or ARN); `None` for the default.
            limit: At most this many entries.

        Returns:
            One entry per message, with the `Glasswork*` attributes when
            glasswork dead-lettered it (SQS's own redrive leaves them empty).

        Raises:
            DriverError: No dead-letter queue is known, or SQS failed.
        """
        target = self._resolve(queue)
        url = self._require_dead_letter_url(target)
        entries: dict[str, DeadLetterEntry] = {}
        handles: list[str] = []
        try:
            while len(entries) < limit:
                messages = self._receive_raw(
                    url, min(MAX_BATCH, limit - len(entries)), _PEEK_VISIBILITY_SECONDS, _PEEK_WAIT_SECONDS
                )
                fresh = 0
                for message in messages:
                    record = to_record(message, "", "")
                    handles.append(record.receipt_handle)
                    if record.message_id not in entries:
                        entries[record.message_id] = _dead_letter_entry(record)
                        fresh += 1
                if not fresh:
                    break
        finally:
            _release(self, url, handles)
        return list(entries.values())

    def redrive(self: SQSDriverInternals, queue: str | None = None) -> int:
        """Move every message of a queue's dead-letter queue back to its source queue.

        Each message is sent (original body and attributes, without the
        `Glasswork*` ones) to the queue named by its `GlassworkSourceQueue`
        attribute (or SQS's `DeadLetterQueueSourceArn`), else to `queue`,
        and then deleted from the DLQ. A FIFO source gets the message's group
        and the DLQ message id as deduplication id.

        Args:
            queue: The source queue (name, URL or ARN); `None` for the default.

        Returns:
            How many messages moved.

        Raises:
            DriverError: No dead-letter queue is known, or a send or delete
                failed (messages not yet moved stay in the DLQ, visible again).
        """
        target = self._resolve(queue)
        url = self._require_dead_letter_url(target)
        moved: set[str] = set()
        while True:
            messages = self._receive_raw(url, MAX_BATCH, _PEEK_VISIBILITY_SECONDS, _PEEK_WAIT_SECONDS)
            if not messages:
                break
            records = [to_record(message, "", "") for message in messages]
            try:
                for record in records:
                    if record.message_id not in moved:
                        _send_back(self, record, target, url)
                        moved.add(record.message_id)
            except GlassworkError:
                _delete_handles(self, url, [r.receipt_handle for r in records if r.message_id in moved])
                _release(self, url, [r.receipt_handle for r in records if r.message_id not in moved])
                raise
            _delete_handles(self, url, [record.receipt_handle for record in records])
        return len(moved)

    def purge(self: SQSDriverInternals, queue: str | None = None) -> int:
        """Delete every message of a queue with `PurgeQueue`.

        SQS allows one purge a queue every 60 seconds and may take that long
        to finish.

        Args:
            queue: The queue (name, URL or ARN); `None` for the default.

        Returns:
            The approximate number of messages it held.

        Raises:
            DriverError: SQS refused (for example a purge already in progress).
        """
        target = self._resolve(queue)
        held = sum(self._counts(target.url))
        with translated("PurgeQueue", target.name):
            self.client.purge_queue(QueueUrl=target.url)
        return held


# --- helpers --------------------------------------------------------------------


def _scheduler_client(driver: SQSDriverInternals) -> EventBridgeSchedulerClient:
    if driver._scheduler is None:
        with driver._lock:
            if driver._scheduler is None:
                driver._scheduler = cast("EventBridgeSchedulerClient", driver._make_client("scheduler"))
    return driver._scheduler


def _release(driver: SQSDriverInternals, url: str, handles: Sequence[str]) -> None:
    """Make peeked messages visible again at once (best effort)."""
    for start in range(0, len(handles), MAX_BATCH):
        chunk = handles[start : start + MAX_BATCH]
        try:
            driver.client.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(position), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for position, handle in enumerate(chunk)
                ],
            )
        except (ClientError, BotoCoreError):
            continue  # best effort: they reappear after the peek's visibility timeout anyway


def _send_back(
    driver: SQSDriverInternals, record: SQSRecord, fallback: SQSQueue, dead_letter_url: str
) -> None:
    origin = record.message_attributes.get(ATTR_SOURCE_QUEUE)
    origin_arn = origin.string_value if origin else None
    origin_arn = origin_arn or record.attributes.dead_letter_queue_source_arn
    destination = driver._queue_for_arn(origin_arn) if origin_arn else fallback
    if destination.url == dead_letter_url:
        msg = f"message {record.message_id} names its own dead-letter queue as its source; not redriven"
        raise DriverError(msg)
    attributes: dict[str, MessageAttributeValueTypeDef] = {}
    for name, value in record.message_attributes.items():
        converted = boto_attribute(value)
        if name not in _GLASSWORK_ATTRIBUTES and converted is not None:
            attributes[name] = converted
    params: SendMessageRequestTypeDef = {
        "QueueUrl": destination.url,
        "MessageBody": record.body,
        "MessageAttributes": attributes,
    }
    if destination.fifo:
        params["MessageGroupId"] = fifo_id(record.attributes.message_group_id or destination.name)
        params["MessageDeduplicationId"] = fifo_id(record.message_id)
    with translated("SendMessage (redrive)", destination.name):
        driver.client.send_message(**params)


def _delete_handles(driver: SQSDriverInternals, url: str, handles: Sequence[str]) -> None:
    for start in range(0, len(handles), MAX_BATCH):
        chunk = handles[start : start + MAX_BATCH]
        with translated("DeleteMessageBatch", name_of_url(url)):
            response = driver.client.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(position), "ReceiptHandle": h} for position, h in enumerate(chunk)],
            )
        failed = response.get("Failed", [])
        if failed:
            msg = f"could not delete {len(failed)} redriven messages from {url}: {failed}"
            raise DriverError(msg)


def _dead_letter_entry(record: SQSRecord) -> DeadLetterEntry:
    def text(name: str) -> str | None:
        value = record.message_attributes.get(name)
        return value.string_value if value is not None else None

    job_name, job_id = text(ATTR_JOB_NAME), None
    try:
        envelope = decode_message(record.body)
    except MalformedMessageError:
        pass
    else:
        job_name = job_name or envelope.job_name
        job_id = envelope.job_id or None
    attempt = text(ATTR_ATTEMPT)
    return DeadLetterEntry(
        message_id=record.message_id,
        body=record.body,
        job_name=job_name,
        job_id=job_id,
        attempt=int(attempt) if attempt and attempt.isdigit() else None,
        reason=text(ATTR_REASON),
        error_type=text(ATTR_ERROR_TYPE),
        error_message=text(ATTR_ERROR_MESSAGE),
    )
