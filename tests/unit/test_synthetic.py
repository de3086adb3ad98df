"""The synthetic logo dataset: determinism, layout, confusable pairs, boxes, no-logo scenes, and
a cheap learnability check."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_erosion
from scipy.signal import fftconvolve

from lxn.config import parse_config, to_dict
from lxn.data import synthetic as syn
from lxn.data.synthetic import NO_LOGO, SyntheticConfig

ROOT = Path(__file__).resolve().parents[2]
SMALL = SyntheticConfig(num_brands=6, confusable_fraction=1.0, images_per_brand=3, no_logo_images=4, image_size=64)
# A camera that changes nothing, marks at a fixed scale: a mark lands in the scene as rendered.
CLEAN = dict(max_rotation=0.0, max_shear=0.0, max_perspective=0.0, occlusion_prob=0.0, max_blur=0.0, max_noise=0.0,
             brightness_jitter=0.0, contrast_jitter=0.0, color_cast=0.0, uneven_light=0.0,
             jpeg_quality_min=95, jpeg_quality_max=95)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
        return np.asarray(im.convert("RGB"), np.float32)


def mark_pixels(brand: syn.Brand, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB and a boolean mask of the opaque pixels of the brand's mark at width x height."""
    mark = syn.render_mark(brand, max(width, height)).resize((width, height), Image.Resampling.LANCZOS)
    pixels = np.asarray(mark, np.float32)
    return pixels[..., :3], pixels[..., 3] > 200


# ------------------------------------------------------------------------------------------------
# Determinism


def test_same_config_gives_the_same_bytes_in_any_order_and_any_process():
    first = {name: sha(data) for _, name, data in syn.iter_dataset(SMALL)}
    assert len(first) == 6 * 3 + 4

    items = [(cls, i) for cls, count in syn.class_counts(SMALL).items() for i in range(count)]
    for cls, i in reversed(items):
        assert sha(syn.generate_image(SMALL, cls, i)) == first[f"{cls}_{i:06d}.jpg"]

    # a fresh interpreter (empty caches), in a shuffled order
    order = [items[k] for k in np.random.default_rng(7).permutation(len(items))]
    script = (
        "import hashlib, json, sys; from lxn.data.synthetic import SyntheticConfig, generate_image; "
        "config = SyntheticConfig(**json.loads(sys.argv[1])); "
        "print(json.dumps({f'{c}_{i:06d}.jpg': hashlib.sha256(generate_image(config, c, i)).hexdigest() "
        "for c, i in json.loads(sys.argv[2])}))"
    )
    out = subprocess.run([sys.executable, "-c", script, json.dumps(to_dict(SMALL)), json.dumps(order)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == first


def test_seed_changes_every_scene_and_brand_seed_changes_the_brands():
    base = {name: sha(data) for _, name, data in syn.iter_dataset(SMALL)}
    other = {name: sha(data) for _, name, data in syn.iter_dataset(dataclasses.replace(SMALL, seed=1))}
    assert base.keys() == other.keys()  # same brands, new scenes
    assert all(base[name] != other[name] for name in base)
    renamed = dataclasses.replace(SMALL, brand_seed=1)
    assert set(syn.class_names(renamed)).isdisjoint(set(syn.class_names(SMALL)) - {NO_LOGO})


def test_shards_are_disjoint_and_make_the_whole_dataset():
    whole = [(cls, name, sha(data)) for cls, name, data in syn.iter_dataset(SMALL)]
    shards = [[(cls, name, sha(data)) for cls, name, data in syn.iter_dataset(SMALL, shard=k, num_shards=3)]
              for k in range(3)]
    assert sum(len(s) for s in shards) == len(whole)
    assert sorted(x for s in shards for x in s) == sorted(whole)
    with pytest.raises(ValueError, match="shard"):
        next(syn.iter_dataset(SMALL, shard=3, num_shards=3))


# ------------------------------------------------------------------------------------------------
# Layout on disk and through a custom writer


def test_write_imagefolder_writes_every_class_with_its_count_and_metadata(tmp_path):
    summary = syn.write_imagefolder(SMALL, tmp_path / "ds")
    root = tmp_path / "ds"
    classes = syn.class_names(SMALL)
    assert summary["classes"] == classes and NO_LOGO in classes and len(classes) == 7
    assert summary["counts"] == {c: (4 if c == NO_LOGO else 3) for c in classes}
    assert summary["images"] == 22 and summary["seed"] == 0
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == classes
    for cls in classes:
        files = sorted(p.name for p in (root / cls).iterdir())
        assert files == [f"{cls}_{i:06d}.jpg" for i in range(summary["counts"][cls])]
        for name in files:
            with Image.open(root / cls / name) as im:
                im.load()
                assert im.size == (64, 64) and im.mode == "RGB"
    assert not list(root.rglob("*.tmp"))

    meta = json.loads((root / "synthetic.json").read_text())
    assert meta["classes"] == classes and meta["config"]["num_brands"] == 6
    assert [p["differs_in"] for p in meta["confusable_pairs"]] == ["colour", "glyph", "shape"]
    assert meta["confusable_pairs"] == summary["confusable_pairs"]

    with open(root / "boxes.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 22
    for row in rows:
        if row["class"] == NO_LOGO:
            assert row["x0"] == row["x1"] == ""
        else:
            x0, y0, x1, y1 = (int(row[k]) for k in ("x0", "y0", "x1", "y1"))
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64


def test_write_imagefolder_refuses_a_directory_holding_something_else(tmp_path):
    root = tmp_path / "ds"
    syn.write_imagefolder(SMALL, root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    syn.write_imagefolder(SMALL, root)  # the same dataset again: allowed, and nothing changes
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    with pytest.raises(ValueError, match="not empty"):
        syn.write_imagefolder(dataclasses.replace(SMALL, seed=1), root)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # untouched
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        syn.write_imagefolder(SMALL, tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_write_imagefolder_hands_every_file_to_the_writer_given():
    written: dict[str, bytes] = {}
    summary = syn.write_imagefolder(SMALL, "s3://bucket/synthetic/", write=written.__setitem__)
    assert summary["root"] == "s3://bucket/synthetic"
    images = {k for k in written if k.endswith(".jpg")}
    assert len(images) == 22 and all(re.fullmatch(r"s3://bucket/synthetic/[a-z-]+/[a-z-]+_\d{6}\.jpg", k) for k in images)
    assert {"s3://bucket/synthetic/boxes.csv", "s3://bucket/synthetic/synthetic.json"} <= written.keys()
    cls = syn.class_names(SMALL)[0]
    assert written[f"s3://bucket/synthetic/{cls}/{cls}_000001.jpg"] == syn.generate_image(SMALL, cls, 1)
    with pytest.raises(ValueError, match="write="):
        syn.write_imagefolder(SMALL, "s3://bucket/synthetic")


def test_size_jitter_gives_varied_sizes_and_aspect_ratios_within_bounds():
    config = dataclasses.replace(SMALL, image_size=100, size_jitter=0.3)
    sizes = set()
    for _cls, _, data in syn.iter_dataset(config):
        with Image.open(io.BytesIO(data)) as im:
            sizes.add(im.size)
    assert len(sizes) > 10 and len({w / h for w, h in sizes}) > 10
    assert all(70 <= w <= 130 and 70 <= h <= 130 for w, h in sizes)


# ------------------------------------------------------------------------------------------------
# Brands and marks


def test_brand_names_are_unique_readable_and_prefix_stable():
    brands = syn.make_brands(194, 20, 0)
    names = [b.name for b in brands]
    assert len(set(names)) == 194
    assert all(re.fullmatch(r"[a-z]{3,12}", n) for n in names)
    assert syn.make_brands(40, 20, 0)[:30] == syn.make_brands(30, 15, 0)
    # letters on a mark spell the start of the brand's name
    assert all(b.name.startswith(b.glyph.lower()) for b in brands)


def test_confusable_pairs_differ_in_exactly_the_declared_trait():
    brands = syn.make_brands(12, 3, 0)
    pairs = [(brands[b.index - 1], b) for b in brands if b.variant_of]
    assert [(a.name, b.differs_in) for a, b in pairs] == [(b.variant_of, b.differs_in) for _, b in pairs]
    assert [b.differs_in for _, b in pairs] == ["colour", "glyph", "shape"]
    for a, b in pairs:
        same = {f for f in ("layout", "shape", "shape_param", "colors", "glyph", "symbol", "symbol_param")
                if getattr(a, f) == getattr(b, f)}
        changed = {"colour": {"colors"}, "glyph": {"glyph", "symbol_param"},
                   "shape": {"shape", "shape_param"}}[b.differs_in]
        assert same >= {"layout", "shape", "shape_param", "colors", "glyph", "symbol", "symbol_param"} - changed
        assert not changed <= same


@pytest.mark.parametrize("brand_seed", range(4))
def test_confusable_pairs_look_closer_to_each_other_than_to_any_other_brand(brand_seed):
    """Mean absolute RGB difference of the marks rendered on grey (the shape counts through the
    grey): each pair is its members' nearest neighbour."""
    brands = syn.make_brands(12, 3, brand_seed)

    def on_grey(brand):
        mark = syn.render_mark(brand, 32)
        canvas = Image.new("RGBA", (32, 32), (128, 128, 128, 255))
        canvas.alpha_composite(mark, (0, (32 - mark.height) // 2))
        return np.asarray(canvas.convert("RGB"), np.float32)

    pixels = [on_grey(b) for b in brands]
    dist = np.array([[np.abs(p - q).mean() for q in pixels] for p in pixels])
    np.fill_diagonal(dist, np.inf)
    for b in brands:
        if b.variant_of:
            a = b.index - 1
            assert brands[a].name == b.variant_of
            assert dist[a].argmin() == b.index and dist[b.index].argmin() == a, (b.differs_in, dist[a], dist[b.index])


def test_render_mark_is_rgba_on_transparency_at_the_size_asked():
    brands = syn.make_brands(30, 0, 0)
    for brand in brands:
        mark = syn.render_mark(brand, 48)
        assert mark.mode == "RGBA" and mark.width == 48
        assert mark.height == (20 if brand.layout == "wordmark" else 48)
        alpha = np.asarray(mark)[..., 3]
        assert alpha[0, 0] == 0 and alpha[-1, -1] == 0  # a margin all round
        assert (alpha > 200).mean() > 0.3  # and a solid mark inside
        opaque = np.asarray(mark)[alpha == 255][:, :3].astype(int)
        for colour in brand.colors[:2]:  # its own scheme (up to resampling), not a neighbour's
            assert np.abs(opaque - colour).sum(1).min() <= 6
    assert {b.layout for b in brands} == {"badge", "ring", "split", "wordmark"}
    with pytest.raises(ValueError, match="at least 4"):
        syn.render_mark(brands[0], 2)


# ------------------------------------------------------------------------------------------------
# Boxes and no-logo scenes


@pytest.mark.parametrize(("size", "scale"), [(96, 0.4), (640, 0.07)])  # a normal scene; a small logo in a big one
def test_box_holds_the_mark_as_rendered(size, scale):
    config = SyntheticConfig(num_brands=4, image_size=size, min_logo_scale=scale, max_logo_scale=scale, **CLEAN)
    brands = syn.brands(config)
    for brand in brands:
        for i in range(2):
            data, box = syn.generate_image_with_box(config, brand.name, i)
            x0, y0, x1, y1 = box
            assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
            # the painted mark fills 94% of its canvas, whose longer side is scale * size
            assert abs(max(x1 - x0, y1 - y0) - 0.94 * scale * size) <= 3
            crop = decode(data)[y0:y1, x0:x1]
            error = {}
            for other in brands:
                rgb, mask = mark_pixels(other, x1 - x0, y1 - y0)
                error[other.name] = np.abs(crop - rgb)[mask].mean()
            assert error[brand.name] < 25  # JPEG chroma subsampling and resampling blur thin strokes a little
            assert min(error, key=error.get) == brand.name  # its own mark, not a look-alike's
    assert syn.generate_image_with_box(config, NO_LOGO, 0)[1] is None


def _min_relative_ssd(image: np.ndarray, rgb: np.ndarray, mask: np.ndarray) -> float:
    """Over every placement of the template in the image: the smallest sum of squared RGB
    differences on the mask's pixels, relative to the template's own variance there (0: a
    perfect match; about 1 or more: nothing like it)."""
    m = mask[::-1, ::-1].astype(np.float32)
    t = np.where(mask[..., None], rgb, 0)[::-1, ::-1]
    ssd = sum(fftconvolve(image[..., c] ** 2, m, mode="valid") - 2 * fftconvolve(image[..., c], t[..., c], mode="valid")
              for c in range(3)) + (t ** 2).sum()
    return float(ssd.min() / ((rgb[mask] - rgb[mask].mean(0)) ** 2).sum())


def test_no_logo_scenes_contain_no_mark_where_logo_scenes_do():
    config = SyntheticConfig(num_brands=6, confusable_fraction=0.0, image_size=96, min_logo_scale=0.4, max_logo_scale=0.4,
                             **CLEAN)
    brands = syn.make_brands(6, 0, 0)
    side = round(0.4 * 96)
    # eroded masks: edge pixels would only measure how a mark was resampled to its sub-pixel place
    templates = [(rgb, binary_erosion(mask))
                 for rgb, mask in (mark_pixels(b, side, round(side / b.aspect)) for b in brands)]
    found = [_min_relative_ssd(decode(syn.generate_image(config, b.name, i)), *templates[b.index])
             for b in brands for i in range(4)]
    assert max(found) < 0.75  # the detector finds every placed mark
    absent = [min(_min_relative_ssd(decode(syn.generate_image(config, NO_LOGO, i)), *t) for t in templates)
              for i in range(24)]
    assert min(absent) > 0.85


# ------------------------------------------------------------------------------------------------
# Learnability, cheaply


def test_marks_stay_recognisable_through_the_scene_degradations():
    """Nearest class centroid on the box crops of default-difficulty scenes (12 x 12 px,
    standardised) beats chance by far on scenes from an unseen seed."""
    train_config = SyntheticConfig(image_size=96, images_per_brand=12, no_logo_images=0)
    test_config = dataclasses.replace(train_config, seed=1, images_per_brand=6)

    def features(config):
        xs, ys = [], []
        for cls, i in ((c, i) for c, n in syn.class_counts(config).items() for i in range(n)):
            data, box = syn.generate_image_with_box(config, cls, i)
            with Image.open(io.BytesIO(data)) as im:
                crop = im.convert("RGB").crop(box).resize((12, 12), Image.Resampling.BILINEAR)
            crop = np.asarray(crop, np.float32).ravel()
            xs.append((crop - crop.mean()) / (crop.std() + 1e-6))
            ys.append(cls)
        return np.stack(xs), np.array(ys)

    x_train, y_train = features(train_config)
    x_test, y_test = features(test_config)
    classes = sorted(set(y_train))
    centroids = np.stack([x_train[y_train == c].mean(0) for c in classes])
    predicted = np.array(classes)[((x_test[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)]
    accuracy = (predicted == y_test).mean()
    assert accuracy > 5 / len(classes), accuracy  # chance is 1/12


# ------------------------------------------------------------------------------------------------
# Config and bad input


def test_config_is_a_typed_job_config():
    config = parse_config(SyntheticConfig, ["--num-brands", "5", "--seed", "3", "--max-blur", "0.5"])
    assert (config.num_brands, config.seed, config.max_blur) == (5, 3, 0.5)
    assert config.images_per_brand == SyntheticConfig().images_per_brand


@pytest.mark.parametrize(("changes", "message"), [
    (dict(num_brands=0), "num_brands"),
    (dict(confusable_fraction=1.5), "confusable_fraction"),
    (dict(min_logo_scale=0.5, max_logo_scale=0.3), "min_logo_scale"),
    (dict(jpeg_quality_min=90, jpeg_quality_max=50), "jpeg_quality"),
    (dict(occlusion_prob=1.5), "occlusion_prob"),
    (dict(image_size=8), "image_size"),
    (dict(seed=-1), "seed"),
])
def test_bad_config_is_refused_with_the_reason(changes, message):
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**changes)


def test_classes_by_name_or_index_and_bad_requests():
    names = syn.class_names(SMALL)
    assert syn.generate_image(SMALL, 2, 1) == syn.generate_image(SMALL, names[2], 1)
    with pytest.raises(KeyError, match="unknown class 'acme'"):
        syn.generate_image(SMALL, "acme", 0)
    with pytest.raises(IndexError):
        syn.generate_image(SMALL, len(names), 0)
    with pytest.raises(ValueError, match=">= 0"):
        syn.generate_image(SMALL, names[0], -1)
