"""The detector's training step and its scoring, as plain functions (no Ray, no MLflow), the
counterparts of `lxn.train.loop`'s for classifiers.

Batches are dicts with "image" (uint8, B x S x S x 3 at the preset size), "boxes" (float32,
B x M x 4, xyxy in those S x S pixels) and "box_labels" (int64, B x M, the detector's class or
-1 where a row is padding): `lxn.train.decode.decode_detection_batch` makes them, fixed-shape so
that Ray Data can batch them like any array.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from lxn.presets import Preset
from lxn.preprocess import Preprocess
from lxn.train.box_augment import augment_detection
from lxn.train.loop import EpochStats, ModelEma, autocast, step_optimizer

__all__ = ["targets_of", "train_one_epoch_detection", "predict_detections"]


def targets_of(batch: Mapping[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """The per-image {"boxes", "labels"} of a padded batch (padding rows dropped), on the CPU."""
    boxes = torch.as_tensor(batch["boxes"]).float()
    labels = torch.as_tensor(batch["box_labels"]).long()
    return [{"boxes": b[c >= 0], "labels": c[c >= 0]} for b, c in zip(boxes.cpu(), labels.cpu())]


def train_one_epoch_detection(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    optimizer: torch.optim.Optimizer,
    preprocess: Preprocess,
    preset: Preset,
    generator: torch.Generator,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    lr_at: Callable[[int], float] | None = None,
    ema: ModelEma | None = None,
) -> EpochStats:
    """One pass: boxes move with the pixels (`augment_detection`, on the CPU), the FCOS losses
    (focal classification + GIoU box + centre-ness) are summed and stepped. Returns the summed
    loss and image count of this process (`correct` stays 0: a detector has no top-1)."""
    model.train()
    stats = EpochStats()
    start = time.perf_counter()
    for step, batch in enumerate(batches):
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        images = torch.as_tensor(batch["image"]).cpu()
        x, targets = augment_detection(images, targets_of(batch), preset, generator)
        x = preprocess.normalize(x.to(device, non_blocking=True)).contiguous(memory_format=torch.channels_last)
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        with autocast(device, amp_dtype):
            losses = model(x, targets)
            loss = sum(losses.values())
        step_optimizer(loss, model, optimizer, scaler, ema)
        n = len(targets)
        stats.loss_sum += float(loss.item()) * n
        stats.count += n
    stats.seconds = time.perf_counter() - start
    return stats


@torch.no_grad()
def predict_detections(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    preprocess: Preprocess,
    device: torch.device,
    class_names: Sequence[str],
    amp_dtype: torch.dtype | None = None,
    score_thresh: float = 0.05,
    prefix: str = "",
) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """(truth, predictions) of every image in `batches`, in `lxn.evaluation.detection`'s form
    ({image: [{"label", "box"(, "score")}]}, brands by name), images named `prefix` + a running
    number. The detections are `select_detections` above `score_thresh` (COCO scoring wants the
    low-scoring ones too; the threshold is chosen from them)."""
    from lxn.models.detector import select_detections

    model.eval()
    truth: dict[str, list[dict]] = {}
    predictions: dict[str, list[dict]] = {}
    for batch in batches:
        x = preprocess(torch.as_tensor(batch["image"]).to(device)).contiguous(memory_format=torch.channels_last)
        with autocast(device, amp_dtype):
            candidates = model(x).float()
        for target, found in zip(targets_of(batch), select_detections(candidates.cpu(), score_thresh=score_thresh)):
            name = f"{prefix}{len(truth)}"
            truth[name] = [{"label": class_names[int(c)], "box": [float(v) for v in b]}
                           for b, c in zip(target["boxes"], target["labels"])]
            predictions[name] = [{"label": class_names[int(c)], "box": [float(v) for v in b], "score": float(s)}
                                 for b, s, c in zip(found["boxes"], found["scores"], found["labels"])]
    return truth, predictions


def merge(parts: Iterable[tuple[dict, dict]]) -> tuple[dict, dict]:
    """One (truth, predictions) from each rank's (their image names must differ: the prefix)."""
    truth: dict[str, list[dict]] = {}
    predictions: dict[str, list[dict]] = {}
    for t, p in parts:
        truth.update(t)
        predictions.update(p)
    return truth, predictions


def padded_boxes(boxes: Sequence[Sequence[float]], labels: Sequence[int], max_boxes: int) -> tuple[np.ndarray, np.ndarray]:
    """(max_boxes, 4) float32 and (max_boxes,) int64 with -1 labels where rows are padding; an
    image with more marks keeps its `max_boxes` largest."""
    out_boxes = np.zeros((max_boxes, 4), dtype=np.float32)
    out_labels = np.full(max_boxes, -1, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(boxes) > max_boxes:
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = np.sort(np.argsort(-area, kind="stable")[:max_boxes])
        boxes, labels = boxes[keep], labels[keep]
    out_boxes[: len(boxes)], out_labels[: len(labels)] = boxes, labels
    return out_boxes, out_labels
