"""glasswork: typed background jobs for AWS Lambda + SQS.

Define jobs with `define_job`, group them in a `Module`, enqueue them with
`JobService` (or, from async code, `AsyncJobService`), and export
`bootstrap_worker(module=...)` as the Lambda handler.
The same handler runs locally on the embedded SQLite queue (`glasswork worker`).
A handler composed by hand needs nothing but this module: `process_record`,
the outcome values it returns, and the worker-side driver protocol.
"""

from glasswork._jobs import JobRegistry, Module, define_job, define_periodic_job
from glasswork._wire import MAX_ENQUEUE_DELAY_SECONDS, EnqueueResult, JobExecution, JobMessage, SQSRecord
from glasswork.async_service import AsyncJobService
from glasswork.context import JobContext, LambdaContext, Services
from glasswork.core import (
    Ack,
    Backoff,
    DeadLetter,
    Defer,
    Discard,
    Job,
    Outcome,
    RecordOptions,
    RecordResult,
    Retry,
    RetryPolicy,
    classify_error,
    decide_retry,
    process_record,
    process_record_async,
)
from glasswork.drivers.base import DeadLetterInfo, QueueDriver, VisibilityChange, WorkerDriver
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

__all__ = [  # noqa: RUF022  # plain sorted(), as tests/test_public_api.py checks
    "Ack",
    "AsyncJobService",
    "Backoff",
    "DeadLetter",
    "DeadLetterInfo",
    "Defer",
    "Discard",
    "EnqueueResult",
    "GlassworkError",
    "InvalidJobPayloadError",
    "Job",
    "JobContext",
    "JobExecution",
    "JobMessage",
    "JobRegistry",
    "JobService",
    "LambdaContext",
    "MAX_ENQUEUE_DELAY_SECONDS",
    "MockQueueDriver",
    "Module",
    "Outcome",
    "PayloadTooLargeError",
    "PermanentJobError",
    "QueueDriver",
    "RecordOptions",
    "RecordResult",
    "Retry",
    "RetryExhaustedError",
    "RetryPolicy",
    "SQSRecord",
    "Services",
    "TransientJobError",
    "VisibilityChange",
    "WorkerDriver",
    "WorkerHooks",
    "bootstrap_worker",
    "classify_error",
    "decide_retry",
    "define_job",
    "define_periodic_job",
    "process_record",
    "process_record_async",
]

__version__ = "0.1.0"
