"""The predictor: a callable class for Ray Data's `map_batches` (one per actor).

It loads the model its job fetched and checked (a `ModelPackage`) once, in `__init__` (the
exported graph on the CPU; on a GPU the eager rebuild under fp16 autocast), and maps a batch of
decoded pixels to report rows. It is a plain class: tests call it directly, without Ray.

The decision for one image, from the probabilities p (softmax of the logits) of its tile
(the whole image, or the most brand-like tile under `--tiles`, see `tiling.best_tile`):

* `confidence` = max p, the top-1 probability;
* `brand` = the top-1 class, or null when it is the no-logo class or `confidence` < threshold;
* `top_brands` / `top_probs`: the k most probable classes, most probable first (the no-logo
  class included: it says how sure the model is that there is nothing);
* `detections`: every brand some tile shows, with its box (`tiling.detect`);
* `brand_source`: "classifier" or "prototype" (a brand onboarded from examples, see
  lxn.prototypes), "unknown" when open-set rejection (`unknown_below`) took the brand away.

The exported graph serves plain scans. A model with prototypes, `--embeddings` or open-set
rejection runs eagerly instead (`lxn.embeddings.EmbeddingModel`): one pass gives logits and
embeddings.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow as pa

from lxn.model_package import ModelPackage
from lxn.scan import tiling
from lxn.scan.schema import Decisions, staged_rows

__all__ = ["Predictor", "decide", "softmax", "needs_embeddings", "predictor_settings"]

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


# The Predictor's keywords that a job's config gives under the same names: what scoring needs
# (evaluation's ScoringSettings: probabilities only), and what a scan's rows need besides (ScanConfig).
_SCORING = ("no_logo_class", "batch_size")
_DECIDING = ("top_k", "threshold", "embeddings", "unknown_below")


def predictor_settings(config: Any, *, decide: bool) -> dict[str, Any]:
    """The Predictor's keywords from a job's config (`threads`: its `model_threads`); with
    `decide`, the scan's decision settings too."""
    names = _SCORING + (_DECIDING if decide else ())
    return {**{name: getattr(config, name) for name in names}, "threads": config.model_threads}


def needs_embeddings(prototypes: int, embeddings: str | None, unknown_below: float | None) -> bool:
    """Whether a scan runs the eager model (logits and embeddings) rather than the exported graph."""
    return bool(prototypes or embeddings or unknown_below is not None)


class Predictor:
    """Decoded batch (see `fetch.fetch_and_decode`) -> its decisions as arrays -> report rows
    (`lxn.scan.schema.staged_rows`).

    `model` is the registered version the job fetched and checked once (`lxn.tracking.fetch_model`
    on a `models:/name/version` or alias URI): each actor loads it from these bytes, with no
    MLflow and no download of its own.
    """

    def __init__(self, model: ModelPackage, *, scan_id: str, top_k: int = 5,
                 threshold: float = 0.5, no_logo_class: str = "no-logo", batch_size: int = 32,
                 device: str = "auto", threads: int = 0, embeddings: str | None = None,
                 unknown_below: float | None = None) -> None:
        import torch

        from lxn.logs import configure_logging

        configure_logging(worker=True)  # this actor's INFO lines reach `ray job logs`

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if threads > 0:
            torch.set_num_threads(threads)
        if model.ref is None:
            raise ValueError(f"the predictor needs a registered version (models:/<name>/<version>), got {model.source!r}")
        loaded = model.load(device)
        self.torch = torch
        self.device = torch.device(device)
        self.image_size = loaded.preset.image_size
        table = loaded.prototypes
        self.class_names = np.asarray(loaded.predicted_classes, dtype=object)
        self.sources = np.asarray(["classifier"] * len(loaded.class_names) + ["prototype"] * len(table), dtype=object)
        self.no_logo = loaded.class_names.index(no_logo_class) if no_logo_class in loaded.class_names else None
        self.is_brand = np.ones(len(self.class_names), dtype=bool)
        if self.no_logo is not None:
            self.is_brand[self.no_logo] = False
        self.model_name, self.model_version = loaded.ref.name, loaded.ref.version
        self.task = loaded.task
        self.scan_id = scan_id
        self.top_k, self.threshold, self.batch_size = top_k, threshold, batch_size
        self.embeddings, self.unknown_below = embeddings, unknown_below
        self.extended = None
        if self.task == "detect":
            self.sources[:] = "detector"
        if needs_embeddings(len(table), embeddings, unknown_below):
            from lxn.embeddings import embedding_model
            from lxn.prototypes import ExtendedClassifier

            self.module = embedding_model(loaded, self.device)
            self.extended = ExtendedClassifier(*self.module.classifier_weights(), table)
        else:
            self.module = loaded.module
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "-"
        log.info("predictor: %s on %s (%d threads, %s), node %s", model.ref.uri, self.device, torch.get_num_threads(),
                 "eager, with embeddings" if self.extended else "exported graph", node)

    def forward(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (N, S, S, 3) -> probabilities float32 (N, K) over `class_names` and, on the eager
        path, the embeddings (N, D); in model calls of at most `batch_size`."""
        torch = self.torch
        logits = np.empty((len(images), len(self.class_names)), dtype=np.float32)
        embeddings = np.empty((len(images), self.module.embedding_dim), dtype=np.float32) if self.extended else None
        cuda = self.device.type == "cuda"
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
            for start in range(0, len(images), self.batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + self.batch_size]))
                out = self.module(chunk.to(self.device, non_blocking=cuda))
                end = start + len(chunk)
                if self.extended is None:
                    logits[start:end] = out.float().cpu().numpy()
                    continue
                own, emb = (t.float().cpu().numpy() for t in out)
                embeddings[start:end] = emb
                logits[start:end] = self.extended.logits(emb, own)
        return softmax(logits), embeddings

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> float32 (N, K)."""
        return self.forward(images)[0]

    def image_probabilities(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, T, S, S, 3) -> the probabilities (N, K) the decision rests on, those of each
        image's chosen tile, and that tile's index (N,). Evaluation scores through this too."""
        probs, chosen, _ = self._tiles(pixels)
        return _pick(probs, chosen), chosen

    def _tiles(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        count, tiles = pixels.shape[:2]
        probs, embeddings = self.forward(pixels.reshape(count * tiles, *pixels.shape[2:]))
        probs = probs.reshape(count, tiles, -1)
        if embeddings is not None:
            embeddings = embeddings.reshape(count, tiles, -1)
        chosen = tiling.best_tile(probs, self.no_logo) if tiles > 1 else np.zeros(count, dtype=np.int64)
        return probs, chosen, embeddings

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        n = len(batch["uri"])
        pixels = batch["pixels"]
        if pixels.ndim != 5 or pixels.shape[2:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"expected pixels of shape (N, T, {self.image_size}, {self.image_size}, 3), got {pixels.shape}")
        ok = np.asarray(batch["status"] == "ok", dtype=bool)
        k = min(self.top_k, len(self.class_names))
        rows = _Rows(n, k)
        if ok.any() and self.task == "detect":
            self._decide_marks(batch, ok, rows)
        elif ok.any():
            self._decide(batch, ok, rows)
        return staged_rows(batch, self._decisions(batch, ok, rows), scan_id=self.scan_id,
                           model_name=self.model_name, model_version=self.model_version)

    def candidates(self, images: np.ndarray) -> np.ndarray:
        """A detector's uint8 (N, S, S, 3) -> its candidates (N, C, 6), in model calls of at most
        `batch_size` (`lxn.models.detector.LogoXpertDet`)."""
        torch = self.torch
        parts = []
        cuda = self.device.type == "cuda"
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
            for start in range(0, len(images), self.batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + self.batch_size]))
                parts.append(self.module(chunk.to(self.device, non_blocking=cuda)).float().cpu().numpy())
        return np.concatenate(parts)

    def _decide_marks(self, batch: dict[str, np.ndarray], ok: np.ndarray, rows: "_Rows") -> None:
        """A detector's rows: one model call an image, its marks with boxes (`lxn.scan.marks`)."""
        from lxn.scan.marks import decide_marks

        index = np.flatnonzero(ok)
        pixels = batch["pixels"][ok]
        if pixels.shape[1] != 1:
            raise ValueError(f"a detector scans whole images, got {pixels.shape[1]} tiles an image")
        for i, candidates in zip(index, self.candidates(pixels[:, 0])):
            width, height = int(batch["width"][i]), int(batch["height"][i])
            decided = decide_marks(candidates, width=width, height=height, image_size=self.image_size,
                                   threshold=self.threshold, num_classes=len(self.class_names), k=rows.k)
            rows.brand[i], rows.confidence[i] = decided["brand"], decided["confidence"]
            rows.top_i[i], rows.top_p[i] = decided["top_i"], decided["top_p"]
            rows.source[i] = "detector" if decided["brand"] >= 0 else None
            rows.detections[i] = [{"brand": self.class_names[c], "confidence": p, "source": "detector",
                                   "x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3]} for c, p, b in decided["marks"]]
            if decided["marks"]:
                rows.box[i], rows.has_box[i] = decided["marks"][0][2], True

    def _decide(self, batch: dict[str, np.ndarray], ok: np.ndarray, rows: "_Rows") -> None:
        index = np.flatnonzero(ok)
        probs_t, chosen, emb_t = self._tiles(batch["pixels"][ok])
        probs = _pick(probs_t, chosen)
        brand, confidence, top_i, top_p = decide(probs, no_logo=self.no_logo, threshold=self.threshold, k=rows.k)
        tile_top, tile_conf = probs_t.argmax(axis=2), probs_t.max(axis=2)
        unknown = np.zeros(len(index), dtype=bool)
        if self.unknown_below is not None:
            far = self.extended.nearness(emb_t.reshape(-1, emb_t.shape[2])).reshape(emb_t.shape[:2]) < self.unknown_below
            unknown = _pick(far, chosen)
            brand[unknown] = -1
            tile_conf = np.where(far, 0.0, tile_conf)  # an unknown tile detects nothing
        rows.brand[index], rows.confidence[index], rows.best[index] = brand, confidence, chosen
        rows.top_i[index], rows.top_p[index] = top_i, top_p
        rows.source[index] = np.where(unknown, "unknown", np.where(brand >= 0, self.sources[np.maximum(brand, 0)], None))
        boxes = batch.get("boxes")
        for j, i in enumerate(index):
            tile_boxes = boxes[i] if boxes is not None else np.array([[0, 0, batch["width"][i], batch["height"][i]]])
            rows.detections[i] = [
                {"brand": self.class_names[c], "confidence": p, "source": self.sources[c],
                 "x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3]}
                for c, p, b in tiling.detect(tile_top[j], tile_conf[j], tile_boxes, is_brand=self.is_brand,
                                             threshold=self.threshold)]
        if self.embeddings:
            from lxn.embeddings import encode

            for i, value in zip(index, encode(_pick(emb_t, chosen), self.embeddings)):
                rows.embedding[i] = value

    def _decisions(self, batch: dict[str, np.ndarray], ok: np.ndarray, rows: "_Rows") -> Decisions:
        """The decided indices as the report's values: names, and the box the brand stands in."""
        n = len(ok)
        boxes = batch.get("boxes")
        if self.task == "detect":  # the best mark's box
            has_box, box = rows.has_box, rows.box
        elif boxes is not None:  # the chosen tile's
            has_box, box = ok, boxes[np.arange(n), rows.best].astype(np.int32)
        else:
            has_box, box = np.zeros(n, dtype=bool), np.zeros((n, 4), dtype=np.int32)
        return Decisions(brand=np.where(rows.brand >= 0, self.class_names[np.maximum(rows.brand, 0)], None),
                         brand_source=rows.source, confidence=rows.confidence,
                         top_brands=self.class_names[rows.top_i], top_probs=rows.top_p, box=box, has_box=has_box,
                         detections=rows.detections, embedding=rows.embedding)


def _pick(values: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Each image's value at its chosen tile: (N, T, ...) -> (N, ...). The decision, evaluation's
    probabilities, the open-set test and the stored embedding all take the same tile."""
    return values[np.arange(len(chosen)), chosen]


class _Rows:
    """A batch's decided values as class indices; error rows keep the defaults (nulls)."""

    def __init__(self, n: int, k: int) -> None:
        self.k = k
        self.brand = np.full(n, -1)
        self.confidence = np.zeros(n, dtype=np.float32)
        self.top_i = np.zeros((n, k), dtype=np.int64)
        self.top_p = np.zeros((n, k), dtype=np.float32)
        self.best = np.zeros(n, dtype=np.int64)
        self.box = np.zeros((n, 4), dtype=np.int32)       # a detector's best mark
        self.has_box = np.zeros(n, dtype=bool)
        self.source = np.full(n, None, dtype=object)
        self.detections: list[list[dict] | None] = [None] * n
        self.embedding: list[bytes | None] = [None] * n
