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
    # Test files run in several pytest-xdist workers at once: each takes its share of the cores
    # for torch's own threads, or the workers' threads fight over them (a training test ran 3x
    # slower with two workers of two threads each on two cores). Ray's processes set their own.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` different free ports: every socket stays bound until all are chosen (calling
    free_port twice may give the same port back, and a Ray head given one port for two services
    fails to start)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


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
