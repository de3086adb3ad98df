"""Accuracy on real brand marks: models and recipes trained by the lxn pipeline with one budget,
scored through the nightly scan's own path on scenes whose backgrounds training never saw.

1. Data: a real-marks training set (lxn.data.realmarks, "train" background pool) and a test set
   of the same brands in new scenes over the "test" pool (another seed), both ImageFolders.
2. `jobs/prepare.py`'s pipeline prepares the training set (its val split picks the best epoch).
3. Each run (`model:recipe[:setting=value...]`) is trained by `lxn.train.trainer.run` with the
   same epochs, batch, image size and seed, and registered.
4. Each registered model scans the test folder with `lxn.scan.pipeline.run` (fetch, decode,
   preset, predictor: what the nightly scan does), with every class's probability kept; the
   folder names are the labels. Reported: top-1 (argmax, no-logo included), macro-F1, and at the
   scan's threshold the share of no-logo scenes left without a brand and the precision of brand
   hits; wall time of training and of the scan.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from lxn.config import setting

__all__ = ["AccuracyBenchConfig", "run", "markdown_table", "parse_run"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AccuracyBenchConfig:
    out: Path = setting(Path("bench-out"), "directory for accuracy.json/.md and the benchmark's data, models and scans")
    runs: list[str] = setting(["logoxpertnet:lxn", "logoxpertnet:paper", "logoxpertnet_backbone:lxn",
                               "mobilenet_v3_large:lxn"],
                              "model:recipe[:setting=value...] to train and score (settings are jobs/train.py's, e.g. spectrum=dct)")
    num_brands: int = setting(40, "real marks (classes besides no-logo)")
    images_per_brand: int = setting(80, "training scenes per brand (train backgrounds)")
    no_logo_images: int = setting(160, "training scenes without a class mark")
    test_per_brand: int = setting(20, "test scenes per brand (test backgrounds, another seed)")
    test_no_logo: int = setting(80, "test scenes without a class mark")
    scene_size: int = setting(256, "generated scenes' side")
    image_size: int = setting(128, "model input size")
    epochs: int = setting(30, "epochs of every run")
    batch_size: int = setting(32, "global batch of every run")
    num_workers: int = setting(2, "Ray Train workers")
    threshold: float = setting(0.5, "the scan's no-logo threshold, for the at-threshold figures")
    seed: int = setting(0, "training seed of every run (data seeds are fixed)")


def parse_run(text: str) -> tuple[str, dict[str, Any]]:
    """`model:recipe[:k=v...]` -> (a slug, TrainConfig overrides)."""
    model, recipe, *extra = text.split(":")
    overrides: dict[str, Any] = {"model": model, "recipe": recipe}
    for item in extra:
        key, _, value = item.partition("=")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        overrides[key.replace("-", "_")] = value
    slug = "-".join([model, recipe, *(i.replace("=", "_") for i in extra)]).replace("_", "-")
    return slug, overrides


def _data(config: AccuracyBenchConfig, root: Path) -> tuple[str, str, list[str]]:
    from lxn.data import realmarks
    from lxn.data.prepare import PrepareConfig
    from lxn.data.prepare import run as prepare

    train = realmarks.RealMarksConfig(num_brands=config.num_brands, images_per_brand=config.images_per_brand,
                                      no_logo_images=config.no_logo_images, image_size=config.scene_size,
                                      backgrounds="train", seed=0)
    test = dataclasses.replace(train, images_per_brand=config.test_per_brand, no_logo_images=config.test_no_logo,
                               backgrounds="test", seed=1000)
    for cfg, name in ((train, "train-images"), (test, "test-images")):
        if not (root / name / "realmarks.json").exists():
            realmarks.write_imagefolder(cfg, root / name)
    prepared = root / "prepared"
    if not (prepared / "manifest.json").exists():
        prepare(PrepareConfig(source=[str(root / "train-images")], out=str(prepared),
                              store_side=max(256, config.image_size), progress_bars=False))
    return str(prepared), str(root / "test-images"), realmarks.class_names(train)


def _score(rows: list[dict], class_names: list[str], threshold: float) -> dict[str, float]:
    from lxn.metrics import classification_report

    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index[row["uri"].rsplit("/", 2)[-2]] for row in rows])
    scores = np.zeros((len(rows), len(class_names)))
    for i, row in enumerate(rows):
        for name, p in zip(row["top_brands"], row["top_probs"]):
            scores[i, index[name]] = p
    report = classification_report(labels, scores, class_names)
    no_logo = index.get("no-logo")
    brand = [row["brand"] for row in rows]
    is_no_logo = labels == no_logo
    hits = [b is not None for b in brand]
    correct_hits = [b is not None and index[b] == label for b, label in zip(brand, labels)]
    return {
        "top1": report["top1"],
        "f1_macro": report["f1_macro"],
        "no_logo_unbranded": float(np.mean([b is None for b, n in zip(brand, is_no_logo) if n])) if is_no_logo.any() else None,
        "brand_precision": float(sum(correct_hits) / max(1, sum(hits))),
        "brand_recall": float(sum(c for c, n in zip(correct_hits, is_no_logo) if not n) / max(1, int((~is_no_logo).sum()))),
        "test_images": len(rows),
    }


def _correct(rows: list[dict], class_names: list[str]) -> dict[str, bool]:
    """uri -> whether the top-1 class (argmax, no-logo included) is the scene's label."""
    return {row["uri"]: row["top_brands"][0] == row["uri"].rsplit("/", 2)[-2] for row in rows}


def paired_test(first: dict[str, bool], other: dict[str, bool]) -> dict:
    """Exact McNemar test of `other` against `first` on the images both scored."""
    from lxn.evidence import mcnemar_exact

    uris = sorted(first.keys() & other.keys())
    result = mcnemar_exact(np.array([other[u] for u in uris]), np.array([first[u] for u in uris]))
    return {"images": len(uris), "only_this_right": result["a_only"], "only_first_right": result["b_only"],
            "p_value": result["p_value"]}


def _scan_rows(report_root: Path) -> list[dict]:
    import pyarrow.dataset as pads

    table = pads.dataset(str(report_root), format="parquet", partitioning="hive").to_table(
        columns=["uri", "status", "brand", "top_brands", "top_probs"])
    rows = table.to_pylist()
    bad = [r["uri"] for r in rows if r["status"] != "ok"]
    if bad:
        raise RuntimeError(f"{len(bad)} test images did not decode, e.g. {bad[0]}")
    return rows


def run(config: AccuracyBenchConfig) -> dict:
    from lxn.ray_utils import init_ray
    from lxn.scan.config import ScanConfig
    from lxn.scan.pipeline import run as scan
    from lxn.train.config import TrainConfig
    from lxn.train.trainer import run as train

    root = (Path(config.out) / "accuracy").resolve()
    root.mkdir(parents=True, exist_ok=True)
    init_ray(min_cpus=config.num_workers + 2)
    prepared, test_images, class_names = _data(config, root)
    tracking = f"sqlite:///{root}/mlflow.db"
    results: list[dict] = []
    correct: dict[str, dict[str, bool]] = {}
    for text in config.runs:
        slug, overrides = parse_run(text)
        started = time.monotonic()
        trained = train(TrainConfig(data=prepared, epochs=config.epochs, image_size=config.image_size,
                                    batch_size=config.batch_size, num_workers=config.num_workers, seed=config.seed,
                                    storage=str(root / "checkpoints"), tracking_uri=tracking, experiment="lxn-accuracy",
                                    registered_model=f"accuracy-{slug}", run_name=slug, alias="challenger",
                                    progress_bars=False, **overrides))
        train_s = time.monotonic() - started
        started = time.monotonic()
        scan(ScanConfig(source=[test_images], out=str(root / "scans" / slug), model=trained.model.uri,
                        tracking_uri=tracking, date="2000-01-01", threshold=config.threshold,
                        top_k=len(class_names), batch_size=32, progress_bars=False, full=True))
        scan_s = time.monotonic() - started
        rows = _scan_rows(root / "scans" / slug)
        scores = _score(rows, class_names, config.threshold)
        correct[slug] = _correct(rows, class_names)
        paired = paired_test(correct[results[0]["slug"]], correct[slug]) if results else None
        results.append({"run": text, "slug": slug, **scores, "val_top1_in_domain": trained.test_report.get("top1"),
                        "train_s": round(train_s, 1), "scan_s": round(scan_s, 1), "best_epoch": trained.best_epoch,
                        "vs_first": paired})
        log.info("accuracy %s: %s", slug, results[-1])
        _write(config, root, results)
    return _write(config, root, results)


def _write(config: AccuracyBenchConfig, root: Path, results: list[dict]) -> dict:
    out = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()},
           "classes": config.num_brands + 1, "results": results}
    (Path(config.out) / "accuracy.json").write_text(json.dumps(out, indent=2))
    (Path(config.out) / "accuracy.md").write_text(markdown_table(out))
    return out


def _paired_cell(paired: dict | None) -> str:
    if not paired:
        return "(first)"
    return f"{paired['only_this_right']} / {paired['only_first_right']}, p = {paired['p_value']:.2g}"


def markdown_table(result: dict) -> str:
    lines = ["| run (model:recipe) | top-1 | macro-F1 | no-logo left unbranded | brand precision | brand recall "
             "| in-domain test top-1 | vs first run: only this / only first right, McNemar p | train s | scan s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["results"]:
        fmt = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        lines.append(f"| {r['run']} | {fmt(r['top1'])} | {fmt(r['f1_macro'])} | {fmt(r['no_logo_unbranded'])} "
                     f"| {fmt(r['brand_precision'])} | {fmt(r['brand_recall'])} | {fmt(r['val_top1_in_domain'])} "
                     f"| {_paired_cell(r.get('vs_first'))} | {r['train_s']:.0f} | {r['scan_s']:.0f} |")
    return "\n".join(lines) + "\n"
