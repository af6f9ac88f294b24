"""The Powertools recipes of examples/powertools_observability.py: Tracer subsegments and EMF metrics.

Powertools' `Tracer` is off outside Lambda; the tracer test turns it on
(`LAMBDA_TASK_ROOT`) with a provider that records subsegments instead of
sending them to an X-Ray daemon.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from collections.abc import Generator, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from glasswork import MockQueueDriver
from glasswork.testing import FakeLambdaContext, job_record, sqs_event
from tests.test_metrics import check_emf

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Segment(BaseSegment):
    def __init__(self, name: str, log: list[dict[str, Any]]) -> None:
        self.entry: dict[str, Any] = {"name": name, "annotations": {}, "error": None}
        log.append(self.entry)

    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        self.entry["annotations"][key] = value

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(self, exception: BaseException, stack: list[Any], remote: bool = False) -> None:
        self.entry["error"] = exception


class Recorder(BaseProvider):
    """Records subsegments; annotations go to the innermost open one."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []
        self.stack: list[Segment] = []

    @contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        segment = Segment(str(name), self.log)
        self.stack.append(segment)
        try:
            yield segment
        finally:
            self.stack.pop()

    in_subsegment_async = in_subsegment  # type: ignore[assignment]  # unused: every job here is sync

    def put_annotation(self, key: str, value: Any) -> None:
        self.stack[-1].put_annotation(key, value)

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Any) -> None:
        pass

    def patch_all(self) -> None:
        pass


@pytest.fixture
def example() -> Iterator[ModuleType]:
    module = load_example("powertools_observability")
    yield module
    module.metrics.clear_metrics()
    Tracer._reset_config()  # type: ignore[no-untyped-call]  # Powertools' own test helper


def event(example: ModuleType) -> dict[str, object]:
    job = example.invoices.jobs[0]
    return sqs_event(
        [
            job_record(job, {"invoice_id": "i-1", "cents": 500}, job_id="j-1", message_id="m1"),
            job_record(job, {"invoice_id": "i-2", "cents": -5}, job_id="j-2", message_id="m2"),
        ]
    )


def test_tracer_gives_each_job_a_subsegment_with_its_annotations(
    example: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    recorder = Recorder()
    monkeypatch.setattr(example.tracer, "provider", recorder)  # the module's tracer, made at import
    monkeypatch.setattr(example.tracer, "disabled", False)
    handler = example.make_handler(MockQueueDriver())
    with redirect_stdout(io.StringIO()):
        assert handler(event(example), FakeLambdaContext()) == {"batchItemFailures": []}
    jobs = [entry for entry in recorder.log if entry["name"].endswith("send_invoice")]
    assert [entry["name"] for entry in jobs] == ["## example_powertools_observability.send_invoice"] * 2, (
        recorder.log
    )
    assert [entry["annotations"] for entry in jobs] == [
        {"job_name": "send_invoice", "job_id": "j-1"},
        {"job_name": "send_invoice", "job_id": "j-2"},
    ]


def test_metrics_hooks_flush_valid_emf_documents(example: ModuleType) -> None:
    driver = MockQueueDriver()
    handler = example.make_handler(driver)
    out = io.StringIO()
    with redirect_stdout(out):
        assert handler(event(example), FakeLambdaContext()) == {"batchItemFailures": []}
    documents = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    for document in documents:
        check_emf(document)
    flushed = next(d for d in documents if "JobSucceeded" in d)
    assert (flushed["JobSucceeded"], flushed["JobFailed"]) in [(1.0, 1.0), ([1.0], [1.0])]
    assert flushed["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Billing"
    single = next(d for d in documents if "JobFailedByName" in d)
    assert single["job_name"] == "send_invoice"
    assert [d.job_id for d in driver.dead_letters] == ["j-2"]
