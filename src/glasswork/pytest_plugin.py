"""pytest fixtures for testing glasswork jobs, loaded through the `pytest11` entry point.

Installing glasswork makes these fixtures available in every test; nothing to
add to `conftest.py`. A fixture of the same name in your own `conftest.py`
wins, and `pytest -p no:glasswork` turns the plugin off.

- `glasswork_driver`: a fresh `MockQueueDriver` per test.
- `glasswork_service`: a `JobService` over `glasswork_driver`.
- `lambda_context`: a `FakeLambdaContext` (30 s left unless the test is marked
  `@pytest.mark.lambda_context(remaining_ms=...)`).
- `glasswork_worker`: a `WorkerFactory`: `glasswork_worker(module, ...)` makes
  the real worker wired to `glasswork_driver`, and `glasswork_worker.run_all()`
  runs what the driver holds through it.

At start-up this module imports only pytest (and the `glasswork` package it
lives in); `glasswork.testing` loads when a test asks for a fixture. It never
imports an asyncio plugin: async jobs run on the worker's own event loop, or
under `asyncio.run(run_job_async(...))`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from glasswork._jobs import Module
    from glasswork.drivers.memory import MockQueueDriver
    from glasswork.service import JobService
    from glasswork.testing import FakeLambdaContext
    from glasswork.worker import Worker, WorkerHooks

__all__ = [
    "WorkerFactory",
    "glasswork_driver",
    "glasswork_service",
    "glasswork_worker",
    "lambda_context",
]

_LAMBDA_CONTEXT_MARKER = (
    "lambda_context(remaining_ms=30000, *, function_name='glasswork-test', memory_limit_in_mb=128): "
    "options of the test's `lambda_context` fixture (a glasswork.testing.FakeLambdaContext)"
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the `lambda_context` marker, so `--strict-markers` accepts it."""
    config.addinivalue_line("markers", _LAMBDA_CONTEXT_MARKER)


class WorkerFactory:
    """The `glasswork_worker` fixture: makes workers wired to the test's `glasswork_driver`.

    Call it with a module to get the real Lambda handler
    (`glasswork.testing.bootstrap_test_worker`, with `glasswork_driver` for
    dead letters and backoffs); then `run_all()` or `drain(queue)` runs the
    jobs that driver holds through the worker made last.

    Attributes:
        driver: The test's `glasswork_driver`.
    """

    def __init__(self, driver: MockQueueDriver) -> None:
        self.driver = driver
        self._worker: Worker | None = None

    def __call__(
        self,
        module: Module,
        *,
        services: Mapping[str, object] | None = None,
        hooks: WorkerHooks | None = None,
        jitter: float = 1.0,
        time_margin: float = 1.0,
        max_concurrency: int = 10,
    ) -> Worker:
        """The worker for a module tree, as `bootstrap_test_worker` makes it, on `driver`.

        Args:
            module: The root of the module tree.
            services: Service values by name, replacing the tree's factories.
            hooks: Lifecycle hooks.
            jitter: The backoff's full-jitter factor, fixed so delays are predictable.
            time_margin: As for `bootstrap_worker`.
            max_concurrency: As for `bootstrap_worker`.

        Returns:
            The handler (`worker(event, context)`, `worker.process_batch(...)`).

        Raises:
            ConfigurationError: As `bootstrap_test_worker`.
        """
        from glasswork.testing import bootstrap_test_worker  # noqa: PLC0415  # not at pytest start-up

        self._worker = bootstrap_test_worker(
            module,
            services=services,
            driver=self.driver,
            hooks=hooks,
            jitter=jitter,
            time_margin=time_margin,
            max_concurrency=max_concurrency,
        )
        return self._worker

    @property
    def worker(self) -> Worker:
        """The worker made last.

        Raises:
            RuntimeError: No worker was made in this test yet.
        """
        if self._worker is None:
            msg = (
                "glasswork_worker has made no worker in this test yet: call "
                "`glasswork_worker(module)` first, then `glasswork_worker.run_all()`"
            )
            raise RuntimeError(msg)
        return self._worker

    def run_all(self, *, max_batches: int = 1_000, batch_size: int = 10) -> int:
        """Run every job on every queue of `driver` through `worker` until none is left.

        `MockQueueDriver.run_all`: jobs enqueued by jobs run too, delays are
        skipped and retries play out at once.

        Returns:
            How many batches ran.

        Raises:
            RuntimeError: No worker was made yet, or jobs were still queued
                after `max_batches` batches.
        """
        return self.driver.run_all(self.worker, max_batches=max_batches, batch_size=batch_size)

    def drain(self, queue: str | None = None, *, max_batches: int = 1_000, batch_size: int = 10) -> int:
        """Run the jobs of one queue (`None`: the driver's default) through `worker` until none is left.

        Returns:
            How many batches ran.

        Raises:
            RuntimeError: As `run_all`.
        """
        return self.driver.drain(self.worker, queue=queue, max_batches=max_batches, batch_size=batch_size)


@pytest.fixture
def glasswork_driver() -> MockQueueDriver:
    """A fresh `MockQueueDriver` for this test."""
    from glasswork.drivers.memory import MockQueueDriver  # noqa: PLC0415  # not at pytest start-up

    return MockQueueDriver()


@pytest.fixture
def glasswork_service(glasswork_driver: MockQueueDriver) -> JobService:
    """A `JobService` that enqueues onto this test's `glasswork_driver`."""
    from glasswork.service import JobService  # noqa: PLC0415  # not at pytest start-up

    return JobService(glasswork_driver)


@pytest.fixture
def lambda_context(request: pytest.FixtureRequest) -> FakeLambdaContext:
    """A `FakeLambdaContext`: 30 s left, or what `@pytest.mark.lambda_context(...)` says.

    The marker takes `FakeLambdaContext`'s arguments: `remaining_ms` (an int,
    or a function returning one), `function_name`, `memory_limit_in_mb`.
    Spend time with `lambda_context.advance(ms)`.
    """
    from glasswork.testing import FakeLambdaContext  # noqa: PLC0415  # not at pytest start-up

    marker = request.node.get_closest_marker("lambda_context")
    if marker is None:
        return FakeLambdaContext()
    try:
        return FakeLambdaContext(*marker.args, **marker.kwargs)
    except TypeError as exc:
        pytest.fail(
            f"@pytest.mark.lambda_context: {exc}; it takes remaining_ms (int or a function "
            "returning int), function_name= and memory_limit_in_mb=",
            pytrace=False,
        )


@pytest.fixture
def glasswork_worker(glasswork_driver: MockQueueDriver) -> WorkerFactory:
    """Make workers wired to `glasswork_driver`: `glasswork_worker(module, services=...)`.

    See `WorkerFactory`; `glasswork_worker.run_all()` runs everything enqueued.
    """
    return WorkerFactory(glasswork_driver)
