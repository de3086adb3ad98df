"""Metrics against scikit-learn, the reference implementation, on random and edge-case data."""

import numpy as np
import pytest
from sklearn import metrics as skm

from lxn.metrics import classification_report, confusion_pairs, roc_auc_ovr


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 400)
    scores = rng.random((400, 5))
    scores[np.arange(400), labels] += rng.random(400) * 1.2  # informative but imperfect
    scores[:10] = 0.5  # ties
    return labels, scores / scores.sum(1, keepdims=True)


def test_matches_scikit_learn(data):
    labels, scores = data
    names = list("abcde")
    report = classification_report(labels, scores, names)
    pred = scores.argmax(1)
    assert report["top1"] == pytest.approx(skm.accuracy_score(labels, pred))
    assert report["precision_macro"] == pytest.approx(skm.precision_score(labels, pred, average="macro"))
    assert report["recall_macro"] == pytest.approx(skm.recall_score(labels, pred, average="macro"))
    assert report["f1_macro"] == pytest.approx(skm.f1_score(labels, pred, average="macro"))
    assert report["auc_macro_ovr"] == pytest.approx(skm.roc_auc_score(labels, scores, multi_class="ovr", average="macro"))
    recalls = skm.recall_score(labels, pred, average=None)
    assert [report["per_class_accuracy"][n] for n in names] == pytest.approx(list(recalls))


def test_macro_average_leaves_out_classes_absent_from_labels_and_predictions():
    """Five classes, one ("e") never true and never predicted: macro P/R/F1 average over the
    four present classes, as scikit-learn's macro does, not over all five."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 200)
    scores = rng.random((200, 5))
    scores[:, 4] = -1.0                                         # "e" is never the argmax
    scores[np.arange(200), labels] += rng.random(200)
    pred = scores.argmax(1)
    assert 4 not in labels and 4 not in pred
    report = classification_report(labels, scores, list("abcde"))
    assert report["precision_macro"] == pytest.approx(skm.precision_score(labels, pred, average="macro"))
    assert report["recall_macro"] == pytest.approx(skm.recall_score(labels, pred, average="macro"))
    assert report["f1_macro"] == pytest.approx(skm.f1_score(labels, pred, average="macro"))
    # a class that is predicted but never true counts (with precision 0), as in scikit-learn
    pred_only = labels.copy()
    scores2 = np.eye(5)[pred_only]
    scores2[:7] = np.eye(5)[4]
    report2 = classification_report(labels, scores2, list("abcde"))
    assert report2["f1_macro"] == pytest.approx(skm.f1_score(labels, scores2.argmax(1), average="macro"))


def test_class_missing_from_labels_is_skipped_in_auc():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.2, 0.8, 0.0], [0.7, 0.3, 0.0]])
    auc, per_class = roc_auc_ovr(labels, scores)
    assert np.isnan(per_class[2])
    assert auc == pytest.approx(np.mean([0.75, 0.75]))
    report = classification_report(labels, scores, ["x", "y", "z"])
    assert report["per_class_accuracy"]["z"] is None


def test_confusion_pairs_most_frequent_first():
    matrix = np.array([[5, 3, 0], [1, 4, 0], [0, 7, 2]])
    pairs = confusion_pairs(matrix, ["coke", "pepsi", "rc"], top=2)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [("rc", "pepsi", 7), ("coke", "pepsi", 3)]
    assert pairs[0]["rate"] == pytest.approx(7 / 9)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="scores must be"):
        classification_report(np.array([0, 1]), np.zeros((2, 3)), ["a", "b"])
