"""What every test process shares: Ray's process-wide settings, set before anything imports
Ray, and port helpers. The services (S3 endpoint, Ray head, MLflow server) are the integration
tests' fixtures (tests/integration/conftest.py): unit tests start none of them."""

from __future__ import annotations

import os
import socket
import subprocess
import time


def pytest_configure(config):
    """Before any test module imports Ray, which reads these settings once per process: token
    authentication for the test cluster, and every Ray address on loopback (see
    `keep_local_ray_on_loopback`). Subprocesses inherit both."""
    import secrets

    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(16)
    from lxn.ray_utils import keep_local_ray_on_loopback

    keep_local_ray_on_loopback()


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
