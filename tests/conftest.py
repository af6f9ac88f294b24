"""Shared fixtures: the Hypothesis profiles, moto's SQS server over real HTTP, a real redis-server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
# make test's runs on the other Pythons: every property still runs, on fewer examples.
settings.register_profile(
    "quick", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
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


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The URL (`redis://127.0.0.1:PORT/0`) of a real redis-server, shared by the session.

    `make test` exports `GLASSWORK_TEST_REDIS_URL` after starting one in a
    temporary directory (scripts/with-services.sh); without it (a bare
    `pytest` run) the fixture starts `redis-server` itself, the same way.
    """
    url = os.environ.get("GLASSWORK_TEST_REDIS_URL")
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="glasswork-redis-") as directory:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory, "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                        conn.sendall(b"PING\r\n")
                        if conn.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The redis-server's URL, its database emptied before the test."""
    host_port = redis_server.removeprefix("redis://").split("/", 1)[0]
    host, _, port = host_port.partition(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"FLUSHALL\r\n")
        if not conn.recv(16).startswith(b"+OK"):
            pytest.fail("redis-server did not answer FLUSHALL with +OK")
    return redis_server
