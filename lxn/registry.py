"""The contract between training, the MLflow registry, promotion and the scan: the aliases, the
tags a registered version carries, the tags lxn puts on its MLflow runs, and what their values
mean. Training writes them; promotion and the scan read them; only this module names them.

Every registry operation lxn makes goes through `Registry` (register a version, resolve an alias,
move one under the lock, tag, trust or delete a version): no other module holds an MLflow client
for the registry. Run tracking and model packaging stay in lxn.tracking.

A version's no-logo threshold: training chooses, on the validation split, the lowest threshold
at which the scan's brand hits reach a target precision (`lxn.evidence.threshold_for_precision`)
and tags it; the scan uses it unless `--threshold` says otherwise, and records which it used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import re
import socket
import time
from typing import Any, Iterator, Mapping

from lxn.errors import PromotionConflict, TrackingError, UnsafeModelError
from lxn.tracking_uri import _client, fluent, resolve_tracking_uri

__all__ = ["CHALLENGER", "CHAMPION", "PREVIOUS_CHAMPION", "TEST_TOP1", "TEST_F1_MACRO", "TEST_MAP50", "TEST_MAP", "DATASET", "RUN_NAME",
           "CLASSES_SHA", "PT2_SHA256", "THRESHOLD", "THRESHOLD_TARGET", "THRESHOLD_SOURCE", "DEFAULT_THRESHOLD",
           "EVAL_TOP1", "EVAL_F1_MACRO", "EVAL_SET", "EVAL_RUN", "threshold_tags", "scan_threshold",
           "evaluation_tags", "PROMOTED_AT", "PROMOTION_RUN", "DERIVED_FROM", "PROTOTYPE_BRANDS", "UNKNOWN_BELOW",
           "scan_unknown_below", "FORCED_OVER", "ALIAS_MOVED_FROM", "LOCK_SUFFIX", "RUN_ID", "KIND", "RESUME_NAME",
           "REGISTERED_VERSION", "RUN_DATASET", "RUN_MODEL", "RUN_RECIPE", "RUN_SEED", "GRID", "ModelRef",
           "Registry"]

log = logging.getLogger(__name__)

# aliases
CHALLENGER = "challenger"              # the newest registered version, waiting for promotion
CHAMPION = "champion"                  # what the nightly scan uses
PREVIOUS_CHAMPION = "previous-champion"  # the champion before the last promotion (rollback)

# version tags written at registration
TEST_TOP1 = "test_top1"                # top-1 on the prepared test split, best weights
TEST_F1_MACRO = "test_f1_macro"
TEST_MAP50 = "test_map_50"             # a detector's: COCO mAP@0.5 on the test split, best weights
TEST_MAP = "test_map"                  # a detector's: COCO mAP@[.5:.95]
DATASET = "dataset"                    # the prepared dataset's URI: test figures compare only within one
RUN_NAME = "run_name"
RUN_ID = "run_id"                      # the training run that logged the version
CLASSES_SHA = "classes_sha"            # digest of the ordered class list: what a reported brand means
PT2_SHA256 = "lxn.pt2_sha256"          # the exported archive's digest, checked before every load
THRESHOLD = "lxn.threshold"            # the scan's default no-logo threshold for this version
THRESHOLD_TARGET = "lxn.threshold_target_precision"  # the precision of brand hits it was chosen for
THRESHOLD_SOURCE = "lxn.threshold_source"  # the data that chose it, e.g. "val split of s3://.../prepared"

# version tags written by an evaluation (jobs/evaluate.py, promotion): its headline figures
EVAL_TOP1 = "lxn.eval.top1"
EVAL_F1_MACRO = "lxn.eval.f1_macro"
EVAL_SET = "lxn.eval.set"              # which labelled set they were measured on
EVAL_RUN = "lxn.eval.run_id"           # the MLflow run (experiment lxn-evaluations) holding the report

# version tags written by promotion
PROMOTED_AT = "lxn.promoted_at"        # when the version last became champion
PROMOTION_RUN = "lxn.promotion_run_id"  # the decision's MLflow run (experiment lxn-promotions)
FORCED_OVER = "lxn.forced_over"        # the gates' reasons a --force promotion overrode
ALIAS_MOVED_FROM = "lxn.alias_moved_from"  # on a version an alias moved to: "<alias>=<old version>"

# the promotion lock: a registered model of this name suffix, held while aliases move
LOCK_SUFFIX = ".lxn-promotion-lock"
LOCK_OWNER = "lxn.lock_owner"
LOCK_AT = "lxn.lock_at"
# Creating the lock model can fail three ways that mean "not yet": it exists (held), the holder
# deleted it between the store's failed insert and its own lookup of the name (the store then says
# it does not exist), or the store is busy (sqlite under concurrent writers).
_LOCK_TAKEN = {"RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST", "TEMPORARILY_UNAVAILABLE"}

DEFAULT_THRESHOLD = 0.5                # a version without a chosen threshold

# version tags of onboarded brands (jobs/brands.py; the prototypes are in the model's metadata)
DERIVED_FROM = "lxn.derived_from"      # the version whose weights a prototype version carries
PROTOTYPE_BRANDS = "lxn.prototype_brands"  # comma-separated, for reading in the MLflow UI
UNKNOWN_BELOW = "lxn.unknown_below"    # the scan's default open-set cut (cosine similarity); none: off

# run tags (MLflow runs, not versions): what a run is and how jobs find it again
KIND = "lxn.kind"                      # "scan", "evaluation", "promotion", "brands", "paper-tables"
RESUME_NAME = "lxn.run_name"           # a job re-run with the same run name resumes the unfinished run
REGISTERED_VERSION = "lxn.registered_version"  # on a training run: the version it registered ("" if none)
RUN_DATASET = "lxn.dataset"            # on a training run: the prepared dataset, model name, recipe, seed
RUN_MODEL = "lxn.model"
RUN_RECIPE = "lxn.recipe"
RUN_SEED = "lxn.seed"
GRID = "lxn.grid"                      # the grid (jobs/grid.py) a training run belongs to


def threshold_tags(choice: Mapping[str, Any] | None, target: float, source: str) -> dict[str, str]:
    """Version tags for a threshold choice (`lxn.evidence.threshold_for_precision`'s result):
    none when no threshold reached the target, so the scan falls back to DEFAULT_THRESHOLD."""
    if choice is None:
        return {}
    return {THRESHOLD: repr(float(choice["threshold"])), THRESHOLD_TARGET: repr(float(target)),
            THRESHOLD_SOURCE: source,
            "lxn.threshold_precision": repr(choice["precision"]), "lxn.threshold_recall": repr(choice["recall"])}


def scan_threshold(flag: float | None, tags: Mapping[str, str]) -> tuple[float, str]:
    """The threshold a scan uses, and why: the flag, else the version's tag, else the default."""
    if flag is not None:
        return float(flag), "--threshold"
    text = tags.get(THRESHOLD)
    if text is not None:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"the version's {THRESHOLD} tag is {text!r}, not a threshold within 0..1: "
                             "fix the tag or pass --threshold")
        target = tags.get(THRESHOLD_TARGET, "?")
        return value, f"the version's {THRESHOLD} tag (precision {target} on {tags.get(THRESHOLD_SOURCE, '?')})"
    return DEFAULT_THRESHOLD, f"the default (the version has no {THRESHOLD} tag)"


def evaluation_tags(figures: Mapping[str, Any], labelled: str, run_id: str) -> dict[str, str]:
    """A version's tags for one evaluation's figures (`lxn.evaluation.report.figures`)."""
    at = figures["at_threshold"]
    return {EVAL_TOP1: repr(figures["top1"]), EVAL_F1_MACRO: repr(figures["f1_macro"]), EVAL_SET: labelled[:5000],
            EVAL_RUN: run_id, "lxn.eval.hit_precision": repr(at["precision"]), "lxn.eval.hit_recall": repr(at["recall"]),
            "lxn.eval.threshold": repr(at["threshold"])}


def scan_unknown_below(flag: float | None, tags: Mapping[str, str]) -> tuple[float | None, str]:
    """The scan's open-set cut and where it came from: the flag, else the version's tag, else off."""
    if flag is not None:
        return flag, "--unknown-below"
    value = tags.get(UNKNOWN_BELOW)
    if value is None:
        return None, "off"
    try:
        cut = float(value)
    except ValueError:
        raise ValueError(f"the version's {UNKNOWN_BELOW} tag is {value!r}, not a number") from None
    if not -1.0 <= cut <= 1.0:
        raise ValueError(f"the version's {UNKNOWN_BELOW} tag is {cut}, outside -1..1")
    return cut, f"version tag {UNKNOWN_BELOW}"


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """A registered model version: `models:/name/version`."""

    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_\-]+))$")


class Registry:
    """The MLflow model registry at `tracking_uri` (default: MLFLOW_TRACKING_URI, then the local
    sqlite store), as lxn uses it."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.uri = resolve_tracking_uri(tracking_uri)
        self.client = _client(self.uri)

    def resolve(self, uri: str) -> ModelRef:
        """`models:/name@alias` or `models:/name/version` -> the concrete version, resolved once."""
        match = _MODEL_URI.match(uri)
        if not match:
            raise ValueError(f"model URI must look like models:/<name>@<alias> or models:/<name>/<version>, got {uri!r}")
        if match["version"]:
            return ModelRef(match["name"], match["version"])
        try:
            return ModelRef(match["name"], str(self.client.get_model_version_by_alias(match["name"], match["alias"]).version))
        except Exception as exc:  # noqa: BLE001
            raise TrackingError(f"cannot resolve {uri}: {exc}") from None

    def tags(self, ref: ModelRef) -> dict[str, str]:
        """The registered version's tags (what they mean: this module's constants)."""
        try:
            return dict(self.client.get_model_version(ref.name, ref.version).tags)
        except Exception as exc:  # noqa: BLE001
            raise TrackingError(f"cannot read {ref.uri}: {exc}") from None

    def register(self, model_uri: str, name: str, tags: Mapping[str, Any], alias: str | None) -> ModelRef:
        """Register the logged model `model_uri` as a new version of `name`, tag it and point
        `alias` at it. If tagging or aliasing fails, the version is deleted again: a failure never
        leaves a half-registered version for the scan or promotion to find."""
        import mlflow

        with fluent(self.uri):  # artifact URIs (mlflow-artifacts:/ on a server) resolve against it
            ref = ModelRef(name, str(mlflow.register_model(model_uri, name).version))
        try:
            self.set_tags(ref.name, ref.version, tags)
            if alias:
                self.point(ref.name, alias, ref.version)
        except Exception:
            self.delete_version(ref.name, ref.version)
            raise
        return ref

    def record_digest(self, ref: ModelRef, sha256: str) -> None:
        """Record `sha256` as the version's PT2_SHA256 (for a version registered without one). A
        digest already recorded is never replaced: a different archive under a trusted version is
        what the digest exists to catch."""
        recorded = self.tags(ref).get(PT2_SHA256)
        if recorded and recorded != sha256:
            raise UnsafeModelError(f"{ref.uri} already records SHA-256 {recorded[:16]}..., not {sha256[:16]}...: "
                                   "its archive changed after registration; register the model again instead")
        if not recorded:
            self.client.set_model_version_tag(ref.name, ref.version, PT2_SHA256, sha256)

    def version(self, name: str, alias: str):
        """The version `name@alias` points at (an MLflow ModelVersion), or None."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None

    def alias_version(self, name: str, alias: str) -> str | None:
        found = self.version(name, alias)
        return None if found is None else str(found.version)

    def set_tags(self, name: str, version: str, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, str(value))

    def point(self, name: str, alias: str, version: str, *, previous: str | None = None) -> None:
        """Move `alias` to `version`; with `previous`, PREVIOUS_CHAMPION first takes the version
        the alias left (what `jobs/promote.py --rollback` returns to). Call it under `lock`."""
        if previous is not None:
            self.client.set_registered_model_alias(name, PREVIOUS_CHAMPION, previous)
        self.client.set_registered_model_alias(name, alias, version)

    def delete_version(self, name: str, version: str) -> None:
        self.client.delete_model_version(name, version)

    @contextlib.contextmanager
    def lock(self, name: str, timeout_s: float = 120.0, stale_s: float = 600.0) -> Iterator[None]:
        """Exclusive use of registered model `name`'s aliases across processes and hosts.

        MLflow has no compare-and-set for aliases, but creating a registered model is atomic (the
        name is unique in every store): the lock is a registered model named `<name>` +
        LOCK_SUFFIX, created to take it and deleted to give it back. A lock older than `stale_s`
        (its holder died) is broken."""
        from mlflow.exceptions import MlflowException

        client, lock = self.client, f"{name}{LOCK_SUFFIX}"
        owner = f"{socket.gethostname()}:{os.getpid()}"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.create_registered_model(lock, tags={LOCK_OWNER: owner, LOCK_AT: repr(time.time())},
                                               description="held while lxn promotes a version of " + name)
                break
            except MlflowException as exc:
                if exc.error_code not in _LOCK_TAKEN:
                    raise
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # released or busy under our feet: ask again
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05 + 0.1 * random.random())
                    continue
            try:
                held = client.get_registered_model(lock)
                age = time.time() - float(held.tags.get(LOCK_AT, "0"))
                holder = held.tags.get(LOCK_OWNER, "?")
            except MlflowException:
                continue  # released between our two calls
            if age > stale_s:
                log.warning("breaking the promotion lock of %s held by %s for %.0f s (its holder died?)", name, holder,
                            age)
                with contextlib.suppress(MlflowException):
                    client.delete_registered_model(lock)
                continue
            if time.monotonic() > deadline:
                raise PromotionConflict(f"another promotion of {name} ({holder}) has held the registry lock for "
                                        f"{age:.0f} s; nothing was changed: try again later, or delete the registered "
                                        f"model {lock} if its holder is gone")
            time.sleep(0.2 + 0.3 * random.random())
        try:
            yield
        finally:
            self._release(lock)

    def _release(self, lock: str, attempts: int = 5) -> None:
        """Give the lock back; a busy store is asked again rather than leaving the lock to go stale
        (every other promotion would wait `stale_s` for it)."""
        from mlflow.exceptions import MlflowException

        for attempt in range(attempts):
            try:
                self.client.delete_registered_model(lock)
                return
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return  # broken as stale by another promotion: it is not ours any more
                if exc.error_code != "TEMPORARILY_UNAVAILABLE" or attempt == attempts - 1:
                    raise
                time.sleep(0.2 * 2 ** attempt)
