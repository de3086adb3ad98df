"""The detector on press scenes of real marks, trained by the project's own jobs, against the
classifier's tiles on the same scenes, in one run.

    python jobs/benchmark.py detector --out bench-out [--classifier models:/accuracy-logoxpertnet-lxn/1 \
        --classifier-tracking-uri sqlite:///bench-out/accuracy/mlflow.db]

1. Training scenes: `train_scenes` 640x480 frames of 0-3 real marks of `num_brands` brands at
   5-40% of the short side over the training backgrounds (`lxn.data.scenes`), as a COCO folder.
2. `jobs/train.py`'s job on them (prepare with `--format coco`, then `lxn.train.trainer.run`
   with the detector): the training budget (scenes, epochs, input side, wall time) and the
   test split's COCO mAP are recorded.
3. The detection benchmark's press scenes (test backgrounds training never saw, two or three
   marks each, one small) scanned by the real scan job with the registered detector and, given
   `--classifier`, with the classifier whole-image and with `--tiles` (`lxn.benchmarks.detection`).

Writes `detector.json` and `.md` to `out`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from lxn.config import setting

__all__ = ["DetectorBenchConfig", "run", "markdown_table"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DetectorBenchConfig:
    out: Path = setting(Path("bench-out"), "directory for detector.json/.md, the scenes, the store and the scans")
    model: str = setting("logoxpertnet_det", "the detector to train (lxn.models.list_models('detect'))")
    num_brands: int = setting(20, "real-mark brands (the detection benchmark's classifier has the same 20)")
    train_scenes: int = setting(800, "training scenes (prepare splits them 80/10/10)")
    image_size: int = setting(256, "the detector's input side (a multiple of 64)")
    epochs: int = setting(12, "training epochs")
    batch_size: int = setting(16, "global batch")
    num_workers: int = setting(1, "Ray Train workers")
    cpus_per_worker: int = setting(2, "CPUs per worker")
    backbone_weights: str | None = setting(None, "a LogoXpertNet classifier or torchvision MobileNetV3-Large state dict for the backbone")
    test_scenes: int = setting(200, "press scenes to scan (the detection benchmark's)")
    classifier: str = setting("", "a classifier on the same brands to compare with (empty: the detector alone)")
    classifier_tracking_uri: str = setting("sqlite:///bench-out/accuracy/mlflow.db", "the store holding --classifier")
    tiles: list[str] = setting(["2,4,6"], "the classifier's tile settings to compare with")
    detector_thresholds: list[float] = setting([0.3, 0.2], "also scan with the detector at these thresholds (besides its version's)")
    seed: int = setting(0, "training scenes' and training's seed")


def run(config: DetectorBenchConfig) -> dict[str, Any]:
    from lxn.benchmarks import detection
    from lxn.data.prepare import PrepareConfig
    from lxn.data.prepare import run as prepare
    from lxn.data.realmarks import RealMarksConfig
    from lxn.data.scenes import SceneConfig, write_scenes
    from lxn.ray_utils import init_ray
    from lxn.train.config import TrainConfig
    from lxn.train.trainer import run as train

    root = (Path(config.out) / "detector").resolve()
    root.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    init_ray(min_cpus=config.num_workers * config.cpus_per_worker + 2)
    started = time.monotonic()
    marks = RealMarksConfig(num_brands=config.num_brands, images_per_brand=1, no_logo_images=0, backgrounds="train",
                            seed=config.seed)
    scenes = SceneConfig(scenes=config.train_scenes, width=640, height=480, min_marks=0, max_marks=3,
                         min_scale=0.05, max_scale=0.4)
    coco = root / f"scenes-{config.train_scenes}"
    if not (coco / "annotations.json").exists():
        write_scenes(marks, scenes, str(coco))
    prepared = root / f"prepared-{config.train_scenes}"
    if not (prepared / "manifest.json").exists():  # written last: a complete dataset
        prepare(PrepareConfig(source=[str(coco)], out=str(prepared), format="coco"))
    data_s = time.monotonic() - started

    started = time.monotonic()
    result = train(TrainConfig(data=str(prepared), model=config.model, epochs=config.epochs, image_size=config.image_size,
                               batch_size=config.batch_size, num_workers=config.num_workers,
                               cpus_per_worker=config.cpus_per_worker, backbone_weights=config.backbone_weights,
                               storage=str(root / "checkpoints"), tracking_uri=tracking_uri, experiment="lxn-bench-detector",
                               registered_model="bench-detector", alias="", seed=config.seed, progress_bars=False))
    train_s = time.monotonic() - started
    if result.model is None:
        raise RuntimeError("training registered no detector")
    compared = detection.run(detection.DetectionBenchConfig(
        out=Path(config.out), model=config.classifier, tracking_uri=config.classifier_tracking_uri,
        detector=result.model.uri, detector_tracking_uri=tracking_uri, num_brands=config.num_brands,
        scenes=config.test_scenes, tiles=list(config.tiles), detector_thresholds=list(config.detector_thresholds)))
    test = result.test_report
    summary = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()},
        "training": {"scenes": config.train_scenes, "epochs": config.epochs, "image_size": config.image_size,
                     "data_s": round(data_s, 1), "train_s": round(train_s, 1), "model": result.model.uri,
                     "already_finished": result.already_finished},
        "test_split": {k: test.get(k) for k in ("map_50", "map", "images", "marks", "at_threshold", "threshold")},
        "press_scenes": compared["results"],
    }
    (Path(config.out) / "detector.json").write_text(json.dumps(summary, indent=2, default=str))
    (Path(config.out) / "detector.md").write_text(markdown_table(summary))
    return summary


def markdown_table(summary: dict[str, Any]) -> str:
    from lxn.benchmarks.detection import markdown_table as scenes_table

    t, s = summary["training"], summary["test_split"]
    ap50, ap = (f"{s['map_50']:.3f}", f"{s['map']:.3f}") if s.get("map_50") is not None else ("-", "-")
    lines = ["| training budget | test split mAP@0.5 | test split mAP@[.5:.95] |", "|---|---:|---:|",
             f"| {t['scenes']} scenes, {t['epochs']} epochs at {t['image_size']} px, {t['train_s'] / 60:.0f} min "
             f"| {ap50} | {ap} |", ""]
    return "\n".join(lines) + "\n" + scenes_table({"results": summary["press_scenes"]})
