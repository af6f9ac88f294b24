"""Dead-letter operations: `dlq list --json/--detail/--job`, `dlq redrive --job/--limit/--dry-run`.

The driver API runs against the memory, SQLite, SQS and Redis drivers (SQS on
the moto server over real HTTP, marked `sqs`; Redis on a real redis-server,
marked `redis`); the command line against SQLite and SQS (`--endpoint-url`).
moto 5.2 does not implement SQS's message move task (`StartMessageMoveTask`
answers HTTP 500), so against moto `redrive` takes its fallback; the tests of
the task itself answer its two requests with a `before-send` hook, SQS-shaped,
which real botocore parses (each says so).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import msgspec
import pytest

from glasswork._wire import JobMessage, SQSRecord
from glasswork.cli import main
from glasswork.drivers.base import (
    ATTR_JOB_NAME,
    ConsumingDriver,
    DeadLetterEntry,
    DeadLetterInfo,
    QueueAdmin,
    QueueDriver,
    WorkerDriver,
)
from glasswork.drivers.memory import MockQueueDriver
from glasswork.drivers.sqlite import SQLiteQueueDriver
from glasswork.errors import DriverError

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from mypy_boto3_sqs import SQSClient

    from glasswork.drivers.sqs import SQSQueueDriver

QUEUE = "jobs"
DLQ = "jobs-dlq"
REGION = "us-east-1"
ERROR = "card declined by the issuer: " + "x" * 200 + "\nsecond line of the error, in full"
JOBS = ["charge", "greet", "charge", "charge", "greet"]
"""The dead letters each test starts with, oldest first: job-0 .. job-4."""


class Driver(QueueDriver, WorkerDriver, ConsumingDriver, QueueAdmin, Protocol):
    """Every side a driver here has."""


# --- drivers --------------------------------------------------------------------------


def sqs_client(endpoint: str) -> SQSClient:
    """A boto3 SQS client on the moto server, without botocore's own retries."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sqs", region_name=REGION, endpoint_url=endpoint, config=Config(retries={"total_max_attempts": 1})
    )


def make_sqs_queues(client: SQSClient, *, sources: Sequence[str] = (QUEUE,)) -> dict[str, str]:
    """A DLQ and source queues whose `RedrivePolicy` names it; name -> URL."""
    dlq = client.create_queue(QueueName=DLQ)["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
    urls = {DLQ: dlq}
    for name in sources:
        attributes = {"VisibilityTimeout": "30", "RedrivePolicy": policy}
        urls[name] = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]  # attribute names are checked by SQS
    return urls


def sqs_driver(client: SQSClient, urls: dict[str, str]) -> SQSQueueDriver:
    from glasswork.drivers.sqs import SQSQueueDriver

    return SQSQueueDriver({QUEUE: urls[QUEUE]}, client, default_queue=QUEUE)


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("sqs", marks=pytest.mark.sqs),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    if request.param == "memory":
        yield MockQueueDriver()
    elif request.param == "sqlite":
        with SQLiteQueueDriver(tmp_path / "queue.db", default_queue=QUEUE) as sqlite:
            yield sqlite
    elif request.param == "redis":
        from glasswork.drivers.redis import RedisQueueDriver

        with RedisQueueDriver(request.getfixturevalue("redis_url"), default_queue=QUEUE) as redis:
            yield redis
    else:
        client = sqs_client(request.getfixturevalue("moto_reset"))
        yield sqs_driver(client, make_sqs_queues(client))


# --- helpers --------------------------------------------------------------------------


def receive_all(driver: Driver, queue: str = QUEUE) -> list[SQSRecord]:
    """Receive (hiding for 300 s) until a receive comes back empty."""
    records: list[SQSRecord] = []
    for _ in range(50):
        batch = driver.receive(queue, max_messages=10, visibility_timeout=300)
        if not batch:
            return records
        records.extend(batch)
    pytest.fail("the queue never came back empty")


def job_id(record: SQSRecord | DeadLetterEntry) -> str:
    return str(json.loads(record.body)["jobId"])


def next_millisecond() -> None:
    """Wait for the wall clock to pass a millisecond: SQS orders dead letters by `SentTimestamp` (ms)."""
    start = int(time.time() * 1000)
    while int(time.time() * 1000) == start:
        pass


def seed(driver: Driver, names: Sequence[str] = JOBS) -> dict[str, str]:
    """Dead-letter one job per name, oldest first (`job-0` ...); returns job id -> original body."""
    for n, name in enumerate(names):
        driver.enqueue(JobMessage(job_name=name, payload={"n": n}, job_id=f"job-{n}", queue=QUEUE))
    records = sorted(receive_all(driver), key=lambda r: int(job_id(r).split("-")[1]))
    assert len(records) == len(names)
    for record in records:
        next_millisecond()
        envelope = json.loads(record.body)
        info = DeadLetterInfo(
            reason="permanent_error",
            error_type="PermanentJobError",
            error_message=ERROR,
            attempt=3,
            source_queue=record.event_source_arn,
            job_name=envelope["jobName"],
            job_id=envelope["jobId"],
        )
        driver.dead_letter(record, info)
        driver.delete([record])
    return {job_id(r): r.body for r in records}


def dead_ids(driver: Driver) -> list[str]:
    return [job_id(e) for e in driver.list_dead_letters(QUEUE, limit=1_000)]


# --- the driver API: memory, SQLite, SQS ------------------------------------------------


def test_list_filters_by_job_oldest_first_and_in_full(driver: Driver) -> None:
    bodies = seed(driver)

    entries = driver.list_dead_letters(QUEUE, job_name="charge")

    assert [job_id(e) for e in entries] == ["job-0", "job-2", "job-3"]
    for entry in entries:
        assert (entry.job_name, entry.reason, entry.attempt) == ("charge", "permanent_error", 3)
        assert (entry.error_type, entry.error_message) == ("PermanentJobError", ERROR)
        assert entry.body == bodies[job_id(entry)]
    assert dead_ids(driver) == [f"job-{n}" for n in range(5)]  # every one, oldest first
    assert len(driver.list_dead_letters(QUEUE, limit=2)) == 2
    assert driver.list_dead_letters(QUEUE, job_name="nope") == []
    assert driver.counts(QUEUE).dead == 5  # listing changed nothing


def test_redrive_with_job_and_limit_moves_exactly_the_oldest_selected(driver: Driver) -> None:
    bodies = seed(driver)

    assert driver.redrive(QUEUE, job_name="charge", limit=2) == 2

    assert dead_ids(driver) == ["job-1", "job-3", "job-4"]  # the rest stay dead, in order
    back = receive_all(driver)
    assert sorted(job_id(r) for r in back) == ["job-0", "job-2"]
    for record in back:
        assert record.attributes.approximate_receive_count == "1"
        assert record.body == bodies[job_id(record)]


def test_redrive_with_a_job_only_or_a_limit_only(driver: Driver) -> None:
    seed(driver)

    assert driver.redrive(QUEUE, job_name="greet") == 2
    assert dead_ids(driver) == ["job-0", "job-2", "job-3"]
    assert driver.redrive(QUEUE, limit=1) == 1
    assert dead_ids(driver) == ["job-2", "job-3"]
    assert sorted(job_id(r) for r in receive_all(driver)) == ["job-0", "job-1", "job-4"]


def test_redrive_of_a_job_with_no_dead_letters_changes_nothing(driver: Driver) -> None:
    seed(driver)

    assert driver.redrive(QUEUE, job_name="nope") == 0
    assert driver.redrive(QUEUE, job_name="charge", limit=1) == 1  # the filter is not sticky

    assert dead_ids(driver) == ["job-1", "job-2", "job-3", "job-4"]
    assert driver.counts(QUEUE).dead == 4


def test_redrive_without_filters_still_moves_every_one_received_afresh(driver: Driver) -> None:
    bodies = seed(driver)

    assert driver.redrive(QUEUE) == 5

    assert driver.counts(QUEUE).dead == 0
    back = receive_all(driver)
    assert {job_id(r): r.body for r in back} == bodies
    assert {r.attributes.approximate_receive_count for r in back} == {"1"}


# --- the command line: SQLite and SQS ---------------------------------------------------


class Cli(msgspec.Struct, frozen=True, kw_only=True):
    """A queue for `glasswork dlq ...`: its URL arguments and a driver on it for setting up and checking."""

    args: list[str]
    driver: Driver
    label: str


@pytest.fixture(params=["sqlite", pytest.param("sqs", marks=pytest.mark.sqs)])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    if request.param == "sqlite":
        path = tmp_path / "queue.db"
        with SQLiteQueueDriver(path, default_queue=QUEUE) as sqlite:
            yield Cli(args=["--queue", f"sqlite:///{path}?queue={QUEUE}"], driver=sqlite, label=QUEUE)
        return
    endpoint: str = request.getfixturevalue("moto_reset")
    client = sqs_client(endpoint)
    urls = make_sqs_queues(client)
    args = ["--queue", urls[QUEUE], "--endpoint-url", endpoint]
    yield Cli(args=args, driver=sqs_driver(client, urls), label=QUEUE)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_lines_carry_every_field_in_full(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    bodies = seed(cli.driver)

    code, out, err = run(capsys, "dlq", "list", *cli.args, "--json")

    assert (code, err) == (0, "")
    documents = [json.loads(line) for line in out.splitlines()]
    assert [d["job_id"] for d in documents] == [f"job-{n}" for n in range(5)]
    fields = set(DeadLetterEntry.__struct_fields__)
    for document in documents:
        assert set(document) == fields
        assert document["error_message"] == ERROR  # not shortened
        assert document["error_type"] == "PermanentJobError"
        assert document["body"] == bodies[document["job_id"]]
        assert (document["attempt"], document["reason"]) == (3, "permanent_error")
    assert documents[0]["job_name"] == "charge"


def test_cli_json_with_a_job_that_matches_nothing_prints_no_line(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(cli.driver)

    assert run(capsys, "dlq", "list", *cli.args, "--json", "--job", "nope") == (0, "", "")


def test_cli_detail_shows_the_full_error_and_the_body(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    bodies = seed(cli.driver)

    code, out, _ = run(capsys, "dlq", "list", *cli.args, "--detail", "--job", "greet")

    assert code == 0
    blocks = out.rstrip("\n").split("\n\n")
    assert blocks[-1] == f"2 dead letters of job greet for queue {cli.label}"
    assert len(blocks) == 3
    first, *error_lines = ERROR.splitlines()
    for block, jid in zip(blocks[:-1], ["job-1", "job-4"], strict=True):
        lines = block.splitlines()
        assert lines[0].startswith("message id  ")
        assert f"job id      {jid}" in lines
        assert f"error       PermanentJobError: {first}" in lines
        assert all(f"            {line}" in lines for line in error_lines)
        body = block.split("body        ", 1)[1]
        assert json.loads(body.replace("\n            ", "\n")) == json.loads(bodies[jid])


def test_cli_table_is_still_the_default_and_shortens(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    seed(cli.driver)

    code, out, _ = run(capsys, "dlq", "list", *cli.args, "--job", "charge", "--limit", "2")

    assert code == 0
    header, *rows, footer = out.splitlines()
    assert header.split()[:5] == ["JOB", "JOB", "ID", "ATTEMPT", "REASON"]
    assert [row.split()[:2] for row in rows] == [["charge", "job-0"], ["charge", "job-2"]]
    assert all(row.endswith("...") and ERROR not in row for row in rows)
    assert footer == f"2 dead letters of job charge for queue {cli.label} (limit reached)"


def test_cli_dry_run_lists_what_would_move_and_changes_nothing(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(cli.driver)
    before = cli.driver.counts(QUEUE)

    code, out, _ = run(capsys, "dlq", "redrive", *cli.args, "--job", "charge", "--limit", "2", "--dry-run")

    assert code == 0
    header, *rows, footer = out.splitlines()
    assert header.startswith("JOB")
    assert [row.split()[1] for row in rows] == ["job-0", "job-2"]
    assert (
        footer == f"would redrive 2 dead letters of job charge to queue {cli.label} (dry run: nothing moved)"
    )
    assert cli.driver.counts(QUEUE) == before
    assert (before.dead, before.pending) == (5, 0)
    assert dead_ids(cli.driver) == [f"job-{n}" for n in range(5)]


def test_cli_redrive_with_job_and_limit_moves_exactly_those(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = seed(cli.driver)

    code, out, _ = run(capsys, "dlq", "redrive", *cli.args, "--job", "charge", "--limit", "2")

    assert (code, out) == (0, f"redrove 2 dead letters of job charge to queue {cli.label}\n")
    assert dead_ids(cli.driver) == ["job-1", "job-3", "job-4"]
    back = receive_all(cli.driver)
    assert {job_id(r): r.body for r in back} == {k: bodies[k] for k in ("job-0", "job-2")}
    assert {r.attributes.approximate_receive_count for r in back} == {"1"}


@pytest.mark.parametrize(
    "argv",
    [["list", "--job", "nope"], ["redrive", "--job", "nope"], ["redrive", "--job", "nope", "--dry-run"]],
    ids=["list", "redrive", "dry-run"],
)
def test_cli_a_job_with_no_dead_letters_says_so_and_exits_0(
    cli: Cli, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    seed(cli.driver)

    code, out, err = run(capsys, "dlq", argv[0], *cli.args, *argv[1:])

    assert (code, out, err) == (0, f"no dead letters of job nope for queue {cli.label}\n", "")
    assert cli.driver.counts(QUEUE).dead == 5


MISTAKES: dict[str, tuple[list[str], str]] = {
    "list-limit-0": (["list", "--limit", "0"], "--limit: expected a whole number from 1"),
    "redrive-limit-0": (["redrive", "--limit", "0"], "--limit: expected a whole number from 1"),
    "redrive-limit-text": (["redrive", "--limit", "all"], "'all'"),
    "json-and-detail": (["list", "--json", "--detail"], "not allowed with argument"),
    "empty-job": (["redrive", "--job", " "], "expected a job name"),
    "unknown-option": (["redrive", "--force"], "unrecognized arguments: --force"),
    "list-dry-run": (["list", "--dry-run"], "unrecognized arguments: --dry-run"),
}


@pytest.mark.parametrize(("argv", "needle"), MISTAKES.values(), ids=MISTAKES.keys())
def test_cli_mistakes_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    path = tmp_path / "queue.db"
    SQLiteQueueDriver(path).close()

    code, out, err = run(capsys, "dlq", argv[0], "--queue", f"sqlite:///{path}", *argv[1:])

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith("glasswork: error: ")
    assert needle in err


def test_cli_escapes_control_characters_for_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "queue.db"
    with SQLiteQueueDriver(path) as sqlite:
        sqlite.enqueue(JobMessage(job_name="charge", payload=None, job_id="job-0"))
        (record,) = sqlite.receive()
        info = DeadLetterInfo(
            reason="permanent_error",
            error_type="ValueError",
            error_message="bad \x1b[2J input",
            attempt=1,
            source_queue=record.event_source_arn,
        )
        sqlite.dead_letter(record, info)

    for view in ([], ["--detail"]):
        code, out, _ = run(capsys, "dlq", "list", "--queue", f"sqlite:///{path}", *view)
        assert code == 0
        assert "\x1b" not in out
        assert "bad \\x1b[2J input" in out
    _, out, _ = run(capsys, "dlq", "list", "--queue", f"sqlite:///{path}", "--json")
    assert json.loads(out)["error_message"] == "bad \x1b[2J input"  # JSON stays exact


# --- SQS: the message move task, the fallback, and failures part-way -------------------


def answer(
    client: SQSClient, operation: str, respond: Callable[[AWSPreparedRequest], AWSResponse | None]
) -> None:
    """Answer `operation` requests before they are sent (a `before-send` handler may return a response)."""

    def handler(request: AWSPreparedRequest, **_: object) -> AWSResponse | None:
        return respond(request)

    client.meta.events.register(f"before-send.sqs.{operation}", cast("Callable[..., None]", handler))


def sqs_response(request: AWSPreparedRequest, status: int, payload: object) -> AWSResponse:
    """An HTTP response as SQS's JSON protocol sends it, for botocore to parse."""
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    class Body:
        def stream(self, **_: object) -> Iterator[bytes]:
            yield json.dumps(payload).encode()

    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    headers["x-amzn-RequestId"] = str(uuid.uuid4())
    if status >= 400:
        headers["x-amzn-query-error"] = "InternalError;Receiver"
    return AWSResponse(request.url, status, headers, Body())


def request_json(request: AWSPreparedRequest) -> dict[str, object]:
    body = request.body
    assert isinstance(body, bytes | str)
    parsed: dict[str, object] = json.loads(body)
    return parsed


def calls(client: SQSClient, operation: str) -> list[str]:
    """Collects each call of one operation, through botocore's `before-call` event."""
    seen: list[str] = []

    def hit(**_: object) -> None:
        seen.append(operation)

    client.meta.events.register(f"before-call.sqs.{operation}", hit)
    return seen


@pytest.fixture
def sqs(moto_reset: str) -> SQSClient:
    return sqs_client(moto_reset)


def arn_of(client: SQSClient, url: str) -> str:
    return client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def dlq_counts(client: SQSClient, url: str) -> tuple[int, int]:
    attributes = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.mark.sqs
def test_moto_has_no_move_task_so_redrive_falls_back_and_strips_glasswork_attributes(sqs: SQSClient) -> None:
    urls = make_sqs_queues(sqs)
    driver = sqs_driver(sqs, urls)
    bodies = seed(driver)
    tried = calls(sqs, "ListMessageMoveTasks")
    started = calls(sqs, "StartMessageMoveTask")

    assert driver.redrive() == 5

    assert tried  # asked first: moto answers HTTP 500 (not implemented), so the fallback ran
    assert not started
    back = receive_all(driver)
    assert {job_id(r): r.body for r in back} == bodies
    for record in back:
        assert record.attributes.approximate_receive_count == "1"
        assert set(record.message_attributes) == {ATTR_JOB_NAME}  # no Glasswork* left
    assert dlq_counts(sqs, urls[DLQ]) == (0, 0)


@pytest.mark.sqs
def test_redrive_uses_the_move_task_when_sqs_offers_it(
    sqs: SQSClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto does not implement the task: a before-send hook answers ListMessageMoveTasks
    # and StartMessageMoveTask as SQS does (no earlier task; running; then completed).
    from glasswork.drivers import sqs_admin

    monkeypatch.setattr(sqs_admin, "_MOVE_TASK_POLL_SECONDS", 0.0)
    urls = make_sqs_queues(sqs)
    driver = sqs_driver(sqs, urls)
    seed(driver)
    dlq_arn, source_arn = arn_of(sqs, urls[DLQ]), arn_of(sqs, urls[QUEUE])
    started: list[dict[str, object]] = []
    polls: list[dict[str, object]] = []

    def start(request: AWSPreparedRequest) -> AWSResponse:
        started.append(request_json(request))
        return sqs_response(request, 200, {"TaskHandle": "task-7"})

    def list_tasks(request: AWSPreparedRequest) -> AWSResponse:
        polls.append(request_json(request))
        if not started:
            return sqs_response(request, 200, {"Results": []})
        task = {"SourceArn": dlq_arn, "DestinationArn": source_arn, "StartedTimestamp": 1_700_000_000_000}
        if len(polls) == 2:
            return sqs_response(
                request, 200, {"Results": [{**task, "TaskHandle": "task-7", "Status": "RUNNING"}]}
            )
        done = {**task, "Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 5}
        return sqs_response(request, 200, {"Results": [done]})

    answer(sqs, "StartMessageMoveTask", start)
    answer(sqs, "ListMessageMoveTasks", list_tasks)
    sends = calls(sqs, "SendMessage")

    assert driver.redrive() == 5

    assert started == [{"SourceArn": dlq_arn, "DestinationArn": source_arn}]
    assert len(polls) == 3
    assert {p["SourceArn"] for p in polls} == {dlq_arn}
    assert not sends  # SQS moved them: no message was sent by glasswork


@pytest.mark.sqs
def test_a_failed_move_task_is_reported_and_not_redone(sqs: SQSClient) -> None:
    # Answered by a before-send hook, as SQS answers: the task failed after moving 2.
    urls = make_sqs_queues(sqs)
    driver = sqs_driver(sqs, urls)
    seed(driver)
    dlq_arn, source_arn = arn_of(sqs, urls[DLQ]), arn_of(sqs, urls[QUEUE])
    started: list[str] = []

    def start(request: AWSPreparedRequest) -> AWSResponse:
        started.append("task-8")
        return sqs_response(request, 200, {"TaskHandle": "task-8"})

    def list_tasks(request: AWSPreparedRequest) -> AWSResponse:
        if not started:
            return sqs_response(request, 200, {"Results": []})
        failed = {
            "SourceArn": dlq_arn,
            "DestinationArn": source_arn,
            "Status": "FAILED",
            "FailureReason": "AWS.SimpleQueueService.AccessDenied",
            "ApproximateNumberOfMessagesMoved": 2,
            "StartedTimestamp": 1_700_000_000_000,
        }
        return sqs_response(request, 200, {"Results": [failed]})

    answer(sqs, "StartMessageMoveTask", start)
    answer(sqs, "ListMessageMoveTasks", list_tasks)
    sends = calls(sqs, "SendMessage")

    with pytest.raises(
        DriverError, match=r"ended FAILED after moving about 2: AWS\.SimpleQueueService\.AccessDenied"
    ):
        driver.redrive()

    assert not sends  # no fallback racing what SQS did
    assert driver.counts().dead == 5  # the hook moved nothing: all still there


@pytest.mark.sqs
def test_a_running_move_task_is_not_joined(sqs: SQSClient) -> None:
    # Answered by a before-send hook: ListMessageMoveTasks reports a task running on the DLQ.
    urls = make_sqs_queues(sqs)
    driver = sqs_driver(sqs, urls)
    seed(driver, ["charge"])
    running = {"SourceArn": arn_of(sqs, urls[DLQ]), "Status": "RUNNING", "TaskHandle": "other"}
    answer(sqs, "ListMessageMoveTasks", lambda r: sqs_response(r, 200, {"Results": [running]}))
    started = calls(sqs, "StartMessageMoveTask")

    with pytest.raises(DriverError, match="already running"):
        driver.redrive()

    assert not started
    assert driver.counts().dead == 1


@pytest.mark.sqs
def test_a_dlq_shared_by_two_queues_is_redriven_message_by_message(sqs: SQSClient) -> None:
    # The move task would send every message to one destination: not used.
    urls = make_sqs_queues(sqs, sources=(QUEUE, "other"))
    driver = sqs_driver(sqs, urls)
    seed(driver, ["charge", "greet"])
    tried = calls(sqs, "ListMessageMoveTasks")

    assert driver.redrive() == 2

    assert not tried
    assert sorted(job_id(r) for r in receive_all(driver)) == ["job-0", "job-1"]


@pytest.mark.sqs
def test_a_send_failing_part_way_loses_and_duplicates_nothing(sqs: SQSClient) -> None:
    # A before-send hook fails the second SendMessage with HTTP 500 (InternalError).
    urls = make_sqs_queues(sqs)
    driver = sqs_driver(sqs, urls)
    seed(driver)
    sent: list[str] = []

    def second_fails(request: AWSPreparedRequest) -> AWSResponse | None:
        sent.append(str(request_json(request)["MessageBody"]))
        if len(sent) == 2:
            return sqs_response(
                request, 500, {"__type": "com.amazonaws.sqs#InternalError", "message": "boom"}
            )
        return None

    answer(sqs, "SendMessage", second_fails)

    with pytest.raises(
        DriverError, match=r"InternalError: boom; redrive stopped after moving 1: message \S+ and the ones"
    ) as error:
        driver.redrive(job_name="charge")

    assert "InternalError" in str(error.value.__cause__)
    assert dead_ids(driver) == ["job-1", "job-2", "job-3", "job-4"]  # the rest, released at once
    assert dlq_counts(sqs, urls[DLQ]) == (4, 0)
    assert [job_id(r) for r in receive_all(driver)] == ["job-0"]  # moved once, not twice


@pytest.mark.sqs
def test_a_delete_failing_after_its_send_names_the_message_in_both_queues(sqs: SQSClient) -> None:
    # A before-send hook fails the first DeleteMessage on the DLQ with HTTP 500.
    urls = make_sqs_queues(sqs)
    driver = sqs_driver(sqs, urls)
    seed(driver)
    failed: list[str] = []

    def first_fails(request: AWSPreparedRequest) -> AWSResponse | None:
        if failed:
            return None
        failed.append("DeleteMessage")
        return sqs_response(request, 500, {"__type": "com.amazonaws.sqs#InternalError", "message": "boom"})

    answer(sqs, "DeleteMessage", first_fails)

    with pytest.raises(DriverError, match="sent back but not deleted from jobs-dlq, so it is in both queues"):
        driver.redrive(limit=2)

    assert dlq_counts(sqs, urls[DLQ]) == (5, 0)  # job-0 still there, and nothing held
    assert [job_id(r) for r in receive_all(driver)] == ["job-0"]  # the one message the error names
