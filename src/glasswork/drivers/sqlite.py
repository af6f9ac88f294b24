"""The embedded queue: SQS semantics in one SQLite file, for laptops, tests and small servers.

`SQLiteQueueDriver` keeps named queues in one database file (stdlib `sqlite3`,
WAL mode) and is safe for several worker processes on that file: every claim
runs inside `BEGIN IMMEDIATE`, so two receivers never hold the same message
while it is invisible.

What it keeps, as SQS does:

- A per-message visibility timeout: a received message is invisible until the
  timeout passes (or `change_visibility` moves it), then it is delivered again
  with `ApproximateReceiveCount` one higher.
- Receipt handles are fresh per receive; a stale handle (the message was
  received again since) deletes nothing and changes nothing.
- Per-message delays (`JobMessage.delay_seconds`), up to `MAX_ENQUEUE_DELAY_SECONDS`
  (365 days; SQS's own limit is 900 s, see the SQS driver for longer ones).
- Redrive: a message that would be received more than `max_receive_count`
  times moves to the dead-letter table at receive time, with reason
  `"max_receive_count_exceeded"` (SQS's `RedrivePolicy`).
- FIFO queues (a name ending in `.fifo`, or `configure_queue(name, fifo=True)`):
  strict order within a message group, and a group is held by one receive at a
  time: while any message of a group is in flight, no receive gets another
  message of it. One receive may take several consecutive messages of a group,
  in order, as SQS (and so Lambda's FIFO batches) does. Messages enqueued with a
  deduplication id already seen within `dedup_window` seconds are accepted but
  not added: the original's message id is returned (SQS's five minutes by
  default). Standard queues do not deduplicate, as on SQS, unless configured
  with `deduplicate=True`.
- A dead-letter table per file: `dead_letter` (the worker's explicit
  dead-letter) and the redrive both store the body with the reason, error,
  attempt, job name and job id; `list_dead_letters`, `redrive` (back to the
  source queue, receive count reset) and `purge_dead_letters` manage it.

Records come in the exact Lambda shape. `eventSourceARN` is
`arn:aws:sqs:local:000000000000:<queue>` (region `local`, account
`000000000000`), `awsRegion` is `"local"` and `SenderId` is `"000000000000"`.

Durability: WAL with `synchronous=NORMAL`: a committed enqueue, delete or claim
survives the process being killed (`kill -9`); the last transactions before a
power loss may not. Pass `synchronous="FULL"` to trade speed for that too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from glasswork._wire import (
    EnqueueResult,
    JobMessage,
    SQSMessageAttribute,
    SQSRecord,
    SQSRecordAttributes,
    check_delay,
)
from glasswork.drivers.base import (
    ATTR_JOB_NAME,
    DeadLetterEntry,
    DeadLetterInfo,
    QueueCounts,
    VisibilityChange,
)
from glasswork.errors import (
    DriverError,
    InvalidQueueURLError,
    QueueNotFoundError,
    ThrottledError,
)

__all__ = [
    "ACCOUNT_ID",
    "MAX_RECEIVE_COUNT_REASON",
    "REGION",
    "QueueConfig",
    "SQLiteQueueDriver",
    "queue_arn",
]

REGION: Final = "local"
"""The `awsRegion` of every record, and the region in `eventSourceARN`."""
ACCOUNT_ID: Final = "000000000000"
"""The account in `eventSourceARN` and the records' `SenderId`."""
MAX_RECEIVE_COUNT_REASON: Final = "max_receive_count_exceeded"
"""The dead-letter reason of a message redriven at receive time."""
DEFAULT_MAX_RECEIVE_COUNT: Final = 35
"""Receives before the SQLite and Redis drivers move a message to their dead letters.

As the example SAM template's `maxReceiveCount`: the default 25 attempts plus
10 receives that ran nothing (a record deferred by the time guard or held
behind its FIFO group, every record of a crashed batch), so the worker's own
dead-lettering, with the error attached, comes first.
"""

_SCHEMA_VERSION: Final = 2
_QUEUE_NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,75}(\.fifo)?$")
_CONFIG_TTL: Final = 1.0
_MAX_WAIT_STEP: Final = 0.2
_MAX_ROUNDS: Final = 8
_DEDUP_SWEEP_EVERY: Final = 512

_SCHEMA: Final = (
    """
    CREATE TABLE IF NOT EXISTS glasswork_messages (
        id INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        message_id TEXT NOT NULL,
        body TEXT NOT NULL,
        job_name TEXT,
        job_id TEXT,
        group_id TEXT,
        dedup_id TEXT,
        sent_at REAL NOT NULL,
        visible_at REAL NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        first_receive_at REAL
    )
    """,
    "CREATE INDEX IF NOT EXISTS glasswork_messages_visible ON glasswork_messages (queue, visible_at)",
    "CREATE INDEX IF NOT EXISTS glasswork_messages_fifo ON glasswork_messages (queue, id)"
    " WHERE group_id IS NOT NULL",
    """
    CREATE TABLE IF NOT EXISTS glasswork_dead_letters (
        id INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        message_id TEXT NOT NULL,
        body TEXT NOT NULL,
        job_name TEXT,
        job_id TEXT,
        group_id TEXT,
        dedup_id TEXT,
        sent_at REAL NOT NULL,
        attempt INTEGER,
        reason TEXT,
        error_type TEXT,
        error_message TEXT,
        dead_at REAL NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS glasswork_dead_letters_queue ON glasswork_dead_letters (queue, id)",
    # Since version 2: tells a delete whose message this receive dead-lettered from a stale one.
    "CREATE INDEX IF NOT EXISTS glasswork_dead_letters_message ON glasswork_dead_letters (message_id)",
    # Since version 2: the highest row id a dead-lettered message had, so that a redrive
    # never gives a message a row id it had before (its old receipt handles stay stale).
    "CREATE TABLE IF NOT EXISTS glasswork_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    # Since version 2: the last tick of each periodic job that a worker claimed.
    """
    CREATE TABLE IF NOT EXISTS glasswork_schedule_ticks (
        job_name TEXT PRIMARY KEY,
        tick REAL NOT NULL,
        claimed_by TEXT NOT NULL,
        claimed_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS glasswork_dedup (
        queue TEXT NOT NULL,
        dedup_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (queue, dedup_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS glasswork_queues (
        name TEXT PRIMARY KEY,
        fifo INTEGER,
        deduplicate INTEGER,
        max_receive_count INTEGER,
        visibility_timeout INTEGER
    ) WITHOUT ROWID
    """,
)

_INSERT: Final = (
    "INSERT INTO glasswork_messages"
    " (queue, message_id, body, job_name, job_id, group_id, dedup_id, sent_at, visible_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS: Final = (
    "id, queue, message_id, body, job_name, job_id, group_id, dedup_id,"
    " sent_at, receive_count, first_receive_at"
)
_SELECT_STANDARD: Final = (
    f"SELECT {_COLUMNS} FROM glasswork_messages"  # noqa: S608  # constant column list
    " WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, id LIMIT ?"
)
_SELECT_FIFO: Final = (
    f"SELECT {_COLUMNS}, visible_at FROM glasswork_messages"  # noqa: S608  # constant column list
    " WHERE queue = ? AND group_id IS NOT NULL AND group_id NOT IN ("
    "   SELECT group_id FROM glasswork_messages"
    "   WHERE queue = ? AND visible_at > ? AND receive_count > 0 AND group_id IS NOT NULL"
    " ) ORDER BY id"
)
_CLAIM: Final = (
    "UPDATE glasswork_messages SET visible_at = ?, receive_count = ?, first_receive_at = ? WHERE id = ?"
)
_DELETE: Final = "DELETE FROM glasswork_messages WHERE id = ? AND receive_count = ? AND message_id = ?"
_INSERT_DEAD: Final = (
    "INSERT INTO glasswork_dead_letters"
    " (queue, message_id, body, job_name, job_id, group_id, dedup_id, sent_at,"
    "  attempt, reason, error_type, error_message, dead_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_Opt = str | None
_Row = tuple[int, str, str, str, _Opt, _Opt, _Opt, _Opt, float, int, float | None]


class QueueConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One queue's effective settings.

    Attributes:
        name: The queue name.
        fifo: Whether the queue is FIFO (ordered groups, deduplication).
        deduplicate: Whether enqueues are deduplicated within the window.
        max_receive_count: Receives before a message moves to the dead letters.
        visibility_timeout: Seconds a received message stays invisible by default.
    """

    name: str
    fifo: bool
    deduplicate: bool
    max_receive_count: int
    visibility_timeout: int


def queue_arn(queue: str) -> str:
    """The `eventSourceARN` of a local queue: `arn:aws:sqs:local:000000000000:<queue>`."""
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue}"


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


def _wrap(exc: sqlite3.Error, what: str) -> DriverError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return ThrottledError(f"sqlite queue busy while trying to {what}: {text}")
    return DriverError(f"sqlite queue failed to {what}: {text}")


class _Local(threading.local):
    conn: sqlite3.Connection | None = None
    pid: int = 0


class SQLiteQueueDriver:
    """An SQS-like queue in one SQLite file; implements every glasswork driver protocol.

    Args:
        path: The database file; created (with its tables) when missing. Its
            directory must exist.
        default_queue: The queue for messages and calls that name none.
        clock: Returns the time in seconds since the epoch; injectable for tests.
        max_receive_count: Receives before a message is redriven to the dead
            letters (default for queues not configured otherwise).
        visibility_timeout: Seconds a received message stays invisible
            (default for queues not configured otherwise, and for `receive`
            calls that pass none).
        dedup_window: Seconds a deduplication id is remembered (FIFO queues).
        busy_timeout: Seconds to wait for another process's write lock before
            raising `ThrottledError`.
        synchronous: SQLite's `synchronous` pragma: `"NORMAL"` survives a
            killed process; `"FULL"` also a power loss.
        sleep: Used by `receive(wait_seconds=...)` between polls.

    Raises:
        DriverError: The file cannot be opened or is not a glasswork database.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        default_queue: str = "default",
        clock: Callable[[], float] = time.time,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
        visibility_timeout: int = 30,
        dedup_window: float = 300.0,
        busy_timeout: float = 30.0,
        synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_receive_count < 1:
            msg = f"max_receive_count must be >= 1, got {max_receive_count}"
            raise ValueError(msg)
        if visibility_timeout < 0:
            msg = f"visibility_timeout must be >= 0, got {visibility_timeout}"
            raise ValueError(msg)
        _check_queue(default_queue)
        self.path = Path(path)
        self.default_queue = default_queue
        self.max_receive_count = max_receive_count
        self.visibility_timeout = visibility_timeout
        self.dedup_window = dedup_window
        self._clock = clock
        self._sleep = sleep
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._local = _Local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._configs: dict[str, tuple[float, QueueConfig]] = {}
        self._closed = False
        self._dedup_writes = 0
        self._connect()

    # --- construction ---------------------------------------------------------

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
        visibility_timeout: int = 30,
        dedup_window: float = 300.0,
        existing: bool = False,
    ) -> SQLiteQueueDriver:
        """Open a driver from a queue URL such as `sqlite:///jobs.db?queue=emails`.

        As in SQLAlchemy, `sqlite:///jobs.db` is a path relative to the current
        directory and `sqlite:////var/lib/jobs.db` an absolute one. `queue`
        defaults to `"default"` and becomes the driver's `default_queue`, as
        `SQSQueueDriver.from_url` does with the queue its URL names: every
        driver's `from_url` returns the driver alone.

        Args:
            url: The queue URL.
            clock: As for the constructor.
            max_receive_count: As for the constructor.
            visibility_timeout: As for the constructor.
            dedup_window: As for the constructor.
            existing: Refuse a path where no file exists instead of creating
                an empty queue there (for commands that only read or move
                what a queue holds, where a mistyped path is a mistake).

        Returns:
            The driver, with the URL's queue as its `default_queue`.

        Raises:
            InvalidQueueURLError: The URL is not an `sqlite:///` URL with a file
                path and at most a `queue` parameter, or names an invalid queue.
            QueueNotFoundError: `existing` and there is no file at the path.
            DriverError: The database cannot be opened.
        """
        parts = urlsplit(url)
        if parts.scheme != "sqlite":
            msg = f"not an sqlite queue URL (expected sqlite:///path.db): {url!r}"
            raise InvalidQueueURLError(msg)
        if parts.netloc:
            msg = f"sqlite queue URL must have three slashes (sqlite:///path.db): {url!r}"
            raise InvalidQueueURLError(msg)
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path or path == ":memory:" or parts.fragment:
            msg = f"sqlite queue URL needs a database file path (sqlite:///path.db): {url!r}"
            raise InvalidQueueURLError(msg)
        try:
            params = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError as exc:
            msg = f"bad query string in sqlite queue URL {url!r}: {exc}"
            raise InvalidQueueURLError(msg) from exc
        unknown = sorted(set(params) - {"queue"})
        if unknown:
            msg = f"unknown parameter {unknown[0]!r} in sqlite queue URL {url!r} (only 'queue')"
            raise InvalidQueueURLError(msg)
        queues = params.get("queue", ["default"])
        if len(queues) != 1 or not _QUEUE_NAME.fullmatch(queues[0]):
            msg = (
                f"bad queue name in sqlite queue URL {url!r}: letters, digits, '-' and '_',"
                " at most 80 characters, optionally ending in '.fifo'"
            )
            raise InvalidQueueURLError(msg)
        queue = queues[0]
        if existing and not Path(path).is_file():
            msg = f"no sqlite queue at {path!r}: the file does not exist"
            raise QueueNotFoundError(msg)
        return cls(
            path,
            default_queue=queue,
            clock=clock,
            max_receive_count=max_receive_count,
            visibility_timeout=visibility_timeout,
            dedup_window=dedup_window,
        )

    def __repr__(self) -> str:
        return f"SQLiteQueueDriver({str(self.path)!r}, default_queue={self.default_queue!r})"

    @property
    def name(self) -> str:
        """`"sqlite"`."""
        return "sqlite"

    def _connect(self) -> sqlite3.Connection:
        local = self._local
        conn = local.conn
        pid = os.getpid()
        if conn is not None and local.pid == pid and not self._closed:
            return conn
        if self._closed:
            msg = f"sqlite queue {str(self.path)!r} is closed"
            raise DriverError(msg)
        if self.path.is_dir():
            msg = f"sqlite queue path {str(self.path)!r} is a directory, not a database file"
            raise DriverError(msg)
        if not self.path.parent.is_dir():
            msg = (
                f"cannot open sqlite queue {str(self.path)!r}:"
                f" directory {str(self.path.parent)!r} does not exist"
            )
            raise DriverError(msg)
        self._create_private()
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                cached_statements=64,
                # Each thread uses only its own connection; this lets `close()`
                # close every thread's connection from the thread that calls it.
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            msg = f"cannot open sqlite queue {str(self.path)!r}: {exc}"
            raise DriverError(msg) from exc
        try:
            self._prepare(conn)
        except sqlite3.Error as exc:
            conn.close()
            msg = f"cannot open sqlite queue {str(self.path)!r}: {exc}"
            raise DriverError(msg) from exc
        except BaseException:
            conn.close()
            raise
        local.conn = conn
        local.pid = pid
        with self._lock:
            self._connections.append(conn)
        return conn

    def _create_private(self) -> None:
        """Create a missing database file readable by its owner only (0600).

        It holds every payload and dead letter. SQLite gives the `-wal` and
        `-shm` files it creates beside it the database file's permissions,
        so they are 0600 too. An existing file keeps its mode.
        """
        if self.path.exists():
            return
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass  # another process created it first
        except OSError as exc:
            msg = f"cannot create sqlite queue {str(self.path)!r}: {exc}"
            raise DriverError(msg) from exc

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        mode = self._switch_to_wal(conn)
        if mode is None or str(mode[0]).lower() != "wal":
            msg = f"sqlite queue {str(self.path)!r}: cannot switch to WAL mode (got {mode!r})"
            raise DriverError(msg)
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        if conn.execute("PRAGMA user_version").fetchone()[0] == _SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            # Every statement is idempotent: an older file is brought up to date by running them all.
            if not 0 <= version <= _SCHEMA_VERSION:
                msg = (
                    f"sqlite queue {str(self.path)!r} has schema version {version},"
                    f" this glasswork expects {_SCHEMA_VERSION}"
                )
                raise DriverError(msg)
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _switch_to_wal(self, conn: sqlite3.Connection) -> tuple[object, ...] | None:
        """Set WAL mode, waiting out other processes doing the same to a new file.

        SQLite does not apply the busy timeout to a journal-mode change, so two
        processes opening a fresh file at once can see "database is locked"
        here; retry with a short backoff until the busy timeout has passed.
        """
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.005
        while True:
            try:
                row: tuple[object, ...] | None = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                return row
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    def close(self) -> None:
        """Close every connection this driver opened (in this process)."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        pid = os.getpid()
        if self._local.pid == pid:
            self._local.conn = None
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def __enter__(self) -> SQLiteQueueDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _wrap(exc, what) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise _wrap(exc, what) from exc
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    # --- queue configuration --------------------------------------------------

    def configure_queue(
        self,
        name: str,
        *,
        fifo: bool | None = None,
        deduplicate: bool | None = None,
        max_receive_count: int | None = None,
        visibility_timeout: int | None = None,
    ) -> QueueConfig:
        """Store settings for one queue in the database.

        Every driver on the file sees them (others within a second: settings
        are cached that long). An argument left `None` keeps the stored value,
        or the driver's default where none is stored.

        Args:
            name: The queue name.
            fifo: Make the queue FIFO (a `.fifo` name always is).
            deduplicate: Deduplicate enqueues within `dedup_window` (FIFO
                queues always do).
            max_receive_count: Receives before a message is redriven to the dead letters.
            visibility_timeout: Default seconds a received message stays invisible.

        Returns:
            The queue's effective settings.

        Raises:
            QueueNotFoundError: The name is not a valid queue name.
            DriverError: The settings could not be stored.
        """
        _check_queue(name)
        if max_receive_count is not None and max_receive_count < 1:
            msg = f"max_receive_count must be >= 1, got {max_receive_count}"
            raise ValueError(msg)
        if visibility_timeout is not None and visibility_timeout < 0:
            msg = f"visibility_timeout must be >= 0, got {visibility_timeout}"
            raise ValueError(msg)
        with self._write("configure a queue") as conn:
            conn.execute(
                "INSERT INTO glasswork_queues"
                " (name, fifo, deduplicate, max_receive_count, visibility_timeout)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " fifo = coalesce(excluded.fifo, fifo),"
                " deduplicate = coalesce(excluded.deduplicate, deduplicate),"
                " max_receive_count = coalesce(excluded.max_receive_count, max_receive_count),"
                " visibility_timeout = coalesce(excluded.visibility_timeout, visibility_timeout)",
                (name, fifo, deduplicate, max_receive_count, visibility_timeout),
            )
        self._configs.pop(name, None)
        return self.queue_config(name)

    def queue_config(self, queue: str | None = None) -> QueueConfig:
        """The effective settings of a queue (stored ones over the driver's defaults).

        Args:
            queue: The queue; the default queue when `None`.

        Returns:
            The settings, read at most a second ago.

        Raises:
            QueueNotFoundError: The name is not a valid queue name.
            DriverError: The database could not be read.
        """
        name = queue or self.default_queue
        now = time.monotonic()
        cached = self._configs.get(name)
        if cached is not None and now - cached[0] < _CONFIG_TTL:
            return cached[1]
        _check_queue(name)
        try:
            row = (
                self._connect()
                .execute(
                    "SELECT fifo, deduplicate, max_receive_count, visibility_timeout"
                    " FROM glasswork_queues WHERE name = ?",
                    (name,),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise _wrap(exc, f"read the settings of queue {name!r}") from exc
        fifo, dedup, max_receive, visibility = row if row is not None else (None, None, None, None)
        is_fifo = name.endswith(".fifo") or bool(fifo)
        config = QueueConfig(
            name=name,
            fifo=is_fifo,
            deduplicate=is_fifo or bool(dedup),
            max_receive_count=self.max_receive_count if max_receive is None else int(max_receive),
            visibility_timeout=self.visibility_timeout if visibility is None else int(visibility),
        )
        self._configs[name] = (now, config)
        return config

    def queue_visibility_timeout(self, queue: str | None = None) -> int:
        """The visibility timeout a `receive` without one uses: the queue's stored one, else the driver's.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The database failed.
        """
        return self.queue_config(queue).visibility_timeout

    def claim_tick(self, key: str, tick: float, owner: str) -> bool:
        """Claim a periodic job's tick for one worker among those sharing this file.

        One write transaction reads the last tick claimed for `key` and, when
        `tick` is later, records it with `owner`; so of several workers that
        reach the same tick, exactly one gets `True`.

        Raises:
            DriverError: The database failed.
        """
        with self._write(f"claim schedule tick {key!r}") as conn:
            row = conn.execute(
                "SELECT tick FROM glasswork_schedule_ticks WHERE job_name = ?", (key,)
            ).fetchone()
            if row is not None and float(row[0]) >= tick:
                return False
            conn.execute(
                "INSERT INTO glasswork_schedule_ticks (job_name, tick, claimed_by, claimed_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (job_name) DO UPDATE SET"
                " tick = excluded.tick, claimed_by = excluded.claimed_by, claimed_at = excluded.claimed_at",
                (key, tick, owner, self._clock()),
            )
        return True

    # --- sending side ---------------------------------------------------------

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        """Add one message to its queue (`message.queue`, else the default queue).

        On a deduplicating queue, a deduplication id (the job id) seen within
        `dedup_window` seconds returns the original's message id and adds nothing.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The message was not stored.
            ValueError: A delay over `MAX_ENQUEUE_DELAY_SECONDS` (365 days).
        """
        check_delay(message.delay_seconds)
        config = self.queue_config(message.queue)
        if config.deduplicate or config.fifo:
            with self._write("enqueue a message") as conn:
                return self._insert_one(conn, config, message, self._clock())
        now = self._clock()
        message_id = str(uuid.uuid4())
        try:
            self._connect().execute(
                _INSERT,
                (
                    config.name,
                    message_id,
                    message.body,
                    message.job_name,
                    message.job_id,
                    None,
                    None,
                    now,
                    now + max(message.delay_seconds, 0),
                ),
            )
        except sqlite3.Error as exc:
            raise _wrap(exc, "enqueue a message") from exc
        return EnqueueResult(message_id=message_id, job_id=message.job_id)

    def enqueue_batch(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        """Add messages in one transaction (all or none); results in input order.

        Raises:
            QueueNotFoundError: A queue name is not valid (nothing is added).
            DriverError: The messages were not stored (nothing is added).
            ValueError: A delay over `MAX_ENQUEUE_DELAY_SECONDS` (nothing is added).
        """
        if not messages:
            return []
        for message in messages:
            check_delay(message.delay_seconds)
        configs = [self.queue_config(m.queue) for m in messages]
        with self._write(f"enqueue {len(messages)} messages") as conn:
            now = self._clock()
            results: list[EnqueueResult] = []
            plain: list[tuple[object, ...]] = []
            for message, config in zip(messages, configs, strict=True):
                if config.deduplicate or config.fifo:
                    results.append(self._insert_one(conn, config, message, now))
                    continue
                message_id = str(uuid.uuid4())
                plain.append(
                    (
                        config.name,
                        message_id,
                        message.body,
                        message.job_name,
                        message.job_id,
                        None,
                        None,
                        now,
                        now + max(message.delay_seconds, 0),
                    )
                )
                results.append(EnqueueResult(message_id=message_id, job_id=message.job_id))
            if plain:
                conn.executemany(_INSERT, plain)
        return results

    def _insert_one(
        self, conn: sqlite3.Connection, config: QueueConfig, message: JobMessage, now: float
    ) -> EnqueueResult:
        message_id = self._insert(
            conn,
            config,
            now=now,
            body=message.body,
            job_name=message.job_name,
            job_id=message.job_id,
            group_id=message.group_id,
            deduplication_id=message.deduplication_id,
            delay_seconds=message.delay_seconds,
        )
        return EnqueueResult(message_id=message_id, job_id=message.job_id)

    def _insert(
        self,
        conn: sqlite3.Connection,
        config: QueueConfig,
        *,
        now: float,
        body: str,
        job_name: str | None,
        job_id: str | None,
        group_id: str | None,
        deduplication_id: str | None,
        delay_seconds: float,
    ) -> str:
        dedup_id = deduplication_id if config.deduplicate else None
        if dedup_id is not None:
            seen = conn.execute(
                "SELECT message_id FROM glasswork_dedup WHERE queue = ? AND dedup_id = ? AND expires_at > ?",
                (config.name, dedup_id, now),
            ).fetchone()
            if seen is not None:
                return str(seen[0])
        message_id = str(uuid.uuid4())
        conn.execute(
            _INSERT,
            (
                config.name,
                message_id,
                body,
                job_name,
                job_id,
                (group_id or config.name) if config.fifo else None,
                dedup_id,
                now,
                now + max(delay_seconds, 0),
            ),
        )
        if dedup_id is not None:
            self._dedup_writes += 1
            if self._dedup_writes % _DEDUP_SWEEP_EVERY == 0:
                conn.execute("DELETE FROM glasswork_dedup WHERE expires_at <= ?", (now,))
            conn.execute(
                "INSERT OR REPLACE INTO glasswork_dedup (queue, dedup_id, message_id, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (config.name, dedup_id, message_id, now + self.dedup_window),
            )
        return message_id

    def send_raw(
        self,
        body: str,
        *,
        queue: str | None = None,
        job_name: str | None = None,
        delay_seconds: float = 0,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> str:
        """Add a message with any body, as a foreign producer (or a test of poison messages) would.

        Args:
            body: The message body, sent as it is (it need not be JSON).
            queue: The queue; the default queue when `None`.
            job_name: The `JobName` message attribute, if any.
            delay_seconds: Seconds before the message becomes visible.
            group_id: The FIFO message group (default: the queue name).
            deduplication_id: The FIFO deduplication id (default: the message id,
                so nothing is deduplicated).

        Returns:
            The message id (the original's, for a deduplicated send).

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The message was not stored.
            ValueError: A delay over `MAX_ENQUEUE_DELAY_SECONDS` (365 days).
        """
        check_delay(delay_seconds)
        config = self.queue_config(queue)
        with self._write("send a message") as conn:
            return self._insert(
                conn,
                config,
                now=self._clock(),
                body=body,
                job_name=job_name,
                job_id=None,
                group_id=group_id,
                deduplication_id=deduplication_id or str(uuid.uuid4()),
                delay_seconds=delay_seconds,
            )

    # --- consuming side -------------------------------------------------------

    def receive(
        self,
        queue: str | None = None,
        *,
        max_messages: int = 10,
        visibility_timeout: int | None = None,
        wait_seconds: float = 0.0,
    ) -> list[SQSRecord]:
        """Claim up to `max_messages` visible messages, shaped as Lambda delivers them.

        Each returned message is invisible for `visibility_timeout` seconds (the
        queue's default when `None`) and has a fresh receipt handle. A message
        already received `max_receive_count` times is moved to the dead
        letters instead (reason `"max_receive_count_exceeded"`).

        Args:
            queue: The queue; the default queue when `None`.
            max_messages: The most records to return (at least 1).
            visibility_timeout: Seconds the messages stay invisible.
            wait_seconds: Poll this long (real time) while nothing is visible.

        Returns:
            The records, possibly none.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The database failed.
        """
        if max_messages < 1:
            msg = f"max_messages must be >= 1, got {max_messages}"
            raise ValueError(msg)
        config = self.queue_config(queue)
        timeout = config.visibility_timeout if visibility_timeout is None else visibility_timeout
        if timeout < 0:
            msg = f"visibility_timeout must be >= 0, got {timeout}"
            raise ValueError(msg)
        records = self._receive_once(config, max_messages, timeout)
        if records or wait_seconds <= 0:
            return records
        deadline = time.monotonic() + wait_seconds
        step = 0.01
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return records
            self._sleep(min(step, left))
            step = min(step * 2, _MAX_WAIT_STEP)
            records = self._receive_once(config, max_messages, timeout)
            if records:
                return records

    def _receive_once(self, config: QueueConfig, max_messages: int, timeout: int) -> list[SQSRecord]:
        limit = config.max_receive_count
        claimed: list[_Row] = []
        with self._write(f"receive from queue {config.name!r}") as conn:
            now = self._clock()
            visible_at = now + timeout
            for _ in range(_MAX_ROUNDS):
                if config.fifo:
                    rows = self._fifo_candidates(conn, config, now, max_messages)
                else:
                    # Over-fetch by what this receive already claimed: with a visibility
                    # timeout of 0 those rows are visible again and must not come back twice.
                    taken = {row[0] for row in claimed}
                    rows = [
                        row
                        for row in conn.execute(_SELECT_STANDARD, (config.name, now, max_messages)).fetchall()
                        if row[0] not in taken
                    ][: max_messages - len(claimed)]
                fresh = [row for row in rows if row[9] < limit]
                exceeded = [row for row in rows if row[9] >= limit]
                if fresh:
                    conn.executemany(
                        _CLAIM,
                        [
                            (visible_at, row[9] + 1, now if row[10] is None else row[10], row[0])
                            for row in fresh
                        ],
                    )
                    claimed.extend(fresh)
                if exceeded:
                    self._redrive_exceeded(conn, config, exceeded, now)
                # A FIFO scan already looked past redriven heads; a standard queue refills.
                if config.fifo or not exceeded or len(claimed) >= max_messages:
                    break
        arn = queue_arn(config.name)
        return [self._record(row, arn, now) for row in claimed]

    def _fifo_candidates(
        self, conn: sqlite3.Connection, config: QueueConfig, now: float, max_messages: int
    ) -> list[_Row]:
        picked: list[_Row] = []
        blocked: set[str] = set()
        taken = 0
        cursor = conn.execute(_SELECT_FIFO, (config.name, config.name, now))
        for full in cursor:
            row: _Row = full[:11]
            group = row[6]
            if group in blocked:
                continue
            if full[11] > now:
                # A delayed message holds back the rest of its group: order is kept.
                blocked.add(str(group))
                continue
            picked.append(row)
            if row[9] < config.max_receive_count:
                taken += 1
                if taken >= max_messages:
                    break
        cursor.close()
        return picked

    def _redrive_exceeded(
        self, conn: sqlite3.Connection, config: QueueConfig, rows: list[_Row], now: float
    ) -> None:
        conn.executemany(
            _INSERT_DEAD,
            [
                (
                    row[1],
                    row[2],
                    row[3],
                    row[4],
                    row[5],
                    row[6],
                    row[7],
                    row[8],
                    row[9],
                    MAX_RECEIVE_COUNT_REASON,
                    None,
                    f"received {row[9]} times without being deleted"
                    f" (max_receive_count {config.max_receive_count})",
                    now,
                )
                for row in rows
            ],
        )
        conn.executemany("DELETE FROM glasswork_messages WHERE id = ?", [(row[0],) for row in rows])
        _mark_dead_row(conn, max(row[0] for row in rows))

    @staticmethod
    def _record(row: _Row, arn: str, now: float) -> SQSRecord:
        rowid, _queue, message_id, body, job_name, _job_id, group_id, dedup_id = row[:8]
        count = row[9] + 1
        first = now if row[10] is None else row[10]
        attributes = SQSRecordAttributes(
            approximate_receive_count=str(count),
            sent_timestamp=_ms(row[8]),
            sender_id=ACCOUNT_ID,
            approximate_first_receive_timestamp=_ms(first),
            message_group_id=group_id,
            message_deduplication_id=dedup_id if group_id is not None else None,
            sequence_number=f"{rowid:020d}" if group_id is not None else None,
        )
        return SQSRecord(
            message_id=message_id,
            receipt_handle=f"{rowid}:{count}:{message_id}",
            body=body,
            attributes=attributes,
            message_attributes=(
                {ATTR_JOB_NAME: SQSMessageAttribute(data_type="String", string_value=job_name)}
                if job_name is not None
                else {}
            ),
            md5_of_body=hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
            event_source="aws:sqs",
            event_source_arn=arn,
            aws_region=REGION,
        )

    def delete(self, records: Sequence[SQSRecord]) -> list[str]:
        """Delete received records by receipt handle.

        A stale handle (the message was received again since, or is already
        gone) deletes nothing and is not an error, as on SQS; unlike SQS, the
        driver tells which: the local poller logs them, because a stale
        delete means the message runs again.

        Returns:
            The message ids whose receipt handle was stale (nothing deleted for them).

        Raises:
            DriverError: The database failed.
        """
        keys = [_parse_handle(r.receipt_handle) for r in records]
        if len(keys) == 1 and keys[0] is not None:
            try:
                conn = self._connect()
                if conn.execute(_DELETE, keys[0]).rowcount == 1:
                    return []
                return [] if _dead_lettered(conn, keys[0]) else [records[0].message_id]
            except sqlite3.Error as exc:
                raise _wrap(exc, "delete a message") from exc
        stale: list[str] = []
        with self._write(f"delete {len(keys)} messages") as conn:
            for record, key in zip(records, keys, strict=True):
                if key is None or (
                    conn.execute(_DELETE, key).rowcount != 1 and not _dead_lettered(conn, key)
                ):
                    stale.append(record.message_id)
        return stale

    # --- worker side ----------------------------------------------------------

    def dead_letter(self, record: SQSRecord, info: DeadLetterInfo) -> None:
        """Move a received message to the dead letters, atomically.

        Stores the record's body with `info` and deletes the original in one
        transaction.

        Raises:
            DriverError: The receipt handle is stale (the message was received
                again since, or is gone), or the database failed; nothing changed.
        """
        key = _parse_handle(record.receipt_handle)
        with self._write(f"dead-letter message {record.message_id}") as conn:
            row = (
                conn.execute(
                    "SELECT queue, job_name, job_id, group_id, dedup_id, sent_at"
                    " FROM glasswork_messages WHERE id = ? AND receive_count = ? AND message_id = ?",
                    key,
                ).fetchone()
                if key is not None
                else None
            )
            if row is None:
                msg = (
                    f"cannot dead-letter message {record.message_id}: its receipt handle is stale"
                    " (received again since, or already deleted)"
                )
                raise DriverError(msg)
            queue, job_name, job_id, group_id, dedup_id, sent_at = row
            conn.execute(
                _INSERT_DEAD,
                (
                    queue,
                    record.message_id,
                    record.body,
                    info.job_name or job_name,
                    info.job_id or job_id,
                    group_id,
                    dedup_id,
                    sent_at,
                    info.attempt,
                    info.reason,
                    info.error_type,
                    info.error_message,
                    self._clock(),
                ),
            )
            conn.execute(_DELETE, key)  # type: ignore[arg-type]  # row found => key is set
            _mark_dead_row(conn, key[0])  # type: ignore[index]  # row found => key is set

    def change_visibility(self, changes: Sequence[VisibilityChange]) -> None:
        """Make received messages invisible for `seconds` more, counted from now.

        Valid changes are applied even when others fail.

        Raises:
            DriverError: A receipt handle is stale (names which); the others were applied.
        """
        if not changes:
            return
        stale: list[str] = []
        with self._write(f"change the visibility of {len(changes)} messages") as conn:
            now = self._clock()
            for change in changes:
                key = _parse_handle(change.receipt_handle)
                updated = (
                    conn.execute(
                        "UPDATE glasswork_messages SET visible_at = ?"
                        " WHERE id = ? AND receive_count = ? AND message_id = ?",
                        (now + max(change.seconds, 0), *key),
                    ).rowcount
                    if key is not None
                    else 0
                )
                if updated != 1:
                    stale.append(change.message_id)
        if stale:
            msg = (
                f"cannot change the visibility of {len(stale)} messages,"
                f" receipt handle stale: {', '.join(stale)}"
            )
            raise DriverError(msg)

    # --- admin ----------------------------------------------------------------

    def counts(self, queue: str | None = None) -> QueueCounts:
        """Visible, in-flight, delayed and dead-lettered message counts of a queue.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The database failed.
        """
        name = queue or self.default_queue
        _check_queue(name)
        now = self._clock()
        try:
            conn = self._connect()
            visible, in_flight, delayed = conn.execute(
                "SELECT coalesce(sum(visible_at <= :now), 0),"
                " coalesce(sum(visible_at > :now AND receive_count > 0), 0),"
                " coalesce(sum(visible_at > :now AND receive_count = 0), 0)"
                " FROM glasswork_messages WHERE queue = :queue",
                {"now": now, "queue": name},
            ).fetchone()
            (dead,) = conn.execute(
                "SELECT count(*) FROM glasswork_dead_letters WHERE queue = ?", (name,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise _wrap(exc, f"count the messages of queue {name!r}") from exc
        return QueueCounts(visible=visible, in_flight=in_flight, delayed=delayed, dead=dead)

    def list_dead_letters(
        self, queue: str | None = None, *, limit: int = 100, job_name: str | None = None
    ) -> list[DeadLetterEntry]:
        """The dead letters of a queue, oldest first, in full.

        Args:
            queue: The queue; `None` for the default.
            limit: At most this many.
            job_name: Only the dead letters of this job (`None`: every one).

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The database failed.
        """
        name = queue or self.default_queue
        _check_queue(name)
        try:
            rows = (
                self._connect()
                .execute(
                    "SELECT message_id, body, job_name, job_id, attempt, reason,"
                    " error_type, error_message FROM glasswork_dead_letters"
                    " WHERE queue = :queue AND (:job_name IS NULL OR job_name = :job_name)"
                    " ORDER BY id LIMIT :limit",
                    {"queue": name, "job_name": job_name, "limit": limit},
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise _wrap(exc, f"list the dead letters of queue {name!r}") from exc
        return [
            DeadLetterEntry(
                message_id=r[0],
                body=r[1],
                job_name=r[2],
                job_id=r[3],
                attempt=r[4],
                reason=r[5],
                error_type=r[6],
                error_message=r[7],
            )
            for r in rows
        ]

    def redrive(
        self, queue: str | None = None, *, job_name: str | None = None, limit: int | None = None
    ) -> int:
        """Move dead letters of a queue back to it, oldest first, visible now, receive count 0.

        One transaction: every selected dead letter moves, or (on any error) none.

        Args:
            queue: The queue; `None` for the default.
            job_name: Only the dead letters of this job (`None`: every one).
            limit: At most this many (`None`: every one selected).

        Returns:
            How many messages moved.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The database failed; nothing moved.
        """
        name = queue or self.default_queue
        _check_queue(name)
        # Both statements pick the same rows: the write transaction holds the file.
        selected = (
            "SELECT id FROM glasswork_dead_letters"
            " WHERE queue = :queue AND (:job_name IS NULL OR job_name = :job_name) ORDER BY id LIMIT :limit"
        )
        # Named, not numbered (?1): early CPython 3.12 releases wrongly warn about numbered ones.
        # LIMIT -1: no limit.
        params = {"queue": name, "job_name": job_name, "limit": -1 if limit is None else limit}
        rows = (
            "SELECT id, queue, message_id, body, job_name, job_id, group_id, dedup_id, sent_at"  # noqa: S608  # constant SQL, values bound
            f" FROM glasswork_dead_letters WHERE id IN ({selected}) ORDER BY id"
        )
        with self._write(f"redrive the dead letters of queue {name!r}") as conn:
            now = self._clock()
            dead = conn.execute(rows, params).fetchall()
            # Row ids above any a dead-lettered message ever had: a receipt handle from
            # before the dead-letter (row id, count, message id) can never match again.
            (base,) = conn.execute(
                "SELECT max(coalesce((SELECT max(id) FROM glasswork_messages), 0),"
                " coalesce((SELECT value FROM glasswork_meta WHERE name = 'dead_row_max'), 0))"
            ).fetchone()
            conn.executemany(
                "INSERT INTO glasswork_messages (id, queue, message_id, body, job_name, job_id,"
                " group_id, dedup_id, sent_at, visible_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(base + n, *row[1:], now) for n, row in enumerate(dead, start=1)],
            )
            conn.executemany("DELETE FROM glasswork_dead_letters WHERE id = ?", [(row[0],) for row in dead])
        return len(dead)

    def purge(self, queue: str | None = None) -> int:
        """Delete every message of a queue (not its dead letters) and forget its deduplication ids.

        Returns:
            How many messages were deleted.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The database failed.
        """
        name = queue or self.default_queue
        _check_queue(name)
        with self._write(f"purge queue {name!r}") as conn:
            deleted = conn.execute("DELETE FROM glasswork_messages WHERE queue = ?", (name,)).rowcount
            conn.execute("DELETE FROM glasswork_dedup WHERE queue = ?", (name,))
        return deleted

    def purge_dead_letters(self, queue: str | None = None) -> int:
        """Delete every dead letter of a queue.

        Returns:
            How many dead letters were deleted.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The database failed.
        """
        name = queue or self.default_queue
        _check_queue(name)
        with self._write(f"purge the dead letters of queue {name!r}") as conn:
            return conn.execute("DELETE FROM glasswork_dead_letters WHERE queue = ?", (name,)).rowcount

    def queues(self) -> list[str]:
        """The names of the queues that hold messages or dead letters, sorted.

        Raises:
            DriverError: The database failed.
        """
        try:
            rows = (
                self._connect()
                .execute(
                    "SELECT DISTINCT queue FROM glasswork_messages"
                    " UNION SELECT DISTINCT queue FROM glasswork_dead_letters ORDER BY 1"
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise _wrap(exc, "list the queues") from exc
        return [str(r[0]) for r in rows]


def _mark_dead_row(conn: sqlite3.Connection, rowid: int) -> None:
    """Remember the highest row id a dead-lettered message had (see `redrive`)."""
    conn.execute(
        "INSERT INTO glasswork_meta (name, value) VALUES ('dead_row_max', ?)"
        " ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
        (rowid,),
    )


def _dead_lettered(conn: sqlite3.Connection, key: tuple[int, int, str]) -> bool:
    """Whether the receive a handle stands for dead-lettered its message (so the delete is not stale).

    The worker dead-letters on that receive before the poller deletes what
    the handler did not report failed; the row is then already gone.
    """
    _rowid, count, message_id = key
    found = conn.execute(
        "SELECT 1 FROM glasswork_dead_letters WHERE message_id = ? AND attempt = ? LIMIT 1",
        (message_id, count),
    ).fetchone()
    return found is not None


def _check_queue(name: str) -> None:
    if not _QUEUE_NAME.fullmatch(name):
        msg = (
            f"invalid queue name {name!r}: letters, digits, '-' and '_', at most 80 characters,"
            " optionally ending in '.fifo'"
        )
        raise QueueNotFoundError(msg)


def _parse_handle(handle: str) -> tuple[int, int, str] | None:
    """`(rowid, receive count, message id)` from a receipt handle, or `None` if it is not one.

    The row id finds the row, the receive count tells this receive from later
    ones, and the message id guards against a row id reused after a delete.
    """
    parts = handle.split(":", 2)
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2]
