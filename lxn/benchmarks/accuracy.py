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
5. Every (run, seed) is logged as one MLflow run (experiment `lxn-accuracy-bench`, its scores as
   metrics, its per-image answers as `correct.json`), and the tables are built from those logged
   runs: a grid stopped half-way resumes where it stopped (finished rows are read, not retrained),
   and `--table-only` rebuilds the tables from the store alone.
6. Rows are summarised over seeds (mean and spread); each model's best row (highest mean top-1)
   is compared with every other model's best row by an exact McNemar test on the same images
   (pairs pooled over the seeds both rows have).
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
    seeds: list[int] = setting([0], "training seeds: every run is trained once per seed (data seeds are fixed)")
    table_only: bool = setting(False, "train nothing: build the tables from the runs already logged with these settings")


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


BENCH_EXPERIMENT = "lxn-accuracy-bench"
SCORES = ("top1", "f1_macro", "no_logo_unbranded", "brand_precision", "brand_recall", "val_top1_in_domain",
          "train_s", "scan_s")


def settings_digest(config: AccuracyBenchConfig) -> str:
    """What makes two rows comparable: the data and the budget (not the runs, seeds or paths)."""
    import hashlib

    keep = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("out", "runs", "seeds", "table_only")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


def _row_name(run: str, seed: int, digest: str) -> str:
    return f"{parse_run(run)[0]}-s{seed}-{digest}"


def log_row(tracking: str, digest: str, run: str, seed: int, scores: dict[str, Any], correct: dict[str, bool]) -> None:
    """One benchmark row as one finished MLflow run: the scores, and every image's answer."""
    from lxn.tracking import RunTracker

    model, recipe = run.split(":")[:2]
    tracker = RunTracker.start(BENCH_EXPERIMENT, _row_name(run, seed, digest), tracking)
    tracker.log_params({"run": run, "seed": seed, "model": model, "recipe": recipe, "settings": digest})
    tracker.log_metrics({k: scores[k] for k in SCORES if scores.get(k) is not None}, step=0)
    tracker.log_dict(correct, "correct.json")
    tracker.finish()


def logged_row(tracking: str, digest: str, run: str, seed: int) -> dict | None:
    """The row logged for (run, seed) under these settings, or None."""
    from lxn.tracking import RunTracker, run_json

    done = RunTracker.find_finished(BENCH_EXPERIMENT, _row_name(run, seed, digest), tracking)
    if done is None:
        return None
    correct = run_json(done.info.run_id, "correct.json", tracking)
    scores = {k: done.data.metrics.get(k) for k in SCORES}
    return {"run": run, "seed": seed, **scores, "correct": correct}


def summarise(rows: list[dict], runs: list[str]) -> dict:
    """Rows (one per run and seed) -> per run: mean and spread over seeds, McNemar against the
    first run; per model: its best run, and McNemar between every two models' best runs."""
    by_run: dict[str, list[dict]] = {}
    for row in rows:
        by_run.setdefault(row["run"], []).append(row)
    table = []
    for run in runs:
        seeded = sorted(by_run.get(run, []), key=lambda r: r["seed"])
        if not seeded:
            continue
        entry: dict[str, Any] = {"run": run, "model": run.split(":")[0], "seeds": [r["seed"] for r in seeded]}
        for key in SCORES:
            values = [r[key] for r in seeded if r.get(key) is not None]
            entry[key] = float(np.mean(values)) if values else None
            entry[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        table.append(entry)
    listed = {entry["run"] for entry in table}
    for entry in table:
        # A variant (model:recipe:setting=value) is compared with the run it varies, when that ran.
        base = ":".join(entry["run"].split(":")[:2])
        entry["vs"] = base if base != entry["run"] and base in listed else table[0]["run"]
        entry["vs_first"] = (None if entry["vs"] == entry["run"] else
                             paired_over_seeds(by_run[entry["vs"]], by_run[entry["run"]]))
    best: dict[str, dict] = {}
    for entry in table:
        if entry["model"] not in best or entry["top1"] > best[entry["model"]]["top1"]:
            best[entry["model"]] = entry
    models = list(best)
    pairs = [{"a": best[a]["run"], "b": best[b]["run"], **paired_over_seeds(by_run[best[a]["run"]], by_run[best[b]["run"]])}
             for i, a in enumerate(models) for b in models[i + 1:]]
    return {"rows": table, "best": {m: best[m]["run"] for m in models}, "best_pairs": pairs}


def paired_over_seeds(first: list[dict], other: list[dict]) -> dict:
    """McNemar of `other` against `first` on (image, seed) pairs, for the seeds both have."""
    a = {(r["seed"], uri): ok for r in first for uri, ok in r["correct"].items()}
    b = {(r["seed"], uri): ok for r in other for uri, ok in r["correct"].items()}
    seeds = sorted({s for s, _ in a} & {s for s, _ in b})
    return {**paired_test({f"{s}/{u}": v for (s, u), v in a.items()}, {f"{s}/{u}": v for (s, u), v in b.items()}),
            "seeds": seeds}


def run(config: AccuracyBenchConfig) -> dict:
    root = (Path(config.out) / "accuracy").resolve()
    root.mkdir(parents=True, exist_ok=True)
    tracking = f"sqlite:///{root}/mlflow.db"
    digest = settings_digest(config)
    if config.table_only:
        rows = [r for run in config.runs for seed in config.seeds
                if (r := logged_row(tracking, digest, run, seed)) is not None]
        return _write(config, rows)

    from lxn.ray_utils import init_ray
    from lxn.scan.config import ScanConfig
    from lxn.scan.pipeline import run as scan
    from lxn.train.config import TrainConfig
    from lxn.train.trainer import run as train

    init_ray(min_cpus=config.num_workers + 2)
    prepared, test_images, class_names = _data(config, root)
    rows: list[dict] = []
    # Seed by seed, so that a grid stopped early has every run at the first seed.
    for seed in config.seeds:
        for text in config.runs:
            done = logged_row(tracking, digest, text, seed)
            if done is not None:
                log.info("accuracy %s seed %d: logged already (top-1 %.3f)", text, seed, done["top1"])
                rows.append(done)
                continue
            slug, overrides = parse_run(text)
            name = f"{slug}-s{seed}"
            started = time.monotonic()
            trained = train(TrainConfig(data=prepared, epochs=config.epochs, image_size=config.image_size,
                                        batch_size=config.batch_size, num_workers=config.num_workers, seed=seed,
                                        storage=str(root / "checkpoints"), tracking_uri=tracking,
                                        experiment="lxn-accuracy", registered_model=f"accuracy-{name}",
                                        run_name=name, alias="challenger", progress_bars=False, **overrides))
            train_s = time.monotonic() - started
            started = time.monotonic()
            scan(ScanConfig(source=[test_images], out=str(root / "scans" / name), model=trained.model.uri,
                            tracking_uri=tracking, date="2000-01-01", threshold=config.threshold,
                            top_k=len(class_names), batch_size=32, progress_bars=False, full=True))
            scan_s = time.monotonic() - started
            scan_rows = _scan_rows(root / "scans" / name)
            scores = {**_score(scan_rows, class_names, config.threshold),
                      "val_top1_in_domain": trained.test_report.get("top1"),
                      "train_s": round(train_s, 1), "scan_s": round(scan_s, 1)}
            correct = _correct(scan_rows, class_names)
            log_row(tracking, digest, text, seed, scores, correct)
            rows.append({"run": text, "seed": seed, **scores, "correct": correct})
            log.info("accuracy %s seed %d: %s", text, seed, {k: scores[k] for k in SCORES})
            _write(config, rows)
    return _write(config, rows)


def _write(config: AccuracyBenchConfig, rows: list[dict]) -> dict:
    out = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()},
           "settings_digest": settings_digest(config), "classes": config.num_brands + 1,
           **summarise(rows, config.runs),
           "per_seed": [{k: v for k, v in r.items() if k != "correct"} for r in rows]}
    Path(config.out).mkdir(parents=True, exist_ok=True)
    (Path(config.out) / "accuracy.json").write_text(json.dumps(out, indent=2))
    (Path(config.out) / "accuracy.md").write_text(markdown_table(out))
    return out


def _paired_cell(paired: dict | None, vs: str | None = None) -> str:
    if not paired:
        return "(reference)"
    against = f" (vs {vs})" if vs else ""
    return f"{paired['only_this_right']} / {paired['only_first_right']}, p = {paired['p_value']:.2g}{against}"


def _pct(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" + (f" ± {100 * std:.1f}" if std is not None else "")


def markdown_table(result: dict) -> str:
    lines = ["| run (model:recipe) | seeds | top-1 (mean ± sd) | macro-F1 | no-logo left unbranded | brand precision "
             "| brand recall | in-domain test top-1 | against the first run (a variant: its model:recipe): only this "
             "/ only that right, McNemar p "
             "| train s | scan s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    first = result["rows"][0]["run"] if result["rows"] else None
    for r in result["rows"]:
        seconds = lambda v: "n/a" if v is None else f"{v:.0f}"  # noqa: E731
        lines.append(f"| {r['run']} | {','.join(map(str, r['seeds']))} | {_pct(r['top1'], r['top1_std'])} "
                     f"| {_pct(r['f1_macro'])} | {_pct(r['no_logo_unbranded'])} | {_pct(r['brand_precision'])} "
                     f"| {_pct(r['brand_recall'])} | {_pct(r['val_top1_in_domain'])} | {_paired_cell(r.get('vs_first'), r['vs'] if r['vs'] != first else None)} "
                     f"| {seconds(r['train_s'])} | {seconds(r['scan_s'])} |")
    if result.get("best_pairs"):
        lines += ["", "| each model's best run | against | only the first right / only the second right | "
                  "McNemar p | seeds paired |", "|---|---|---:|---:|---|"]
        for pair in result["best_pairs"]:
            lines.append(f"| {pair['a']} | {pair['b']} | {pair['only_first_right']} / {pair['only_this_right']} "
                         f"| {pair['p_value']:.2g} | {','.join(map(str, pair['seeds']))} |")
    return "\n".join(lines) + "\n"
