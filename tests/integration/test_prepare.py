"""The prepare job on an S3 endpoint over HTTP: planted duplicates, bad files, leakage, strata,
and a second run into the same output."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest
from PIL import Image

from lxn import storage
from lxn.data.prepare import PrepareConfig, run
from lxn.data.prepared import SPLITS, read_manifest, split_uri
from lxn.data.synthetic import SyntheticConfig, generate_image
from tests.image_samples import image_kinds

pytestmark = pytest.mark.slow

DATA = SyntheticConfig(num_brands=4, images_per_brand=20, no_logo_images=10, image_size=128, seed=3)
SMALL_TASKS = dict(batch_size=16, load_block_rows=16)  # several load tasks even for 99 images
BAD = ["empty", "html_as_jpg", "truncated_jpeg", "png_bomb"]


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bucket_dataset(s3_endpoint, ray_cluster):
    import boto3

    bucket = "lxn-prepare-test"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    root = f"s3://{bucket}/images"
    from lxn.data.synthetic import class_names

    names = class_names(DATA)
    brands = [n for n in names if n != "no-logo"]
    for name in names:
        count = DATA.no_logo_images if name == "no-logo" else DATA.images_per_brand
        for i in range(count):
            storage.write_bytes(f"{root}/{name}/{i:03d}.jpg", generate_image(DATA, name, i))

    a, b, c, d = brands
    original = Image.open(io.BytesIO(generate_image(DATA, b, 1)))
    w, h = original.size
    planted = {
        f"{a}/copy-exact.jpg": generate_image(DATA, a, 0),                                  # of {a}/000
        f"{b}/copy-resized.jpg": _jpeg(original.resize((int(w * 0.7), int(h * 0.7)))),     # of {b}/001
        f"{b}/copy-reencoded.png": _png(original),
        f"{b}/copy-cropped.jpg": _jpeg(original.crop((3, 3, w - 3, h - 3)), quality=60),
        f"{d}/filed-under-two-brands.jpg": generate_image(DATA, c, 2),                      # of {c}/002
    }
    kinds = image_kinds()
    kind_names = {name: kinds[name] for name in BAD}
    for name, sample in kind_names.items():
        planted[f"{a}/bad-{name}-{sample.filename.rsplit('/', 1)[-1]}"] = sample.data
    for rel, data in planted.items():
        storage.write_bytes(f"{root}/{rel}", data)
    return root, f"s3://{bucket}/prepared", names, (a, b, c, d), kind_names


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _rows(out: str):
    rows = {}
    for split in SPLITS:
        filesystem, path = storage.arrow_filesystem(split_uri(out, split))
        table = pads.dataset(path, filesystem=filesystem, format="parquet").to_table(
            columns=["source_uri", "class_name", "label", "group", "phash", "image"])
        for row in table.to_pylist():
            rows[row["source_uri"]] = {**row, "split": split}
    return rows


@pytest.fixture(scope="module")
def prepared(bucket_dataset):
    source, out, *_ = bucket_dataset
    manifest = run(PrepareConfig(source=[source], out=out, seed=7, **SMALL_TASKS))
    return manifest, _rows(out)


def test_manifest_describes_the_output(bucket_dataset, prepared):
    source, out, names, *_ = bucket_dataset
    manifest, rows = prepared
    assert manifest == read_manifest(out)
    assert manifest.classes == names
    assert sum(manifest.split_size(s) for s in SPLITS) == len(rows)
    assert all(0 < m < 1 for m in manifest.mean) and all(0 < s < 0.5 for s in manifest.std)
    assert manifest.duplicates["leakage"]["crossing_groups"] == 0
    assert manifest.seed == 7 and manifest.format == "imagefolder" and manifest.source == source
    for row in list(rows.values())[:5]:  # stored images are re-encoded JPEGs within the bound
        image = Image.open(io.BytesIO(row["image"]))
        assert image.format == "JPEG" and max(image.size) <= 320


def test_bad_files_are_quarantined_with_reasons(bucket_dataset, prepared):
    _, out, _, (a, *_), kinds = bucket_dataset
    quarantine = json.loads(storage.read_text(f"{out}/quarantine.json"))
    found = {item["source_uri"].rsplit("/", 1)[1]: item for item in quarantine}
    for name, sample in kinds.items():
        item = found[f"bad-{name}-{sample.filename.rsplit('/', 1)[-1]}"]
        assert item["kind"] == sample.expected_kind and item["reason"]
    assert prepared[0].quarantined == len(kinds)


def test_planted_duplicates_keep_one_representative(bucket_dataset, prepared):
    source, _, _, (a, b, c, d), _ = bucket_dataset
    _, rows = prepared
    exact = {f"{source}/{a}/000.jpg", f"{source}/{a}/copy-exact.jpg"}
    near = {f"{source}/{b}/001.jpg", f"{source}/{b}/copy-resized.jpg", f"{source}/{b}/copy-reencoded.png",
            f"{source}/{b}/copy-cropped.jpg"}
    assert len(exact & rows.keys()) == 1
    assert len(near & rows.keys()) == 1
    # one picture filed under two brands: the group is dropped (label_conflicts="drop")
    assert not {f"{source}/{c}/002.jpg", f"{source}/{d}/filed-under-two-brands.jpg"} & rows.keys()


def test_shards_are_shuffled_not_in_class_order(bucket_dataset, prepared):
    """Listing order is class order; training workers and shuffle buffers need mixed blocks."""
    _, out, *_ = bucket_dataset
    filesystem, path = storage.arrow_filesystem(split_uri(out, "train"))
    labels = pads.dataset(path, filesystem=filesystem, format="parquet").to_table(columns=["label"])["label"].to_pylist()
    changes = sum(a != b for a, b in zip(labels, labels[1:]))
    assert changes > len(set(labels)) * 5, f"only {changes} class changes in {len(labels)} rows"


def test_loading_is_spread_over_small_tasks(prepared):
    """One load task per `load_block_rows` listing rows (a task takes at least `batch_size`), not
    one for the whole listing (which would load on one CPU, with memory growing with the data).
    The last, short block may join another one's task (Ray Data bundles inputs up to the batch
    size, depending on which arrive together): 99 rows give 6 or 7 tasks of 16."""
    manifest, _ = prepared
    assert manifest.extra["load_tasks"] >= manifest.extra["images_listed"] // 16


def test_no_group_crosses_splits(prepared):
    _, rows = prepared
    split_of_group: dict[int, str] = {}
    for row in rows.values():
        assert split_of_group.setdefault(row["group"], row["split"]) == row["split"]


def test_splits_are_stratified_within_one_image_per_class(prepared):
    manifest, rows = prepared
    for name in manifest.classes:
        total = sum(manifest.counts[s][name] for s in SPLITS)
        for split, fraction in zip(SPLITS, (0.8, 0.1, 0.1)):
            assert abs(manifest.counts[split][name] - fraction * total) <= 1, (name, split)
        assert sum(1 for r in rows.values() if r["class_name"] == name) == total


def test_rerun_into_the_same_output_is_safe_and_identical(bucket_dataset, prepared, caplog):
    source, out, *_ = bucket_dataset
    manifest, rows = prepared
    with caplog.at_level("INFO", logger="lxn.data.prepare"):  # bars off, as in a RayJob: progress lines instead
        again = run(PrepareConfig(source=[source], out=out, seed=7, progress_bars=False, progress_every=0.05,
                                  **SMALL_TASKS))
    listed = manifest.extra["images_listed"]
    assert f"prepare: images loaded: {listed:,}/{listed:,} (100%)" in caplog.text
    def result(m):  # what the manifest says of the data; how many load tasks ran is not that
        return {**{k: v for k, v in m.__dict__.items() if k != "created_at"},
                "extra": {k: v for k, v in m.extra.items() if k != "load_tasks"}}

    assert result(again) == result(manifest)
    rerun_rows = _rows(out)
    assert {u: r["split"] for u, r in rerun_rows.items()} == {u: r["split"] for u, r in rows.items()}
    assert not list(storage.iter_objects(f"{out}/_staging"))
    different_seed = run(PrepareConfig(source=[source], out=out + "-seed8", seed=8))
    assert {u: r["split"] for u, r in _rows(out + "-seed8").items()} != {u: r["split"] for u, r in rows.items()}
    totals = lambda m: {c: sum(m.counts[s][c] for s in SPLITS) for c in m.classes}  # noqa: E731
    assert totals(different_seed) == totals(manifest)  # the same images kept, split differently


def test_embedding_pass_merges_what_the_model_finds_alike(bucket_dataset, tmp_path):
    """An lxn model's embedding, loaded from the registry, as the pluggable near-duplicate pass:
    at cosine -1 every pair is alike and the whole dataset becomes one group. (Which pairs merge
    at a given threshold is tests/unit/test_dedup.py's; this checks the wiring through prepare.)"""
    from lxn.models import create_model
    from lxn.presets import Preset
    from lxn.tracking import RunTracker, log_model

    source, out, names, *_ = bucket_dataset
    store = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = RunTracker.start("lxn-test", "embedder", store)
    log_model(tracker, create_model("logoxpertnet", num_classes=len(names), width_mult=0.5).eval(),
              preset=Preset(image_size=64), class_names=names,
              model_config={"name": "logoxpertnet", "num_classes": len(names), "width_mult": 0.5},
              registered_model="embedder", alias="champion")
    common = dict(source=[source], embedding_model="models:/embedder@champion", tracking_uri=store,
                  label_conflicts="keep", near_duplicate_radius=0)
    loose = run(PrepareConfig(out=out + "-emb-loose", embedding_threshold=-1.0, **common))
    assert loose.duplicates["embedding"]["pairs"] > 0
    assert loose.duplicates["groups"] == 1 and sum(loose.split_size(s) for s in SPLITS) == 1


def test_a_coco_export_prepares_with_its_boxes_on_the_stored_copy(s3_endpoint, ray_cluster, tmp_path):
    """Boxes follow the stored copy's resize; an image whose annotations were made for another
    size is a quarantine row, not misplaced boxes; a brand seen only as a second mark is a class.
    A review round (`jobs/review.py import`'s COCO folder) is one more source: its new image is
    in, and its copy of an image the base set has is deduplicated against it."""
    from lxn.data.coco import ANNOTATIONS, read_coco, write_coco
    from lxn.data.scenes import SceneConfig, write_scenes
    from lxn.images import decode_image, encode_jpeg

    root = write_scenes(SyntheticConfig(num_brands=4), SceneConfig(scenes=30, width=320, height=240, min_marks=0),
                        str(tmp_path / "coco"))
    document = json.loads((tmp_path / "coco" / ANNOTATIONS).read_text())
    document["images"][5]["width"] = 240  # as if labelled on a rotated view
    (tmp_path / "coco" / ANNOTATIONS).write_text(json.dumps(document))
    base = list(read_coco(root))
    seen = next(s for s in base if s.extra["boxes"])  # the scan met a training image again
    again = encode_jpeg(decode_image(Path(seen.uri).read_bytes()).pixels, quality=80)
    fresh = encode_jpeg((np.random.default_rng(7).random((240, 320, 3)) * 255).astype(np.uint8))
    review = write_coco(str(tmp_path / "review"), [
        ("00000-again.jpg", again, 320, 240, seen.extra["boxes"]),
        ("00001-fresh.jpg", fresh, 320, 240, [{"label": "newco", "box": [10, 10, 90, 70]}])],
        sorted({"newco", *(b["label"] for b in seen.extra["boxes"])}))
    truth = {s.uri: s.extra["boxes"] for s in [*base, *read_coco(review)]}

    manifest = run(PrepareConfig(source=[root, review], format="coco", out=str(tmp_path / "prepared"), store_side=120,
                                 **SMALL_TASKS))
    assert manifest.has_boxes and manifest.quarantined == 1
    quarantine = json.loads((tmp_path / "prepared" / "quarantine.json").read_text())
    assert [q["kind"] for q in quarantine] == ["size_mismatch"] and "240x240" in quarantine[0]["reason"]
    rows = {}
    for split in SPLITS:
        table = pads.dataset(split_uri(str(tmp_path / "prepared"), split), format="parquet").to_table()
        rows.update({r["source_uri"]: r for r in table.to_pylist()})
    assert sum(manifest.box_counts.values()) == sum(len(rows[u]["boxes"]) for u in rows)
    scale = 120 / 240  # 320x240 stored at 160x120
    for uri, row in rows.items():
        stored = Image.open(io.BytesIO(row["image"]))
        assert stored.size == (160, 120)
        assert [b["label"] for b in row["boxes"]] == [manifest.classes.index(b["label"]) for b in truth[uri]]
        got = [v for b in row["boxes"] for v in (b["x0"], b["y0"], b["x1"], b["y1"])]
        assert got == pytest.approx([v * scale for b in truth[uri] for v in b["box"]], abs=1e-3)
    assert set(manifest.classes) >= {b["label"] for boxes in truth.values() for b in boxes}
    assert str(tmp_path / "review" / "images" / "00001-fresh.jpg") in rows
    assert (seen.uri in rows) + (str(tmp_path / "review" / "images" / "00000-again.jpg") in rows) == 1
    assert len(rows) == 30 - 1 + 2 - 1
