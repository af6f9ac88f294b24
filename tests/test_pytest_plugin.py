"""`glasswork.pytest_plugin`: its fixtures, run inside `pytester`, and its registration."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = {"glasswork_driver", "glasswork_service", "glasswork_worker", "lambda_context"}

APP = """
import asyncio

import msgspec
from glasswork import JobContext, JobService, MockQueueDriver, Module, PermanentJobError, define_job


class Signup(msgspec.Struct, frozen=True):
    email: str


def register(signup: Signup, ctx: JobContext) -> None:
    if "@" not in signup.email:
        raise PermanentJobError(f"not an email address: {signup.email!r}")
    ctx.services.jobs.enqueue(greet_job, signup)


async def greet(signup: Signup, ctx: JobContext) -> str:
    await asyncio.sleep(0)
    ctx.services.outbox.append(signup.email)
    return f"greeted {signup.email}"


register_job = define_job(name="register", handler=register, payload=Signup)
greet_job = define_job(name="greet", handler=greet, payload=Signup, queue="emails")
signups = Module(
    name="signups",
    jobs=[register_job, greet_job],
    services={"jobs": lambda: JobService(MockQueueDriver()), "outbox": list},
)
"""


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester directory holding `app.py`, the module the inner tests import."""
    pytester.makepyfile(app=APP)
    pytester.syspathinsert()
    return pytester


def test_the_entry_point_names_the_plugin() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert found.get("glasswork") == "glasswork.pytest_plugin", (
        "the pytest11 entry point is missing: reinstall with `pip install -e .`"
    )


def test_pytest_finds_the_plugin_through_the_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(glasswork_driver):\n    assert glasswork_driver.jobs == []\n")
    result = pytester.runpytest_subprocess("--trace-config")
    result.stdout.fnmatch_lines(["*glasswork.pytest_plugin*"])
    result.assert_outcomes(passed=1)


def test_the_plugin_can_be_turned_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(glasswork_driver):\n    pass\n")
    result = pytester.runpytest("-p", "no:glasswork")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'glasswork_driver' not found*"])


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    probe = (
        "import json, sys, pytest\n"
        "before = set(sys.modules)\n"
        "import glasswork.pytest_plugin\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(ast.literal_eval(completed.stdout))
    heavy = {"glasswork.testing", "glasswork.local", "asyncio", "pytest_asyncio", "anyio", "hypothesis"}
    assert loaded & heavy == set()
    assert "glasswork.pytest_plugin" in loaded


def test_fixture_names_do_not_clash_with_the_repos_own() -> None:
    tree = ast.parse((ROOT / "tests" / "conftest.py").read_text())
    names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert names & FIXTURES == set()


def test_glasswork_driver_is_fresh_for_each_test(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest
        from glasswork import JobService, MockQueueDriver
        from app import Signup, register_job


        @pytest.mark.parametrize("email", ["ada@example.com", "bob@example.com"])
        def test_one_job_each(glasswork_driver, glasswork_service, email):
            assert isinstance(glasswork_driver, MockQueueDriver)
            assert isinstance(glasswork_service, JobService)
            assert glasswork_service.driver is glasswork_driver
            glasswork_service.enqueue(register_job, Signup(email=email))
            assert [j.payload for j in glasswork_driver.jobs] == [Signup(email=email)]
        """
    )
    app.runpytest("--strict-markers").assert_outcomes(passed=2)


def test_lambda_context_defaults_and_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from glasswork.testing import FakeLambdaContext


        def test_default(lambda_context):
            assert isinstance(lambda_context, FakeLambdaContext)
            assert lambda_context.get_remaining_time_in_millis() == 30_000


        @pytest.mark.lambda_context(remaining_ms=500, function_name="shop-worker")
        def test_marked(lambda_context):
            assert lambda_context.function_name == "shop-worker"
            lambda_context.advance(200)
            assert lambda_context.get_remaining_time_in_millis() == 300


        @pytest.mark.lambda_context(1_000)
        class TestOnAClass:
            def test_inherits(self, lambda_context):
                assert lambda_context.get_remaining_time_in_millis() == 1_000

            @pytest.mark.lambda_context(remaining_ms=lambda: 42)
            def test_closest_wins(self, lambda_context):
                assert lambda_context.get_remaining_time_in_millis() == 42
        """
    )
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=4)


def test_a_bad_lambda_context_marker_says_what_it_takes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest


        @pytest.mark.lambda_context(timeout=5)
        def test_typo(lambda_context):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.lambda_context: *unexpected keyword argument 'timeout'; it takes remaining_ms*"]
    )


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.lambda_context(remaining_ms=30000*"])


def test_glasswork_worker_runs_what_the_driver_holds(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest
        from glasswork.worker import Worker
        from app import Signup, greet_job, register_job, signups
        from glasswork.testing import job_record, sqs_event


        def test_run_all(glasswork_worker, glasswork_service, glasswork_driver):
            outbox = []
            worker = glasswork_worker(signups, services={"jobs": glasswork_service, "outbox": outbox})
            assert isinstance(worker, Worker) and glasswork_worker.worker is worker
            assert glasswork_worker.driver is glasswork_driver
            glasswork_service.enqueue(register_job, Signup(email="ada@example.com"))
            glasswork_service.enqueue(register_job, Signup(email="nobody"))
            assert glasswork_worker.run_all() >= 2
            assert outbox == ["ada@example.com"]
            assert [(d.job_name, d.reason) for d in glasswork_driver.dead_letters] == [
                ("register", "permanent_error")
            ]


        def test_drain_one_queue(glasswork_worker, glasswork_service, glasswork_driver):
            outbox = []
            glasswork_worker(signups, services={"jobs": glasswork_service, "outbox": outbox})
            glasswork_service.enqueue(greet_job, Signup(email="ada@example.com"))
            glasswork_service.enqueue(register_job, Signup(email="bob@example.com"))
            assert glasswork_worker.drain("emails") == 1
            assert outbox == ["ada@example.com"]
            assert glasswork_driver.counts().visible == 1


        @pytest.mark.lambda_context(remaining_ms=500)
        def test_with_the_lambda_context(glasswork_worker, lambda_context):
            worker = glasswork_worker(signups, services={"outbox": []}, time_margin=1.0)
            event = sqs_event([job_record(greet_job, {"email": "a@example.com"}, message_id="late")])
            assert worker.process_batch(event, lambda_context).ids("failed") == ["late"]
        """
    )
    app.runpytest("--strict-markers").assert_outcomes(passed=3)


def test_running_before_making_a_worker_says_what_to_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_forgot(glasswork_worker):
            glasswork_worker.run_all()
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RuntimeError: glasswork_worker has made no worker in this test yet:"
            " call `glasswork_worker(module)` first*"
        ]
    )


def test_a_failed_enqueue_assertion_shows_how_jobs_differ(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        from app import Signup, register_job


        def test_wrong_email(glasswork_service, glasswork_driver):
            glasswork_service.enqueue(register_job, Signup(email="ada@example.com"))
            glasswork_driver.assert_enqueued(register_job, {"email": "bob@example.com"})
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*expected at least one 'register' job with payload matching {'email': 'bob@*'}, found 0",
            "*register[[]0[]] (job id *) differs: payload.email: expected 'bob@*', got 'ada@example.com'",
        ]
    )


def test_async_jobs_need_no_async_plugin(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import asyncio
        import sys

        import pytest
        from app import Signup, greet_job, signups
        from glasswork.testing import run_job, run_job_async


        def test_no_async_plugin_is_loaded(pytestconfig):
            assert "pytest_asyncio" not in sys.modules
            assert not pytestconfig.pluginmanager.has_plugin("asyncio")


        def test_run_job_async_under_asyncio_run():
            outbox = []
            job = run_job_async(greet_job, {"email": "a@example.com"}, services={"outbox": outbox})
            run = asyncio.run(job)
            assert run.returned == "greeted a@example.com" and outbox == ["a@example.com"]


        def test_run_job_runs_an_async_handler():
            assert run_job(greet_job, {"email": "a@example.com"}, services={"outbox": []}).succeeded


        def test_the_worker_runs_its_own_loop(glasswork_worker, glasswork_service):
            outbox = []
            glasswork_worker(signups, services={"outbox": outbox})
            glasswork_service.enqueue(greet_job, Signup(email="a@example.com"))
            glasswork_worker.run_all()
            assert outbox == ["a@example.com"]


        def test_inside_a_running_loop(glasswork_worker, glasswork_service):
            outbox = []
            glasswork_worker(signups, services={"outbox": outbox})
            glasswork_service.enqueue(greet_job, Signup(email="a@example.com"))

            async def main():
                with pytest.raises(RuntimeError, match="run_job_async"):
                    run_job(greet_job, {"email": "a@example.com"}, services={"outbox": outbox})
                await asyncio.to_thread(glasswork_worker.run_all)

            asyncio.run(main())
            assert outbox == ["a@example.com"]
        """
    )
    app.runpytest("-W", "error").assert_outcomes(passed=5)


def test_the_documented_fixture_example_passes(pytester: pytest.Pytester) -> None:
    blocks = re.findall(
        r'^```python title="test_signup\.py"\n(.*?)^```',
        (ROOT / "docs" / "testing.md").read_text(),
        re.S | re.M,
    )
    assert len(blocks) == 1
    pytester.makepyfile(test_signup=blocks[0])
    pytester.runpytest("--strict-markers", "-W", "error").assert_outcomes(passed=3)
