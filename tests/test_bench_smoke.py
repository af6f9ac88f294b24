"""bench/run.py works: every benchmark runs at tiny sizes and its checks hold.

No timing is asserted and valgrind is not run; `make bench` produces the figures.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    pytest.importorskip("aws_lambda_powertools", reason="needs the bench extra")
    spec = importlib.util.spec_from_file_location("glasswork_bench_run", RUN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # msgspec resolves the Structs' annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", autouse=True)
def _close_worker_loop() -> Iterator[None]:
    """Close the event loop the worker keeps per thread for async jobs (it lives as long as the process)."""
    yield
    from glasswork._runtime import thread_loop

    thread_loop().close()


def test_every_variant_runs_each_record_once(bench: ModuleType) -> None:
    bench.verify_variants()


@pytest.mark.parametrize("mode", ["no-handler", "handler"])
def test_overhead_measures_three_variants_and_restores_logging(bench: ModuleType, mode: str) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    result = bench.bench_overhead(mode, rounds=2, invocations=3)

    assert set(result.best) == {"glasswork", "powertools", "floor"}
    assert all(value > 0 for value in result.best.values())
    assert root.handlers == handlers
    assert root.level == level
    rows = bench.overhead_rows(result)
    assert [row.target for row in rows] == ["≥ 3x", "≤ 2x (aim)"]
    assert all(row.result in {"PASS", "FAIL"} for row in rows)


def test_overhead_rows_flag_instruction_counts_that_disagree(bench: ModuleType) -> None:
    result = bench.OverheadResult(
        mode="no-handler",
        best={"glasswork": 2e-6, "powertools": 9e-6, "floor": 1e-6},
        median={"glasswork": 2e-6, "powertools": 9e-6, "floor": 1e-6},
        rounds=1,
        records_per_round=10,
        instructions={"glasswork": 20_000.0, "powertools": 50_000.0, "floor": 10_000.0},
    )

    vs_powertools, vs_floor = bench.overhead_rows(result)

    assert vs_powertools.ratio.startswith("4.50x")
    assert vs_powertools.instructions == "2.50x"
    assert vs_powertools.result == "PASS (instructions: FAIL)"
    assert vs_floor.result == "PASS"


def test_coldstart_sees_no_boto3_and_bootstraps_the_tree(bench: ModuleType) -> None:
    result = bench.bench_coldstart(runs=1, bootstrap_runs=1, jobs=12)

    assert result.heavy_modules == []
    assert set(result.best) == {"glasswork", "powertools", "boto3"}
    assert result.bootstrap_jobs == 12
    assert len(bench.coldstart_rows(result)) == 4


def test_fifo_batch_keeps_each_group_in_order(bench: ModuleType) -> None:
    ordered, _elapsed, _sleeps = bench.fifo_check(groups=2, per_group=3)

    assert ordered


def test_async_runs_every_runner(bench: ModuleType) -> None:
    result = bench.bench_async(rounds=1)

    assert set(result.batch) == {
        "glasswork",
        "Powertools BatchProcessor",
        "Powertools AsyncBatchProcessor",
    }
    assert result.batch["Powertools BatchProcessor"] >= 10 * bench.JOB_SECONDS
    assert result.fifo_ordered
    assert bench.async_rows(result)[-1].result == "PASS"


@pytest.mark.sqs
def test_requests_are_counted_per_operation(bench: ModuleType, moto_reset: str) -> None:
    result = bench.bench_requests(moto_reset, jobs=30, rounds=1, per_queue=10)

    assert result.one_queue_requests == {"SendMessageBatch": 3}
    assert result.per_queue == 10
    assert result.batch_requests == {"SendMessageBatch": 3}
    assert result.single_requests == {"SendMessage": 30}
    assert bench.requests_rows(result)[0].result == "PASS"


def test_memory_children_report_rss(bench: ModuleType) -> None:
    result = bench.bench_memory(invocations=100, records=50, note_bytes=16)

    assert set(result.checkpoints) == {"100"}
    assert 0 < result.big_after_import <= result.big_peak < bench.MEMORY_BUDGET
    assert len(bench.memory_rows(result)) == 2


def test_unknown_section_is_rejected(bench: ModuleType) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--only", "nonsense"])
