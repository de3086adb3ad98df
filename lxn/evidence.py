"""The statistics that choose a threshold and promote a model (numpy only).

A *brand hit* is what the scan reports as a brand (`lxn.scan.predictor.decide`): the top-1 class
when it is not the no-logo class and its probability reaches the threshold. At threshold t:
precision = correct hits / hits, recall = correct hits / images that show a brand, and the
share of no-logo images left without a brand.

A model without a no-logo class (WebLogo-2M has none) can still be measured on images without a
logo: their label is NO_LOGO_IMAGE (-1), every hit on one is wrong, and one is right when no brand
reaches the threshold.

* `hits_at` / `precision_coverage`: those figures at one threshold, and at every threshold a
  hit's confidence defines (the precision-coverage curve).
* `threshold_for_precision`: the lowest threshold whose hits reach a target precision (recall
  only falls as the threshold rises, so the lowest qualifying one keeps the most hits).
* `calibration`: expected calibration error over equal-width confidence bins, with the bins
  (a reliability diagram).
* `mcnemar_exact`: the exact two-sided McNemar test of two models scored on the same images:
  only the images one gets right and the other wrong count, and under "equally good" each such
  image is a fair coin.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["hits_at", "precision_coverage", "threshold_for_precision", "calibration", "mcnemar_exact",
           "NO_LOGO_IMAGE", "shows_brand"]

NO_LOGO_IMAGE = -1  # the label of an image without a logo, for a model with no no-logo class


def shows_brand(labels: np.ndarray, no_logo: int | None) -> np.ndarray:
    """Which images show a brand: neither the no-logo class nor NO_LOGO_IMAGE."""
    labels = np.asarray(labels, dtype=np.int64)
    brand = labels != NO_LOGO_IMAGE
    return brand & (labels != no_logo) if no_logo is not None else brand


def _top1(probs: np.ndarray, no_logo: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N, K), got shape {probs.shape}")
    top = probs.argmax(axis=1)
    confidence = probs[np.arange(len(probs)), top]
    is_brand = top != no_logo if no_logo is not None else np.ones(len(top), dtype=bool)
    return top, confidence, is_brand


def hits_at(labels: np.ndarray, probs: np.ndarray, threshold: float, no_logo: int | None) -> dict:
    """Brand-hit precision and recall, and no-logo images left unbranded, at `threshold`."""
    labels = np.asarray(labels, dtype=np.int64)
    top, confidence, is_brand = _top1(probs, no_logo)
    hit = is_brand & (confidence >= threshold)
    correct = hit & (top == labels)
    brand = shows_brand(labels, no_logo)
    return {
        "threshold": float(threshold),
        "hits": int(hit.sum()),
        "precision": float(correct.sum() / hit.sum()) if hit.any() else None,
        "recall": float(correct.sum() / brand.sum()) if brand.any() else None,
        "no_logo_unbranded": float((~hit[~brand]).mean()) if (~brand).any() else None,
    }


def precision_coverage(labels: np.ndarray, probs: np.ndarray, no_logo: int | None) -> dict[str, np.ndarray]:
    """For every distinct hit confidence t (descending): the threshold, the precision of hits at
    >= t, recall and coverage (hits / images)."""
    labels = np.asarray(labels, dtype=np.int64)
    top, confidence, is_brand = _top1(probs, no_logo)
    brands_shown = int(shows_brand(labels, no_logo).sum())
    order = np.argsort(-confidence[is_brand], kind="stable")
    conf = confidence[is_brand][order]
    correct = (top[is_brand] == labels[is_brand])[order]
    if len(conf) == 0:
        empty = np.zeros(0)
        return {"threshold": empty, "precision": empty, "recall": empty, "coverage": empty}
    cum_hits = np.arange(1, len(conf) + 1)
    cum_correct = np.cumsum(correct)
    last = np.r_[conf[1:] != conf[:-1], True]  # a threshold admits every hit tied at it
    return {
        "threshold": conf[last],
        "precision": (cum_correct / cum_hits)[last],
        "recall": cum_correct[last] / max(1, brands_shown),
        "coverage": cum_hits[last] / max(1, len(labels)),
    }


def threshold_for_precision(labels: np.ndarray, probs: np.ndarray, no_logo: int | None,
                            target: float = 0.95) -> dict | None:
    """The lowest threshold whose brand hits reach `target` precision, with the figures there;
    None when no threshold reaches it."""
    if not 0 < target <= 1:
        raise ValueError(f"target precision must be within (0, 1], got {target}")
    curve = precision_coverage(labels, probs, no_logo)
    reaching = np.flatnonzero(curve["precision"] >= target)
    if len(reaching) == 0:
        return None
    return hits_at(labels, probs, float(curve["threshold"][reaching[-1]]), no_logo)


def calibration(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> dict:
    """Expected calibration error of the top-1 confidence, and the reliability diagram's bins
    (equal width on [0, 1]; the top bin includes 1)."""
    labels = np.asarray(labels, dtype=np.int64)
    top, confidence, _ = _top1(probs, None)
    correct = top == labels
    index = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        members = index == b
        if not members.any():
            continue
        mean_conf, accuracy = float(confidence[members].mean()), float(correct[members].mean())
        ece += members.mean() * abs(mean_conf - accuracy)
        table.append({"low": b / bins, "high": (b + 1) / bins, "count": int(members.sum()),
                      "confidence": mean_conf, "accuracy": accuracy})
    return {"ece": float(ece), "bins": table}


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> dict:
    """Exact two-sided McNemar test: `a_only` images A gets right and B wrong, `b_only` the
    reverse; p = P(a result at least this lopsided | each discordant image a fair coin)."""
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"both models must be scored on the same images, got {a.shape} and {b.shape}")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "p_value": 1.0}
    # 2 * P(X <= min) for X ~ Binomial(n, 1/2), summed in log space (n can be large)
    logs = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)
            for k in range(min(a_only, b_only) + 1)]
    peak = max(logs)
    tail = math.exp(peak) * sum(math.exp(v - peak) for v in logs)
    return {"a_only": a_only, "b_only": b_only, "p_value": min(1.0, 2 * tail)}
