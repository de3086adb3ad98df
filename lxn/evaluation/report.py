"""An evaluation's figures (per model, and each model against the first) and its files.

`figures` turns one model's scores into the report's numbers: the paper's metrics
(`lxn.metrics`), calibration, the precision-coverage curve of brand hits and the figures at the
threshold the scan would use (`lxn.evidence`). `compare` pairs two models scored on the same
images. `write_files` renders report.md, report.json and the PNGs into a local folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from lxn.data.sample import NO_LOGO
from lxn.evaluation.scoring import ModelScores
from lxn.evidence import NO_LOGO_IMAGE, calibration, hits_at, mcnemar_exact, precision_coverage, threshold_for_precision
from lxn.metrics import classification_report

__all__ = ["figures", "compare", "markdown", "headline", "write_files", "CURVE_POINTS"]

CURVE_POINTS = 101  # the precision-coverage curve is thinned to about this many points in the JSON


def _thin(curve: dict[str, np.ndarray], points: int = CURVE_POINTS) -> list[dict[str, float]]:
    n = len(curve["threshold"])
    keep = np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int)) if n else np.zeros(0, dtype=int)
    return [{key: float(curve[key][i]) for key in ("threshold", "precision", "recall", "coverage")} for i in keep]


def figures(scores: ModelScores, threshold: float, threshold_source: str, target_precision: float) -> dict[str, Any]:
    """Everything the report says about one model, JSON-ready."""
    # Images without a logo, for a model with no no-logo class, have no class to be confused with:
    # the class figures are over the others, and top-1 counts them right when they stay unbranded.
    labelled = scores.labels != NO_LOGO_IMAGE
    report = classification_report(scores.labels[labelled], scores.probs[labelled], scores.class_names)
    support = np.bincount(scores.labels[labelled], minlength=len(scores.class_names))
    right = scores.correct_at(threshold)
    at = hits_at(scores.labels, scores.probs, threshold, scores.no_logo)
    chosen = threshold_for_precision(scores.labels, scores.probs, scores.no_logo, target_precision)
    cal = calibration(scores.labels, scores.probs)
    return {
        "model": scores.ref.uri,
        "images": int(len(scores.labels)),
        "top1": float(right.mean()) if len(right) else 0.0,
        "precision_macro": report["precision_macro"],
        "recall_macro": report["recall_macro"],
        "f1_macro": report["f1_macro"],
        "auc_macro_ovr": None if math.isnan(report["auc_macro_ovr"]) else report["auc_macro_ovr"],
        "ece": cal["ece"],
        "reliability": cal["bins"],
        "at_threshold": {**at, "source": threshold_source},
        "threshold_for_target": {"target_precision": target_precision, **(chosen or {"threshold": None})},
        "per_class": {name: {"accuracy": report["per_class_accuracy"][name], "support": int(support[k])}
                      for k, name in enumerate(scores.class_names)}
        | ({NO_LOGO: {"accuracy": float(right[~labelled].mean()), "support": int((~labelled).sum())}}
           if (~labelled).any() else {}),
        "confusion_pairs": report["confusion_pairs"],
        "precision_coverage": _thin(precision_coverage(scores.labels, scores.probs, scores.no_logo)),
    }


def compare(reference: ModelScores, other: ModelScores, ref_figures: dict, other_figures: dict,
            min_support: int = 1) -> dict[str, Any]:
    """`other` against `reference` on the same images: the exact McNemar test of their top-1
    answers and the per-class accuracy changes (classes both know, with at least `min_support`
    images), largest drop first."""
    test = mcnemar_exact(reference.correct_at(ref_figures["at_threshold"]["threshold"]),
                         other.correct_at(other_figures["at_threshold"]["threshold"]))
    changes = []
    for name, mine in other_figures["per_class"].items():
        theirs = ref_figures["per_class"].get(name)
        if theirs is None or mine["accuracy"] is None or theirs["accuracy"] is None or mine["support"] < min_support:
            continue
        changes.append({"class": name, "support": mine["support"], "reference": theirs["accuracy"],
                        "accuracy": mine["accuracy"], "change": mine["accuracy"] - theirs["accuracy"]})
    changes.sort(key=lambda c: (c["change"], c["class"]))
    return {"reference": reference.ref.uri, "model": other.ref.uri,
            "top1_change": other_figures["top1"] - ref_figures["top1"],
            "f1_macro_change": other_figures["f1_macro"] - ref_figures["f1_macro"],
            "mcnemar": {"wins": test["b_only"], "losses": test["a_only"], "p_value": test["p_value"]},
            "per_class_changes": changes}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Evaluation on {report['labelled']}", "",
             f"{report['images']} labelled images, {report['scored']} scored"
             + (f" ({', '.join(f'{k} {v}' for k, v in report['errors_by_kind'].items())} left out)"
                if report["errors_by_kind"] else "") + f"; tiles: {report['tiles'] or 'off'}.", "",
             "| model | top-1 | macro P | macro R | macro F1 | macro AUC | ECE | threshold | hit precision | hit recall | no-logo left unbranded |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in report["models"]:
        at = f["at_threshold"]
        lines.append(f"| {f['model']} | {_pct(f['top1'])} | {_pct(f['precision_macro'])} | {_pct(f['recall_macro'])} | "
                     f"{_pct(f['f1_macro'])} | {_num(f['auc_macro_ovr'])} | {_num(f['ece'])} | {_num(at['threshold'])} | "
                     f"{_pct(at['precision'])} | {_pct(at['recall'])} | {_pct(at['no_logo_unbranded'])} |")
    lines += ["", "Thresholds in use: " + "; ".join(f"{f['model']}: {f['at_threshold']['source']}" for f in report["models"])]
    for f in report["models"]:
        chosen = f["threshold_for_target"]
        lines.append(f"- {f['model']}: the lowest threshold reaching {_pct(chosen['target_precision'])} hit precision "
                     f"here is {_num(chosen['threshold'])}"
                     + (f" (recall {_pct(chosen.get('recall'))})" if chosen["threshold"] is not None else " (none reaches it)"))
    for c in report.get("comparisons", []):
        m = c["mcnemar"]
        lines += ["", f"## {c['model']} against {c['reference']}", "",
                  f"top-1 {100 * c['top1_change']:+.1f} points, macro F1 {100 * c['f1_macro_change']:+.1f} points; "
                  f"exact McNemar: right where the reference is wrong on {m['wins']} images, wrong where it is right "
                  f"on {m['losses']}, p = {m['p_value']:.3g}.", "",
                  "| class | support | reference | this model | change |", "|---|---|---|---|---|"]
        for change in c["per_class_changes"][:10]:
            lines.append(f"| {change['class']} | {change['support']} | {_pct(change['reference'])} | "
                         f"{_pct(change['accuracy'])} | {100 * change['change']:+.1f} |")
    for f in report["models"]:
        lines += ["", f"## {f['model']}: top-10 confusions", "", "| true | predicted | count | share of true |",
                  "|---|---|---|---|"]
        lines += [f"| {p['true']} | {p['predicted']} | {p['count']} | {_pct(p['rate'])} |" for p in f["confusion_pairs"]]
        worst = sorted(((v["accuracy"], k, v["support"]) for k, v in f["per_class"].items() if v["accuracy"] is not None))[:10]
        lines += ["", "Lowest per-class accuracy: " + ", ".join(f"{k} {_pct(a)} (n={n})" for a, k, n in worst)]
    lines += ["", "Figures: per_class_accuracy.png, reliability.png, precision_coverage.png", ""]
    return "\n".join(lines)


def _plots(report: dict[str, Any], folder: Path) -> list[str]:
    from lxn.figures import per_class_accuracy, pyplot

    plt = pyplot()
    models = report["models"]
    fig = per_class_accuracy({f["model"]: {n: v["accuracy"] for n, v in f["per_class"].items()} for f in models},
                             "per-class accuracy (sorted by the first model)")
    fig.savefig(folder / "per_class_accuracy.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for f in models:
        bins = f["reliability"]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                label=f"{f['model']} (ECE {f['ece']:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="top-1 confidence", ylabel="accuracy", title="reliability diagram")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "reliability.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for f in models:
        curve = f["precision_coverage"]
        line, = ax.plot([p["recall"] for p in curve], [p["precision"] for p in curve], label=f["model"])
        at = f["at_threshold"]
        if at["precision"] is not None:
            ax.plot([at["recall"]], [at["precision"]], marker="o", color=line.get_color())
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall of brand hits", ylabel="precision of brand hits",
           title="precision-coverage of brand hits (dot: the threshold in use)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "precision_coverage.png", dpi=100)
    plt.close(fig)
    return ["per_class_accuracy.png", "reliability.png", "precision_coverage.png"]


def write_files(report: dict[str, Any], folder: Path) -> list[Path]:
    """report.json, report.md and the PNGs into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    (folder / "report.md").write_text(markdown(report))
    return [folder / "report.json", folder / "report.md", *(folder / name for name in _plots(report, folder))]


def headline(report: dict[str, Any]) -> str:
    """A few lines for the job's output."""
    lines = [f"evaluated {report['scored']} of {report['images']} images of {report['labelled']}"]
    for f in report["models"]:
        at = f["at_threshold"]
        lines.append(f"  {f['model']}: top-1 {_pct(f['top1'])}, macro F1 {_pct(f['f1_macro'])}, ECE {_num(f['ece'])}, "
                     f"at threshold {_num(at['threshold'])}: hit precision {_pct(at['precision'])}, "
                     f"recall {_pct(at['recall'])}")
    for c in report.get("comparisons", []):
        m = c["mcnemar"]
        lines.append(f"  {c['model']} vs {c['reference']}: top-1 {100 * c['top1_change']:+.1f} points, "
                     f"{m['wins']} wins / {m['losses']} losses, McNemar p = {m['p_value']:.3g}")
    return "\n".join(lines)
