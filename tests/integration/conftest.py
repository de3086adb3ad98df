"""Fixtures of the integration tests that more than one module uses (the services themselves,
S3 and Ray, are session-wide in tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port, wait_for_port


@contextlib.contextmanager
def run_mlflow_server(workdir: Path, artifacts: str, env: dict | None = None):
    """`mlflow server` as a process on 127.0.0.1: a sqlite backend in `workdir`, artifacts proxied
    to `artifacts` (an s3:// prefix or a local directory). Yields its URL."""
    port = free_port()
    log = open(workdir / "mlflow-server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{workdir}/server.db",
         "--artifacts-destination", artifacts, "--workers", "1"],
        stdout=log, stderr=log, env={**os.environ, **(env or {})}, start_new_session=True,
    )
    try:
        wait_for_port(port, process, timeout=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:  # its workers drain for seconds; nothing here needs that
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
