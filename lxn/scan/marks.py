"""A registered detector's decision for one image, in the report's terms: its candidates (the
exported graph's (N, 6) rows of box in model pixels, score, class) -> the marks above the
threshold, their boxes in the original image's pixels, and the image-level columns.

* `detections`: class-wise NMS over the candidates scoring at least the threshold
  (`lxn.models.detector.select_detections`), best first, boxes scaled from the S x S model input
  back to the image's displayed W x H (the resize did not keep the aspect ratio: x * W / S,
  y * H / S), rounded outwards to whole pixels and clipped to the image;
* `brand`, `confidence`: the best detection's brand and score; with no detection, brand null
  and confidence the best candidate's score (how close the image came);
* `top_brands` / `top_probs`: the k brands whose best candidate scores highest, with those
  scores (a detector's scores are per mark, not a distribution: they need not sum to 1).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["decide_marks", "NMS_IOU", "MAX_MARKS"]

NMS_IOU = 0.5     # boxes of one brand overlapping more than this are one mark
MAX_MARKS = 100   # detections kept per image (COCO's cap)


def _to_image(box: np.ndarray, scale_x: float, scale_y: float, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return (max(0, math.floor(x0 * scale_x)), max(0, math.floor(y0 * scale_y)),
            min(width, math.ceil(x1 * scale_x)), min(height, math.ceil(y1 * scale_y)))


def decide_marks(candidates: np.ndarray, *, width: int, height: int, image_size: int, threshold: float,
                 num_classes: int, k: int) -> dict:
    """One image's candidates (N, 6) -> {"marks": [(class, score, (x0, y0, x1, y1))] best first,
    "brand": class or -1, "confidence", "top_i" (k,), "top_p" (k,)}."""
    from lxn.models.detector import select_detections

    candidates = np.asarray(candidates, dtype=np.float32)
    best = np.zeros(num_classes, dtype=np.float32)
    np.maximum.at(best, candidates[:, 5].round().astype(np.int64), candidates[:, 4])
    top_i = np.argsort(-best, kind="stable")[:k]
    # select_detections keeps scores above its cut; the brand rule is "at or above the threshold"
    (found,) = select_detections(candidates[None], score_thresh=np.nextafter(np.float32(threshold), np.float32(-1)),
                                 nms_thresh=NMS_IOU, max_detections=MAX_MARKS)
    sx, sy = width / image_size, height / image_size
    marks = [(int(c), float(s), _to_image(b, sx, sy, width, height))
             for b, s, c in zip(found["boxes"].numpy(), found["scores"].numpy(), found["labels"].numpy())]
    return {"marks": marks, "brand": marks[0][0] if marks else -1,
            "confidence": marks[0][1] if marks else float(best.max(initial=0.0)),
            "top_i": top_i, "top_p": best[top_i]}
