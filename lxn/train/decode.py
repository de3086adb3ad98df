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
