"""The detection benchmark's scoring: recall per mark, small-mark recall, precision per
detection, box overlap; the whole-image scan's one detection is its brand."""

import pytest

from lxn.benchmarks.detection import markdown_table, score

TRUTH = {"a": [{"brand": "acme", "box": [0, 0, 50, 50], "small": True},
               {"brand": "globex", "box": [100, 100, 300, 300], "small": False}],
         "b": [{"brand": "initech", "box": [10, 10, 60, 60], "small": True},
               {"brand": "acme", "box": [200, 0, 400, 200], "small": False}]}


def _d(brand, box):
    return {"brand": brand, "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3]}


def test_detections_are_scored_per_mark_and_per_detection():
    rows = {"a": {"brand": "globex", "detections": [_d("globex", (100, 100, 300, 300)), _d("acme", (0, 0, 100, 100)),
                                                     _d("hooli", (0, 0, 10, 10))]},
            "b": {"brand": "acme", "detections": [_d("acme", (400, 400, 500, 500))]}}
    s = score(rows, TRUTH, whole_image=False)
    assert s["marks"] == 4 and s["recall"] == 0.75 and s["small_recall"] == 0.5
    assert s["precision"] == 0.75 and s["detections"] == 4  # hooli is not in scene a
    assert s["box_overlaps"] == pytest.approx(2 / 3)       # b's acme box misses its mark
    assert s["mean_iou"] == pytest.approx((1.0 + 0.25 + 0.0) / 3)
    assert s["macro_brand_recall"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)  # acme 2/2, globex 1/1, initech 0/1


def test_the_whole_image_scan_detects_its_brand_only():
    rows = {"a": {"brand": "globex", "detections": None}, "b": {"brand": None, "detections": None}}
    s = score(rows, TRUTH, whole_image=True)
    assert s["recall"] == 0.25 and s["small_recall"] == 0.0 and s["precision"] == 1.0
    assert s["box_overlaps"] is None and s["mean_iou"] is None
    table = markdown_table({"results": [{"mode": "whole image", "model_calls_per_image": 1, "images_per_s": 10.0,
                                         "speed_vs_whole_image": 1.0, **s}]})
    assert "| whole image | 1 | 25.0% | 0.0% |" in table
