"""Perceptual hashes, multi-index Hamming grouping, union-find, embedding pass, representatives."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import scipy.fft
import scipy.signal
from PIL import Image, ImageDraw, ImageFont
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lxn.data.dedup import (
    DEFAULT_RADIUS,
    DisjointSet,
    ImageEmbedder,
    benchmark_grouping,
    dhash,
    duplicate_stats,
    embedding_duplicate_pairs,
    find_hash_duplicates,
    groups_from_pairs,
    hamming,
    hash_images,
    lsh_recall,
    near_duplicate_groups,
    phash,
    pick_representatives,
)

# ---------------------------------------------------------------------------------------------
# Synthetic logo-like images and their copies


def draw_logo(seed: int, size: int = 256) -> np.ndarray:
    """A background colour, a few filled shapes and a word: structured, not noise."""
    rng = np.random.default_rng(seed)

    def colour() -> tuple[int, int, int]:
        return tuple(int(v) for v in rng.integers(0, 256, 3))

    image = Image.new("RGB", (size, size), colour())
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = (int(v) for v in rng.integers(0, size - 40, 2))
        w, h = (int(v) for v in rng.integers(30, size // 2, 2))
        box = [x0, y0, min(size, x0 + w), min(size, y0 + h)]
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse(box, fill=colour())
        elif kind == 1:
            draw.rectangle(box, fill=colour())
        else:
            draw.polygon([tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(3)], fill=colour())
    word = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(3, 7))))
    font = ImageFont.load_default(size=int(rng.integers(24, 48)))
    draw.text((int(rng.integers(0, size // 3)), int(rng.integers(0, size - 50))), word, fill=colour(), font=font)
    return np.asarray(image)


def resized(image: np.ndarray, side: int = 180) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC))


def reencoded(image: np.ndarray, quality: int = 60) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def cropped(image: np.ndarray, fraction: float) -> np.ndarray:
    h, w = image.shape[:2]
    dy, dx = int(h * fraction), int(w * fraction)
    return image[dy : h - dy, dx : w - dx]


@pytest.fixture(scope="module")
def logos() -> list[np.ndarray]:
    return [draw_logo(seed) for seed in range(24)]


@pytest.fixture(scope="module")
def logo_hashes(logos) -> np.ndarray:
    return hash_images(logos)


# ---------------------------------------------------------------------------------------------
# Hashes


def reference_phash(image: np.ndarray) -> int:
    """The documented recipe, written independently with scipy's DCT and Tukey window."""
    rgb = image.astype(np.float32)
    gray = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    small = np.asarray(Image.fromarray(gray).resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=3), np.float64)
    window = scipy.signal.windows.tukey(32, 0.5)
    tapered = (small - small.mean()) * np.outer(window, window)
    low = scipy.fft.dctn(tapered, norm="ortho")[:8, :8].ravel()
    ac = low[1:]
    bits = [False] + list(ac > np.median(ac) + 0.05)
    return int("".join("1" if b else "0" for b in bits), 2)


def test_phash_matches_the_documented_recipe(logos):
    for image in logos[:6]:
        assert phash(image) == reference_phash(image)


def test_phash_is_stable_under_resize_and_reencoding(logos, logo_hashes):
    # Measured over 300 images: resize (256 -> 180) and JPEG q60 move a hash by <= 4 bits.
    assert hamming(logo_hashes, hash_images([resized(x) for x in logos])).max() <= 4
    assert hamming(logo_hashes, hash_images([reencoded(x) for x in logos])).max() <= 4


def test_phash_tolerates_small_crops(logos, logo_hashes):
    crop3 = hamming(logo_hashes, hash_images([cropped(x, 0.03) for x in logos]))
    crop5 = hamming(logo_hashes, hash_images([cropped(x, 0.05) for x in logos]))
    combined = hamming(logo_hashes, hash_images([reencoded(resized(cropped(x, 0.04))) for x in logos]))
    assert crop3.max() <= DEFAULT_RADIUS
    assert combined.max() <= DEFAULT_RADIUS
    # 5% off every border is at the edge of what a 64-bit hash absorbs (0.85 within 8 over 300).
    assert (crop5 <= DEFAULT_RADIUS).mean() >= 0.8


def test_different_images_are_far_apart(logo_hashes):
    d = hamming(logo_hashes[:, None], logo_hashes[None, :])
    off_diagonal = d[np.triu_indices(len(logo_hashes), k=1)]
    assert off_diagonal.min() > DEFAULT_RADIUS + 2
    assert 26 <= off_diagonal.mean() <= 38  # near the 32 of unrelated 64-bit codes


def test_dhash_is_stable_under_reencoding_and_separates_images(logos):
    hashes = hash_images(logos, "dhash")
    assert dhash(logos[0]) == int(hashes[0])
    assert hamming(hashes, hash_images([reencoded(resized(x)) for x in logos], "dhash")).max() <= 6
    d = hamming(hashes[:, None], hashes[None, :])[np.triu_indices(len(logos), k=1)]
    assert d.min() > DEFAULT_RADIUS


def test_batch_inputs_agree(logos):
    one_by_one = np.array([phash(x) for x in logos[:4]], dtype=np.uint64)
    ragged = np.empty(4, dtype=object)
    ragged[:] = [logos[0], resized(logos[1]), logos[2], logos[3]]  # how Ray Data passes mixed sizes
    np.testing.assert_array_equal(hash_images(logos[:4]), one_by_one)
    np.testing.assert_array_equal(hash_images(np.stack(logos[:4])), one_by_one)
    assert hash_images(ragged)[1] == phash(resized(logos[1]))
    assert hash_images([]).dtype == np.uint64 and hash_images([]).size == 0
    with pytest.raises(ValueError, match="pass one image to phash"):
        hash_images(logos[0])  # one (H, W, 3) image is not a batch of H grey rows


def test_grayscale_input_equals_grey_rgb(logos):
    grey = np.asarray(Image.fromarray(logos[5]).convert("L"))
    assert phash(grey) == phash(np.repeat(grey[:, :, None], 3, axis=2))
    assert phash(grey[:, :, None]) == phash(grey)


def test_flat_images_hash_to_zero_whatever_the_colour():
    for value in (0, 17, 255):
        flat = np.full((64, 48, 3), value, dtype=np.uint8)
        assert phash(flat) == 0
        assert dhash(flat) == 0
        assert phash(resized(flat, 31)) == 0


@pytest.mark.parametrize(
    "bad, error",
    [
        (np.zeros((8, 8, 3), dtype=np.float32), "uint8"),
        (np.zeros((8, 8, 4), dtype=np.uint8), "composite alpha"),
        (np.zeros((0, 8, 3), dtype=np.uint8), "empty"),
        ([[1, 2], [3, 4]], "numpy array"),
    ],
)
def test_bad_images_are_rejected_with_a_reason(bad, error):
    with pytest.raises((TypeError, ValueError), match=error):
        hash_images([np.zeros((8, 8, 3), np.uint8), bad])


def test_bad_images_name_their_position():
    with pytest.raises(TypeError, match="image 1"):
        hash_images([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.int16)])
    with pytest.raises(ValueError, match="unknown hash method"):
        hash_images([np.zeros((8, 8, 3), np.uint8)], "ahash")


def test_hamming_popcounts_and_broadcasts():
    a = np.array([0, 0b1011, 2**64 - 1], dtype=np.uint64)
    np.testing.assert_array_equal(hamming(a, np.uint64(0)), [0, 3, 64])
    assert hamming(a[:, None], a[None, :]).shape == (3, 3)
    assert int(hamming(2**64 - 1, 0)) == 64  # Python ints up to 2**64 - 1
    # int64 columns (Arrow/Parquet) are read as their bit pattern: -1 is all ones.
    assert int(hamming(np.int64(-1), np.uint64(0))) == 64
    with pytest.raises(ValueError, match="negative"):
        hamming(np.array([-1], dtype=np.int32), 0)
    with pytest.raises(TypeError, match="integer"):
        hamming(np.array([1.5]), 0)


# ---------------------------------------------------------------------------------------------
# Union-find


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(set(zip(a.tolist(), b.tolist()))) == len(set(a.tolist())) == len(set(b.tolist()))


def test_disjoint_set_matches_connected_components():
    rng = np.random.default_rng(3)
    n = 2000
    pairs = rng.integers(0, n, size=(1500, 2))
    ds = DisjointSet(n)
    merges = ds.union(pairs[:, 0], pairs[:, 1])
    labels = ds.labels()
    assert same_partition(labels, components(n, pairs))
    # Ids are each set's smallest member; the merging pairs form a spanning forest.
    for root in np.unique(labels)[:50]:
        assert root == np.flatnonzero(labels == root).min()
    assert len(merges) == n - len(np.unique(labels))
    assert same_partition(labels, components(n, pairs[merges]))


def test_disjoint_set_long_chain_and_repeated_unions():
    n = 100_000
    ds = DisjointSet(n)
    order = np.random.default_rng(0).permutation(n)  # a path visiting items in random order
    ds.union(order[:-1], order[1:])
    assert (ds.labels() == 0).all()
    assert ds.union([5, 7], [9, 11]).size == 0  # nothing left to merge
    np.testing.assert_array_equal(ds.find([n - 1, 3]), [0, 0])


def test_disjoint_set_rejects_bad_indices():
    ds = DisjointSet(4)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        ds.union([0], [4])
    with pytest.raises(ValueError, match="pair up"):
        ds.union([0, 1], [2])


# ---------------------------------------------------------------------------------------------
# Grouping


def brute_force_groups(hashes: np.ndarray, radius: int) -> np.ndarray:
    d = hamming(hashes[:, None], hashes[None, :])
    i, j = np.nonzero(np.triu(d <= radius, k=1))
    return components(hashes.size, np.stack((i, j), axis=1))


def clustered_hashes(seed: int, n: int, max_flips: int) -> np.ndarray:
    """Hashes scattered around a few centres, so that many pairs are near and chains form."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**64 - 1, size=max(1, n // 12), dtype=np.uint64, endpoint=True)
    hashes = centres[rng.integers(0, centres.size, n)]
    flips = rng.random((n, 64)) < max_flips / 128
    return hashes ^ np.packbits(flips, axis=1).view(">u8")[:, 0].astype(np.uint64)


@pytest.mark.parametrize(
    "radius, num_blocks",
    [(0, None), (1, None), (1, 2), (3, None), (3, 4), (5, 3), (5, 6), (8, None), (8, 3), (8, 9), (10, 4), (10, 11)],
)
def test_grouping_equals_brute_force(radius, num_blocks):
    # num_blocks None: the cost model's choice; radius + 1: classic exact-block multi-index
    # hashing; fewer: blocks probed within radius // num_blocks bits.
    hashes = clustered_hashes(seed=radius, n=1200, max_flips=8)
    found = find_hash_duplicates(hashes, radius, num_blocks=num_blocks, max_bucket_size=10**6)
    assert same_partition(found.groups, brute_force_groups(hashes, radius))
    assert found.info["skipped_comparisons"] == 0
    if radius:
        assert (hamming(hashes[found.links[:, 0]], hashes[found.links[:, 1]]) <= radius).all()


def test_planted_image_copies_form_exactly_the_expected_groups(logos):
    images = list(logos)  # 24 distinct images: items 0..23
    expected = list(range(24))
    planted = {
        0: lambda x: x.copy(),  # exact copy
        1: resized,
        2: reencoded,
        3: lambda x: cropped(x, 0.03),
        4: lambda x: reencoded(resized(cropped(x, 0.03))),
    }
    for source, make in planted.items():
        images.append(make(logos[source]))
        expected.append(source)
    images.append(logos[1].copy())  # a second copy of 1, exact, next to a resized one
    expected.append(1)
    groups = near_duplicate_groups(hash_images(images), DEFAULT_RADIUS)
    np.testing.assert_array_equal(groups, expected)


def test_grouping_is_transitive():
    a = np.uint64(0xF0F0_1234_5678_9ABC)
    b = a ^ np.uint64(0b111)  # 3 bits from a
    c = b ^ np.uint64(0b111000)  # 3 bits from b, 6 from a
    far = ~a
    groups = near_duplicate_groups(np.array([a, far, c, b], dtype=np.uint64), radius=3)
    np.testing.assert_array_equal(groups, [0, 1, 0, 0])
    assert int(hamming(a, c)) == 6


def test_radius_zero_merges_only_identical_hashes():
    hashes = np.array([5, 4, 5, 7, 4, 6, 5], dtype=np.uint64)  # 4 and 5 differ by one bit
    np.testing.assert_array_equal(near_duplicate_groups(hashes, radius=0), [0, 1, 0, 3, 1, 5, 0])
    np.testing.assert_array_equal(near_duplicate_groups(hashes, radius=1), [0, 0, 0, 0, 0, 0, 0])


def test_large_random_set_finds_exactly_the_planted_pairs():
    rng = np.random.default_rng(11)
    n, radius, planted = 200_000, 4, 40
    hashes = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    sources = rng.choice(n // 2, size=planted, replace=False)
    targets = n // 2 + rng.choice(n // 2, size=planted, replace=False)
    for s, t in zip(sources, targets):
        flips = rng.choice(64, size=int(rng.integers(1, radius + 1)), replace=False)
        hashes[t] = hashes[s] ^ np.bitwise_or.reduce(np.uint64(1) << flips.astype(np.uint64))
    found = find_hash_duplicates(hashes, radius)
    expected = np.stack((sources, targets), axis=1)  # sources < n/2 <= targets: already i < j
    np.testing.assert_array_equal(found.links, expected[np.argsort(sources)])
    assert found.info["groups"] == n - planted
    assert found.info["num_blocks"] < radius + 1  # the cost model chose wider blocks than r + 1
    assert found.info["candidates_checked"] < 50 * n  # nowhere near the 2e10 pairs


def test_a_bucket_of_identical_hashes_is_one_group():
    hashes = np.full(50_000, 0xDEAD_BEEF, dtype=np.uint64)
    hashes[::1000] = np.arange(50, dtype=np.uint64) << np.uint64(40)  # a few others
    found = find_hash_duplicates(hashes, DEFAULT_RADIUS)
    assert found.info["unique_hashes"] == 51
    assert found.info["candidates_checked"] < 10_000
    assert (found.groups[hashes == 0xDEAD_BEEF] == 1).all()


def test_oversized_buckets_are_windowed_and_never_merge_wrongly():
    # 6000 distinct hashes sharing their top 48 bits: every block of those bits is one bucket.
    rng = np.random.default_rng(5)
    hashes = np.uint64(0xABCD_EF01_2345_0000) | rng.choice(1 << 16, 6000, replace=False).astype(np.uint64)
    radius = 3
    truth = brute_force_groups(hashes, radius)
    capped = find_hash_duplicates(hashes, radius, num_blocks=4, max_bucket_size=64)
    assert capped.info["oversized_buckets"] > 0 and capped.info["skipped_comparisons"] > 0
    # Every capped group lies inside one true group, and every link is a verified near pair.
    assert len(set(zip(capped.groups.tolist(), truth.tolist()))) == len(set(capped.groups.tolist()))
    assert (hamming(hashes[capped.links[:, 0]], hashes[capped.links[:, 1]]) <= radius).all()
    full = find_hash_duplicates(hashes, radius, num_blocks=4, max_bucket_size=10**6)
    assert same_partition(full.groups, truth)


def test_int64_hashes_group_like_their_uint64_bit_pattern():
    hashes = clustered_hashes(seed=2, n=500, max_flips=6)
    np.testing.assert_array_equal(
        near_duplicate_groups(hashes.view(np.int64), 6), near_duplicate_groups(hashes, 6)
    )


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"radius": -1}, "radius"),
        ({"radius": 40}, "radius"),
        ({"radius": 2.5}, "radius"),
        ({"radius": 4, "num_blocks": 6}, "num_blocks"),
        ({"radius": 4, "num_blocks": 1}, "one of"),
        ({"radius": 4, "max_bucket_size": 0}, "max_bucket_size"),
    ],
)
def test_bad_search_arguments_are_rejected(kwargs, error):
    with pytest.raises(ValueError, match=error):
        find_hash_duplicates(np.arange(10, dtype=np.uint64), **kwargs)


def test_benchmark_grouping_finds_every_planted_pair():
    result = benchmark_grouping(20_000, 6, planted=25)
    assert result["planted_found"] == 25
    assert result["near_links"] >= 25 and result["seconds"] > 0


# ---------------------------------------------------------------------------------------------
# Embedding pass


def planted_embeddings(seed: int, n: int = 3000, dim: int = 48):
    """Random unit vectors; items n-60.. are copies of earlier ones at cosine ~0.995 (duplicates)
    and ~0.95 (look-alikes that must not match at 0.985)."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n, dim)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    sources = rng.choice(n - 60, size=60, replace=False)
    truth = []
    for k, (s, t) in enumerate(zip(sources, range(n - 60, n))):
        cos = 0.995 if k < 40 else 0.95
        noise = rng.standard_normal(dim).astype(np.float32)
        noise -= noise @ e[s] * e[s]
        noise /= np.linalg.norm(noise)
        e[t] = cos * e[s] + np.sqrt(1 - cos**2) * noise
        if cos > 0.985:
            truth.append((min(s, t), max(s, t)))
    return e * rng.uniform(0.5, 3.0, size=(n, 1)).astype(np.float32), sorted(truth)  # scale is irrelevant


def test_exact_embedding_pass_finds_exactly_the_duplicates():
    e, truth = planted_embeddings(0)
    pairs = embedding_duplicate_pairs(e, 0.985, method="exact", block_size=700)
    assert [tuple(p) for p in pairs.tolist()] == truth


def test_lsh_embedding_pass_finds_the_duplicates_and_nothing_else():
    e, truth = planted_embeddings(1)
    pairs = embedding_duplicate_pairs(e, 0.985, method="lsh", bits_per_table=12, num_tables=10, seed=4)
    assert [tuple(p) for p in pairs.tolist()] == truth  # recall at 0.995: 1 - 3e-6 per pair
    other_seed = embedding_duplicate_pairs(e, 0.985, method="lsh", bits_per_table=12, num_tables=10, seed=5)
    assert [tuple(p) for p in other_seed.tolist()] == truth


def test_lsh_recall_formula_matches_simulation():
    rng = np.random.default_rng(2)
    dim, cos, bits, tables = 32, 0.9, 6, 2
    base = rng.standard_normal((400, dim)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    noise = rng.standard_normal((400, dim)).astype(np.float32)
    noise -= (noise * base).sum(1, keepdims=True) * base
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    e = np.concatenate([base, cos * base + np.sqrt(1 - cos**2) * noise])
    pairs = embedding_duplicate_pairs(e, cos - 1e-4, method="lsh", bits_per_table=bits, num_tables=tables, seed=0)
    planted_found = np.isin(pairs[:, 0] + 400, pairs[:, 1]).sum()
    assert abs(planted_found / 400 - lsh_recall(cos, bits, tables)) < 0.08
    assert lsh_recall(1.0, 16, 1) == 1.0 and lsh_recall(0.985, 16, 12) > 0.99


def test_auto_compares_every_pair_of_a_small_set_and_hashes_a_large_one(monkeypatch):
    import lxn.data.dedup as dedup

    e = np.random.default_rng(3).standard_normal((50, 8)).astype(np.float32)
    assert len(embedding_duplicate_pairs(e, -1.0)) == 50 * 49 // 2  # exact: nothing missed
    monkeypatch.setattr(dedup, "EXACT_PAIRS_MAX_ITEMS", 49)
    assert len(embedding_duplicate_pairs(e, -1.0, bits_per_table=8, num_tables=1)) < 50 * 49 // 2  # buckets only


def test_bad_embeddings_are_rejected():
    e = np.ones((5, 4), dtype=np.float32)
    e[3] = 0
    with pytest.raises(ValueError, match=r"zero or not finite \(first indices \[3\]\)"):
        embedding_duplicate_pairs(e)
    with pytest.raises(ValueError, match="cosine"):
        embedding_duplicate_pairs(np.ones((2, 2)), threshold=1.5)
    with pytest.raises(ValueError, match="method"):
        embedding_duplicate_pairs(np.ones((2, 2)), method="faiss")


class ThumbnailEmbedder:
    """A stand-in for CLIP: a 16 x 16 grey thumbnail, mean-removed. Satisfies ImageEmbedder."""

    def __call__(self, images):
        out = []
        for image in images:
            grey = Image.fromarray(image).convert("L").resize((16, 16), Image.Resampling.BOX)
            v = np.asarray(grey, dtype=np.float32).ravel()
            out.append(v - v.mean() + 1e-3)
        return np.stack(out)


def test_an_embedder_pass_merges_with_the_hash_groups(logos):
    embedder = ThumbnailEmbedder()
    assert isinstance(embedder, ImageEmbedder)
    # 0..5 distinct; 6 = exact copy of 0 (hash pass); 7 = a 6%-cropped 2, beyond the hash radius
    # but close in thumbnail space (embedding pass).
    images = logos[:6] + [logos[0].copy(), cropped(logos[2], 0.06)]
    hashes = hash_images(images)
    hash_groups = near_duplicate_groups(hashes, radius=2)
    assert hash_groups[7] == 7
    pairs = embedding_duplicate_pairs(embedder(images), threshold=0.8, method="exact")  # unrelated: < 0.51
    groups = groups_from_pairs(len(images), pairs, groups=hash_groups)
    np.testing.assert_array_equal(groups, [0, 1, 2, 3, 4, 5, 0, 2])
    stats = duplicate_stats(groups, hashes=hashes)
    assert stats["exact_duplicates"] == 1 and stats["near_duplicates"] == 1


def test_groups_from_pairs_accepts_any_group_labels_and_several_lists():
    groups = np.array(["x", "y", "x", "z", "w", "w"])
    merged = groups_from_pairs(6, np.array([[1, 3]]), [[3, 4]], np.empty((0, 2)), groups=groups)
    np.testing.assert_array_equal(merged, [0, 1, 0, 1, 1, 1])
    with pytest.raises(ValueError, match=r"\(P, 2\)"):
        groups_from_pairs(3, np.array([0, 1, 2]))


# ---------------------------------------------------------------------------------------------
# Representatives and statistics


def test_representative_is_lowest_index_or_largest():
    groups = np.array([0, 0, 2, 0, 2, 5])
    np.testing.assert_array_equal(pick_representatives(groups), [1, 0, 1, 0, 0, 1])
    sizes = np.array([10, 30, 5, 30, 6, 1])  # tie 30/30 -> lower index 1
    np.testing.assert_array_equal(pick_representatives(groups, sizes=sizes), [0, 1, 0, 0, 1, 1])


def test_label_conflict_policies():
    groups = np.array([0, 0, 0, 3, 3, 5, 5])
    labels = np.array([7, 9, 9, 1, 1, 4, 8])  # group 0: 9 wins 2-1; group 3 agrees; group 5 ties
    sizes = np.array([100, 1, 2, 1, 1, 1, 2])
    drop = pick_representatives(groups, sizes=sizes, labels=labels)
    np.testing.assert_array_equal(drop, [0, 0, 0, 1, 0, 0, 0])
    majority = pick_representatives(groups, sizes=sizes, labels=labels, on_label_conflict="majority")
    np.testing.assert_array_equal(majority, [0, 0, 1, 1, 0, 0, 1])  # largest among the 9s; tie: largest
    keep = pick_representatives(groups, sizes=sizes, labels=labels, on_label_conflict="keep")
    np.testing.assert_array_equal(keep, [1, 0, 0, 1, 0, 0, 1])
    with pytest.raises(ValueError, match="on_label_conflict"):
        pick_representatives(groups, labels=labels, on_label_conflict="vote")
    with pytest.raises(ValueError, match="sizes"):
        pick_representatives(groups, sizes=[1, 2])


def test_duplicate_stats_for_the_manifest():
    hashes = np.array([1, 1, 1, 3, 9, 9, 100, 200], dtype=np.uint64)
    groups = np.array([0, 0, 0, 0, 4, 4, 6, 7])  # 3 is near 1; 9 is exact
    labels = np.array([2, 2, 5, 2, 1, 1, 3, 3])
    keep = pick_representatives(groups, labels=labels)
    stats = duplicate_stats(groups, hashes=hashes, labels=labels, keep=keep, max_examples=1)
    assert stats["items"] == 8 and stats["groups"] == 4
    assert stats["duplicate_groups"] == 2 and stats["largest_group"] == 4
    assert stats["group_size_histogram"] == {"1": 2, "2": 1, "3-4": 1}
    assert stats["exact_duplicates"] == 3 and stats["near_duplicates"] == 1
    assert stats["kept"] == 3 and stats["removed"] == 5 and stats["groups_dropped"] == 1
    conflicts = stats["label_conflicts"]
    assert conflicts["groups"] == 1 and conflicts["items"] == 4 and conflicts["groups_dropped"] == 1
    assert conflicts["examples"] == [{"group": 0, "size": 4, "labels": [2, 5], "members": [0, 1, 2, 3]}]
    json.dumps(stats)  # plain Python values only
