"""`bootstrap_worker` with Powertools' `Tracer` (X-Ray) and `Metrics` (CloudWatch EMF), through hooks.

- Tracer: `tracer.capture_method` on a job's handler gives each job run its
  own subsegment (`## send_invoice`), with the exception recorded when it
  raises; the handler annotates it with the job's name and id (annotations
  are searchable in X-Ray). `tracer.capture_lambda_handler` around the
  worker opens the invocation's subsegment.
- Metrics: hooks call `metrics.add_metric` (one count per outcome; the
  metric set is flushed as one EMF document when the handler returns, by
  `metrics.log_metrics` around the worker). A per-job dimension needs its
  own document: `single_metric` in a hook does that.

Powertools' `Tracer` is off outside Lambda (no X-Ray daemon), so this runs
anywhere. On Lambda, point the function at `powertools_observability.lambda_handler`.
Needs `aws-lambda-powertools` (and `aws-xray-sdk` for the Tracer on Lambda).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeAlias

import msgspec
from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

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

NAMESPACE = "Billing"
tracer = Tracer(service="billing")
metrics = Metrics(namespace=NAMESPACE, service="billing")


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    invoice_id: str
    cents: int


@tracer.capture_method
def send_invoice(payload: Invoice, ctx: JobContext) -> None:
    tracer.put_annotation(key="job_name", value=ctx.job_name)
    tracer.put_annotation(key="job_id", value=ctx.job_id)
    if payload.cents < 0:
        raise PermanentJobError(f"invoice {payload.invoice_id}: negative amount")


def on_complete(job: JobExecution, ctx: JobContext) -> None:
    metrics.add_metric(name="JobSucceeded", unit=MetricUnit.Count, value=1)


def on_failed(job: JobExecution, ctx: JobContext, error: BaseException) -> None:
    metrics.add_metric(name="JobFailed", unit=MetricUnit.Count, value=1)
    with single_metric(name="JobFailedByName", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="job_name", value=job.job_name)


HOOKS = WorkerHooks(on_job_complete=on_complete, on_job_failed=on_failed)
invoices = Module(
    name="billing", jobs=[define_job(name="send_invoice", handler=send_invoice, payload=Invoice)]
)


def make_handler(driver: WorkerDriver | None = None) -> Handler:
    """The Lambda handler: the worker inside Powertools' tracer and metrics flush."""
    worker = bootstrap_worker(module=invoices, hooks=HOOKS, driver=driver)

    def handle(event: Mapping[str, object], context: object) -> dict[str, object]:
        return worker(event, context)  # a function: Powertools' decorators read `__name__`

    traced: Handler = tracer.capture_lambda_handler(handle)
    flushed: Handler = metrics.log_metrics(traced)
    return flushed


lambda_handler = make_handler()
