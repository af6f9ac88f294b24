"""Amazon SQS: the production driver's hot path (enqueue, worker side, local consuming).

`SQSQueueDriver` implements every protocol of `glasswork.drivers.base`. Its
code is split over three modules, imported in one direction only
(`sqs` -> `sqs_admin` -> `_sqs_common`, and `sqs` -> `_sqs_common`):

- `glasswork.drivers.sqs` (this module): the driver itself (construction,
  clients, queue resolution) and what a Lambda enqueuer or worker runs:
  `enqueue`, `enqueue_batch`, `dead_letter`, `change_visibility`,
  `check_redrive`, plus `receive`, `delete` and `counts` for the local poller.
- `glasswork.drivers.sqs_admin`: `SQSAdminMixin`, a base class of
  `SQSQueueDriver`, with the rest: EventBridge Scheduler for delays over
  900 s (`scheduler`, `cancel`, and the schedule `enqueue` creates) and
  dead-letter administration (`list_dead_letters`, `redrive`, `purge`). Call
  them on the driver as before.
- `glasswork.drivers._sqs_common`: what both use (the resolved queue, FIFO
  ids, record conversion, botocore error translation).

These are the only glasswork modules that import botocore (at import time, so
a missing extra fails fast) and boto3 (when the first client is made);
`import glasswork` imports neither.

What it sends:

- Body: `JobMessage.body` (the TypeScript-compatible camelCase JSON) with the
  message attribute `JobName`.
- Delays up to 900 s: `DelaySeconds`. Longer delays: a one-off EventBridge
  Scheduler schedule (see `glasswork.drivers.sqs_admin`); the returned
  `message_id` is the schedule's name, which `cancel()` deletes. Such a
  message arrives without `JobName` (the worker reads the name from the
  body). Needs `scheduler_role_arn`; without it a long delay raises
  `ConfigurationError`.
- FIFO queues (URL ending in `.fifo`): `MessageGroupId` = the job's group key,
  else the queue's name; `MessageDeduplicationId` = the job's `unique` key,
  else its id (an id SQS would reject, over 128 characters or with characters
  outside ASCII letters, digits and punctuation, is replaced by its SHA-256).
  SQS rejects a per-message `DelaySeconds` on FIFO queues, and a scheduled
  send cannot set a deduplication id, so a delayed job for a FIFO queue is
  refused with `ConfigurationError` rather than silently sent early.

What the worker side does:

- `dead_letter`: `SendMessage` to the dead-letter queue with the original body
  and, as message attributes, `JobName` (from `info`, else the original) and
  the `Glasswork*` attributes of `glasswork.drivers.base` first, then the original attributes that still fit
  under SQS's limit of 10 attributes a message (in their original order; the
  rest are dropped). The DLQ is `dead_letter_queues[source queue name]`, else
  the source queue's `RedrivePolicy`, looked up once per driver instance (make
  the driver once per Lambda process, at module level).
- `change_visibility`: `ChangeMessageVisibilityBatch`, 10 entries a call,
  seconds clamped to 0..42,300 (12 hours from the receive, less the 15
  minutes an invocation may have run).
- `check_redrive(queue_arn, max_attempts)`: a warning text when the queue's
  `maxReceiveCount` would redrive messages before a job's attempts run out.

IAM permissions, least privilege (on the named queues only):

- Enqueuer: `sqs:SendMessage` on the job queue; for long delays also the
  Scheduler permissions listed in `glasswork.drivers.sqs_admin`.
- Worker: `sqs:ReceiveMessage`, `sqs:DeleteMessage`, `sqs:GetQueueAttributes`
  (all three needed by Lambda's event source mapping) and
  `sqs:ChangeMessageVisibility` on the job queue; `sqs:SendMessage` on the
  DLQ; `sqs:GetQueueUrl` on the job queue unless it is listed in `queues`.
- Administration (`glasswork dlq`, `purge`): see `glasswork.drivers.sqs_admin`.

Errors are translated at this boundary: an unknown or nonexistent queue is a
`QueueNotFoundError`, throttling a `ThrottledError`, anything else from
botocore a `DriverError`; the botocore exception is always `__cause__`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Literal, Protocol, TypeVar, cast

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from glasswork._wire import (
    MAX_MESSAGE_BYTES,
    TRACE_KEYS,
    EnqueueResult,
    JobMessage,
    SQSRecord,
    check_delay,
)
from glasswork.core import MAX_DELAY_SECONDS
from glasswork.drivers._sqs_common import (
    MAX_BATCH,
    THROTTLE_CODES,
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
    DeadLetterInfo,
    QueueCounts,
    VisibilityChange,
)
from glasswork.drivers.sqs_admin import SQSAdminMixin
from glasswork.errors import (
    BatchEnqueueError,
    ConfigurationError,
    DriverError,
    GlassworkError,
    QueueNotFoundError,
    ThrottledError,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        BatchResultErrorEntryTypeDef,
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
        SendMessageRequestTypeDef,
    )

__all__ = ["MAX_BACKOFF_SECONDS", "MAX_SQS_DELAY_SECONDS", "SQSQueueDriver"]

MAX_SQS_DELAY_SECONDS: Final = 900
"""The longest per-message `DelaySeconds` SQS accepts; longer delays need the scheduler."""
MAX_BACKOFF_SECONDS: Final = MAX_DELAY_SECONDS - 900
"""The longest visibility `change_visibility` asks for: 42,300 s.

SQS rejects a visibility that ends more than 12 hours after the message was
received, and a Lambda invocation runs for up to 15 minutes after the
receive, so a backoff is clamped 15 minutes short of 12 hours to be accepted.
"""
_MAX_ATTRIBUTES: Final = 10
_MAX_WAIT_SECONDS: Final = 20
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_REGION_IN_URL: Final = re.compile(
    r"^https?://(?:sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?|([a-z0-9-]+)\.queue\.amazonaws\.com)/"
)


class _Batchable(Protocol):
    @property
    def message_id(self) -> str: ...


_Item = TypeVar("_Item", bound=_Batchable)
_K = TypeVar("_K")
_V = TypeVar("_V")


class _Redrive(msgspec.Struct, frozen=True, kw_only=True):
    dead_letter_arn: str
    max_receive_count: int


class _Failure(msgspec.Struct, frozen=True, kw_only=True):
    error: DriverError
    retriable: bool
    request_level: bool


class SQSQueueDriver(SQSAdminMixin):
    """A queue driver for Amazon SQS (and SQS-compatible servers such as moto).

    Queues are named by the keys of `queues`; a job's `queue` (or
    `default_queue`) picks one. A queue may also be given as a URL or an ARN
    wherever a name is accepted. With `queues=None`, names are looked up with
    `GetQueueUrl`.

    The scheduler (`scheduler`, `cancel`) and dead-letter administration
    (`list_dead_letters`, `redrive`, `purge`) are inherited from
    `glasswork.drivers.sqs_admin.SQSAdminMixin`.

    Args:
        queues: Queue name -> queue URL. `None` looks names up in the account.
        client: A boto3 SQS client; by default one is made on first use from
            `region` and `endpoint_url`.
        region: The AWS region (default: boto3's configuration, else the one
            in a queue URL).
        endpoint_url: An endpoint for an SQS-compatible server (also used for
            the Scheduler client made by the driver).
        dead_letter_queues: Source queue name -> DLQ URL; a queue not listed
            here uses its `RedrivePolicy`'s target.
        default_queue: The queue of a message whose `queue` is `None`; by
            default the only entry of `queues`, if there is exactly one.
        scheduler_client: A boto3 EventBridge Scheduler client (else made on
            first use).
        scheduler_role_arn: The role EventBridge Scheduler assumes to send a
            delayed message (`sqs:SendMessage` on the queue). Required for
            delays over 900 seconds.
        scheduler_group: The schedule group for delayed messages (default:
            Scheduler's `default` group).
        clock: Returns the current time, timezone-aware; used for `at(...)`.

    Raises:
        ConfigurationError: `default_queue` is not one of `queues`.
    """

    def __init__(
        self,
        queues: Mapping[str, str] | None = None,
        client: SQSClient | None = None,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        dead_letter_queues: Mapping[str, str] | None = None,
        default_queue: str | None = None,
        scheduler_client: EventBridgeSchedulerClient | None = None,
        scheduler_role_arn: str | None = None,
        scheduler_group: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._queues: dict[str, str] | None = dict(queues) if queues is not None else None
        if (
            default_queue is not None
            and self._queues is not None
            and default_queue not in self._queues
            and not _is_url(default_queue)
            and not default_queue.startswith("arn:")
        ):
            known = sorted(self._queues)
            msg = f"default_queue {default_queue!r} is not one of the configured queues {known}"
            raise ConfigurationError(msg)
        self._client = client
        self._region = region
        self._endpoint_url = endpoint_url
        self._dead_letter_queues = dict(dead_letter_queues or {})
        self._default_queue = default_queue
        self._scheduler = scheduler_client
        self._scheduler_role_arn = scheduler_role_arn
        self._scheduler_group = scheduler_group
        self._clock = clock or _utc_now
        self._lock = threading.RLock()
        self._url_by_name: dict[str, str] = {}
        self._url_by_arn: dict[str, str] = {}
        self._arn_by_url: dict[str, str] = {}
        self._redrive_by_url: dict[str, _Redrive | None] = {}
        self._dead_letter_by_url: dict[str, str | None] = {}

    @classmethod
    def from_url(cls, url: str, **options: object) -> SQSQueueDriver:
        """A driver for one queue given by its URL, which becomes the default queue.

        The queue is named after the last segment of the URL; the region is
        taken from an AWS queue URL unless `region` is given.

        Args:
            url: The queue URL, such as `https://sqs.eu-west-1.amazonaws.com/123456789012/jobs`.
            **options: Any other keyword argument of `SQSQueueDriver`.
        """
        name = name_of_url(url)
        region = options.pop("region", None) or _region_of_url(url)
        return cls({name: url}, default_queue=name, region=region, **options)  # type: ignore[arg-type]  # options are forwarded verbatim; the constructor checks them

    def __repr__(self) -> str:
        return f"SQSQueueDriver(queues={self._queues!r}, default_queue={self._default_queue!r})"

    # --- clients ----------------------------------------------------------------

    @property
    def name(self) -> str:
        """`"sqs"`."""
        return "sqs"

    @property
    def default_queue(self) -> str | None:
        """The queue of calls that name none: `default_queue`, else the only configured queue."""
        if self._default_queue is None and self._queues is not None and len(self._queues) == 1:
            return next(iter(self._queues))
        return self._default_queue

    @property
    def client(self) -> SQSClient:
        """The boto3 SQS client (made on first use when none was given)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = cast("SQSClient", self._make_client("sqs"))
        return self._client

    def _make_client(self, service: Literal["sqs", "scheduler"]) -> BaseClient:
        import boto3  # noqa: PLC0415  # boto3 is heavy and optional: import it when a client is needed
        from botocore.config import Config  # noqa: PLC0415  # same

        session = boto3.session.Session()
        region = self._region or session.region_name or self._region_from_queues()
        if region is None:
            msg = "no AWS region for the SQS driver: pass region=... or set AWS_REGION"
            raise ConfigurationError(msg)
        config = Config(user_agent_extra="glasswork", retries={"mode": "standard"})
        try:
            client: BaseClient = session.client(
                service, region_name=region, endpoint_url=self._endpoint_url, config=config
            )
        except BotoCoreError as exc:
            msg = f"cannot make a boto3 {service} client: {exc}"
            raise ConfigurationError(msg) from exc
        return client

    def _region_from_queues(self) -> str | None:
        urls = [*(self._queues or {}).values(), *self._dead_letter_queues.values()]
        if self._default_queue:
            urls.append(self._default_queue)
        for url in urls:
            region = _region_of_url(url)
            if region:
                return region
        return None

    # --- queue resolution -------------------------------------------------------

    def _resolve(self, queue: str | None) -> SQSQueue:
        key = queue if queue is not None else self._default_queue
        if key is None:
            if self._queues is not None and len(self._queues) == 1:
                ((name, url),) = self._queues.items()
                return SQSQueue(name=name, url=url)
            known = sorted(self._queues or {})
            msg = f"no queue given and no default_queue set on the SQS driver (configured queues: {known})"
            raise ConfigurationError(msg)
        if _is_url(key):
            return SQSQueue(name=self._name_for_url(key), url=key)
        if key.startswith("arn:"):
            return self._queue_for_arn(key)
        if self._queues is not None:
            if key in self._queues:
                return SQSQueue(name=key, url=self._queues[key])
            msg = f"unknown queue {key!r}: the SQS driver knows {sorted(self._queues)}"
            raise QueueNotFoundError(msg)
        return SQSQueue(name=key, url=self._cached(self._url_by_name, key, self._lookup_url))

    def _lookup_url(self, name: str) -> str:
        with translated("GetQueueUrl", name):
            return self.client.get_queue_url(QueueName=name)["QueueUrl"]

    def _name_for_url(self, url: str) -> str:
        for name, configured in (self._queues or {}).items():
            if configured == url:
                return name
        return name_of_url(url)

    def _queue_for_arn(self, arn: str) -> SQSQueue:
        if not arn:
            return self._resolve(None)
        parts = arn.split(":")
        if len(parts) != 6 or parts[2] != "sqs":
            msg = f"not an SQS queue ARN: {arn!r}"
            raise QueueNotFoundError(msg)
        account, queue_name = parts[4], parts[5]
        for name, url in (self._queues or {}).items():
            segments = url.rstrip("/").split("/")
            if segments[-1] == queue_name and (len(segments) < 2 or segments[-2] in (account, "")):
                return SQSQueue(name=name, url=url)

        def lookup(_: str) -> str:
            with translated("GetQueueUrl", queue_name):
                return self.client.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)[
                    "QueueUrl"
                ]

        url = self._cached(self._url_by_arn, arn, lookup)
        return SQSQueue(name=queue_name, url=url)

    def _queue_arn(self, url: str) -> str:
        def lookup(_: str) -> str:
            attributes = self._attributes(url, "QueueArn")
            arn = attributes.get("QueueArn")
            if not arn:
                msg = f"SQS did not return the ARN of queue {url}"
                raise DriverError(msg)
            return arn

        return self._cached(self._arn_by_url, url, lookup)

    def queue_visibility_timeout(self, queue: str | None = None) -> int:
        """The queue's `VisibilityTimeout` attribute, in seconds (asked of SQS each call).

        Raises:
            QueueNotFoundError: The queue does not exist.
            DriverError: SQS failed or returned no readable value.
        """
        target = self._resolve(queue)
        raw = self._attributes(target.url, "VisibilityTimeout").get("VisibilityTimeout", "")
        if not raw.isdigit():
            msg = f"SQS returned no readable VisibilityTimeout for queue {target.name!r}: {raw!r}"
            raise DriverError(msg)
        return int(raw)

    def _attributes(self, url: str, *names: str) -> dict[str, str]:
        with translated("GetQueueAttributes", url):
            response = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=list(names))  # type: ignore[arg-type]  # names are SQS attribute names, checked by SQS
        return {str(name): value for name, value in response.get("Attributes", {}).items()}

    def _redrive_policy(self, url: str) -> _Redrive | None:
        def lookup(_: str) -> _Redrive | None:
            raw = self._attributes(url, "RedrivePolicy").get("RedrivePolicy")
            if not raw:
                return None
            try:
                policy = json.loads(raw)
                return _Redrive(
                    dead_letter_arn=str(policy["deadLetterTargetArn"]),
                    max_receive_count=int(policy["maxReceiveCount"]),
                )
            except (ValueError, KeyError, TypeError) as exc:
                msg = f"queue {url} has an unreadable RedrivePolicy {raw!r}"
                raise DriverError(msg) from exc

        return self._cached(self._redrive_by_url, url, lookup)

    def _dead_letter_url(self, source: SQSQueue) -> str | None:
        configured = self._dead_letter_queues.get(source.name) or self._dead_letter_queues.get(
            name_of_url(source.url)
        )
        if configured is not None:
            return configured if _is_url(configured) else self._resolve(configured).url

        def lookup(_: str) -> str | None:
            redrive = self._redrive_policy(source.url)
            if redrive is None:
                return None
            return self._queue_for_arn(redrive.dead_letter_arn).url

        return self._cached(self._dead_letter_by_url, source.url, lookup)

    def _require_dead_letter_url(self, source: SQSQueue) -> str:
        url = self._dead_letter_url(source)
        if url is None:
            msg = (
                f"no dead-letter queue known for queue {source.name!r}: give it a RedrivePolicy "
                f"or pass dead_letter_queues={{{source.name!r}: DLQ_URL}} to SQSQueueDriver"
            )
            raise DriverError(msg)
        return url

    def _cached(self, cache: dict[_K, _V], key: _K, compute: Callable[[_K], _V]) -> _V:
        if key in cache:
            return cache[key]
        with self._lock:
            if key not in cache:
                cache[key] = compute(key)
            return cache[key]

    # --- sending side -----------------------------------------------------------

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        """Send one job message.

        Args:
            message: The message; its `queue` names a configured queue (or is a
                URL/ARN), `None` meaning the default queue.

        Returns:
            The SQS message id (or, for a delay over 900 s, the schedule's
            name) and the job id.

        Raises:
            QueueNotFoundError: The queue name is unknown or the queue does not exist.
            ConfigurationError: A delay on a FIFO queue, or a delay over 900 s
                without `scheduler_role_arn`.
            ValueError: A delay over `MAX_ENQUEUE_DELAY_SECONDS` (365 days).
            ThrottledError: SQS or Scheduler throttled the request.
            DriverError: Any other failure.
        """
        target = self._resolve(message.queue)
        self._check_sendable(message, target)
        if message.delay_seconds > MAX_SQS_DELAY_SECONDS:
            return self._schedule(message, target)
        params: SendMessageRequestTypeDef = {
            "QueueUrl": target.url,
            "MessageBody": message.body,
            "MessageAttributes": _job_attributes(message),
        }
        if target.fifo:
            params["MessageGroupId"] = fifo_id(message.group_id or target.name)
            params["MessageDeduplicationId"] = fifo_id(message.deduplication_id)
        elif message.delay_seconds > 0:
            params["DelaySeconds"] = message.delay_seconds
        with translated("SendMessage", target.name):
            response = self.client.send_message(**params)
        return EnqueueResult(message_id=response["MessageId"], job_id=message.job_id)

    def enqueue_batch(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        """Send many job messages with `SendMessageBatch`.

        Messages are grouped per queue and sent 10 at a time, at most 1 MiB per
        request; delays over 900 s go through the scheduler one by one. Every
        message is checked (queue, delay) before anything is sent. Entries
        that fail are retried once, except those SQS blames on the sender
        (`SenderFault`), which would fail again.

        Args:
            messages: The messages, possibly for several queues.

        Returns:
            One result per message, in input order.

        Raises:
            QueueNotFoundError: An unknown queue name (nothing sent), or the
                queue does not exist.
            ConfigurationError: As for `enqueue`; nothing was sent.
            ThrottledError: Every request was throttled; nothing was sent.
            DriverError: Every request failed the same way; nothing was sent.
            BatchEnqueueError: Some messages were not sent after one retry;
                `failed` lists exactly those, `succeeded` the others in input order.
        """
        targets = [self._resolve(message.queue) for message in messages]
        for message, target in zip(messages, targets, strict=True):
            self._check_sendable(message, target)
        results: list[EnqueueResult | None] = [None] * len(messages)
        failures: dict[int, _Failure] = {}
        pending: dict[str, list[int]] = {}
        for index, (message, target) in enumerate(zip(messages, targets, strict=True)):
            if message.delay_seconds > MAX_SQS_DELAY_SECONDS:
                try:
                    results[index] = self._schedule(message, target)
                except DriverError as exc:
                    failures[index] = _Failure(error=exc, retriable=False, request_level=True)
            else:
                pending.setdefault(target.url, []).append(index)
        for _round in range(2):
            retry: dict[str, list[int]] = {}
            for url, indexes in pending.items():
                for chunk in _chunks(indexes, [_entry_size(messages[i]) for i in indexes]):
                    sent, failed = self._send_chunk(url, chunk, messages, targets)
                    for index, result in sent.items():
                        results[index] = result
                        failures.pop(index, None)
                    for index, failure in failed.items():
                        failures[index] = failure
                        if failure.retriable:
                            retry.setdefault(url, []).append(index)
            pending = retry
            if not pending:
                break
        if not failures:
            return [result for result in results if result is not None]
        succeeded = [result for result in results if result is not None]
        if not succeeded and all(failure.request_level for failure in failures.values()):
            first = failures[min(failures)].error
            raise first
        raise BatchEnqueueError(
            succeeded=succeeded,
            failed=[(messages[index], failures[index].error) for index in sorted(failures)],
        )

    def _send_chunk(
        self, url: str, chunk: Sequence[int], messages: Sequence[JobMessage], targets: Sequence[SQSQueue]
    ) -> tuple[dict[int, EnqueueResult], dict[int, _Failure]]:
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for entry_id, index in enumerate(chunk):
            message, target = messages[index], targets[index]
            entry: SendMessageBatchRequestEntryTypeDef = {
                "Id": str(entry_id),
                "MessageBody": message.body,
                "MessageAttributes": _job_attributes(message),
            }
            if target.fifo:
                entry["MessageGroupId"] = fifo_id(message.group_id or target.name)
                entry["MessageDeduplicationId"] = fifo_id(message.deduplication_id)
            elif message.delay_seconds > 0:
                entry["DelaySeconds"] = message.delay_seconds
            entries.append(entry)
        try:
            response = self.client.send_message_batch(QueueUrl=url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            error = translate(exc, "SendMessageBatch", targets[chunk[0]].name)
            error.__cause__ = exc
            failure = _Failure(
                error=error, retriable=not isinstance(error, QueueNotFoundError), request_level=True
            )
            return {}, dict.fromkeys(chunk, failure)
        sent: dict[int, EnqueueResult] = {}
        failed: dict[int, _Failure] = {}
        for ok in response.get("Successful", []):
            index = chunk[int(ok["Id"])]
            sent[index] = EnqueueResult(message_id=ok["MessageId"], job_id=messages[index].job_id)
        for bad in response.get("Failed", []):
            index = chunk[int(bad["Id"])]
            code = bad.get("Code", "")
            kind = ThrottledError if code in THROTTLE_CODES else DriverError
            error = kind(
                f"SendMessageBatch entry for job {messages[index].job_name!r} "
                f"({messages[index].job_id}) failed: {code}: {bad.get('Message', '')}"
            )
            failed[index] = _Failure(
                error=error, retriable=not bad.get("SenderFault", False), request_level=False
            )
        for index in chunk:
            if index not in sent and index not in failed:
                error = DriverError(f"SendMessageBatch returned no result for job {messages[index].job_id}")
                failed[index] = _Failure(error=error, retriable=True, request_level=False)
        return sent, failed

    def _check_sendable(self, message: JobMessage, target: SQSQueue) -> None:
        check_delay(message.delay_seconds)
        if target.fifo and message.delay_seconds > 0:
            msg = (
                f"job {message.job_name!r}: FIFO queue {target.name!r} cannot delay one message "
                f"({message.delay_seconds} s asked): SQS rejects DelaySeconds on FIFO queues. "
                "Enqueue it without a delay, set the queue's DelaySeconds, or use a standard queue"
            )
            raise ConfigurationError(msg)
        if message.delay_seconds > MAX_SQS_DELAY_SECONDS and self._scheduler_role_arn is None:
            msg = (
                f"job {message.job_name!r}: a delay of {message.delay_seconds} s is over SQS's "
                f"{MAX_SQS_DELAY_SECONDS} s limit; pass scheduler_role_arn=... to SQSQueueDriver "
                "so that longer delays go through a one-off EventBridge Scheduler schedule"
            )
            raise ConfigurationError(msg)

    # --- worker side ------------------------------------------------------------

    def dead_letter(self, record: SQSRecord, info: DeadLetterInfo) -> None:
        """Send a record to its queue's dead-letter queue.

        The body is sent unchanged. The attributes are `JobName` and the
        `Glasswork*` attributes describing `info`, then the record's own
        attributes in order while fewer than 10 are set (SQS's limit); the
        others are dropped. A FIFO DLQ gets the record's `MessageGroupId` and
        `MessageDeduplicationId` (else the source queue's name and the message id).

        Args:
            record: The record that failed.
            info: Why, as the worker decided it.

        Raises:
            DriverError: No dead-letter queue is known, or the send failed
                (the worker then reports the record failed, so it is not lost).
        """
        source = self._queue_for_arn(record.event_source_arn)
        url = self._require_dead_letter_url(source)
        params: SendMessageRequestTypeDef = {
            "QueueUrl": url,
            "MessageBody": record.body,
            "MessageAttributes": _dead_letter_attributes(record, info),
        }
        if url.endswith(".fifo"):
            group = record.attributes.message_group_id or source.name
            dedup = record.attributes.message_deduplication_id or record.message_id
            params["MessageGroupId"] = fifo_id(group)
            params["MessageDeduplicationId"] = fifo_id(dedup)
        if record.attributes.aws_trace_header:
            params["MessageSystemAttributes"] = {
                "AWSTraceHeader": {"DataType": "String", "StringValue": record.attributes.aws_trace_header}
            }
        with translated("SendMessage to the dead-letter queue", name_of_url(url)):
            self.client.send_message(**params)

    def change_visibility(self, changes: Sequence[VisibilityChange]) -> None:
        """Hide received messages for a while (the backoff before a retry).

        Uses `ChangeMessageVisibilityBatch`, 10 entries a call, per source
        queue; seconds are clamped to 0..42,300 (`MAX_BACKOFF_SECONDS`: SQS
        counts its 12-hour limit from the receive, up to 15 minutes ago).

        Args:
            changes: The changes; `source_queue` is the record's `eventSourceARN`.

        Raises:
            DriverError: Some changes failed (raised after every change was tried).
        """

        def send(url: str, chunk: Sequence[VisibilityChange]) -> Sequence[BatchResultErrorEntryTypeDef]:
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {
                    "Id": str(position),
                    "ReceiptHandle": item.receipt_handle,
                    "VisibilityTimeout": min(max(int(item.seconds), 0), MAX_BACKOFF_SECONDS),
                }
                for position, item in enumerate(chunk)
            ]
            return self.client.change_message_visibility_batch(QueueUrl=url, Entries=entries).get(
                "Failed", []
            )

        self._per_queue_batches(
            changes, lambda c: c.source_queue, send, "ChangeMessageVisibilityBatch", "visibility changes"
        )

    def check_redrive(self, queue_arn: str, max_attempts: int) -> str | None:
        """Check that SQS will not redrive messages before a job's attempts run out.

        SQS moves a message to the DLQ on the receive after `maxReceiveCount`;
        if that is lower than a job's `max_attempts`, the job's last attempts
        never run, and the DLQ copy lacks the error details and the
        dead-letter hook. Never raises: a failed check is reported as text.

        Args:
            queue_arn: The source queue's ARN (a record's `eventSourceARN`).
            max_attempts: The largest `max_attempts` of the jobs that read it.

        Returns:
            A warning to log, or `None` when all is well (or the queue has no
            `RedrivePolicy`).
        """
        try:
            source = self._queue_for_arn(queue_arn)
            redrive = self._redrive_policy(source.url)
        except GlassworkError as exc:
            return (
                f"could not read the RedrivePolicy of {queue_arn or 'the default queue'} ({exc}); "
                "dead-lettering needs sqs:GetQueueAttributes on it or dead_letter_queues=..."
            )
        if redrive is None or redrive.max_receive_count >= max_attempts:
            return None
        return (
            f"queue {source.name!r} has RedrivePolicy maxReceiveCount={redrive.max_receive_count}, "
            f"lower than a job's max_attempts={max_attempts}: SQS will move messages to the "
            "dead-letter queue before their retries run out (no error details, no dead-letter hook); "
            f"set maxReceiveCount to at least {max_attempts}"
        )

    # --- consuming side ---------------------------------------------------------

    def receive(
        self,
        queue: str | None = None,
        *,
        max_messages: int = 10,
        visibility_timeout: int | None = None,
        wait_seconds: float = 0.0,
    ) -> list[SQSRecord]:
        """Receive records shaped exactly as Lambda's event source mapping delivers them.

        Asks for every system and message attribute. More than 10 messages
        take several `ReceiveMessage` calls (only the first waits); a message
        SQS delivers twice within one call is returned once.

        Args:
            queue: The queue (name, URL or ARN); `None` for the default.
            max_messages: At most this many records.
            visibility_timeout: Seconds the records stay hidden (default: the queue's).
            wait_seconds: Long-poll up to this many seconds (whole seconds, at most 20).

        Returns:
            The records (possibly none).

        Raises:
            QueueNotFoundError: The queue is unknown or does not exist.
            DriverError: The receive failed.
        """
        target = self._resolve(queue)
        if max_messages <= 0:
            return []
        arn = self._queue_arn(target.url)
        region = arn.split(":")[3] if arn.count(":") >= 5 else ""
        records: dict[str, SQSRecord] = {}
        wait = min(max(int(wait_seconds), 0), _MAX_WAIT_SECONDS)
        while len(records) < max_messages:
            asked = min(MAX_BATCH, max_messages - len(records))
            messages = self._receive_raw(target.url, asked, visibility_timeout, wait)
            for message in messages:
                record = to_record(message, arn, region)
                records.setdefault(record.message_id, record)
            if len(messages) < asked:
                break
            wait = 0
        return list(records.values())

    def _receive_raw(
        self, url: str, count: int, visibility_timeout: int | None, wait: int
    ) -> list[MessageTypeDef]:
        with translated("ReceiveMessage", name_of_url(url)):
            if visibility_timeout is None:
                response = self.client.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=count,
                    WaitTimeSeconds=wait,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            else:
                response = self.client.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=count,
                    WaitTimeSeconds=wait,
                    VisibilityTimeout=min(max(visibility_timeout, 0), MAX_DELAY_SECONDS),
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
        return list(response.get("Messages", []))

    def delete(self, records: Sequence[SQSRecord]) -> None:
        """Delete received records with `DeleteMessageBatch` (10 a call, per source queue).

        Args:
            records: Records from `receive` (or a Lambda event).

        Raises:
            DriverError: Some deletions failed (raised after every one was tried).
        """

        def send(url: str, chunk: Sequence[SQSRecord]) -> Sequence[BatchResultErrorEntryTypeDef]:
            entries = [{"Id": str(n), "ReceiptHandle": r.receipt_handle} for n, r in enumerate(chunk)]
            return self.client.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed", [])  # type: ignore[arg-type]  # the TypedDict shape, built inline

        self._per_queue_batches(
            records, lambda r: r.event_source_arn, send, "DeleteMessageBatch", "deletions"
        )

    def _per_queue_batches(
        self,
        items: Sequence[_Item],
        source_of: Callable[[_Item], str],
        send: Callable[[str, Sequence[_Item]], Sequence[BatchResultErrorEntryTypeDef]],
        action: str,
        what: str,
    ) -> None:
        """Send `items` in batches of 10 per source queue; try them all, then report every failure.

        Raises:
            DriverError: Some items failed, naming each by message id (the first cause attached).
        """
        by_source: dict[str, list[_Item]] = {}
        for item in items:
            by_source.setdefault(source_of(item), []).append(item)
        problems: list[str] = []
        cause: BaseException | None = None
        for source, queued in by_source.items():
            try:
                url = self._queue_for_arn(source).url
            except DriverError as exc:
                problems.extend(f"{item.message_id}: {exc}" for item in queued)
                cause = cause or exc
                continue
            for start in range(0, len(queued), MAX_BATCH):
                chunk = queued[start : start + MAX_BATCH]
                try:
                    failed = send(url, chunk)
                except (ClientError, BotoCoreError) as exc:
                    error = translate(exc, action, name_of_url(url))
                    problems.extend(f"{item.message_id}: {error}" for item in chunk)
                    cause = cause or exc
                    continue
                for bad in failed:
                    item = chunk[int(bad["Id"])]
                    problems.append(f"{item.message_id}: {bad.get('Code', '')}: {bad.get('Message', '')}")
        if problems:
            shown = "; ".join(problems[:5])
            more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
            msg = f"{len(problems)} of {len(items)} {what} failed: {shown}{more}"
            raise DriverError(msg) from cause

    def counts(self, queue: str | None = None) -> QueueCounts:
        """Approximate counts of a queue, plus the messages in its dead-letter queue.

        Args:
            queue: The queue (name, URL or ARN); `None` for the default.

        Returns:
            Visible, in-flight and delayed messages (SQS's `ApproximateNumberOf*`)
            and every message of the DLQ (0 when there is none).

        Raises:
            QueueNotFoundError: The queue is unknown or does not exist.
            DriverError: SQS failed.
        """
        target = self._resolve(queue)
        main = self._counts(target.url)
        dead_url = self._dead_letter_url(target)
        dead = sum(self._counts(dead_url)) if dead_url is not None else 0
        return QueueCounts(visible=main[0], in_flight=main[1], delayed=main[2], dead=dead)

    def _counts(self, url: str) -> tuple[int, int, int]:
        attributes = self._attributes(
            url,
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
        return (
            int(attributes.get("ApproximateNumberOfMessages", "0")),
            int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")),
            int(attributes.get("ApproximateNumberOfMessagesDelayed", "0")),
        )


# --- helpers --------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _is_url(value: str) -> bool:
    return value.startswith(("https://", "http://"))


def _region_of_url(url: str) -> str | None:
    match = _REGION_IN_URL.match(url)
    if match is None:
        return None
    return match.group(1) or match.group(2)


def _clean(text: str) -> str:
    """Replace characters SQS rejects in attribute values."""
    return _NOT_XML_CHAR.sub("\ufffd", text)


def _job_attributes(message: JobMessage) -> dict[str, MessageAttributeValueTypeDef]:
    """`JobName`, plus the W3C trace context (`traceparent`, `tracestate`) when the metadata has it."""
    attributes: dict[str, MessageAttributeValueTypeDef] = {
        ATTR_JOB_NAME: {"DataType": "String", "StringValue": message.job_name}
    }
    metadata = message.metadata
    if metadata and "traceparent" in metadata:
        for key in TRACE_KEYS:
            value = metadata.get(key)
            if value:
                attributes[key] = {"DataType": "String", "StringValue": value}
    return attributes


def _entry_size(message: JobMessage) -> int:
    """Bytes a message counts towards SQS's request limit (body plus attributes)."""
    attributes = len(ATTR_JOB_NAME) + len("String") + len(message.job_name.encode())
    if message.metadata and "traceparent" in message.metadata:
        attributes += sum(len(k) + len("String") + len(message.metadata.get(k, "")) for k in TRACE_KEYS)
    return len(message.body.encode()) + attributes


def _chunks(indexes: Sequence[int], sizes: Sequence[int]) -> Iterator[list[int]]:
    """Split into runs of at most 10 entries and at most 1 MiB each (an oversized entry goes alone)."""
    chunk: list[int] = []
    total = 0
    for index, size in zip(indexes, sizes, strict=True):
        if chunk and (len(chunk) == MAX_BATCH or total + size > MAX_MESSAGE_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append(index)
        total += size
    if chunk:
        yield chunk


def _dead_letter_attributes(
    record: SQSRecord, info: DeadLetterInfo
) -> dict[str, MessageAttributeValueTypeDef]:
    ours: dict[str, str] = {
        ATTR_REASON: info.reason,
        ATTR_ERROR_TYPE: info.error_type,
        ATTR_ERROR_MESSAGE: info.error_message[:1000],
        ATTR_SOURCE_QUEUE: info.source_queue or record.event_source_arn,
    }
    attributes: dict[str, MessageAttributeValueTypeDef] = {}
    original_name = record.message_attributes.get(ATTR_JOB_NAME)
    job_name = info.job_name or (original_name.string_value if original_name else None)
    if job_name:
        attributes[ATTR_JOB_NAME] = {"DataType": "String", "StringValue": _clean(job_name)}
    for name, value in ours.items():
        if value:
            attributes[name] = {"DataType": "String", "StringValue": _clean(value)}
    attributes[ATTR_ATTEMPT] = {"DataType": "Number", "StringValue": str(info.attempt)}
    for name, original in record.message_attributes.items():
        if len(attributes) >= _MAX_ATTRIBUTES:
            break
        converted = boto_attribute(original)
        if name not in attributes and converted is not None:
            attributes[name] = converted
    return attributes
