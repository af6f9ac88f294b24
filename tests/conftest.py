"""Shared fixtures: the Hypothesis profiles and the moto SQS server over real HTTP."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "long", max_examples=5_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a moto server on 127.0.0.1, shared by the session.

    `make test` exports `GLASSWORK_TEST_SQS_ENDPOINT` after starting
    `moto_server`; without it (a bare `pytest` run) the fixture starts moto's
    threaded server itself. Either way it is real HTTP on the loopback.
    """
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    endpoint = os.environ.get("GLASSWORK_TEST_SQS_ENDPOINT")
    if endpoint:
        yield endpoint
        return
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_reset(moto_endpoint: str) -> str:
    """Clear every queue on the moto server before the test; returns the endpoint."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    return moto_endpoint
