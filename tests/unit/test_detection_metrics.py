"""Detection metrics (lxn.evaluation.detection) on hand-made cases whose answers are worked out
by hand with COCO's rules: 101-point interpolated precision, IoU thresholds 0.50:0.05:0.95."""

from __future__ import annotations

import math

import pytest

from lxn.evaluation.detection import detection_metrics, recall_precision_at, threshold_for_detection_precision

A, B = "adidas", "nike"


def _box(x0, y0, x1, y1, label=A, score=None):
    return {"label": label, "box": [x0, y0, x1, y1], **({"score": score} if score is not None else {})}


def test_one_mark_found_at_iou_062_counts_at_three_of_ten_thresholds():
    truth = {"a.jpg": [_box(0, 0, 100, 100)]}
    # a 100 x 62 box inside the mark: IoU 0.62, a match at 0.50, 0.55 and 0.60 only
    predictions = {"a.jpg": [_box(0, 0, 100, 62, score=0.9)]}
    metrics = detection_metrics(truth, predictions, [A, B])
    assert metrics["map_50"] == pytest.approx(1.0)
    assert metrics["map"] == pytest.approx(0.3)
    assert metrics["per_class_ap50"] == {A: pytest.approx(1.0), B: None}  # no nike mark: no AP, not in the mean


def test_a_confident_false_positive_costs_what_the_interpolated_curve_says():
    truth = {"a.jpg": [_box(0, 0, 50, 50)], "b.jpg": [_box(10, 10, 60, 60)], "c.jpg": []}
    predictions = {
        "c.jpg": [_box(0, 0, 40, 40, score=0.95)],   # on an image without marks: false positive first
        "a.jpg": [_box(0, 0, 50, 50, score=0.8)],
        "b.jpg": [_box(10, 10, 60, 60, score=0.7)],
    }
    # ranked FP, TP, TP: precision 0, 1/2, 2/3 at recall 0, 1/2, 1; interpolated (max to the
    # right) 2/3 at every recall point 0..1, so AP = 2/3 at every IoU threshold
    metrics = detection_metrics(truth, predictions, [A])
    assert metrics["map_50"] == pytest.approx(2 / 3) and metrics["map"] == pytest.approx(2 / 3)
    at = recall_precision_at(truth, predictions, 0.75)
    assert (at["recall"], at["precision"]) == (0.5, 0.5)  # the FP and a's TP pass 0.75
    assert detection_metrics(truth, predictions, [A], threshold=0.75)["at_threshold"]["detections"] == 2


def test_the_right_box_with_the_wrong_brand_is_a_miss_and_a_false_positive():
    truth = {"a.jpg": [_box(0, 0, 50, 50, A), _box(60, 60, 100, 100, B)]}
    predictions = {"a.jpg": [_box(0, 0, 50, 50, B, score=0.9), _box(60, 60, 100, 100, B, score=0.8)]}
    metrics = detection_metrics(truth, predictions, [A, B])
    # adidas: its mark never found -> AP 0; nike: FP (0.9) then TP -> 1/2 everywhere -> AP 0.5
    assert metrics["per_class_ap50"] == {A: pytest.approx(0.0), B: pytest.approx(0.5)}
    assert metrics["map_50"] == pytest.approx(0.25)
    assert recall_precision_at(truth, predictions, 0.0) == {"recall": 0.5, "precision": 0.5, "marks": 2,
                                                             "detections": 2}


def test_a_mark_is_matched_once_and_duplicates_are_false_positives():
    truth = {"a.jpg": [_box(0, 0, 50, 50)]}
    predictions = {"a.jpg": [_box(0, 0, 50, 50, score=0.9), _box(1, 1, 50, 50, score=0.8)]}
    at = recall_precision_at(truth, predictions, 0.5)
    assert (at["recall"], at["precision"]) == (1.0, 0.5)
    assert detection_metrics(truth, predictions, [A])["map_50"] == pytest.approx(1.0)  # the duplicate ranks after


def test_no_detections_score_zero_and_bad_input_is_refused():
    truth = {"a.jpg": [_box(0, 0, 50, 50)]}
    metrics = detection_metrics(truth, {}, [A], threshold=0.5)
    assert metrics["map_50"] == 0.0 and metrics["per_class_ap50"] == {A: 0.0}
    assert metrics["at_threshold"]["recall"] == 0.0 and math.isnan(metrics["at_threshold"]["precision"])
    with pytest.raises(ValueError, match="not among the 1 classes"):
        detection_metrics(truth, {"a.jpg": [_box(0, 0, 5, 5, B, score=0.5)]}, [A])
    with pytest.raises(ValueError, match="have no truth"):
        detection_metrics(truth, {"z.jpg": []}, [A])


def test_the_threshold_is_the_lowest_score_whose_boxes_reach_the_precision():
    truth = {"a.jpg": [_box(0, 0, 50, 50)], "b.jpg": [_box(0, 0, 50, 50)], "c.jpg": [], "d.jpg": [_box(0, 0, 50, 50)]}
    predictions = {
        "a.jpg": [_box(0, 0, 50, 50, score=0.9), _box(0, 0, 50, 50, score=0.5)],  # the second: a duplicate, wrong
        "b.jpg": [_box(0, 0, 50, 50, score=0.8)],
        "c.jpg": [_box(0, 0, 40, 40, score=0.7)],                                  # no mark there: wrong
        "d.jpg": [_box(0, 0, 50, 50, score=0.6)],
    }
    # ranked 0.9 T, 0.8 T, 0.7 F, 0.6 T, 0.5 F: precision 1, 1, 2/3, 3/4, 3/5
    assert threshold_for_detection_precision(truth, predictions, 1.0) == {"threshold": 0.8, "precision": 1.0,
                                                                          "recall": pytest.approx(2 / 3)}
    assert threshold_for_detection_precision(truth, predictions, 0.75) == {"threshold": 0.6, "precision": 0.75,
                                                                           "recall": 1.0}
    assert threshold_for_detection_precision(truth, predictions, 0.6)["threshold"] == 0.5
    # what it chose is what recall_precision_at measures there
    at = recall_precision_at(truth, predictions, 0.6)
    assert (at["precision"], at["recall"]) == (0.75, 1.0)
    # equal scores are kept or dropped together
    tied = {"a.jpg": [_box(0, 0, 50, 50, score=0.9)], "c.jpg": [_box(0, 0, 40, 40, score=0.9)]}
    assert threshold_for_detection_precision({"a.jpg": truth["a.jpg"], "c.jpg": []}, tied, 0.6) is None
    assert threshold_for_detection_precision(truth, {}, 0.5) is None
    with pytest.raises(ValueError, match="within"):
        threshold_for_detection_precision(truth, predictions, 0.0)
