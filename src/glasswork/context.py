"""What a handler sees besides its payload: `JobContext` and the services."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

from glasswork.core import JobExecution, decode_message, job_execution
from glasswork.errors import ConfigurationError

__all__ = ["JobContext", "LambdaContext", "Services"]

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

    Attributes:
        services: The module tree's services.
        lambda_context: Lambda's context object, or `None` outside Lambda.
    """

    __slots__ = (
        "_attempt",
        "_body",
        "_execution",
        "_logger",
        "_message_id",
        "_payload",
        "_sent",
        "lambda_context",
        "services",
    )

    services: Services
    lambda_context: LambdaContext | None
    _execution: JobExecution | None
    _logger: logging.LoggerAdapter[logging.Logger] | None
    _payload: object
    _body: str
    _message_id: str
    _attempt: int
    _sent: object

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
        execution = getattr(self, "_execution", None)
        if execution is None:
            attributes = self._sent
            execution = self._execution = job_execution(
                decode_message(self._body),
                self._payload,
                message_id=self._message_id,
                attempt=self._attempt,
                sent_timestamp=attributes.get("SentTimestamp") if isinstance(attributes, dict) else None,
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
        logger: logging.LoggerAdapter[logging.Logger] | None = getattr(self, "_logger", None)
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
