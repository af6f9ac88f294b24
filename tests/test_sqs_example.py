"""The SAM example's two functions, run against moto over real HTTP.

The functions are configured exactly as `examples/sam/template.yaml` configures
them on Lambda: through environment variables, plus `AWS_ENDPOINT_URL` (which
botocore honours for every service) to point them at moto instead of AWS.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import cast

import boto3
import msgspec
import pytest
from mypy_boto3_scheduler import EventBridgeSchedulerClient
from mypy_boto3_sqs import SQSClient

from glasswork.drivers.base import ATTR_REASON
from glasswork.drivers.sqs import SQSQueueDriver
from glasswork.testing import FakeLambdaContext

pytestmark = pytest.mark.sqs

APP = Path(__file__).resolve().parent.parent / "examples" / "sam" / "app"
REGION = "us-east-1"
Handler = Callable[[Mapping[str, object], object], dict[str, object]]


class Deployed(msgspec.Struct, frozen=True, kw_only=True):
    queue_url: str
    dlq_url: str
    api: Handler
    worker: Handler


@pytest.fixture
def deployed(moto_reset: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    """The stack's resources on moto, and both handlers imported fresh with the stack's environment."""
    sqs: SQSClient = boto3.client("sqs", region_name=REGION, endpoint_url=moto_reset)
    scheduler: EventBridgeSchedulerClient = boto3.client(
        "scheduler", region_name=REGION, endpoint_url=moto_reset
    )
    dlq_url = sqs.create_queue(QueueName="shop-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName="shop-jobs",
        Attributes={
            "VisibilityTimeout": "180",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "10"}),
        },
    )["QueueUrl"]
    scheduler.create_schedule_group(Name="shop-jobs")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_reset)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("JOBS_QUEUE_URL", queue_url)
    monkeypatch.setenv("JOBS_DLQ_URL", dlq_url)
    monkeypatch.setenv("SCHEDULER_ROLE_ARN", "arn:aws:iam::123456789012:role/shop-scheduler")
    monkeypatch.setenv("SCHEDULER_GROUP", "shop-jobs")
    monkeypatch.syspath_prepend(str(APP))
    for name in [n for n in sys.modules if n == "sam_shop" or n.startswith("sam_shop.")]:
        monkeypatch.delitem(sys.modules, name)
    api: ModuleType = importlib.import_module("sam_shop.api")
    worker: ModuleType = importlib.import_module("sam_shop.worker")
    yield Deployed(
        queue_url=queue_url,
        dlq_url=dlq_url,
        api=cast("Handler", api.handler),
        worker=cast("Handler", worker.handler),
    )
    for name in [n for n in sys.modules if n == "sam_shop" or n.startswith("sam_shop.")]:
        del sys.modules[name]


def http_api_event(body: str) -> dict[str, object]:
    """An API Gateway HTTP API (payload format 2.0) request, trimmed to what matters."""
    return {
        "version": "2.0",
        "routeKey": "POST /orders",
        "rawPath": "/orders",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/orders"}},
        "body": body,
        "isBase64Encoded": False,
    }


def run_worker(deployed: Deployed, driver: SQSQueueDriver) -> list[str]:
    """Deliver the queue's messages to the worker handler as Lambda would; return the failures."""
    records = driver.receive(deployed.queue_url, max_messages=10)
    assert records
    response = deployed.worker({"Records": [msgspec.to_builtins(r) for r in records]}, FakeLambdaContext())
    failures = response["batchItemFailures"]
    assert isinstance(failures, list)
    failed = [str(item["itemIdentifier"]) for item in failures]
    driver.delete([r for r in records if r.message_id not in failed])
    return failed


def test_api_enqueues_and_the_worker_runs_it(deployed: Deployed, moto_reset: str) -> None:
    response = deployed.api(http_api_event('{"order_id": 7, "email": "ada@example.com"}'), None)

    assert response["statusCode"] == 202
    body = json.loads(str(response["body"]))
    assert body["receiptJobId"] == "receipt-7"
    scheduler: EventBridgeSchedulerClient = boto3.client(
        "scheduler", region_name=REGION, endpoint_url=moto_reset
    )
    schedule = scheduler.get_schedule(Name=body["reviewSchedule"], GroupName="shop-jobs")
    assert json.loads(schedule["Target"]["Input"])["jobName"] == "ask_for_review"
    driver = SQSQueueDriver(client=boto3.client("sqs", region_name=REGION, endpoint_url=moto_reset))

    assert run_worker(deployed, driver) == []
    counts = driver.counts(deployed.queue_url)
    assert (counts.pending, counts.dead) == (0, 0)


def test_a_bad_address_is_dead_lettered_by_the_worker(deployed: Deployed, moto_reset: str) -> None:
    deployed.api(http_api_event('{"order_id": 8, "email": "nobody"}'), None)
    driver = SQSQueueDriver(client=boto3.client("sqs", region_name=REGION, endpoint_url=moto_reset))

    assert run_worker(deployed, driver) == []

    (dead,) = driver.receive(deployed.dlq_url)
    assert json.loads(dead.body)["payload"] == {"order_id": 8, "email": "nobody"}
    assert dead.message_attributes[ATTR_REASON].string_value == "permanent_error"


def test_api_rejects_a_body_that_is_not_an_order(deployed: Deployed) -> None:
    response = deployed.api(http_api_event('{"order_id": "seven"}'), None)
    assert response["statusCode"] == 400
