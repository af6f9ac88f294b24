"""Hypothesis strategies for records, bodies, policies and batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import strategies as st

from glasswork._wire import JobMessage, SQSRecord
from glasswork.core import Backoff, RetryPolicy
from glasswork.testing import job_body, sqs_record

JOB_NAMES = ("ok", "transient", "permanent", "flaky")
"""Jobs of `tests.test_properties.MODULE`: `behaviour` in the payload decides what they do."""

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

messages = st.builds(
    JobMessage,
    job_name=st.from_regex(r"[A-Za-z0-9_.:\-/]{1,40}", fullmatch=True),
    payload=json_values,
    job_id=st.text(min_size=1, max_size=40),
    queue=st.none() | st.sampled_from(["jobs", "jobs.fifo"]),
    metadata=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
    delay_seconds=st.integers(0, 900),
    enqueued_at=aware_datetimes,
    group_id=st.none() | st.text(min_size=1, max_size=10),
)

backoffs = st.builds(
    Backoff,
    base=st.floats(0, 3_600) | st.integers(0, 3_600).map(lambda s: timedelta(seconds=s)),
    factor=st.floats(1, 10),
    max=st.floats(0, 100_000) | st.integers(0, 100_000).map(lambda s: timedelta(seconds=s)),
)

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 30),
    dead=st.booleans(),
    backoff=st.none() | backoffs,
)

behaviours = st.sampled_from(["succeed", "transient", "permanent", "retry_after"])

bodies = st.one_of(
    st.builds(
        lambda name, behaviour, n: job_body(name, {"behaviour": behaviour, "n": n}),
        st.sampled_from(JOB_NAMES),
        behaviours,
        st.integers(0, 1_000),
    ),
    st.builds(lambda name: job_body(name, {"behaviour": 7}), st.sampled_from(JOB_NAMES)),
    st.builds(lambda: job_body("not_registered", {"behaviour": "succeed"})),
    st.text(max_size=30),
    json_values.map(lambda v: msgspec.json.encode(v).decode()),
)

receive_counts = st.one_of(st.integers(1, 40).map(str), st.sampled_from(["0", "-3", "", "many", "1.5"]))


@st.composite
def batches(draw: st.DrawFn, *, fifo: bool | None = None) -> list[SQSRecord]:
    """A batch of 0-12 records with unique message ids, standard or FIFO."""
    is_fifo = draw(st.booleans()) if fifo is None else fifo
    size = draw(st.integers(0, 12))
    records = []
    for index in range(size):
        record = sqs_record(
            draw(bodies),
            message_id=f"m-{index}",
            group_id=draw(st.sampled_from(["a", "b", "c"])) if is_fifo else None,
        )
        count = draw(receive_counts)
        records.append(
            msgspec.structs.replace(
                record, attributes=msgspec.structs.replace(record.attributes, approximate_receive_count=count)
            )
        )
    return records
