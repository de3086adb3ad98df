"""What differs between training a classifier and a detector, behind one shape the trainer's
recipe calls: which columns a split reads and how they decode, how an epoch trains, what
validation measures (and which figure picks the best epoch), the final test with the threshold
chosen on the validation split, and the tags the registered version carries.

    ClassifierTask  images and labels; top-1 picks the best epoch; the no-logo threshold at
                    which brand hits reach the target precision on val
    DetectorTask    images and boxes; mAP@0.5 picks the best epoch; the score threshold at
                    which boxes (right brand, IoU >= 0.5) reach the target precision on val

Both run in every Ray Train worker: `fit` and the scoring are this rank's share, the reductions
across ranks happen here (`Tally`, `gather`), and every rank gets the same figures back.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Iterable

import numpy as np
import torch

from lxn import registry
from lxn.data.sample import NO_LOGO
from lxn.presets import Preset
from lxn.preprocess import Preprocess

__all__ = ["Tally", "Worker", "ClassifierTask", "DetectorTask", "task_for", "choose_threshold", "epoch_line",
           "MAX_BOXES"]

log = logging.getLogger("lxn.train.trainer")

MAX_BOXES = 32  # boxes kept per training image (the largest, `lxn.train.detection.padded_boxes`)


# ---------------------------------------------------------------------------- across ranks


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


@dataclasses.dataclass
class Tally:
    """Sums over one pass of one rank, summed over all ranks by `total`; `seconds` is the
    slowest rank's (what the pass took)."""

    loss_sum: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    seconds: float = 0.0

    @classmethod
    def of(cls, stats: Any) -> "Tally":
        return cls(stats.loss_sum, stats.correct, stats.count, stats.seconds)

    def total(self, device: torch.device) -> "Tally":
        if not _distributed():
            return self
        sums = torch.tensor([self.loss_sum, self.correct, self.count], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(sums)
        slowest = torch.tensor([self.seconds], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
        return Tally(*sums.tolist(), slowest.item())

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1.0, self.count)

    @property
    def accuracy(self) -> float:
        return self.correct / max(1.0, self.count)


def gather(value: Any) -> list[Any]:
    """`value` of every rank, in rank order, on every rank (`[value]` without a process group)."""
    if not _distributed():
        return [value]
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, value)
    return gathered


@dataclasses.dataclass
class Worker:
    """One Ray Train worker's place: its rank, device, precision, preprocessing and splits."""

    rank: int
    world: int
    device: torch.device
    amp_dtype: torch.dtype | None
    preprocess: Preprocess
    shard: Callable[[str, int, bool], Iterable[dict[str, torch.Tensor]]]  # (split, epoch, train) -> batches


# ---------------------------------------------------------------------------- classifier


def choose_threshold(labels: np.ndarray, probs: np.ndarray, class_names: list[str], target: float) -> dict | None:
    """The lowest no-logo threshold at which the scan's brand hits reach `target` precision on
    these (validation) images, with its precision and recall; None when none reaches it."""
    from lxn.evidence import threshold_for_precision

    no_logo = class_names.index(NO_LOGO) if NO_LOGO in class_names else None
    choice = threshold_for_precision(labels, probs, no_logo, target) if len(labels) else None
    _log_threshold(choice, target, "brand hits")
    return choice


def _log_threshold(choice: dict | None, target: float, what: str) -> None:
    if choice is None:
        log.warning("no threshold reaches precision %.2f of %s on the validation split: the version gets no "
                    "threshold tag and the scan will use %.2f unless --threshold is given", target, what,
                    registry.DEFAULT_THRESHOLD)
    else:
        log.info("threshold %.3f: %s on the validation split at precision %.3f, recall %.3f (target %.2f)",
                 choice["threshold"], what, choice["precision"], choice["recall"], target)


def epoch_line(metrics: dict[str, Any], epochs: int, eta_s: float) -> str:
    """The line rank 0 logs after each epoch (what `ray job logs -f` shows)."""
    eta = f"{int(eta_s // 3600)}:{int(eta_s % 3600 // 60):02d}:{int(eta_s % 60):02d}"
    if "val_map_50" in metrics:
        scored = f"val mAP@0.5 {metrics['val_map_50']:.3f} mAP {metrics['val_map']:.3f}"
        trained = f"train loss {metrics['train_loss']:.4f}"
    else:
        scored = f"val loss {metrics['val_loss']:.4f} acc {metrics['val_acc']:.3f}"
        trained = f"train loss {metrics['train_loss']:.4f} acc {metrics['train_acc']:.3f}"
    return (f"epoch {metrics['epoch'] + 1}/{epochs}: {trained}, {scored}, lr {metrics['lr']:.2e}"
            f", {metrics['images_per_s']:.1f} images/s, ETA {eta}")


def _gather_scores(scores: np.ndarray, labels: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Every rank's scores on rank 0 (None elsewhere): a test split's (N, K) scores may be large."""
    if not _distributed():
        return scores, labels
    parts: list[Any] | None = [None] * torch.distributed.get_world_size() if rank == 0 else None
    torch.distributed.gather_object((scores.astype(np.float32), labels), parts, dst=0)
    if rank != 0:
        return None
    parts = [p for p in parts if len(p[1])]  # an unequal split may leave a worker without rows
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class ClassifierTask:
    """Images and labels; cross-entropy; top-1 on val picks the best epoch."""

    kind = "classify"
    best = "val_acc"
    columns = ("image", "label")
    test_figures = ("top1", "precision_macro", "recall_macro", "f1_macro", "auc_macro_ovr")

    def __init__(self, config: Any, preset: Preset, class_names: list[str]) -> None:
        self.config, self.preset, self.class_names = config, preset, class_names

    @property
    def model_classes(self) -> list[str]:
        return self.class_names

    def decode(self) -> tuple[Callable, dict[str, Any]]:
        from lxn.train.decode import decode_batch

        return decode_batch, {"preset": self.preset}

    def fit(self, model, batches, worker: Worker, **step) -> Tally:
        from lxn.train.loop import train_one_epoch

        return Tally.of(train_one_epoch(model, batches, preprocess=worker.preprocess, preset=self.preset,
                                        device=worker.device, amp_dtype=worker.amp_dtype,
                                        label_smoothing=self.config.resolved_recipe.label_smoothing, **step))

    def epoch_metrics(self, fit: Tally, model, batches, worker: Worker) -> dict[str, float]:
        from lxn.train.loop import evaluate

        val = Tally.of(evaluate(model, batches, preprocess=worker.preprocess, device=worker.device,
                                amp_dtype=worker.amp_dtype)).total(worker.device)
        return {"train_loss": fit.loss, "train_acc": fit.accuracy, "val_loss": val.loss, "val_acc": val.accuracy,
                "val_images": val.count}

    def _scores(self, model, batches, worker: Worker) -> tuple[np.ndarray, np.ndarray] | None:
        from lxn.train.loop import evaluate

        result = evaluate(model, batches, preprocess=worker.preprocess, device=worker.device,
                          amp_dtype=worker.amp_dtype, collect_scores=True)
        return _gather_scores(result.scores, result.labels, worker.rank)

    def test(self, model, test_batches, val_batches, worker: Worker) -> dict[str, Any] | None:
        """The test report of the best weights, with the threshold chosen on the validation split
        (the test split stays unseen); on rank 0, None on the others."""
        from lxn.metrics import classification_report

        test = self._scores(model, test_batches, worker)
        val = self._scores(model, val_batches, worker)
        if worker.rank != 0:
            return None
        report = classification_report(test[1], test[0], self.class_names)
        report["threshold"] = choose_threshold(val[1], val[0], self.class_names, self.config.threshold_precision)
        return report

    def log_test(self, tracker, report: dict[str, Any], state: dict[str, Any]) -> None:
        from matplotlib import pyplot as plt

        from lxn.train import plots

        tracker.log_metrics({f"test_{k}": report[k] for k in self.test_figures} | {"test_images": report["count"]},
                            step=state["epoch"])
        tracker.log_dict({k: report[k] for k in ("per_class_accuracy", "per_class_auc")}, "test/per_class.json")
        tracker.log_dict(report["confusion_pairs"], "test/confusion_pairs.json")
        tracker.log_dict({"classes": self.class_names, "matrix": report["confusion_matrix"]},
                         "test/confusion_matrix.json")
        for name, figure in plots.all_figures(state["history"], report, self.class_names).items():
            tracker.log_figure(figure, f"plots/{name}.png")
            plt.close(figure)

    @staticmethod
    def version_tags(report: dict[str, Any]) -> dict[str, Any]:
        return {registry.TEST_TOP1: report["top1"], registry.TEST_F1_MACRO: report["f1_macro"]}


# ---------------------------------------------------------------------------- detector


class DetectorTask(ClassifierTask):
    """Images and boxes; FCOS losses; mAP@0.5 on val picks the best epoch. The detector's classes
    are the brands: the no-logo class has no boxes, its images train as background."""

    kind = "detect"
    best = "val_map_50"
    columns = ("image", "boxes")
    test_figures = ("map_50", "map")

    @property
    def model_classes(self) -> list[str]:
        return [c for c in self.class_names if c != NO_LOGO]

    def decode(self) -> tuple[Callable, dict[str, Any]]:
        from lxn.train.decode import decode_detection_batch

        brands = self.model_classes
        detector_class = [brands.index(c) if c != NO_LOGO else -1 for c in self.class_names]
        return decode_detection_batch, {"preset": self.preset, "detector_class": detector_class,
                                        "max_boxes": MAX_BOXES}

    def fit(self, model, batches, worker: Worker, **step) -> Tally:
        from lxn.train.detection import train_one_epoch_detection

        return Tally.of(train_one_epoch_detection(model, batches, preprocess=worker.preprocess, preset=self.preset,
                                                  device=worker.device, amp_dtype=worker.amp_dtype, **step))

    def _detections(self, model, batches, worker: Worker) -> tuple[dict, dict]:
        from lxn.train.detection import merge, predict_detections

        mine = predict_detections(model, batches, preprocess=worker.preprocess, device=worker.device,
                                  class_names=self.model_classes, amp_dtype=worker.amp_dtype,
                                  prefix=f"rank{worker.rank}-")
        return merge(gather(mine))

    def epoch_metrics(self, fit: Tally, model, batches, worker: Worker) -> dict[str, float]:
        from lxn.evaluation.detection import detection_metrics

        truth, predictions = self._detections(model, batches, worker)
        figures = detection_metrics(truth, predictions, self.model_classes)
        return {"train_loss": fit.loss, "val_map_50": _finite(figures["map_50"]), "val_map": _finite(figures["map"]),
                "val_images": float(len(truth))}

    def test(self, model, test_batches, val_batches, worker: Worker) -> dict[str, Any]:
        from lxn.evaluation.detection import detection_metrics, threshold_for_detection_precision

        truth, predictions = self._detections(model, test_batches, worker)
        val_truth, val_predictions = self._detections(model, val_batches, worker)
        target = self.config.threshold_precision
        choice = threshold_for_detection_precision(val_truth, val_predictions, target)
        _log_threshold(choice, target, "boxes")
        at = choice["threshold"] if choice else registry.DEFAULT_THRESHOLD
        report = detection_metrics(truth, predictions, self.model_classes, threshold=at)
        report.update(count=report["images"], threshold=choice)
        return report

    def log_test(self, tracker, report: dict[str, Any], state: dict[str, Any]) -> None:
        at = report["at_threshold"]
        tracker.log_metrics({"test_map_50": _finite(report["map_50"]), "test_map": _finite(report["map"]),
                             "test_recall": _finite(at["recall"]), "test_precision": _finite(at["precision"]),
                             "test_images": report["count"]}, step=state["epoch"])
        tracker.log_dict({"per_class_ap50": report["per_class_ap50"], "at_threshold": at}, "test/per_class.json")

    @staticmethod
    def version_tags(report: dict[str, Any]) -> dict[str, Any]:
        return {registry.TEST_MAP50: _finite(report["map_50"]), registry.TEST_MAP: _finite(report["map"])}


def _finite(value: float) -> float:
    """NaN (no mark to score: an empty split) as 0, so metrics and tags stay comparable numbers."""
    return 0.0 if value is None or value != value else float(value)


def task_for(config: Any, preset: Preset, class_names: list[str]) -> ClassifierTask:
    from lxn.models import model_task

    return {"classify": ClassifierTask, "detect": DetectorTask}[model_task(config.model)](config, preset, class_names)
