"""Finished scans built by hand (listing, staged result parts, intent), for report and fault tests."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa

from lxn.scan.listing import LISTING_SCHEMA, Entry, write_listing
from lxn.scan.report import STAGED_SCHEMA, Layout, StagedResults, finish_commit, list_files, read_table, write_intent

__all__ = ["NOW", "OUTCOMES", "staged", "prepare", "Row", "commit_rows"]

NOW = dt.datetime(2025, 6, 1, 2, 0, tzinfo=dt.timezone.utc)
# (status, error_kind, brand) per listed object
OUTCOMES = [("ok", None, "acme"), ("ok", None, None), ("error", "truncated", None), ("error", "missing", None),
            ("ok", None, "acme"), ("ok", None, "globex"), ("error", "not_an_image", None)]


def staged(listing: pa.Table, scan_id: str) -> pa.Table:
    """Result rows for listing rows, as the predictor would return them."""
    n = listing.num_rows
    outcome = [OUTCOMES[i % len(OUTCOMES)] for i in listing["row_id"].to_pylist()]
    ok = [o[0] == "ok" for o in outcome]
    return pa.table({
        "row_id": listing["row_id"], "key_hash": listing["key_hash"], "scan_id": [scan_id] * n,
        "uri": listing["uri"], "etag": listing["etag"], "size": listing["size"],
        "last_modified": listing["last_modified"],
        "width": [64 if k else None for k in ok], "height": [48 if k else None for k in ok],
        "status": [o[0] for o in outcome], "error_kind": [o[1] for o in outcome],
        "error": [None if k else "reason" for k in ok], "brand": [o[2] for o in outcome],
        "brand_source": [("classifier" if o[2] else None) for o in outcome],
        # the first outcome's picture also shows a small globex: two appearances, one image brand
        "detections": [([_detection(o[2])] + ([_detection("globex")] if i % len(OUTCOMES) == 0 else [])
                        if o[2] else []) if k else None
                       for i, o, k in zip(listing["row_id"].to_pylist(), outcome, ok)],
        "embedding": [None] * n,
        "confidence": [0.9 if k else None for k in ok],
        "top_brands": [["acme", "globex"] if k else None for k in ok],
        "top_probs": [[0.9, 0.1] if k else None for k in ok],
        "box_x0": [None] * n, "box_y0": [None] * n, "box_x1": [None] * n, "box_y1": [None] * n,
        "model_name": ["logos"] * n, "model_version": ["3"] * n, "scanned_at": [NOW] * n,
    }, schema=STAGED_SCHEMA)


def _detection(brand: str) -> dict:
    return {"brand": brand, "confidence": 0.9, "source": "classifier", "x0": 0, "y0": 0, "x1": 64, "y1": 48}


def prepare(out, scan_id, n=14, date="2025-06-01", checkpoint_rows=4):
    """A scan with `n` listed objects whose results are all staged; returns the layout and listing."""
    layout = Layout(str(out))
    entries = [Entry(f"s3://bucket/img/{i:03d}.jpg", f"etag{i}", 100 + i, NOW) for i in range(n)]
    write_listing(entries, layout.listing(scan_id), covered=None, chunk_rows=5)
    listing = pa.concat_tables(read_table(uri) for uri in list_files(layout.listing(scan_id)))
    writer = StagedResults(layout.results(scan_id), checkpoint_rows=checkpoint_rows, checkpoint_seconds=3600)
    for start in range(0, n, 3):
        writer.add(staged(listing.slice(start, 3), scan_id))
    writer.flush()
    write_intent(layout, scan_id, {"scan_id": scan_id, "date": date, "counts": {"listed": n}})
    return layout, listing


@dataclasses.dataclass
class Row:
    """One result row of a hand-built scan: an ok image (brand None: no brand) or an error."""

    uri: str
    brand: str | None = None
    confidence: float = 0.9
    source: str | None = None          # brand_source; "classifier" when brand is given and this is None
    detections: list | None = None     # DETECTION_TYPE dicts; default: one whole-image box of `brand`
    top_brands: list | None = None
    width: int = 64
    height: int = 48
    error_kind: str | None = None      # set: an error row


def commit_rows(out, scan_id: str, date: str, rows: list[Row], *, threshold: float = 0.5, model_version: str = "3",
                chunk_rows: int = 5000) -> dict:
    """Stage `rows` as a finished scan dated `date` and commit it (finish_commit); returns its manifest."""
    layout = Layout(str(out))
    entries = [Entry(r.uri, f"etag{i}", 100 + i, NOW) for i, r in enumerate(rows)]
    write_listing(entries, layout.listing(scan_id), covered=None, chunk_rows=chunk_rows)
    listing = pa.concat_tables([LISTING_SCHEMA.empty_table(),
                                *(read_table(uri) for uri in list_files(layout.listing(scan_id)))])
    by_uri = {r.uri: r for r in rows}
    picked = [by_uri[u] for u in listing["uri"].to_pylist()]
    ok = [r.error_kind is None for r in picked]
    n = len(picked)

    def detections(r: Row):
        if r.error_kind is not None:
            return None
        if r.detections is not None:
            return r.detections
        source = r.source or "classifier"
        return [] if r.brand is None else [{"brand": r.brand, "confidence": r.confidence, "source": source,
                                            "x0": 0, "y0": 0, "x1": r.width, "y1": r.height}]

    table = pa.table({
        "row_id": listing["row_id"], "key_hash": listing["key_hash"], "scan_id": [scan_id] * n,
        "uri": listing["uri"], "etag": listing["etag"], "size": listing["size"],
        "last_modified": listing["last_modified"],
        "width": [r.width if k else None for r, k in zip(picked, ok)],
        "height": [r.height if k else None for r, k in zip(picked, ok)],
        "status": ["ok" if k else "error" for k in ok], "error_kind": [r.error_kind for r in picked],
        "error": [None if k else f"{r.error_kind}: planted" for r, k in zip(picked, ok)],
        "brand": [r.brand if k else None for r, k in zip(picked, ok)],
        "brand_source": [(r.source or ("classifier" if r.brand else None)) if k else None for r, k in zip(picked, ok)],
        "confidence": [r.confidence if k else None for r, k in zip(picked, ok)],
        "top_brands": [(r.top_brands or ([r.brand] if r.brand else ["no-logo"])) if k else None
                       for r, k in zip(picked, ok)],
        "top_probs": [[r.confidence] * len(r.top_brands or [0]) if k else None for r, k in zip(picked, ok)],
        "detections": [detections(r) for r in picked],
        "box_x0": [None] * n, "box_y0": [None] * n, "box_x1": [None] * n, "box_y1": [None] * n,
        "embedding": [None] * n,
        "model_name": ["logos"] * n, "model_version": [model_version] * n, "scanned_at": [NOW] * n,
    }, schema=STAGED_SCHEMA)
    writer = StagedResults(layout.results(scan_id), checkpoint_rows=chunk_rows, checkpoint_seconds=3600)
    for start in range(0, n, chunk_rows):
        writer.add(table.slice(start, chunk_rows))
    writer.flush()
    write_intent(layout, scan_id, {"scan_id": scan_id, "date": date, "counts": {"listed": n},
                                   "model": {"name": "logos", "version": model_version, "uri": f"models:/logos/{model_version}"},
                                   "threshold": {"value": threshold, "source": "test"}})
    return finish_commit(layout, scan_id)
