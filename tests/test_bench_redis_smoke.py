"""bench/bench_redis.py works: every side drains a few jobs on a real redis-server and the report prints.

No timing is asserted; `make bench` produces the figures.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "bench_redis.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("glasswork_bench_redis", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.redis
def test_every_side_drains_and_the_ratio_lines_print(redis_url: str) -> None:
    pytest.importorskip("rq", reason="needs the bench extra")

    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "-n",
            "20",
            "--repeat",
            "1",
            "--workers",
            "1",
            "--io-jobs",
            "10",
            "--redis-url",
            redis_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("glasswork / rq drain, 1 worker: ") and "x (baseline: rq" in line for line in lines
    )
    assert any(line.startswith("glasswork / rq enqueue: one call a job ") for line in lines)
    assert "scaling 1 -> 4 workers: n/a (only 1 worker measured)" in lines
    assert "scaling 1 -> 4 workers (I/O-bound jobs): n/a (only 1 worker measured)" in lines
    verdict = [line for line in lines if line.startswith("issue 12 target, glasswork drain throughput")]
    assert len(verdict) == 1
    assert verdict[0].split(": ", 1)[1].startswith(("PASS (", "FAIL ("))
    assert (
        lines[-2] == "issue 12 target, glasswork I/O-bound scaling 1 -> 4 workers >= 3x: n/a (not measured)"
    )
    for label in ("glasswork worker CLI (batch 10)", "rq SimpleWorker (no fork)", "rq Worker (default"):
        assert any(line.startswith(label) and "jobs/s" in line and line.endswith(" us") for line in lines), (
            label
        )
    io_table = lines[
        lines.index(next(line for line in lines if line.startswith("DRAIN, I/O-BOUND: 10 jobs"))) :
    ]
    for label in ("glasswork worker CLI (batch 10)", "rq SimpleWorker (no fork)"):
        assert any(line.startswith(label) and "jobs/s" in line for line in io_table), label


def test_report_holds_glasswork_to_the_faster_rq_worker(bench: ModuleType) -> None:
    run = bench.Run
    results = bench.Results(jobs=100, counts=[1, 4], cores=2, scale_jobs=1000)
    results.enqueued.update(
        {
            "glasswork": run(0.05, 0.01),
            "glasswork-batch": run(0.02, 0.0),
            "rq": run(0.1, 0.0),
            "rq-batch": run(0.04, 0.0),
        }
    )
    results.drained.update(
        {
            ("glasswork", 1): run(0.5, 0.02),
            ("glasswork", 4): run(0.25, 0.02),
            ("rq-simple", 1): run(0.4, 0.1),
            ("rq-simple", 4): run(0.2, 0.1),
            ("rq-fork", 1): run(2.0, 0.2),
            ("rq-fork", 4): run(1.6, 0.2),
        }
    )
    results.scaled.update({1: run(2.0, 0.1, 1.8), 4: run(1.0, 0.1, 1.9)})
    results.io_jobs = 400
    results.io_drained.update(
        {
            ("glasswork", 1): run(4.0, 0.0),
            ("glasswork", 4): run(1.25, 0.0),
            ("rq-simple", 1): run(6.0, 0.0),
            ("rq-simple", 4): run(2.0, 0.0),
        }
    )
    results.spread.update(
        {"rq SimpleWorker (no fork), 1 worker": 2.0, "glasswork worker CLI (batch 10), 1 worker": 1.1}
    )

    lines = bench.report(results)

    assert "glasswork / rq drain, 1 worker: 0.80x (baseline: rq SimpleWorker (no fork))" in lines
    assert "glasswork / rq drain, 4 workers: 0.80x (baseline: rq SimpleWorker (no fork))" in lines
    assert "glasswork / rq enqueue: one call a job 2.00x, batches of 10 2.00x" in lines
    assert any(
        line.startswith("scaling 1 -> 4 workers: glasswork 2.00x (1000 jobs: 2.00x), rq 2.00x")
        for line in lines
    )
    assert any(
        line.startswith("glasswork worker CLI (batch 10)") and line.endswith(" 200 us") for line in lines
    )
    assert "noisy (slowest run over 1.5x the fastest): rq SimpleWorker (no fork), 1 worker 2.0x" in lines
    assert any(
        line.startswith("glasswork worker CLI (batch 10)") and "100 jobs/s" in line and "320 jobs/s" in line
        for line in lines
    )
    assert "scaling 1 -> 4 workers (I/O-bound jobs): glasswork 3.20x, rq 3.00x" in lines
    assert (
        "honest limit on 2 cores, no-op jobs (glasswork, 1000 jobs): CPU-bound; with 1 worker a job cost "
        "1800 us of worker CPU + 100 us of redis-server CPU (0.95 cores busy), with 4 workers 2000 us: "
        "2 cores to themselves allow at most 2.00x one worker's rate (measured 2.00x)"
    ) in lines
    assert lines[-2] == "issue 12 target, glasswork drain throughput >= RQ's with one worker: FAIL (0.80x)"
    assert lines[-1] == "issue 12 target, glasswork I/O-bound scaling 1 -> 4 workers >= 3x: PASS (3.20x)"


def test_report_passes_when_glasswork_drains_faster_and_says_what_was_not_measured(bench: ModuleType) -> None:
    run = bench.Run
    results = bench.Results(jobs=100, counts=[1], cores=2)
    results.drained.update(
        {("glasswork", 1): run(0.1, 0.0), ("rq-simple", 1): run(0.5, 0.0), ("rq-fork", 1): run(0.3, 0.0)}
    )

    lines = bench.report(results)

    assert "glasswork / rq drain, 1 worker: 3.00x (baseline: rq Worker (default: forks per job))" in lines
    assert (
        "glasswork / rq enqueue: one call a job n/a (not measured), batches of 10 n/a (not measured)" in lines
    )
    assert "scaling 1 -> 4 workers: n/a (only 1 worker measured)" in lines
    assert "scaling 1 -> 4 workers (I/O-bound jobs): n/a (only 1 worker measured)" in lines
    assert lines[-2] == "issue 12 target, glasswork drain throughput >= RQ's with one worker: PASS (3.00x)"
    assert (
        lines[-1] == "issue 12 target, glasswork I/O-bound scaling 1 -> 4 workers >= 3x: n/a (not measured)"
    )
