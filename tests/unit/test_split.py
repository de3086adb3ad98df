"""Stratified, group-aware, seeded splits and their manifest reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lxn.data.split import SPLIT_NAMES, TEST, TRAIN, VAL, leakage_report, split_counts, stratified_group_split

FRACTIONS = (0.8, 0.1, 0.1)


def per_class_counts(labels: np.ndarray, splits: np.ndarray) -> dict[int, np.ndarray]:
    return {int(c): np.bincount(splits[labels == c], minlength=3) for c in np.unique(labels)}


def imbalanced_labels(seed: int = 0) -> np.ndarray:
    """Classes of 1 to 1,900 images, as in real logo sets, shuffled."""
    rng = np.random.default_rng(seed)
    sizes = np.concatenate([np.arange(1, 13), rng.integers(13, 1900, size=30)])
    return rng.permutation(np.repeat(np.arange(sizes.size), sizes))


def test_singletons_are_within_one_image_of_the_ideal_per_class():
    labels = imbalanced_labels()
    splits = stratified_group_split(labels, None, FRACTIONS, seed=0)
    assert splits.dtype == np.int8 and set(np.unique(splits)) <= {TRAIN, VAL, TEST}
    for c, counts in per_class_counts(labels, splits).items():
        ideal = counts.sum() * np.array(FRACTIONS)
        assert (np.abs(counts - ideal) < 1).all(), (c, counts, ideal)


def test_split_is_deterministic_for_a_seed_and_changes_with_it():
    labels = imbalanced_labels()
    a = stratified_group_split(labels, None, FRACTIONS, seed=7)
    np.testing.assert_array_equal(a, stratified_group_split(labels, None, FRACTIONS, seed=7))
    b = stratified_group_split(labels, None, FRACTIONS, seed=8)
    assert (a != b).mean() > 0.1
    assert np.bincount(a)[TRAIN] == np.bincount(b)[TRAIN]  # same quotas (val/test ties: seeded)


@pytest.mark.parametrize(
    "size, allowed",
    [
        (1, {(1, 0, 0)}),
        (2, {(1, 1, 0), (1, 0, 1)}),
        (3, {(2, 1, 0), (2, 0, 1)}),
        (5, {(4, 1, 0), (4, 0, 1)}),
        (6, {(4, 1, 1)}),
        (9, {(7, 1, 1)}),
        (10, {(8, 1, 1)}),
        (11, {(9, 1, 1)}),
    ],
)
def test_tiny_classes_follow_the_documented_rule(size, allowed):
    seen = {tuple(np.bincount(stratified_group_split(np.zeros(size, int), seed=s), minlength=3)) for s in range(12)}
    assert seen == allowed  # and, where there is a choice, both choices occur across seeds


def test_tiny_classes_serve_val_and_test_alike():
    labels = np.repeat(np.arange(400), 2)  # 400 classes of two images
    counts = np.bincount(stratified_group_split(labels, seed=1), minlength=3)
    assert counts[TRAIN] == 400 and 160 <= counts[VAL] <= 240 and counts[VAL] + counts[TEST] == 400


def test_groups_never_cross_splits_and_stay_within_one_group_of_ideal():
    rng = np.random.default_rng(3)
    labels = imbalanced_labels(3)
    # Duplicate groups of 1 to 6 members inside each class, ids scrambled.
    groups = np.empty(labels.size, dtype=np.int64)
    next_id = 0
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        cuts = np.cumsum(rng.integers(1, 7, size=members.size))
        for part in np.split(members, cuts[cuts < members.size]):
            groups[part] = next_id
            next_id += 1
    groups = rng.permutation(next_id)[groups] * 13 + 5
    splits = stratified_group_split(labels, groups, FRACTIONS, seed=0)
    report = leakage_report(groups, splits)
    assert report["crossing_groups"] == 0 and report["examples"] == []
    for c, counts in per_class_counts(labels, splits).items():
        in_class = groups[labels == c]
        largest = np.unique(in_class, return_counts=True)[1].max()
        ideal = counts.sum() * np.array(FRACTIONS)
        assert (np.abs(counts - ideal) <= largest).all(), (c, counts, ideal, largest)


def test_one_big_group_goes_whole_and_singletons_even_out():
    labels = np.zeros(40, dtype=int)
    groups = np.arange(40)
    groups[:12] = 100  # a 12-image group in a 40-image class (ideal 32 / 4 / 4)
    splits = stratified_group_split(labels, groups, FRACTIONS, seed=4)
    assert len(set(splits[:12].tolist())) == 1
    np.testing.assert_array_equal(np.bincount(splits, minlength=3), [32, 4, 4])


def test_mixed_label_group_is_kept_together():
    labels = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    groups = np.array([9, 9, 9, 1, 2, 3, 4, 5, 6, 7])  # group 9 holds two 0s and a 1
    for seed in range(5):
        splits = stratified_group_split(labels, groups, seed=seed)
        assert len(set(splits[:3].tolist())) == 1


def test_two_million_singletons_split_quickly_and_exactly():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 194, size=2_000_000)
    splits = stratified_group_split(labels, None, FRACTIONS, seed=0)  # ~1.5 s
    table = np.zeros((194, 3), dtype=np.int64)
    np.add.at(table, (labels, splits), 1)
    ideal = table.sum(axis=1, keepdims=True) * np.array(FRACTIONS)
    assert (np.abs(table - ideal) < 1).all()


def test_other_fractions_and_two_splits():
    labels = np.repeat(np.arange(3), 100)
    splits = stratified_group_split(labels, fractions=(0.7, 0.3), seed=0)
    np.testing.assert_array_equal(np.bincount(splits), [210, 90])


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"fractions": (0.8, 0.1)}, "sum to 1"),
        ({"fractions": (80, 10, 10)}, "sum to 1"),
        ({"fractions": (0.0, 0.5, 0.5)}, "train > 0"),
        ({"fractions": (1.0,)}, "at least two"),
        ({"groups": np.zeros(3)}, "one id per item"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error):
    with pytest.raises(ValueError, match=error):
        stratified_group_split(np.zeros(5, int), seed=0, **kwargs)


def test_leakage_report_finds_crossing_groups():
    groups = np.array([1, 1, 2, 2, 3, 3, 3])
    splits = np.array([0, 1, 2, 2, 0, 0, 2])
    report = leakage_report(groups, splits, max_examples=1)
    assert report["groups"] == 3 and report["crossing_groups"] == 2
    assert report["items_in_crossing_groups"] == 5
    assert report["examples"] == [{"group": 1, "splits": {"0": 1, "1": 1}}]
    json.dumps(report)


def test_split_counts_for_the_manifest():
    labels = np.array([0, 0, 0, 1, 1, 2])
    splits = np.array([0, 1, 2, 0, 0, 0], dtype=np.int8)
    counts = split_counts(labels, splits, class_names=["adidas", "bmw", "coca-cola"])
    assert counts["items"] == 6
    assert counts["total"] == {"train": 4, "val": 1, "test": 1}
    assert counts["per_class"]["bmw"] == {"train": 2, "val": 0, "test": 0}
    assert counts["classes_without"]["val"] == {"count": 2, "first": ["bmw", "coca-cola"]}
    assert counts["fractions"]["train"] == pytest.approx(4 / 6)
    json.dumps(counts)
    by_map = split_counts(labels, splits, class_names={0: "a", 1: "b", 2: "c"})
    assert set(by_map["per_class"]) == {"a", "b", "c"}
    assert set(split_counts(labels, splits)["per_class"]) == {"0", "1", "2"}
    with pytest.raises(ValueError, match="does not index"):
        split_counts(labels, splits, class_names=["adidas"])
    with pytest.raises(ValueError, match="split codes"):
        split_counts(labels, np.array([0, 1, 2, 3, 0, 0]))
    assert SPLIT_NAMES == ("train", "val", "test")


def test_the_validation_share_trained_on_moves_whole_groups_by_a_fixed_hash():
    import pyarrow as pa

    from lxn.data.prepared import moves_to_train, val_share

    groups = np.arange(20_000, dtype=np.int64) * 7919 - 3  # any ids, negative ones too
    half, quarter = moves_to_train(groups, 0.5), moves_to_train(groups, 0.25)
    assert abs(half.mean() - 0.5) < 0.02 and abs(quarter.mean() - 0.25) < 0.02
    assert (quarter <= half).all() and not moves_to_train(groups, 0.0).any()
    np.testing.assert_array_equal(moves_to_train(groups.copy(), 0.5), half)  # no state, no seed
    repeated = np.repeat(groups[:50], 3)  # duplicates share a group: they go together
    np.testing.assert_array_equal(moves_to_train(repeated, 0.5), np.repeat(half[:50], 3))
    batch = pa.table({"image": [b"a", b"b", b"c", b"d"], "group": pa.array(groups[:4])})
    taken, kept = val_share(batch, 0.5, True), val_share(batch, 0.5, False)
    assert taken.column_names == kept.column_names == ["image"]
    assert sorted(taken["image"].to_pylist() + kept["image"].to_pylist()) == [b"a", b"b", b"c", b"d"]
    assert taken["image"].to_pylist() == [b for b, m in zip([b"a", b"b", b"c", b"d"], half[:4]) if m]
