"""One round of the review loop, measured: what a person's review of one night's exported rows
gives the next detector, on held-out press scenes, against the same number of rows at random.

    python jobs/benchmark.py review --out bench-out

1. Round 0: `base_scenes` generated scenes of real marks (training backgrounds) -> prepare ->
   the detector trained by the project's own trainer (`d0`).
2. A night: `pool_scenes` press scenes (the test backgrounds, as a deployment's feed training
   never saw; not the held-out scenes) scanned by the real scan job with `d0`.
3. `jobs/review.py export` of that night (the queue and an audit sample); the person is
   simulated with the ground truth on the exported rows only: every task answered with the
   scene's true marks, written as Label Studio's JSON export; `jobs/review.py import` reads it.
4. Round 1: prepare base + the reviewed folder -> the same recipe (`d1`); the control: base +
   as many pool scenes drawn at random, with their truth (`random`).
5. Each model scans the detection benchmark's held-out press scenes (`lxn.benchmarks.detection`):
   mAP@0.5 and recall, precision at the version's threshold. Gain per exported row is
   (mAP(d1) - mAP(d0)) / rows.

Writes `review.json` and `.md` to `out`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from lxn.config import setting

__all__ = ["ReviewBenchConfig", "run", "markdown_table"]

log = logging.getLogger(__name__)

_NIGHT = "2026-11-30"


@dataclasses.dataclass(frozen=True)
class ReviewBenchConfig:
    out: Path = setting(Path("bench-out"), "directory for review.json/.md and the scenes, models and scans")
    num_brands: int = setting(10, "real-mark brands")
    base_scenes: int = setting(300, "round 0's generated training scenes (prepare splits them 80/10/10)")
    pool_scenes: int = setting(300, "the night's press scenes the round-0 model scans")
    test_scenes: int = setting(150, "held-out press scenes every model is scored on")
    queue: int = setting(60, "the export's doubtful rows")
    audit: int = setting(20, "the export's audit sample")
    image_size: int = setting(256, "the detector's input side")
    epochs: int = setting(10, "epochs of every round")
    batch_size: int = setting(16, "global batch")
    threshold: float | None = setting(None, "the night's scan threshold (default: the round-0 version's)")
    score_threshold: float = setting(0.05, "detections kept when scoring the held-out scenes (mAP ranks them)")
    seed: int = setting(0, "scenes' and training's seed")


def _train(name: str, prepared: Path, root: Path, config: ReviewBenchConfig, tracking_uri: str) -> tuple[str, float]:
    from lxn.train.config import TrainConfig
    from lxn.train.trainer import run as train

    started = time.monotonic()
    result = train(TrainConfig(data=str(prepared), model="logoxpertnet_det", epochs=config.epochs,
                               image_size=config.image_size, batch_size=config.batch_size, num_workers=1,
                               cpus_per_worker=2, storage=str(root / "checkpoints" / name), tracking_uri=tracking_uri,
                               experiment="lxn-bench-review", registered_model=f"review-{name}", alias="",
                               seed=config.seed, progress_bars=False))
    if result.model is None:
        raise RuntimeError(f"training {name} registered no detector")
    return result.model.uri, time.monotonic() - started


def _prepare(sources: list[Path], out: Path) -> int:
    from lxn.data.prepare import PrepareConfig
    from lxn.data.prepare import run as prepare

    manifest = prepare(PrepareConfig(source=[str(s) for s in sources], out=str(out), format="coco"))
    return int(sum(manifest.split_size(s) for s in ("train", "val", "test")))


def _simulated_answers(export_root: str, truth: dict[str, list[dict]]) -> list[dict]:
    """Label Studio's JSON export of the export's tasks, each answered with its scene's true marks."""
    from lxn.review import labelstudio
    from lxn.review.folder import ExportFolder

    folder = ExportFolder(export_root)
    tasks = json.loads(Path(folder.tasks).read_text())
    sizes = {i["file_name"]: (i["width"], i["height"]) for i in folder.read_manifest()["items"]}
    for n, t in enumerate(tasks, start=1):
        width, height = sizes[t["data"]["lxn_file"]]
        marks = truth[Path(t["data"]["lxn_uri"]).stem]
        t["id"] = n
        t["annotations"] = [{"id": n, "was_cancelled": False, "ground_truth": False,
                             "created_at": "2026-12-01T09:00:00Z", "updated_at": "2026-12-01T09:00:00Z",
                             "result": [labelstudio.rectangle(f"{n}-{k}", m["brand"], list(m["box"]), width, height)
                                        for k, m in enumerate(marks)]}]
    return tasks


def _score(name: str, uri: str, tracking_uri: str, config: ReviewBenchConfig, root: Path) -> dict[str, Any]:
    from lxn.benchmarks import detection

    summary = detection.run(detection.DetectionBenchConfig(
        out=root / "eval" / name, model="", detector=uri, detector_tracking_uri=tracking_uri,
        num_brands=config.num_brands, scenes=config.test_scenes, threshold=config.score_threshold))
    [result] = summary["results"]
    return {k: result.get(k) for k in ("map_50", "map", "threshold")}


def run(config: ReviewBenchConfig) -> dict[str, Any]:
    from lxn.data import realmarks
    from lxn.data.coco import write_coco
    from lxn.data.scenes import SceneConfig, write_scenes
    from lxn.ray_utils import init_ray
    from lxn.review.export import ExportConfig, export
    from lxn.review.ingest import ImportConfig, ingest
    from lxn.scan.config import ScanConfig
    from lxn.scan.pipeline import run as scan

    root = (Path(config.out) / "review").resolve()
    root.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    init_ray(min_cpus=4)
    marks = realmarks.RealMarksConfig(num_brands=config.num_brands, images_per_brand=1, no_logo_images=0,
                                      backgrounds="train", seed=config.seed)
    base = root / "base"
    if not (base / "annotations.json").exists():
        write_scenes(marks, SceneConfig(scenes=config.base_scenes, width=640, height=480, min_marks=0, max_marks=3,
                                        min_scale=0.05, max_scale=0.4), str(base))
    timings: dict[str, float] = {}
    rows = {"d0": _prepare([base], root / "prepared-d0")}
    d0, timings["train_d0_s"] = _train("d0", root / "prepared-d0", root, config, tracking_uri)
    # The same data and recipe with another seed: how far retraining alone moves the figures.
    again, timings["train_d0_again_s"] = _train("d0-again", root / "prepared-d0", root,
                                                dataclasses.replace(config, seed=config.seed + 1), tracking_uri)

    # The night: press scenes of the same brands over backgrounds round 0 never saw.
    pool_marks = dataclasses.replace(marks, backgrounds="test", seed=config.seed + 5000)
    pool = root / "pool"
    pool.mkdir(exist_ok=True)
    truth: dict[str, list[dict]] = {}
    for i in range(config.pool_scenes):
        data, placed = realmarks.press_scene(pool_marks, i)
        (pool / f"pool-{i:05d}.jpg").write_bytes(data)
        truth[f"pool-{i:05d}"] = placed
    started = time.monotonic()
    scan(ScanConfig(source=[str(pool)], out=str(root / "scans"), model=d0, tracking_uri=tracking_uri, date=_NIGHT,
                    threshold=config.threshold, progress_bars=False, full=True))
    timings["scan_pool_s"] = time.monotonic() - started

    exported = export(ExportConfig(scans=str(root / "scans"), night=_NIGHT, out=str(root / "export"), queue=config.queue,
                                   unknown=0, prototype=0, audit=config.audit, seed=config.seed))
    if not exported["rows"]:
        raise RuntimeError("the round-0 model put no row in the queue or the audit sample: train it longer (--epochs)")
    labels = root / "label-studio-export.json"
    labels.write_text(json.dumps(_simulated_answers(exported["export"], truth)))
    reviewed = ingest(ImportConfig(export=exported["export"], labels=str(labels), out=str(root / "reviewed")))
    count = reviewed["reviewed"]

    # The control: as many pool scenes at random, labelled in full.
    rng = np.random.default_rng(config.seed)
    picked = sorted(rng.choice(config.pool_scenes, size=count, replace=False).tolist())
    classes = sorted({m["brand"] for i in picked for m in truth[f"pool-{i:05d}"]})
    write_coco(str(root / "random"), ((f"pool-{i:05d}.jpg", (pool / f"pool-{i:05d}.jpg").read_bytes(), 640, 480,
                                       [{"label": m["brand"], "box": list(m["box"])} for m in truth[f"pool-{i:05d}"]])
                                      for i in picked), classes)
    rows["d1"] = _prepare([base, root / "reviewed"], root / "prepared-d1")
    d1, timings["train_d1_s"] = _train("d1", root / "prepared-d1", root, config, tracking_uri)
    rows["random"] = _prepare([base, root / "random"], root / "prepared-random")
    rnd, timings["train_random_s"] = _train("random", root / "prepared-random", root, config, tracking_uri)

    models = (("d0", d0), ("d0-again", again), ("d1", d1), ("random", rnd))
    scores = {name: _score(name, uri, tracking_uri, config, root) for name, uri in models}
    gain = {name: (scores[name]["map_50"] - scores["d0"]["map_50"]) for name in ("d0-again", "d1", "random")}
    summary = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()},
        "export": {"rows": exported["rows"], "by_reason": exported["by_reason"]},
        "review": {k: reviewed[k] for k in ("reviewed", "negatives", "boxes", "outcomes", "by_reason")},
        "prepared_rows": rows, "scores": scores,
        "map50_gain": gain, "map50_gain_per_row": {k: v / count for k, v in gain.items()},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    (Path(config.out) / "review.json").write_text(json.dumps(summary, indent=2, default=str))
    (Path(config.out) / "review.md").write_text(markdown_table(summary))
    return summary


def _f(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown_table(summary: dict[str, Any]) -> str:
    s = summary["settings"]
    n = summary["review"]["reviewed"]
    lines = [f"| round 1 training data ({s['base_scenes']} base scenes, {s['epochs']} epochs at {s['image_size']} px) "
             "| mAP@0.5 | mAP@[.5:.95] | mAP@0.5 gain | per added row |",
             "|---|---:|---:|---:|---:|"]
    names = {"d0": "round 0: base only", "d0-again": "round 0 again, another training seed (retraining noise)",
             "d1": f"base + {n} reviewed rows (export: queue + audit)",
             "random": f"base + {n} pool scenes at random, fully labelled"}
    for key, label in names.items():
        sc = summary["scores"][key]
        gain, per_row = summary["map50_gain"].get(key), summary["map50_gain_per_row"].get(key)
        lines.append(f"| {label} | {_f(sc['map_50'])} | {_f(sc['map'])} | {'-' if gain is None else f'{gain:+.3f}'} "
                     f"| {'-' if per_row is None or key == 'd0-again' else f'{per_row:+.4f}'} |")
    o = summary["review"]["outcomes"]
    lines += ["", f"The person's answers on the {n} exported rows: " + ", ".join(f"{v} {k}" for k, v in o.items())
              + f"; {summary['review']['negatives']} images with no mark left."]
    return "\n".join(lines) + "\n"
