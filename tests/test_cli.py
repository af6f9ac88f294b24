"""The `glasswork` command: every form, and each user mistake as one line with exit 2."""

from __future__ import annotations

import json
import logging
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glasswork.cli import main
from glasswork.drivers.sqlite import SQLiteQueueDriver
from glasswork.errors import DriverError

SRC = Path(__file__).resolve().parents[1] / "src"

APP = """
import json
import os

import msgspec

from glasswork import Module, PermanentJobError, TransientJobError, define_job


class Greeting(msgspec.Struct):
    name: str


def _record(ctx):
    with open(os.environ["GW_CLI_RUNS"], "a") as runs:
        runs.write(json.dumps([ctx.job_name, ctx.attempt_number]) + "\\n")


def greet(payload: Greeting, ctx):
    _record(ctx)


def flaky(payload, ctx):
    _record(ctx)
    if ctx.attempt_number == 1:
        raise TransientJobError("try again", retry_after=0)


def charge(payload, ctx):
    _record(ctx)
    raise PermanentJobError("card declined")


app = Module(
    name="cliapp",
    jobs=[
        define_job(name="greet", handler=greet, payload=Greeting),
        define_job(name="flaky", handler=flaky),
        define_job(name="charge", handler=charge),
    ],
)
not_a_module = 42
"""

BROKEN = """
SETTINGS = {}
TOKEN = SETTINGS["token"]
"""


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cliapp")
    (root / "gw_cli_app.py").write_text(APP)
    (root / "gw_cli_broken.py").write_text(BROKEN)
    (root / "gw_cli_missing_dep.py").write_text("import gw_no_such_dependency\n")
    return root


@pytest.fixture
def cwd(app_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in the app's directory with a fresh runs file; undo sys.path and sys.modules changes."""
    monkeypatch.chdir(app_dir)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("GW_CLI_RUNS", str(tmp_path / "runs.jsonl"))
    yield app_dir
    for name in [m for m in sys.modules if m.startswith("gw_cli_")]:
        del sys.modules[name]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


def _runs() -> list[tuple[str, int]]:
    path = Path(os.environ["GW_CLI_RUNS"])
    if not path.exists():
        return []
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _counts(url: str) -> tuple[int, int, int, int]:
    with SQLiteQueueDriver.from_url(url) as driver:
        c = driver.counts()
    return c.visible, c.in_flight, c.delayed, c.dead


# --- the forms ----------------------------------------------------------------


def test_enqueue_prints_the_ids_and_queues_the_job(
    cwd: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "enqueue", "gw_cli_app:app", "greet", '{"name": "Ada"}', "--queue", url)

    assert (code, err) == (0, "")
    assert out.startswith("enqueued greet job_id=")
    assert "queue=default" in out
    assert _counts(url) == (1, 0, 0, 0)


def test_enqueue_with_delay_and_named_queue(cwd: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    named = f"{url}?queue=emails"
    code, out, _ = _run(
        capsys, "enqueue", "gw_cli_app:app", "greet", '{"name": "Ada"}', "--queue", named, "--delay", "60"
    )

    assert code == 0
    assert "queue=emails in 60 s" in out
    assert _counts(named) == (0, 0, 1, 0)
    assert _counts(url) == (0, 0, 0, 0)


def test_worker_burst_runs_everything_and_exits_0(
    cwd: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for job, payload in [("greet", '{"name": "Ada"}'), ("flaky", "null"), ("charge", "{}")]:
        assert _run(capsys, "enqueue", "gw_cli_app:app", job, payload, "--queue", url)[0] == 0

    code, _, err = _run(capsys, "worker", "gw_cli_app:app", "--queue", url, "--burst")

    assert code == 0
    assert sorted(_runs()) == [("charge", 1), ("flaky", 1), ("flaky", 2), ("greet", 1)]
    assert _counts(url) == (0, 0, 0, 1)
    assert "\r" not in err
    assert "batch of" in err
    assert "worker stopped (queue drained): processed 3 | retried 1 | dead-lettered 1" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("warning", (["dead_lettered"], ["batch of", "worker started", "retry in", "worker stopped"])),
        ("ERROR", (["dead_lettered"], ["batch of", "retry in"])),
        ("debug", (["succeeded", "retry in", "dead_lettered", "batch of"], [])),
    ],
)
def test_worker_log_level_sets_what_is_logged(
    cwd: Path, url: str, capsys: pytest.CaptureFixture[str], level: str, expected: tuple[list[str], list[str]]
) -> None:
    shown, hidden = expected
    for job, payload in [("greet", '{"name": "Ada"}'), ("flaky", "null"), ("charge", "{}")]:
        assert _run(capsys, "enqueue", "gw_cli_app:app", job, payload, "--queue", url)[0] == 0
    root = logging.getLogger()
    before = root.level

    code, _, err = _run(capsys, "worker", "gw_cli_app:app", "--queue", url, "--burst", "--log-level", level)

    assert code == 0
    assert sorted(_runs()) == [("charge", 1), ("flaky", 1), ("flaky", 2), ("greet", 1)]
    assert [text for text in shown if text not in err] == []
    assert [text for text in hidden if text in err] == []
    assert root.level == before


def test_worker_log_level_refuses_an_unknown_level(
    cwd: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "worker", "gw_cli_app:app", "--queue", url, "--log-level", "loud")

    assert (code, out) == (2, "")
    assert "argument --log-level: invalid choice: 'LOUD'" in err
    assert "Traceback" not in err


def test_worker_options(cwd: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(3):
        _run(capsys, "enqueue", "gw_cli_app:app", "greet", json.dumps({"name": f"n{n}"}), "--queue", url)

    code, _, err = _run(
        capsys,
        "worker",
        "gw_cli_app:app",
        "--queue",
        url,
        "--burst",
        "--batch-size",
        "1",
        "--visibility-timeout",
        "5",
        "--max-concurrency",
        "2",
    )

    assert code == 0
    assert err.count("batch of 1: 1 done") == 3
    assert len(_runs()) == 3


def test_stats(cwd: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _run(capsys, "enqueue", "gw_cli_app:app", "greet", '{"name": "Ada"}', "--queue", url)
    _run(capsys, "enqueue", "gw_cli_app:app", "greet", '{"name": "Bo"}', "--queue", url, "--delay", "30")

    code, out, _ = _run(capsys, "stats", "--queue", url)

    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["QUEUE", "VISIBLE", "IN", "FLIGHT", "DELAYED", "DEAD"]
    assert row.split() == ["default", "1", "0", "1", "0"]


def test_dlq_list_and_redrive(cwd: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    SQLiteQueueDriver.from_url(url).close()  # an empty queue: admin commands refuse a missing file
    code, out, _ = _run(capsys, "dlq", "list", "--queue", url)
    assert (code, out) == (0, "no dead letters for queue default\n")

    _, enqueued, _ = _run(capsys, "enqueue", "gw_cli_app:app", "charge", '{"card": 1}', "--queue", url)
    job_id = enqueued.split("job_id=")[1].split()[0]
    _run(capsys, "worker", "gw_cli_app:app", "--queue", url, "--burst")

    code, out, _ = _run(capsys, "dlq", "list", "--queue", url)
    assert code == 0
    header, row, footer = out.splitlines()
    assert header.split()[:5] == ["JOB", "JOB", "ID", "ATTEMPT", "REASON"]
    assert row.split()[:4] == ["charge", job_id, "1", "permanent_error"]
    assert "PermanentJobError: card declined" in row
    assert footer == "1 dead letter for queue default"

    code, out, _ = _run(capsys, "dlq", "redrive", "--queue", url)
    assert (code, out) == (0, "redrove 1 dead letter to queue default\n")
    assert _counts(url) == (1, 0, 0, 0)


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    assert "enqueue" in out
    assert "worker" in out
    code, out, _ = _run(capsys, "--version")
    assert (code, out.split()[0]) == (0, "glasswork")


# --- user mistakes: exit 2, one line --------------------------------------------

MISTAKES: dict[str, tuple[list[str], str]] = {
    "bad-json": (["enqueue", "gw_cli_app:app", "greet", "{name: Ada}", "--queue", "URL"], "not valid JSON"),
    "payload-type": (
        ["enqueue", "gw_cli_app:app", "greet", '{"name": 3}', "--queue", "URL"],
        "invalid payload",
    ),
    "unknown-job": (["enqueue", "gw_cli_app:app", "nope", "{}", "--queue", "URL"], "unknown job 'nope'"),
    "no-module": (
        ["worker", "gw_no_such_module:app", "--queue", "URL"],
        "no module named 'gw_no_such_module'",
    ),
    "module-raises": (["worker", "gw_cli_broken:app", "--queue", "URL"], "KeyError: 'token' at "),
    "missing-dependency": (["worker", "gw_cli_missing_dep:app", "--queue", "URL"], "gw_no_such_dependency"),
    "no-attribute": (["worker", "gw_cli_app:nope", "--queue", "URL"], "has no attribute 'nope'"),
    "not-a-module": (["worker", "gw_cli_app:not_a_module", "--queue", "URL"], "not a glasswork Module"),
    "no-colon": (["worker", "gw_cli_app", "--queue", "URL"], "module:attribute"),
    "bad-scheme": (["stats", "--queue", "amqp://127.0.0.1/0"], "unsupported queue URL"),
    "bad-sqlite-url": (["stats", "--queue", "sqlite://host/x.db"], "three slashes"),
    "sqlite-bad-queue": (["stats", "--queue", "sqlite:///x.db?queue=a b"], "bad queue name"),
    "sqlite-no-dir": (["stats", "--queue", "sqlite:///no/such/dir/x.db"], "does not exist"),
    "bad-sqs-url": (["stats", "--queue", "https://sqs.us-east-1.amazonaws.com/jobs"], "not an SQS queue URL"),
    "bad-batch-size": (["worker", "gw_cli_app:app", "--queue", "URL", "--batch-size", "0"], "--batch-size"),
    "batch-size-text": (["worker", "gw_cli_app:app", "--queue", "URL", "--batch-size", "ten"], "'ten'"),
    "bad-visibility": (["worker", "gw_cli_app:app", "--queue", "URL", "--visibility-timeout", "-3"], "-3"),
    "bad-concurrency": (
        ["worker", "gw_cli_app:app", "--queue", "URL", "--max-concurrency", "0"],
        "concurrency",
    ),
    "bad-delay": (["enqueue", "gw_cli_app:app", "greet", "{}", "--queue", "URL", "--delay", "soon"], "soon"),
    "negative-delay": (["enqueue", "gw_cli_app:app", "greet", "{}", "--queue", "URL", "--delay", "-1"], "-1"),
    "missing-queue": (["stats"], "--queue"),
    "unknown-command": (["launch"], "invalid choice"),
    "dlq-no-action": (["dlq", "--queue", "URL"], "ACTION"),
}


@pytest.mark.parametrize(("argv", "needle"), MISTAKES.values(), ids=MISTAKES.keys())
def test_user_mistakes_exit_2_with_one_line(
    cwd: Path, url: str, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = _run(capsys, *[url if a == "URL" else a for a in argv])

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("glasswork: error: ")
    assert needle in err
    assert "Traceback" not in err


def test_a_driver_failure_exits_1_with_one_line(
    cwd: Path, url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: SQLiteQueueDriver, queue: str | None = None) -> None:
        raise DriverError("sqlite queue failed to count: disk I/O error")

    SQLiteQueueDriver.from_url(url).close()
    monkeypatch.setattr(SQLiteQueueDriver, "counts", broken)
    code, out, err = _run(capsys, "stats", "--queue", url)

    assert (code, out) == (1, "")
    assert err == "glasswork: error: sqlite queue failed to count: disk I/O error\n"


@pytest.mark.parametrize(
    "argv", [["stats"], ["dlq", "list"], ["dlq", "redrive"]], ids=["stats", "dlq list", "dlq redrive"]
)
def test_admin_commands_on_a_missing_file_exit_2_and_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    missing = tmp_path / "typo.db"

    code, out, err = _run(capsys, *argv, "--queue", f"sqlite:///{missing}")

    assert (code, out) == (2, "")
    expected = (
        f"cannot open queue 'sqlite:///{missing}': no sqlite queue at '{missing}': the file does not exist"
    )
    assert err == f"glasswork: error: {expected}\n"
    assert not missing.exists()


# --- as a real process ----------------------------------------------------------


def _env(runs: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["GW_CLI_RUNS"] = str(runs)
    return env


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "gw_cli_broken:app", "--queue", "URL"],
        ["enqueue", "gw_cli_app:app", "greet", "[1,", "--queue", "URL"],
        ["stats", "--queue", "ftp://x"],
    ],
    ids=["module-raises", "bad-json", "bad-url"],
)
def test_process_prints_one_line_and_no_traceback(
    app_dir: Path, url: str, tmp_path: Path, argv: list[str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "glasswork", *[url if a == "URL" else a for a in argv]],
        cwd=app_dir,
        env=_env(tmp_path / "runs.jsonl"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("glasswork: error: ")
    assert "Traceback" not in done.stderr


def test_import_glasswork_does_not_import_the_cli() -> None:
    code = "import sys, glasswork; print('glasswork.cli' in sys.modules, 'glasswork.local' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(Path(os.devnull)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["False", "False"]


def test_worker_shows_a_live_status_line_on_a_terminal(app_dir: Path, url: str, tmp_path: Path) -> None:
    env = _env(tmp_path / "runs.jsonl")
    for n in range(3):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "glasswork",
                "enqueue",
                "gw_cli_app:app",
                "greet",
                json.dumps({"name": f"n{n}"}),
                "--queue",
                url,
            ],
            cwd=app_dir,
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
    main_fd, child_fd = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "glasswork", "worker", "gw_cli_app:app", "--queue", url, "--burst"],
            cwd=app_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=child_fd,
        )
        os.close(child_fd)
        output = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main_fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main_fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        assert process.wait(timeout=60) == 0
    finally:
        os.close(main_fd)
    text = output.decode()
    assert "\r\x1b[K" in text
    assert "processed 3 | retried 0 | dead-lettered 0" in text


# --- SQS queue URLs, over moto's server --------------------------------------------


@pytest.mark.sqs
def test_sqs_queue_url_forms(
    moto_reset: str,
    app_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    boto3 = pytest.importorskip("boto3")
    monkeypatch.chdir(app_dir)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("GW_CLI_RUNS", str(tmp_path / "runs.jsonl"))
    sqs = boto3.client("sqs", endpoint_url=moto_reset, region_name="us-east-1")
    dlq_url = sqs.create_queue(QueueName="cli-jobs-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName="cli-jobs",
        Attributes={
            "VisibilityTimeout": "5",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        },
    )["QueueUrl"]
    assert queue_url.startswith("http://127.0.0.1:")

    try:
        assert (
            _run(capsys, "enqueue", "gw_cli_app:app", "greet", '{"name": "Ada"}', "--queue", queue_url)[0]
            == 0
        )
        assert (
            _run(
                capsys,
                "enqueue",
                "gw_cli_app:app",
                "charge",
                "{}",
                "--queue",
                queue_url,
                "--endpoint-url",
                moto_reset,
            )[0]
            == 0
        )
        code, out, _ = _run(capsys, "stats", "--queue", queue_url)
        assert code == 0
        assert out.splitlines()[1].split()[:2] == ["cli-jobs", "2"]

        code, _, err = _run(capsys, "worker", "gw_cli_app:app", "--queue", queue_url, "--burst")
        assert code == 0, err
        assert sorted(_runs()) == [("charge", 1), ("greet", 1)]

        code, out, _ = _run(capsys, "dlq", "list", "--queue", queue_url)
        assert code == 0
        assert out.splitlines()[1].split()[0] == "charge"
        assert "permanent_error" in out
        code, out, _ = _run(capsys, "dlq", "redrive", "--queue", queue_url)
        assert (code, out) == (0, "redrove 1 dead letter to queue cli-jobs\n")
    finally:
        for name in [m for m in sys.modules if m.startswith("gw_cli_")]:
            del sys.modules[name]


@pytest.mark.redis
def test_every_command_on_a_redis_queue(
    cwd: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{redis_url}?queue=emails"
    for job, payload in [("greet", '{"name": "Ada"}'), ("flaky", "null"), ("charge", "{}")]:
        assert _run(capsys, "enqueue", "gw_cli_app:app", job, payload, "--queue", url)[0] == 0

    code, _, err = _run(capsys, "worker", "gw_cli_app:app", "--queue", url, "--burst")
    assert code == 0, err
    assert "queue emails (redis driver)" in err
    assert sorted(_runs()) == [("charge", 1), ("flaky", 1), ("flaky", 2), ("greet", 1)]

    code, out, _ = _run(capsys, "stats", "--queue", url)
    assert (code, out.splitlines()[1].split()) == (0, ["emails", "0", "0", "0", "1"])
    code, out, _ = _run(capsys, "dlq", "list", "--queue", url, "--json")
    assert code == 0
    assert json.loads(out)["job_name"] == "charge"
    code, out, _ = _run(capsys, "dlq", "redrive", "--queue", url, "--job", "charge")
    assert (code, out) == (0, "redrove 1 dead letter of job charge to queue emails\n")


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("redis://127.0.0.1:6379/x", "db"),
        ("redis://127.0.0.1:6379/0?queue=a b", "queue"),
        ("redis://127.0.0.1:6379/0?nope=1", "nope"),
    ],
)
def test_bad_redis_urls_exit_2_with_one_line(
    url: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "stats", "--queue", url)

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert needle in err
