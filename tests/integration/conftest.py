"""The integration tests' real local services, started once per test process (session) or per
module, and shared helpers:

* `s3_endpoint`: moto's S3 server as its own process, speaking HTTP on 127.0.0.1 (not an
  in-process mock), so Ray workers, boto3 and pyarrow reach it exactly as they reach real S3.
* `s3_bucket`: a fresh, empty bucket on that endpoint for one test.
* `ray_head` / `ray_cluster`: a real Ray head node on loopback, and this process joined to it.
* `run_mlflow_server`: a real `mlflow server` process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port, free_ports, wait_for_port

# Credentials for the local endpoint only; they are dummies and never leave this machine.
_S3_ENV = {
    "AWS_ACCESS_KEY_ID": "lxn-test-key",
    "AWS_SECRET_ACCESS_KEY": "lxn-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


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
        # No job runner: lxn runs no MLflow server jobs, and its huey consumers cost the suite
        # about a minute of CPU (cluster.yaml and mlflow.yaml turn it off the same way).
        stdout=log, stderr=log, env={**os.environ, **(env or {}), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,
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


@pytest.fixture(scope="session")
def ray_head(s3_endpoint):
    """A real Ray head node on loopback (`ray start --head`, advertising 127.0.0.1 only), with its
    dashboard for `ray job submit` and token authentication on. Yields (gcs address, dashboard URL, env for clients).

    Its processes see the S3 test endpoint and its dummy credentials in their environment, as
    cluster nodes see their instance role: nothing secret travels in a job's runtime_env.

    Authentication is on: clients need RAY_AUTH_TOKEN, set for the session in pytest_configure.
    Everything lives under its own short --temp-dir, so teardown stops exactly this cluster's
    processes (never another Ray instance on the machine, as `ray stop` would)."""
    import uuid

    import psutil

    temp_dir = f"/tmp/lxnray-{uuid.uuid4().hex[:8]}"  # short: Unix socket paths are limited
    port, dashboard, agent, agent_grpc, runtime_env, metrics, client = free_ports(7)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}  # token: pytest_configure
    subprocess.run(
        [os.path.join(bin_dir, "ray"), "start", "--head", f"--port={port}", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard}", "--num-cpus=4", f"--temp-dir={temp_dir}", "--include-dashboard=true",
         "--disable-usage-stats",
         # Ports Ray would otherwise take by default, so another Ray on this machine cannot clash.
         f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
         f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}",
         f"--ray-client-server-port={client}"],
        env=env, check=True, capture_output=True, timeout=180,
    )
    try:
        _wait_for_job_agent(f"http://127.0.0.1:{dashboard}", env)
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}", env
    finally:
        # This cluster's processes: those naming its temp dir or GCS address (the client server
        # names only the address), and their children: the dashboard and runtime-env agents
        # retitle themselves ("ray::DashboardAgent") and, missed, outlived the suite at a few
        # percent of a core each.
        def is_ours(cmdline: list[str]) -> bool:
            return any(temp_dir in c or c.endswith(f"=127.0.0.1:{port}") for c in cmdline)

        ours = [p for p in psutil.process_iter(["cmdline"]) if is_ours(p.info["cmdline"] or [])]
        ours = list({p.pid: p for parent in ours for p in (parent, *_children(parent))}.values())
        for process in ours:
            process.terminate()
        _, alive = psutil.wait_procs(ours, timeout=5)
        for process in alive:  # the GCS server ignores SIGTERM
            process.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _children(process) -> list:
    import psutil

    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _wait_for_job_agent(dashboard: str, env: dict, timeout: float = 120.0) -> None:
    """The dashboard answers before its job agent is up ("No available agent to submit job"):
    wait until a trivial job runs, so the tests time their own work, not the head's start."""
    deadline = time.monotonic() + timeout
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    while True:
        done = subprocess.run([ray, "job", "submit", "--address", dashboard, "--", "true"],
                              env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Ray job agent did not come up: {done.stderr[-500:]}")
        time.sleep(1.0)


@pytest.fixture(scope="module")
def ray_cluster(ray_head):
    """This test process joined to the shared Ray head for one module."""
    import ray

    address, _, _ = ray_head
    ray.init(address=address, log_to_driver=False)
    yield address
    ray.shutdown()
