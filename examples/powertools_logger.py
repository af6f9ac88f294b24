"""`bootstrap_worker` with Powertools' `Logger`: one JSON log line per event, with job id and name.

- The worker logs each outcome on `glasswork.worker` with `job_id`, `job_name`,
  `message_id`, `attempt`, `outcome` and `duration_ms` as extra fields, and
  `ctx.logger` (on `glasswork.job`) carries `job_id`, `job_name`, `attempt` and
  `message_id`. `copy_config_to_registered_loggers` gives the `glasswork`
  loggers Powertools' JSON handler, which writes extra fields as keys.
- Hooks append the job's keys to the Powertools logger itself, so code that
  logs through it (`Logger(service="billing")` or `Logger(child=True)` in
  another file, without `ctx` at hand) is tagged too. Keys appended this way are
  shared by everything running at once: fine for `def` jobs, which run one
  after another; `async def` jobs of a batch run concurrently, so log through
  `ctx.logger` there.

On Lambda, point the function at `powertools_logger.lambda_handler`.
Needs `aws-lambda-powertools`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import IO, TypeAlias

import msgspec
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from glasswork import (
    JobContext,
    JobExecution,
    Module,
    PermanentJobError,
    WorkerHooks,
    bootstrap_worker,
    define_job,
)
from glasswork.drivers.base import WorkerDriver

Handler: TypeAlias = Callable[[Mapping[str, object], object], dict[str, object]]

JOB_KEYS = ("job_id", "job_name", "attempt")


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    invoice_id: str
    cents: int


def send_invoice(payload: Invoice, ctx: JobContext) -> None:
    if payload.cents < 0:
        raise PermanentJobError(f"invoice {payload.invoice_id} has a negative total")
    ctx.logger.info("invoice %s sent", payload.invoice_id)


send_invoice_job = define_job(name="send_invoice", handler=send_invoice, payload=Invoice)

app = Module(name="billing", jobs=[send_invoice_job])


def build_handler(
    *,
    module: Module = app,
    driver: WorkerDriver | None = None,
    service: str = "billing",
    stream: IO[str] | None = None,
) -> Handler:
    """The Lambda handler: the worker wrapped in Powertools' `inject_lambda_context`.

    Args:
        module: The jobs.
        driver: The worker-side driver; `None` makes an `SQSQueueDriver` on first need.
        service: The Powertools service name (also the logger's name).
        stream: Where the JSON lines go (default: stdout, which Lambda ships to CloudWatch).

    Returns:
        `handler(event, context)`.
    """
    logger = Logger(service=service, stream=stream)
    copy_config_to_registered_loggers(source_logger=logger, include={"glasswork"})

    def tag(job: JobExecution, ctx: JobContext) -> None:
        logger.append_keys(job_id=job.job_id, job_name=job.job_name, attempt=job.attempt_number)

    def untag(job: JobExecution, ctx: JobContext, *error: BaseException) -> None:
        logger.remove_keys(list(JOB_KEYS))

    worker = bootstrap_worker(
        module=module,
        driver=driver,
        hooks=WorkerHooks(on_job_start=tag, on_job_complete=untag, on_job_failed=untag),
    )

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: Mapping[str, object], context: object) -> dict[str, object]:
        return worker(event, context)

    return handler


@functools.cache
def _handler() -> Handler:
    return build_handler()


def lambda_handler(event: Mapping[str, object], context: object) -> dict[str, object]:
    """The function Lambda calls; built on the first invocation of a cold start."""
    return _handler()(event, context)
