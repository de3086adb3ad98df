"""The rows of a night's reports a person should see: the surest hits of each brand, the doubtful
ones near the threshold, unknown marks, new-brand (prototype) hits and examples of each error.

Reports are read a record batch at a time and every list is kept to its bound while reading, so
a night of millions of rows costs memory for one batch and a few hundred picked rows.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lxn import storage
from lxn.data.sample import NO_LOGO

__all__ = ["Hit", "Picks", "Bounds", "pick_reports", "by_kind", "REPORT_COLUMNS"]

REPORT_COLUMNS = ["scan_id", "uri", "status", "error_kind", "error", "brand", "brand_source", "confidence",
                  "top_brands", "detections", "box_x0", "box_y0", "box_x1", "box_y1", "width", "height"]
_READ_BATCH = 65_536


@dataclasses.dataclass(frozen=True)
class Bounds:
    """How many rows each list keeps."""

    per_brand: int = 4       # surest hits shown for each brand
    queue: int = 16          # doubtful rows, nearest the threshold first
    unknown: int = 8
    prototype: int = 8
    error_examples: int = 3  # per error kind


@dataclasses.dataclass
class Hit:
    """One picked image: what the report says of it and the marks to outline."""

    scan_id: str
    uri: str
    brand: str | None        # the report's brand, or for a row just below the threshold its best candidate
    source: str | None       # brand_source
    confidence: float
    width: int
    height: int
    marks: list[dict[str, Any]]  # boxes in original pixels: brand, confidence, x0, y0, x1, y1
    margin: float = 0.0      # confidence minus the threshold of the scan that wrote the row
    note: str = ""           # why it is in the queue: "just above" / "just below" the threshold

    @classmethod
    def from_row(cls, row: dict[str, Any], threshold: float) -> "Hit":
        brand = row["brand"] or next((b for b in row["top_brands"] or () if b != NO_LOGO), None)
        confidence = float(row["confidence"] or 0.0)
        marks = list(row["detections"] or [])
        if not marks and brand and row["box_x0"] is not None:  # a tile or whole-image box of the brand
            marks = [{"brand": brand, "confidence": confidence,
                      **{k: row[f"box_{k}"] for k in ("x0", "y0", "x1", "y1")}}]
        return cls(row["scan_id"], row["uri"], brand, row["brand_source"], confidence,
                   int(row["width"] or 0), int(row["height"] or 0), marks, confidence - threshold)


@dataclasses.dataclass
class Picks:
    """The picked rows of one or more reports; `add` a batch at a time."""

    threshold: float
    band: float = 0.15
    bounds: Bounds = dataclasses.field(default_factory=Bounds)
    top: dict[str, list[Hit]] = dataclasses.field(default_factory=dict)
    queue: list[Hit] = dataclasses.field(default_factory=list)
    unknown: list[Hit] = dataclasses.field(default_factory=list)
    prototype: list[Hit] = dataclasses.field(default_factory=list)
    errors: dict[str, list[dict[str, str]]] = dataclasses.field(default_factory=dict)

    def add(self, batch: pa.RecordBatch | pa.Table, threshold: float | None = None) -> None:
        """Pick from a batch of report rows written with `threshold` (default: the picks' own)."""
        threshold = self.threshold if threshold is None else threshold
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        ok = table.filter(pc.equal(table["status"], "ok"))
        conf = ok["confidence"].to_numpy(zero_copy_only=False).astype(np.float64)
        conf = np.nan_to_num(conf, nan=0.0)
        source = np.asarray(ok["brand_source"].to_pylist(), dtype=object)
        brand = np.asarray(ok["brand"].to_pylist(), dtype=object)
        named = (brand != None) & ((source == "classifier") | (source == "detector"))  # noqa: E711

        for name in set(brand[named].tolist()):
            rows = np.flatnonzero(named & (brand == name))
            best = _hits(ok, _best(rows, conf, self.bounds.per_brand), threshold)
            self.top[name] = _keep(self.top.get(name, []), best, self.bounds.per_brand)

        # Doubtful: a brand's row, or a row whose best guess is a brand the threshold turned down,
        # within `band` of the threshold (a model sure of "no logo" is not in doubt).
        top1 = np.asarray([t[0] if t else None for t in ok["top_brands"].to_pylist()], dtype=object)
        turned_down = (brand == None) & (source == None) & (top1 != None) & (top1 != NO_LOGO)  # noqa: E711
        distance = np.abs(conf - threshold)
        near = np.flatnonzero((distance < self.band) & (turned_down | named))
        near = near[np.argsort(distance[near], kind="stable")[: self.bounds.queue]]
        queued = [dataclasses.replace(h, note="just above" if h.margin >= 0 else "just below")
                  for h in _hits(ok, near, threshold)]
        self.queue = sorted(self.queue + queued, key=lambda h: abs(h.margin))[: self.bounds.queue]

        for kind, bound in (("unknown", self.bounds.unknown), ("prototype", self.bounds.prototype)):
            rows = _best(np.flatnonzero(source == kind), conf, bound)
            setattr(self, kind, _keep(getattr(self, kind), _hits(ok, rows, threshold), bound))

        failed = table.filter(pc.equal(table["status"], "error")).select(["uri", "error_kind", "error"])
        for row in failed.to_pylist():
            examples = self.errors.setdefault(row["error_kind"] or "unknown", [])
            if len(examples) < self.bounds.error_examples:
                examples.append({"uri": row["uri"], "error": row["error"] or ""})


def _best(rows: np.ndarray, conf: np.ndarray, k: int) -> np.ndarray:
    """The `k` of `rows` with the highest confidence, highest first."""
    return rows[np.argsort(-conf[rows], kind="stable")[:k]]


def _hits(table: pa.Table, rows: np.ndarray, threshold: float) -> list[Hit]:
    if not len(rows):
        return []
    return [Hit.from_row(row, threshold) for row in table.take(pa.array(rows, pa.int64())).to_pylist()]


def _keep(current: list[Hit], new: list[Hit], k: int) -> list[Hit]:
    return sorted(current + new, key=lambda h: -h.confidence)[:k]


def pick_reports(reports: Iterable[tuple[str, float]], *, band: float = 0.15, bounds: Bounds | None = None) -> Picks:
    """The picks of committed report files, given as (URI, the threshold its scan used)."""
    reports = list(reports)
    picks = Picks(reports[0][1] if reports else 0.5, band, bounds or Bounds())
    for uri, threshold in reports:
        filesystem, path = storage.arrow_filesystem(uri)
        with filesystem.open_input_file(path) as source:
            for batch in pq.ParquetFile(source).iter_batches(batch_size=_READ_BATCH, columns=REPORT_COLUMNS):
                picks.add(batch, threshold)
    return picks


def by_kind(picks: Picks) -> dict[str, int]:
    """How many rows each list holds (for logs and tests)."""
    counts: dict[str, int] = defaultdict(int)
    counts["top"] = sum(len(v) for v in picks.top.values())
    for name in ("queue", "unknown", "prototype"):
        counts[name] = len(getattr(picks, name))
    return dict(counts)
