"""Shared fixtures: real local services, started once per session.

* `s3_endpoint`: moto's S3 server as its own process, speaking HTTP on 127.0.0.1 (not an
  in-process mock), so Ray workers, boto3 and pyarrow reach it exactly as they reach real S3.
* `s3_bucket`: a fresh, empty bucket on that endpoint for one test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

# Credentials for the local endpoint only; they are dummies and never leave this machine.
_S3_ENV = {
    "AWS_ACCESS_KEY_ID": "lxn-test-key",
    "AWS_SECRET_ACCESS_KEY": "lxn-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """URL of an S3 endpoint over HTTP on 127.0.0.1; AWS_* variables point boto3 at it."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    moto_server = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen([str(moto_server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*_S3_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(_S3_ENV, AWS_ENDPOINT_URL=url)
    try:
        wait_for_port(port, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_endpoint):
    """Name of a new, empty bucket on the local endpoint."""
    import boto3

    name = f"lxn-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name
