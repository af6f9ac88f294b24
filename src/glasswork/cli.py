"""The `glasswork` command: enqueue jobs, run a local worker, inspect queues.

```
glasswork enqueue APP JOB_NAME JSON --queue URL [--delay SECONDS]
glasswork worker APP --queue URL [--burst] [--batch-size N]
                 [--visibility-timeout SECONDS] [--max-concurrency N]
glasswork stats --queue URL
glasswork dlq list --queue URL
glasswork dlq redrive --queue URL
```

`APP` is `module:attribute` naming a `Module` (the current directory is put on
`sys.path`, as uvicorn does). Queue URLs: `sqlite:///path.db[?queue=name]`
(relative path; four slashes for an absolute one) and SQS queue URLs, with
`--endpoint-url` for a local SQS server.

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
    from glasswork._jobs import Module
    from glasswork.drivers.base import QueueAdmin, QueueDriver
    from glasswork.local import PollReport
    from glasswork.worker import BatchReport

__all__ = ["main"]

_PROG = "glasswork"
_log = logging.getLogger("glasswork.cli")
_SQS_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")
_SQS_HOST = re.compile(r"^(?:sqs\.)?([a-z]{2}(?:-[a-z]+)+-\d)\.(?:queue\.)?amazonaws\.com(?:\.cn)?$")
_STATUS_INTERVAL = 0.2
_MAX_BATCH_SIZE = 10_000
_MAX_VISIBILITY = 43_200


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
        help="sqlite:///path.db[?queue=name] or an SQS queue URL",
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
    enqueue.add_argument("app", metavar="APP", help="module:attribute naming a glasswork Module")
    enqueue.add_argument("job_name", metavar="JOB_NAME", help="the job's name")
    enqueue.add_argument("payload", metavar="JSON", help="the payload, as JSON")
    enqueue.add_argument("--delay", type=_seconds, metavar="SECONDS", help="run it after this many seconds")
    enqueue.set_defaults(run=_enqueue)

    worker = commands.add_parser(
        "worker",
        parents=[queue],
        help="run jobs from a queue",
        description="Run jobs from a queue through the Lambda handler, as Lambda's SQS event "
        "source mapping would. SIGINT/SIGTERM finish the batch in hand, then exit 0.",
    )
    worker.add_argument("app", metavar="APP", help="module:attribute naming a glasswork Module")
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
        help="seconds a received record stays hidden (default: the queue's); also the "
        "function timeout when below 30 s",
    )
    worker.add_argument(
        "--max-concurrency",
        type=_int_between(1, 1_000),
        default=10,
        metavar="N",
        help="async jobs of one batch run at once (default 10)",
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
    dlq_list = dlq_commands.add_parser(
        "list",
        parents=[queue],
        help="list dead letters",
        description="List the dead letters: job name, job id, attempt and reason.",
    )
    dlq_list.add_argument(
        "--limit", type=_int_between(1, 100_000), default=100, metavar="N", help="at most N (100)"
    )
    dlq_list.set_defaults(run=_dlq_list)
    dlq_redrive = dlq_commands.add_parser(
        "redrive",
        parents=[queue],
        help="move dead letters back to their queue",
        description="Move every dead letter back to its source queue.",
    )
    dlq_redrive.set_defaults(run=_dlq_redrive)
    return parser


def _version() -> str:
    from glasswork import __version__  # noqa: PLC0415  # keep --help fast

    return __version__


# --- APP and queue URLs -------------------------------------------------------


def load_app(spec: str) -> Module:
    """Import `module:attribute` and check that it names a glasswork `Module`.

    The current directory is put first on `sys.path` (as uvicorn does), so
    `glasswork worker app:jobs` finds `./app.py`.

    Raises:
        UsageError: The spec is malformed, the module cannot be imported, the
            attribute is missing, or it is not a `Module`.
    """
    from glasswork._jobs import Module  # noqa: PLC0415  # lazy: see module docstring

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
    if not isinstance(value, Module):
        msg = f"APP {spec!r} is of type {type(value).__name__}, not a glasswork Module"
        raise UsageError(msg)
    return value


def _import_failure(spec: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"cannot import APP {spec!r}: {type(exc).__name__}: {exc}{where}"


def open_queue(
    url: str, *, endpoint_url: str | None = None, existing: bool = False
) -> tuple[QueueDriver, str]:
    """Open the driver for a queue URL.

    Args:
        url: `sqlite:///path.db[?queue=name]` or an SQS queue URL
            (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, or any
            `http(s)://HOST/ACCOUNT/NAME` of an SQS-compatible server).
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
            return SQLiteQueueDriver.from_url(url, existing=existing)
        except InvalidQueueURLError as exc:
            raise UsageError(str(exc)) from None
        except DriverError as exc:
            msg = f"cannot open queue {url!r}: {exc}"
            raise UsageError(msg) from None
    if parts.scheme in {"http", "https"}:
        return _open_sqs(url, endpoint_url)
    msg = (
        f"unsupported queue URL {url!r}: expected sqlite:///path.db[?queue=name] "
        "or an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
    )
    raise UsageError(msg)


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
    from glasswork._jobs import JobRegistry  # noqa: PLC0415  # lazy
    from glasswork.errors import InvalidJobPayloadError, PayloadTooLargeError  # noqa: PLC0415  # lazy
    from glasswork.service import JobService  # noqa: PLC0415  # lazy

    module = load_app(args.app)
    payload = _parse_json(args.payload)
    registry = JobRegistry.from_module(module)
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
    entries = driver.list_dead_letters(queue, limit=args.limit)
    if not entries:
        print(f"no dead letters for queue {queue}")
        return 0
    rows = [
        [
            entry.job_name or "?",
            entry.job_id or "?",
            "?" if entry.attempt is None else str(entry.attempt),
            entry.reason or "?",
            _shorten(_error_text(entry.error_type, entry.error_message), 70),
        ]
        for entry in entries
    ]
    print(_table(["JOB", "JOB ID", "ATTEMPT", "REASON", "ERROR"], rows))
    more = " (limit reached)" if len(entries) >= args.limit else ""
    print(f"{len(entries)} dead letter{'s' if len(entries) != 1 else ''} for queue {queue}{more}")
    return 0


def _dlq_redrive(args: argparse.Namespace) -> int:
    driver, queue = _admin(args, "redrive dead letters")
    moved = driver.redrive(queue)
    print(f"redrove {moved} dead letter{'s' if moved != 1 else ''} to queue {queue}")
    return 0


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


def _configure_logging(status: _StatusLine | None) -> Callable[[], None]:
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
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)

    def restore() -> None:
        root.removeHandler(handler)
        root.setLevel(level)

    return restore


def _worker(args: argparse.Namespace) -> int:
    from glasswork.drivers.base import ConsumingDriver, WorkerDriver  # noqa: PLC0415  # lazy
    from glasswork.local import (  # noqa: PLC0415  # lazy
        DEFAULT_FUNCTION_TIMEOUT,
        LocalLambdaContext,
        Poller,
        stop_on_signals,
    )
    from glasswork.worker import bootstrap_worker  # noqa: PLC0415  # lazy

    module = load_app(args.app)
    driver, queue = _open(args)
    if not isinstance(driver, ConsumingDriver) or not isinstance(driver, WorkerDriver):
        _unsupported(driver, "run a worker (it has no receive/delete side)")
    function_timeout = DEFAULT_FUNCTION_TIMEOUT
    if args.visibility_timeout is not None:
        function_timeout = min(function_timeout, float(args.visibility_timeout))
    worker = bootstrap_worker(
        module=module,
        driver=driver,
        max_concurrency=args.max_concurrency,
        time_margin=min(1.0, function_timeout / 4),
    )
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
        function_name=f"glasswork-{module.name}",
    )
    status = None
    if sys.stderr.isatty():
        status = _StatusLine(sys.stderr, tally, f"glasswork worker [{queue}] ")
    restore_logging = _configure_logging(status)

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
    _log.info(
        "worker started: app %s, queue %s (%s driver), batch size %d, %s",
        args.app,
        queue,
        getattr(driver, "name", "?"),
        args.batch_size,
        mode,
    )
    if status is not None:
        status.draw(force=True)
    stop = threading.Event()
    try:
        with stop_on_signals(stop):
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
