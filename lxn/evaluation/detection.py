"""The detection metrics of the field, computed by pycocotools (the COCO reference): mAP@0.5,
mAP@[.5:.95], AP@0.5 per class, and mark recall and precision at one score threshold.

    truth:       {image: [{"label": brand, "box": [x0, y0, x1, y1]}, ...]}      (lxn.data.boxes)
    predictions: {image: [{"label": brand, "box": [...], "score": s}, ...]}

Images with no marks belong in `truth` with an empty list: a detection there is a false
positive. A class with no mark in `truth` has no AP and is left out of the means (COCO's rule);
`per_class_ap50` then says None for it.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["box_iou", "detection_metrics", "recall_precision_at", "threshold_for_detection_precision"]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (0 when they do not overlap)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _matched(truth: Mapping[str, list[dict]], predictions: Mapping[str, list[dict]],
             iou: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Every detection's score and whether it finds a mark: greedy by score within an image, each
    mark matched at most once by a detection of its brand with IoU >= `iou`. A detection's match
    depends only on the higher-scoring ones of its image, so the detections above any threshold
    are matched exactly as they would be alone."""
    scores: list[float] = []
    hits: list[bool] = []
    for image, rows in predictions.items():
        boxes = truth.get(image, [])
        taken = [False] * len(boxes)
        for d in sorted(rows, key=lambda d: -d["score"]):
            best, where = iou, -1
            for k, t in enumerate(boxes):
                if not taken[k] and t["label"] == d["label"]:
                    overlap = box_iou(d["box"], t["box"])
                    if overlap >= best:
                        best, where = overlap, k
            if where >= 0:
                taken[where] = True
            scores.append(float(d["score"]))
            hits.append(where >= 0)
    return np.asarray(scores, dtype=np.float64), np.asarray(hits, dtype=bool), sum(len(v) for v in truth.values())


def recall_precision_at(truth: Mapping[str, list[dict]], predictions: Mapping[str, list[dict]], threshold: float,
                        iou: float = 0.5) -> dict[str, float]:
    """Mark recall and precision of the detections scoring at least `threshold` (`_matched`)."""
    scores, hits, marks = _matched(truth, predictions, iou)
    keep = scores >= threshold
    kept, found = int(keep.sum()), int(hits[keep].sum())
    return {"recall": found / marks if marks else float("nan"), "precision": found / kept if kept else float("nan"),
            "marks": marks, "detections": kept}


def threshold_for_detection_precision(truth: Mapping[str, list[dict]], predictions: Mapping[str, list[dict]],
                                      target: float, iou: float = 0.5) -> dict[str, float] | None:
    """The lowest score threshold at which the detections reach `target` precision (a box of the
    right brand at IoU >= `iou`; any box on an image without marks is wrong), with its precision
    and recall; None when none reaches it. The detector's counterpart of
    `lxn.evidence.threshold_for_precision`."""
    if not 0 < target <= 1:
        raise ValueError(f"target precision must be within (0, 1], got {target}")
    scores, hits, marks = _matched(truth, predictions, iou)
    if not len(scores) or not marks:
        return None
    order = np.argsort(-scores, kind="stable")
    scores, found = scores[order], np.cumsum(hits[order])
    # A threshold keeps every detection scoring at least it: cuts fall after a run of equal scores.
    ends = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
    precision = found[ends] / (ends + 1)
    reaching = np.flatnonzero(precision >= target)
    if not len(reaching):
        return None
    cut = ends[reaching[-1]]
    return {"threshold": float(scores[cut]), "precision": float(precision[reaching[-1]]),
            "recall": float(found[cut] / marks)}


@contextlib.contextmanager
def _quiet():
    """pycocotools' prints, silenced. Redirecting stdout is not enough inside Ray Train's workers:
    they replace `print` with one that logs every line, redirected or not."""
    import builtins

    original = builtins.print
    builtins.print = lambda *args, **kwargs: None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        builtins.print = original


def detection_metrics(truth: Mapping[str, list[dict]], predictions: Mapping[str, list[dict]],
                      classes: Sequence[str], threshold: float | None = None) -> dict[str, Any]:
    """mAP@0.5, mAP@[.5:.95] and per-class AP@0.5 by pycocotools' COCOeval (up to 100
    detections an image, all areas), and, with `threshold`, recall and precision at it."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    unknown = sorted({b["label"] for rows in (*truth.values(), *predictions.values()) for b in rows} - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not among the {len(classes)} classes")
    missing = sorted(set(predictions) - set(truth))
    if missing:
        raise ValueError(f"{len(missing)} predicted image(s) have no truth (e.g. {missing[0]}): "
                         "give every scored image, an empty list where it has no marks")
    ids = {name: i + 1 for i, name in enumerate(classes)}
    images = {name: i + 1 for i, name in enumerate(sorted(truth))}
    ground = {"images": [{"id": i} for i in images.values()], "categories": [{"id": i} for i in ids.values()],
              "annotations": []}
    for image, boxes in truth.items():
        for b in boxes:
            x0, y0, x1, y1 = b["box"]
            ground["annotations"].append({"id": len(ground["annotations"]) + 1, "image_id": images[image],
                                          "category_id": ids[b["label"]], "bbox": [x0, y0, x1 - x0, y1 - y0],
                                          "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    results = [{"image_id": images[image], "category_id": ids[d["label"]], "score": float(d["score"]),
                "bbox": [d["box"][0], d["box"][1], d["box"][2] - d["box"][0], d["box"][3] - d["box"][1]]}
               for image, rows in predictions.items() for d in rows]
    present = {b["label"] for boxes in truth.values() for b in boxes}
    out: dict[str, Any] = {"images": len(images), "marks": len(ground["annotations"]), "detections": len(results)}
    if not results or not present:
        out.update({"map_50": 0.0 if present else float("nan"), "map": 0.0 if present else float("nan"),
                    "per_class_ap50": {c: (0.0 if c in present else None) for c in classes}})
    else:
        with _quiet():  # COCOeval prints its progress and table
            coco = COCO()
            coco.dataset = ground
            coco.createIndex()
            evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        # precision: [IoU thresholds (10), recall points (101), classes, areas (all first), max dets (100 last)]
        precision = evaluation.eval["precision"][:, :, :, 0, -1]
        per_class = {}
        for k, name in enumerate(classes):
            curve = precision[0, :, k]
            per_class[name] = float(np.mean(curve)) if (curve > -1).any() else None  # -1: no mark of the class
        out.update({"map": float(evaluation.stats[0]), "map_50": float(evaluation.stats[1]),
                    "per_class_ap50": per_class})
    if threshold is not None:
        out["at_threshold"] = {"threshold": threshold, **recall_precision_at(truth, predictions, threshold)}
    return out
