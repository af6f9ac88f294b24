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
peeks at a DLQ and releases what it received; `redrive` moves dead letters
back to their source queue, with SQS's message move task when it moves them
all and SQS offers it, else by sending each back and deleting it from the
DLQ (only the dead letters of one job, or the oldest N, always this way).
The DLQ is found as for `dead_letter` (`dead_letter_queues`, else the
source queue's `RedrivePolicy`). And `purge` empties a queue with `PurgeQueue`.

IAM permissions, least privilege (on the named queues only):

- Long delays: `scheduler:CreateSchedule` (and `scheduler:DeleteSchedule`
  for `cancel`) on the schedule group's schedules, `iam:PassRole` on
  `scheduler_role_arn`, and `sqs:GetQueueAttributes` on the job queue (to
  learn its ARN).
- `list_dead_letters`: `sqs:ReceiveMessage` and `sqs:ChangeMessageVisibility`
  on the DLQ; `redrive`: also `sqs:DeleteMessage` on the DLQ and
  `sqs:SendMessage` on the source queues, and for SQS's move task (without
  which it falls back to the above) `sqs:ListDeadLetterSourceQueues`,
  `sqs:StartMessageMoveTask`, `sqs:ListMessageMoveTasks` and
  `sqs:GetQueueAttributes` on the DLQ and `sqs:GetQueueAttributes` on the
  source queue; `purge`: `sqs:PurgeQueue` and
  `sqs:GetQueueAttributes` on the queue. Finding the DLQ from a
  `RedrivePolicy` needs `sqs:GetQueueAttributes` on the source queue.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal, Protocol, cast

import msgspec
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
        ListMessageMoveTasksResultEntryTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageRequestTypeDef,
    )

__all__ = ["SQSAdminMixin", "SQSDriverInternals"]

_PEEK_VISIBILITY_SECONDS: Final = 30
_PEEK_WAIT_SECONDS: Final = 1
_HOLD_SECONDS: Final = 300
"""A selective redrive keeps the dead letters it scanned hidden this long (released sooner)."""
_HOLD_MARGIN: Final = timedelta(seconds=20)
"""A held message is sent back only while at least this much of its hold is left."""
_MAX_HELD: Final = 20_000
"""Messages one scan holds at most (SQS caps a queue's in-flight messages, lowest on FIFO queues)."""
_MOVE_TASK_POLL_SECONDS: Final = 1.0
_MOVE_TASK_UNSEEN_POLLS: Final = 30
"""Polls after which a started move task still not listed is reported instead of waited for."""
_MOVE_TASK_ACTIVE: Final = frozenset({"RUNNING", "CANCELLING"})
_GLASSWORK_ATTRIBUTES: Final = frozenset(
    {ATTR_REASON, ATTR_ERROR_TYPE, ATTR_ERROR_MESSAGE, ATTR_ATTEMPT, ATTR_SOURCE_QUEUE}
)


class _Held(msgspec.Struct, frozen=True, kw_only=True):
    """A dead letter received from the DLQ, hidden there until `until`."""

    record: SQSRecord
    entry: DeadLetterEntry
    until: datetime


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
        self: SQSDriverInternals, queue: str | None = None, *, limit: int = 100, job_name: str | None = None
    ) -> list[DeadLetterEntry]:
        """Peek at the messages in a queue's dead-letter queue, oldest first.

        Messages are received with a 30 s visibility timeout until `limit`
        (matching) entries were seen or a receive brings nothing new, and
        released (visibility 0) before returning, so they stay in the DLQ.
        "Oldest first" is by `SentTimestamp` among the messages peeked: a
        standard queue hands out a sample, so with more dead letters than
        `limit` these are not necessarily the oldest of the whole DLQ.
        Peeking raises their receive count; a DLQ that has its own
        `RedrivePolicy` would count it.

        Args:
            queue: The source queue (name, URL or ARN); `None` for the default.
            limit: At most this many entries.
            job_name: Only the dead letters of this job (by the `JobName`
                attribute, else the body's `jobName`).

        Returns:
            One entry per message, in full, with the `Glasswork*` attributes
            when glasswork dead-lettered it (SQS's own redrive leaves them empty).

        Raises:
            DriverError: No dead-letter queue is known, or SQS failed.
        """
        target = self._resolve(queue)
        url = self._require_dead_letter_url(target)
        held = _scan(self, url, _PEEK_VISIBILITY_SECONDS, job_name=job_name, wanted=limit)
        _release(self, url, [item.record.receipt_handle for item in held])
        return [item.entry for item in _oldest_first(held) if _matches(item, job_name)][:limit]

    def redrive(
        self: SQSDriverInternals,
        queue: str | None = None,
        *,
        job_name: str | None = None,
        limit: int | None = None,
    ) -> int:
        """Move dead letters of a queue's dead-letter queue back to its source queue.

        Without `job_name` and `limit`, SQS's own message move task does it
        when the DLQ serves this queue alone: `StartMessageMoveTask` from the
        DLQ's ARN to the queue's, then `ListMessageMoveTasks` once a second
        until the task ends; the count is SQS's `ApproximateNumberOfMessagesMoved`.
        SQS moves the messages unchanged as new messages (new id, receive
        count 0); the `Glasswork*` attributes stay on them, so one that SQS's
        `RedrivePolicy` later moves to the DLQ again still shows the earlier
        glasswork reason in `list_dead_letters`. When the task cannot
        be used (a server without it, such as moto 5.2, which answers HTTP
        500; no IAM permission for it; a DLQ shared by several queues or not
        one in SQS's eyes; any refusal of the start), the fallback below does
        the work instead, as it does whenever a filter is given.

        The fallback receives dead letters and sends each back (original
        body and attributes, without the `Glasswork*` ones) to the queue
        named by its `GlassworkSourceQueue` attribute (or SQS's
        `DeadLetterQueueSourceArn`), else to `queue`, then deletes it from the
        DLQ, only after the send succeeded. A FIFO source gets the message's
        group, and the DLQ message id as deduplication id. Unfiltered, it
        streams: ten at a time, until the DLQ is empty. With `job_name` or
        `limit`, it scans the DLQ first, holding what it receives hidden
        (5 minutes; at most 20,000 messages a scan), releases at once
        (visibility 0) every message not selected, and moves the selected
        ones oldest first by `SentTimestamp`. A FIFO DLQ hands out at most one
        batch of each message group at a time, so it is scanned again after
        each pass that moved something.

        On a failure part-way, nothing is lost and at most one message is
        duplicated:

        - A receive fails, or a send fails (or a held message has under
          20 s of its hold left, so it is not sent): what was moved stays
          moved; the rest are released at once and stay dead; `DriverError`
          says how many moved. (A send whose answer was lost, a timeout, may
          have reached SQS: that one message may then be in both queues.)
        - A delete fails after its send succeeded: that one message is in
          both queues (the error names it; delete it from the DLQ by hand,
          or it will be redriven twice); the rest are released and stay dead.
        - The process dies: at most the message between its send and its
          delete is in both queues; held messages reappear in the DLQ when
          their hold ends (30 s unfiltered, 5 minutes with a filter).
        - The move task fails or is cancelled: what SQS moved stays moved, the
          rest stay in the DLQ, and `DriverError` says so. Reading its
          progress fails: the task keeps running in SQS; the error names it.

        Args:
            queue: The source queue (name, URL or ARN); `None` for the default.
            job_name: Only the dead letters of this job (by the `JobName`
                attribute, else the body's `jobName`).
            limit: At most this many, oldest first.

        Returns:
            How many messages moved.

        Raises:
            DriverError: No dead-letter queue is known, a move task is already
                running on it, or a step failed as listed above.
        """
        target = self._resolve(queue)
        url = self._require_dead_letter_url(target)
        if job_name is not None or limit is not None:
            return _redrive_selected(self, target, url, job_name, limit)
        moved = _move_task(self, target, url)
        return moved if moved is not None else _redrive_every(self, target, url)

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


def _hold(message: MessageTypeDef, until: datetime) -> _Held:
    record = to_record(message, "", "")
    return _Held(record=record, entry=_dead_letter_entry(record), until=until)


def _matches(item: _Held, job_name: str | None) -> bool:
    return job_name is None or item.entry.job_name == job_name


def _oldest_first(held: Iterable[_Held]) -> list[_Held]:
    """By `SentTimestamp` (when the message entered the DLQ), then message id."""

    def key(item: _Held) -> tuple[int, str]:
        sent = item.record.attributes.sent_timestamp
        return (int(sent) if sent.isdigit() else 0, item.record.message_id)

    return sorted(held, key=key)


def _scan(
    driver: SQSDriverInternals, url: str, visibility: int, *, job_name: str | None, wanted: int | None
) -> list[_Held]:
    """Receive a DLQ's messages, keeping them hidden, until a receive brings none not seen yet.

    Stops sooner once `wanted` matching messages (`None`: no such bound) or
    `_MAX_HELD` messages are held. A message received twice is kept with its
    latest receipt handle. On any error, what is held is released first.
    """
    held: dict[str, _Held] = {}
    matching = 0
    try:
        while len(held) < _MAX_HELD and (wanted is None or matching < wanted):
            asked = MAX_BATCH if wanted is None or job_name is not None else wanted - matching
            asked = min(asked, MAX_BATCH, _MAX_HELD - len(held))
            until = driver._clock() + timedelta(seconds=visibility)
            fresh = 0
            for message in driver._receive_raw(url, asked, visibility, _PEEK_WAIT_SECONDS):
                item = _hold(message, until)
                if item.record.message_id not in held:
                    fresh += 1
                    if _matches(item, job_name):
                        matching += 1
                held[item.record.message_id] = item
            if not fresh:
                break
    except BaseException:
        _release(driver, url, [item.record.receipt_handle for item in held.values()])
        raise
    return list(held.values())


def _redrive_every(driver: SQSDriverInternals, target: SQSQueue, url: str) -> int:
    """Move every dead letter, ten at a time, until a receive brings none."""
    moved: set[str] = set()
    while True:
        until = driver._clock() + timedelta(seconds=_PEEK_VISIBILITY_SECONDS)
        messages = driver._receive_raw(url, MAX_BATCH, _PEEK_VISIBILITY_SECONDS, _PEEK_WAIT_SECONDS)
        if not messages:
            return len(moved)
        _move(driver, [_hold(message, until) for message in messages], target, url, moved)


def _redrive_selected(
    driver: SQSDriverInternals, target: SQSQueue, url: str, job_name: str | None, limit: int | None
) -> int:
    """Scan the DLQ, release what is not selected, move the selected oldest first.

    Scans again after a pass that moved something when one scan cannot see
    every message (a FIFO DLQ, or `_MAX_HELD` reached).
    """
    moved: set[str] = set()
    while limit is None or len(moved) < limit:
        held = _scan(driver, url, _HOLD_SECONDS, job_name=job_name, wanted=None)
        matching = [item for item in _oldest_first(held) if _matches(item, job_name)]
        chosen = matching if limit is None else matching[: limit - len(moved)]
        picked = {item.record.message_id for item in chosen}
        _release(driver, url, [i.record.receipt_handle for i in held if i.record.message_id not in picked])
        before = len(moved)
        _move(driver, chosen, target, url, moved)
        partial_scan = url.endswith(".fifo") or len(held) >= _MAX_HELD
        if len(moved) == before or not partial_scan:
            break
    return len(moved)


def _move(
    driver: SQSDriverInternals, held: Sequence[_Held], fallback: SQSQueue, url: str, moved: set[str]
) -> None:
    """Send each held dead letter back, then delete it from the DLQ, in order.

    An id already in `moved` (a second copy SQS delivered) is only deleted.
    On the first failure the rest are released and `DriverError` says how
    many moved so far.
    """
    dlq = name_of_url(url)
    for position, item in enumerate(held):
        record = item.record
        rest = [later.record.receipt_handle for later in held[position:]]
        if record.message_id not in moved:
            if driver._clock() + _HOLD_MARGIN > item.until:
                _release(driver, url, rest)
                msg = (
                    f"redrive stopped after moving {len(moved)}: the hold on the other dead letters "
                    f"in {dlq} was running out before they were sent; they stay there: redrive again"
                )
                raise DriverError(msg)
            try:
                _send_back(driver, record, fallback, url)
            except GlassworkError as exc:
                _release(driver, url, rest)
                msg = (
                    f"{exc}; redrive stopped after moving {len(moved)}: message {record.message_id} "
                    f"and the ones after it stay in {dlq}"
                )
                raise DriverError(msg) from exc.__cause__
            moved.add(record.message_id)
        try:
            with translated("DeleteMessage (redrive)", dlq):
                driver.client.delete_message(QueueUrl=url, ReceiptHandle=record.receipt_handle)
        except DriverError as exc:
            _release(driver, url, rest)  # this one too: in both queues, it should show in both
            msg = (
                f"{exc}; redrive stopped after moving {len(moved)}: message {record.message_id} was "
                f"sent back but not deleted from {dlq}, so it is in both queues now (delete it from "
                f"{dlq}, or it will be redriven again); the ones after it stay there"
            )
            raise DriverError(msg) from exc.__cause__


def _move_task(driver: SQSDriverInternals, source: SQSQueue, dlq_url: str) -> int | None:
    """Redrive with SQS's own message move task; `None` when it cannot be used (then nothing moved)."""
    client = driver.client
    dlq = name_of_url(dlq_url)
    try:
        served = client.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", [])
        if [name_of_url(url) for url in served] != [name_of_url(source.url)]:
            return None  # shared, or not a DLQ in SQS's eyes: the task would send all to one queue, or fail
        dlq_arn, source_arn = driver._queue_arn(dlq_url), driver._queue_arn(source.url)
        latest = client.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1).get("Results", [])
    except (ClientError, DriverError):
        return None  # not offered here (moto: HTTP 500), or not allowed: the fallback needs less
    except BotoCoreError as exc:
        raise translate(exc, "ListMessageMoveTasks", dlq) from exc
    if latest and latest[0].get("Status") in _MOVE_TASK_ACTIVE:
        msg = f"a message move task is already running on dead-letter queue {dlq}: let it end, or cancel it"
        raise DriverError(msg)
    prior = latest[0].get("StartedTimestamp") if latest else None
    try:
        handle = client.start_message_move_task(SourceArn=dlq_arn, DestinationArn=source_arn)["TaskHandle"]
    except ClientError:
        return None  # refused, so not started
    except BotoCoreError as exc:
        msg = (
            f"StartMessageMoveTask on {dlq} got no answer: a task may have started (see ListMessageMoveTasks)"
        )
        raise DriverError(msg) from exc
    task = _finished_task(driver, dlq_arn=dlq_arn, handle=handle, prior=prior, destination=source_arn)
    moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
    status = task.get("Status", "")
    if status == "COMPLETED":
        return moved
    reason = task.get("FailureReason") or status.lower()
    msg = (
        f"the message move task from {dlq} to {source.name} ended {status} after moving about "
        f"{moved}: {reason}; the rest stay in {dlq}"
    )
    raise DriverError(msg)


def _finished_task(
    driver: SQSDriverInternals, *, dlq_arn: str, handle: str, prior: int | None, destination: str
) -> ListMessageMoveTasksResultEntryTypeDef:
    """Poll `ListMessageMoveTasks` until the task just started has ended."""
    dlq = dlq_arn.rpartition(":")[2]
    unseen = 0
    while True:
        try:
            with translated("ListMessageMoveTasks", dlq):
                response = driver.client.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)
        except DriverError as exc:
            msg = (
                f"the message move task on {dlq} was started, but its progress could not be read; it runs on"
            )
            raise DriverError(msg) from exc
        task = _our_task(response.get("Results", []), handle, prior, destination)
        if task is not None and task.get("Status") not in _MOVE_TASK_ACTIVE:
            return task
        unseen = unseen + 1 if task is None else 0
        if unseen > _MOVE_TASK_UNSEEN_POLLS:
            msg = (
                f"the message move task started on {dlq} is not listed by ListMessageMoveTasks; it may run on"
            )
            raise DriverError(msg)
        time.sleep(_MOVE_TASK_POLL_SECONDS)


def _our_task(
    tasks: Sequence[ListMessageMoveTasksResultEntryTypeDef], handle: str, prior: int | None, destination: str
) -> ListMessageMoveTasksResultEntryTypeDef | None:
    """The task just started, among the newest ones; `None` while it is not listed.

    While it runs it carries its handle (only a running task has one); once
    ended, it is the newest task to `destination`, started after `prior`
    (the start of the task that was newest before).
    """
    for task in tasks:
        if task.get("TaskHandle") == handle:
            return task
    for task in tasks:  # newest first
        started = task.get("StartedTimestamp", 0)
        if not task.get("TaskHandle") and task.get("DestinationArn") == destination:
            return task if prior is None or started > prior else None
    return None


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
