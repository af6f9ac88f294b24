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
    result = bench.ScenarioResult(
        scenario="overhead-no-handler",
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


@pytest.mark.parametrize("key", ["typed", "untyped", "failures", "hooks"])
def test_pipeline_variants_agree_on_jobs_and_failures(bench: ModuleType, key: str) -> None:
    scenario = bench.SCENARIOS[key]
    event = scenario.event()
    records = event["Records"]

    seen = bench.verify_scenario(scenario)

    assert list(seen) == list(scenario.variants)
    assert {(did.ran, tuple(did.failed), did.dead_letters) for did in seen.values()} == {
        (10, tuple(records[i]["messageId"] for i in (2, 5, 8) if key == "failures"), 0)
    }
    assert all(("JobName" in r["messageAttributes"]) == scenario.attribute for r in records)
    if key == "hooks":
        assert seen["glasswork-hooks"].hooks == {"start": 10, "complete": 10}


def test_failing_records_are_retried_and_the_rest_succeed(bench: ModuleType) -> None:
    scenario = bench.SCENARIOS["failures"]
    probe = bench.Probe()
    handler = bench.make_handler(scenario, "glasswork-hooks", probe)

    response = handler(scenario.event(), bench.FakeLambdaContext())

    assert len(response["batchItemFailures"]) == 3
    assert probe.hooks.count("failed") == 3
    assert "dead_letter" not in probe.hooks
    assert probe.driver.dead_letters == []
    assert [p.order_id for p in probe.payloads if bench.fails(p)] == [2, 5, 8]


def test_pipeline_times_every_scenario_and_restores_logging(bench: ModuleType) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    results = [bench.bench_scenario(s, rounds=2, invocations=2) for s in bench.PIPELINE]

    assert root.handlers == handlers
    assert root.level == level
    rows = [bench.scenario_row(result) for result in results]
    assert [row.item for row in rows] == ["10.1", "10.2", "10.3", "10.4"]
    assert [row.target for row in rows] == ["≥ 3x", "≥ 2.5x", "≥ 1x", "≤ 1.5x"]
    assert all(row.result in {"PASS", "FAIL"} for row in rows)
    assert set(results[3].best) == {"glasswork-hooks", "glasswork"}


def test_scenario_row_holds_both_ratios_to_the_target(bench: ModuleType) -> None:
    result = bench.ScenarioResult(
        scenario="hooks",
        best={"glasswork-hooks": 2.8e-6, "glasswork": 2e-6},
        median={"glasswork-hooks": 2.8e-6, "glasswork": 2e-6},
        rounds=1,
        records_per_round=10,
        instructions={"glasswork-hooks": 32_000.0, "glasswork": 20_000.0},
    )

    row = bench.scenario_row(result)

    assert row.ratio.startswith("1.40x")
    assert row.instructions == "1.60x"
    assert row.result == "PASS (instructions: FAIL)"


def test_first_batch_rows_fail_on_boto3(bench: ModuleType) -> None:
    result = bench.FirstBatchResult(
        best={"glasswork": 0.04, "powertools": 0.1},
        median={"glasswork": 0.05, "powertools": 0.1},
        runs=1,
        phases={
            name: {"import": 0.01, "build": 0.001, "first": 0.001} for name in ("glasswork", "powertools")
        },
        heavy={"glasswork": ["boto3", "botocore"], "powertools": []},
        bytecode_cached=True,
        instructions={"glasswork": 1e8, "powertools": 1.5e8},
    )

    cold, boto = bench.first_batch_rows(result)

    assert (cold.ratio, cold.instructions, cold.result) == ("0.40x", "0.67x", "PASS (instructions: FAIL)")
    assert (boto.glasswork, boto.result) == ("True (boto3, botocore)", "FAIL")


def test_pipeline_section_prints_every_issue_10_row(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "pipeline" in bench.SECTIONS

    assert bench.main(["--quick", "--only", "pipeline"]) == 0

    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 10.")]
    assert [line.split(" | ")[0] for line in table] == [
        "| 10.1",
        "| 10.2",
        "| 10.3",
        "| 10.4",
        "| 10.5",
        "| 10.5",
    ]
    assert all(line.endswith(("| PASS |", "| FAIL |")) for line in table)


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
