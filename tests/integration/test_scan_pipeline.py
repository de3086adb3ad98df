"""The nightly scan end to end on real local services: an S3 endpoint over HTTP (moto server),
models registered in a sqlite MLflow store, and a local Ray cluster.

One bucket of ~300 objects (every good and bad image kind of tests/image_samples.py plus
generated pictures) is scanned by the real logoxpertnet; a stand-in classifier with a known
answer (`RedSpotter`, registered like any model) checks the decisions and the tiled mode.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pyarrow.dataset as pads
import pytest
import torch
from PIL import Image, ImageDraw

from lxn import storage
from lxn.models import create_model
from lxn.presets import Preset
from lxn.scan.config import ScanConfig
from lxn.scan.fetch import fetch_and_decode
from lxn.scan.pipeline import run
from lxn.scan.predictor import Predictor
from lxn.scan.report import Layout, list_files, read_manifest
from lxn.scan.state import key_hash, read_covered
from lxn.errors import UnsafeModelError
from lxn.tracking import RunTracker, fetch_model, log_model
from tests.image_samples import image_kinds
from tests.known_models import RedSpotter, register_redboxer

REPO = Path(__file__).resolve().parents[2]
DATE = "2025-06-01"
GENERATED = 80
BRANDS = ["acme", "globex", "initech", "no-logo"]


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite MLflow store with `logos@champion` (logoxpertnet, 96 px), `redspot@champion` and
    the detector `redbox@champion`."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    torch.manual_seed(0)
    tracker = RunTracker.start("lxn-test", "register", uri)
    log_model(tracker, create_model("logoxpertnet", num_classes=len(BRANDS)).eval(), preset=Preset(image_size=96),
              class_names=BRANDS, model_config={"name": "logoxpertnet", "num_classes": len(BRANDS)},
              registered_model="logos", alias="champion")
    log_model(tracker, RedSpotter().eval(), preset=Preset(image_size=64, mean=(0.5,) * 3, std=(0.5,) * 3, denoise_sigma=0),
              class_names=["acme", "globex", "no-logo"], model_config={"name": "redspotter"},
              registered_model="redspot", alias="champion")
    register_redboxer(tracker)
    tracker.finish()
    return uri


def picture(i: int) -> tuple[str, bytes]:
    rng = np.random.default_rng(i)
    image = Image.new("RGB", (120, 90), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x, y = int(rng.integers(0, 100)), int(rng.integers(0, 70))
        draw.rectangle([x, y, x + int(rng.integers(5, 40)), y + int(rng.integers(5, 30))],
                       fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    buffer = io.BytesIO()
    fmt = "PNG" if i % 4 == 0 else "JPEG"
    image.save(buffer, format=fmt)
    return f"media/generated/{i:04d}.{fmt.lower().replace('jpeg', 'jpg')}", buffer.getvalue()


@pytest.fixture(scope="module")
def bucket(s3_endpoint):
    """A bucket holding every image kind and GENERATED pictures under media/, plus a text file
    that the default extension filter leaves out. Returns (name, {key: sample name or None})."""
    import boto3
    import uuid

    name = f"lxn-scan-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=name)
    objects = {f"media/kinds/{kind}/{s.filename}": (kind, s.data) for kind, s in image_kinds().items()}
    objects.update({key: (None, data) for key, data in map(picture, range(GENERATED))})
    objects["media/README.txt"] = (None, b"not an image name: left out by the extension filter")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=name, Key=kv[0], Body=kv[1][1]), objects.items()))
    return name, {key: kind for key, (kind, _) in objects.items()}


def scan(store, **settings) -> dict:
    settings = {"model": "models:/logos@champion", "tracking_uri": store, "date": DATE, "batch_size": 16,
                "fetch_threads": 4, **settings}
    result = run(ScanConfig(**settings))
    return result


@pytest.fixture(scope="module")
def first_scan(bucket, store, ray_cluster):
    name, _ = bucket
    return scan(store, source=[f"s3://{name}/media"], out=f"s3://{name}/reports")


def s3_dataset(uri):
    filesystem, path = storage.arrow_filesystem(uri)
    return pads.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive")


# ------------------------------------------------------------------------------------------- tests


def test_every_object_is_one_documented_row(bucket, first_scan):
    name, objects = bucket
    import boto3

    listed = {o["Key"]: o for page in boto3.client("s3").get_paginator("list_objects_v2").paginate(
        Bucket=name, Prefix="media/") for o in page.get("Contents", [])}
    table = s3_dataset(f"s3://{name}/reports").to_table()
    rows = {uri.split(f"s3://{name}/", 1)[1]: row for uri, row in zip(table["uri"].to_pylist(), table.to_pylist())}
    expected_keys = {k for k in objects if not k.endswith(".txt")}
    assert table.num_rows == len(rows) == len(expected_keys)
    assert set(rows) == expected_keys

    kinds = image_kinds()
    for key, kind in objects.items():
        if key.endswith(".txt"):
            continue
        row, info = rows[key], listed[key]
        assert (row["etag"], row["size"]) == (info["ETag"].strip('"'), info["Size"])
        assert row["last_modified"] == info["LastModified"]
        assert (row["scan_id"], row["model_name"], row["model_version"], row["dt"]) == (
            first_scan.scan_id, "logos", "1", DATE)
        sample = kinds.get(kind) if kind else None
        if sample is not None and sample.expected_kind is not None:
            assert (row["status"], row["error_kind"]) == ("error", sample.expected_kind), key
            assert row["error"] and row["brand"] is None and row["confidence"] is None and row["top_brands"] is None
            assert row["width"] is None
            continue
        assert row["status"] == "ok" and row["error"] is None, (key, row["error"])
        assert (row["width"], row["height"]) == (sample.expected_size if sample else (120, 90)), key
        assert len(row["top_brands"]) == 4 and set(row["top_brands"]) == set(BRANDS)
        assert row["confidence"] == pytest.approx(row["top_probs"][0]) and sum(row["top_probs"]) == pytest.approx(1, abs=1e-4)
        assert row["brand"] is None if row["confidence"] < 0.5 or row["top_brands"][0] == "no-logo" else row["brand"] == row["top_brands"][0]
        assert row["box_x0"] is None


def test_summary_success_manifest_and_mlflow_run(bucket, store, first_scan):
    name, objects = bucket
    manifest = first_scan.manifest
    errors = sum(1 for s in image_kinds().values() if s.expected_kind)
    total = len(objects) - 1
    assert manifest["counts"]["listed"] == manifest["counts"]["scanned"] == total
    assert (manifest["counts"]["ok"], manifest["counts"]["error"]) == (total - errors, errors)
    expected_kinds = {}
    for s in image_kinds().values():
        if s.expected_kind:
            expected_kinds[s.expected_kind] = expected_kinds.get(s.expected_kind, 0) + 1
    assert manifest["errors_by_kind"] == dict(sorted(expected_kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    assert manifest["model"] == {"name": "logos", "version": "1", "uri": "models:/logos/1",
                                 "requested": "models:/logos@champion"}
    assert manifest["throughput"]["rows"] == total and manifest["throughput"]["images_per_s"] > 0
    assert manifest["threshold"] == {"value": 0.5, "source": "the default (the version has no lxn.threshold tag)"}
    layout = Layout(f"s3://{name}/reports")
    assert read_manifest(layout, first_scan.scan_id) == manifest
    assert json.loads(storage.read_text(layout.summary(DATE, first_scan.scan_id))) == manifest
    assert list_files(layout.staging_root()) == []

    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("lxn-scans")
    [found] = client.search_runs([experiment.experiment_id], filter_string=f"tags.`lxn.run_name` = '{first_scan.scan_id}'")
    assert found.info.status == "FINISHED"
    assert found.data.metrics["images_scanned"] == total and found.data.metrics["images_error"] == errors
    assert found.data.params["resolved_model"] == "models:/logos/1" and found.data.tags["model_version"] == "1"
    artifacts = [a.path for a in client.list_artifacts(found.info.run_id)]
    assert "scan_summary.json" in artifacts and "nightly.html" in artifacts
    # the nightly page beside the report, served as HTML from the bucket, its thumbnails fetched from S3
    assert first_scan.page == layout.page(DATE, first_scan.scan_id) == found.data.tags["page_uri"]
    import boto3

    bucket_name, key = storage.split_s3(first_scan.page)
    assert boto3.client("s3").head_object(Bucket=bucket_name, Key=key)["ContentType"].startswith("text/html")
    page = storage.read_text(first_scan.page)
    assert f'data-count="scanned">{total:,}<' in page and f'data-count="error">{errors:,}<' in page
    assert page.count("<figure ") == page.count("<img ") and "image unavailable" not in page  # S3 thumbnails load
    assert (manifest["counts"]["with_brand"] > 0) <= (page.count("<img ") > 0)
    assert manifest["drift"]["drifted"] is None and manifest["drift"]["reason"] == "0 trailing nights, 3 needed"
    assert sum(manifest["confidence_histogram"]) == manifest["counts"]["ok"]


def test_a_night_on_s3_goes_out_for_review_and_the_answers_come_back_as_a_dataset(bucket, first_scan):
    from lxn.data.coco import read_coco
    from lxn.review.export import ExportConfig, export
    from lxn.review.folder import ExportFolder
    from lxn.review.ingest import ImportConfig, ingest

    name, _ = bucket
    done = export(ExportConfig(scans=f"s3://{name}/reports", out=f"s3://{name}/review/{DATE}", band=0.5, audit=0))
    folder = ExportFolder(done["export"])
    manifest = folder.read_manifest()
    assert done["night"] == DATE and done["rows"] == len(manifest["items"]) > 0
    tasks = json.loads(storage.read_text(folder.tasks))
    assert all(t["data"]["image"].startswith(f"s3://{name}/media/") for t in tasks)
    for item in manifest["items"]:
        assert Image.open(io.BytesIO(storage.read_bytes(folder.image(item["file_name"])))).size == (item["width"], item["height"])
    for n, t in enumerate(tasks, start=1):  # a person who accepts every pre-annotation
        t["id"], t["annotations"] = n, [{"id": n, "result": t["predictions"][0]["result"], "was_cancelled": False}]
    storage.write_text(f"s3://{name}/labels/export.json", json.dumps(tasks))
    got = ingest(ImportConfig(export=folder.root, labels=f"s3://{name}/labels/export.json", out=f"s3://{name}/reviewed"))
    predicted = sum(len(i["predicted"]) for i in manifest["items"])
    assert got["reviewed"] == len(tasks) and got["outcomes"]["confirmed"] == predicted == got["boxes"]
    samples = list(read_coco(f"s3://{name}/reviewed"))
    assert len(samples) == len(tasks) and all(storage.exists(s.uri) for s in samples)


def test_pyarrow_and_duckdb_read_the_s3_report_alike(bucket, first_scan):
    name, _ = bucket
    dataset = s3_dataset(f"s3://{name}/reports")
    by_pyarrow = dataset.to_table().group_by("status").aggregate([("uri", "count")]).to_pylist()
    by_duckdb = duckdb.sql("select status, count(uri) from dataset group by status").fetchall()
    assert {r["status"]: r["uri_count"] for r in by_pyarrow} == dict(by_duckdb)


def test_incremental_rescan_full_rescan_and_rerun(bucket, store, first_scan):
    import boto3

    name, objects = bucket
    client = boto3.client("s3")
    source, out = [f"s3://{name}/media"], f"s3://{name}/reports"
    again = scan(store, source=source, out=out)  # same command, same day: already done
    assert again.already_committed and again.scan_id == first_scan.scan_id

    changed = "media/generated/0001.jpg"
    client.put_object(Bucket=name, Key=changed, Body=picture(10_001)[1])  # new content, new ETag
    client.put_object(Bucket=name, Key="media/new/a.png", Body=picture(10_002)[1])
    client.put_object(Bucket=name, Key="media/new/b.jpg", Body=b"<html>not really</html>")
    next_day = scan(store, source=source, out=out, date="2025-06-02")
    counts = next_day.manifest["counts"]
    assert counts["skipped_unchanged"] == len(objects) - 2 and counts["scanned"] == 3
    report = s3_dataset(f"{out}/dt=2025-06-02").to_table()
    assert sorted(report["uri"].to_pylist()) == sorted(f"s3://{name}/{k}" for k in (changed, "media/new/a.png", "media/new/b.jpg"))

    nothing_new = scan(store, source=source, out=out, date="2025-06-03")
    assert nothing_new.manifest["counts"]["scanned"] == 0 and nothing_new.manifest["report"]["rows"] == 0
    assert s3_dataset(f"{out}/dt=2025-06-03").count_rows() == 0

    # --full rescans what is covered (the two new objects, scanned the day before)
    covered_source = [f"s3://{name}/media/new"]
    assert scan(store, source=covered_source, out=out, date="2025-06-03").manifest["counts"]["scanned"] == 0
    full = scan(store, source=covered_source, out=out, date="2025-06-03", full=True)
    assert full.manifest["counts"] == {**full.manifest["counts"], "skipped_unchanged": 0, "scanned": 2}
    assert s3_dataset(out).count_rows() == (len(objects) - 1) + 3 + 0 + 0 + 2


def test_manifest_of_keys_into_a_local_report(bucket, store, ray_cluster, tmp_path):
    import boto3

    name, _ = bucket
    keys = ["generated/0002.jpg", "generated/0003.jpg", "kinds/truncated_jpeg/photos/partial.jpg",
            "generated/0002.jpg", f"s3://{name}/media/generated/0004.png", "generated/does-not-exist.jpg"]
    boto3.client("s3").put_object(Bucket=name, Key="manifests/tonight.txt", Body="\n".join(keys).encode())
    out = tmp_path / "reports"
    result = scan(store, source=[f"s3://{name}/media"], manifest=f"s3://{name}/manifests/tonight.txt", out=str(out))
    assert result.manifest["counts"]["duplicates"] == 1
    rows = duckdb.sql(f"select uri, status, error_kind, dt from read_parquet('{out}/dt=*/*.parquet', "
                      "hive_partitioning=true) order by uri").fetchall()
    base = f"s3://{name}/media/"
    assert rows == [
        (base + "generated/0002.jpg", "ok", None, dt.date(2025, 6, 1)),
        (base + "generated/0003.jpg", "ok", None, dt.date(2025, 6, 1)),
        (base + "generated/0004.png", "ok", None, dt.date(2025, 6, 1)),
        (base + "generated/does-not-exist.jpg", "error", "missing", dt.date(2025, 6, 1)),
        (base + "kinds/truncated_jpeg/photos/partial.jpg", "error", "truncated", dt.date(2025, 6, 1)),
    ]
    # the missing object is not covered (the next incremental scan tries it again); the truncated one is
    covered = set(read_covered(Layout(str(out)).covered(result.scan_id)).tolist())
    assert key_hash(base + "generated/does-not-exist.jpg", "") not in covered and len(covered) == 4


def red_logo_photo(path: Path, scale: int = 4) -> None:
    """A grey 240x180 frame (times `scale`) with a small red logo in the bottom-right corner."""
    image = Image.new("RGB", (240 * scale, 180 * scale), (128, 128, 128))
    ImageDraw.Draw(image).rectangle([190 * scale, 140 * scale, 230 * scale - 1, 170 * scale - 1], fill=(255, 0, 0))
    image.save(path, quality=95)


def test_tiles_find_a_small_logo_the_whole_image_misses(store, ray_cluster, tmp_path):
    source = tmp_path / "photos"
    source.mkdir()
    red_logo_photo(source / "match.jpg")  # 960x720: decoded at 1/4 for the tiles
    Image.new("RGB", (200, 100), (255, 0, 0)).save(source / "all-red.png")
    Image.new("RGB", (200, 100), (0, 0, 255)).save(source / "blue.png")
    result = scan(store, model="models:/redspot@champion", source=[str(source)], out=str(tmp_path / "out"),
                  tiles=[2, 3], batch_size=4)
    rows = {Path(r["uri"]).name: r for r in pads.dataset(str(tmp_path / "out"), format="parquet").to_table().to_pylist()}
    match = rows["match.jpg"]
    assert match["brand"] == "acme" and match["confidence"] > 0.85
    # the bottom-right tile of the 3x3 grid, in the original 960x720 pixels
    assert (match["box_x0"], match["box_y0"], match["box_x1"], match["box_y1"]) == (480, 360, 960, 720)
    assert rows["all-red.png"]["brand"] == "acme" and rows["all-red.png"]["box_x1"] == 200  # the whole image
    assert rows["blue.png"]["brand"] is None and rows["blue.png"]["top_brands"][0] == "no-logo"
    assert result.manifest["brands"] == {"acme": 2}


def test_the_scan_uses_the_versions_threshold_unless_the_flag_says_otherwise(store, ray_cluster, tmp_path):
    from lxn import registry
    from tests.known_models import register_redspot

    tracker = RunTracker.start("lxn-test", "threshold-tag", store)
    ref = register_redspot(tracker, name="redspot-tagged")
    tracker.finish()
    client = mlflow.MlflowClient(tracking_uri=store)
    for key, value in registry.threshold_tags({"threshold": 0.95, "precision": 0.97, "recall": 0.6}, 0.95,
                                              "val split of /data/prepared").items():
        client.set_model_version_tag(ref.name, ref.version, key, value)
    source = tmp_path / "photos"
    source.mkdir()
    image = Image.new("RGB", (90, 90), (128, 128, 128))
    ImageDraw.Draw(image).rectangle([30, 30, 59, 59], fill=(255, 0, 0))  # 1/9 red: acme at p ~0.91
    image.save(source / "ninth.png")

    def rows(out):
        return pads.dataset(str(out), format="parquet").to_table().to_pylist()

    tagged = scan(store, model="models:/redspot-tagged@champion", source=[str(source)], out=str(tmp_path / "tagged"))
    assert tagged.manifest["threshold"]["value"] == 0.95
    assert "lxn.threshold tag (precision 0.95 on val split of /data/prepared)" in tagged.manifest["threshold"]["source"]
    [row] = rows(tmp_path / "tagged")
    assert row["brand"] is None and row["top_brands"][0] == "acme" and 0.85 < row["confidence"] < 0.95

    flagged = scan(store, model="models:/redspot-tagged@champion", source=[str(source)], out=str(tmp_path / "flagged"),
                   threshold=0.5)
    assert flagged.manifest["threshold"] == {"value": 0.5, "source": "--threshold"}
    assert rows(tmp_path / "flagged")[0]["brand"] == "acme"

    client.set_model_version_tag(ref.name, ref.version, registry.THRESHOLD, "1.5")
    with pytest.raises(ValueError, match="not a threshold within 0..1: fix the tag or pass --threshold"):
        scan(store, model="models:/redspot-tagged@champion", source=[str(source)], out=str(tmp_path / "bad"))


def test_predictor_decides_without_ray(store, tmp_path):
    red_logo_photo(tmp_path / "match.jpg", scale=1)
    Image.new("RGB", (60, 40), (255, 0, 0)).save(tmp_path / "red.png")
    n = 2
    batch = {"row_id": np.arange(n), "uri": np.array([str(tmp_path / "match.jpg"), str(tmp_path / "red.png")], object),
             "etag": np.array(["a", ""], object), "size": np.array([10, -1]),
             "last_modified": np.array(["2025-01-01T00:00"] * n, "datetime64[us]"), "key_hash": np.arange(n, dtype=np.uint64)}

    def predict(grids=(), **settings):
        decoded = fetch_and_decode(dict(batch), preset=Preset(image_size=64, mean=(0.5,) * 3, std=(0.5,) * 3,
                                                              denoise_sigma=0).to_dict(),
                                   grids=grids, max_bytes=10**7, max_pixels=10**7)
        predictor = Predictor(model, scan_id="s", **settings)
        return predictor(decoded).to_pylist()

    model = fetch_model("models:/redspot@champion", store, task=None)
    assert model.ref.uri == "models:/redspot/1"  # the alias resolved once, by the job
    whole = predict()
    assert [r["brand"] for r in whole] == [None, "acme"]  # the small logo is lost at full-frame scale
    assert whole[0]["top_brands"][0] == "no-logo" and whole[0]["box_x0"] is None
    assert whole[1]["etag"] is None and whole[1]["size"] is None  # unknowns are nulls in the report
    assert [r["brand"] for r in predict(grids=(3,))] == ["acme", "acme"]
    assert [r["brand"] for r in predict(grids=(3,), threshold=0.95)] == [None, "acme"]
    assert [r["brand"] for r in predict(no_logo_class="absent", threshold=0.0)] == ["no-logo", "acme"]
    assert len(predict(top_k=2)[0]["top_brands"]) == 2
    with pytest.raises(ValueError, match="needs a registered version"):
        Predictor(dataclasses.replace(model, ref=None), scan_id="s")
    with pytest.raises(UnsafeModelError, match="changed after they were checked"):
        Predictor(dataclasses.replace(model, pt2=model.pt2[:-1] + b"x"), scan_id="s")


def test_every_brand_in_a_picture_is_a_detection_with_its_box(store, tmp_path):
    """A 640x480 press-like frame with a red (acme) and a blue (globex) mark, each ~1/5 of the
    short side: the whole image sees neither; the tiles see both, once each, where they are."""
    from tests.known_models import TwoSpotter, register_spotter

    tracker = RunTracker.start("lxn-test", "two-spotter", store)
    ref = register_spotter(tracker, TwoSpotter(), "two-spots")
    tracker.finish()
    truth = {"acme": (40, 60, 140, 160), "globex": (470, 330, 590, 450)}
    image = Image.new("RGB", (640, 480), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    draw.rectangle([*truth["acme"][:2], truth["acme"][2] - 1, truth["acme"][3] - 1], fill=(255, 0, 0))
    draw.rectangle([*truth["globex"][:2], truth["globex"][2] - 1, truth["globex"][3] - 1], fill=(0, 0, 255))
    image.save(tmp_path / "scene.png")
    batch = {"row_id": np.arange(1), "uri": np.array([str(tmp_path / "scene.png")], object), "etag": np.array(["e"], object),
             "size": np.array([1]), "last_modified": np.array(["2025-01-01T00:00"], "datetime64[us]"),
             "key_hash": np.arange(1, dtype=np.uint64)}

    def predict(grids):
        decoded = fetch_and_decode(dict(batch), preset=Preset(image_size=64, mean=(0.5,) * 3, std=(0.5,) * 3,
                                                              denoise_sigma=0).to_dict(),
                                   grids=grids, max_bytes=10**7, max_pixels=10**7)
        return Predictor(fetch_model(ref.uri, store), scan_id="s")(decoded).to_pylist()[0]

    whole = predict(())
    assert whole["brand"] is None and whole["detections"] == []
    row = predict((2, 3))
    found = {d["brand"]: d for d in row["detections"]}
    assert [d["brand"] for d in row["detections"]].count("acme") == 1 and len(row["detections"]) == 2
    assert row["brand"] == row["detections"][0]["brand"] and row["confidence"] == row["detections"][0]["confidence"]
    assert all(d["source"] == "classifier" and d["confidence"] >= 0.5 for d in row["detections"])
    for brand, (x0, y0, x1, y1) in truth.items():
        d = found[brand]
        inter = max(0, min(x1, d["x1"]) - max(x0, d["x0"])) * max(0, min(y1, d["y1"]) - max(y0, d["y0"]))
        assert inter == (x1 - x0) * (y1 - y0), (brand, d)  # the box holds the whole mark...
        assert (d["x1"] - d["x0"]) * (d["y1"] - d["y0"]) <= 320 * 240  # ...and is no bigger than a 3x3 tile


def test_a_registered_detector_scans_like_any_model_with_boxes_in_original_pixels(store, ray_cluster, tmp_path, capsys):
    source = tmp_path / "photos"
    source.mkdir()
    image = Image.new("RGB", (640, 256), (40, 200, 40))
    ImageDraw.Draw(image).rectangle([200, 64, 359, 191], fill=(255, 0, 0))  # x 200..360, y 64..192 (exclusive)
    image.save(source / "banner.png")
    Image.new("RGB", (300, 300), (0, 0, 255)).save(source / "blue.png")
    (source / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    result = scan(store, model="models:/redbox@champion", source=[str(source)], out=str(tmp_path / "out"), batch_size=4)
    rows = {Path(r["uri"]).name: r for r in pads.dataset(str(tmp_path / "out"), format="parquet").to_table().to_pylist()}
    assert len(rows) == 3
    banner = rows["banner.png"]
    assert (banner["brand"], banner["brand_source"]) == ("acme", "detector")
    assert banner["confidence"] == pytest.approx(0.9)
    (mark,) = banner["detections"]
    box = (mark["x0"], mark["y0"], mark["x1"], mark["y1"])
    # the model saw 128 x 128: one of its pixels is 5 x 2 of the banner's
    assert box == pytest.approx((200, 64, 360, 192), abs=5)
    assert box[0] >= 190 and box[2] <= 370 and box[1] >= 60 and box[3] <= 196
    assert (banner["box_x0"], banner["box_y0"], banner["box_x1"], banner["box_y1"]) == box  # the best mark's
    blue = rows["blue.png"]
    assert blue["brand"] is None and blue["detections"] == [] and blue["box_x0"] is None
    assert blue["status"] == "ok" and rows["broken.jpg"]["status"] == "error"
    assert result.manifest["brands"] == {"acme": 1}

    # the classifier's tiles are no setting of a detector scan: refused before anything runs
    from lxn.jobs.scan import main

    code = main(["--source", str(source), "--out", str(tmp_path / "tiled"), "--model", "models:/redbox@champion",
                 "--tracking-uri", store, "--date", DATE, "--tiles", "2"])
    assert code == 2 and "is a detector" in capsys.readouterr().err
    assert not (tmp_path / "tiled" / f"dt={DATE}").exists()
