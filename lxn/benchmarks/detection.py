"""Every brand in a press photo: detections with tiles against the whole-image scan.

    python jobs/benchmark.py detection --model models:/accuracy-logoxpertnet-lxn/1 \
        --tracking-uri sqlite:///bench-out/accuracy/mlflow.db --out bench-out

1. Scenes: `scenes` 640x480 press-photo-like frames (lxn.data.realmarks.press_scene over the
   test backgrounds, which training never saw), each with two or three different marks of the
   model's classes, one of them small (about a tenth of the short side). The truth is each
   scene's set of (brand, box).
2. Each mode scans the folder with the real scan job (`lxn.scan.pipeline.run`): the whole image
   only, then each `--tiles` setting. Its steady images/s and model calls per image are the cost.
3. Scored per mark: recall = the scene's detections name its brand (and, for the box figure, a
   detection of that brand overlaps its box); precision = detections whose brand is in the
   scene; small-mark recall alone; mean IoU of the matched boxes. The whole-image scan's one
   detection is its `brand`.

Writes `detection.json` and `.md` to `out`.
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
from lxn.evaluation.detection import box_iou

__all__ = ["DetectionBenchConfig", "run", "markdown_table", "score"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DetectionBenchConfig:
    out: Path = setting(Path("bench-out"), "directory for detection.json/.md and the scenes, scans")
    model: str = setting("models:/accuracy-logoxpertnet-lxn/1", "a classifier trained on real marks (jobs/benchmark.py accuracy registers them); empty: none")
    tracking_uri: str = setting("sqlite:///bench-out/accuracy/mlflow.db", "the MLflow store that holds --model")
    detector: str = setting("", "a detector trained on real-mark scenes to scan the same scenes with (jobs/benchmark.py detector registers one); empty: none")
    detector_tracking_uri: str = setting("", "the MLflow store that holds --detector (empty: --tracking-uri)")
    detector_thresholds: list[float] = setting([], "also scan with the detector at these score thresholds (besides its version's)")
    num_brands: int = setting(20, "the real-marks classes the model was trained on (its --num-brands)")
    scenes: int = setting(200, "press scenes to generate and scan")
    tiles: list[str] = setting(["2,3", "2,3,4"], "tile settings to compare with the whole-image scan (comma-separated grids)")
    threshold: float | None = setting(None, "the scan's threshold (default: the version's tag)")
    seed: int = setting(3000, "scene seed (the accuracy benchmark's test scenes use 1000)")
    batch_size: int = setting(32, "scan batch")


def score(rows: dict[str, dict], truth: dict[str, list[dict]], whole_image: bool) -> dict[str, Any]:
    """Recall, precision, small-mark recall and box IoU of one scan's rows against the truth."""
    marks = found = small = small_found = boxed = tight = 0
    predicted = correct = 0
    ious: list[float] = []
    per_brand: dict[str, list[int]] = {}
    for name, placed in truth.items():
        row = rows[name]
        if whole_image:
            detections = [{"brand": row["brand"], "box": None}] if row["brand"] else []
        else:
            detections = [{"brand": d["brand"], "box": (d["x0"], d["y0"], d["x1"], d["y1"])} for d in row["detections"] or []]
        brands_here = {p["brand"] for p in placed}
        predicted += len(detections)
        correct += sum(d["brand"] in brands_here for d in detections)
        for mark in placed:
            mine = [d for d in detections if d["brand"] == mark["brand"]]
            hit = bool(mine)
            marks += 1
            found += hit
            small += mark["small"]
            small_found += hit and mark["small"]
            tally = per_brand.setdefault(mark["brand"], [0, 0])
            tally[0] += 1
            tally[1] += hit
            if hit and mine[0]["box"] is not None:
                best = max(box_iou(d["box"], mark["box"]) for d in mine)
                ious.append(best)
                boxed += best > 0
                tight += best >= 0.5
    per_brand_recall = [hit / n for n, hit in per_brand.values()]
    return {"marks": marks, "recall": found / marks, "precision": correct / predicted if predicted else None,
            "small_recall": small_found / small if small else None,
            "macro_brand_recall": float(np.mean(per_brand_recall)),
            "box_overlaps": boxed / found if found and not whole_image else None,
            "found_iou50": tight / marks if not whole_image else None,
            "mean_iou": float(np.mean(ious)) if ious else None, "detections": predicted}


def average_precision(rows: dict[str, dict], truth: dict[str, list[dict]]) -> dict[str, float]:
    """COCO mAP@0.5 and mAP@[.5:.95] of a scan's detections (their confidences rank them) against
    the scenes' marks, by `lxn.evaluation.detection.detection_metrics`. The scan keeps only the
    detections at or above its threshold, so these are the APs of what the report holds."""
    from lxn.evaluation.detection import detection_metrics

    marks = {name: [{"label": m["brand"], "box": list(m["box"])} for m in placed] for name, placed in truth.items()}
    found = {name: [{"label": d["brand"], "box": [d["x0"], d["y0"], d["x1"], d["y1"]], "score": d["confidence"]}
                    for d in rows[name]["detections"] or []] for name in truth}
    classes = sorted({m["label"] for v in marks.values() for m in v} | {d["label"] for v in found.values() for d in v})
    figures = detection_metrics(marks, found, classes)
    return {"map_50": figures["map_50"], "map": figures["map"]}


def run(config: DetectionBenchConfig) -> dict[str, Any]:
    import pyarrow.dataset as pads

    from lxn.data import realmarks
    from lxn.scan.config import ScanConfig
    from lxn.scan.pipeline import run as scan
    from lxn.scan.tiling import tile_count

    root = (Path(config.out) / "detection").resolve()
    scenes_dir = root / "scenes"
    scenes_dir.mkdir(parents=True, exist_ok=True)
    marks_config = realmarks.RealMarksConfig(num_brands=config.num_brands, images_per_brand=1, no_logo_images=1,
                                             backgrounds="test", seed=config.seed)
    truth: dict[str, list[dict]] = {}
    for i in range(config.scenes):
        data, placed = realmarks.press_scene(marks_config, i)
        name = f"scene-{i:05d}"
        path = scenes_dir / f"{name}.jpg"
        if not path.exists():
            path.write_bytes(data)
        truth[name] = placed
    modes = []
    if config.model:
        modes += [("whole image", config.model, config.tracking_uri, ())]
        modes += [(f"tiles {t}", config.model, config.tracking_uri, tuple(int(g) for g in t.split(","))) for t in config.tiles]
    if config.detector:
        store = config.detector_tracking_uri or config.tracking_uri
        modes.append(("detector", config.detector, store, ()))
        modes += [(f"detector at {t:g}", config.detector, store, (), t) for t in config.detector_thresholds]
    if not modes:
        raise ValueError("give --model (a classifier), --detector, or both")
    results = []
    for label, model, tracking_uri, grids, *fixed in modes:
        threshold = fixed[0] if fixed else config.threshold
        out = root / "scans" / (label.replace(" ", "-").replace(",", "_"))
        started = time.monotonic()
        result = scan(ScanConfig(source=[str(scenes_dir)], out=str(out), model=model, tracking_uri=tracking_uri,
                                 date="2000-01-01", tiles=list(grids) or None, threshold=threshold,
                                 batch_size=config.batch_size, progress_bars=False, full=True))
        wall = time.monotonic() - started
        table = pads.dataset(str(out), format="parquet", partitioning="hive").to_table(
            columns=["uri", "brand", "detections"])
        rows = {Path(r["uri"]).stem: r for r in table.to_pylist()}
        throughput = result.manifest["throughput"]
        whole_image = label == "whole image"
        results.append({"mode": label, "model": model, "model_calls_per_image": tile_count(grids),
                        "images_per_s": throughput.get("steady_images_per_s") or throughput.get("images_per_s"),
                        "wall_s": round(wall, 1), "threshold": result.manifest["threshold"]["value"],
                        **score(rows, truth, whole_image=whole_image),
                        **({} if whole_image else average_precision(rows, truth))})
        log.info("detection %s: %s", label, results[-1])
    whole = results[0]["images_per_s"] if results[0]["mode"] == "whole image" else None
    for r in results:
        r["speed_vs_whole_image"] = round(r["images_per_s"] / whole, 3) if whole and r["images_per_s"] else None
    summary = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()},
               "scenes": config.scenes, "results": results}
    (Path(config.out) / "detection.json").write_text(json.dumps(summary, indent=2))
    (Path(config.out) / "detection.md").write_text(markdown_table(summary))
    return summary


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def markdown_table(summary: dict[str, Any]) -> str:
    lines = ["| mode | model calls / image | mark recall | small-mark recall | macro brand recall | precision "
             "| found with IoU >= 0.5 | mean IoU | mAP@0.5 | mAP@[.5:.95] | images/s | vs first mode |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    first = summary["results"][0]["images_per_s"]
    for r in summary["results"]:
        iou = "-" if r["mean_iou"] is None else f"{r['mean_iou']:.2f}"
        ap50, ap = ("-", "-") if r.get("map_50") is None else (f"{r['map_50']:.3f}", f"{r['map']:.3f}")
        speed = f"{r['images_per_s'] / first:.2f}x" if first and r["images_per_s"] else "-"
        lines.append(f"| {r['mode']} | {r['model_calls_per_image']} | {_pct(r['recall'])} | {_pct(r['small_recall'])} "
                     f"| {_pct(r['macro_brand_recall'])} | {_pct(r['precision'])} | {_pct(r.get('found_iou50'))} "
                     f"| {iou} | {ap50} | {ap} | {r['images_per_s']} | {speed} |")
    return "\n".join(lines) + "\n"
