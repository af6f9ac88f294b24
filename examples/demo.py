"""`make demo`: the whole local loop on the embedded SQLite queue, through the real CLI.

1. Enqueue a mix of jobs with `glasswork enqueue` into a fresh SQLite file:
   jobs that succeed (one of them delayed), one that fails once and then
   succeeds, one that fails for good, and a raw message that is not JSON.
2. Drain the queue with `glasswork worker --burst` (the same handler Lambda runs).
3. Print what happened to every job, then `glasswork dlq list`.

Exits 1 if any outcome differs from the expected one, so it doubles as a smoke test.
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from glasswork.drivers.base import DeadLetterEntry, QueueCounts
from glasswork.drivers.sqlite import SQLiteQueueDriver

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
APP = "demo_app:app"
POISON_ID = "raw-" + uuid.uuid4().hex[:8]

JOBS: list[tuple[str, dict[str, object], list[str]]] = [
    ("send_welcome", {"email": "ada@example.com"}, []),
    ("send_welcome", {"email": "grace@example.com"}, []),
    ("sync_inventory", {"sku": "sku-42"}, []),
    ("charge_card", {"order_id": "order-7", "cents": 1999}, []),
    ("resize_image", {"path": "cat.png", "width": 320}, ["--delay", "3"]),
]
EXPECTED = {
    "send_welcome": "succeeded",
    "resize_image": "succeeded",
    "sync_inventory": "succeeded",
    "charge_card": "dead-lettered (permanent_error)",
    "(raw message)": "dead-lettered (poison_message)",
}


def heading(text: str) -> None:
    print(f"\n== {text} ==", flush=True)


def glasswork(*args: str, queue: str, env: dict[str, str], capture: bool = True) -> str:
    """Run `python -m glasswork ARGS --queue QUEUE`, echoing it as a shell line."""
    shown = " ".join(shlex.quote(a) for a in args)
    print(f"$ glasswork {shown} --queue $QUEUE", flush=True)
    # Uncaptured (the worker), its log goes to stdout so the transcript stays in order.
    done = subprocess.run(
        [sys.executable, "-m", "glasswork", *args, "--queue", queue],
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else sys.stdout,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        print(done.stderr if capture else "", file=sys.stderr)
        sys.exit(f"demo: 'glasswork {args[0]}' exited with {done.returncode}")
    if capture:
        print(done.stdout, end="", flush=True)
    return done.stdout or ""


def insert_poison(db: Path) -> None:
    """Put a message that is not JSON on the queue, as a foreign producer might."""
    now = time.time()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO glasswork_messages (queue, message_id, body, sent_at, visible_at)"
            " VALUES ('default', ?, ?, ?, ?)",
            (POISON_ID, "<order id=7>not json</order>", now, now),
        )
    conn.close()


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]
    )


class Row(NamedTuple):
    job: str
    payload: str
    runs: int
    outcome: str


def summarize(labels: dict[str, tuple[str, str]], journal: Path, dead: list[DeadLetterEntry]) -> list[Row]:
    """One row per enqueued job (and the raw message): runs from the journal, outcome from the DLQ."""
    runs = Counter(json.loads(line)["job_id"] for line in journal.read_text().splitlines())
    dead_by_job = {d.job_id: d for d in dead if d.job_id}
    rows = []
    for job_id, (name, payload) in labels.items():
        entry = dead_by_job.get(job_id)
        outcome = "succeeded" if entry is None else f"dead-lettered ({entry.reason})"
        rows.append(Row(name, payload, runs[job_id], outcome))
    poison = next((d for d in dead if d.message_id == POISON_ID), None)
    outcome = "still queued" if poison is None else f"dead-lettered ({poison.reason})"
    rows.append(Row("(raw message)", POISON_ID, 0, outcome))
    return rows


def problems(rows: list[Row], counts: QueueCounts) -> list[str]:
    """How the run differs from what the demo promises (nothing, normally)."""
    found = [
        f"{row.job} {row.payload}: expected {EXPECTED[row.job]}, got {row.outcome}"
        for row in rows
        if row.outcome != EXPECTED[row.job]
    ]
    found += [
        f"{row.job}: expected 2 runs, got {row.runs}"
        for row in rows
        if row.job == "sync_inventory" and row.runs != 2
    ]
    if counts.pending:
        found.append(f"queue not drained: {counts}")
    return found


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="glasswork-demo-") as tmp:
        db = Path(tmp) / "demo.db"
        journal = Path(tmp) / "journal.jsonl"
        queue = f"sqlite:///{db}"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(SRC), env.get("PYTHONPATH", "")] if p)
        env["GLASSWORK_DEMO_JOURNAL"] = str(journal)

        print("glasswork demo: the Lambda worker, run locally on the embedded SQLite queue")
        print(f"QUEUE={queue}")

        heading("enqueue")
        labels: dict[str, tuple[str, str]] = {}
        for name, payload, options in JOBS:
            out = glasswork("enqueue", APP, name, json.dumps(payload), *options, queue=queue, env=env)
            labels[out.split("job_id=", 1)[1].split()[0]] = (name, json.dumps(payload))
        insert_poison(db)
        print(f"(inserted raw message {POISON_ID} with a body that is not JSON: a poison message)")
        glasswork("stats", queue=queue, env=env)

        heading("run the worker until the queue is drained")
        glasswork("worker", APP, "--burst", queue=queue, env=env, capture=False)

        with SQLiteQueueDriver.from_url(queue) as driver:
            rows = summarize(labels, journal, driver.list_dead_letters())
            counts = driver.counts()

        heading("what happened")
        cells = [[r.job, r.payload, str(r.runs), str(max(r.runs - 1, 0)), r.outcome] for r in rows]
        print(table(["JOB", "PAYLOAD", "RUNS", "RETRIES", "OUTCOME"], cells))

        heading("dead-letter queue")
        glasswork("dlq", "list", queue=queue, env=env)

    wrong = problems(rows, counts)
    if wrong:
        print("\ndemo: FAILED\n  " + "\n  ".join(wrong), file=sys.stderr)
        return 1
    print(f"\ndemo: every job ended as expected ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
