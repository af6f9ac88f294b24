"""The worker function: `sam_shop.worker.handler`, fed by the job queue's event source mapping.

Everything is built once per cold start, at import.
"""

from __future__ import annotations

from glasswork import bootstrap_worker
from sam_shop.jobs import app
from sam_shop.settings import worker_driver

handler = bootstrap_worker(module=app, driver=worker_driver())
