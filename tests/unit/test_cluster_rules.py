"""What a multi-node cluster changes, as pure rules: the preflight's refusals, where predictor
actors go, and what an operator reads per epoch (the two-node tests run them for real)."""

from __future__ import annotations

import math

import pytest

from lxn.data.prepare import PrepareConfig
from lxn.preflight import reach_problems
from lxn.ray_utils import ClusterShape
from lxn.scan.config import ScanConfig
from lxn.scan.pipeline import plan_actors
from lxn.train.config import TrainConfig
from lxn.train.trainer import epoch_line


def test_a_cluster_config_with_only_uris_passes():
    config = TrainConfig(data="s3://bkt/prepared", storage="s3://bkt/ckpt")
    assert reach_problems(config, demo=False, tracking_uri="http://mlflow.internal:5000", shared_filesystem=False) == []


@pytest.mark.parametrize("tracking", ["sqlite:////home/ray/mlflow.db", "file:///tmp/mlruns", "/tmp/mlruns"])
def test_a_file_tracking_store_is_refused(tracking):
    config = TrainConfig(data="s3://bkt/prepared", storage="s3://bkt/ckpt")
    [problem] = reach_problems(config, demo=False, tracking_uri=tracking, shared_filesystem=False)
    assert "is a file on one node" in problem and "mlflow server" in problem


def test_every_local_input_and_output_is_named_unless_the_filesystem_is_shared(tmp_path):
    scan = ScanConfig(source=["s3://bkt/media", str(tmp_path / "local-media")], manifest=str(tmp_path / "keys.txt"),
                      out=str(tmp_path / "reports"))
    problems = reach_problems(scan, demo=False, tracking_uri="http://m:5000", shared_filesystem=False)
    assert [p.split()[0] for p in problems] == ["--source", "--manifest", "--out"]
    assert all("use an s3:// URI, or --shared-filesystem" in p for p in problems)
    assert reach_problems(scan, demo=False, tracking_uri="http://m:5000", shared_filesystem=True) == []
    train = TrainConfig(data="s3://bkt/p")  # the default --storage is a local path: checkpoints would be lost
    assert [p.split()[0] for p in reach_problems(train, demo=False, tracking_uri=None, shared_filesystem=False)] == \
        ["--storage"]
    prepare = PrepareConfig(source=["s3://bkt/raw"], out="s3://bkt/prepared")
    assert reach_problems(prepare, demo=False, tracking_uri=None, shared_filesystem=False) == []


def test_the_demo_is_refused():
    problems = reach_problems(ScanConfig(out="s3://bkt/r"), demo=True, tracking_uri="http://m:5000", shared_filesystem=True)
    assert problems == ["the embedded demo writes its generated data on one node: give the job its data and outputs "
                        "as s3:// URIs"]


def _shape(resources, max_resources=None, nodes=2, max_nodes=None):
    return ClusterShape(nodes=nodes, max_nodes=max_nodes if max_nodes is not None else nodes,
                        resources=resources, max_resources=max_resources or {})


def test_actors_take_a_gpu_when_the_autoscaler_can_start_one():
    config = ScanConfig(source=["s3://bkt/m"], out="s3://bkt/r", actors=1, max_actors=4)
    no_gpu_yet = _shape({"CPU": 8}, {"CPU": 72, "GPU": 8}, nodes=1, max_nodes=math.inf)
    assert no_gpu_yet.multi_node and plan_actors(config, no_gpu_yet) == {"use_gpu": True}
    assert plan_actors(config, _shape({"CPU": 8})) == {"use_gpu": False}
    assert plan_actors(ScanConfig(device="cpu"), no_gpu_yet) == {"use_gpu": False}
    with pytest.raises(ValueError, match="needs a GPU each"):
        plan_actors(ScanConfig(device="cuda", actors=2), _shape({"CPU": 8, "GPU": 1}))


def test_actors_that_could_never_be_placed_are_refused_before_any_work():
    with pytest.raises(ValueError, match="leave none for fetching"):
        plan_actors(ScanConfig(actors=4, actor_cpus=2), _shape({"CPU": 8}))
    config = ScanConfig(actor_resources=["accelerator=1"], actors=2)
    assert plan_actors(config, _shape({"CPU": 4, "accelerator": 2})) == {"use_gpu": False}
    with pytest.raises(ValueError, match="no node of this cluster advertises 'accelerator'"):
        plan_actors(config, _shape({"CPU": 4, "accelerator": 1}))


@pytest.mark.parametrize("bad", [["accelerator"], ["accelerator=0"], ["=1"], ["GPU=1"], ["x=abc"]])
def test_actor_resources_are_validated(bad):
    with pytest.raises(ValueError, match="NAME=AMOUNT"):
        ScanConfig(actor_resources=bad)
    with pytest.raises(ValueError, match="below --actors"):
        ScanConfig(actors=3, max_actors=2)
    assert ScanConfig(actor_resources=["accelerator=0.5", "spot=1"]).actor_resource_amounts == {"accelerator": 0.5,
                                                                                                "spot": 1.0}


def test_the_epoch_line_says_where_training_is():
    line = epoch_line({"epoch": 2, "train_loss": 1.23456, "train_acc": 0.5, "val_loss": 1.5, "val_acc": 0.4321,
                       "lr": 0.001, "images_per_s": 812.3}, epochs=150, eta_s=3 * 3600 + 7 * 60 + 5)
    assert line == ("epoch 3/150: train loss 1.2346 acc 0.500, val loss 1.5000 acc 0.432, lr 1.00e-03, "
                    "812.3 images/s, ETA 3:07:05")
