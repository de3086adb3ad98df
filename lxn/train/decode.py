"""The Ray Data map stage that decodes training images: in its own light module, because every
Ray worker that runs it imports the module it lives in (the trainer's imports, MLflow and
matplotlib among them, took 2.7 s more per worker than these)."""

from __future__ import annotations

import numpy as np

from lxn.presets import Preset, model_pixels

__all__ = ["decode_batch"]


def decode_batch(batch: dict[str, np.ndarray], preset: Preset) -> dict[str, np.ndarray]:
    """Ray Data map stage: stored JPEG bytes -> uint8 arrays at the preset size (on CPU), through
    the scan's own decode path (`lxn.presets.model_pixels`). Prepare validated every stored
    image, so one that does not decode is a bug and raises."""
    size = preset.image_size
    images = np.empty((len(batch["image"]), size, size, 3), dtype=np.uint8)
    for i, data in enumerate(batch["image"]):
        images[i] = model_pixels(data, preset)
    return {"image": images, "label": batch["label"].astype(np.int64)}


def decode_detection_batch(batch: dict[str, np.ndarray], preset: Preset, detector_class: list[int],
                           max_boxes: int) -> dict[str, np.ndarray]:
    """Ray Data map stage for detectors: stored JPEG bytes and their boxes (in the stored copy's
    pixels, `lxn.data.prepared`) -> uint8 images at the preset size with the boxes scaled to them
    (the resize does not keep the aspect ratio, and neither do the boxes), padded to `max_boxes`
    (`lxn.train.detection.padded_boxes`). `detector_class` maps a manifest class index to the
    detector's (-1: the no-logo class, which has no boxes)."""
    from lxn.presets import model_input
    from lxn.train.detection import padded_boxes

    size, count = preset.image_size, len(batch["image"])
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    boxes = np.zeros((count, max_boxes, 4), dtype=np.float32)
    labels = np.full((count, max_boxes), -1, dtype=np.int64)
    for i, (data, marks) in enumerate(zip(batch["image"], batch["boxes"])):
        images[i], (width, height) = model_input(data, preset)
        marks = list(marks) if marks is not None else []
        sx, sy = size / width, size / height
        scaled = [[m["x0"] * sx, m["y0"] * sy, m["x1"] * sx, m["y1"] * sy] for m in marks]
        boxes[i], labels[i] = padded_boxes(scaled, [detector_class[int(m["label"])] for m in marks], max_boxes)
    return {"image": images, "boxes": boxes, "box_labels": labels}
