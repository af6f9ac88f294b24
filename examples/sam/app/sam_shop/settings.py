"""The SQS drivers of both functions, configured from the environment set in template.yaml."""

from __future__ import annotations

import os

from glasswork.drivers.sqs import SQSQueueDriver
from glasswork.errors import ConfigurationError

QUEUE = "jobs"


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        msg = f"environment variable {name} is not set (template.yaml sets it)"
        raise ConfigurationError(msg)
    return value


def worker_driver() -> SQSQueueDriver:
    """The worker's driver: the DLQ is configured, so no `GetQueueUrl` permission is needed."""
    return SQSQueueDriver(
        {QUEUE: _env("JOBS_QUEUE_URL")},
        default_queue=QUEUE,
        dead_letter_queues={QUEUE: _env("JOBS_DLQ_URL")},
    )


def api_driver() -> SQSQueueDriver:
    """The API's driver: sends to the job queue; delays over 15 minutes go through EventBridge Scheduler."""
    return SQSQueueDriver(
        {QUEUE: _env("JOBS_QUEUE_URL")},
        default_queue=QUEUE,
        scheduler_role_arn=_env("SCHEDULER_ROLE_ARN"),
        scheduler_group=_env("SCHEDULER_GROUP"),
    )
