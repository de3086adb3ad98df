"""The statistics behind threshold selection and promotion, against hand-worked cases and
scipy's reference implementations."""

from __future__ import annotations

import numpy as np
import pytest

from lxn.evidence import calibration, hits_at, mcnemar_exact, precision_coverage, threshold_for_precision
from lxn.scan.predictor import decide

NO_LOGO = 2  # classes: 0 = acme, 1 = globex, 2 = no-logo


def _probs(rows):
    return np.array(rows, dtype=np.float64)


# labels, and each image's probabilities; the hits by descending confidence are:
# 0.95 correct, 0.9 correct, 0.8 wrong, 0.7 correct, 0.6 wrong (the no-logo image), 0.55 correct
LABELS = np.array([0, 1, 0, 1, 2, 0, 2])
PROBS = _probs([
    [0.95, 0.03, 0.02],
    [0.05, 0.90, 0.05],
    [0.10, 0.80, 0.10],   # acme called globex
    [0.20, 0.70, 0.10],
    [0.60, 0.10, 0.30],   # a no-logo scene called acme
    [0.55, 0.40, 0.05],
    [0.10, 0.10, 0.80],   # no-logo, correctly left alone
])


def test_hits_at_a_threshold_are_what_the_scan_reports():
    at = hits_at(LABELS, PROBS, 0.75, NO_LOGO)
    assert at == {"threshold": 0.75, "hits": 3, "precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 5),
                  "no_logo_unbranded": 1.0}
    # the scan's own decision rule brands exactly the same images
    brand, *_ = decide(PROBS, no_logo=NO_LOGO, threshold=0.75, k=1)
    assert int((brand >= 0).sum()) == at["hits"]
    assert hits_at(LABELS, PROBS, 0.5, NO_LOGO)["no_logo_unbranded"] == 0.5


def test_the_precision_coverage_curve_by_hand():
    curve = precision_coverage(LABELS, PROBS, NO_LOGO)
    np.testing.assert_allclose(curve["threshold"], [0.95, 0.9, 0.8, 0.7, 0.6, 0.55])
    np.testing.assert_allclose(curve["precision"], [1, 1, 2 / 3, 3 / 4, 3 / 5, 4 / 6])
    np.testing.assert_allclose(curve["recall"], [1 / 5, 2 / 5, 2 / 5, 3 / 5, 3 / 5, 4 / 5])
    np.testing.assert_allclose(curve["coverage"], np.arange(1, 7) / 7)


def test_tied_confidences_enter_together():
    labels = np.array([0, 1, 0])
    probs = _probs([[0.9, 0.1], [0.9, 0.1], [0.8, 0.2]])
    curve = precision_coverage(labels, probs, None)
    np.testing.assert_allclose(curve["threshold"], [0.9, 0.8])
    np.testing.assert_allclose(curve["precision"], [0.5, 2 / 3])


def test_the_lowest_threshold_that_reaches_the_target_precision():
    # precision is not monotone: 0.7 reaches 0.75 again after 0.8 fell below it
    assert threshold_for_precision(LABELS, PROBS, NO_LOGO, 0.75)["threshold"] == 0.7
    assert threshold_for_precision(LABELS, PROBS, NO_LOGO, 1.0)["threshold"] == 0.9
    assert threshold_for_precision(LABELS, PROBS, NO_LOGO, 0.6)["threshold"] == 0.55
    wrong = _probs([[0.1, 0.9, 0.0]])
    assert threshold_for_precision(np.array([0]), wrong, NO_LOGO, 0.5) is None


def test_expected_calibration_error_by_hand():
    labels = np.array([0, 0, 1, 1])
    probs = _probs([[0.95, 0.05], [0.65, 0.35], [0.62, 0.38], [0.1, 0.9]])
    result = calibration(labels, probs, bins=10)
    # bin [0.6, 0.7): confidences 0.65, 0.62, accuracy 1/2; bin [0.9, 1.0]: 0.95 and 0.9, accuracy 1
    assert [b["count"] for b in result["bins"]] == [2, 2]
    expected = 0.5 * abs(0.635 - 0.5) + 0.5 * abs(0.925 - 1.0)
    assert result["ece"] == pytest.approx(expected)
    perfect = calibration(np.array([0, 1]), _probs([[1.0, 0.0], [0.0, 1.0]]))
    assert perfect["ece"] == 0 and perfect["bins"][-1]["high"] == 1.0


@pytest.mark.parametrize("a_only,b_only,same", [(0, 0, 50), (3, 0, 10), (10, 2, 40), (40, 60, 5), (700, 620, 10)])
def test_mcnemar_exact_matches_scipys_binomial_test(a_only, b_only, same):
    from scipy.stats import binomtest

    a = np.array([True] * a_only + [False] * b_only + [True] * same + [False] * same)
    b = np.array([False] * a_only + [True] * b_only + [True] * same + [False] * same)
    result = mcnemar_exact(a, b)
    assert (result["a_only"], result["b_only"]) == (a_only, b_only)
    expected = 1.0 if a_only + b_only == 0 else binomtest(a_only, a_only + b_only, 0.5).pvalue
    assert result["p_value"] == pytest.approx(expected, rel=1e-9)


def test_mcnemar_refuses_models_scored_on_different_images():
    with pytest.raises(ValueError, match="same images"):
        mcnemar_exact(np.ones(3, bool), np.ones(4, bool))


def test_a_model_without_a_no_logo_class_is_measured_on_images_without_a_logo():
    """WebLogo-2M has no no-logo class: such a model's no-logo images are labelled NO_LOGO_IMAGE,
    every hit on one is wrong, and one is right when no brand reaches the threshold."""
    from lxn.evaluation.labelled import label_indices
    from lxn.evaluation.report import compare, figures
    from lxn.evaluation.scoring import ModelScores
    from lxn.evidence import NO_LOGO_IMAGE
    from lxn.tracking import ModelRef

    classes = ["acme", "globex"]
    labels = np.array(label_indices(["acme", "globex", None, None], classes))
    assert labels.tolist() == [0, 1, NO_LOGO_IMAGE, NO_LOGO_IMAGE]
    probs = _probs([[0.9, 0.1], [0.3, 0.7], [0.8, 0.2], [0.55, 0.45]])
    # at 0.75: acme 0.9 (right) and the first blank image's 0.8 (wrong) are hits
    assert hits_at(labels, probs, 0.75, None) == {"threshold": 0.75, "hits": 2, "precision": 0.5, "recall": 0.5,
                                                  "no_logo_unbranded": 0.5}
    # by confidence: 0.9 right, 0.8 wrong, 0.7 right, 0.55 wrong
    curve = precision_coverage(labels, probs, None)
    np.testing.assert_allclose(curve["precision"], [1, 1 / 2, 2 / 3, 2 / 4])
    np.testing.assert_allclose(curve["recall"], [1 / 2, 1 / 2, 1, 1])
    assert threshold_for_precision(labels, probs, None, 0.6)["threshold"] == 0.7

    scores = ModelScores(ref=ModelRef("m", "1"), class_names=classes, preset={}, labels=labels, probs=probs, no_logo=None)
    assert scores.correct_at(0.75).tolist() == [True, True, False, True]
    assert scores.correct_at(0.5).tolist() == [True, True, False, False]
    f = figures(scores, 0.75, "--threshold", 1.0)
    assert f["top1"] == 0.75 and f["threshold_for_target"]["threshold"] == 0.9
    assert f["per_class"]["no-logo"] == {"accuracy": 0.5, "support": 2}
    assert f["per_class"]["acme"] == {"accuracy": 1.0, "support": 1}
    assert compare(scores, scores, f, f)["mcnemar"] == {"wins": 0, "losses": 0, "p_value": 1.0}
