"""CloudWatch metrics from the worker, in the Embedded Metric Format (EMF), with no dependency.

```python
from glasswork.metrics import EmbeddedMetrics

handler = bootstrap_worker(module=app, on_batch=EmbeddedMetrics(namespace="orders"))
```

After each SQS batch, the worker calls `on_batch` with its `BatchReport`;
`EmbeddedMetrics` prints one JSON line to stdout per job name of the batch
(one per dimension values: EMF takes a single value per dimension in a
document), which Lambda's log agent turns into CloudWatch metrics:

- `JobsSucceeded`, `JobsFailed`, `JobsDeadLettered`, `JobsDiscarded`
  (`Count`): the records of that job by how they ended (`failed` = reported
  in `batchItemFailures`: retried, or not started);
- `JobDuration` (`Milliseconds`): one value per record whose handler ran
  (hooks and the dead-letter send included), at most 100 values per
  document (EMF's limit); a batch with more continues in further documents.

Dimensions: `JobName` by default; add `Queue` (the source queue's name) and
`FunctionName` (`AWS_LAMBDA_FUNCTION_NAME`) with `dimensions=`. A record whose
job is unknown (poison, unregistered) counts under `JobName` `unknown`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Final, Literal, TypeAlias

import msgspec

from glasswork._settle import BatchReport, Disposition, Settled

__all__ = ["Dimension", "EmbeddedMetrics"]

Dimension: TypeAlias = Literal["JobName", "Queue", "FunctionName"]

MAX_VALUES: Final = 100
"""EMF's limit on the values of one metric in one document."""

_COUNTS: Final[dict[Disposition, str]] = {
    "succeeded": "JobsSucceeded",
    "failed": "JobsFailed",
    "dead_lettered": "JobsDeadLettered",
    "discarded": "JobsDiscarded",
}
_DURATION: Final = "JobDuration"
_encoder: Final = msgspec.json.Encoder()


def _write_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class EmbeddedMetrics:
    """An `on_batch` callback that prints a batch's counts and durations as CloudWatch EMF documents.

    Args:
        namespace: The CloudWatch namespace.
        dimensions: The one dimension set, in order (`JobName`, `Queue`, `FunctionName`).
        function_name: The `FunctionName` dimension's value; default the
            `AWS_LAMBDA_FUNCTION_NAME` environment variable, else `local`.
        emit: Writes one document (a JSON line without its newline); default stdout.
        clock: Seconds since the epoch, for `_aws.Timestamp`; for tests.
    """

    def __init__(
        self,
        *,
        namespace: str = "glasswork",
        dimensions: Sequence[Dimension] = ("JobName",),
        function_name: str | None = None,
        emit: Callable[[str], object] = _write_line,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not namespace:
            msg = "namespace must be a non-empty string"
            raise ValueError(msg)
        if not dimensions or len(set(dimensions)) != len(dimensions):
            msg = f"dimensions must be distinct and at least one, got {dimensions!r}"
            raise ValueError(msg)
        self.namespace = namespace
        self.dimensions: tuple[Dimension, ...] = tuple(dimensions)
        self.function_name = function_name or os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or "local"
        self._emit = emit
        self._clock = clock

    def __call__(self, report: BatchReport) -> None:
        """Emit the batch's documents (nothing for an empty batch)."""
        for document in self.documents(report):
            self._emit(_encoder.encode(document).decode())

    def documents(self, report: BatchReport) -> list[dict[str, object]]:
        """The EMF documents for a batch, as dicts: one per dimension values, more for >100 durations."""
        groups: dict[tuple[str, ...], list[Settled]] = {}
        for done in report.settled:
            groups.setdefault(self._values(done), []).append(done)
        timestamp = int(self._clock() * 1000)
        documents: list[dict[str, object]] = []
        for values, records in groups.items():
            counts = dict.fromkeys(_COUNTS.values(), 0)
            durations: list[float] = []
            for done in records:
                counts[_COUNTS[done.disposition]] += 1
                if done.result.ran:
                    durations.append(round(done.duration * 1000, 3))
            chunks = [durations[i : i + MAX_VALUES] for i in range(0, len(durations), MAX_VALUES)]
            first: dict[str, object] = dict(counts)
            if chunks:
                first[_DURATION] = chunks[0]
            documents.append(self._document(timestamp, values, first))
            documents.extend(self._document(timestamp, values, {_DURATION: chunk}) for chunk in chunks[1:])
        return documents

    def _values(self, done: Settled) -> tuple[str, ...]:
        result = done.result
        values: list[str] = []
        for dimension in self.dimensions:
            if dimension == "JobName":
                values.append(result.job.name if result.job is not None else "unknown")
            elif dimension == "Queue":
                arn = result.record.event_source_arn
                values.append(arn.rpartition(":")[2] or "unknown")
            else:
                values.append(self.function_name)
        return tuple(values)

    def _document(
        self, timestamp: int, values: tuple[str, ...], metrics: dict[str, object]
    ) -> dict[str, object]:
        definitions = [
            {"Name": name, "Unit": "Milliseconds" if name == _DURATION else "Count"} for name in metrics
        ]
        directive = {
            "Namespace": self.namespace,
            "Dimensions": [list(self.dimensions)],
            "Metrics": definitions,
        }
        return {
            "_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [directive]},
            **dict(zip(self.dimensions, values, strict=True)),
            **metrics,
        }
