"""What a handler sees besides its payload: `JobContext` and the services."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar

from glasswork._wire import NO_METADATA, JobExecution, SQSRecord, enqueued_time
from glasswork.errors import ConfigurationError

__all__ = ["NO_SERVICES", "JobContext", "LambdaContext", "Services"]

T = TypeVar("T")

_job_logger = logging.getLogger("glasswork.job")


class LambdaContext(Protocol):
    """The part of Lambda's context object glasswork uses."""

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before Lambda stops the invocation."""
        ...


class Services:
    """The module tree's services, built once per process: `ctx.services.db`.

    Attribute access is dynamic (like `argparse.Namespace`) and so typed `Any`;
    `get(name, Type)` returns a checked, precisely typed value instead.
    `name in services` tells whether the tree defines a service. The values
    are read-only; an unknown name raises `AttributeError` listing the known ones.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, object]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:  # a dynamic namespace, as argparse.Namespace
        try:
            return self._values[name]
        except KeyError:
            known = ", ".join(sorted(self._values)) or "none"
            msg = f"no service named {name!r} (services: {known})"
            raise AttributeError(msg) from None

    def __setattr__(self, name: str, value: object) -> None:
        msg = "services are read-only; define them in Module(services=...)"
        raise AttributeError(msg)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        return f"Services({', '.join(sorted(self._values))})"

    def get(self, name: str, kind: type[T]) -> T:
        """The service `name`, checked to be a `kind`.

        Args:
            name: The service's name, as in `Module(services={name: factory})`.
            kind: The type the value must be an instance of.

        Returns:
            The value, typed as `kind` (where `ctx.services.name` is `Any`).

        Raises:
            ConfigurationError: No such service, or it is not a `kind`.
        """
        value = self._values.get(name)
        if not isinstance(value, kind):
            found = "missing" if name not in self._values else type(value).__name__
            msg = f"service {name!r} is {found}, expected {kind.__name__}"
            raise ConfigurationError(msg)
        return value


class JobContext:
    """The context of one job attempt, passed to the handler and to hooks.

    The pipeline (`glasswork.core`) builds it without parsing anything:
    `execution` (and the ids, times and logger read from it) is put together
    on first use from values already decoded, by functions that cannot fail.

    Attributes:
        services: The module tree's services.
        lambda_context: Lambda's context object, or `None` outside Lambda.
    """

    __slots__ = (
        "_attempt",
        "_envelope",
        "_execution",
        "_group",
        "_job",
        "_logger",
        "_message_id",
        "_payload",
        "_record",
        "lambda_context",
        "services",
    )

    services: Services
    lambda_context: LambdaContext | None
    _execution: JobExecution | None
    _logger: logging.LoggerAdapter[logging.Logger] | None
    _job: Any  # the Job (glasswork.core sits above this module)
    _group: str | None
    _record: object
    _payload: object
    _envelope: Any  # a decoded body: a JobEnvelope or a job's own envelope type, or None
    _message_id: str
    _attempt: int

    def __init__(
        self,
        *,
        services: Services,
        execution: JobExecution,
        lambda_context: LambdaContext | None = None,
    ) -> None:
        self.services = services
        self.lambda_context = lambda_context
        self._execution = execution
        self._logger = None

    @property
    def execution(self) -> JobExecution:
        """The attempt: `job_id`, `job_name`, `payload`, `attempt_number`, `enqueued_at`, ..."""
        execution = self._execution
        if execution is None:
            envelope = self._envelope
            if envelope is None:
                job_id, at, metadata = "", None, None
            else:
                job_id, at, metadata = envelope.job_id, envelope.enqueued_at, envelope.metadata
            if at is None:
                at = enqueued_time(None, _sent_timestamp(self._record))
            elif at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            execution = self._execution = JobExecution(
                job_id or self._message_id,
                self._job.name,
                self._payload,
                self._attempt,
                at,
                metadata if metadata is not None else NO_METADATA,
                self._message_id,
            )
        return execution

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.execution.job_id

    @property
    def job_name(self) -> str:
        """The job's name."""
        return self.execution.job_name

    @property
    def attempt_number(self) -> int:
        """1 for the first attempt (SQS's `ApproximateReceiveCount`)."""
        return self.execution.attempt_number

    @property
    def enqueued_at(self) -> datetime:
        """When the job was enqueued (timezone-aware)."""
        return self.execution.enqueued_at

    @property
    def message_id(self) -> str:
        """The queue's message id."""
        return self.execution.message_id

    @property
    def metadata(self) -> Mapping[str, str]:
        """The string pairs enqueued with the job."""
        return self.execution.metadata

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry `job_id`, `job_name`, `attempt` and `message_id`."""
        logger = self._logger
        if logger is None:
            execution = self.execution
            logger = self._logger = logging.LoggerAdapter(
                _job_logger,
                {
                    "job_id": execution.job_id,
                    "job_name": execution.job_name,
                    "attempt": execution.attempt_number,
                    "message_id": execution.message_id,
                },
            )
        return logger

    def remaining_time_ms(self) -> int | None:
        """Milliseconds of Lambda time left, or `None` outside Lambda."""
        if self.lambda_context is None:
            return None
        return self.lambda_context.get_remaining_time_in_millis()

    def __repr__(self) -> str:
        return (
            f"JobContext(job_name={self.job_name!r}, job_id={self.job_id!r}, "
            f"attempt_number={self.attempt_number})"
        )


def _sent_timestamp(record: object) -> object:
    """A record's `SentTimestamp`, whichever shape it came in; `None` when it has none."""
    if isinstance(record, SQSRecord):
        return record.attributes.sent_timestamp
    attributes = record.get("attributes") if type(record) is dict or isinstance(record, Mapping) else None
    if type(attributes) is dict or isinstance(attributes, Mapping):
        return attributes.get("SentTimestamp")
    return None


NO_SERVICES: Final = Services({})
"""No services: the context of a job run without a module tree."""
