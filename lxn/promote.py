"""Promotion through the MLflow registry: `champion` moves to the `challenger` when it has earned
it on evidence measured now, in this job.

1. Resolve both aliases to versions (once). The challenger and the champion must predict the
   same classes (otherwise a scan report's brands would change meaning).
2. Evaluate both on the same labelled set, in one run of `lxn.evaluation` (the scan's own fetch,
   decode and predict path; one decode for both): by default the challenger's prepared dataset's
   test split, or `--data`/`--labelled`. Measure their batch-1 CPU latency interleaved in this
   process.
3. Gates (`judge`), each a flag: minimum top-1 and macro-F1; no class with at least
   `--class-min-support` images loses more than `--max-class-drop` accuracy; latency grows by at
   most `--max-latency-growth`; and the challenger is *better*: it is right where the champion is
   wrong more often than the reverse, with an exact McNemar p-value of at most `--max-p`. The
   first model (no champion yet) needs the absolute gates only.
4. The decision is an MLflow run (experiment `lxn-promotions`) holding the comparison table and
   the reasons. Applying it takes the registry lock, checks that neither alias moved since step 1
   (another promotion may have won meanwhile: then nothing changes and the job says so), and
   moves `previous-champion` to the old champion and `champion` to the challenger.

`--rollback` swaps `champion` and `previous-champion` back without evaluating (an emergency
exit, still recorded as a decision run); `--dry-run` decides and changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from lxn import registry
from lxn.config import setting, to_dict
from lxn.evaluation.scoring import ScoringSettings
from lxn.errors import PromotionConflict
from lxn.registry import ModelRef
from lxn.tracking import TrackingError, check_tracking

__all__ = ["PromoteConfig", "Decision", "PromotionConflict", "judge", "decide", "promote",
           "measure_latency", "EXIT_REFUSED"]

log = logging.getLogger(__name__)

EXIT_REFUSED = 3    # a gate kept the champion


@dataclasses.dataclass(frozen=True)
class PromoteConfig(ScoringSettings):
    registered_model: str = setting("logoxpertnet", "MLflow registered model name")
    candidate: str = setting(registry.CHALLENGER, "alias of the version to promote")
    target: str = setting(registry.CHAMPION, "alias to move onto it")
    data: str | None = setting(None, "prepared dataset to evaluate both on (default: the candidate's own, from its dataset tag)", uri="input")
    split: str = setting("test", "split of --data")
    labelled: str | None = setting(None, "evaluate on this labelled set instead (see jobs/evaluate.py --labelled)", uri="input")
    labelled_format: str = setting("auto", "layout of --labelled (see jobs/evaluate.py)")
    min_top1: float = setting(0.0, "the candidate's top-1 must be at least this")
    min_f1: float = setting(0.0, "the candidate's macro F1 must be at least this")
    max_class_drop: float = setting(0.10, "no class may lose more accuracy than this against the champion ...")
    class_min_support: int = setting(20, "... among classes with at least this many images (fewer: too noisy to judge)")
    max_latency_growth: float = setting(0.25, "the candidate's batch-1 CPU latency may exceed the champion's by at most this fraction (inf: no limit)")
    max_p: float = setting(0.05, "the candidate must beat the champion with an exact McNemar p-value of at most this (1: more wins than losses suffices)")
    latency_rounds: int = setting(30, "interleaved rounds of the latency measurement")
    rollback: bool = setting(False, "swap champion and previous-champion back, without evaluating")
    force: bool = setting(False, "promote even if a gate fails (the reasons are still recorded)")
    dry_run: bool = setting(False, "decide and print, change nothing")
    lock_timeout_s: float = setting(120.0, "how long to wait for another promotion of this model to finish")
    experiment: str = setting("lxn-promotions", "MLflow experiment of the decision runs")
    tracking_uri: str | None = setting(None, "MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)", uri="tracking")

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.max_class_drop <= 1 or self.class_min_support < 1:
            problems.append("--max-class-drop must be within 0..1 and --class-min-support at least 1")
        if not 0 < self.max_p <= 1:
            problems.append(f"--max-p must be within (0, 1], got {self.max_p}")
        if self.max_latency_growth < 0 or self.latency_rounds < 1:
            problems.append("--max-latency-growth must be at least 0 and --latency-rounds at least 1")
        if self.rollback and (self.candidate != registry.CHALLENGER or self.data or self.labelled):
            problems.append("--rollback swaps champion and previous-champion: it takes no --candidate, --data or --labelled")
        problems += self.scoring_problems()
        if problems:
            raise ValueError("; ".join(problems))


@dataclasses.dataclass
class Decision:
    promote: bool
    candidate: ModelRef
    champion: ModelRef | None
    reasons: list[str]
    table: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # one row per model
    comparison: dict[str, Any] | None = None
    evaluation_run: str | None = None
    decision_run: str | None = None
    rollback: bool = False
    applied: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"promote": self.promote, "applied": self.applied, "rollback": self.rollback,
                "candidate": self.candidate.uri, "champion": self.champion.uri if self.champion else None,
                "reasons": self.reasons, "table": self.table,
                "mcnemar": self.comparison["mcnemar"] if self.comparison else None,
                "evaluation_run": self.evaluation_run, "decision_run": self.decision_run}


# ------------------------------------------------------------------------------------------ gates


def judge(config: PromoteConfig, candidate: dict[str, Any], champion: dict[str, Any] | None,
          comparison: dict[str, Any] | None, latency_ms: dict[str, float] | None) -> list[str]:
    """The reasons the candidate may not replace the champion (empty: it may). `candidate` and
    `champion` are `lxn.evaluation.report.figures`, `comparison` the candidate against the
    champion (`report.compare`), `latency_ms` {"candidate": ms, "champion": ms}."""
    reasons = []
    if candidate["top1"] < config.min_top1:
        reasons.append(f"top-1 {candidate['top1']:.4f} is below the floor {config.min_top1:.4f}")
    if candidate["f1_macro"] < config.min_f1:
        reasons.append(f"macro F1 {candidate['f1_macro']:.4f} is below the floor {config.min_f1:.4f}")
    if champion is None or comparison is None:
        return reasons
    dropped = [c for c in comparison["per_class_changes"]
               if c["support"] >= config.class_min_support and -c["change"] > config.max_class_drop]
    if dropped:
        shown = ", ".join(f"{c['class']} {100 * c['reference']:.1f}% -> {100 * c['accuracy']:.1f}% (n={c['support']})"
                          for c in dropped[:5])
        reasons.append(f"{len(dropped)} class(es) lose more than {100 * config.max_class_drop:.1f} points of accuracy: "
                       f"{shown}{' ...' if len(dropped) > 5 else ''}")
    if latency_ms is not None and math.isfinite(config.max_latency_growth):
        growth = latency_ms["candidate"] / latency_ms["champion"] - 1
        if growth > config.max_latency_growth:
            reasons.append(f"batch-1 CPU latency grows {100 * growth:.0f}% ({latency_ms['champion']:.2f} -> "
                           f"{latency_ms['candidate']:.2f} ms), above {100 * config.max_latency_growth:.0f}%")
    m = comparison["mcnemar"]
    if m["wins"] <= m["losses"] or m["p_value"] > config.max_p:
        reasons.append(f"not better than the champion: right where it is wrong on {m['wins']} images, wrong where it "
                       f"is right on {m['losses']} (exact McNemar p = {m['p_value']:.3g}, needs more wins and "
                       f"p <= {config.max_p:g})")
    return reasons


def measure_latency(models: dict[str, Any], rounds: int) -> dict[str, float]:
    """Median batch-1 latency (ms) of each loaded model on one CPU thread, interleaved so that
    drift on a shared machine hits both alike."""
    import numpy as np
    import torch

    from lxn.timing import interleaved_medians

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        calls = {}
        for name, loaded in models.items():
            size = loaded.preset.image_size
            image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8))
            calls[name] = (lambda module, x: lambda: module(x))(loaded.module, image)
        with torch.inference_mode():
            medians = interleaved_medians(calls, rounds=rounds, warmup=3)
    finally:
        torch.set_num_threads(threads)
    return {name: 1000 * seconds for name, seconds in medians.items()}


# ----------------------------------------------------------------------------------------- decide


def _labelled_set(config: PromoteConfig, candidate):
    from lxn.evaluation.labelled import open_labelled

    data = config.data
    if data is None and config.labelled is None:
        data = candidate.tags.get(registry.DATASET)
        if not data:
            raise ValueError(f"version {candidate.version} has no '{registry.DATASET}' tag naming its prepared dataset: "
                             "give --data PREPARED or --labelled URI to evaluate on")
    return open_labelled(data=data, split=config.split, labelled=None if data else config.labelled,
                         layout=config.labelled_format)


def _row(role: str, ref: ModelRef, figures: dict[str, Any], latency_ms: float | None) -> dict[str, Any]:
    at = figures["at_threshold"]
    return {"role": role, "model": ref.uri, "top1": figures["top1"], "f1_macro": figures["f1_macro"],
            "precision_macro": figures["precision_macro"], "recall_macro": figures["recall_macro"],
            "auc_macro_ovr": figures["auc_macro_ovr"], "ece": figures["ece"], "threshold": at["threshold"],
            "hit_precision": at["precision"], "hit_recall": at["recall"], "latency_ms": latency_ms}


def decide(config: PromoteConfig) -> Decision:
    """Evaluate both versions now and apply the gates (changes nothing but the evaluation's tags)."""
    from lxn.evaluation.job import run_evaluation
    from lxn.tracking import load_model

    tracking_uri = check_tracking(config.tracking_uri)
    models = registry.Registry(tracking_uri)
    name = config.registered_model
    candidate = models.version(name, config.candidate)
    if candidate is None:
        raise TrackingError(f"models:/{name}@{config.candidate} does not exist: train and register a model first")
    champion = models.version(name, config.target)
    cand_ref = ModelRef(name, str(candidate.version))
    champ_ref = ModelRef(name, str(champion.version)) if champion else None
    if champ_ref and champ_ref.version == cand_ref.version:
        return Decision(False, cand_ref, champ_ref, [f"version {cand_ref.version} is already {config.target}"])
    if champion is not None and candidate.tags.get(registry.CLASSES_SHA) != champion.tags.get(registry.CLASSES_SHA):
        return Decision(False, cand_ref, champ_ref,
                        ["the class lists differ: a promotion would change what reported brands mean"])

    labelled = _labelled_set(config, candidate)
    uris = [champ_ref.uri, cand_ref.uri] if champ_ref else [cand_ref.uri]
    evaluation = run_evaluation(labelled, uris, tracking_uri=tracking_uri, options=config.scoring_settings(),
                                params={"purpose": f"promotion of {cand_ref.uri} to {config.target}"})
    figures = evaluation.report["models"]
    cand_figures, champ_figures = figures[-1], (figures[0] if champ_ref else None)
    comparison = evaluation.report["comparisons"][0] if champ_ref else None
    latency = None
    if champ_ref:
        loaded = {role: load_model(ref.uri, tracking_uri, "cpu") for role, ref in (("champion", champ_ref),
                                                                                   ("candidate", cand_ref))}
        latency = measure_latency(loaded, config.latency_rounds)
    reasons = judge(config, cand_figures, champ_figures, comparison, latency)
    table = ([_row("champion", champ_ref, champ_figures, latency["champion"])] if champ_ref else []) + \
        [_row("candidate", cand_ref, cand_figures, latency["candidate"] if latency else None)]
    return Decision(not reasons, cand_ref, champ_ref, reasons, table, comparison, evaluation.run_id)


# ------------------------------------------------------------------------------------------ apply


def _apply(config: PromoteConfig, decision: Decision) -> None:
    models = registry.Registry(check_tracking(config.tracking_uri))
    name = config.registered_model
    with models.lock(name, timeout_s=config.lock_timeout_s):
        now_champion = models.alias_version(name, config.target)
        now_candidate = models.alias_version(name, registry.PREVIOUS_CHAMPION if decision.rollback else config.candidate)
        was_champion = decision.champion.version if decision.champion else None
        if (now_champion, now_candidate) != (was_champion, decision.candidate.version):
            raise PromotionConflict(
                f"the registry changed while this promotion decided (another promotion?): {config.target} is now "
                f"{'v' + now_champion if now_champion else 'unset'} (was {'v' + was_champion if was_champion else 'unset'}), "
                f"the candidate alias points at {'v' + now_candidate if now_candidate else 'nothing'} "
                f"(was v{decision.candidate.version}); nothing was changed: run the promotion again to decide on the new state")
        models.point(name, config.target, decision.candidate.version,
                     previous=decision.champion.version if decision.champion is not None else None)
        tags = {registry.PROMOTED_AT: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        if decision.decision_run:
            tags[registry.PROMOTION_RUN] = decision.decision_run
        if config.force and decision.reasons:
            tags[registry.FORCED_OVER] = "; ".join(decision.reasons)[:5000]
        models.set_tags(name, decision.candidate.version, tags)
    decision.applied = True


def markdown(decision: Decision) -> str:
    verdict = ("rollback" if decision.rollback else "promote") if decision.promote else "keep the champion"
    lines = [f"# Promotion of {decision.candidate.uri}: {verdict}", ""]
    if decision.table:
        lines += ["| role | model | top-1 | macro F1 | macro AUC | ECE | threshold | hit precision | hit recall | batch-1 CPU ms |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in decision.table:
            cells = [r["role"], r["model"]] + [("-" if r[k] is None else f"{r[k]:.4f}") for k in
                                               ("top1", "f1_macro", "auc_macro_ovr", "ece", "threshold", "hit_precision",
                                                "hit_recall")] + ["-" if r["latency_ms"] is None else f"{r['latency_ms']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
    if decision.comparison:
        m = decision.comparison["mcnemar"]
        lines += ["", f"Exact McNemar: the candidate is right where the champion is wrong on {m['wins']} images and "
                      f"wrong where it is right on {m['losses']}; p = {m['p_value']:.3g}."]
        worst = decision.comparison["per_class_changes"][:5]
        if worst:
            lines += ["", "Largest per-class changes: " + ", ".join(
                f"{c['class']} {100 * c['change']:+.1f} points (n={c['support']})" for c in worst)]
    lines += ["", "Reasons against:" if decision.reasons else "Every gate passed.", *[f"- {r}" for r in decision.reasons], ""]
    return "\n".join(lines)


def _record(config: PromoteConfig, decision: Decision, tracking_uri: str) -> None:
    """The decision as an MLflow run: settings, the comparison table, the reasons."""
    from lxn.tracking import RunTracker

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    tracker = RunTracker.start(config.experiment, f"promote-{decision.candidate.name}-v{decision.candidate.version}-{stamp}-"
                               f"{os.getpid()}", tracking_uri)
    tracker.set_tags({registry.KIND: "promotion", "candidate": decision.candidate.uri,
                      "champion": decision.champion.uri if decision.champion else "none",
                      "decision": "promote" if decision.promote else "refuse", "dry_run": config.dry_run,
                      "rollback": decision.rollback, "evaluation_run": decision.evaluation_run or "none"})
    tracker.log_params(to_dict(config))
    with tempfile.TemporaryDirectory(prefix="lxn-promote-") as tmp:
        (Path(tmp) / "decision.md").write_text(markdown(decision))
        (Path(tmp) / "decision.json").write_text(json.dumps(decision.to_dict(), indent=2))
        for file in ("decision.md", "decision.json"):
            tracker.log_artifact(Path(tmp) / file)
    tracker.finish()
    decision.decision_run = tracker.run_id


def _rollback_decision(config: PromoteConfig) -> Decision:
    models = registry.Registry(check_tracking(config.tracking_uri))
    name = config.registered_model
    previous = models.version(name, registry.PREVIOUS_CHAMPION)
    if previous is None:
        raise TrackingError(f"models:/{name}@{registry.PREVIOUS_CHAMPION} does not exist: nothing to roll back to")
    champion = models.version(name, config.target)
    return Decision(True, ModelRef(name, str(previous.version)),
                    ModelRef(name, str(champion.version)) if champion else None, [], rollback=True)


def promote(config: PromoteConfig) -> Decision:
    """Decide, record the decision, and unless it is a dry run apply it when the gates pass (or `force`)."""
    tracking_uri = check_tracking(config.tracking_uri)
    decision = _rollback_decision(config) if config.rollback else decide(config)
    go = decision.promote or (config.force and decision.champion != decision.candidate)
    _record(config, decision, tracking_uri)
    if config.dry_run or not go:
        return decision
    _apply(config, decision)
    return decision
