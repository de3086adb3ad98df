"""The evaluate job: labelled images, one or more registered models, a report and its MLflow run.

`evaluate(config)` is `jobs/evaluate.py`; `run_evaluation` is the part promotion shares: it
resolves each model once, scores the set through the scan's path (`scoring.score`), computes
the figures at the threshold each version's scan would use (`lxn.registry.scan_threshold`),
writes the files (locally, and under `--out` when given), logs one run in experiment
`lxn-evaluations`, and tags each version with its headline figures.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any, Sequence

from lxn import registry, storage
from lxn.config import setting, to_dict
from lxn.evaluation import report as report_mod
from lxn.evaluation.labelled import LabelledSet, open_labelled
from lxn.evaluation.scoring import Scored, ScoringSettings, score

__all__ = ["EvaluateConfig", "Evaluation", "evaluate", "run_evaluation"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EvaluateConfig(ScoringSettings):
    model: list[str] = setting(["models:/logoxpertnet@champion"], "models:/<name>@<alias> or models:/<name>/<version>; repeat --model to compare several on one decode (the first is the reference)")
    data: str | None = setting(None, "a prepared dataset (jobs/prepare.py's --out): evaluate on its --split", uri="input")
    split: str = setting("test", "the prepared dataset's split: train, val or test")
    labelled: str | None = setting(None, "a labelled set instead: a prefix in --labelled-format (ImageFolder: <brand>/..., no-logo/...), or a CSV/Parquet manifest with uri and brand columns (empty brand: no logo)", uri="input")
    labelled_format: str = setting("auto", "layout of --labelled: auto (manifest for .csv/.parquet, else imagefolder), manifest, or a jobs/prepare.py --format")
    out: str | None = setting(None, "also write report.md, report.json and the PNGs here (local path or s3:// prefix)", uri="output")
    threshold: float | None = setting(None, "no-logo threshold for every model (default: each version's own, as the scan picks it)")
    threshold_precision: float = setting(0.95, "target precision of brand hits: the report gives the lowest threshold reaching it")
    set_threshold: bool = setting(False, "tag each version with the threshold reaching --threshold-precision on this set (the scan's new default)")
    tag_versions: bool = setting(True, "tag each evaluated version with its headline figures")
    experiment: str = setting("lxn-evaluations", "MLflow experiment of the evaluation runs")
    tracking_uri: str | None = setting(None, "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)", uri="tracking")

    def __post_init__(self) -> None:
        problems = []
        if not self.model:
            problems.append("give at least one --model")
        if len(set(self.model)) != len(self.model):
            problems.append(f"--model names a model twice: {self.model}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            problems.append(f"--threshold must be within 0..1, got {self.threshold}")
        if not 0.0 < self.threshold_precision <= 1.0:
            problems.append(f"--threshold-precision must be within (0, 1], got {self.threshold_precision}")
        problems += self.scoring_problems()
        if problems:
            raise ValueError("; ".join(problems))


@dataclasses.dataclass
class Evaluation:
    report: dict[str, Any]   # report.json's content
    scored: Scored
    run_id: str
    run_url: str
    files: list[str]         # where report.md / .json / PNGs were written under --out (if given)


def _run_name(refs: Sequence[Any], labelled: LabelledSet) -> str:
    digest = hashlib.sha256(labelled.describe.encode()).hexdigest()[:8]
    return "eval-" + "-vs-".join(f"{r.name}-v{r.version}" for r in refs) + f"-{digest}"


def run_evaluation(labelled: LabelledSet, model_uris: Sequence[str], *, tracking_uri: str, options: ScoringSettings,
                   threshold: float | None = None, threshold_precision: float = 0.95, experiment: str = "lxn-evaluations",
                   out: str | None = None, tag_versions: bool = True, set_threshold: bool = False,
                   params: dict[str, Any] | None = None) -> Evaluation:
    """Score `labelled` with every model and report (see the module docstring)."""
    from lxn.tracking import RunTracker, load_model

    versions = registry.Registry(tracking_uri)
    refs = [versions.resolve(uri) for uri in model_uris]  # once: the report names versions
    if len({r.uri for r in refs}) != len(refs):
        raise ValueError(f"{list(model_uris)} name the same version more than once")
    thresholds = [registry.scan_threshold(threshold, versions.tags(r)) for r in refs]
    loaded = [load_model(r.uri, tracking_uri, "cpu") for r in refs]  # a model that is not lxn's fails here
    scored = score(labelled, loaded, options)
    del loaded
    if not scored.ok.any():
        raise ValueError(f"none of the {len(scored.status)} images of {labelled.describe} could be decoded "
                         f"({scored.errors_by_kind}): nothing to evaluate")
    per_model = [report_mod.figures(m, t, source, threshold_precision) for m, (t, source) in zip(scored.models, thresholds)]
    comparisons = [report_mod.compare(scored.models[0], m, per_model[0], f)
                   for m, f in zip(scored.models[1:], per_model[1:])]
    report = {"labelled": labelled.describe, "images": int(len(scored.status)), "scored": int(scored.ok.sum()),
              "errors_by_kind": scored.errors_by_kind, "tiles": list(options.grids),
              "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "models": per_model, "comparisons": comparisons}

    tracker = RunTracker.start(experiment, _run_name(refs, labelled), tracking_uri)
    try:
        tracker.set_tags({registry.KIND: "evaluation", "labelled": labelled.describe[:5000],
                          "models": ", ".join(r.uri for r in refs)})
        tracker.log_params({**(params or {}), "resolved_models": [r.uri for r in refs],
                            "thresholds": [f"{t:.4f} ({s})" for t, s in thresholds]})
        metrics = {}
        for ref, f in zip(refs, per_model):
            prefix = f"v{ref.version}." if len(refs) > 1 else ""
            metrics.update({f"{prefix}{k}": f[k] for k in ("top1", "precision_macro", "recall_macro", "f1_macro", "ece")})
            metrics.update({f"{prefix}hit_{k}": f["at_threshold"][k] for k in ("precision", "recall", "no_logo_unbranded")
                            if f["at_threshold"][k] is not None})
            if f["auc_macro_ovr"] is not None:
                metrics[f"{prefix}auc_macro_ovr"] = f["auc_macro_ovr"]
        tracker.log_metrics(metrics, step=0)
        with tempfile.TemporaryDirectory(prefix="lxn-eval-") as tmp:
            written = tracker.publish(report_mod.write_files(report, Path(tmp)), out)
        tracker.finish()
    except BaseException:
        tracker.finish("FAILED")
        raise

    for ref, f in zip(refs, per_model):
        tags = registry.evaluation_tags(f, labelled.describe, tracker.run_id) if tag_versions else {}
        if set_threshold:
            chosen = f["threshold_for_target"]
            if chosen["threshold"] is None:
                log.warning("%s: no threshold reaches %.3f precision of brand hits on %s; its threshold tag is left "
                            "as it is", ref.uri, threshold_precision, labelled.describe)
            else:
                tags.update(registry.threshold_tags(chosen, threshold_precision, labelled.describe))
        versions.set_tags(ref.name, ref.version, tags)
    return Evaluation(report, scored, tracker.run_id, tracker.url(), written)


def evaluate(config: EvaluateConfig) -> Evaluation:
    from lxn.tracking import check_tracking

    if config.out:
        storage.check_writable(config.out, "evaluation report")
    labelled = open_labelled(data=config.data, split=config.split, labelled=config.labelled,
                             layout=config.labelled_format)
    tracking_uri = check_tracking(config.tracking_uri)
    return run_evaluation(labelled, config.model, tracking_uri=tracking_uri, options=config.scoring_settings(),
                          threshold=config.threshold, threshold_precision=config.threshold_precision,
                          experiment=config.experiment, out=config.out, tag_versions=config.tag_versions,
                          set_threshold=config.set_threshold, params=to_dict(config))
