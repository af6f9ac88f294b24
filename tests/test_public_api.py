"""The public surface: `__all__`, import cost, the error tree and `py.typed`."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import glasswork
import glasswork.errors
from glasswork.errors import GlassworkError, InvalidJobPayloadError, PermanentJobError

DESIGN_PUBLIC_NAMES = """
    define_job, define_periodic_job, Job, Module,
    bootstrap_worker, WorkerHooks, JobExecution, JobContext,
    JobService, EnqueueResult, JobMessage, QueueDriver, MockQueueDriver,
    RetryPolicy, Backoff,
    GlassworkError, TransientJobError, PermanentJobError,
    InvalidJobPayloadError, RetryExhaustedError, PayloadTooLargeError,
    classify_error, decide_retry, process_record,
    Ack, Retry, DeadLetter, Discard, Defer, SQSRecord, RecordResult, Services,
    AsyncJobService,
"""
"""The `from glasswork import (...)` list of DESIGN.md, verbatim."""

NOT_YET_BUILT: set[str] = set()
"""Names of DESIGN.md that a later issue delivers (none left: issue 13 delivered `AsyncJobService`)."""

PUBLIC_API = [
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
"""The exact public surface; a change to it is a change to this list, on purpose."""


def design_names() -> list[str]:
    return [name.strip() for name in DESIGN_PUBLIC_NAMES.split(",") if name.strip()]


def test_all_is_sorted_and_unique() -> None:
    names = list(glasswork.__all__)

    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_every_name_in_all_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec(f"from glasswork import {', '.join(glasswork.__all__)}", namespace)

    for name in glasswork.__all__:
        assert namespace[name] is getattr(glasswork, name)


def test_every_design_name_is_exported() -> None:
    assert len(design_names()) == 33
    missing = sorted(set(design_names()) - set(glasswork.__all__) - NOT_YET_BUILT)

    assert missing == []


def test_all_is_exactly_the_public_api() -> None:
    assert list(glasswork.__all__) == PUBLIC_API


def test_the_hand_composed_example_imports_from_glasswork_only() -> None:
    source = (Path(__file__).parent.parent / "examples" / "compose_by_hand.py").read_text()
    imported = re.findall(r"^\s*(?:from|import) (glasswork[\w.]*)", source, re.MULTILINE)

    assert imported
    assert set(imported) <= {"glasswork", "glasswork.testing"}


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from glasswork import *", namespace)

    assert sorted(k for k in namespace if k != "__builtins__") == sorted(glasswork.__all__)


def test_exported_objects_come_from_glasswork() -> None:
    for name in glasswork.__all__:
        value = getattr(glasswork, name)
        if type(value) is int:  # a constant: MAX_ENQUEUE_DELAY_SECONDS
            continue
        if isinstance(value, types.UnionType):  # a type alias such as Outcome
            assert all(m.__module__.startswith("glasswork") for m in value.__args__), name
            continue
        module = getattr(value, "__module__", "")
        assert module.startswith("glasswork"), (name, module)


_IMPORT_PROBE = """
import json, sys
import glasswork
print(json.dumps(sorted(sys.modules)))
"""


def imported_by_import_glasswork() -> set[str]:
    """The modules loaded by `import glasswork` in a fresh interpreter."""
    completed = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(completed.stdout))


@pytest.fixture(scope="module")
def loaded() -> set[str]:
    return imported_by_import_glasswork()


@pytest.mark.parametrize(
    "module",
    [
        "boto3",
        "botocore",
        "redis",
        "glasswork.cli",
        "glasswork.local",
        "glasswork.drivers.sqs",
        "glasswork.drivers.sqs_admin",
        "glasswork.drivers._sqs_common",
        "glasswork.drivers.sqlite",
        "glasswork.drivers.redis",
        "glasswork._threads",
        "glasswork.testing_faults",
        "sqlite3",
        "argparse",
        "queue",
    ],
)
def test_import_glasswork_does_not_load(loaded: set[str], module: str) -> None:
    assert "glasswork" in loaded
    assert module not in loaded


@pytest.mark.parametrize("module", ["asyncio", "ssl", "concurrent.futures"])
def test_import_glasswork_does_not_load_asyncio(loaded: set[str], module: str) -> None:
    assert module not in loaded


def test_errors_all_is_sorted() -> None:
    names = list(glasswork.errors.__all__)

    assert names == sorted(names)


@pytest.mark.parametrize("name", glasswork.errors.__all__)
def test_every_error_subclasses_glassworkerror(name: str) -> None:
    error = getattr(glasswork.errors, name)

    assert inspect.isclass(error)
    assert issubclass(error, Exception)
    assert issubclass(error, GlassworkError)


def drawn_tree() -> dict[str, str | None]:
    """The error tree drawn in `glasswork.errors`' docstring: each class and its drawn parent."""
    doc = glasswork.errors.__doc__ or ""
    block = doc.split("```")[1]
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in block.strip("\n").splitlines():
        match = re.match(r"^((?:[│ ]   |[├└]── )*)(\w+)", line)
        assert match is not None, line
        depth = len(match.group(1)) // 4
        del stack[depth:]
        parents[match.group(2)] = stack[-1] if stack else None
        stack.append(match.group(2))
    return parents


def test_the_drawn_error_tree_matches_the_classes() -> None:
    tree = drawn_tree()

    assert set(tree) == set(glasswork.errors.__all__)
    assert tree["GlassworkError"] is None
    for name, parent in tree.items():
        if parent is not None:
            error = getattr(glasswork.errors, name)
            assert error.__bases__ == (getattr(glasswork.errors, parent),), name


def test_every_exception_class_in_errors_is_listed() -> None:
    defined = {
        name
        for name, value in vars(glasswork.errors).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == "glasswork.errors"
    }

    assert defined == set(glasswork.errors.__all__)


def test_exported_errors_are_the_errors_module_classes() -> None:
    for name in glasswork.__all__:
        value = getattr(glasswork, name)
        if inspect.isclass(value) and issubclass(value, BaseException):
            assert getattr(glasswork.errors, name) is value


def test_invalid_payload_is_a_permanent_error() -> None:
    assert issubclass(InvalidJobPayloadError, PermanentJobError)
    assert isinstance(InvalidJobPayloadError("bad", job_name="j"), PermanentJobError)
    assert glasswork.classify_error(InvalidJobPayloadError("bad", job_name="j")) == "permanent"


def test_py_typed_is_shipped_in_the_package_directory() -> None:
    marker = importlib.resources.files("glasswork") / "py.typed"
    package_dir = Path(glasswork.__file__).parent

    assert marker.is_file()
    assert (package_dir / "py.typed").is_file()
    assert (package_dir / "__init__.py").is_file()


def test_drivers_package_does_not_import_any_driver() -> None:
    drivers = importlib.import_module("glasswork.drivers")

    for name in drivers.__all__:
        assert getattr(drivers, name).__module__ == "glasswork.drivers.base"
