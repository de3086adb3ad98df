"""The jobs on a real two-node Ray cluster: a head and a second node (separate raylets, started by
`ray.cluster_utils.Cluster` on loopback) that advertises `accelerator`, the resource standing for
the GPU node type. `ray job submit` runs prepare -> train (two workers, one per node) -> scan on
S3 paths (moto over HTTP) with a real `mlflow server` whose artifacts are in S3; then the
preflight refuses what the second node could not reach.
"""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import mlflow
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from lxn import storage
from lxn.data.synthetic import SyntheticConfig, write_imagefolder
from tests.conftest import free_ports
from tests.integration.conftest import _wait_for_job_agent
from tests.integration.conftest import run_mlflow_server

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
DATE = "2025-09-01"


@pytest.fixture(scope="module")
def cluster(s3_endpoint):
    """Two Ray nodes with 3 CPUs each; the second advertises {"accelerator": 1}. Yields
    (gcs address, dashboard URL, head node id, accelerator node id)."""
    from ray.cluster_utils import Cluster

    # The nodes inherit this process's environment: jobs' `python` is this venv's, and system
    # metrics are sampled every second so a short training run logs some.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "PATH")}
    os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "1"
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    # Every node's dashboard agent gets its own port: by default both take 52365, the one that
    # loses the race runs without its HTTP server, and when that is the head's, every `ray job
    # submit` is refused with "No available agent to submit job" (a flake seen under load).
    port, head_agent, node_agent = free_ports(3)
    nodes = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 3, "include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": port,
        "dashboard_agent_listen_port": head_agent})
    accelerator = nodes.add_node(num_cpus=3, resources={"accelerator": 1}, dashboard_agent_listen_port=node_agent)
    try:
        nodes.wait_for_nodes()
        dashboard = f"http://127.0.0.1:{port}"
        _wait_for_job_agent(dashboard, dict(os.environ))
        yield nodes.address, dashboard, nodes.head_node.node_id, accelerator.node_id
    finally:
        nodes.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def world(cluster, s3_endpoint, tmp_path_factory):
    """A bucket of raw images (and a nightly `media/` prefix) and an `mlflow server` with S3 artifacts."""
    tmp = tmp_path_factory.mktemp("two-nodes")
    bucket = f"lxn-2n-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=bucket)
    images = tmp / "images"
    write_imagefolder(SyntheticConfig(num_brands=3, images_per_brand=16, no_logo_images=8, image_size=64), images)
    media = []
    for i, path in enumerate(sorted(p for p in images.rglob("*.jpg"))):
        key = f"raw/{path.relative_to(images)}"
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        if i % 3 == 0:
            media.append(f"media/{i:03d}.jpg")
            client.put_object(Bucket=bucket, Key=media[-1], Body=path.read_bytes())
    media.append("media/broken.jpg")
    client.put_object(Bucket=bucket, Key=media[-1], Body=b"<html>not an image</html>")
    with run_mlflow_server(tmp, f"s3://{bucket}/mlartifacts", {"MLFLOW_S3_ENDPOINT_URL": s3_endpoint}) as server:
        yield {"bucket": bucket, "media": media, "tracking": server, "tmp": tmp}


def _submit(dashboard: str, name: str, *entrypoint: str) -> tuple[subprocess.CompletedProcess, str]:
    """`ray job submit --working-dir <repo> -- python ...`; returns the result and `ray job logs`."""
    submission = f"{name}-{uuid.uuid4().hex[:6]}"
    done = subprocess.run([RAY, "job", "submit", "--address", dashboard, "--working-dir", str(ROOT),
                           "--submission-id", submission, "--", "python", *entrypoint],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    logs = subprocess.run([RAY, "job", "logs", "--address", dashboard, submission], capture_output=True, text=True,
                          timeout=120).stdout
    return done, logs


@pytest.fixture(scope="module")
def pipeline(cluster, world):
    """prepare -> train -> scan, each a Ray job on the two-node cluster."""
    _, dashboard, _, _ = cluster
    bucket, tracking = world["bucket"], world["tracking"]
    runs = {}
    runs["prepare"] = _submit(dashboard, "prepare", "jobs/prepare.py", "--source", f"s3://{bucket}/raw",
                              "--out", f"s3://{bucket}/prepared", "--no-progress-bars")
    runs["train"] = _submit(
        dashboard, "train", "jobs/train.py", "--data", f"s3://{bucket}/prepared", "--storage", f"s3://{bucket}/ckpt",
        "--tracking-uri", tracking, "--epochs", "1", "--image-size", "64", "--batch-size", "8", "--num-workers", "2",
        "--cpus-per-worker", "2", "--lr-step-epochs", "1", "--shuffle-buffer", "64", "--experiment", "lxn-test",
        "--train-on-val", "0.5",
        "--registered-model", "logos-test", "--run-name", "two-nodes", "--no-progress-bars")
    runs["scan"] = _submit(
        dashboard, "scan", "jobs/scan.py", "--source", f"s3://{bucket}/media", "--out", f"s3://{bucket}/reports",
        "--model", "models:/logos-test@challenger", "--tracking-uri", tracking, "--actor-resources", "accelerator=1",
        "--date", DATE, "--batch-size", "8", "--fetch-threads", "4", "--no-progress-bars")
    return runs


@pytest.mark.parametrize("job", ["prepare", "train", "scan"])
def test_each_job_succeeds_as_a_ray_job(pipeline, job):
    done, logs = pipeline[job]
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "succeeded" in done.stdout + done.stderr


def test_a_training_worker_ran_on_each_node_and_its_lines_reach_ray_job_logs(pipeline, cluster, world):
    _, _, head, accelerator = cluster
    _, logs = pipeline["train"]
    ranks = {line.split("rank ")[1].split(" ")[0]: line.split(" on node ")[1].split(",")[0]
             for line in logs.splitlines() if "training worker: rank" in line}
    assert ranks.keys() == {"0", "1"} and set(ranks.values()) == {head, accelerator}
    epoch_lines = [line for line in logs.splitlines() if "epoch 1/1: train loss" in line]
    assert len(epoch_lines) == 1 and "ETA 0:00:00" in epoch_lines[0]  # once, from rank 0
    assert f"MLflow: {world['tracking']}/#/experiments/" in logs


def test_training_tracked_and_registered_on_the_server(pipeline, world):
    from lxn.tracking import load_model
    from lxn.preprocess import InferenceModel
    from lxn.models import create_model
    from lxn.train.trainer import BEST_FILE, decode_batch

    tracking, bucket = world["tracking"], world["bucket"]
    client = mlflow.MlflowClient(tracking_uri=tracking)
    version = client.get_model_version_by_alias("logos-test", "challenger")
    assert str(version.version) == "1"
    run_id = version.run_id
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [0]
    metrics = client.get_run(run_id).data.metrics
    # --train-on-val 0.5: half the validation groups trained on (read from S3), the rest scored
    # once across the two workers; the test split as prepared.
    from lxn.data.prepared import read_manifest
    from lxn.train.trainer import val_moved

    manifest, params = read_manifest(f"s3://{bucket}/prepared"), client.get_run(run_id).data.params
    moved = val_moved(f"s3://{bucket}/prepared", 0.5)
    assert 0 < moved < manifest.split_size("val")
    assert (int(params["train_images"]), int(params["val_trained_on"])) == (manifest.split_size("train") + moved, moved)
    assert (metrics["val_images"], metrics["test_images"]) == (manifest.split_size("val") - moved,
                                                               manifest.split_size("test"))
    assert any(k.startswith("system/node0/cpu_utilization") for k in metrics)  # one system logger per node
    assert any(k.startswith("system/node1/cpu_utilization") for k in metrics)
    artifacts = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert {"plots/training_curves.png", "plots/confusion_matrix.png", "plots/per_class_accuracy.png"} <= artifacts
    assert next(storage.iter_objects(f"s3://{bucket}/mlartifacts"), None) is not None  # the server stored them in S3

    # The registered model reproduces the best checkpoint's logits on the test split.
    loaded = load_model("models:/logos-test@challenger", tracking)
    best_files = [o.uri for o in storage.iter_objects(f"s3://{bucket}/ckpt/two-nodes") if o.uri.endswith(BEST_FILE)]
    best = torch.load(io.BytesIO(storage.read_bytes(sorted(best_files)[-1])), map_location="cpu", weights_only=True)
    eager = create_model("logoxpertnet", num_classes=len(loaded.class_names))
    eager.load_state_dict(best)
    parts = [o.uri for o in storage.iter_objects(f"s3://{bucket}/prepared/split=test") if o.uri.endswith(".parquet")]
    table = pq.read_table(io.BytesIO(storage.read_bytes(parts[0])))
    batch = decode_batch({"image": np.array(table["image"].to_pylist(), dtype=object),
                          "label": table["label"].to_numpy()}, loaded.preset)
    images = torch.from_numpy(batch["image"])
    with torch.inference_mode():
        torch.testing.assert_close(loaded.module(images), InferenceModel(eager, loaded.preset).eval()(images),
                                   atol=1e-5, rtol=1e-5)


def test_predictor_actors_ran_on_the_accelerator_node_and_the_report_is_complete(pipeline, cluster, world):
    _, _, _, accelerator = cluster
    _, logs = pipeline["scan"]
    nodes = {line.rsplit("node ", 1)[1].strip() for line in logs.splitlines() if "predictor: models:/" in line}
    assert nodes == {accelerator}
    bucket = world["bucket"]
    rows = []
    for info in storage.iter_objects(f"s3://{bucket}/reports/dt={DATE}"):
        if info.uri.endswith(".parquet"):
            rows += pq.read_table(io.BytesIO(storage.read_bytes(info.uri)), columns=["uri", "status"]).to_pylist()
    assert sorted(r["uri"] for r in rows) == sorted(f"s3://{bucket}/{k}" for k in world["media"])
    assert sum(r["status"] == "error" for r in rows) == 1


# ---------------------------------------------------------------------------- the preflight


def _main(script: str, args: list[str], address: str, monkeypatch, capsys, cwd: Path) -> tuple[int, str]:
    """A job's main() in this process, as a driver on the cluster (RAY_ADDRESS)."""
    import ray

    monkeypatch.setenv("RAY_ADDRESS", address)
    monkeypatch.chdir(cwd)
    spec = importlib.util.spec_from_file_location(f"job_{Path(script).stem}", ROOT / script)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    try:
        code = job.main(args)
    finally:
        ray.shutdown()
    return code, capsys.readouterr().err


def test_a_local_output_and_the_demo_are_refused_and_nothing_is_written(pipeline, cluster, world, tmp_path,
                                                                        monkeypatch, capsys):
    address = cluster[0]
    bucket, tracking = world["bucket"], world["tracking"]
    out = tmp_path / "reports"
    code, err = _main("jobs/scan.py", ["--source", f"s3://{bucket}/media", "--out", str(out), "--tracking-uri",
                                       tracking], address, monkeypatch, capsys, tmp_path)
    assert code == 2 and f"--out {out} is a local path other nodes do not have" in err
    code, err = _main("jobs/train.py", ["--tracking-uri", tracking], address, monkeypatch, capsys, tmp_path)
    assert code == 2 and "the embedded demo writes its generated data on one node" in err
    assert "--storage" in err  # and its local default checkpoint root
    code, err = _main("jobs/prepare.py", ["--source", f"s3://{bucket}/raw", "--out", str(tmp_path / "prepared")],
                      address, monkeypatch, capsys, tmp_path)
    assert code == 2 and "--out" in err and "--shared-filesystem" in err
    code, err = _main("jobs/promote.py", ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"], address, monkeypatch,
                      capsys, tmp_path)
    assert code == 2 and "is a file on one node" in err  # the head's own registry is not the cluster's
    database = world["tmp"] / "never.db"  # a driver on the head, a store only the head has
    code, err = _main("jobs/scan.py", ["--source", f"s3://{bucket}/media", "--out", f"s3://{bucket}/refused",
                                       "--tracking-uri", f"sqlite:///{database}"], address, monkeypatch, capsys, tmp_path)
    assert code == 2 and "error: this Ray cluster has 2 nodes: the MLflow store sqlite:///" in err
    assert "is a file on one node" in err and "Traceback" not in err
    assert not database.exists() and list(storage.iter_objects(f"s3://{bucket}/refused")) == []
    assert list(tmp_path.iterdir()) == []  # nothing written: no report root, no demo data, no lxn-local, no db
    code, err = _main("jobs/prepare.py", ["--source", f"s3://{bucket}/raw", "--out", str(tmp_path / "prepared"),
                                          "--shared-filesystem", "--fractions", "0.5", "0.6", "0.1"],
                      address, monkeypatch, capsys, tmp_path)
    assert code == 2 and "--fractions" in err  # --shared-filesystem lets the path through to the job's own checks
