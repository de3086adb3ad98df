"""The report's rows as staged_rows builds them from a batch and the predictor's decisions."""

from __future__ import annotations

import datetime as dt

import numpy as np

from lxn.scan.schema import STAGED_SCHEMA, Decisions, staged_rows


def _batch(statuses: list[str]) -> dict[str, np.ndarray]:
    n = len(statuses)
    return {"row_id": np.arange(n), "key_hash": np.arange(n, dtype=np.uint64) + 7,
            "uri": np.array([f"s3://b/{i}.jpg" for i in range(n)], dtype=object),
            "etag": np.array(["e0", "", None][:n], dtype=object), "size": np.array([10, -1, 30][:n]),
            "last_modified": np.array([dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)] * n),
            "width": np.array([640, 0, 320][:n]), "height": np.array([480, 0, 240][:n]),
            "status": np.array(statuses, dtype=object),
            "error_kind": np.array([None if s == "ok" else "corrupt" for s in statuses], dtype=object),
            "error": np.array([None if s == "ok" else "bad bytes" for s in statuses], dtype=object)}


def test_decided_rows_carry_their_figures_and_error_rows_are_null_whatever_was_decided():
    decided = Decisions.empty(3, 2)
    for i in range(3):  # a decision for every row, the error row included: it must not leak
        decided.brand[i], decided.brand_source[i], decided.confidence[i] = "acme", "detector", 0.9
        decided.top_brands[i], decided.top_probs[i] = ["acme", "globex"], [0.9, 0.1]
        decided.box[i], decided.has_box[i] = [1, 2, 30, 40], True
        decided.detections[i] = [{"brand": "acme", "confidence": 0.9, "source": "detector",
                                  "x0": 1, "y0": 2, "x1": 30, "y1": 40}]
        decided.embedding[i] = b"\x00\x01"
    decided.has_box[2] = False
    table = staged_rows(_batch(["ok", "error", "ok"]), decided, scan_id="2026-12-01-ab", model_name="m",
                        model_version="3")
    assert table.schema == STAGED_SCHEMA
    ok, bad, boxless = table.to_pylist()
    assert (ok["brand"], ok["brand_source"], ok["top_brands"], ok["box_x1"], ok["etag"], ok["size"]) == \
        ("acme", "detector", ["acme", "globex"], 30, "e0", 10)
    assert ok["detections"][0]["y1"] == 40 and ok["embedding"] == b"\x00\x01" and ok["model_version"] == "3"
    figures = ("width", "brand", "brand_source", "confidence", "top_brands", "top_probs", "detections", "box_x0",
               "embedding")
    assert {name: bad[name] for name in figures} == dict.fromkeys(figures)
    assert (bad["status"], bad["error_kind"], bad["etag"], bad["size"]) == ("error", "corrupt", None, None)
    assert boxless["box_x0"] is None and boxless["brand"] == "acme"
