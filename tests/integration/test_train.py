"""Training on real local services: Ray (2 CPU workers on gloo), an S3 endpoint over HTTP on
127.0.0.1 and MLflow sqlite stores: resume after a killed worker and a killed driver, bad input.
Training as a Ray job across two nodes, on S3 with a real `mlflow server`, is in test_cluster.py.

Every run is tiny (3 brands + no-logo at 64 px, 2-3 epochs): these tests check behaviour
(registration, resume, failure handling), not accuracy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from lxn import storage
from lxn.data.prepare import PrepareConfig
from lxn.data.prepare import run as prepare
from lxn.data.synthetic import SyntheticConfig, write_imagefolder
from lxn.train.config import TrainConfig
from tests.conftest import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _tiny(**overrides) -> TrainConfig:
    base = dict(epochs=2, image_size=64, batch_size=8, num_workers=2, lr_step_epochs=1, shuffle_buffer=64,
                experiment="lxn-test", registered_model="logos-test", seed=0)
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, ray_cluster) -> str:
    root = tmp_path_factory.mktemp("data")
    images = root / "images"
    write_imagefolder(SyntheticConfig(num_brands=3, images_per_brand=16, no_logo_images=8, image_size=64), images)
    prepare(PrepareConfig(source=[str(images)], out=str(root / "prepared")))
    return str(root / "prepared")


def _finished_epochs(tracking_uri: str, run_name: str) -> list[int]:
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("lxn-test") if Path(tracking_uri[len("sqlite:///"):]).exists() else None
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`lxn.run_name` = '{run_name}'")
    return _epoch_steps(tracking_uri, runs[0].info.run_id) if runs else []


def _epoch_steps(tracking_uri: str, run_id: str) -> list[int]:
    history = mlflow.MlflowClient(tracking_uri=tracking_uri).get_metric_history(run_id, "train_loss")
    return sorted(m.step for m in history)


# ---------------------------------------------------------------------------- happy path


def _train_command(prepared: str, tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "jobs/train.py"), "--data", prepared, "--epochs", "2", "--image-size", "64",
            "--batch-size", "8", "--num-workers", "2", "--lr-step-epochs", "1", "--shuffle-buffer", "64",
            "--storage", str(tmp_path / "checkpoints"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
            "--experiment", "lxn-test", "--registered-model", "logos-test", "--run-name", "kd", *extra]


def _kill_a_training_worker(gcs_address: str) -> int:
    """SIGKILL one training worker of the cluster at `gcs_address`. Only that cluster's: the
    suite's other worker (or anything else on the machine) may be training at the same time,
    and killing its worker instead left this run unharmed and the other one failed."""
    import psutil

    raylets = [p for p in psutil.process_iter(["cmdline"])
               if f"--gcs-address={gcs_address}" in (p.info["cmdline"] or []) and "raylet" in p.info["cmdline"][0]]
    for raylet in raylets:
        for process in raylet.children(recursive=True):
            if any("RayTrainWorker" in part for part in process.cmdline()):
                process.kill()
                return process.pid
    raise AssertionError(f"no training worker of the cluster at {gcs_address} was found to kill")


def _wait_for_epoch(tracking_uri: str, epoch: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 300
    while epoch not in _finished_epochs(tracking_uri, "kd"):  # an epoch is logged once its checkpoint is committed
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"epoch {epoch} never finished: " + log.read_text()[-3000:]
        time.sleep(0.2)


def test_resumes_after_a_worker_and_then_the_driver_are_killed(prepared, tmp_path, ray_head, monkeypatch, capsys):
    """One run, two failures: a training worker is killed after epoch 0 (the same driver restarts
    the workers from the checkpoint), then the driver itself after epoch 1 (SIGKILL; the cluster
    stays, the same command is run again and finishes epoch 2). No finished epoch is trained twice."""
    address, _, env = ray_head
    env = {**env, "RAY_ADDRESS": address}
    command = _train_command(prepared, tmp_path, "--epochs", "3")
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True, cwd=tmp_path, env=env)
        try:
            _wait_for_epoch(tracking_uri, 0, first, log_path)
            _kill_a_training_worker(address)
            _wait_for_epoch(tracking_uri, 1, first, log_path)
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()

    second = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout[second.stdout.index("{"):])
    assert summary["registered_model"] == "models:/logos-test/1"
    run_id = summary["mlflow_run_id"]
    assert _epoch_steps(tracking_uri, run_id) == [0, 1, 2]
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    resumed = [m.value for m in sorted(client.get_metric_history(run_id, "resumed_after_epoch"), key=lambda m: m.step)]
    assert resumed == [0, 1]  # the workers restarted after epoch 0, the new driver after epoch 1

    # Two workers score every validation and test image exactly once: Ray's equal split would
    # drop one image of an odd-sized split.
    from lxn.data.prepared import read_manifest

    manifest = read_manifest(prepared)
    sizes = {split: manifest.split_size(split) for split in ("val", "test")}
    assert any(n % 2 for n in sizes.values()), f"the fixture needs an odd split to test this: {sizes}"
    metrics = client.get_run(run_id).data.metrics
    assert {"val": metrics["val_images"], "test": metrics["test_images"]} == sizes

    # the no-logo threshold chosen on the validation split travels as the version's tags
    from lxn import registry

    from lxn.train.trainer import INFO_FILE

    latest = max((tmp_path / "checkpoints" / "kd").glob(f"checkpoint_*/{INFO_FILE}"), key=lambda p: p.parent.name)
    chosen = json.loads(latest.read_text())["test_report"]["threshold"]
    expected = registry.threshold_tags(chosen, 0.95, f"val split of {storage.location(prepared)}")
    tags = client.get_model_version("logos-test", "1").tags
    assert {k: tags.get(k) for k in expected} == expected

    # The finished run, asked again (in this process: the job returns before it needs Ray or torch's training).
    again = _train(command[2:], tmp_path, env={"RAY_ADDRESS": address}, monkeypatch=monkeypatch, capsys=capsys)
    assert again.returncode == 0 and json.loads(again.stdout[again.stdout.index("{"):])["already_finished"] is True
    versions = client.search_model_versions("name='logos-test'")
    assert len(versions) == 1  # a finished run is not registered twice


def test_training_on_the_validation_split_moves_whole_groups_and_never_touches_test(prepared):
    """--train-on-val: the runs' splits as Ray Data reads them, row by row."""
    from lxn.data.prepared import read_manifest
    from lxn.train.trainer import fit_splits, val_moved

    def rows(splits):
        return {name: sorted(ds.to_pandas()["source_uri"]) for name, ds in splits.items()}

    prepared_rows = rows(fit_splits(prepared, ("source_uri",), 0.0))
    half = rows(fit_splits(prepared, ("source_uri",), 0.5))
    most = rows(fit_splits(prepared, ("source_uri",), 0.9))
    moved = sorted(set(half["train"]) - set(prepared_rows["train"]))
    assert half["test"] == most["test"] == prepared_rows["test"]
    assert sorted(half["train"]) == sorted(prepared_rows["train"] + moved) and len(half["train"]) == len(set(half["train"]))
    assert sorted(moved + half["val"]) == prepared_rows["val"] and moved and half["val"]
    assert len(moved) == val_moved(prepared, 0.5) and len(most["train"]) - len(prepared_rows["train"]) == val_moved(prepared, 0.9)
    assert set(moved) <= set(most["train"])  # a larger share only adds rows
    assert rows(fit_splits(prepared, ("source_uri",), 0.5)) == half  # the same rows every time
    assert read_manifest(prepared).split_size("val") == len(prepared_rows["val"])


# ---------------------------------------------------------------------------- bad input


def _train(args: list[str], tmp_path: Path, env: dict | None = None, monkeypatch=None, capsys=None):
    """jobs/train.py's main() in this process (the same code path, without a new interpreter)."""
    import importlib.util

    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    storage.clear_client_cache()
    spec = importlib.util.spec_from_file_location("train_job", ROOT / "jobs/train.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    try:
        code = job.main(args)
    finally:
        storage.clear_client_cache()
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def test_missing_dataset_is_a_clear_error(tmp_path, monkeypatch, capsys):
    result = _train(["--data", str(tmp_path / "nowhere"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"], tmp_path,
                    monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 2
    assert "no prepared dataset at" in result.stderr and "jobs/prepare.py" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_class_without_training_images_is_refused(prepared, tmp_path, monkeypatch, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(prepared, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["classes"].append("ghostbrand")
    for counts in manifest["counts"].values():
        counts["ghostbrand"] = 0
    (broken / "manifest.json").write_text(json.dumps(manifest))
    result = _train(["--data", str(broken), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"], tmp_path,
                    monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 2
    assert "ghostbrand" in result.stderr and "no training images" in result.stderr


def test_a_detector_needs_boxes_and_an_input_side_its_pyramid_divides(prepared, tmp_path, monkeypatch, capsys):
    common = ["--data", prepared, "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--model", "logoxpertnet_det"]
    result = _train(common, tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 2 and "is a detector" in result.stderr and "has no boxes" in result.stderr
    assert not (tmp_path / "m.db").exists()  # refused before MLflow


def test_unreachable_s3_is_a_clear_error(tmp_path, monkeypatch, capsys):
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "2",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    result = _train(["--data", "s3://lxn-missing/prepared", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"], tmp_path, env,
                    monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 2
    assert "s3://lxn-missing/prepared" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_mlflow_is_a_clear_error_and_registers_nothing(prepared, tmp_path, monkeypatch, capsys):
    result = _train(["--data", prepared, "--tracking-uri", f"http://127.0.0.1:{free_port()}"], tmp_path,
                    monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 2
    assert "cannot reach the MLflow tracking store" in result.stderr
    assert not (tmp_path / "lxn-local").exists()  # failed before any checkpoint was written
