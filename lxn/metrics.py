"""Classification metrics the paper reports, from labels and class scores (numpy, no framework).

top-1 accuracy; macro precision, recall and F1 (over the classes present in the labels or the
predictions, as scikit-learn's macro average does); macro one-vs-rest ROC AUC (over classes
that have both positives and negatives); per-class accuracy (recall); the most frequent
confusion pairs (the paper's Table 8).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["confusion_matrix", "classification_report", "confusion_pairs", "roc_auc_ovr"]


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows = true class, columns = predicted class."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties."""
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # average rank per run of equal scores
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    run_rank = (starts + ends + 1) / 2.0  # 1-based average rank of each run
    ranks[order] = np.repeat(run_rank, ends - starts)
    n_pos = positive.sum()
    n_neg = len(scores) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc_ovr(labels: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray]:
    """Macro one-vs-rest AUC and the per-class AUCs (NaN where a class lacks positives or negatives)."""
    labels = np.asarray(labels)
    per_class = np.full(scores.shape[1], np.nan)
    for k in range(scores.shape[1]):
        positive = labels == k
        if 0 < positive.sum() < len(labels):
            per_class[k] = _binary_auc(positive, scores[:, k])
    valid = ~np.isnan(per_class)
    return (float(per_class[valid].mean()) if valid.any() else float("nan")), per_class


def confusion_pairs(matrix: np.ndarray, class_names: Sequence[str], top: int = 10) -> list[dict]:
    """The `top` most frequent (true, predicted) mistakes, most frequent first."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(off, axis=None, kind="stable")[::-1][:top]
    pairs = []
    for index in flat:
        true, pred = divmod(int(index), matrix.shape[1])
        if off[true, pred] == 0:
            break
        support = int(matrix[true].sum())
        pairs.append(
            {"true": class_names[true], "predicted": class_names[pred], "count": int(off[true, pred]),
             "rate": off[true, pred] / support if support else 0.0}
        )
    return pairs


def classification_report(labels: np.ndarray, scores: np.ndarray, class_names: Sequence[str]) -> dict:
    """Everything the paper reports for one split, as plain JSON-ready Python values.

    `scores` are per-class probabilities or logits (N, K); top-1 is their argmax.
    """
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    num_classes = len(class_names)
    if scores.shape != (len(labels), num_classes):
        raise ValueError(f"scores must be (N, {num_classes}), got {scores.shape}")
    predictions = scores.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, num_classes)
    true_per_class = matrix.sum(axis=1)
    predicted_per_class = matrix.sum(axis=0)
    hits = np.diag(matrix)
    present = (true_per_class + predicted_per_class) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_per_class > 0, hits / predicted_per_class, 0.0)
        recall = np.where(true_per_class > 0, hits / true_per_class, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    auc, per_class_auc = roc_auc_ovr(labels, scores)
    return {
        "count": int(len(labels)),
        "top1": float(hits.sum() / max(1, len(labels))),
        "precision_macro": float(precision[present].mean()) if present.any() else 0.0,
        "recall_macro": float(recall[present].mean()) if present.any() else 0.0,
        "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
        "auc_macro_ovr": auc,
        "per_class_accuracy": {
            name: (float(recall[k]) if true_per_class[k] else None) for k, name in enumerate(class_names)
        },
        "per_class_auc": {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, per_class_auc)},
        "confusion_pairs": confusion_pairs(matrix, class_names),
        "confusion_matrix": matrix.tolist(),
    }
