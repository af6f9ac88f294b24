"""The local runtime behaves like Lambda + SQS: the user's handler, honest timeouts, bounded inputs.

Issue 11's findings, each as a test: the handler `bootstrap_worker` returned
runs through `glasswork worker` with its own hooks and options; the function
timeout stays within the queue's visibility timeout; stale receipt handles
and overrun batches are logged, never silent; delays are bounded; every
driver's `from_url` returns the driver; `JobService` names a wrong driver.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from glasswork import JobContext, JobService, Module, bootstrap_worker, define_job
from glasswork._wire import MAX_ENQUEUE_DELAY_SECONDS, JobMessage
from glasswork.cli import _MAX_DELAY, main
from glasswork.drivers.memory import MockQueueDriver
from glasswork.drivers.sqlite import SQLiteQueueDriver
from glasswork.errors import ConfigurationError
from glasswork.local import LocalLambdaContext, Poller, effective_visibility_timeout

HANDLER_APP = """
import json
import logging
import os

from glasswork import Module, PermanentJobError, WorkerHooks, bootstrap_worker, define_job


def _note(*fields):
    with open(os.environ["GW_RT_LOG"], "a") as log:
        log.write(json.dumps(fields) + "\\n")


def greet(payload, ctx):
    _note("run", ctx.job_name, ctx.services.get("greeting", str))


def charge(payload, ctx):
    raise PermanentJobError("card declined")


app = Module(
    name="rtapp",
    jobs=[define_job(name="greet", handler=greet), define_job(name="charge", handler=charge)],
    services={"greeting": lambda: "hello"},
)
hooks = WorkerHooks(
    on_job_start=lambda execution, ctx: _note("start", execution.job_name),
    on_job_complete=lambda execution, ctx: _note("complete", execution.job_name),
    on_job_dead_letter=lambda execution, ctx, error: _note("dead", execution.job_name, str(error)),
)
handler = bootstrap_worker(module=app, hooks=hooks, logger=logging.getLogger("rtapp.jobs"))
greedy = bootstrap_worker(module=app, time_margin=5)
"""


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "app"
    root.mkdir()
    (root / "gw_rt_app.py").write_text(HANDLER_APP)
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("GW_RT_LOG", str(tmp_path / "notes.jsonl"))
    yield root
    sys.modules.pop("gw_rt_app", None)


def _notes(tmp_path: Path) -> list[list[object]]:
    path = tmp_path / "notes.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- the user's handler runs locally --------------------------------------------


def test_worker_runs_the_users_handler_with_its_hooks_services_and_logger(
    app_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    assert _run(capsys, "enqueue", "gw_rt_app:handler", "greet", "{}", "--queue", url)[0] == 0
    assert _run(capsys, "enqueue", "gw_rt_app:handler", "charge", "{}", "--queue", url)[0] == 0

    with caplog.at_level(logging.INFO):
        code, _, err = _run(capsys, "worker", "gw_rt_app:handler", "--queue", url, "--burst")

    assert code == 0, err
    notes = _notes(tmp_path)
    assert ["run", "greet", "hello"] in notes
    assert ["start", "greet"] in notes
    assert ["complete", "greet"] in notes
    assert ["dead", "charge", "card declined"] in notes
    # Outcomes are logged through the handler's own logger, as on Lambda.
    assert any(r.name == "rtapp.jobs" and "dead_lettered" in r.getMessage() for r in caplog.records)
    # The dead letter went to the local queue, not to an SQS driver made from the environment.
    with SQLiteQueueDriver.from_url(url) as driver:
        assert driver.counts().dead == 1
        [entry] = driver.list_dead_letters()
    assert (entry.job_name, entry.error_message) == ("charge", "card declined")


def test_a_handlers_time_margin_that_leaves_no_time_is_a_usage_error(
    app_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"

    code, out, err = _run(
        capsys, "worker", "gw_rt_app:greedy", "--queue", url, "--burst", "--visibility-timeout", "4"
    )

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "time_margin (5 s) is not below the function timeout (4 s" in err


def test_an_app_that_is_neither_module_nor_handler_is_named(
    app_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "worker", "gw_rt_app:hooks", "--queue", f"sqlite:///{tmp_path / 'q.db'}")

    assert code == 2
    assert "is of type WorkerHooks, not a glasswork Module or the handler bootstrap_worker returned" in err


def test_with_driver_shares_everything_but_the_driver() -> None:
    module = Module(name="m", jobs=[define_job(name="j", handler=lambda p, c: None)])
    first, second = MockQueueDriver(), MockQueueDriver()
    worker = bootstrap_worker(module=module, driver=first, time_margin=2, max_concurrency=3)

    other = worker.with_driver(second)

    assert (other.driver, other.explicit_driver, worker.driver) == (second, second, first)
    assert (other.registry, other.services, other.hooks) == (worker.registry, worker.services, worker.hooks)
    assert (other.time_margin_ms, other.max_concurrency) == (2000, 3)
    assert bootstrap_worker(module=module).explicit_driver is None


# --- timeouts as on Lambda + SQS ----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_function_timeout_follows_the_queues_stored_visibility_timeout(tmp_path: Path) -> None:
    clock = Clock()
    with SQLiteQueueDriver(tmp_path / "q.db", clock=clock) as driver:
        driver.configure_queue("default", visibility_timeout=2)
        remaining: list[int] = []

        def handler(event: dict[str, object], context: LocalLambdaContext) -> None:
            remaining.append(context.get_remaining_time_in_millis())

        poller = Poller(handler, driver, clock=clock)
        assert (poller.function_timeout, poller.effective_visibility_timeout) == (2.0, 2)
        assert effective_visibility_timeout(driver, "default") == 2
        assert effective_visibility_timeout(driver, "default", 7) == 7
        assert Poller(handler, driver, visibility_timeout=7).function_timeout == 7.0
        with pytest.raises(
            ValueError, match=r"function_timeout \(5.0 s\) must not exceed the visibility timeout \(2 s\)"
        ):
            Poller(handler, driver, function_timeout=5.0)

        driver.enqueue(JobMessage(job_name="j", payload=None, job_id="1", delay_seconds=0))
        poller.poll_once()
    assert remaining == [2000]


def test_cli_worker_reads_the_queues_visibility_timeout(
    app_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SQLiteQueueDriver(tmp_path / "q.db") as driver:
        driver.configure_queue("default", visibility_timeout=3)
    url = f"sqlite:///{tmp_path / 'q.db'}"

    code, _, err = _run(capsys, "worker", "gw_rt_app:app", "--queue", url, "--burst")
    assert code == 0, err
    assert "visibility timeout 3 s, function timeout 3 s" in err

    code, _, err = _run(
        capsys, "worker", "gw_rt_app:app", "--queue", url, "--burst", "--visibility-timeout", "40"
    )
    assert code == 0, err
    assert "visibility timeout 40 s, function timeout 30 s" in err


def test_a_zero_visibility_timeout_queue_is_refused_in_one_line(
    app_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SQLiteQueueDriver(tmp_path / "q.db") as driver:
        driver.configure_queue("default", visibility_timeout=0)

    code, _, err = _run(capsys, "worker", "gw_rt_app:app", "--queue", f"sqlite:///{tmp_path / 'q.db'}")

    assert code == 2
    assert "visibility timeout of 0 s" in err
    assert "--visibility-timeout" in err


def _stale_batch(tmp_path: Path, *, run_for: float) -> tuple[SQLiteQueueDriver, Clock, str]:
    """A batch whose only record reappears (visibility 2 s) and is received by a second worker."""
    clock = Clock()
    driver = SQLiteQueueDriver(tmp_path / "q.db", clock=clock, visibility_timeout=2)
    message_id = driver.enqueue(
        JobMessage(job_name="j", payload=None, job_id="1", delay_seconds=0)
    ).message_id
    return driver, clock, message_id


def test_a_stale_delete_is_a_warning_naming_the_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    driver, clock, message_id = _stale_batch(tmp_path, run_for=3)

    def slow_handler(event: dict[str, object], context: LocalLambdaContext) -> None:
        clock.now += 3  # past the visibility timeout ...
        assert len(driver.receive()) == 1  # ... so another worker receives it meanwhile

    poller = Poller(slow_handler, driver, clock=clock, visibility_timeout=2)
    with caplog.at_level(logging.WARNING, logger="glasswork.local"):
        report = poller.poll_once()

    assert (report.deleted, report.stale) == ((), (message_id,))
    assert report.timed_out
    stale = [r for r in caplog.records if "receipt handle is stale" in r.getMessage()]
    assert len(stale) == 1
    assert message_id in stale[0].getMessage()
    assert stale[0].levelno == logging.WARNING
    assert driver.counts().in_flight == 1  # the second receive still holds it: nothing lost
    driver.close()


def test_an_overrun_batch_is_logged_with_what_lambda_would_have_done(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    with SQLiteQueueDriver(tmp_path / "q.db", clock=clock, visibility_timeout=10) as driver:
        driver.enqueue(JobMessage(job_name="j", payload=None, job_id="1", delay_seconds=0))

        def handler(event: dict[str, object], context: LocalLambdaContext) -> None:
            clock.now += 12

        with caplog.at_level(logging.ERROR, logger="glasswork.local"):
            report = Poller(handler, driver, clock=clock).poll_once()

    assert report.timed_out
    [record] = [r for r in caplog.records if r.name == "glasswork.local"]
    assert record.levelno == logging.ERROR
    text = record.getMessage()
    assert "took 12.0 s, over the function timeout of 10.0 s" in text
    assert "Lambda would have stopped the invocation at 10.0 s" in text
    assert "redelivered all 1" in text


def test_sqlite_delete_tells_stale_handles_from_its_own_dead_letters(tmp_path: Path) -> None:
    clock = Clock()
    with SQLiteQueueDriver(tmp_path / "q.db", clock=clock, visibility_timeout=2) as driver:
        for n in range(3):
            driver.enqueue(JobMessage(job_name="j", payload=None, job_id=str(n), delay_seconds=0))
        first = driver.receive(max_messages=3)
        from glasswork.drivers.base import DeadLetterInfo

        info = DeadLetterInfo(
            reason="permanent_error", error_type="E", error_message="m", attempt=1, source_queue="q"
        )
        driver.dead_letter(first[0], info)
        clock.now += 3
        again = driver.receive(max_messages=3)
        assert {r.message_id for r in again} == {r.message_id for r in first[1:]}

        assert driver.delete(first) == [r.message_id for r in first[1:]]
        assert driver.delete(again) == []
        assert driver.delete(again[:1]) == [again[0].message_id]
        assert driver.counts() == driver.counts().__class__(visible=0, in_flight=0, delayed=0, dead=1)


def test_memory_delete_reports_stale_handles() -> None:
    clock = Clock()
    driver = MockQueueDriver(clock=clock, visibility_timeout=2)
    driver.enqueue(JobMessage(job_name="j", payload=None, job_id="1", delay_seconds=0))
    [first] = driver.receive()
    clock.now += 3
    [again] = driver.receive()

    assert driver.delete([first]) == [first.message_id]
    assert driver.delete([again]) == []


def test_a_stale_visibility_change_is_a_warning_naming_the_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from glasswork import TransientJobError

    clock = Clock()
    with SQLiteQueueDriver(tmp_path / "q.db", clock=clock, visibility_timeout=2) as driver:

        def flaky(payload: object, ctx: JobContext) -> None:
            clock.now += 3
            driver.receive()  # another worker takes it once it reappears
            raise TransientJobError("later", retry_after=60)

        module = Module(name="m", jobs=[define_job(name="flaky", handler=flaky)])
        worker = bootstrap_worker(module=module, driver=driver)
        JobService(driver).enqueue(module.jobs[0], None)
        with caplog.at_level(logging.WARNING):
            Poller(worker, driver, clock=clock, visibility_timeout=2).poll_once()

    [warning] = [r for r in caplog.records if "could not change visibility" in r.getMessage()]
    assert "receipt handle stale" in warning.getMessage()


# --- schema upgrade -------------------------------------------------------------


def test_a_version_1_queue_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with SQLiteQueueDriver(path) as driver:
        driver.enqueue(JobMessage(job_name="j", payload=None, job_id="1", delay_seconds=0))
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX glasswork_dead_letters_message")
    conn.execute("DROP TABLE glasswork_schedule_ticks")
    conn.execute("DROP TABLE glasswork_meta")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    with SQLiteQueueDriver(path) as driver:
        assert driver.counts().visible == 1
    conn = sqlite3.connect(path)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    assert {"glasswork_dead_letters_message", "glasswork_schedule_ticks", "glasswork_meta"} <= names
    assert version == 2


# --- bounded delays -------------------------------------------------------------


def _noop(payload: object, ctx: JobContext) -> None:
    return None


JOB = define_job(name="j", handler=_noop)


@pytest.mark.parametrize("delay", [MAX_ENQUEUE_DELAY_SECONDS + 1, 1e12, float("inf"), float("nan"), -1])
def test_job_service_refuses_delays_out_of_bounds(delay: float) -> None:
    service = JobService(MockQueueDriver())

    with pytest.raises(ValueError, match="delay must be"):
        service.enqueue(JOB, None, delay=delay)


def test_the_longest_delay_is_accepted_and_documented_once() -> None:
    driver = MockQueueDriver()
    JobService(driver).enqueue(JOB, None, delay=MAX_ENQUEUE_DELAY_SECONDS)

    assert driver.jobs[0].delay_seconds == MAX_ENQUEUE_DELAY_SECONDS == _MAX_DELAY == 365 * 24 * 3600


@pytest.mark.parametrize("make", [MockQueueDriver, "sqlite"])
def test_drivers_refuse_a_message_delayed_past_the_bound(make: object, tmp_path: Path) -> None:
    driver = SQLiteQueueDriver(tmp_path / "q.db") if make == "sqlite" else MockQueueDriver()
    message = JobMessage(job_name="j", payload=None, job_id="1", delay_seconds=MAX_ENQUEUE_DELAY_SECONDS + 1)

    with pytest.raises(ValueError, match="at most 31536000 seconds"):
        driver.enqueue(message)
    if isinstance(driver, SQLiteQueueDriver):
        with pytest.raises(ValueError, match="at most"):
            driver.enqueue_batch([message])
        with pytest.raises(ValueError, match="at most"):
            driver.send_raw("{}", delay_seconds=1e12)
        assert driver.counts().pending == 0
        driver.close()


def test_cli_refuses_a_delay_of_31700_years(
    app_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"

    code, out, err = _run(
        capsys, "enqueue", "gw_rt_app:app", "greet", "{}", "--queue", url, "--delay", "1e12"
    )

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "--delay: expected at most 31536000 seconds (365 days), got '1e12'" in err
    assert not (tmp_path / "q.db").exists()


# --- one from_url shape ----------------------------------------------------------


def test_job_service_names_a_driver_construction_mistake(tmp_path: Path) -> None:
    pair = (SQLiteQueueDriver(tmp_path / "q.db"), "default")

    with pytest.raises(ConfigurationError, match="got a tuple; pass the driver itself"):
        JobService(pair)  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(ConfigurationError, match=r"needs a queue driver .* got a str"):
        JobService("sqlite:///q.db")  # type: ignore[arg-type]  # the mistake under test
    pair[0].close()


def test_sqlite_from_url_returns_the_driver_with_its_queue(tmp_path: Path) -> None:
    with SQLiteQueueDriver.from_url(f"sqlite:///{tmp_path / 'q.db'}?queue=emails") as driver:
        result = JobService(driver, default_queue=driver.default_queue).enqueue(JOB, None)
        assert driver.counts("emails").visible == 1
    assert result.job_id


# --- found by the Redis driver's differential test ---------------------------------


def test_a_handle_from_before_a_redrive_stays_stale(tmp_path: Path) -> None:
    """SQLite reused the row id on redrive, so an old handle matched the redriven message again."""
    from glasswork.drivers.base import DeadLetterInfo

    clock = Clock()
    with SQLiteQueueDriver(tmp_path / "q.db", clock=clock) as driver:
        driver.enqueue(JobMessage(job_name="j", payload=None, job_id="1", delay_seconds=0))
        [old] = driver.receive()
        info = DeadLetterInfo(
            reason="permanent_error", error_type="E", error_message="m", attempt=1, source_queue="q"
        )
        driver.dead_letter(old, info)
        assert driver.redrive() == 1
        [again] = driver.receive()

        assert again.message_id == old.message_id
        assert again.receipt_handle != old.receipt_handle
        assert driver.delete([old]) == [old.message_id]  # stale: deletes nothing
        assert driver.counts().in_flight == 1
        assert driver.delete([again]) == []


def test_a_zero_visibility_receive_never_returns_a_message_twice(tmp_path: Path) -> None:
    """With visibility 0, the refill after a redrive at receive picked the rows it had just claimed."""
    clock = Clock()
    with SQLiteQueueDriver(tmp_path / "q.db", clock=clock, max_receive_count=1) as driver:
        driver.enqueue(JobMessage(job_name="j", payload=None, job_id="old", delay_seconds=0))
        driver.receive(visibility_timeout=0)  # its one receive: the next one redrives it
        for n in range(3):
            driver.enqueue(JobMessage(job_name="j", payload=None, job_id=str(n), delay_seconds=0))

        records = driver.receive(max_messages=10, visibility_timeout=0)

        ids = [r.message_id for r in records]
        assert len(ids) == len(set(ids)) == 3
        assert {r.attributes.approximate_receive_count for r in records} == {"1"}
        assert driver.counts().dead == 1
