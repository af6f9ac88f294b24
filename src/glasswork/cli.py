"""The `glasswork` command: enqueue jobs, run a local worker, inspect queues.

```
glasswork enqueue APP JOB_NAME JSON --queue URL [--delay SECONDS]
glasswork worker APP --queue URL [--burst] [--batch-size N]
                 [--visibility-timeout SECONDS] [--max-concurrency N] [--no-schedules]
                 [--log-level LEVEL]
glasswork stats --queue URL
glasswork dlq list --queue URL [--job NAME] [--limit N] [--json | --detail]
glasswork dlq redrive --queue URL [--job NAME] [--limit N] [--dry-run]
```

`APP` is `module:attribute` naming a `Module`, or the handler that
`bootstrap_worker` returned: then its hooks, logger, services, limits and
options run locally exactly as on Lambda (the current directory is put on
`sys.path`, as uvicorn does). Queue URLs: `sqlite:///path.db[?queue=name]`
(relative path; four slashes for an absolute one), `redis://HOST:PORT/DB[?queue=name]`
(`rediss://` for TLS) and SQS queue URLs, with `--endpoint-url` for a local SQS server.

Exit codes: 0 success; 2 a user mistake (one line on stderr, no traceback);
1 any other failure. The worker stops on SIGINT/SIGTERM after the batch in
hand and exits 0.

Everything heavy is imported inside the commands, so `import glasswork`
never imports this module and `glasswork --help` stays quick.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import math
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn, TextIO
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from glasswork._jobs import JobRegistry, Module
    from glasswork.drivers.base import DeadLetterEntry, QueueAdmin, QueueDriver, WorkerDriver
    from glasswork.local import PollReport
    from glasswork.local_scheduler import LocalScheduler
    from glasswork.worker import BatchReport, Worker

__all__ = ["main"]

_PROG = "glasswork"
_log = logging.getLogger("glasswork.cli")
_SQS_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")
_SQS_HOST = re.compile(r"^(?:sqs\.)?([a-z]{2}(?:-[a-z]+)+-\d)\.(?:queue\.)?amazonaws\.com(?:\.cn)?$")
_STATUS_INTERVAL = 0.2
_MAX_BATCH_SIZE = 10_000
_MAX_VISIBILITY = 43_200
_MAX_LISTED = 100_000
_MAX_REDRIVEN = 1_000_000
_MAX_DELAY = 31_536_000  # glasswork.MAX_ENQUEUE_DELAY_SECONDS, kept here so --help stays quick
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_APP_HELP = "module:attribute naming a glasswork Module or a bootstrap_worker handler"


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line (`glasswork: error: ...`) and exit 2."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see '{self.prog} --help')"
        self.exit(2, f"{_PROG}: error: {message}{hint}\n")


# --- argument types -----------------------------------------------------------


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            msg = f"expected a whole number from {low} to {high}, got {text!r}"
            raise argparse.ArgumentTypeError(msg) from None
        if not low <= value <= high:
            msg = f"expected a whole number from {low} to {high}, got {value}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        msg = f"expected a number of seconds, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not math.isfinite(value) or value < 0:
        msg = f"expected a number of seconds >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _delay(text: str) -> float:
    value = _seconds(text)
    if value > _MAX_DELAY:
        msg = f"expected at most {_MAX_DELAY} seconds (365 days), got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _job_name(text: str) -> str:
    if not text.strip():
        msg = f"expected a job name, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return text


def _parser() -> _Parser:
    parser = _Parser(
        prog=_PROG,
        description="Background jobs for AWS Lambda + SQS, run locally or against a queue.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    queue = _Parser(add_help=False)
    queue.add_argument(
        "--queue",
        required=True,
        metavar="URL",
        help="sqlite:///path.db[?queue=name], redis://HOST:PORT/DB[?queue=name] or an SQS queue URL",
    )
    queue.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="the SQS endpoint (for a local SQS server); default: from the queue URL",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enqueue = commands.add_parser(
        "enqueue", parents=[queue], help="enqueue one job", description="Enqueue one job."
    )
    enqueue.add_argument("app", metavar="APP", help=_APP_HELP)
    enqueue.add_argument("job_name", metavar="JOB_NAME", help="the job's name")
    enqueue.add_argument("payload", metavar="JSON", help="the payload, as JSON")
    enqueue.add_argument(
        "--delay", type=_delay, metavar="SECONDS", help="run it after this many seconds (at most 365 days)"
    )
    enqueue.set_defaults(run=_enqueue)

    worker = commands.add_parser(
        "worker",
        parents=[queue],
        help="run jobs from a queue",
        description="Run jobs from a queue through the Lambda handler, as Lambda's SQS event "
        "source mapping would. SIGINT/SIGTERM finish the batch in hand, then exit 0.",
    )
    worker.add_argument("app", metavar="APP", help=_APP_HELP)
    worker.add_argument(
        "--burst",
        action="store_true",
        help="exit once nothing is visible, delayed or in flight",
    )
    worker.add_argument(
        "--batch-size",
        type=_int_between(1, _MAX_BATCH_SIZE),
        default=10,
        metavar="N",
        help="records per invocation (default 10)",
    )
    worker.add_argument(
        "--visibility-timeout",
        type=_int_between(1, _MAX_VISIBILITY),
        metavar="SECONDS",
        help="seconds a received record stays hidden, for this run (default: the queue's "
        "own); the function timeout is 30 s or this, whichever is shorter",
    )
    worker.add_argument(
        "--max-concurrency",
        type=_int_between(1, 1_000),
        default=10,
        metavar="N",
        help="async jobs of one batch run at once (default 10; a handler APP keeps its own)",
    )
    worker.add_argument(
        "--no-schedules",
        action="store_true",
        help="do not fire the app's periodic jobs (they fire by default, except with --burst)",
    )
    worker.add_argument(
        "--log-level",
        choices=_LOG_LEVELS,
        type=str.upper,
        default=None,
        metavar="LEVEL",
        help="DEBUG (successes too), INFO (retries, start, stop and one line per batch: the default), "
        "WARNING (discards and problems) or ERROR (dead letters and failures only)",
    )
    worker.set_defaults(run=_worker)

    stats = commands.add_parser(
        "stats", parents=[queue], help="show queue counts", description="Show queue counts."
    )
    stats.set_defaults(run=_stats)

    dlq = commands.add_parser(
        "dlq", help="list or redrive dead letters", description="Inspect and redrive dead letters."
    )
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    job = _Parser(add_help=False)
    job.add_argument("--job", type=_job_name, metavar="NAME", help="only the dead letters of this job")
    dlq_list = dlq_commands.add_parser(
        "list",
        parents=[queue, job],
        help="list dead letters",
        description="List the dead letters, oldest first: job name, job id, attempt, reason and "
        "error (shortened in the table; in full with --detail or --json).",
    )
    dlq_list.add_argument(
        "--limit", type=_int_between(1, _MAX_LISTED), default=100, metavar="N", help="at most N (100)"
    )
    view = dlq_list.add_mutually_exclusive_group()
    view.add_argument(
        "--json",
        action="store_true",
        help="one JSON document a line (JSON Lines), every field in full, body included",
    )
    view.add_argument(
        "--detail", action="store_true", help="one block per dead letter: the full error and the body"
    )
    dlq_list.set_defaults(run=_dlq_list)
    dlq_redrive = dlq_commands.add_parser(
        "redrive",
        parents=[queue, job],
        help="move dead letters back to their queue",
        description="Move dead letters back to their source queue, oldest first, to run afresh "
        "(receive count reset).",
    )
    dlq_redrive.add_argument(
        "--limit",
        type=_int_between(1, _MAX_REDRIVEN),
        metavar="N",
        help="at most N, oldest first (default: every one)",
    )
    dlq_redrive.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would move and change nothing (on SQS it peeks, as dlq list does)",
    )
    dlq_redrive.set_defaults(run=_dlq_redrive)
    return parser


def _version() -> str:
    from glasswork import __version__  # noqa: PLC0415  # keep --help fast

    return __version__


# --- APP and queue URLs -------------------------------------------------------


def load_app(spec: str) -> Module | Worker:
    """Import `module:attribute` and check that it names a `Module` or a `bootstrap_worker` handler.

    The current directory is put first on `sys.path` (as uvicorn does), so
    `glasswork worker app:jobs` finds `./app.py`.

    Raises:
        UsageError: The spec is malformed, the module cannot be imported, the
            attribute is missing, or it is neither a `Module` nor a `Worker`.
    """
    from glasswork._jobs import Module  # noqa: PLC0415  # lazy: see module docstring
    from glasswork.worker import Worker  # noqa: PLC0415  # lazy: see module docstring

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        msg = f"APP must look like 'module:attribute', got {spec!r}"
        raise UsageError(msg)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        value: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(f"{missing}.")):
            msg = f"cannot import APP {spec!r}: no module named {missing!r} (from {cwd})"
            raise UsageError(msg) from None
        raise UsageError(_import_failure(spec, exc)) from None
    except Exception as exc:  # noqa: BLE001  # any error in the user's module is reported in one line
        raise UsageError(_import_failure(spec, exc)) from None
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            msg = f"cannot load APP {spec!r}: module {module_name!r} has no attribute {attribute!r}"
            raise UsageError(msg) from None
    if not isinstance(value, Module | Worker):
        msg = (
            f"APP {spec!r} is of type {type(value).__name__}, not a glasswork Module"
            " or the handler bootstrap_worker returned"
        )
        raise UsageError(msg)
    return value


def _registry(app: Module | Worker) -> JobRegistry:
    from glasswork._jobs import JobRegistry, Module  # noqa: PLC0415  # lazy: see module docstring

    return JobRegistry.from_module(app) if isinstance(app, Module) else app.registry


def _import_failure(spec: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"cannot import APP {spec!r}: {type(exc).__name__}: {exc}{where}"


def open_queue(
    url: str, *, endpoint_url: str | None = None, existing: bool = False
) -> tuple[QueueDriver, str]:
    """Open the driver for a queue URL.

    Args:
        url: `sqlite:///path.db[?queue=name]`,
            `redis://HOST:PORT/DB[?queue=name]` (`rediss://` for TLS) or an
            SQS queue URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`,
            or any `http(s)://HOST/ACCOUNT/NAME` of an SQS-compatible server).
        endpoint_url: The SQS endpoint; by default AWS's for an amazonaws.com
            URL, else the URL's own scheme and host.
        existing: An sqlite path must name an existing file (admin commands).

    Returns:
        The driver and the queue name.

    Raises:
        UsageError: The URL is not one glasswork understands.
        DriverError: The queue's backend could not be opened.
    """
    from glasswork.errors import DriverError, InvalidQueueURLError  # noqa: PLC0415  # lazy

    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from glasswork.drivers.sqlite import SQLiteQueueDriver  # noqa: PLC0415  # lazy

        try:
            driver = SQLiteQueueDriver.from_url(url, existing=existing)
        except InvalidQueueURLError as exc:
            raise UsageError(str(exc)) from None
        except DriverError as exc:
            msg = f"cannot open queue {url!r}: {exc}"
            raise UsageError(msg) from None
        return driver, driver.default_queue
    if parts.scheme in {"http", "https"}:
        return _open_sqs(url, endpoint_url)
    if parts.scheme in {"redis", "rediss"}:
        return _open_redis(url)
    msg = (
        f"unsupported queue URL {url!r}: expected sqlite:///path.db[?queue=name], "
        "redis://HOST:PORT/DB[?queue=name] or an SQS queue URL "
        "(https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
    )
    raise UsageError(msg)


def _open_redis(url: str) -> tuple[QueueDriver, str]:
    from glasswork.errors import DriverError, InvalidQueueURLError  # noqa: PLC0415  # lazy

    try:
        from glasswork.drivers.redis import RedisQueueDriver  # noqa: PLC0415  # redis is optional
    except ImportError as exc:
        msg = f"Redis queues need the redis client (pip install 'glasswork[redis]'): {exc}"
        raise UsageError(msg) from None
    try:
        driver = RedisQueueDriver.from_url(url)
    except InvalidQueueURLError as exc:
        raise UsageError(str(exc)) from None
    except DriverError as exc:
        msg = f"cannot open queue {url!r}: {exc}"
        raise UsageError(msg) from None
    return driver, driver.default_queue


def _open_sqs(url: str, endpoint_url: str | None) -> tuple[QueueDriver, str]:
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if not parts.hostname or len(segments) != 2 or parts.query or parts.fragment:
        msg = f"not an SQS queue URL (expected http(s)://HOST/ACCOUNT/NAME): {url!r}"
        raise UsageError(msg)
    name = segments[1]
    if not _SQS_NAME.match(name):
        msg = f"bad SQS queue name {name!r} in {url!r}"
        raise UsageError(msg)
    aws = _SQS_HOST.match(parts.hostname)
    if aws is not None:
        region = aws.group(1)
    else:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        if endpoint_url is None:
            endpoint_url = f"{parts.scheme}://{parts.netloc}"
    try:
        from glasswork.drivers.sqs import SQSQueueDriver  # noqa: PLC0415  # boto3 is optional
    except ImportError as exc:
        msg = f"SQS queues need boto3 (pip install 'glasswork[sqs]'): {exc}"
        raise UsageError(msg) from None
    driver = SQSQueueDriver(queues={name: url}, default_queue=name, region=region, endpoint_url=endpoint_url)
    return driver, name


def _open(args: argparse.Namespace, *, existing: bool = False) -> tuple[QueueDriver, str]:
    driver, queue = open_queue(args.queue, endpoint_url=args.endpoint_url, existing=existing)
    close = getattr(driver, "close", None)
    if callable(close):
        stack: contextlib.ExitStack = args.cleanup
        stack.callback(close)
    return driver, queue


def _unsupported(driver: QueueDriver, what: str) -> NoReturn:
    msg = f"the {driver.name} driver cannot {what}"
    raise UsageError(msg)


def _parse_json(text: str) -> object:
    import msgspec  # noqa: PLC0415  # lazy: see module docstring

    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        msg = f"JSON payload is not valid JSON: {exc} (got {text[:60]!r})"
        raise UsageError(msg) from None
    except RecursionError:
        msg = f"JSON payload is nested too deeply to decode (got {text[:60]!r})"
        raise UsageError(msg) from None


# --- commands -----------------------------------------------------------------


def _enqueue(args: argparse.Namespace) -> int:
    from glasswork.errors import InvalidJobPayloadError, PayloadTooLargeError  # noqa: PLC0415  # lazy
    from glasswork.service import JobService  # noqa: PLC0415  # lazy

    app = load_app(args.app)
    payload = _parse_json(args.payload)
    registry = _registry(app)
    job = registry.get(args.job_name)
    if job is None:
        known = ", ".join(sorted(registry.jobs)) or "none"
        msg = f"unknown job {args.job_name!r} in {args.app} (jobs: {known})"
        raise UsageError(msg)
    driver, queue = _open(args)
    service = JobService(driver, default_queue=queue)
    try:
        result = service.enqueue(job, payload, delay=args.delay, queue=queue)
    except (InvalidJobPayloadError, PayloadTooLargeError) as exc:
        raise UsageError(str(exc)) from None
    delay = f" in {args.delay:g} s" if args.delay else ""
    print(f"enqueued {job.name} job_id={result.job_id} message_id={result.message_id} queue={queue}{delay}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from glasswork.drivers.base import ConsumingDriver, QueueAdmin  # noqa: PLC0415  # lazy

    driver, queue = _open(args, existing=True)
    if not isinstance(driver, QueueAdmin | ConsumingDriver):
        _unsupported(driver, "report queue counts")
    counts = driver.counts(queue)
    numbers = (counts.visible, counts.in_flight, counts.delayed, counts.dead)
    rows = [[queue, *(str(n) for n in numbers)]]
    print(_table(["QUEUE", "VISIBLE", "IN FLIGHT", "DELAYED", "DEAD"], rows))
    return 0


def _admin(args: argparse.Namespace, what: str) -> tuple[QueueAdmin, str]:
    from glasswork.drivers.base import QueueAdmin  # noqa: PLC0415  # lazy

    driver, queue = _open(args, existing=True)
    if not isinstance(driver, QueueAdmin):
        _unsupported(driver, what)
    return driver, queue


def _dlq_list(args: argparse.Namespace) -> int:
    driver, queue = _admin(args, "list dead letters")
    entries = driver.list_dead_letters(queue, limit=args.limit, job_name=args.job)
    if args.json:
        for entry in entries:
            print(_json_line(entry))
        return 0
    of_job = f" of job {args.job}" if args.job else ""
    if not entries:
        print(f"no dead letters{of_job} for queue {queue}")
        return 0
    if args.detail:
        for entry in entries:
            print(_detail(entry), end="\n\n")
    else:
        print(_dead_letter_table(entries))
    more = " (limit reached)" if len(entries) >= args.limit else ""
    print(f"{_dead_letters(len(entries))}{of_job} for queue {queue}{more}")
    return 0


def _dlq_redrive(args: argparse.Namespace) -> int:
    driver, queue = _admin(args, "redrive dead letters")
    of_job = f" of job {args.job}" if args.job else ""
    if args.dry_run:
        # Listed as redrive picks them (every one, oldest first), then cut: on SQS a
        # limited list would be a sample, not the oldest.
        entries = driver.list_dead_letters(queue, limit=_MAX_REDRIVEN, job_name=args.job)[: args.limit]
        if not entries:
            print(f"no dead letters{of_job} for queue {queue}")
            return 0
        print(_dead_letter_table(entries))
        would = f"would redrive {_dead_letters(len(entries))}{of_job} to queue {queue}"
        print(f"{would} (dry run: nothing moved)")
        return 0
    moved = driver.redrive(queue, job_name=args.job, limit=args.limit)
    if not moved and args.job:
        print(f"no dead letters{of_job} for queue {queue}")
        return 0
    print(f"redrove {_dead_letters(moved)}{of_job} to queue {queue}")
    return 0


def _dead_letters(count: int) -> str:
    return f"{count} dead letter{'s' if count != 1 else ''}"


def _dead_letter_table(entries: Sequence[DeadLetterEntry]) -> str:
    rows = [
        [
            _printable(entry.job_name or "?"),
            _printable(entry.job_id or "?"),
            "?" if entry.attempt is None else str(entry.attempt),
            _printable(entry.reason or "?"),
            _shorten(_printable(_error_text(entry.error_type, entry.error_message)), 70),
        ]
        for entry in entries
    ]
    return _table(["JOB", "JOB ID", "ATTEMPT", "REASON", "ERROR"], rows)


def _json_line(entry: DeadLetterEntry) -> str:
    """Every field of the entry, in full, as one line of JSON (the body last: it is the longest)."""
    import msgspec  # noqa: PLC0415  # lazy: see module docstring

    fields = msgspec.structs.asdict(entry)
    fields["body"] = fields.pop("body")
    return msgspec.json.encode(fields).decode()


def _detail(entry: DeadLetterEntry) -> str:
    """One dead letter as a block: every field, the error in full, the body (indented if JSON)."""
    import msgspec  # noqa: PLC0415  # lazy: see module docstring

    try:
        body = msgspec.json.format(entry.body, indent=2)
    except msgspec.DecodeError:
        body = entry.body
    fields = [
        ("message id", entry.message_id),
        ("job", entry.job_name or "?"),
        ("job id", entry.job_id or "?"),
        ("attempt", "?" if entry.attempt is None else str(entry.attempt)),
        ("reason", entry.reason or "?"),
        ("error", _error_text(entry.error_type, entry.error_message) or "-"),
        ("body", body),
    ]
    width = max(len(name) for name, _ in fields) + 2
    return "\n".join(
        name.ljust(width) + _printable(value).replace("\n", "\n" + " " * width) for name, value in fields
    )


def _printable(text: str) -> str:
    """`text` with control characters (bar newline and tab) escaped, so a terminal shows, not obeys, them."""
    return "".join(c if c.isprintable() or c in "\n\t" else ascii(c)[1:-1] for c in text)


def _error_text(error_type: str | None, error_message: str | None) -> str:
    if error_type and error_message:
        return f"{error_type}: {error_message}"
    return error_type or error_message or ""


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else f"{text[: width - 3]}..."


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


# --- the worker ---------------------------------------------------------------


class _Tally:
    """Running totals of a worker, fed by the poller and the worker's reports."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.started = clock()
        self.processed = 0
        self.retried = 0
        self.dead = 0
        self.discarded = 0
        self.batch_errors = 0

    def add_worker_report(self, report: BatchReport) -> None:
        self.dead += len(report.ids("dead_lettered"))
        self.discarded += len(report.ids("discarded"))

    def add_batch(self, report: PollReport) -> None:
        self.processed += len(report.deleted)
        self.retried += len(report.failed)
        self.batch_errors += report.whole_batch_failed

    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.processed / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        parts = [
            f"processed {self.processed}",
            f"retried {self.retried}",
            f"dead-lettered {self.dead}",
        ]
        if self.discarded:
            parts.append(f"discarded {self.discarded}")
        if self.batch_errors:
            parts.append(f"failed batches {self.batch_errors}")
        parts.append(f"{self.rate():.1f} jobs/s")
        return " | ".join(parts)


class _StatusLine:
    """The live one-line status on a terminal; log records are printed above it."""

    def __init__(self, stream: TextIO, tally: _Tally, prefix: str) -> None:
        self.stream = stream
        self.tally = tally
        self.prefix = prefix
        self.lock = threading.RLock()
        self.shown_at = 0.0
        self.finished = False

    def draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.finished or (not force and now - self.shown_at < _STATUS_INTERVAL):
            return
        self.shown_at = now
        with self.lock:
            self.stream.write(f"\r\x1b[K{self.prefix}{self.tally.line()}")
            self.stream.flush()

    def clear(self) -> None:
        with self.lock:
            if not self.finished:
                self.stream.write("\r\x1b[K")
                self.stream.flush()

    def finish(self) -> None:
        with self.lock:
            self.draw(force=True)
            self.finished = True
            self.stream.write("\n")
            self.stream.flush()


class _AboveStatusHandler(logging.StreamHandler[TextIO]):
    """Writes log records above the live status line and redraws it."""

    def __init__(self, status: _StatusLine) -> None:
        super().__init__(status.stream)
        self.status = status

    def emit(self, record: logging.LogRecord) -> None:
        with self.status.lock:
            self.status.clear()
            super().emit(record)
            self.status.draw(force=True)


def _configure_logging(status: _StatusLine | None, wanted: str | None = None) -> Callable[[], None]:
    """Log to stderr (above the status line on a terminal) at `wanted`, else INFO or the app's lower level."""
    handler: logging.Handler
    if status is not None:
        handler = _AboveStatusHandler(status)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    if wanted is not None:
        root.setLevel(wanted)
    elif root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)

    def restore() -> None:
        root.removeHandler(handler)
        root.setLevel(level)

    return restore


def _local_handler(worker: Worker, driver: WorkerDriver, kind: str) -> Worker:
    """The user's handler, with its dead letters and backoff going to the queue being run.

    Its own driver is kept when it is an SQS driver and so is the queue's (its
    options, such as DLQ overrides, then apply as on Lambda); otherwise the
    queue's driver takes its place, so a local queue's dead letters stay local.
    """
    own = worker.explicit_driver
    if own is not None and getattr(own, "name", None) == "sqs" == kind:
        return worker
    return worker.with_driver(driver)


def _handler_for(
    app: Module | Worker,
    args: argparse.Namespace,
    driver: WorkerDriver,
    queue: str,
    function_timeout: float,
) -> tuple[str, Worker]:
    """The handler to run and its name: a Module's, made here, or the user's own."""
    from glasswork._jobs import Module  # noqa: PLC0415  # lazy
    from glasswork.worker import bootstrap_worker  # noqa: PLC0415  # lazy

    if isinstance(app, Module):
        worker = bootstrap_worker(
            module=app,
            driver=driver,
            max_concurrency=args.max_concurrency,
            time_margin=min(1.0, function_timeout / 4),
        )
        return app.name, worker
    worker = _local_handler(app, driver, getattr(driver, "name", ""))
    if worker.time_margin_ms >= function_timeout * 1000:
        msg = (
            f"the handler's time_margin ({worker.time_margin_ms / 1000:g} s) is not below the "
            f"function timeout ({function_timeout:g} s, bounded by the visibility timeout of "
            f"queue {queue}): no record would ever start; raise --visibility-timeout"
        )
        raise UsageError(msg)
    return args.app.rpartition(":")[2], worker


def _scheduler_for(worker: Worker, driver: QueueDriver, queue: str) -> LocalScheduler | None:
    """A scheduler for the app's periodic jobs, leasing ticks in the queue's store when it has one."""
    from glasswork.local_scheduler import LocalScheduler, TickLease  # noqa: PLC0415  # lazy

    schedules = worker.registry.schedules()
    if not schedules:
        return None
    lease = driver if isinstance(driver, TickLease) else None
    return LocalScheduler(worker, schedules, lease=lease, namespace=queue)


def _announce_schedules(
    scheduler: LocalScheduler | None, worker: Worker, args: argparse.Namespace, kind: str
) -> None:
    from glasswork.local_scheduler import utc_now  # noqa: PLC0415  # lazy

    periodic = worker.registry.schedules()
    if not periodic:
        return
    if scheduler is None:
        why = "burst mode" if args.burst else "--no-schedules"
        _log.info("%d periodic job%s not fired (%s)", len(periodic), "s" if len(periodic) != 1 else "", why)
        return
    now = utc_now()
    for job_name, schedule in scheduler.schedules.items():
        tick = schedule.next_after(now)
        when = tick.isoformat() if tick is not None else "never again"
        _log.info("periodic job %s on %s: next tick %s", job_name, schedule.expression, when)
    if not scheduler.shared:
        _log.warning(
            "the %s queue keeps no schedule leases: every worker process fires each tick; "
            "run one worker with schedules and the others with --no-schedules",
            kind,
        )


def _worker(args: argparse.Namespace) -> int:
    from glasswork.local import stop_on_signals  # noqa: PLC0415  # lazy

    # Signals are caught before anything is imported or opened, so a stop
    # request during start-up (a slow app import, services starting) ends
    # the run with 0 before any record is received.
    stop = threading.Event()
    with stop_on_signals(stop):
        return _run_worker(args, stop)


def _run_worker(args: argparse.Namespace, stop: threading.Event) -> int:
    from glasswork.drivers.base import ConsumingDriver, WorkerDriver  # noqa: PLC0415  # lazy
    from glasswork.local import (  # noqa: PLC0415  # lazy
        DEFAULT_FUNCTION_TIMEOUT,
        LocalLambdaContext,
        Poller,
        effective_visibility_timeout,
    )

    app = load_app(args.app)
    driver, queue = _open(args)
    if not isinstance(driver, ConsumingDriver) or not isinstance(driver, WorkerDriver):
        _unsupported(driver, "run a worker (it has no receive/delete side)")
    visibility = effective_visibility_timeout(driver, queue, args.visibility_timeout)
    function_timeout = DEFAULT_FUNCTION_TIMEOUT
    if visibility is not None:
        if visibility < 1:
            msg = (
                f"queue {queue} has a visibility timeout of {visibility} s, which leaves a job no "
                "time to run before it is delivered again; pass --visibility-timeout SECONDS"
            )
            raise UsageError(msg)
        function_timeout = min(function_timeout, float(visibility))
    name, worker = _handler_for(app, args, driver, queue, function_timeout)
    tally = _Tally(time.monotonic)

    def handler(event: dict[str, object], context: LocalLambdaContext) -> dict[str, object]:
        report = worker.process_batch(event, context)
        tally.add_worker_report(report)
        return dict(report.response())

    poller = Poller(
        handler,
        driver,
        queue=queue,
        batch_size=args.batch_size,
        function_timeout=function_timeout,
        visibility_timeout=args.visibility_timeout,
        function_name=f"glasswork-{name}",
        scheduler=None if args.burst or args.no_schedules else _scheduler_for(worker, driver, queue),
    )
    status = None
    if sys.stderr.isatty():
        status = _StatusLine(sys.stderr, tally, f"glasswork worker [{queue}] ")
    restore_logging = _configure_logging(status, args.log_level)

    def on_batch(report: PollReport) -> None:
        tally.add_batch(report)
        if status is not None:
            status.draw()
        else:
            _log.info(
                "batch of %d: %d done, %d retried%s in %.3f s",
                report.received,
                len(report.deleted),
                len(report.failed),
                " (whole batch failed)" if report.whole_batch_failed else "",
                report.duration,
            )

    mode = "burst" if args.burst else "polling"
    seen = "?" if visibility is None else f"{visibility} s"
    _log.info(
        "worker started: app %s, queue %s (%s driver), batch size %d, visibility timeout %s, "
        "function timeout %g s, %s",
        args.app,
        queue,
        getattr(driver, "name", "?"),
        args.batch_size,
        seen,
        function_timeout,
        mode,
    )
    _announce_schedules(poller.scheduler, worker, args, getattr(driver, "name", "?"))
    if status is not None:
        status.draw(force=True)
    try:
        poller.run(burst=args.burst, stop_event=stop, on_batch=on_batch)
    finally:
        if status is not None:
            status.finish()
        reason = "stop requested" if stop.is_set() else "queue drained"
        _log.info("worker stopped (%s): %s", reason, tally.line())
        restore_logging()
    return 0


# --- entry point --------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `glasswork` command.

    Args:
        argv: The arguments (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 success, 2 a user mistake, 1 another failure.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    from glasswork.errors import (  # noqa: PLC0415  # lazy: see module docstring
        ConfigurationError,
        GlassworkError,
        InvalidQueueURLError,
        QueueNotFoundError,
        UnknownJobError,
    )

    run: Callable[[argparse.Namespace], int] = args.run
    try:
        with contextlib.ExitStack() as cleanup:
            args.cleanup = cleanup
            return run(args)
    except (UsageError, ConfigurationError, InvalidQueueURLError, QueueNotFoundError) as exc:
        return _fail(str(exc), 2)
    except UnknownJobError as exc:
        return _fail(str(exc), 2)
    except GlassworkError as exc:
        cause = exc.__cause__
        detail = f" (caused by {type(cause).__name__}: {cause})" if cause is not None else ""
        return _fail(f"{exc}{detail}", 1)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, status: int) -> int:
    text = " ".join(message.split())
    print(f"{_PROG}: error: {text}", file=sys.stderr)
    return status
