"""Queue drivers: the protocols in `glasswork.drivers.base` and their implementations.

`memory` (`MockQueueDriver`) and `sqlite` need only the standard library and
msgspec; `sqs` needs the `sqs` extra (boto3), `redis` the `redis` extra.
Import a driver from its own module; this package imports none of them.
"""

from glasswork.drivers.base import (
    BatchQueueDriver,
    ConsumingDriver,
    DeadLetterEntry,
    DeadLetterInfo,
    QueueAdmin,
    QueueCounts,
    QueueDriver,
    VisibilityChange,
    WorkerDriver,
)

__all__ = [
    "BatchQueueDriver",
    "ConsumingDriver",
    "DeadLetterEntry",
    "DeadLetterInfo",
    "QueueAdmin",
    "QueueCounts",
    "QueueDriver",
    "VisibilityChange",
    "WorkerDriver",
]
