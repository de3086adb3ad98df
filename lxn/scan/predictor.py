"""The predictor: a callable class for Ray Data's `map_batches` (one per actor).

It loads the registered model once, in `__init__` (the exported graph on the CPU; on a GPU the
eager rebuild under fp16 autocast), and maps a batch of decoded pixels to report rows. It is a
plain class: tests call it directly, without Ray.

The decision for one image, from the probabilities p (softmax of the logits) of its tile
(the whole image, or the most brand-like tile under `--tiles`, see `tiling.best_tile`):

* `confidence` = max p, the top-1 probability;
* `brand` = the top-1 class, or null when it is the no-logo class or `confidence` < threshold;
* `top_brands` / `top_probs`: the k most probable classes, most probable first (the no-logo
  class included: it says how sure the model is that there is nothing).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import numpy as np
import pyarrow as pa

from lxn.scan import tiling
from lxn.scan.report import STAGED_SCHEMA

__all__ = ["Predictor", "decide", "softmax"]

log = logging.getLogger(__name__)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def decide(probs: np.ndarray, *, no_logo: int | None, threshold: float, k: int) -> tuple[np.ndarray, ...]:
    """probs (N, K) -> brand index (N,) (-1: null), confidence (N,), top-k indices (N, k) and
    probabilities (N, k), most probable first (ties: the lower class index first)."""
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    top_p = np.take_along_axis(probs, order, axis=1)
    confidence = top_p[:, 0]
    brand = order[:, 0].copy()
    brand[confidence < threshold] = -1
    if no_logo is not None:
        brand[order[:, 0] == no_logo] = -1
    return brand, confidence, order, top_p


def _strings(values: np.ndarray) -> list[str | None]:
    """An object column as strings, with null for missing values: a null crosses Ray Data's numpy
    batches as None or as NaN, and "" marks an unknown ETag in the listing."""
    return [v if isinstance(v, str) and v else None for v in values.tolist()]


class Predictor:
    """Decoded batch (see `fetch.fetch_and_decode`) -> a pyarrow table in `STAGED_SCHEMA`.

    model_uri must name a version (`models:/name/version`): the job resolves the alias once.
    """

    def __init__(self, model_uri: str, *, scan_id: str, tracking_uri: str | None = None, top_k: int = 5,
                 threshold: float = 0.5, no_logo_class: str = "no-logo", batch_size: int = 32,
                 device: str = "auto", threads: int = 0) -> None:
        import torch

        from lxn.logs import configure_logging
        from lxn.tracking import load_model

        configure_logging(worker=True)  # this actor's INFO lines reach `ray job logs`

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if threads > 0:
            torch.set_num_threads(threads)
        loaded = load_model(model_uri, tracking_uri, device)
        if loaded.ref is None or loaded.ref.uri != model_uri:
            raise ValueError(f"the predictor needs a resolved models:/<name>/<version> URI, got {model_uri!r}")
        self.torch = torch
        self.device = torch.device(device)
        self.module = loaded.module
        self.image_size = loaded.preset.image_size
        self.class_names = np.asarray(loaded.class_names, dtype=object)
        self.no_logo = loaded.class_names.index(no_logo_class) if no_logo_class in loaded.class_names else None
        self.model_name, self.model_version = loaded.ref.name, loaded.ref.version
        self.scan_id = scan_id
        self.top_k, self.threshold, self.batch_size = top_k, threshold, batch_size
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "-"
        log.info("predictor: %s on %s (%d threads), node %s", model_uri, self.device, torch.get_num_threads(), node)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> float32 (N, K), in model calls of at most `batch_size`."""
        torch = self.torch
        out = np.empty((len(images), len(self.class_names)), dtype=np.float32)
        cuda = self.device.type == "cuda"
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
            for start in range(0, len(images), self.batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + self.batch_size]))
                logits = self.module(chunk.to(self.device, non_blocking=cuda))
                out[start : start + len(chunk)] = logits.float().cpu().numpy()
        return softmax(out)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        n = len(batch["uri"])
        pixels = batch["pixels"]
        if pixels.ndim != 5 or pixels.shape[2:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"expected pixels of shape (N, T, {self.image_size}, {self.image_size}, 3), got {pixels.shape}")
        tiles = pixels.shape[1]
        ok = np.asarray(batch["status"] == "ok", dtype=bool)
        count = int(ok.sum())
        k = min(self.top_k, len(self.class_names))
        brand = np.full(n, -1)
        confidence = np.zeros(n, dtype=np.float32)
        top_i = np.zeros((n, k), dtype=np.int64)
        top_p = np.zeros((n, k), dtype=np.float32)
        best = np.zeros(n, dtype=np.int64)
        if count:
            probs, chosen = self.image_probabilities(pixels[ok])
            b, c, ti, tp = decide(probs, no_logo=self.no_logo, threshold=self.threshold, k=k)
            brand[ok], confidence[ok], top_i[ok], top_p[ok], best[ok] = b, c, ti, tp, chosen
        return self._table(batch, ok, brand, confidence, top_i, top_p, best, k)

    def image_probabilities(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, T, S, S, 3) -> the probabilities (N, K) the decision rests on, those of each
        image's chosen tile, and that tile's index (N,). Evaluation scores through this too."""
        count, tiles = pixels.shape[:2]
        probs = self.probabilities(pixels.reshape(count * tiles, *pixels.shape[2:])).reshape(count, tiles, -1)
        chosen = tiling.best_tile(probs, self.no_logo) if tiles > 1 else np.zeros(count, dtype=np.int64)
        return probs[np.arange(count), chosen], chosen

    def _table(self, batch: dict[str, np.ndarray], ok: np.ndarray, brand, confidence, top_i, top_p, best, k) -> pa.Table:
        n = len(ok)
        missing = ~ok
        offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
        top_brands = pa.ListArray.from_arrays(offsets, pa.array(self.class_names[top_i.reshape(-1)], pa.string()),
                                              mask=pa.array(missing))
        top_probs = pa.ListArray.from_arrays(offsets, pa.array(top_p.reshape(-1), pa.float32()), mask=pa.array(missing))
        names = np.where(brand >= 0, self.class_names[np.maximum(brand, 0)], None)
        columns: dict[str, Any] = {
            "row_id": pa.array(batch["row_id"], pa.int64()),
            "key_hash": pa.array(batch["key_hash"], pa.uint64()),
            "scan_id": pa.array([self.scan_id] * n, pa.string()),
            "uri": pa.array(batch["uri"].tolist(), pa.string()),
            "etag": pa.array(_strings(batch["etag"]), pa.string()),
            "size": pa.array(batch["size"], pa.int64(), mask=np.asarray(batch["size"]) < 0),
            "last_modified": pa.array(batch["last_modified"]).cast(pa.timestamp("us", tz="UTC")),
            "width": pa.array(batch["width"], pa.int32(), mask=missing),
            "height": pa.array(batch["height"], pa.int32(), mask=missing),
            "status": pa.array(batch["status"].tolist(), pa.string()),
            "error_kind": pa.array(_strings(batch["error_kind"]), pa.string()),
            "error": pa.array(_strings(batch["error"]), pa.string()),
            "brand": pa.array(names.tolist(), pa.string()),
            "confidence": pa.array(confidence, pa.float32(), mask=missing),
            "top_brands": top_brands,
            "top_probs": top_probs,
        }
        boxes = batch.get("boxes")
        no_box = missing if boxes is not None else np.ones(n, dtype=bool)
        chosen_boxes = boxes[np.arange(n), best] if boxes is not None else np.zeros((n, 4), dtype=np.int32)
        for j, name in enumerate(("box_x0", "box_y0", "box_x1", "box_y1")):
            columns[name] = pa.array(chosen_boxes[:, j], pa.int32(), mask=no_box)
        columns["model_name"] = pa.array([self.model_name] * n, pa.string())
        columns["model_version"] = pa.array([self.model_version] * n, pa.string())
        now = dt.datetime.now(dt.timezone.utc)
        columns["scanned_at"] = pa.array([now] * n, pa.timestamp("us", tz="UTC"))
        return pa.table(columns, schema=STAGED_SCHEMA)
