"""glasswork's performance targets (issues 5 and 10), measured side by side in one run.

Prints one markdown table of ratios, each row with its target and PASS/FAIL:

1. Per-record overhead: `bootstrap_worker`'s handler on 10-record SQS batches
   with a no-op job, vs Powertools' `BatchProcessor` + `process_partial_response`
   doing the same JSON decode and dispatch by job name, vs a bare floor
   (msgspec typed decode of the body + dict dispatch). Rounds alternate the
   three in one process; ratios use each side's best round (medians shown
   beside). With valgrind, instruction counts (callgrind, collecting only
   inside the measured loop of a fresh interpreter) give a second ratio that
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

Section `pipeline` holds issue 10's targets (rows 10.x), each a `Scenario`
timed and counted like 1, with the root logger at WARNING:

10.1 A typed success whose record carries the `JobName` attribute:
     Powertools ÷ glasswork ≥ 3x.
10.2 An untyped success (`payload=None`) without the attribute: ≥ 2.5x.
10.3 3 of 10 records failing transiently (retried, not dead-lettered):
     Powertools ÷ glasswork ≥ 1x.
10.4 All four hooks set to sync no-ops vs none: glasswork ÷ glasswork ≤ 1.5x.
10.5 A fresh process through its first batch: import, build the handler
     (`bootstrap_worker` without `driver=`) and handle 10 successes, above a
     bare interpreter: glasswork ≤ ½ of Powertools; boto3 and botocore must
     still be unloaded after that batch.

Before timing, each scenario's variants must agree on how many jobs ran and
which records failed (`verify_scenario`).

Run: `python bench/run.py [--quick] [--only overhead,pipeline,coldstart,async,requests,memory]
[--no-valgrind] [--keep-callgrind DIR] [--strict]`; `callgrind_annotate
DIR/callgrind.<scenario>.glasswork.*` then shows where the per-record instructions
go. Needs the `bench` extra (aws-lambda-powertools) and `moto[server]`; uses the
moto server at `GLASSWORK_TEST_SQS_ENDPOINT` (as `make bench` starts it) or
starts one in-process. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import ast
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

from glasswork import (
    JobContext,
    JobService,
    MockQueueDriver,
    Module,
    TransientJobError,
    WorkerHooks,
    bootstrap_worker,
    define_job,
)
from glasswork.testing import FakeLambdaContext, job_body, sqs_event, sqs_record

Event: TypeAlias = dict[str, object]
Handler: TypeAlias = Callable[[Event, object], object]
Variant: TypeAlias = Literal["glasswork", "powertools", "floor", "glasswork-hooks"]
LoggingMode: TypeAlias = Literal["no-handler", "handler", "warning"]
Verdict: TypeAlias = Literal["PASS", "FAIL", "info", "skipped"]

HERE: Final = Path(__file__).resolve()
ROOT: Final = HERE.parent.parent
VARIANTS: Final[tuple[Variant, ...]] = ("glasswork", "powertools", "floor")
LOGGING_MODES: Final[tuple[LoggingMode, ...]] = ("no-handler", "handler")
SECTIONS: Final = ("overhead", "pipeline", "coldstart", "async", "requests", "memory")
BATCH: Final = 10
FAILING: Final = frozenset({2, 5, 8})
FLAKY_MESSAGE: Final = "the order service timed out"
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


def fails(payload: object) -> bool:
    """Whether a flaky scenario's job fails for this payload: `order_id % 10` in `FAILING`."""
    if isinstance(payload, OrderPayload):
        return payload.order_id % BATCH in FAILING
    return cast("dict[str, int]", payload)["order_id"] % BATCH in FAILING


def _flaky(payload: object, ctx: JobContext) -> None:
    if fails(payload):
        raise TransientJobError(FLAKY_MESSAGE)


def _flaky_untyped(payload: object) -> None:
    if fails(payload):
        raise TransientJobError(FLAKY_MESSAGE)


def _hook(execution: object, ctx: JobContext) -> None:
    return None


def _error_hook(execution: object, ctx: JobContext, error: BaseException) -> None:
    return None


NOOP_HOOKS: Final = WorkerHooks(
    on_job_start=_hook, on_job_complete=_hook, on_job_failed=_error_hook, on_job_dead_letter=_error_hook
)


def overhead_event(
    records: int = BATCH, *, invocation: int = 0, note: str = "", attribute: bool = False
) -> Event:
    """An SQS event of `records` no-op jobs, with ids unique to `invocation`.

    Record `i` has `order_id = invocation * records + i`; with `attribute` each
    record carries the `JobName` message attribute, as `JobService` sends it.
    """
    return sqs_event(
        sqs_record(
            job_body(
                "noop",
                OrderPayload(order_id=invocation * records + i, sku="SKU-1234", quantity=2, note=note),
                job_id=f"job-{invocation}-{i}",
            ),
            message_id=f"00000000-0000-4000-8000-{invocation:06d}{i:06d}",
            message_attributes={"JobName": "noop"} if attribute else None,
        )
        for i in range(records)
    )


def make_glasswork(
    job_fn: Callable[[Any, JobContext], None] = _noop,
    *,
    typed: bool = True,
    hooks: WorkerHooks | None = None,
    driver: MockQueueDriver | None = None,
) -> Handler:
    """glasswork's Lambda handler for one job and an in-memory driver.

    Args:
        job_fn: The job's handler.
        typed: Declare `payload=OrderPayload`; else the job gets the decoded JSON.
        hooks: Lifecycle hooks (default: none).
        driver: The worker driver (default: a fresh `MockQueueDriver`).
    """
    job = define_job(name="noop", handler=job_fn, payload=OrderPayload if typed else None)
    return bootstrap_worker(
        module=Module(name="bench", jobs=[job]), hooks=hooks, driver=driver or MockQueueDriver()
    )


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
            try:
                envelope = _envelope.decode(record["body"])
                decoder, run = jobs[envelope.job_name]
                run(decoder.decode(envelope.payload))
            except Exception:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    return handler


class Scenario(msgspec.Struct, frozen=True, kw_only=True):
    """A workload every variant runs, under one logging set-up, and the target it is held to.

    Attributes:
        key: Its name in callgrind children and files.
        label: How the table describes it.
        mode: The logging set-up while it runs.
        variants: The variants compared; the first is the subject, the second the reference.
        typed: glasswork's job declares `payload=OrderPayload` (else it gets the decoded JSON).
        attribute: Records carry the `JobName` message attribute.
        flaky: Records whose `order_id % 10` is in `FAILING` fail transiently.
        item: The table's `#` for the scenario's target row.
        speedup: The target is reference ÷ subject ≥ `bound` (else subject ÷ reference ≤ `bound`).
        bound: The target ratio.
    """

    key: str
    label: str
    mode: LoggingMode
    variants: tuple[Variant, ...]
    typed: bool = True
    attribute: bool = False
    flaky: bool = False
    item: str = ""
    speedup: bool = True
    bound: float = 0.0

    def config(self, variant: Variant) -> tuple[object, ...]:
        """What a variant's handler and batch depend on: equal configs measure the same thing."""
        return (variant, self.mode, self.typed, self.attribute, self.flaky)

    def event(self) -> Event:
        """The 10-record batch every variant handles."""
        return overhead_event(attribute=self.attribute)

    def expected_failures(self, event: Event) -> list[str]:
        """The message ids every variant must report failed, in input order."""
        if not self.flaky:
            return []
        records = cast("list[dict[str, str]]", event["Records"])
        return [r["messageId"] for i, r in enumerate(records) if i % BATCH in FAILING]

    @property
    def target(self) -> str:
        """The target as the table shows it."""
        return f"{'≥' if self.speedup else '≤'} {self.bound:g}x"

    def meets(self, ratio: float) -> bool:
        """Whether a ratio (as `ratio_of` computes it) meets the target."""
        return ratio >= self.bound if self.speedup else ratio <= self.bound

    def ratio_of(self, values: Mapping[str, float]) -> float:
        """Reference ÷ subject for a speed-up target, else subject ÷ reference."""
        subject, reference = values[self.variants[0]], values[self.variants[1]]
        return reference / subject if self.speedup else subject / reference


OVERHEAD: Final[dict[LoggingMode, Scenario]] = {
    mode: Scenario(
        key=f"overhead-{mode}",
        label="INFO, no handler" if mode == "no-handler" else "INFO, handler attached",
        mode=mode,
        variants=VARIANTS,
        item="1",
        bound=3.0,
    )
    for mode in LOGGING_MODES
}
PIPELINE: Final[tuple[Scenario, ...]] = (
    Scenario(
        key="typed",
        label="Success, typed payload (msgspec Struct), `JobName` attribute",
        mode="warning",
        variants=("glasswork", "powertools"),
        attribute=True,
        item="10.1",
        bound=3.0,
    ),
    Scenario(
        key="untyped",
        label="Success, untyped payload (`payload=None`), no `JobName` attribute",
        mode="warning",
        variants=("glasswork", "powertools"),
        typed=False,
        item="10.2",
        bound=2.5,
    ),
    Scenario(
        key="failures",
        label=f"{len(FAILING)} of {BATCH} records fail transiently (Retry, receive count 1), "
        "typed, `JobName` attribute",
        mode="warning",
        variants=("glasswork", "powertools"),
        attribute=True,
        flaky=True,
        item="10.3",
        bound=1.0,
    ),
    Scenario(
        key="hooks",
        label="Success batch of 10.1 with all four hooks set to sync no-ops",
        mode="warning",
        variants=("glasswork-hooks", "glasswork"),
        attribute=True,
        item="10.4",
        speedup=False,
        bound=1.5,
    ),
)
SCENARIOS: Final[dict[str, Scenario]] = {s.key: s for s in (*OVERHEAD.values(), *PIPELINE)}
VARIANT_NAMES: Final[dict[Variant, str]] = {
    "glasswork": "glasswork",
    "powertools": "Powertools BatchProcessor",
    "floor": "floor",
    "glasswork-hooks": "glasswork with 4 no-op hooks",
}


class Probe:
    """What one variant's job and hooks saw, to check that the variants of a scenario agree."""

    def __init__(self) -> None:
        self.payloads: list[object] = []
        self.hooks: list[str] = []
        self.driver = MockQueueDriver()

    def glasswork_job(self, flaky: bool) -> Callable[[Any, JobContext], None]:
        """A glasswork job handler that records its payload (and fails like `_flaky`)."""

        def job(payload: object, ctx: JobContext) -> None:
            self.payloads.append(payload)
            if flaky and fails(payload):
                raise TransientJobError(FLAKY_MESSAGE)

        return job

    def plain_job(self, flaky: bool) -> Callable[[Any], None]:
        """A payload-only job (Powertools, the floor) that records its payload."""

        def job(payload: object) -> None:
            self.payloads.append(payload)
            if flaky and fails(payload):
                raise TransientJobError(FLAKY_MESSAGE)

        return job

    def worker_hooks(self) -> WorkerHooks:
        """All four hooks, each recording its name."""
        return WorkerHooks(
            on_job_start=lambda execution, ctx: self.hooks.append("start"),
            on_job_complete=lambda execution, ctx: self.hooks.append("complete"),
            on_job_failed=lambda execution, ctx, error: self.hooks.append("failed"),
            on_job_dead_letter=lambda execution, ctx, error: self.hooks.append("dead_letter"),
        )


def make_handler(scenario: Scenario, variant: Variant, probe: Probe | None = None) -> Handler:
    """One variant's handler for a scenario; with a probe, its job and hooks record what they see."""
    if variant in ("powertools", "floor"):
        if probe is not None:
            plain = probe.plain_job(scenario.flaky)
        else:
            plain = _flaky_untyped if scenario.flaky else _noop_untyped
        return make_powertools(plain) if variant == "powertools" else make_floor(plain)
    hooks: WorkerHooks | None = None
    if variant == "glasswork-hooks":
        hooks = NOOP_HOOKS if probe is None else probe.worker_hooks()
    if probe is not None:
        job = probe.glasswork_job(scenario.flaky)
    else:
        job = _flaky if scenario.flaky else _noop_any
    driver = probe.driver if probe is not None else None
    return make_glasswork(job, typed=scenario.typed, hooks=hooks, driver=driver)


class Seen(msgspec.Struct, frozen=True, kw_only=True):
    """What one variant did with a scenario's batch."""

    ran: int
    failed: list[str]
    hooks: dict[str, int]
    dead_letters: int


def verify_scenario(scenario: Scenario) -> dict[str, Seen]:
    """Run each variant once on the scenario's batch and check that they all did the same.

    Every variant must run the job once per record and report exactly the
    expected records failed (none, or the flaky ones); glasswork must
    dead-letter nothing (the failures are retries) and fire its hooks once per
    record and outcome.

    Returns:
        What each variant did.

    Raises:
        RuntimeError: A variant ran, failed or hooked differently.
    """
    event = scenario.event()
    context = FakeLambdaContext()
    expected = scenario.expected_failures(event)
    seen: dict[str, Seen] = {}
    with logging_mode(scenario.mode):
        for variant in scenario.variants:
            probe = Probe()
            response = cast(
                "dict[str, list[dict[str, str]]]", make_handler(scenario, variant, probe)(event, context)
            )
            seen[variant] = Seen(
                ran=len(probe.payloads),
                failed=[f["itemIdentifier"] for f in response["batchItemFailures"]],
                hooks=dict(collections.Counter(probe.hooks)),
                dead_letters=len(probe.driver.dead_letters),
            )
    fired = {"start": BATCH, "complete": BATCH - len(expected), "failed": len(expected)}
    for name, did in seen.items():
        hooks = {hook: n for hook, n in fired.items() if n} if name == "glasswork-hooks" else {}
        if did.ran != BATCH or did.failed != expected or did.dead_letters or did.hooks != hooks:
            msg = (
                f"{scenario.key}/{name}: ran {did.ran} of {BATCH} jobs, reported {did.failed} failed "
                f"(expected {expected}), dead-lettered {did.dead_letters}, "
                f"hooks {did.hooks} (expected {hooks})"
            )
            raise RuntimeError(msg)
    return seen


def verify_variants() -> None:
    """Check every scenario's variants (see `verify_scenario`).

    Raises:
        RuntimeError: A variant ran, failed or hooked differently.
    """
    for scenario in SCENARIOS.values():
        verify_scenario(scenario)


@contextlib.contextmanager
def logging_mode(mode: LoggingMode) -> Iterator[io.StringIO]:
    """The root logger as a mode sets it up, restored afterwards.

    `no-handler`: INFO, nothing attached. `handler`: INFO, a stream handler.
    `warning`: WARNING with a stream handler, as on Lambda by default: the
    outcome log stays on, but INFO (a retried failure) is filtered out.
    """
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, root.handlers[:]
    stream = io.StringIO()
    root.handlers = [] if mode == "no-handler" else [logging.StreamHandler(stream)]
    root.setLevel(logging.WARNING if mode == "warning" else logging.INFO)
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


def verdicts(time_ok: bool, instructions_ok: bool | None) -> str:
    """The time verdict, with the instructions' verdict beside it when the two disagree."""
    result: str = verdict(time_ok)
    if instructions_ok is not None and instructions_ok != time_ok:
        result += f" (instructions: {verdict(instructions_ok)})"
    return result


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


# --- 1. per-record overhead, and the pipeline scenarios of issue 10 ------------------


class ScenarioResult(msgspec.Struct, frozen=True, kw_only=True):
    """Seconds (and instructions) per record for each variant of one scenario."""

    scenario: str
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


def bench_scenario(scenario: Scenario, *, rounds: int, invocations: int) -> ScenarioResult:
    """Time a scenario's variants in alternating rounds, after checking that they agree.

    Args:
        scenario: The workload, its logging set-up and its variants.
        rounds: Rounds; each runs every variant once, in a rotating order.
        invocations: 10-record invocations per variant per round.

    Returns:
        Best and median seconds per record, by variant.
    """
    verify_scenario(scenario)
    variants = scenario.variants
    handlers = {name: make_handler(scenario, name) for name in variants}
    event = scenario.event()
    context = FakeLambdaContext()
    samples: dict[str, list[float]] = {name: [] for name in handlers}
    with logging_mode(scenario.mode):
        for handler in handlers.values():
            _time_handler(handler, event, context, max(invocations // 5, 1))
        for index in range(rounds):
            shift = index % len(variants)
            for name in variants[shift:] + variants[:shift]:
                samples[name].append(_time_handler(handlers[name], event, context, invocations))
    return ScenarioResult(
        scenario=scenario.key,
        best={name: min(values) for name, values in samples.items()},
        median={name: statistics.median(values) for name, values in samples.items()},
        rounds=rounds,
        records_per_round=invocations * BATCH,
    )


def bench_overhead(mode: LoggingMode, *, rounds: int, invocations: int) -> ScenarioResult:
    """Time glasswork, Powertools and the floor on the issue-5 batch under one logging mode.

    Args:
        mode: `no-handler` (root at INFO, nothing attached) or `handler` (a stream handler attached).
        rounds: Rounds; each runs every variant once, in a rotating order.
        invocations: 10-record invocations per variant per round.
    """
    return bench_scenario(OVERHEAD[mode], rounds=rounds, invocations=invocations)


def _child_callgrind(args: Mapping[str, Any]) -> dict[str, object]:
    scenario = SCENARIOS[str(args["scenario"])]
    handler = make_handler(scenario, cast("Variant", args["variant"]))
    event = scenario.event()
    context = FakeLambdaContext()
    with logging_mode(scenario.mode):
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


def _callgrind_out_total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return 0


def _callgrind_total(
    scenario: str, variant: Variant, invocations: int, directory: Path, *, whole: bool = False
) -> int:
    """Instructions callgrind counted inside the measured loop (or in the whole process)."""
    valgrind = valgrind_path()
    assert valgrind is not None
    out = directory / f"callgrind.{scenario}.{variant}.{invocations}.{'whole' if whole else 'loop'}.out"
    env = {**_bytecode_env(), "PYTHONHASHSEED": "0"}
    payload = json.dumps({"scenario": scenario, "variant": variant, "invocations": invocations})
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
        msg = f"callgrind run of {scenario}/{variant} failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    return _callgrind_out_total(out)


def count_instructions(
    scenarios: Sequence[Scenario], *, base: int, extra: int, workers: int, keep: Path | None = None
) -> tuple[dict[str, dict[str, float]], str]:
    """Instructions per record, by scenario and variant, from callgrind runs in parallel.

    Each variant runs in a fresh interpreter (PYTHONHASHSEED=0) with collection
    limited to the measured loop of `base + extra` invocations (callgrind's
    `--toggle-collect` on the C function running it), so imports, bytecode
    compilation and warm-up are not counted; the total divided by the records
    is the count. Variants that build the same handler for the same batch
    (`Scenario.config`) run once. If the interpreter has no symbol for that
    function (every count is 0), whole processes are counted instead: `base`
    and `base + extra` invocations, the difference divided by `extra * 10`
    records.

    Args:
        scenarios: The scenarios to count, each with all its variants.
        base: Invocations of the shorter run (whole processes only).
        extra: Additional invocations of the longer run.
        workers: callgrind processes at once.
        keep: A directory to keep the callgrind files in (for `callgrind_annotate`).

    Returns:
        The counts by scenario key and variant, and how they were collected.
    """
    runs: dict[tuple[object, ...], tuple[str, Variant]] = {}
    for s in scenarios:
        for v in s.variants:
            runs.setdefault(s.config(v), (s.key, v))
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        directory = Path(tmp) if keep is None else keep
        directory.mkdir(parents=True, exist_ok=True)
        longer = base + extra
        counted = list(pool.map(lambda r: _callgrind_total(r[0], r[1], longer, directory), runs.values()))
        per_record = {config: n / (longer * BATCH) for config, n in zip(runs, counted, strict=True)}
        how = f"measured loop only (--toggle-collect={CALLGRIND_TOGGLE}), {longer} invocations"
        if not all(counted):
            for code in IMPORTS.values():
                _run_python(code, _bytecode_env())
            jobs = [(key, v, n) for key, v in runs.values() for n in (base, longer)]
            whole = pool.map(lambda j: _callgrind_total(j[0], j[1], j[2], directory, whole=True), jobs)
            totals = dict(zip(jobs, whole, strict=True))
            per_record = {
                config: (totals[(key, v, longer)] - totals[(key, v, base)]) / (extra * BATCH)
                for config, (key, v) in runs.items()
            }
            how = f"whole process, {longer} minus {base} invocations"
    counts: dict[str, dict[str, float]] = {
        s.key: {v: per_record[s.config(v)] for v in s.variants} for s in scenarios
    }
    return counts, how


def _per_record_cell(result: ScenarioResult, variant: str) -> str:
    text = f"{result.best[variant] * 1e6:.2f} µs/record (median {result.median[variant] * 1e6:.2f})"
    if result.instructions is not None:
        text += f", {result.instructions[variant]:,.0f} instructions/record"
    return text


def overhead_rows(result: ScenarioResult) -> list[Row]:
    """Two rows per logging mode: glasswork vs Powertools (≥ 3x) and vs the floor (aim ≤ 2x)."""
    label = SCENARIOS[result.scenario].label
    us = {name: value * 1e6 for name, value in result.best.items()}
    med = {name: value * 1e6 for name, value in result.median.items()}
    instr = result.instructions
    vs_powertools = us["powertools"] / us["glasswork"]
    vs_floor = us["glasswork"] / us["floor"]
    instr_pt = instr_floor = "skipped"
    instr_pt_ok = instr_floor_ok = None
    if instr is not None:
        instr_vs_pt = instr["powertools"] / instr["glasswork"]
        instr_vs_floor = instr["glasswork"] / instr["floor"]
        instr_pt, instr_floor = _x(instr_vs_pt), _x(instr_vs_floor)
        instr_pt_ok, instr_floor_ok = instr_vs_pt >= 3, instr_vs_floor <= 2
    return [
        Row(
            item="1",
            measure=f"Per-record overhead, 10-record batches, {label}: Powertools ÷ glasswork",
            glasswork=_per_record_cell(result, "glasswork"),
            other="Powertools BatchProcessor: " + _per_record_cell(result, "powertools"),
            ratio=f"{_x(vs_powertools)} (median {_x(med['powertools'] / med['glasswork'])})",
            instructions=instr_pt,
            target="≥ 3x",
            result=verdicts(vs_powertools >= 3, instr_pt_ok),
        ),
        Row(
            item="1",
            measure=f"Per-record overhead, {label}: glasswork ÷ floor (msgspec decode + dict dispatch)",
            glasswork=_per_record_cell(result, "glasswork"),
            other="floor: " + _per_record_cell(result, "floor"),
            ratio=f"{_x(vs_floor)} (median {_x(med['glasswork'] / med['floor'])})",
            instructions=instr_floor,
            target="≤ 2x (aim)",
            result=verdicts(vs_floor <= 2, instr_floor_ok),
        ),
    ]


def scenario_row(result: ScenarioResult) -> Row:
    """A pipeline scenario's target row: its time and instruction ratios, each held to the target."""
    scenario = SCENARIOS[result.scenario]
    subject, reference = scenario.variants[:2]
    ratio = scenario.ratio_of(result.best)
    instructions = "skipped"
    instructions_ok = None
    if result.instructions is not None:
        counted = scenario.ratio_of(result.instructions)
        instructions, instructions_ok = _x(counted), scenario.meets(counted)
    names = (VARIANT_NAMES[reference], VARIANT_NAMES[subject])
    how = "{} ÷ {}".format(*(names if scenario.speedup else reversed(names)))
    return Row(
        item=scenario.item,
        measure=f"{scenario.label}, 10-record batches, root logger at WARNING: {how} per record",
        glasswork=_per_record_cell(result, subject)
        if subject == "glasswork"
        else f"{VARIANT_NAMES[subject]}: {_per_record_cell(result, subject)}",
        other=f"{VARIANT_NAMES[reference]}: {_per_record_cell(result, reference)}",
        ratio=f"{_x(ratio)} (median {_x(scenario.ratio_of(result.median))})",
        instructions=instructions,
        target=scenario.target,
        result=verdicts(scenario.meets(ratio), instructions_ok),
    )


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


# --- 10.5 cold start through the first batch -----------------------------------------

FIRST_BATCH_PRELUDE: Final = """\
import sys, time

started = time.perf_counter()


class Context:
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 128
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "2026/01/01/[$LATEST]bench"
    client_context = None
    identity = None

    def get_remaining_time_in_millis(self):
        return 30000


ran = []
"""
FIRST_BATCH_CODE: Final[dict[str, str]] = {
    "bare": """\
imported = built = done = time.perf_counter()
response = None
""",
    "glasswork": """\
import glasswork
import msgspec

imported = time.perf_counter()


class OrderPayload(msgspec.Struct, frozen=True, kw_only=True):
    order_id: int
    sku: str
    quantity: int = 1
    note: str = ""


def noop(payload, ctx):
    ran.append(payload)


handler = glasswork.bootstrap_worker(
    module=glasswork.Module(
        name="bench", jobs=[glasswork.define_job(name="noop", handler=noop, payload=OrderPayload)]
    )
)
built = time.perf_counter()
response = handler(EVENT, Context())
done = time.perf_counter()
""",
    "powertools": """\
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

imported = time.perf_counter()
processor = BatchProcessor(event_type=EventType.SQS)
jobs = {"noop": ran.append}


def record_handler(record):
    body = record.json_body
    jobs[body["jobName"]](body["payload"])


built = time.perf_counter()
response = process_partial_response(
    event=EVENT, record_handler=record_handler, processor=processor, context=Context()
)
done = time.perf_counter()
""",
}
FIRST_BATCH_REPORT: Final = """\
heavy = [m for m in ("boto3", "botocore") if m in sys.modules]
phases = {"import": imported - started, "build": built - imported, "first": done - built}
print(repr({"phases": phases, "ran": len(ran), "response": response, "heavy": heavy}))
"""
FIRST_BATCH_VARIANTS: Final = ("glasswork", "powertools")


def first_batch_code(variant: str, event: Event) -> str:
    """A `python -c` program: import, build the handler, run `event` once, report (bare: none of it).

    Every program starts with the same prelude (a Lambda context class) and
    the event as a literal, so the bare interpreter pays for those too.
    """
    return f"{FIRST_BATCH_PRELUDE}EVENT = {event!r}\n{FIRST_BATCH_CODE[variant]}{FIRST_BATCH_REPORT}"


def _offline_env() -> dict[str, str]:
    """`_bytecode_env` without AWS region, profile or credentials settings, so nothing can reach AWS."""
    env = {k: v for k, v in _bytecode_env().items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true"
    )
    return env


def _run_first_batch(variant: str, code: str, env: Mapping[str, str]) -> tuple[float, dict[str, Any]]:
    """Wall time of one fresh child, and what it reported; raises unless every job ran and none failed."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        msg = f"first-batch child {variant} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        raise RuntimeError(msg)
    report = cast("dict[str, Any]", ast.literal_eval(proc.stdout.splitlines()[-1]))
    if variant != "bare" and (report["ran"] != BATCH or report["response"] != {"batchItemFailures": []}):
        msg = f"first-batch child {variant} ran {report['ran']} of {BATCH} jobs: {report['response']!r}"
        raise RuntimeError(msg)
    return elapsed, report


def _callgrind_code(code: str, out: Path, env: Mapping[str, str]) -> int:
    """Instructions of a whole `python -c code` process under callgrind."""
    valgrind = valgrind_path()
    assert valgrind is not None
    proc = subprocess.run(
        [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", code],
        env={**env, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        msg = f"callgrind run of {out.name} failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    return _callgrind_out_total(out)


class FirstBatchResult(msgspec.Struct, frozen=True, kw_only=True):
    """Fresh processes that import, build a handler and run one 10-record batch, above a bare one.

    Attributes:
        best: Seconds above the bare interpreter (best against best), by variant.
        median: The same, median against median.
        runs: Timed runs per variant.
        phases: The best in-process seconds of `import`, `build` and `first` (batch), by variant.
        heavy: `boto3`/`botocore` found in `sys.modules` after the first batch, by variant.
        bytecode_cached: Whether glasswork's bytecode was cached.
        instructions: Whole-process instructions above the bare interpreter (callgrind), by variant.
    """

    best: dict[str, float]
    median: dict[str, float]
    runs: int
    phases: dict[str, dict[str, float]]
    heavy: dict[str, list[str]]
    bytecode_cached: bool
    instructions: dict[str, float] | None = None


def bench_first_batch(*, runs: int, callgrind_workers: int = 0, keep: Path | None = None) -> FirstBatchResult:
    """Time fresh processes from `import` through their first batch, against a bare interpreter.

    glasswork's child imports `glasswork`, calls `bootstrap_worker(module=...)`
    without `driver=` (as on Lambda) and handles 10 typed successes carrying the
    `JobName` attribute; Powertools' imports its batch utility, builds a
    `BatchProcessor` and handles the same event with `json_body` and dispatch
    by `jobName`. Children run with bytecode cached (an untimed run of each
    first), in rotating order, without AWS settings (`_offline_env`).

    Args:
        runs: Timed runs of each child.
        callgrind_workers: Also count each child's instructions under callgrind,
            this many at once (0: do not).
        keep: A directory to keep those callgrind files in.
    """
    env = _offline_env()
    event = overhead_event(attribute=True)
    codes = {name: first_batch_code(name, event) for name in ("bare", *FIRST_BATCH_VARIANTS)}
    for name, code in codes.items():
        _run_first_batch(name, code, env)
    names = list(codes)
    samples: dict[str, list[float]] = {name: [] for name in names}
    reports: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for index in range(runs):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            elapsed, report = _run_first_batch(name, codes[name], env)
            samples[name].append(elapsed)
            reports[name].append(report)
    instructions: dict[str, float] | None = None
    if callgrind_workers:
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=callgrind_workers) as pool:
            directory = Path(tmp) if keep is None else keep
            directory.mkdir(parents=True, exist_ok=True)
            futures = {
                n: pool.submit(_callgrind_code, codes[n], directory / f"callgrind.first-batch.{n}.out", env)
                for n in names
            }
            totals = {n: future.result() for n, future in futures.items()}
        instructions = {n: float(totals[n] - totals["bare"]) for n in FIRST_BATCH_VARIANTS}
    bare, bare_median = min(samples["bare"]), statistics.median(samples["bare"])
    return FirstBatchResult(
        best={n: max(min(samples[n]) - bare, 0.0) for n in FIRST_BATCH_VARIANTS},
        median={n: max(statistics.median(samples[n]) - bare_median, 0.0) for n in FIRST_BATCH_VARIANTS},
        runs=runs,
        phases={
            n: {
                phase: min(float(r["phases"][phase]) for r in reports[n])
                for phase in ("import", "build", "first")
            }
            for n in FIRST_BATCH_VARIANTS
        },
        heavy={n: sorted({m for r in reports[n] for m in r["heavy"]}) for n in FIRST_BATCH_VARIANTS},
        bytecode_cached=_glasswork_bytecode_cached(),
        instructions=instructions,
    )


def first_batch_rows(result: FirstBatchResult) -> list[Row]:
    """glasswork's cold start through its first batch ≤ ½ Powertools'; no boto3 after that batch."""
    cached = "bytecode cached" if result.bytecode_cached else "bytecode NOT cached"

    def cell(name: str) -> str:
        phases = result.phases[name]
        text = (
            f"{result.best[name] * 1000:.1f} ms (median {result.median[name] * 1000:.1f}; in process: "
            f"import {phases['import'] * 1000:.1f}, build {phases['build'] * 1000:.2f}, "
            f"first batch {phases['first'] * 1000:.2f} ms)"
        )
        if result.instructions is not None:
            text += f", {result.instructions[name]:,.0f} instructions"
        return text

    ratio = result.best["glasswork"] / result.best["powertools"] if result.best["powertools"] else math.inf
    instructions = "skipped"
    instructions_ok = None
    if result.instructions is not None:
        counted = result.instructions["glasswork"] / result.instructions["powertools"]
        instructions, instructions_ok = _x(counted), counted <= 0.5
    loaded = result.heavy["glasswork"]
    return [
        Row(
            item="10.5",
            measure=f"Cold start, fresh process, best of {result.runs} ({cached}): import, build the handler "
            "(glasswork: `bootstrap_worker(module=...)`, no `driver=`), first batch of 10 successes; "
            "above a bare interpreter: glasswork ÷ Powertools",
            glasswork=cell("glasswork"),
            other="Powertools `BatchProcessor`: " + cell("powertools"),
            ratio=_x(ratio),
            instructions=instructions,
            target="≤ 0.5x",
            result=verdicts(ratio <= 0.5, instructions_ok),
        ),
        Row(
            item="10.5",
            measure="`'boto3'`/`'botocore'` in `sys.modules` after glasswork's first batch (no `driver=`)",
            glasswork=f"True ({', '.join(loaded)})" if loaded else "False",
            other="Powertools: "
            + (f"True ({', '.join(result.heavy['powertools'])})" if result.heavy["powertools"] else "False"),
            target="False",
            result=verdict(not loaded),
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


_STARTED: Final = time.perf_counter()


def _progress(text: str) -> None:
    print(f"[bench {time.perf_counter() - _STARTED:4.0f} s] {text}", file=sys.stderr, flush=True)


def _with_instructions(
    results: Sequence[ScenarioResult], sizes: Sizes, notes: list[str], keep_callgrind: Path | None
) -> list[ScenarioResult]:
    """The results with callgrind's instructions per record added (and a note on how)."""
    counts, how = count_instructions(
        [SCENARIOS[r.scenario] for r in results],
        base=sizes.callgrind_base,
        extra=sizes.callgrind_extra,
        workers=os.cpu_count() or 1,
        keep=keep_callgrind,
    )
    note = f"Instructions: callgrind, one fresh interpreter per variant, PYTHONHASHSEED=0, {how}."
    if note not in notes:
        notes.append(note)
    return [msgspec.structs.replace(r, instructions=counts[r.scenario]) for r in results]


def run(
    sections: Sequence[str], sizes: Sizes, *, use_valgrind: bool, keep_callgrind: Path | None = None
) -> tuple[list[Row], list[str]]:
    """Run the chosen sections; returns the table's rows (issue 10's last) and notes."""
    rows: list[Row] = []
    pipeline_rows: list[Row] = []
    notes: list[str] = []
    chosen = [s for s in SECTIONS if s in sections]
    step = {name: f"{index}/{len(chosen)}" for index, name in enumerate(chosen, 1)}
    if "overhead" in sections:
        _progress(f"{step['overhead']} per-record overhead (alternating rounds)")
        results = [
            bench_overhead(mode, rounds=sizes.overhead_rounds, invocations=sizes.overhead_invocations)
            for mode in LOGGING_MODES
        ]
        if use_valgrind:
            _progress(f"{step['overhead']} instruction counts under callgrind (slow)")
            results = _with_instructions(results, sizes, notes, keep_callgrind)
        for result in results:
            rows.extend(overhead_rows(result))
        first = results[0]
        notes.append(
            f"Per-record: best of {first.rounds} alternating rounds of {first.records_per_round:,} records "
            "per variant; the job is a no-op with a msgspec Struct payload; hooks unset."
        )
    if "pipeline" in sections:
        _progress(f"{step['pipeline']} pipeline scenarios of issue 10 (alternating rounds)")
        results = [
            bench_scenario(s, rounds=sizes.overhead_rounds, invocations=sizes.overhead_invocations)
            for s in PIPELINE
        ]
        if use_valgrind:
            _progress(f"{step['pipeline']} instruction counts under callgrind (slow)")
            results = _with_instructions(results, sizes, notes, keep_callgrind)
        pipeline_rows.extend(scenario_row(result) for result in results)
        _progress(f"{step['pipeline']} cold start through the first batch (subprocesses)")
        pipeline_rows.extend(
            first_batch_rows(
                bench_first_batch(
                    runs=sizes.coldstart_runs,
                    callgrind_workers=(os.cpu_count() or 1) if use_valgrind else 0,
                    keep=keep_callgrind,
                )
            )
        )
        notes.append(
            "10.1-10.4: each scenario's variants are first checked to run the job once per record and to "
            f"report the same records failed (10.3: order_id % 10 in {sorted(FAILING)}, raising "
            "TransientJobError in both; glasswork retries them, none dead-lettered); then best of "
            f"{results[0].rounds} alternating rounds of {results[0].records_per_round:,} records per "
            "variant. Root logger at WARNING with a stream handler attached; in-memory driver."
        )
        notes.append(
            "10.5: `python -c` children with bytecode cached and no AWS settings in their environment; "
            "subprocess wall time minus a bare child that builds the same event literal and context; "
            "instructions (when counted) are whole processes under callgrind minus the bare child."
        )
    if "coldstart" in sections:
        _progress(f"{step['coldstart']} cold start")
        rows.extend(
            coldstart_rows(bench_coldstart(runs=sizes.coldstart_runs, bootstrap_runs=sizes.bootstrap_runs))
        )
        notes.append(
            "Cold start: PYTHONDONTWRITEBYTECODE unset for the child interpreters, one untimed warm-up "
            "import each so bytecode is compiled and cached; subprocess wall time minus `python -c pass`."
        )
    if "async" in sections:
        _progress(f"{step['async']} async concurrency")
        rows.extend(async_rows(bench_async(rounds=sizes.async_rounds)))
    if "requests" in sections:
        _progress(f"{step['requests']} SQS requests against moto")
        with moto_endpoint() as (endpoint, kind):
            sent = bench_requests(
                endpoint, jobs=sizes.enqueue_jobs, rounds=sizes.enqueue_rounds, endpoint_kind=kind
            )
        rows.extend(requests_rows(sent))
    if "memory" in sections:
        _progress(f"{step['memory']} memory (subprocesses)")
        rows.extend(
            memory_rows(bench_memory(invocations=sizes.memory_invocations, records=sizes.memory_records))
        )
    return [*rows, *pipeline_rows], notes


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
