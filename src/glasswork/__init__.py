"""glasswork: typed background jobs for AWS Lambda + SQS.

Define jobs with `define_job`, group them in a `Module`, enqueue them with
`JobService`, and export `bootstrap_worker(module=...)` as the Lambda handler.
The same handler runs locally on the embedded SQLite queue (`glasswork worker`).
"""

from glasswork._jobs import Job, JobRegistry, Module, define_job, define_periodic_job
from glasswork.context import JobContext
from glasswork.core import (
    Backoff,
    EnqueueResult,
    JobExecution,
    JobMessage,
    RetryPolicy,
    classify_error,
    decide_retry,
    process_record,
)
from glasswork.drivers.base import QueueDriver
from glasswork.drivers.memory import MockQueueDriver
from glasswork.errors import (
    GlassworkError,
    InvalidJobPayloadError,
    PayloadTooLargeError,
    PermanentJobError,
    RetryExhaustedError,
    TransientJobError,
)
from glasswork.service import JobService
from glasswork.worker import WorkerHooks, bootstrap_worker

__all__ = [
    "Backoff",
    "EnqueueResult",
    "GlassworkError",
    "InvalidJobPayloadError",
    "Job",
    "JobContext",
    "JobExecution",
    "JobMessage",
    "JobRegistry",
    "JobService",
    "MockQueueDriver",
    "Module",
    "PayloadTooLargeError",
    "PermanentJobError",
    "QueueDriver",
    "RetryExhaustedError",
    "RetryPolicy",
    "TransientJobError",
    "WorkerHooks",
    "bootstrap_worker",
    "classify_error",
    "decide_retry",
    "define_job",
    "define_periodic_job",
    "process_record",
]

__version__ = "0.1.0"
