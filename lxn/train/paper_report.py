"""The paper's tables from a training grid's MLflow runs (`jobs/report.py --grid NAME`).

Table 5: the test metrics of each model (mean over its seeds). Table 6: mean +/- sample standard
deviation over seeds. Table 7: the efficiency benchmark's table (`jobs/benchmark.py model`),
when its output is there. Table 8: each model's top-10 confusion pairs, counted over all its
seeds' test confusion matrices. Table 9: the four ablation variants, in the paper's order, with
their change against the backbone. Figures 9-11: per-class test accuracy of each model (mean
over seeds), sorted. Everything is read from what training logged (metrics, `test/*.json`),
never recomputed from weights.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lxn import registry, storage
from lxn.config import setting, to_dict
from lxn.metrics import confusion_pairs

__all__ = ["METRICS", "ABLATION", "GridRun", "ReportConfig", "load_runs", "tables", "markdown", "write_files", "report"]

METRICS = ("top1", "precision_macro", "recall_macro", "f1_macro", "auc_macro_ovr")
_HEADERS = ("top-1", "macro P", "macro R", "macro F1", "macro AUC")
# The paper's Table 9, in its order: the backbone, + CLFF, + HSE-SAB, + FA-CBAM (the full model).
ABLATION = ("logoxpertnet_backbone", "logoxpertnet_clff", "logoxpertnet_clff_hsesab", "logoxpertnet")


class GridRun(dict):
    """One finished run: model, seed, recipe, run_id, metrics {name: value}, classes,
    per_class {class: accuracy or None}, matrix (K x K counts)."""


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def tables(runs: Sequence[GridRun]) -> dict[str, Any]:
    """Every table's numbers, JSON-ready, models in the order they first appear."""
    if not runs:
        raise ValueError("no finished runs to report on")
    models: dict[str, list[GridRun]] = {}
    for run in runs:
        models.setdefault(run["model"], []).append(run)
    per_model = {}
    for model, group in models.items():
        stats = {m: _mean_std([r["metrics"][m] for r in group if r["metrics"].get(m) is not None]) for m in METRICS
                 if any(r["metrics"].get(m) is not None for r in group)}
        classes = group[0]["classes"]
        matrix = np.sum([np.asarray(r["matrix"], dtype=np.int64) for r in group if r["classes"] == classes], axis=0)
        per_class = {c: (statistics.fmean(v) if (v := [r["per_class"][c] for r in group if r["per_class"].get(c) is not None])
                         else None) for c in classes}
        per_model[model] = {
            "runs": len(group), "seeds": sorted(r["seed"] for r in group),
            "recipes": sorted({r["recipe"] for r in group}),
            "mean": {m: s[0] for m, s in stats.items()}, "std": {m: s[1] for m, s in stats.items()},
            "confusion_pairs": confusion_pairs(matrix, classes, top=10), "per_class": per_class,
        }
    ablation = [m for m in ABLATION if m in per_model]
    base = per_model[ablation[0]]["mean"] if ablation else None
    return {
        "models": per_model,
        "ablation": [{"model": m, **per_model[m]["mean"],
                      "top1_change": per_model[m]["mean"]["top1"] - base["top1"] if base else None}
                     for m in ablation],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def markdown(numbers: dict[str, Any], *, grid: str, efficiency: str | None) -> str:
    models = numbers["models"]
    lines = [f"# The paper's tables for grid {grid}", "",
             f"{sum(m['runs'] for m in models.values())} finished runs; metrics on each run's test split, best weights (%).",
             "", "## Table 5: test metrics (mean over seeds)", "",
             "| model | runs | " + " | ".join(_HEADERS) + " |", "|---|---|" + "---|" * len(_HEADERS)]
    for name, m in models.items():
        lines.append(f"| {name} | {m['runs']} | " + " | ".join(_pct(m["mean"].get(k)) for k in METRICS) + " |")
    lines += ["", "## Table 6: mean +/- standard deviation over seeds", "",
              "| model | seeds | " + " | ".join(_HEADERS) + " |", "|---|---|" + "---|" * len(_HEADERS)]
    for name, m in models.items():
        cells = [f"{_pct(m['mean'][k])} +/- {_pct(m['std'][k])}" if k in m["mean"] else "-" for k in METRICS]
        lines.append(f"| {name} | {', '.join(map(str, m['seeds']))} | " + " | ".join(cells) + " |")
    lines += ["", "## Table 7: efficiency", ""]
    lines += [efficiency.strip()] if efficiency else [
        "Not measured with this report: `python jobs/benchmark.py model --out bench-out`, then `--efficiency bench-out`."]
    lines += ["", "## Table 8: top-10 confusion pairs (counted over all seeds)"]
    for name, m in models.items():
        lines += ["", f"**{name}**", "", "| true | predicted | count | share of true |", "|---|---|---|---|"]
        lines += [f"| {p['true']} | {p['predicted']} | {p['count']} | {_pct(p['rate'])} |" for p in m["confusion_pairs"]]
    lines += ["", "## Table 9: ablation (one recipe)", ""]
    if numbers["ablation"]:
        lines += ["| variant | " + " | ".join(_HEADERS) + " | top-1 vs backbone |", "|---|" + "---|" * (len(_HEADERS) + 1)]
        for row in numbers["ablation"]:
            lines.append(f"| {row['model']} | " + " | ".join(_pct(row.get(k)) for k in METRICS)
                         + f" | {100 * row['top1_change']:+.2f} |")
    else:
        lines.append(f"The grid trained none of the ablation variants ({', '.join(ABLATION)}).")
    lines += ["", "## Figures 9-11: per-class accuracy", "", "per_class_accuracy.png (mean over seeds, sorted by the "
              "first model)", ""]
    return "\n".join(lines)


def write_files(numbers: dict[str, Any], folder: Path, *, grid: str, efficiency: str | None) -> list[Path]:
    """tables.md, tables.json and per_class_accuracy.png into `folder`."""
    import json

    from lxn.figures import per_class_accuracy, pyplot

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tables.json").write_text(json.dumps(numbers, indent=2, sort_keys=True))
    (folder / "tables.md").write_text(markdown(numbers, grid=grid, efficiency=efficiency))
    figure = per_class_accuracy({name: m["per_class"] for name, m in numbers["models"].items()},
                                f"per-class test accuracy, grid {grid} (mean over seeds)")
    figure.savefig(folder / "per_class_accuracy.png", dpi=100)
    pyplot().close(figure)
    return [folder / "tables.md", folder / "tables.json", folder / "per_class_accuracy.png"]


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    grid: str = setting("", "the grid's name (jobs/train.py prints it when it runs a grid)")
    experiment: str = setting("lxn", "MLflow experiment the grid trained in")
    efficiency: str | None = setting("bench-out", "folder holding `jobs/benchmark.py model`'s model_efficiency.md (Table 7), if it is there")
    out: str | None = setting(None, "also write tables.md, tables.json and the PNG here (local path or s3:// prefix)", uri="output")
    report_experiment: str = setting("lxn-reports", "MLflow experiment of the report's run")
    tracking_uri: str | None = setting(None, "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)", uri="tracking")


def load_runs(grid: str, experiment: str, tracking_uri: str) -> list[GridRun]:
    """Every finished run of the grid, with what training logged about its test split."""
    from lxn.tracking import run_json, tagged_runs

    runs = []
    for found in tagged_runs(experiment, {registry.GRID: grid}, tracking_uri):
        tags, metrics = found.data.tags, found.data.metrics
        matrix = run_json(found.info.run_id, "test/confusion_matrix.json", tracking_uri)
        per_class = run_json(found.info.run_id, "test/per_class.json", tracking_uri)["per_class_accuracy"]
        seed = int(tags.get(registry.RUN_SEED, found.data.params.get("seed", 0)))
        runs.append(GridRun(model=tags[registry.RUN_MODEL], seed=seed, recipe=tags.get(registry.RUN_RECIPE, "?"), run_id=found.info.run_id,
                            metrics={m: metrics.get(f"test_{m}") for m in METRICS}, classes=matrix["classes"],
                            matrix=matrix["matrix"], per_class=per_class))
    if not runs:
        raise ValueError(f"no finished runs of grid {grid!r} in experiment {experiment!r}: check the name jobs/train.py "
                         "printed, and --experiment")
    return runs


def _efficiency(folder: str | None) -> str | None:
    if not folder:
        return None
    uri = storage.join(folder, "model_efficiency.md")
    return storage.read_text(uri) if storage.exists(uri) else None


def report(config: ReportConfig) -> tuple[dict[str, Any], str, str, list[str]]:
    """Read the grid's runs, write the tables (an MLflow run in `report_experiment`, and --out);
    returns the numbers, tables.md, the run's URL and the files written under --out."""
    from lxn.tracking import RunTracker, check_tracking

    if not config.grid:
        raise ValueError("--grid NAME is required: the name jobs/train.py printed for the grid")
    tracking_uri = check_tracking(config.tracking_uri)
    if config.out:
        storage.check_writable(config.out, "report")
    runs = load_runs(config.grid, config.experiment, tracking_uri)
    numbers = tables(runs)
    numbers["runs"] = [{k: r[k] for k in ("model", "seed", "recipe", "run_id", "metrics")} for r in runs]
    efficiency = _efficiency(config.efficiency)
    tracker = RunTracker.start(config.report_experiment, f"tables-{config.grid}", tracking_uri)
    try:
        tracker.set_tags({registry.KIND: "paper-tables", registry.GRID: config.grid})
        tracker.log_params(to_dict(config))
        with tempfile.TemporaryDirectory(prefix="lxn-tables-") as tmp:
            written = tracker.publish(write_files(numbers, Path(tmp), grid=config.grid, efficiency=efficiency),
                                      config.out)
        tracker.finish()
    except BaseException:
        tracker.finish("FAILED")
        raise
    return numbers, markdown(numbers, grid=config.grid, efficiency=efficiency), tracker.url(), written
