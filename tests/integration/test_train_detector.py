"""The detector trained by the training job: box-labelled scenes (a COCO folder) -> prepare ->
Ray Train (2 CPU workers) -> MLflow -> a registered detector that the scan and `load_model` read
as one. The run is tiny (4 brands, 128 px, 2 epochs): it checks the machinery (metrics,
exactly-once scoring across workers, registration), not accuracy; tests/unit/test_detector.py
has the known answer of a trained detector.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from lxn import registry
from lxn.data.prepare import PrepareConfig
from lxn.data.prepare import run as prepare
from lxn.data.prepared import read_manifest
from lxn.data.scenes import SceneConfig, write_scenes
from lxn.data.synthetic import SyntheticConfig
from lxn.train.config import TrainConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ray_cluster):
    from lxn.train.trainer import run

    root = tmp_path_factory.mktemp("detector")
    write_scenes(SyntheticConfig(num_brands=4, images_per_brand=1, no_logo_images=0, image_size=128, seed=0),
                 SceneConfig(scenes=45, width=192, height=160, min_marks=0, max_marks=2, min_scale=0.15, max_scale=0.5),
                 str(root / "coco"))
    prepare(PrepareConfig(source=[str(root / "coco")], out=str(root / "prepared"), format="coco"))
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    result = run(TrainConfig(data=str(root / "prepared"), model="logoxpertnet_backbone_det", epochs=2, image_size=128,
                             batch_size=8, num_workers=2, shuffle_buffer=64, storage=str(root / "checkpoints"),
                             tracking_uri=tracking_uri, experiment="lxn-test", registered_model="det-test",
                             run_name="det", progress_bars=False))
    return root, result, tracking_uri


def test_a_detector_trains_validates_on_map_and_registers_with_its_figures(trained):
    root, result, tracking_uri = trained
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    history = {m.step: m.value for m in client.get_metric_history(result.run_id, "val_map_50")}
    assert sorted(history) == [0, 1] and all(0.0 <= v <= 1.0 for v in history.values())
    best = max(history, key=lambda step: (history[step], -step))
    assert result.best_epoch == best  # the registered weights are the best epoch's by val mAP@0.5

    # every validation and test image scored exactly once across the two workers
    manifest = read_manifest(str(root / "prepared"))
    metrics = client.get_run(result.run_id).data.metrics
    assert {"val": metrics["val_images"], "test": metrics["test_images"]} == \
        {split: manifest.split_size(split) for split in ("val", "test")}
    assert manifest.split_size("val") % 2 or manifest.split_size("test") % 2, "the fixture needs an odd split"

    tags = client.get_model_version(result.model.name, result.model.version).tags
    assert float(tags[registry.TEST_MAP50]) == pytest.approx(result.test_report["map_50"])
    assert float(tags[registry.TEST_MAP]) == pytest.approx(result.test_report["map"])
    assert registry.TEST_TOP1 not in tags
    assert result.test_report["images"] == manifest.split_size("test")


def test_the_registered_detector_loads_as_one_and_is_refused_as_a_classifier(trained):
    from lxn.tracking import load_model

    root, result, tracking_uri = trained
    loaded = load_model(result.model.uri, tracking_uri, task="detect")
    classes = read_manifest(str(root / "prepared")).classes
    assert "no-logo" in classes  # scenes without marks: background for the detector, not a class
    assert loaded.task == "detect" and loaded.class_names == [c for c in classes if c != "no-logo"]
    assert loaded.preset.image_size == 128
    with pytest.raises(ValueError, match="is a detector"):
        load_model(result.model.uri, tracking_uri)


def test_resuming_a_finished_detector_run_trains_nothing(trained):
    from lxn.train.trainer import run

    root, result, tracking_uri = trained
    again = run(TrainConfig(data=str(root / "prepared"), model="logoxpertnet_backbone_det", epochs=2, image_size=128,
                            batch_size=8, num_workers=2, storage=str(root / "checkpoints"), tracking_uri=tracking_uri,
                            experiment="lxn-test", registered_model="det-test", run_name="det"))
    assert again.already_finished and again.model == result.model
    assert Path(root / "checkpoints" / "det").is_dir()
