"""glasswork's performance targets (issue 5), measured side by side in one run.

Prints one markdown table of ratios, each row with its target and PASS/FAIL:

1. Per-record overhead: `bootstrap_worker`'s handler on 10-record SQS batches
   with a no-op job, vs Powertools' `BatchProcessor` + `process_partial_response`
   doing the same JSON decode and dispatch by job name, vs a bare floor
   (msgspec typed decode of the body + dict dispatch). Rounds alternate the
   three in one process; ratios use each side's best round (medians shown
   beside). With valgrind, instruction counts (callgrind, a run of N + K
   invocations minus a run of N, so start-up cancels) give a second ratio that
   load on a shared machine does not move.
2. Cold start: `python -c "import X"` minus a bare interpreter, best of
   several runs with bytecode cached; `import glasswork` must not load boto3;
   `bootstrap_worker` on a module tree of 50 jobs, in a fresh process.
3. Async concurrency: 10 async jobs of 50 ms in one batch, as a multiple of a
   one-record batch, vs Powertools' `BatchProcessor` and `AsyncBatchProcessor`;
   a FIFO batch keeps each group's order.
4. Requests: `enqueue_batch` of 1,000 jobs through `SQSQueueDriver` against
   moto's server, SQS requests counted by a botocore event hook, and its wall
   time as a fraction of 1,000 single enqueues.
5. Memory (in subprocesses): peak RSS at the 100th and the 1,000th warm
   invocation, and one 1,000-record batch within Lambda's default 128 MB.

Run: `python bench/run.py [--quick] [--only overhead,coldstart,async,requests,memory]
[--no-valgrind] [--keep-callgrind DIR] [--strict]`; `callgrind_annotate DIR/callgrind.glasswork.*`
then shows where the per-record instructions go. Needs the `bench` extra (aws-lambda-powertools) and
`moto[server]`; uses the moto server at `GLASSWORK_TEST_SQS_ENDPOINT` (as
`make bench` starts it) or starts one in-process. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import importlib.metadata
import importlib.util
import io
import itertools
import json
import logging
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, cast

import msgspec

from glasswork import JobContext, JobService, MockQueueDriver, Module, bootstrap_worker, define_job
from glasswork.testing import FakeLambdaContext, job_body, sqs_event, sqs_record

Event: TypeAlias = dict[str, object]
Handler: TypeAlias = Callable[[Event, object], object]
Variant: TypeAlias = Literal["glasswork", "powertools", "floor"]
LoggingMode: TypeAlias = Literal["no-handler", "handler"]
Verdict: TypeAlias = Literal["PASS", "FAIL", "info", "skipped"]

HERE: Final = Path(__file__).resolve()
ROOT: Final = HERE.parent.parent
VARIANTS: Final[tuple[Variant, ...]] = ("glasswork", "powertools", "floor")
LOGGING_MODES: Final[tuple[LoggingMode, ...]] = ("no-handler", "handler")
SECTIONS: Final = ("overhead", "coldstart", "async", "requests", "memory")
BATCH: Final = 10
JOB_SECONDS: Final = 0.05
MEMORY_BUDGET: Final = 128 * 1024 * 1024
RSS_TOLERANCE: Final = 1024 * 1024
MIB: Final = 1024 * 1024


# --- workloads shared by the in-process runs and the child processes ------------


class OrderPayload(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of the benchmark's no-op job."""

    order_id: int
    sku: str
    quantity: int = 1
    note: str = ""


class SleepPayload(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of the async jobs: which FIFO group, which position, how long to sleep."""

    group: str = ""
    seq: int = 0
    seconds: float = JOB_SECONDS


class _Envelope(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    job_name: str
    payload: msgspec.Raw


_envelope: Final = msgspec.json.Decoder(_Envelope)


def _noop(payload: OrderPayload, ctx: JobContext) -> None:
    return None


def _noop_any(payload: object, ctx: JobContext) -> None:
    return None


def _noop_untyped(payload: object) -> None:
    return None


def _noop_floor(payload: OrderPayload) -> None:
    return None


def overhead_event(records: int = BATCH, *, invocation: int = 0, note: str = "") -> Event:
    """An SQS event of `records` no-op jobs, with ids unique to `invocation`."""
    return sqs_event(
        sqs_record(
            job_body(
                "noop",
                OrderPayload(order_id=invocation * records + i, sku="SKU-1234", quantity=2, note=note),
                job_id=f"job-{invocation}-{i}",
            ),
            message_id=f"00000000-0000-4000-8000-{invocation:06d}{i:06d}",
        )
        for i in range(records)
    )


def make_glasswork(job_fn: Callable[[OrderPayload, JobContext], None] = _noop) -> Handler:
    """glasswork's Lambda handler for one no-op job; hooks unset, an in-memory driver."""
    job = define_job(name="noop", handler=job_fn, payload=OrderPayload)
    return bootstrap_worker(module=Module(name="bench", jobs=[job]), driver=MockQueueDriver())


def make_powertools(job_fn: Callable[[object], None] = _noop_untyped) -> Handler:
    """Powertools' `BatchProcessor`: `record.json_body`, then dispatch on `jobName`."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    processor = BatchProcessor(event_type=EventType.SQS)
    handlers: dict[str, Callable[[object], None]] = {"noop": job_fn}

    def record_handler(record: Any) -> None:  # Powertools' SQSRecord
        body = record.json_body
        handlers[body["jobName"]](body["payload"])

    def handler(event: Event, context: object) -> object:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=cast("Any", context)
        )

    return handler


def make_floor(job_fn: Callable[[OrderPayload], None] = _noop_floor) -> Handler:
    """The floor: msgspec decodes the envelope, dispatches by name, decodes the typed payload."""
    jobs: dict[str, tuple[msgspec.json.Decoder[OrderPayload], Callable[[OrderPayload], None]]] = {
        "noop": (msgspec.json.Decoder(OrderPayload), job_fn)
    }

    def handler(event: Event, context: object) -> object:
        failures: list[dict[str, str]] = []
        for record in cast("list[dict[str, str]]", event["Records"]):
            envelope = _envelope.decode(record["body"])
            decoder, run = jobs[envelope.job_name]
            run(decoder.decode(envelope.payload))
        return {"batchItemFailures": failures}

    return handler


MAKERS: Final[dict[Variant, Callable[[], Handler]]] = {
    "glasswork": make_glasswork,
    "powertools": make_powertools,
    "floor": make_floor,
}


def verify_variants() -> None:
    """Check that every variant runs the job once per record and reports no failure.

    Raises:
        RuntimeError: A variant skipped records or reported failures.
    """
    calls: list[object] = []
    handlers: dict[str, Handler] = {
        "glasswork": make_glasswork(lambda payload, ctx: calls.append(payload)),
        "powertools": make_powertools(calls.append),
        "floor": make_floor(calls.append),
    }
    event = overhead_event()
    for name, handler in handlers.items():
        calls.clear()
        response = handler(event, FakeLambdaContext())
        if response != {"batchItemFailures": []} or len(calls) != BATCH:
            msg = f"{name}: ran {len(calls)} of {BATCH} jobs, responded {response!r}"
            raise RuntimeError(msg)


@contextlib.contextmanager
def logging_mode(mode: LoggingMode) -> Iterator[io.StringIO]:
    """Root logger at INFO with no handler, or with a stream handler; restored afterwards."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, root.handlers[:]
    stream = io.StringIO()
    root.handlers = [logging.StreamHandler(stream)] if mode == "handler" else []
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


# --- results and the table --------------------------------------------------------


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the table."""

    item: str
    measure: str
    glasswork: str
    other: str = "—"
    ratio: str = "—"
    instructions: str = "—"
    target: str = "—"
    result: str = "info"


def verdict(ok: bool) -> Verdict:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def render(rows: Sequence[Row]) -> str:
    """The markdown table."""
    head = ["#", "Measure", "glasswork", "Compared with", "Ratio (time)", "Ratio (instructions)", "Target"]
    lines = ["| " + " | ".join([*head, "Result"]) + " |", "|" + "---|" * (len(head) + 1)]
    for r in rows:
        cells = [r.item, r.measure, r.glasswork, r.other, r.ratio, r.instructions, r.target, r.result]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _x(value: float) -> str:
    return f"{value:.2f}x"


# --- 1. per-record overhead -----------------------------------------------------


class OverheadResult(msgspec.Struct, frozen=True, kw_only=True):
    """Seconds per record for each variant under one logging mode."""

    mode: LoggingMode
    best: dict[str, float]
    median: dict[str, float]
    rounds: int
    records_per_round: int
    instructions: dict[str, float] | None = None


def _time_handler(handler: Handler, event: Event, context: object, invocations: int) -> float:
    started = time.perf_counter()
    for _ in range(invocations):
        handler(event, context)
    return (time.perf_counter() - started) / (invocations * BATCH)


def bench_overhead(mode: LoggingMode, *, rounds: int, invocations: int) -> OverheadResult:
    """Time the three variants in alternating rounds under one logging mode.

    Args:
        mode: `no-handler` (root at INFO, nothing attached) or `handler` (a stream handler attached).
        rounds: Rounds; each runs every variant once, in a rotating order.
        invocations: 10-record invocations per variant per round.

    Returns:
        Best and median seconds per record, by variant.
    """
    verify_variants()
    handlers = {name: make() for name, make in MAKERS.items()}
    event = overhead_event()
    context = FakeLambdaContext()
    samples: dict[str, list[float]] = {name: [] for name in handlers}
    with logging_mode(mode):
        for handler in handlers.values():
            _time_handler(handler, event, context, max(invocations // 5, 1))
        for index in range(rounds):
            order = VARIANTS[index % 3 :] + VARIANTS[: index % 3]
            for name in order:
                samples[name].append(_time_handler(handlers[name], event, context, invocations))
    return OverheadResult(
        mode=mode,
        best={name: min(values) for name, values in samples.items()},
        median={name: statistics.median(values) for name, values in samples.items()},
        rounds=rounds,
        records_per_round=invocations * BATCH,
    )


def _child_callgrind(args: Mapping[str, Any]) -> dict[str, object]:
    variant = cast("Variant", args["variant"])
    handler = MAKERS[variant]()
    event = overhead_event()
    context = FakeLambdaContext()
    with logging_mode(cast("LoggingMode", args["mode"])):
        for _ in range(5):
            handler(event, context)
        # The measured loop runs inside deque.extendleft, which callgrind's --toggle-collect watches.
        collections.deque[object](maxlen=0).extendleft(
            itertools.starmap(handler, itertools.repeat((event, context), int(args["invocations"])))
        )
    return {"ok": True}


def valgrind_path() -> str | None:
    """valgrind's path, if installed."""
    return shutil.which("valgrind")


CALLGRIND_TOGGLE: Final = "deque_extendleft"


def _callgrind_total(
    variant: Variant, mode: LoggingMode, invocations: int, directory: Path, *, whole: bool = False
) -> int:
    """Instructions callgrind counted inside the measured loop (or in the whole process)."""
    valgrind = valgrind_path()
    assert valgrind is not None
    out = directory / f"callgrind.{variant}.{mode}.{invocations}.{'whole' if whole else 'loop'}.out"
    env = {**_bytecode_env(), "PYTHONHASHSEED": "0"}
    payload = json.dumps({"variant": variant, "mode": mode, "invocations": invocations})
    command = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}"]
    if not whole:
        command += ["--collect-atstart=no", f"--toggle-collect={CALLGRIND_TOGGLE}"]
    proc = subprocess.run(
        [*command, sys.executable, str(HERE), "_child", "callgrind", payload],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        msg = f"callgrind run of {variant} failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return 0


def count_instructions(
    modes: Sequence[LoggingMode], *, base: int, extra: int, workers: int, keep: Path | None = None
) -> tuple[dict[LoggingMode, dict[str, float]], str]:
    """Instructions per record, by logging mode and variant, from callgrind runs in parallel.

    Each variant runs `base` and `base + extra` invocations in fresh interpreters
    (PYTHONHASHSEED=0); the difference divided by `extra * 10` records is free of
    start-up costs. Collection is limited to the measured loop (callgrind's
    `--toggle-collect` on the C function running it) so that imports, bytecode
    compilation and warm-up do not add noise; if the interpreter has no symbol
    for that function, whole processes are counted instead.

    Args:
        modes: The logging modes to count.
        base: Invocations of the shorter run.
        extra: Additional invocations of the longer run.
        workers: callgrind processes at once.
        keep: A directory to keep the callgrind files in (for `callgrind_annotate`).

    Returns:
        The counts, and how they were collected.
    """
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        directory = Path(tmp) if keep is None else keep
        directory.mkdir(parents=True, exist_ok=True)
        whole = _callgrind_total("floor", modes[0], 1, directory) == 0
        how = "whole process" if whole else f"measured loop only (--toggle-collect={CALLGRIND_TOGGLE})"
        if whole:
            for code in IMPORTS.values():
                _run_python(code, _bytecode_env())
        jobs = [(v, m, n) for m in modes for v in VARIANTS for n in (base, base + extra)]
        counted = pool.map(lambda job: _callgrind_total(job[0], job[1], job[2], directory, whole=whole), jobs)
        totals = dict(zip(jobs, counted, strict=True))
    counts: dict[LoggingMode, dict[str, float]] = {
        m: {v: (totals[(v, m, base + extra)] - totals[(v, m, base)]) / (extra * BATCH) for v in VARIANTS}
        for m in modes
    }
    return counts, how


def overhead_rows(result: OverheadResult) -> list[Row]:
    """Two rows per logging mode: glasswork vs Powertools (≥ 3x) and vs the floor (aim ≤ 2x)."""
    label = "INFO, no handler" if result.mode == "no-handler" else "INFO, handler attached"
    us = {name: value * 1e6 for name, value in result.best.items()}
    med = {name: value * 1e6 for name, value in result.median.items()}
    instr = result.instructions

    def cell(name: str) -> str:
        text = f"{us[name]:.2f} µs/record (median {med[name]:.2f})"
        if instr is not None:
            text += f", {instr[name]:,.0f} instructions/record"
        return text

    vs_powertools = us["powertools"] / us["glasswork"]
    vs_floor = us["glasswork"] / us["floor"]
    instr_pt = instr_floor = "skipped"
    pt_ok = vs_powertools >= 3
    floor_ok = vs_floor <= 2
    pt_result: str = verdict(pt_ok)
    floor_result: str = verdict(floor_ok)
    if instr is not None:
        instr_vs_pt = instr["powertools"] / instr["glasswork"]
        instr_vs_floor = instr["glasswork"] / instr["floor"]
        instr_pt, instr_floor = _x(instr_vs_pt), _x(instr_vs_floor)
        if (instr_vs_pt >= 3) != pt_ok:
            pt_result += f" (instructions: {verdict(instr_vs_pt >= 3)})"
        if (instr_vs_floor <= 2) != floor_ok:
            floor_result += f" (instructions: {verdict(instr_vs_floor <= 2)})"
    return [
        Row(
            item="1",
            measure=f"Per-record overhead, 10-record batches, {label}: Powertools ÷ glasswork",
            glasswork=cell("glasswork"),
            other="Powertools BatchProcessor: " + cell("powertools"),
            ratio=f"{_x(vs_powertools)} (median {_x(med['powertools'] / med['glasswork'])})",
            instructions=instr_pt,
            target="≥ 3x",
            result=pt_result,
        ),
        Row(
            item="1",
            measure=f"Per-record overhead, {label}: glasswork ÷ floor (msgspec decode + dict dispatch)",
            glasswork=cell("glasswork"),
            other="floor: " + cell("floor"),
            ratio=f"{_x(vs_floor)} (median {_x(med['glasswork'] / med['floor'])})",
            instructions=instr_floor,
            target="≤ 2x (aim)",
            result=floor_result,
        ),
    ]


# --- 2. cold start -----------------------------------------------------------------

IMPORTS: Final[dict[str, str]] = {
    "bare": "pass",
    "glasswork": "import glasswork",
    "powertools": "import aws_lambda_powertools.utilities.batch",
    "boto3": "import boto3",
}


class ColdStartResult(msgspec.Struct, frozen=True, kw_only=True):
    """Import costs above a bare interpreter (seconds), bootstrap time, and what got imported."""

    best: dict[str, float]
    median: dict[str, float]
    runs: int
    heavy_modules: list[str]
    bytecode_cached: bool
    bootstrap_best: float
    bootstrap_median: float
    bootstrap_jobs: int
    define_seconds: float


def _bytecode_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run_python(code: str, env: Mapping[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def _glasswork_bytecode_cached() -> bool:
    spec = importlib.util.find_spec("glasswork")
    if spec is None or spec.origin is None:
        return False
    return Path(importlib.util.cache_from_source(spec.origin)).exists()


def bench_coldstart(*, runs: int, bootstrap_runs: int, jobs: int = 50) -> ColdStartResult:
    """Time `python -c "import X"` against a bare interpreter, and bootstrap_worker in fresh processes.

    Every child runs with PYTHONDONTWRITEBYTECODE unset and one untimed warm-up
    run per import first, so bytecode is compiled and cached before timing.
    """
    env = _bytecode_env()
    for code in IMPORTS.values():
        _run_python(code, env)
    samples: dict[str, list[float]] = {name: [] for name in IMPORTS}
    names = list(IMPORTS)
    for index in range(runs):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            samples[name].append(_run_python(IMPORTS[name], env))
    bare = min(samples["bare"])
    bare_median = statistics.median(samples["bare"])
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, glasswork; print(' '.join(m for m in ('boto3', 'botocore') if m in sys.modules))",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    boot = [_child("bootstrap", {"jobs": jobs}, env=env) for _ in range(bootstrap_runs)]
    return ColdStartResult(
        best={n: max(min(v) - bare, 0.0) for n, v in samples.items() if n != "bare"},
        median={n: max(statistics.median(v) - bare_median, 0.0) for n, v in samples.items() if n != "bare"},
        runs=runs,
        heavy_modules=probe.stdout.split(),
        bytecode_cached=_glasswork_bytecode_cached(),
        bootstrap_best=min(float(cast("float", b["bootstrap"])) for b in boot),
        bootstrap_median=statistics.median(float(cast("float", b["bootstrap"])) for b in boot),
        bootstrap_jobs=jobs,
        define_seconds=min(float(cast("float", b["define"])) for b in boot),
    )


def _child_bootstrap(args: Mapping[str, Any]) -> dict[str, object]:
    total = int(args["jobs"])
    started = time.perf_counter()
    leaves: list[Module] = []
    per_module = 10
    for first in range(0, total, per_module):
        jobs = []
        for n in range(first, min(first + per_module, total)):
            payload = msgspec.defstruct(
                f"Payload{n}",
                [("order_id", int), ("sku", str), ("tags", list[str])],
                frozen=True,
                kw_only=True,
            )
            jobs.append(
                define_job(name=f"module{first // per_module}.job{n}", handler=_noop_any, payload=payload)
            )
        leaves.append(Module(name=f"module{first // per_module}", jobs=jobs))
    middle = Module(name="middle", imports=leaves[: len(leaves) // 2])
    root = Module(name="root", imports=[middle, *leaves[len(leaves) // 2 :]])
    defined = time.perf_counter()
    handler = bootstrap_worker(module=root)
    booted = time.perf_counter()
    if len(handler.registry) != total:
        msg = f"bootstrapped {len(handler.registry)} of {total} jobs"
        raise RuntimeError(msg)
    return {"define": defined - started, "bootstrap": booted - defined}


def coldstart_rows(result: ColdStartResult) -> list[Row]:
    """Import cost vs Powertools (≤ ½) and boto3, no boto3 on import, bootstrap ≤ 5 ms."""
    ms = {n: v * 1000 for n, v in result.best.items()}
    med = {n: v * 1000 for n, v in result.median.items()}
    cached = "bytecode cached" if result.bytecode_cached else "bytecode NOT cached"

    def cell(name: str) -> str:
        return f"{ms[name]:.1f} ms (median {med[name]:.1f})"

    ratio_pt = ms["glasswork"] / ms["powertools"] if ms["powertools"] else math.inf
    ratio_boto = ms["glasswork"] / ms["boto3"] if ms["boto3"] else math.inf
    heavy = ", ".join(result.heavy_modules) or "none"
    return [
        Row(
            item="2",
            measure=f"Cold start: import above a bare interpreter, best of {result.runs} ({cached}): "
            "glasswork ÷ Powertools batch",
            glasswork=cell("glasswork"),
            other="`import aws_lambda_powertools.utilities.batch`: " + cell("powertools"),
            ratio=_x(ratio_pt),
            target="≤ 0.5x",
            result=verdict(ratio_pt <= 0.5),
        ),
        Row(
            item="2",
            measure="Cold start: glasswork ÷ boto3",
            glasswork=cell("glasswork"),
            other="`import boto3`: " + cell("boto3"),
            ratio=_x(ratio_boto),
        ),
        Row(
            item="2",
            measure="`import glasswork` loads boto3/botocore",
            glasswork=f"loaded: {heavy}",
            target="none",
            result=verdict(not result.heavy_modules),
        ),
        Row(
            item="2",
            measure=f"`bootstrap_worker` on a tree of {result.bootstrap_jobs} jobs in nested modules, "
            "fresh process",
            glasswork=f"{result.bootstrap_best * 1000:.2f} ms (median {result.bootstrap_median * 1000:.2f}; "
            f"defining the jobs: {result.define_seconds * 1000:.1f} ms)",
            target="≤ 5 ms",
            result=verdict(result.bootstrap_best <= 0.005),
        ),
    ]


# --- 3. async concurrency ------------------------------------------------------------


class AsyncResult(msgspec.Struct, frozen=True, kw_only=True):
    """Best latency (seconds) of a 10-job batch and a 1-job batch, per runner; the FIFO check."""

    batch: dict[str, float]
    single: dict[str, float]
    rounds: int
    fifo_ordered: bool
    fifo_seconds: float
    fifo_sequential_seconds: float


async def _sleep_job(payload: SleepPayload, ctx: JobContext) -> None:
    await asyncio.sleep(payload.seconds)


def _sleep_event(records: int) -> Event:
    return sqs_event(
        sqs_record(job_body("sleep", SleepPayload(), job_id=f"job-{i}"), message_id=f"msg-{i}")
        for i in range(records)
    )


def _async_runners() -> dict[str, Handler]:
    from aws_lambda_powertools.utilities.batch import (
        AsyncBatchProcessor,
        BatchProcessor,
        EventType,
        async_process_partial_response,
        process_partial_response,
    )

    job = define_job(name="sleep", handler=_sleep_job, payload=SleepPayload)
    glasswork = bootstrap_worker(
        module=Module(name="async", jobs=[job]), driver=MockQueueDriver(), max_concurrency=10
    )
    sequential = BatchProcessor(event_type=EventType.SQS)
    gathered = AsyncBatchProcessor(event_type=EventType.SQS)

    def sync_record(record: Any) -> None:
        body = record.json_body
        if body["jobName"] == "sleep":
            time.sleep(body["payload"]["seconds"])

    async def async_record(record: Any) -> None:
        body = record.json_body
        if body["jobName"] == "sleep":
            await asyncio.sleep(body["payload"]["seconds"])

    def powertools(event: Event, context: object) -> object:
        return process_partial_response(
            event=event, record_handler=sync_record, processor=sequential, context=cast("Any", context)
        )

    def powertools_async(event: Event, context: object) -> object:
        return async_process_partial_response(
            event=event, record_handler=async_record, processor=gathered, context=cast("Any", context)
        )

    return {
        "glasswork": glasswork,
        "Powertools BatchProcessor": powertools,
        "Powertools AsyncBatchProcessor": powertools_async,
    }


def _latency(handler: Handler, event: Event) -> float:
    started = time.perf_counter()
    response = handler(event, FakeLambdaContext())
    elapsed = time.perf_counter() - started
    if response != {"batchItemFailures": []}:
        msg = f"async batch reported failures: {response!r}"
        raise RuntimeError(msg)
    return elapsed


def fifo_check(groups: int = 3, per_group: int = 4) -> tuple[bool, float, float]:
    """Run a FIFO batch of async jobs; each group's jobs must start in order, one after the other.

    Later jobs sleep less, so a worker that ran a group concurrently would finish them out of order.

    Returns:
        Whether every group stayed ordered, the batch's latency, and the sum of the sleeps.
    """
    log: list[tuple[str, int, str]] = []

    async def job(payload: SleepPayload, ctx: JobContext) -> None:
        log.append((payload.group, payload.seq, "start"))
        await asyncio.sleep(payload.seconds)
        log.append((payload.group, payload.seq, "end"))

    fifo = define_job(name="fifo", handler=job, payload=SleepPayload)
    worker = bootstrap_worker(module=Module(name="fifo", jobs=[fifo]), driver=MockQueueDriver())
    order = [(f"g{g}", seq) for seq in range(per_group) for g in range(groups)]
    sleeps = {seq: 0.005 * (per_group - seq) for seq in range(per_group)}
    event = sqs_event(
        sqs_record(
            job_body("fifo", SleepPayload(group=g, seq=seq, seconds=sleeps[seq]), job_id=f"{g}-{seq}"),
            message_id=f"{g}-{seq}",
            group_id=g,
            queue="jobs.fifo",
        )
        for g, seq in order
    )
    elapsed = _latency(worker, event)
    ordered = True
    for g in {g for g, _ in order}:
        seen = [(seq, what) for group, seq, what in log if group == g]
        expected = [(seq, what) for seq in range(per_group) for what in ("start", "end")]
        ordered = ordered and seen == expected
    return ordered and len(log) == 2 * len(order), elapsed, groups * sum(sleeps.values())


def bench_async(*, rounds: int) -> AsyncResult:
    """Latency of 10 jobs of 50 ms in one batch, as a multiple of one job, per runner."""
    runners = _async_runners()
    ten, one = _sleep_event(BATCH), _sleep_event(1)
    batch: dict[str, list[float]] = {name: [] for name in runners}
    single: dict[str, list[float]] = {name: [] for name in runners}
    for handler in runners.values():
        _latency(handler, one)
    for _ in range(rounds):
        for name, handler in runners.items():
            batch[name].append(_latency(handler, ten))
            single[name].append(_latency(handler, one))
    ordered, fifo_seconds, sequential = fifo_check()
    return AsyncResult(
        batch={n: min(v) for n, v in batch.items()},
        single={n: min(v) for n, v in single.items()},
        rounds=rounds,
        fifo_ordered=ordered,
        fifo_seconds=fifo_seconds,
        fifo_sequential_seconds=sequential,
    )


def async_rows(result: AsyncResult) -> list[Row]:
    """glasswork ≤ 1.3x one job; Powertools' runners for comparison; FIFO order kept."""
    ratios = {n: result.batch[n] / result.single[n] for n in result.batch}
    rows: list[Row] = []
    for name in result.batch:
        cell = f"10 jobs {result.batch[name] * 1000:.1f} ms, 1 job {result.single[name] * 1000:.1f} ms"
        if name == "glasswork":
            rows.append(
                Row(
                    item="3",
                    measure=f"Async: 10 jobs awaiting {JOB_SECONDS * 1000:.0f} ms, max_concurrency=10: "
                    f"batch ÷ one job (best of {result.rounds})",
                    glasswork=cell,
                    ratio=_x(ratios[name]),
                    target="≤ 1.3x",
                    result=verdict(ratios[name] <= 1.3),
                )
            )
        else:
            how = "sync handler, time.sleep" if "Async" not in name else "async handler, asyncio.sleep"
            rows.append(
                Row(
                    item="3",
                    measure=f"Async: same batch on {name} ({how}): batch ÷ one job",
                    glasswork=f"{_x(ratios['glasswork'])}",
                    other=f"{name}: {cell}",
                    ratio=_x(ratios[name]),
                )
            )
    rows.append(
        Row(
            item="3",
            measure="FIFO batch, 3 groups of 4 async jobs (later jobs sleep less): each group in order",
            glasswork=f"{'ordered' if result.fifo_ordered else 'OUT OF ORDER'}, "
            f"{result.fifo_seconds * 1000:.1f} ms "
            f"(sleeps sum {result.fifo_sequential_seconds * 1000:.0f} ms)",
            target="ordered",
            result=verdict(result.fifo_ordered),
        )
    )
    return rows


# --- 4. SQS requests ---------------------------------------------------------------


class RequestsResult(msgspec.Struct, frozen=True, kw_only=True):
    """SQS requests for `enqueue_batch` of `jobs` jobs to one queue, and best wall times.

    Moto's send cost grows with queue depth, so the timed runs spread the jobs
    over fresh queues of `per_queue` messages each.
    """

    jobs: int
    rounds: int
    per_queue: int
    one_queue_requests: dict[str, int]
    one_queue_seconds: float
    batch_requests: dict[str, int]
    single_requests: dict[str, int]
    batch_seconds: float
    single_seconds: float
    endpoint_kind: str


@contextlib.contextmanager
def moto_endpoint() -> Iterator[tuple[str, str]]:
    """`GLASSWORK_TEST_SQS_ENDPOINT` if set (`make bench`), else an in-process moto server."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    endpoint = os.environ.get("GLASSWORK_TEST_SQS_ENDPOINT")
    if endpoint:
        yield endpoint, "moto_server process"
        return
    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}", "moto in-process thread"
    finally:
        server.stop()
        werkzeug.setLevel(level)


def _enqueue_run(endpoint: str, jobs: int, *, batch: bool, queues: int = 1) -> tuple[float, dict[str, int]]:
    """Enqueue `jobs` jobs over `queues` fresh queues (contiguous blocks); SQS requests by operation."""
    import boto3

    from glasswork.drivers.sqs import SQSQueueDriver

    client = boto3.session.Session().client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    names = [f"bench-{uuid.uuid4().hex[:12]}" for _ in range(queues)]
    urls = {name: client.create_queue(QueueName=name)["QueueUrl"] for name in names}
    calls: dict[str, int] = {}

    def count(model: Any, **kwargs: object) -> None:  # botocore's OperationModel
        calls[model.name] = calls.get(model.name, 0) + 1

    client.meta.events.register("before-call.sqs", count)
    try:
        service = JobService(SQSQueueDriver(urls, client=client, default_queue=names[0]))
        per_queue = [define_job(name="noop", handler=_noop, payload=OrderPayload, queue=n) for n in names]
        items = [
            (per_queue[n * queues // jobs], OrderPayload(order_id=n, sku="SKU-1234", quantity=2))
            for n in range(jobs)
        ]
        started = time.perf_counter()
        if batch:
            results = service.enqueue_batch(items)
        else:
            results = [service.enqueue(job, payload) for job, payload in items]
        elapsed = time.perf_counter() - started
        sent = dict(calls)
        client.meta.events.unregister("before-call.sqs", count)
        queued = 0
        for url in urls.values():
            attributes = client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )
            queued += int(attributes["Attributes"]["ApproximateNumberOfMessages"])
        if len(results) != jobs or queued != jobs:
            msg = f"sent {len(results)} jobs, the queues hold {queued}, expected {jobs}"
            raise RuntimeError(msg)
    finally:
        client.meta.events.unregister("before-call.sqs", count)
        for url in urls.values():
            client.delete_queue(QueueUrl=url)
    return elapsed, sent


def bench_requests(
    endpoint: str, *, jobs: int, rounds: int, per_queue: int = 100, endpoint_kind: str = ""
) -> RequestsResult:
    """Count the requests of `enqueue_batch` to one queue; time it against single enqueues.

    Args:
        endpoint: The moto server.
        jobs: Jobs per run.
        rounds: Timed rounds; each runs `enqueue_batch` then single enqueues, on fresh queues.
        per_queue: Jobs per queue in the timed runs (moto slows down as a queue fills).
        endpoint_kind: How the server runs, for the table.
    """
    one_queue_seconds, one_queue_calls = _enqueue_run(endpoint, jobs, batch=True)
    queues = max(math.ceil(jobs / per_queue), 1)
    batch_times: list[float] = []
    single_times: list[float] = []
    batch_calls: dict[str, int] = {}
    single_calls: dict[str, int] = {}
    for _ in range(rounds):
        seconds, batch_calls = _enqueue_run(endpoint, jobs, batch=True, queues=queues)
        batch_times.append(seconds)
        seconds, single_calls = _enqueue_run(endpoint, jobs, batch=False, queues=queues)
        single_times.append(seconds)
    return RequestsResult(
        jobs=jobs,
        rounds=rounds,
        per_queue=math.ceil(jobs / queues),
        one_queue_requests=one_queue_calls,
        one_queue_seconds=one_queue_seconds,
        batch_requests=batch_calls,
        single_requests=single_calls,
        batch_seconds=min(batch_times),
        single_seconds=min(single_times),
        endpoint_kind=endpoint_kind,
    )


def requests_rows(result: RequestsResult) -> list[Row]:
    """Requests ≤ jobs / 10; the wall-time ratio vs single enqueues."""
    limit = math.ceil(result.jobs / 10)
    total = sum(result.one_queue_requests.values())

    def ops(calls: Mapping[str, int]) -> str:
        return ", ".join(f"{n} {op}" for op, n in sorted(calls.items()))

    ratio = result.batch_seconds / result.single_seconds
    return [
        Row(
            item="4",
            measure=f"`enqueue_batch` of {result.jobs:,} jobs to one queue via SQSQueueDriver "
            f"({result.endpoint_kind}): SQS requests",
            glasswork=f"{total} requests ({ops(result.one_queue_requests)}) in "
            f"{result.one_queue_seconds * 1000:.0f} ms",
            other=f"single enqueues: {ops(result.single_requests)}",
            target=f"≤ {limit}",
            result=verdict(total <= limit),
        ),
        Row(
            item="4",
            measure=f"Wall time, {result.jobs:,} jobs over fresh queues of {result.per_queue} "
            f"(moto slows as a queue fills): `enqueue_batch` ÷ single `enqueue`s, best of {result.rounds}",
            glasswork=f"{result.batch_seconds * 1000:.0f} ms ({ops(result.batch_requests)})",
            other=f"single: {result.single_seconds * 1000:.0f} ms",
            ratio=_x(ratio),
        ),
    ]


# --- 5. memory ---------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set size now (Linux `/proc`), else its peak."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """This process's peak resident set size since its `exec` (Linux `VmHWM`).

    `getrusage`'s `ru_maxrss` (the fallback) keeps the high-water mark of the
    forked parent image across `exec`, so a child of a big parent reads big.
    """
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class MemoryResult(msgspec.Struct, frozen=True, kw_only=True):
    """RSS at checkpoints of warm invocations, and the peak for one large batch."""

    invocations: int
    checkpoints: dict[str, dict[str, int]]
    big_records: int
    big_body_bytes: int
    big_event_bytes: int
    big_peak: int
    big_after_import: int


def _child_memory_warm(args: Mapping[str, Any]) -> dict[str, object]:
    invocations = int(args["invocations"])
    marks = {100, invocations}
    handler = make_glasswork()
    context = FakeLambdaContext()
    checkpoints: dict[str, dict[str, int]] = {}
    for n in range(1, invocations + 1):
        response = handler(overhead_event(invocation=n), context)
        if response != {"batchItemFailures": []}:
            msg = f"invocation {n} reported failures: {response!r}"
            raise RuntimeError(msg)
        if n in marks:
            checkpoints[str(n)] = {"rss": rss_bytes(), "peak": peak_rss_bytes()}
    return {"checkpoints": checkpoints}


def _child_memory_big(args: Mapping[str, Any]) -> dict[str, object]:
    handler = make_glasswork()
    after_import = peak_rss_bytes()
    event = json.loads(Path(str(args["event"])).read_bytes())
    response = cast("dict[str, list[object]]", handler(event, FakeLambdaContext()))
    if response["batchItemFailures"]:
        msg = f"{len(response['batchItemFailures'])} records failed"
        raise RuntimeError(msg)
    return {"peak": peak_rss_bytes(), "after_import": after_import}


def bench_memory(*, invocations: int, records: int, note_bytes: int = 1024) -> MemoryResult:
    """Warm invocations and one large batch, each in a fresh subprocess.

    Args:
        invocations: 10-record invocations; RSS is read at the 100th and the last.
        records: Records in the large batch (a standard queue's event).
        note_bytes: Size of a string field in each large-batch payload.
    """
    warm = _child("memory-warm", {"invocations": invocations})
    event = overhead_event(records, note="x" * note_bytes)
    data = json.dumps(event).encode()
    bodies = sum(len(cast("dict[str, str]", r)["body"]) for r in cast("list[object]", event["Records"]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "event.json"
        path.write_bytes(data)
        big = _child("memory-big", {"event": str(path)})
    return MemoryResult(
        invocations=invocations,
        checkpoints=cast("dict[str, dict[str, int]]", warm["checkpoints"]),
        big_records=records,
        big_body_bytes=bodies,
        big_event_bytes=len(data),
        big_peak=int(cast("int", big["peak"])),
        big_after_import=int(cast("int", big["after_import"])),
    )


def memory_rows(result: MemoryResult) -> list[Row]:
    """Peak RSS flat between the 100th and the last warm invocation; the large batch ≤ 128 MB."""
    first = result.checkpoints["100"]
    last = result.checkpoints[str(result.invocations)]
    peak_growth = last["peak"] - first["peak"]
    rss_growth = last["rss"] - first["rss"]
    return [
        Row(
            item="5",
            measure=f"Peak RSS, warm 10-record invocations: 100th → {result.invocations:,}th (subprocess)",
            glasswork=f"{first['peak'] / MIB:.1f} → {last['peak'] / MIB:.1f} MiB "
            f"(+{peak_growth / 1024:.0f} KiB; current RSS "
            f"{first['rss'] / MIB:.1f} → {last['rss'] / MIB:.1f} MiB)",
            target=f"growth ≤ {RSS_TOLERANCE // 1024} KiB",
            result=verdict(peak_growth <= RSS_TOLERANCE and rss_growth <= RSS_TOLERANCE),
        ),
        Row(
            item="5",
            measure=f"One {result.big_records:,}-record batch (standard queue, "
            f"{result.big_event_bytes / MIB:.1f} MiB event, "
            f"{result.big_body_bytes / MIB:.1f} MiB of bodies): peak RSS of the subprocess",
            glasswork=f"{result.big_peak / MIB:.1f} MiB "
            f"(after imports: {result.big_after_import / MIB:.1f} MiB)",
            target=f"≤ {MEMORY_BUDGET // MIB} MB",
            result=verdict(result.big_peak <= MEMORY_BUDGET),
        ),
    ]


# --- children, machine, main ----------------------------------------------------------

CHILDREN: Final[dict[str, Callable[[Mapping[str, Any]], dict[str, object]]]] = {
    "callgrind": _child_callgrind,
    "bootstrap": _child_bootstrap,
    "memory-warm": _child_memory_warm,
    "memory-big": _child_memory_big,
}


def _child(kind: str, args: Mapping[str, object], *, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(HERE), "_child", kind, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        msg = f"child {kind} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        raise RuntimeError(msg)
    return cast("dict[str, Any]", json.loads(proc.stdout.splitlines()[-1]))


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> str:
    """nproc, the CPU model, Python, load and the compared packages' versions."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 1
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = ", ".join(
        f"{p} {_version(p)}" for p in ("glasswork", "msgspec", "aws-lambda-powertools", "boto3", "moto")
    )
    return (
        f"nproc {nproc}, CPU {model}, {platform.python_implementation()} {platform.python_version()} "
        f"on {platform.system()} {platform.release()}; load average {load}; {versions}"
    )


class Sizes(msgspec.Struct, frozen=True, kw_only=True):
    """How much work each benchmark does."""

    overhead_rounds: int
    overhead_invocations: int
    callgrind_base: int
    callgrind_extra: int
    coldstart_runs: int
    bootstrap_runs: int
    async_rounds: int
    enqueue_jobs: int
    enqueue_rounds: int
    memory_invocations: int
    memory_records: int


FULL: Final = Sizes(
    overhead_rounds=25,
    overhead_invocations=400,
    callgrind_base=10,
    callgrind_extra=200,
    coldstart_runs=15,
    bootstrap_runs=7,
    async_rounds=5,
    enqueue_jobs=1000,
    enqueue_rounds=2,
    memory_invocations=1000,
    memory_records=1000,
)
QUICK: Final = Sizes(
    overhead_rounds=3,
    overhead_invocations=50,
    callgrind_base=2,
    callgrind_extra=10,
    coldstart_runs=2,
    bootstrap_runs=1,
    async_rounds=1,
    enqueue_jobs=100,
    enqueue_rounds=1,
    memory_invocations=150,
    memory_records=100,
)


def _progress(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def run(
    sections: Sequence[str], sizes: Sizes, *, use_valgrind: bool, keep_callgrind: Path | None = None
) -> tuple[list[Row], list[str]]:
    """Run the chosen sections; returns the table's rows and notes."""
    rows: list[Row] = []
    notes: list[str] = []
    if "overhead" in sections:
        _progress("1/5 per-record overhead (alternating rounds)")
        results = [
            bench_overhead(mode, rounds=sizes.overhead_rounds, invocations=sizes.overhead_invocations)
            for mode in LOGGING_MODES
        ]
        if use_valgrind:
            _progress("1/5 instruction counts under callgrind (slow)")
            counts, how = count_instructions(
                LOGGING_MODES,
                base=sizes.callgrind_base,
                extra=sizes.callgrind_extra,
                workers=os.cpu_count() or 1,
                keep=keep_callgrind,
            )
            results = [msgspec.structs.replace(r, instructions=counts[r.mode]) for r in results]
            notes.append(
                f"Instructions: callgrind, {sizes.callgrind_base + sizes.callgrind_extra} minus "
                f"{sizes.callgrind_base} invocations in fresh interpreters, PYTHONHASHSEED=0, {how}."
            )
        for result in results:
            rows.extend(overhead_rows(result))
        first = results[0]
        notes.append(
            f"Per-record: best of {first.rounds} alternating rounds of {first.records_per_round:,} records "
            "per variant; the job is a no-op with a msgspec Struct payload; hooks unset."
        )
    if "coldstart" in sections:
        _progress("2/5 cold start")
        rows.extend(
            coldstart_rows(bench_coldstart(runs=sizes.coldstart_runs, bootstrap_runs=sizes.bootstrap_runs))
        )
        notes.append(
            "Cold start: PYTHONDONTWRITEBYTECODE unset for the child interpreters, one untimed warm-up "
            "import each so bytecode is compiled and cached; subprocess wall time minus `python -c pass`."
        )
    if "async" in sections:
        _progress("3/5 async concurrency")
        rows.extend(async_rows(bench_async(rounds=sizes.async_rounds)))
    if "requests" in sections:
        _progress("4/5 SQS requests against moto")
        with moto_endpoint() as (endpoint, kind):
            sent = bench_requests(
                endpoint, jobs=sizes.enqueue_jobs, rounds=sizes.enqueue_rounds, endpoint_kind=kind
            )
        rows.extend(requests_rows(sent))
    if "memory" in sections:
        _progress("5/5 memory (subprocesses)")
        rows.extend(
            memory_rows(bench_memory(invocations=sizes.memory_invocations, records=sizes.memory_records))
        )
    return rows, notes


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and print the table; exit 1 on a FAIL only with `--strict`."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["_child"]:
        result = CHILDREN[args_list[1]](json.loads(args_list[2]))
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no valgrind: a smoke run")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--no-valgrind", action="store_true", help="skip the instruction counts")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--keep-callgrind", type=Path, metavar="DIR", help="keep the callgrind files (callgrind_annotate)"
    )
    args = parser.parse_args(args_list)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    valgrind = valgrind_path()
    use_valgrind = valgrind is not None and not args.quick and not args.no_valgrind
    started = time.perf_counter()
    rows, notes = run(
        sections, QUICK if args.quick else FULL, use_valgrind=use_valgrind, keep_callgrind=args.keep_callgrind
    )
    if valgrind is None:
        notes.append("valgrind not found: no instruction counts.")
    elif not use_valgrind:
        notes.append("Instruction counts skipped (--quick or --no-valgrind).")
    command = " ".join(["python", "bench/run.py", *args_list])
    print(f"## glasswork benchmarks{' (--quick: smoke sizes, not figures)' if args.quick else ''}\n")
    print(f"Machine: {machine()}\n")
    print(f"Command: `{command}` ({time.perf_counter() - started:.0f} s)\n")
    print(render(rows))
    print()
    for note in notes:
        print(f"- {note}")
    failed = [r for r in rows if r.result.startswith("FAIL")]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
