"""Class-stratified, group-aware train/val/test split with a fixed seed.

Runs after de-duplication (`lxn.data.dedup`), as in the LogoXpertNet paper: 80/10/10 per class,
seeded, so the split lists are reproducible. Pure numpy, arrays in, arrays out.

Guarantees of `stratified_group_split`:

* No group crosses splits: every member of a duplicate group gets its group's split.
* Per class, each split gets floor or ceil of its ideal share (`n_c * fraction`), i.e. within
  one image, when groups are singletons (after de-duplication they are). Larger groups are
  placed first, each into the split furthest below its target, then singletons fill the rest
  exactly; a split then misses its ideal by at most about one group.
* Deterministic for a seed, and a different seed gives a different split.
* Small classes, explicitly: when a class has too few images for every split to get its share,
  the spare images (those left after rounding every share down) go first to train if train would
  otherwise be empty, then one each to evaluation splits that would otherwise be empty, then by
  the largest fractional share. Ties are broken at random (seeded), so that across many small
  classes val and test are served alike. With 80/10/10:

      1 image  -> train
      2 images -> train + (val or test)
      3 to 5   -> the rest to train, one to val or test
      6 to 9   -> the rest to train, one to val, one to test
      10       -> 8 / 1 / 1

  Every one of these is still floor or ceil of the ideal share.
* Vectorised: 2M singletons in 194 classes split in ~1.5 s on one core. Multi-member groups are
  placed one by one in Python (2.2M items in 730k groups of three: ~4 s); after de-duplication
  there are none.

A group whose members carry different labels is stratified under its most frequent label (ties:
the smallest); `lxn.data.dedup.pick_representatives` removes such groups by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["SPLIT_NAMES", "TRAIN", "VAL", "TEST", "stratified_group_split", "leakage_report", "split_counts"]

SPLIT_NAMES = ("train", "val", "test")
TRAIN, VAL, TEST = 0, 1, 2


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or f.size < 2:
        raise ValueError(f"fractions must list at least two splits (train first), got {fractions!r}")
    if not np.isfinite(f).all() or (f < 0).any() or f[0] <= 0:
        raise ValueError(f"fractions must be finite and >= 0, with train > 0, got {fractions!r}")
    if abs(f.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1 (e.g. (0.8, 0.1, 0.1)), got {fractions!r} summing to {f.sum():g}")
    return f


def _quotas(class_sizes: np.ndarray, fractions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(C, S) item targets per class and split: floor or ceil of class_size * fraction, summing to
    class_size, spare items assigned as the module docstring describes."""
    num_splits = fractions.size
    ideal = np.round(class_sizes[:, None] * fractions[None, :], 9)  # 0.1 * 10 is 1, not 1.0000000000000002
    base = np.floor(ideal).astype(np.int64)
    spare = class_sizes - base.sum(axis=1)
    remainder = ideal - base
    open_ = remainder > 0
    tier = np.zeros_like(base)
    tier[:, 1:] = open_[:, 1:] & (base[:, 1:] == 0)  # an evaluation split that would stay empty
    tier[:, 0] = 2 * (open_[:, 0] & (base[:, 0] == 0))  # train that would stay empty comes first
    order = np.lexsort((rng.random(base.shape), -remainder, -tier), axis=-1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(num_splits)[None, :].repeat(len(base), 0), axis=-1)
    return base + (rank < spare[:, None])


def _group_classes(dense: np.ndarray, cls: np.ndarray, num_groups: int, num_classes: int) -> np.ndarray:
    """Most frequent class of each group's members (ties: the smallest class index)."""
    codes, counts = np.unique(dense.astype(np.int64) * num_classes + cls, return_counts=True)
    g, c = codes // num_classes, codes % num_classes
    order = np.lexsort((c, -counts, g))
    first = np.concatenate(([True], g[order][1:] != g[order][:-1]))
    out = np.empty(num_groups, dtype=np.int64)
    out[g[order][first]] = c[order][first]
    return out


def stratified_group_split(
    labels: Any,
    groups: Any = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    seed: int,
) -> np.ndarray:
    """Split codes (N,) int8: 0 train, 1 val, 2 test (index into `fractions`, names SPLIT_NAMES).

    labels: (N,) class of each item (any sortable values; usually ints).
    groups: (N,) duplicate-group id of each item (any values), or None for singletons.
    fractions: share of each split, train first, summing to 1.
    seed: the split is a function of (labels, groups, fractions, seed).
    """
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D (one class per item), got shape {lab.shape}")
    n = lab.size
    f = _check_fractions(fractions)
    if f.size > 127:
        raise ValueError("at most 127 splits")
    codes = np.zeros(n, dtype=np.int8)
    if n == 0:
        return codes
    rng = np.random.default_rng(seed)
    _, cls = np.unique(lab, return_inverse=True)
    num_classes = int(cls.max()) + 1
    if groups is None:
        dense = np.arange(n)
        sizes = np.ones(n, dtype=np.int64)
        group_class = cls
    else:
        g = np.asarray(groups)
        if g.shape != (n,):
            raise ValueError(f"groups must have one id per item ({n}), got shape {g.shape}")
        _, dense, sizes = np.unique(g, return_inverse=True, return_counts=True)
        group_class = _group_classes(dense, cls, sizes.size, num_classes)
    class_sizes = np.bincount(group_class, weights=sizes, minlength=num_classes).astype(np.int64)
    targets = _quotas(class_sizes, f, rng)
    assigned = np.zeros_like(targets)

    # Multi-member groups first, largest first, each into the split furthest below its target
    # (ties: train, else at random), so that singletons can even out what they leave.
    multi = np.flatnonzero(sizes > 1)
    group_split = np.full(sizes.size, -1, dtype=np.int64)
    if multi.size:
        tie = rng.random(multi.size)
        placement = np.lexsort((tie, -sizes[multi], group_class[multi]))
        multi, tie = multi[placement], tie[placement]
        for g_idx, u in zip(multi.tolist(), tie.tolist()):
            c = group_class[g_idx]
            deficit = targets[c] - assigned[c]
            best = np.flatnonzero(deficit == deficit.max())
            s = 0 if best[0] == 0 else int(best[int(u * best.size)])
            group_split[g_idx] = s
            assigned[c, s] += sizes[g_idx]

    # Singletons fill each class's remaining targets exactly, in a seeded random order. Where a
    # large group overshot a target, the surplus is taken from the splits with most room left.
    room = np.maximum(targets - assigned, 0)
    singles_per_class = np.bincount(group_class[sizes == 1], minlength=num_classes)
    surplus = room.sum(axis=1) - singles_per_class
    while (surplus > 0).any():
        widest = room.argmax(axis=1)
        take = surplus > 0
        room[take, widest[take]] -= 1
        surplus -= take
    single = np.flatnonzero(sizes == 1)
    if single.size:
        single_class = group_class[single]
        order = np.lexsort((rng.random(single.size), single_class))
        starts = np.cumsum(singles_per_class) - singles_per_class
        rank = np.empty(single.size, dtype=np.int64)
        rank[order] = np.arange(single.size) - starts[single_class[order]]
        bounds = np.cumsum(room, axis=1)[:, :-1]  # rank below bounds[c, s] -> split <= s
        group_split[single] = (rank[:, None] >= bounds[single_class]).sum(axis=1)
    codes[:] = group_split[dense]
    return codes


def leakage_report(groups: Any, splits: Any, max_examples: int = 5) -> dict[str, Any]:
    """Groups whose members sit in more than one split (should be none), for the manifest."""
    g = np.asarray(groups)
    s = np.asarray(splits)
    if g.ndim != 1 or g.shape != s.shape:
        raise ValueError(f"groups and splits must be 1-D of one length, got shapes {g.shape} and {s.shape}")
    ids, dense = np.unique(g, return_inverse=True)
    split_ids, split_idx = np.unique(s, return_inverse=True)
    codes, counts = np.unique(dense.astype(np.int64) * max(split_ids.size, 1) + split_idx, return_counts=True)
    pair_group = codes // max(split_ids.size, 1)
    spread = np.bincount(pair_group, minlength=ids.size)
    crossing = np.flatnonzero(spread > 1)
    examples = []
    for gi in crossing[:max_examples]:
        rows = np.flatnonzero(pair_group == gi)
        examples.append(
            {
                "group": _plain(ids[gi]),
                "splits": {str(_plain(split_ids[codes[r] % split_ids.size])): int(counts[r]) for r in rows},
            }
        )
    return {
        "groups": int(ids.size),
        "crossing_groups": int(crossing.size),
        "items_in_crossing_groups": int(np.bincount(dense, minlength=ids.size)[crossing].sum()),
        "examples": examples,
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def split_counts(
    labels: Any,
    splits: Any,
    class_names: Sequence[str] | Mapping[Any, str] | None = None,
    split_names: Sequence[str] = SPLIT_NAMES,
) -> dict[str, Any]:
    """Items per split, overall and per class, for the manifest (JSON-ready).

    class_names: a sequence indexed by integer label, a mapping from label to name, or None
        (names are the labels as strings). split_names: names of split codes 0, 1, ...
    """
    lab = np.asarray(labels)
    codes = np.asarray(splits)
    if lab.ndim != 1 or lab.shape != codes.shape:
        raise ValueError(f"labels and splits must be 1-D of one length, got shapes {lab.shape} and {codes.shape}")
    if codes.size and (codes.dtype.kind not in "iu" or codes.min() < 0 or codes.max() >= len(split_names)):
        raise ValueError(f"split codes must be integers in [0, {len(split_names)}) for split_names {tuple(split_names)}")
    classes, cls = np.unique(lab, return_inverse=True)
    names = [_class_name(c, class_names) for c in classes]
    table = np.zeros((classes.size, len(split_names)), dtype=np.int64)
    np.add.at(table, (cls, codes.astype(np.int64)), 1)
    total = table.sum(axis=0)
    n = int(lab.size)
    empty = {
        split: [names[i] for i in np.flatnonzero(table[:, j] == 0)] for j, split in enumerate(split_names)
    }
    return {
        "items": n,
        "total": {split: int(total[j]) for j, split in enumerate(split_names)},
        "fractions": {split: (float(total[j]) / n if n else 0.0) for j, split in enumerate(split_names)},
        "per_class": {name: {split: int(table[i, j]) for j, split in enumerate(split_names)} for i, name in enumerate(names)},
        "classes_without": {split: {"count": len(v), "first": v[:10]} for split, v in empty.items()},
    }


def _class_name(label: Any, class_names: Sequence[str] | Mapping[Any, str] | None) -> str:
    value = _plain(label)
    if class_names is None:
        return str(value)
    if isinstance(class_names, Mapping):
        if value not in class_names:
            raise ValueError(f"class_names has no entry for label {value!r}")
        return str(class_names[value])
    if not isinstance(value, int) or not 0 <= value < len(class_names):
        raise ValueError(f"label {value!r} does not index class_names (length {len(class_names)})")
    return str(class_names[value])
