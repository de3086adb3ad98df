"""A detector's scan rows (lxn.scan.marks): candidates in model pixels -> marks in the image's
pixels, the best mark as the image's brand, the per-brand best scores as top-k."""

from __future__ import annotations

import numpy as np
import pytest

from lxn.scan.marks import decide_marks


def _candidates(*rows):
    return np.array(rows, dtype=np.float32).reshape(-1, 6)


def test_boxes_go_back_to_the_images_pixels_and_nms_keeps_one_box_a_mark():
    # model input 128 x 128, image 640 x 256: x scales by 5, y by 2
    candidates = _candidates(
        [10.25, 20, 30, 40.5, 0.9, 1],     # brand 1: x0 51.25 -> 51 (outwards), y1 81
        [11, 21, 31, 41, 0.8, 1],          # the same mark again: suppressed
        [11, 21, 31, 41, 0.7, 0],          # another brand on the same spot: kept (class-wise NMS)
        [100, 100, 128, 128, 0.3, 2],      # below the threshold
    )
    decided = decide_marks(candidates, width=640, height=256, image_size=128, threshold=0.5, num_classes=3, k=3)
    assert decided["marks"] == [(1, pytest.approx(0.9), (51, 40, 150, 81)), (0, pytest.approx(0.7), (55, 42, 155, 82))]
    assert decided["brand"] == 1 and decided["confidence"] == pytest.approx(0.9)
    assert decided["top_i"].tolist() == [1, 0, 2]
    assert decided["top_p"].tolist() == pytest.approx([0.9, 0.7, 0.3])


def test_a_score_at_the_threshold_is_a_mark_and_nothing_above_it_is_no_brand():
    at = decide_marks(_candidates([0, 0, 64, 64, 0.5, 0]), width=100, height=100, image_size=64, threshold=0.5,
                      num_classes=2, k=2)
    assert at["brand"] == 0 and at["marks"][0][2] == (0, 0, 100, 100)  # clipped to the image
    below = decide_marks(_candidates([0, 0, 64, 64, 0.49, 0]), width=100, height=100, image_size=64, threshold=0.5,
                         num_classes=2, k=1)
    assert below["brand"] == -1 and below["marks"] == [] and below["confidence"] == pytest.approx(0.49)
    assert below["top_i"].tolist() == [0]
