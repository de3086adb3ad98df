"""The report's rows: every column, its type and how it is built from a decoded batch and the
predictor's decisions (`staged_rows`). The report's readers (DuckDB, pyarrow, the summary, the
evaluation) and its writers (the predictor, staging) import the schema from here."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["DETECTION_TYPE", "REPORT_SCHEMA", "STAGED_SCHEMA", "Decisions", "nullable_strings", "staged_rows"]

_UTC_US = pa.timestamp("us", tz="UTC")

# One entry of `detections`: a brand some region of the image shows, its box in original pixels.
DETECTION_TYPE = pa.struct([
    pa.field("brand", pa.string(), nullable=False),
    pa.field("confidence", pa.float32(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("x0", pa.int32(), nullable=False),
    pa.field("y0", pa.int32(), nullable=False),
    pa.field("x1", pa.int32(), nullable=False),
    pa.field("y1", pa.int32(), nullable=False),
])

REPORT_SCHEMA = pa.schema(
    [
        pa.field("scan_id", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("etag", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("last_modified", _UTC_US),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_kind", pa.string()),
        pa.field("error", pa.string()),
        pa.field("brand", pa.string()),
        pa.field("brand_source", pa.string()),
        pa.field("confidence", pa.float32()),
        pa.field("top_brands", pa.list_(pa.string())),
        pa.field("top_probs", pa.list_(pa.float32())),
        pa.field("detections", pa.list_(DETECTION_TYPE)),
        pa.field("box_x0", pa.int32()),
        pa.field("box_y0", pa.int32()),
        pa.field("box_x1", pa.int32()),
        pa.field("box_y1", pa.int32()),
        pa.field("embedding", pa.binary()),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("scanned_at", _UTC_US, nullable=False),
    ]
)
# What the predictor returns and the driver stages: the listing's row id and (uri, etag) hash first.
STAGED_SCHEMA = pa.schema(
    [pa.field("row_id", pa.int64(), nullable=False), pa.field("key_hash", pa.uint64(), nullable=False),
     *REPORT_SCHEMA]
)


def nullable_strings(values: np.ndarray) -> list[str | None]:
    """An object column as strings, with null for missing values: a null crosses Ray Data's numpy
    batches as None or as NaN, and "" marks an unknown ETag in the listing."""
    return [v if isinstance(v, str) and v else None for v in values.tolist()]


@dataclasses.dataclass
class Decisions:
    """What the predictor decided for each of a batch's N images, as arrays; rows it did not
    decide (error rows) keep `empty`'s values and become nulls."""

    brand: np.ndarray         # object (N,): the brand's name, or None
    brand_source: np.ndarray  # object (N,): "classifier", "prototype", "detector", "unknown", or None
    confidence: np.ndarray    # float32 (N,)
    top_brands: np.ndarray    # object (N, k): class names, most probable first
    top_probs: np.ndarray     # float32 (N, k)
    box: np.ndarray           # int32 (N, 4): x0, y0, x1, y1 of the brand's mark or tile, in original pixels
    has_box: np.ndarray       # bool (N,)
    detections: list          # per image: None, or a list of DETECTION_TYPE dicts
    embedding: list           # per image: None, or the encoded embedding

    @classmethod
    def empty(cls, n: int, k: int) -> "Decisions":
        return cls(brand=np.full(n, None, dtype=object), brand_source=np.full(n, None, dtype=object),
                   confidence=np.zeros(n, dtype=np.float32), top_brands=np.full((n, k), "", dtype=object),
                   top_probs=np.zeros((n, k), dtype=np.float32), box=np.zeros((n, 4), dtype=np.int32),
                   has_box=np.zeros(n, dtype=bool), detections=[None] * n, embedding=[None] * n)


def staged_rows(batch: dict[str, np.ndarray], decided: Decisions, *, scan_id: str, model_name: str,
                model_version: str, scanned_at: dt.datetime | None = None) -> pa.Table:
    """A decoded batch (`lxn.scan.fetch.fetch_and_decode`: the listing's columns, status, errors,
    size) and its decisions -> rows in STAGED_SCHEMA. A row whose status is not "ok" has null
    figures, whatever `decided` holds for it."""
    n, k = len(batch["uri"]), decided.top_brands.shape[1]
    missing = np.asarray(batch["status"] != "ok", dtype=bool)
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    scanned_at = scanned_at or dt.datetime.now(dt.timezone.utc)
    columns: dict[str, Any] = {
        "row_id": pa.array(batch["row_id"], pa.int64()),
        "key_hash": pa.array(batch["key_hash"], pa.uint64()),
        "scan_id": pa.array([scan_id] * n, pa.string()),
        "uri": pa.array(batch["uri"].tolist(), pa.string()),
        "etag": pa.array(nullable_strings(batch["etag"]), pa.string()),
        "size": pa.array(batch["size"], pa.int64(), mask=np.asarray(batch["size"]) < 0),
        "last_modified": pa.array(batch["last_modified"]).cast(_UTC_US),
        "width": pa.array(batch["width"], pa.int32(), mask=missing),
        "height": pa.array(batch["height"], pa.int32(), mask=missing),
        "status": pa.array(batch["status"].tolist(), pa.string()),
        "error_kind": pa.array(nullable_strings(batch["error_kind"]), pa.string()),
        "error": pa.array(nullable_strings(batch["error"]), pa.string()),
        "brand": pa.array(np.where(missing, None, decided.brand).tolist(), pa.string()),
        "brand_source": pa.array(np.where(missing, None, decided.brand_source).tolist(), pa.string()),
        "confidence": pa.array(decided.confidence, pa.float32(), mask=missing),
        "top_brands": pa.ListArray.from_arrays(offsets, pa.array(decided.top_brands.reshape(-1), pa.string()),
                                               mask=pa.array(missing)),
        "top_probs": pa.ListArray.from_arrays(offsets, pa.array(decided.top_probs.reshape(-1), pa.float32()),
                                              mask=pa.array(missing)),
        "detections": pa.array([None if m else d for m, d in zip(missing, decided.detections)],
                               pa.list_(DETECTION_TYPE)),
    }
    no_box = missing | ~decided.has_box
    for j, name in enumerate(("box_x0", "box_y0", "box_x1", "box_y1")):
        columns[name] = pa.array(decided.box[:, j], pa.int32(), mask=no_box)
    columns["embedding"] = pa.array([None if m else e for m, e in zip(missing, decided.embedding)], pa.binary())
    columns["model_name"] = pa.array([model_name] * n, pa.string())
    columns["model_version"] = pa.array([model_version] * n, pa.string())
    columns["scanned_at"] = pa.array([scanned_at] * n, _UTC_US)
    return pa.table(columns, schema=STAGED_SCHEMA)
