"""The predictor's decision rule: top-1, the no-logo threshold, the no-logo class, top-k."""

import numpy as np
import pytest

from lxn.scan.predictor import decide, softmax


def test_decision_threshold_no_logo_and_top_k():
    classes_probs = np.array([
        [0.70, 0.20, 0.10],  # brand 0
        [0.40, 0.35, 0.25],  # below the threshold of 0.5: null
        [0.10, 0.10, 0.80],  # class 2 is no-logo: null
        [0.30, 0.60, 0.10],  # brand 1
    ])
    brand, confidence, top_i, top_p = decide(classes_probs, no_logo=2, threshold=0.5, k=2)
    assert brand.tolist() == [0, -1, -1, 1]
    assert confidence.tolist() == pytest.approx([0.7, 0.4, 0.8, 0.6])
    assert top_i.tolist() == [[0, 1], [0, 1], [2, 0], [1, 0]]
    assert top_p[:, 0].tolist() == pytest.approx(confidence.tolist())
    assert decide(classes_probs, no_logo=None, threshold=0.0, k=10)[0].tolist() == [0, 0, 2, 1]
    assert decide(classes_probs, no_logo=None, threshold=0.0, k=10)[2].shape == (4, 3)
    p = softmax(np.array([[1000.0, 1000.0, -1000.0]], dtype=np.float32))
    assert p.tolist() == [[0.5, 0.5, 0.0]]
