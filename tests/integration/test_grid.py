"""A training grid end to end on a local Ray head and a sqlite MLflow store: two seeds trained in
parallel as two driver processes, no alias moved, then the paper's tables from their runs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from lxn.data.prepare import PrepareConfig
from lxn.data.prepare import run as prepare
from lxn.data.synthetic import SyntheticConfig, write_imagefolder

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, ray_cluster) -> str:
    root = tmp_path_factory.mktemp("data")
    write_imagefolder(SyntheticConfig(num_brands=3, images_per_brand=10, no_logo_images=6, image_size=64), root / "images")
    prepare(PrepareConfig(source=[str(root / "images")], out=str(root / "prepared")))
    return str(root / "prepared")


def test_a_grid_trains_every_seed_in_parallel_and_reports_the_tables(prepared, ray_head, tmp_path):
    address, _, env = ray_head
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    command = [sys.executable, str(ROOT / "jobs/train.py"), "--data", prepared, "--model", "logoxpertnet_backbone",
               "--seed", "0,1", "--epochs", "1", "--image-size", "64", "--batch-size", "8", "--num-workers", "1",
               "--shuffle-buffer", "32", "--storage", str(tmp_path / "ckpt"), "--tracking-uri", tracking,
               "--experiment", "lxn-test", "--grid", "g-test", "--grid-parallel", "2", "--no-progress-bars"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**env, "RAY_ADDRESS": address})
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 0, errors + [done.stdout[-3000:]]
    summary = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{"):])[0]  # Ray may print after it
    assert summary["grid"] == "g-test" and summary["failed"] == 0
    assert [(r["model"], r["seed"], r["exit_status"]) for r in summary["runs"]] == [
        ("logoxpertnet_backbone", 0, 0), ("logoxpertnet_backbone", 1, 0)]
    assert all(r["summary"]["registered_model"] is None for r in summary["runs"])

    client = mlflow.MlflowClient(tracking_uri=tracking)
    runs = client.search_runs([client.get_experiment_by_name("lxn-test").experiment_id],
                              filter_string="tags.`lxn.grid` = 'g-test'")
    assert sorted(int(r.data.params["seed"]) for r in runs) == [0, 1]
    assert client.search_registered_models() == []  # a grid moves no alias and registers nothing by default
    # the two runs overlapped in time: the grid ran them in parallel
    (a_start, a_end), (b_start, b_end) = sorted((r.info.start_time, r.info.end_time) for r in runs)
    assert b_start < a_end

    spec = importlib.util.spec_from_file_location("report_job", ROOT / "jobs/report.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    out = tmp_path / "tables"
    assert job.main(["--grid", "g-test", "--experiment", "lxn-test", "--tracking-uri", tracking, "--out", str(out),
                     "--efficiency", str(tmp_path / "no-bench")]) == 0
    numbers = json.loads((out / "tables.json").read_text())
    top1 = [r.data.metrics["test_top1"] for r in runs]
    model = numbers["models"]["logoxpertnet_backbone"]
    assert model["mean"]["top1"] == pytest.approx(np.mean(top1))
    assert model["std"]["top1"] == pytest.approx(np.std(top1, ddof=1))
    assert numbers["ablation"][0]["model"] == "logoxpertnet_backbone"
    text = (out / "tables.md").read_text()
    for table in ("Table 5", "Table 6", "Table 7", "Table 8", "Table 9"):
        assert table in text
    assert (out / "per_class_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert job.main(["--grid", "nope", "--experiment", "lxn-test", "--tracking-uri", tracking]) == 2
