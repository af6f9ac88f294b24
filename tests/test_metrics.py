"""`EmbeddedMetrics`: the worker's `on_batch` documents follow CloudWatch's Embedded Metric Format.

The checks follow AWS's specification ("Specification: Embedded metric
format", CloudWatch User Guide): a root `_aws` object with a millisecond
`Timestamp` and a `CloudWatchMetrics` array of directives, each with a
`Namespace`, `Dimensions` (an array of dimension sets, each at most 30
keys) and `Metrics` (at most 100 definitions, each a `Name` and an optional
`Unit`); every dimension and metric a directive names is a root member, a
dimension value a string, a metric value a number or an array of at most
100 numbers.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import msgspec

from glasswork import (
    MockQueueDriver,
    Module,
    PermanentJobError,
    TransientJobError,
    bootstrap_worker,
    define_job,
)
from glasswork.context import JobContext
from glasswork.metrics import EmbeddedMetrics
from glasswork.worker import BatchReport

UNITS = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Count", "Percent", "None", "Count/Second"}


class Item(msgspec.Struct, frozen=True, kw_only=True):
    n: int


def check_emf(document: dict[str, object]) -> None:
    """Assert `document` is a valid EMF document (see the module docstring)."""
    aws = document["_aws"]
    assert isinstance(aws, dict)
    assert isinstance(aws["Timestamp"], int)
    directives = aws["CloudWatchMetrics"]
    assert isinstance(directives, list)
    assert directives
    for directive in directives:
        assert isinstance(directive["Namespace"], str)
        assert 1 <= len(directive["Namespace"]) <= 1024
        for dimension_set in directive["Dimensions"]:
            assert 1 <= len(dimension_set) <= 30
            for key in dimension_set:
                value = document[key]
                assert isinstance(value, str)
                assert value.strip()
        metrics = directive["Metrics"]
        assert 1 <= len(metrics) <= 100
        for definition in metrics:
            assert set(definition) <= {"Name", "Unit", "StorageResolution"}
            assert definition.get("Unit", "None") in UNITS
            value = document[definition["Name"]]
            if isinstance(value, list):
                assert 1 <= len(value) <= 100
                assert all(isinstance(v, int | float) for v in value)
            else:
                assert isinstance(value, int | float)


def make_worker(lines: list[str], **options: object) -> tuple[MockQueueDriver, object]:
    def ok(payload: Item, ctx: JobContext) -> None:
        pass

    def flaky(payload: Item, ctx: JobContext) -> None:
        raise TransientJobError("later")

    def broken(payload: Item, ctx: JobContext) -> None:
        raise PermanentJobError("never")

    jobs = [
        define_job(name="ok", handler=ok, payload=Item),
        define_job(name="flaky", handler=flaky, payload=Item),
        define_job(name="dead", handler=broken, payload=Item),
        define_job(name="gone", handler=broken, payload=Item, retry=False),
    ]
    driver = MockQueueDriver()
    metrics = EmbeddedMetrics(namespace="shop", emit=lines.append, clock=lambda: 1_700_000_000.5, **options)  # type: ignore[arg-type]
    handler = bootstrap_worker(module=Module(name="app", jobs=jobs), driver=driver, on_batch=metrics)
    return driver, handler


def run(driver: MockQueueDriver, handler: object, names: list[str]) -> dict[str, object]:
    from glasswork import JobService

    service = JobService(driver)
    module_jobs = {job.name: job for job in handler.registry.jobs.values()}  # type: ignore[attr-defined]
    for n, name in enumerate(names):
        service.enqueue(module_jobs[name], Item(n=n))
    records = driver.receive(max_messages=len(names))
    return handler({"Records": [msgspec.to_builtins(r) for r in records]})  # type: ignore[operator, no-any-return]


def test_one_document_per_job_with_counts_and_durations() -> None:
    lines: list[str] = []
    driver, handler = make_worker(lines)
    response = run(driver, handler, ["ok", "ok", "flaky", "dead", "gone", "ok"])
    assert len(response["batchItemFailures"]) == 1  # type: ignore[arg-type]
    documents = [json.loads(line) for line in lines]
    for document in documents:
        check_emf(document)
    by_job = {d["JobName"]: d for d in documents}
    assert set(by_job) == {"ok", "flaky", "dead", "gone"}
    ok = by_job["ok"]
    assert ok["_aws"]["Timestamp"] == 1_700_000_000_500
    assert ok["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "shop"
    assert ok["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["JobName"]]
    assert (ok["JobsSucceeded"], ok["JobsFailed"], ok["JobsDeadLettered"], ok["JobsDiscarded"]) == (
        3,
        0,
        0,
        0,
    )
    assert len(ok["JobDuration"]) == 3
    assert all(v >= 0 for v in ok["JobDuration"])
    assert by_job["flaky"]["JobsFailed"] == 1
    assert by_job["dead"]["JobsDeadLettered"] == 1
    assert by_job["gone"]["JobsDiscarded"] == 1
    units = {m["Name"]: m["Unit"] for m in ok["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {
        "JobsSucceeded": "Count",
        "JobsFailed": "Count",
        "JobsDeadLettered": "Count",
        "JobsDiscarded": "Count",
        "JobDuration": "Milliseconds",
    }


def test_queue_and_function_dimensions_and_more_than_100_durations() -> None:
    lines: list[str] = []
    driver, handler = make_worker(
        lines, dimensions=("JobName", "Queue", "FunctionName"), function_name="worker"
    )
    run(driver, handler, ["ok"] * 150)
    documents = [json.loads(line) for line in lines]
    for document in documents:
        check_emf(document)
    assert len(documents) == 2
    first, rest = documents
    assert first["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["JobName", "Queue", "FunctionName"]]
    assert (first["JobName"], first["Queue"], first["FunctionName"]) == ("ok", "default", "worker")
    assert first["JobsSucceeded"] == 150
    assert len(first["JobDuration"]) == 100
    assert len(rest["JobDuration"]) == 50
    assert [m["Name"] for m in rest["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == ["JobDuration"]


def test_default_emit_prints_json_lines_and_a_raising_callback_changes_nothing() -> None:
    out = io.StringIO()
    metrics = EmbeddedMetrics()
    with redirect_stdout(out):
        metrics(BatchReport(settled=[]))
    assert out.getvalue() == ""

    def boom(report: BatchReport) -> None:
        raise RuntimeError("metrics down")

    def ok(payload: Item, ctx: JobContext) -> None:
        pass

    driver = MockQueueDriver()
    job = define_job(name="ok", handler=ok, payload=Item)
    handler = bootstrap_worker(module=Module(name="app", jobs=[job]), driver=driver, on_batch=boom)
    from glasswork import JobService

    JobService(driver).enqueue(job, Item(n=1))
    records = driver.receive(max_messages=1)
    assert handler({"Records": [msgspec.to_builtins(r) for r in records]}) == {"batchItemFailures": []}
