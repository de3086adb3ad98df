"""Promotion through the MLflow registry: move `champion` to the `challenger` when it has earned it.

Gates, in order (each failure is a reason in the decision, not an exception):

1. the challenger alias resolves to a version that carries the gate metric (training tags every
   version it registers with its test metrics);
2. the metric clears an absolute floor (`min_metric`);
3. if there is a champion: both were tested on the same prepared dataset (otherwise their test
   metrics are not comparable), they predict the same classes (a scan report's brands would
   change meaning), and the challenger's metric is at least the champion's plus
   `min_improvement` (negative values allow a bounded regression).

Promotion itself is two alias moves: the old champion becomes `previous-champion` (one command
rolls back: `--candidate previous-champion`), the challenger becomes `champion`. The version is
tagged with when and from what it was promoted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from lxn import registry
from lxn.config import setting
from lxn.tracking import ModelRef, TrackingError, check_tracking, registry_client

__all__ = ["PromoteConfig", "Decision", "decide", "promote"]


@dataclasses.dataclass(frozen=True)
class PromoteConfig:
    registered_model: str = setting("logoxpertnet", "MLflow registered model name")
    candidate: str = setting(registry.CHALLENGER, "alias of the version to promote")
    target: str = setting(registry.CHAMPION, "alias to move onto it")
    metric: str = setting(registry.TEST_TOP1, "version tag compared between candidate and champion")
    min_metric: float = setting(0.0, "the candidate's metric must be at least this")
    min_improvement: float = setting(0.0, "the candidate must beat the champion by at least this (may be negative)")
    force: bool = setting(False, "promote even if a gate fails (the reasons are still recorded)")
    dry_run: bool = setting(False, "decide and print, change nothing")
    tracking_uri: str | None = setting(None, "MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)", uri="tracking")


@dataclasses.dataclass
class Decision:
    promote: bool
    candidate: ModelRef
    champion: ModelRef | None
    candidate_metric: float | None
    champion_metric: float | None
    reasons: list[str]
    applied: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "applied": self.applied,
            "candidate": self.candidate.uri,
            "champion": self.champion.uri if self.champion else None,
            "candidate_metric": self.candidate_metric,
            "champion_metric": self.champion_metric,
            "reasons": self.reasons,
        }


def _version(client, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception:  # noqa: BLE001 - MLflow raises a generic error for a missing alias
        return None


def _metric(version, key: str) -> float | None:
    try:
        return float(version.tags[key])
    except (KeyError, ValueError):
        return None


def decide(config: PromoteConfig) -> Decision:
    client = registry_client(check_tracking(config.tracking_uri))
    name = config.registered_model
    candidate = _version(client, name, config.candidate)
    if candidate is None:
        raise TrackingError(f"models:/{name}@{config.candidate} does not exist: train and register a model first")
    champion = _version(client, name, config.target)
    cand_ref = ModelRef(name, str(candidate.version))
    champ_ref = ModelRef(name, str(champion.version)) if champion else None
    cand_metric = _metric(candidate, config.metric)
    champ_metric = _metric(champion, config.metric) if champion else None
    reasons: list[str] = []

    if champ_ref and champ_ref.version == cand_ref.version:
        reasons.append(f"version {cand_ref.version} is already {config.target}")
    if cand_metric is None:
        reasons.append(f"version {cand_ref.version} has no '{config.metric}' tag to judge it by")
    elif cand_metric < config.min_metric:
        reasons.append(f"{config.metric} {cand_metric:.4f} is below the floor {config.min_metric:.4f}")
    if champion is not None and cand_metric is not None:
        if candidate.tags.get(registry.DATASET) != champion.tags.get(registry.DATASET):
            reasons.append(
                f"tested on different datasets ({candidate.tags.get(registry.DATASET)} vs {champion.tags.get(registry.DATASET)}): "
                "metrics are not comparable"
            )
        if candidate.tags.get(registry.CLASSES_SHA) != champion.tags.get(registry.CLASSES_SHA):
            reasons.append("the class lists differ: a promotion would change what reported brands mean")
        if champ_metric is not None and cand_metric < champ_metric + config.min_improvement:
            reasons.append(
                f"{config.metric} {cand_metric:.4f} does not beat the champion's {champ_metric:.4f} "
                f"by {config.min_improvement:+.4f}"
            )
    return Decision(not reasons, cand_ref, champ_ref, cand_metric, champ_metric, reasons)


def promote(config: PromoteConfig) -> Decision:
    """Decide, and unless it is a dry run, move the aliases when the gates pass (or `force`)."""
    decision = decide(config)
    go = decision.promote or (config.force and decision.champion != decision.candidate)
    if config.dry_run or not go:
        return decision
    client = registry_client(check_tracking(config.tracking_uri))
    name = config.registered_model
    if decision.champion is not None:
        client.set_registered_model_alias(name, registry.PREVIOUS_CHAMPION, decision.champion.version)
    client.set_registered_model_alias(name, config.target, decision.candidate.version)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    client.set_model_version_tag(name, decision.candidate.version, f"promoted_to_{config.target}_at", now)
    if config.force and decision.reasons:
        client.set_model_version_tag(name, decision.candidate.version, "forced_over", "; ".join(decision.reasons)[:5000])
    decision.applied = True
    return decision
