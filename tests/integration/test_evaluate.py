"""The evaluate job on real local services: a labelled bucket on the S3 endpoint (moto server),
spotters with known answers registered in a sqlite MLflow store, a local Ray cluster.

Its predictions are the scan's for the same objects; its tables agree with scikit-learn's; two
models scored in one run compare by an exact McNemar test counted here by hand.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from sklearn import metrics as skm

from lxn import registry, storage
from lxn.evaluation.job import EvaluateConfig, evaluate
from lxn.scan.config import ScanConfig
from lxn.scan.pipeline import run as run_scan
from lxn.registry import Registry
from lxn.tracking import RunTracker
from tests.known_models import REDSPOT_CLASSES, BlueSpotter, RedSpotter, register_spotter
from tests.labelled_sets import COUNTS, expected_correct, labelled_objects

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    tracker = RunTracker.start("lxn-test", "register", uri)
    register_spotter(tracker, RedSpotter(), "spots", alias="champion")
    register_spotter(tracker, BlueSpotter(), "spots", alias="challenger")
    tracker.finish()
    return uri


@pytest.fixture(scope="module")
def bucket(s3_endpoint):
    name = f"lxn-eval-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=name)
    for key, data in labelled_objects().items():
        client.put_object(Bucket=name, Key=f"labelled/{key}", Body=data)
    return name


@pytest.fixture(scope="module")
def both(store, bucket, ray_cluster, tmp_path_factory):
    """champion (RedSpotter) and challenger (BlueSpotter) evaluated together on the bucket."""
    out = tmp_path_factory.mktemp("eval-out")
    config = EvaluateConfig(model=["models:/spots@champion", "models:/spots@challenger"],
                            labelled=f"s3://{bucket}/labelled/", out=str(out), tracking_uri=store, batch_size=8,
                            fetch_threads=4, progress_bars=False, threshold=0.5)
    return evaluate(config), out


def _job():
    spec = importlib.util.spec_from_file_location("evaluate_job", REPO / "jobs/evaluate.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    return job


def test_figures_are_what_the_labels_and_the_models_say(both):
    evaluation, out = both
    report = evaluation.report
    total = sum(COUNTS.values())
    assert (report["images"], report["scored"], sum(report["errors_by_kind"].values())) == (total + 1, total, 1)
    red, blue = evaluation.scored.models
    brands = [b for b, ok in zip(evaluation.scored.brands, evaluation.scored.ok) if ok]
    uris = [u for u, ok in zip(evaluation.scored.uris, evaluation.scored.ok) if ok]
    index = [int(u.rsplit("/", 1)[1].split(".")[0]) for u in uris]
    for scores, name in ((red, "RedSpotter"), (blue, "BlueSpotter")):
        expected = [expected_correct(name, b or "no-logo", i) for b, i in zip(brands, index)]
        assert scores.correct.tolist() == expected, name

    # the tables, recomputed by scikit-learn from the same scores
    for scores, figures in zip((red, blue), report["models"]):
        predicted = scores.probs.argmax(axis=1)
        assert figures["top1"] == pytest.approx(skm.accuracy_score(scores.labels, predicted))
        present = sorted(set(scores.labels) | set(predicted))
        assert figures["f1_macro"] == pytest.approx(skm.f1_score(scores.labels, predicted, labels=present, average="macro", zero_division=0))
        assert figures["precision_macro"] == pytest.approx(skm.precision_score(scores.labels, predicted, labels=present, average="macro", zero_division=0))
        assert figures["auc_macro_ovr"] == pytest.approx(skm.roc_auc_score(scores.labels, scores.probs, multi_class="ovr", average="macro", labels=[0, 1, 2]))
        per_class = skm.recall_score(scores.labels, predicted, labels=[0, 1, 2], average=None, zero_division=0)
        assert [figures["per_class"][c]["accuracy"] for c in REDSPOT_CLASSES] == pytest.approx(per_class.tolist())
    # brand hits at the threshold: RedSpotter's hits are exactly its correct acme images
    at = report["models"][0]["at_threshold"]
    assert (at["hits"], at["precision"], at["no_logo_unbranded"]) == (COUNTS["acme"] - 2, 1.0, 1.0)
    assert at["recall"] == pytest.approx((COUNTS["acme"] - 2) / (COUNTS["acme"] + COUNTS["globex"]))

    # the comparison: McNemar's counts by hand (wins: globex images; losses: the big-red acme ones)
    comparison = report["comparisons"][0]
    wins = int((blue.correct & ~red.correct).sum())
    losses = int((red.correct & ~blue.correct).sum())
    assert (comparison["mcnemar"]["wins"], comparison["mcnemar"]["losses"]) == (wins, losses) == (COUNTS["globex"], COUNTS["acme"] - 2)
    n = wins + losses
    from math import comb
    assert comparison["mcnemar"]["p_value"] == pytest.approx(min(1.0, 2 * sum(comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n))
    worst = comparison["per_class_changes"][0]
    assert worst["class"] == "acme" and worst["change"] == pytest.approx(-(COUNTS["acme"] - 2) / COUNTS["acme"])

    # files under --out, the same report in the MLflow run, headline tags on both versions
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "per_class_accuracy.png", "reliability.png",
                                              "precision_coverage.png"}
    assert json.loads((out / "report.json").read_text())["models"][1]["top1"] == report["models"][1]["top1"]
    assert "| acme |" in (out / "report.md").read_text()
    assert (out / "per_class_accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_versions_carry_the_headline_figures(both, store):
    evaluation, _ = both
    client = Registry(store).client
    for figures, version in zip(evaluation.report["models"], ("1", "2")):
        tags = client.get_model_version("spots", version).tags
        assert float(tags[registry.EVAL_TOP1]) == pytest.approx(figures["top1"])
        assert tags[registry.EVAL_RUN] == evaluation.run_id
    run = client.get_run(evaluation.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["v1.top1"] == pytest.approx(evaluation.report["models"][0]["top1"])
    assert {a.path for a in client.list_artifacts(evaluation.run_id)} >= {"report.json", "report.md", "reliability.png"}


def test_predictions_are_the_scans_for_the_same_objects(both, store, bucket, tmp_path):
    evaluation, _ = both
    result = run_scan(ScanConfig(source=[f"s3://{bucket}/labelled"], out=str(tmp_path / "reports"),
                                 model="models:/spots@champion", tracking_uri=store, batch_size=8, fetch_threads=4,
                                 threshold=0.5, top_k=3, date="2026-12-01", progress_bars=False))
    table = pads.dataset(result.manifest["report"]["uri"], format="parquet", partitioning="hive").to_table()
    scan_rows = {row["uri"]: row for row in table.to_pylist()}
    red = evaluation.scored.models[0]
    ok_uris = [u for u, ok in zip(evaluation.scored.uris, evaluation.scored.ok) if ok]
    assert set(scan_rows) == set(evaluation.scored.uris)
    for uri, probs in zip(ok_uris, red.probs):
        row = scan_rows[uri]
        order = np.argsort(-probs, kind="stable")
        assert row["top_brands"] == [REDSPOT_CLASSES[k] for k in order]
        assert row["top_probs"] == pytest.approx(probs[order].tolist(), abs=1e-6)
    errors = [u for u, ok in zip(evaluation.scored.uris, evaluation.scored.ok) if not ok]
    assert [scan_rows[u]["status"] for u in errors] == ["error"]


def test_a_prepared_split_and_a_manifest_are_labelled_sets_too(store, bucket, ray_cluster, tmp_path):
    from lxn.data.prepared import SCHEMA, Manifest
    from lxn.presets import decode, store_copy

    objects = labelled_objects()
    good = {k: v for k, v in objects.items() if "corrupt" not in k}
    rows = []
    for key, data in good.items():
        brand = key.split("/")[0]
        pixels = decode(data, 256)[0].pixels
        rows.append({"image": store_copy(pixels, 256), "label": REDSPOT_CLASSES.index(brand), "class_name": brand,
                     "split": "test", "source_uri": f"s3://{bucket}/labelled/{key}", "phash": 0, "group": len(rows),
                     "width": 1, "height": 1})
    root = tmp_path / "prepared"
    (root / "split=test").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), root / "split=test" / "part-0.parquet")
    counts = {"test": {c: sum(1 for k in good if k.startswith(c + "/")) for c in REDSPOT_CLASSES}}
    (root / "manifest.json").write_text(Manifest(classes=REDSPOT_CLASSES, counts=counts, mean=[0.5] * 3,
                                                 std=[0.5] * 3, store_side=256).to_json())
    prepared = evaluate(EvaluateConfig(model=["models:/spots@champion"], data=str(root), tracking_uri=store,
                                       batch_size=8, progress_bars=False, tag_versions=False, threshold=0.5))
    assert prepared.report["scored"] == len(good) and prepared.report["models"][0]["top1"] == pytest.approx(
        (len(good) - 2 - COUNTS["globex"]) / len(good))

    # a CSV manifest: relative URIs next to it, an empty brand for no-logo images, one row pointing nowhere
    lines = ["uri,brand"] + [f"s3://{bucket}/labelled/{k},{'' if k.startswith('no-logo') else k.split('/')[0]}" for k in good]
    lines.append(f"s3://{bucket}/labelled/acme/gone.jpg,acme")
    storage.write_text(f"s3://{bucket}/sets/labels.csv", "\n".join(lines) + "\n")
    listed = evaluate(EvaluateConfig(model=["models:/spots@champion"], labelled=f"s3://{bucket}/sets/labels.csv",
                                     tracking_uri=store, batch_size=8, progress_bars=False, tag_versions=False,
                                     threshold=0.5, set_threshold=True))
    assert listed.report["errors_by_kind"] == {"missing": 1}
    assert listed.report["models"][0]["top1"] == pytest.approx(prepared.report["models"][0]["top1"])
    # --set-threshold: the lowest threshold with precision >= 0.95 of brand hits, now the scan's default
    tags = Registry(store).client.get_model_version("spots", "1").tags
    chosen = listed.report["models"][0]["threshold_for_target"]
    assert float(tags[registry.THRESHOLD]) == pytest.approx(chosen["threshold"]) and chosen["precision"] >= 0.95
    assert registry.scan_threshold(None, tags)[0] == pytest.approx(chosen["threshold"])


def test_bad_input_exits_2_with_a_reason(store, bucket, ray_cluster, capsys, tmp_path):
    job = _job()
    base = ["--tracking-uri", store, "--no-progress-bars"]
    unknown = {"initech/0.jpg": labelled_objects()["acme/01.jpg"]}
    for key, data in unknown.items():
        storage.write_bytes(str(tmp_path / "odd" / key), data)
    cases = [
        (["--model", "models:/spots@nobody", "--labelled", f"s3://{bucket}/labelled/"], "cannot resolve"),
        (["--model", "models:/spots@champion", "--labelled", str(tmp_path / "odd")], "does not know: initech"),
        (["--model", "models:/spots@champion", "--labelled", f"s3://{bucket}/nothing-here/"], "no labelled images"),
        (["--model", "models:/spots@champion"], "name one labelled set"),
    ]
    for argv, reason in cases:
        assert job.main(argv + base) == 2, argv
        assert reason in capsys.readouterr().err, argv
    # one that works prints its headline
    assert job.main(["--model", "models:/spots@champion", "--labelled", f"s3://{bucket}/labelled/", "--no-tag-versions",
                     *base]) == 0
    assert "top-1" in capsys.readouterr().out


def test_repeated_model_flags_accumulate():
    config = _job().parse_config(["--model", "models:/a@x", "--model", "models:/b@y", "--labelled", "/tmp/x"])
    assert config.model == ["models:/a@x", "models:/b@y"]
    with pytest.raises(ValueError, match="twice"):
        EvaluateConfig(model=["models:/a@x", "models:/a@x"], labelled="/tmp/x")
