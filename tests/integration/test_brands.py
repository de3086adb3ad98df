"""Onboarding a brand from examples, the open set, embeddings and search, on real local services:
a sqlite MLflow store, examples on the S3 endpoint (moto server), a local Ray cluster for scans.

The model is `card_classifier` (tests.known_models): a real LogoXpertNet whose last layer knows
red (acme), blue (globex) and plain grey (no-logo) cards; green (initech) it never saw.
"""

from __future__ import annotations

import importlib.util
import io
import json
import uuid
from pathlib import Path

import boto3
import mlflow
import pyarrow.dataset as pads
import pytest

from lxn import registry
from lxn.scan.config import ScanConfig
from lxn.scan.pipeline import run as run_scan
from lxn.tracking import RunTracker
from tests.known_models import CARD_COLOURS, checkerboard, colour_card, register_card_classifier, register_redspot

REPO = Path(__file__).resolve().parents[2]
UNKNOWN_BELOW = 0.75  # known cards are >= 0.80 from their class, the checkerboard <= 0.70 from all


def _job(name):
    spec = importlib.util.spec_from_file_location(f"{name}_job", REPO / f"jobs/{name}.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    return job


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    tracker = RunTracker.start("lxn-test", "register", uri)
    register_card_classifier(tracker)             # cards v1 @champion
    register_redspot(tracker, name="redspot")     # no embeddings
    tracker.finish()
    mlflow.MlflowClient(tracking_uri=uri).set_model_version_tag("cards", "1", registry.THRESHOLD, "0.6")
    return uri


@pytest.fixture(scope="module")
def examples(s3_endpoint):
    """s3://<bucket>/initech/: six green cards, a corrupt JPEG and a text file."""
    name = f"lxn-brands-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=name)
    for i in range(6):
        client.put_object(Bucket=name, Key=f"initech/{i}.png", Body=_png(colour_card(CARD_COLOURS["initech"], 100 + i)))
    client.put_object(Bucket=name, Key="initech/broken.jpg", Body=b"\xff\xd8\xff\xe0 not really")
    client.put_object(Bucket=name, Key="initech/notes.txt", Body=b"brand guidelines")
    client.put_object(Bucket=name, Key="nothing/broken.jpg", Body=b"\xff\xd8\xff\xe0 not really")
    return name


@pytest.fixture(scope="module")
def onboarded(store, examples, tmp_path_factory):
    """initech added from the S3 examples, calibrated on 24 typical (red, blue, grey) cards."""
    reference = tmp_path_factory.mktemp("reference")
    for i in range(24):
        colour_card([CARD_COLOURS["acme"], CARD_COLOURS["globex"], None][i % 3], 500 + i).save(reference / f"{i}.png")
    job = _job("brands")
    code = job.main(["add", "--model", "models:/cards@champion", "--brand", "initech",
                     "--examples", f"s3://{examples}/initech/", "--reference", str(reference), "--max-taken", "0.05",
                     "--tracking-uri", store])
    assert code == 0
    return mlflow.MlflowClient(tracking_uri=store)


def _versions(store, name="cards"):
    return sorted(int(v.version) for v in mlflow.MlflowClient(tracking_uri=store).search_model_versions(f"name='{name}'"))


def test_a_brand_added_from_examples_is_a_new_version_that_the_alias_names(store, onboarded, capsys):
    client = onboarded
    champion = client.get_model_version_by_alias("cards", "champion")
    assert str(champion.version) == "2"
    assert str(client.get_model_version_by_alias("cards", registry.PREVIOUS_CHAMPION).version) == "1"
    assert champion.tags[registry.DERIVED_FROM] == "models:/cards/1"
    assert champion.tags[registry.PROTOTYPE_BRANDS] == "initech" and champion.tags[registry.THRESHOLD] == "0.6"
    assert _job("brands").main(["list", "--model", "models:/cards@champion", "--tracking-uri", store]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["classes"] == ["acme", "globex", "no-logo"]
    [proto] = listed["prototypes"]
    assert proto["brand"] == "initech" and proto["examples"] == 6  # the corrupt JPEG skipped, the text file not listed
    from lxn.tracking import load_model

    [stored] = load_model("models:/cards@champion", store).prototypes.prototypes
    assert stored.calibration["images"] == 24 and stored.calibration["max_taken"] == 0.05
    assert stored.calibration["examples_won"] == 1.0  # green is far from red, blue and grey: it wins its own examples


def test_bad_input_exits_2_and_registers_nothing(store, examples, onboarded, capsys):
    job = _job("brands")
    before = {"cards": _versions(store), "redspot": _versions(store, "redspot")}
    base = ["--tracking-uri", store]
    cases = [
        (["add", "--model", "models:/cards@champion", "--brand", "hooli", "--examples", f"s3://{examples}/nothing/"],
         "only 0 of 1 files"),
        (["add", "--model", "models:/cards@champion", "--brand", "Acme", "--examples", f"s3://{examples}/initech/"],
         "exists in this model"),
        (["add", "--model", "models:/cards@champion", "--brand", "initech", "--examples", f"s3://{examples}/initech/"],
         "exists in this model"),
        (["add", "--model", "models:/redspot@champion", "--brand", "hooli", "--examples", f"s3://{examples}/initech/"],
         "has no embeddings"),
        (["add", "--model", "models:/cards@champion", "--brand", "hooli", "--examples", f"s3://{examples}/absent/"],
         "no image files"),
        (["remove", "--model", "models:/cards@champion", "--brand", "acme"], "trained classes cannot be removed"),
    ]
    for argv, reason in cases:
        assert job.main(argv + base) == 2, argv
        assert reason in capsys.readouterr().err, argv
    assert {"cards": _versions(store), "redspot": _versions(store, "redspot")} == before


@pytest.fixture(scope="module")
def scanned(store, onboarded, ray_cluster, tmp_path_factory):
    """A scan of green, red, blue, grey cards and a checkerboard with the onboarded champion,
    embeddings stored and the open set on."""
    photos = tmp_path_factory.mktemp("photos")
    for i in range(3):
        colour_card(CARD_COLOURS["initech"], 300 + i, size=(96, 80)).save(photos / f"initech-{i}.png")
        colour_card(CARD_COLOURS["acme"], 300 + i).save(photos / f"acme-{i}.png")
    colour_card(CARD_COLOURS["globex"], 300).save(photos / "globex-0.png")
    colour_card(None, 300).save(photos / "grey-0.png")
    checkerboard(300).save(photos / "checker-0.png")
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = tmp_path_factory.mktemp("reports")
    result = run_scan(ScanConfig(model="models:/cards@champion", source=[str(photos)], out=str(out), tracking_uri=store,
                                 date="2026-12-01", batch_size=8, fetch_threads=2, progress_bars=False,
                                 embeddings="float16", unknown_below=UNKNOWN_BELOW))
    rows = {Path(r["uri"]).stem: r for r in pads.dataset(str(out), format="parquet").to_table().to_pylist()}
    return result, rows, out, photos


def test_the_scan_reports_the_onboarded_brand_and_unknown_marks(scanned):
    result, rows, _, _ = scanned
    for i in range(3):
        assert (rows[f"initech-{i}"]["brand"], rows[f"initech-{i}"]["brand_source"]) == ("initech", "prototype")
        assert (rows[f"acme-{i}"]["brand"], rows[f"acme-{i}"]["brand_source"]) == ("acme", "classifier")
    assert rows["initech-0"]["detections"][0]["source"] == "prototype"
    assert rows["globex-0"]["brand"] == "globex"
    assert rows["grey-0"]["brand"] is None and rows["grey-0"]["brand_source"] is None
    checker = rows["checker-0"]
    assert checker["brand"] is None and checker["brand_source"] == "unknown" and checker["detections"] == []
    corrupt = rows["corrupt"]
    assert corrupt["status"] == "error" and corrupt["embedding"] is None and corrupt["detections"] is None
    assert result.manifest["counts"]["unknown_mark"] == 1
    assert result.manifest["brands"] == {"acme": 3, "initech": 3, "globex": 1}
    assert result.manifest["prototype_brands"] == ["initech"]
    assert result.manifest["unknown_below"] == {"value": UNKNOWN_BELOW, "source": "--unknown-below"}


def test_search_finds_the_planted_near_duplicates_first(store, scanned, capsys, tmp_path):
    _, rows, out, photos = scanned
    assert all(len(r["embedding"]) == 2 * 1280 + 1 for r in rows.values() if r["status"] == "ok")
    query = tmp_path / "query.png"
    colour_card(CARD_COLOURS["initech"], 301, size=(96, 80)).save(query)  # initech-1, pixel for pixel
    job = _job("search")
    assert job.main(["--image", str(query), "--reports", str(out), "--top", "4", "--tracking-uri", store]) == 0
    found = json.loads(capsys.readouterr().out)
    names = [Path(h["uri"]).stem for h in found["hits"]]
    assert names[0] == "initech-1" and found["hits"][0]["score"] > 0.999
    assert sorted(names[:3]) == ["initech-0", "initech-1", "initech-2"]  # the other green cards next
    assert found["rows_searched"] == 9 and found["rows_without_embedding"] == 1
    assert job.main(["--image", str(query), "--reports", str(out), "--since", "2026-12-02", "--tracking-uri", store]) == 2
    assert "no committed scan reports" in capsys.readouterr().err
    assert job.main(["--image", str(photos / "corrupt.jpg"), "--reports", str(out), "--tracking-uri", store]) == 2
    assert "does not decode" in capsys.readouterr().err


def test_removing_the_brand_is_another_version(store, onboarded, capsys):
    assert _job("brands").main(["remove", "--model", "models:/cards@champion", "--brand", "initech",
                                "--tracking-uri", store]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["brands"] == [] and result["alias"] == "champion"
    assert str(onboarded.get_model_version_by_alias("cards", "champion").version) == result["version"]
