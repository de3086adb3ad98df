"""The contract between training, the MLflow registry, promotion and the scan: the aliases, the
tags a registered version carries and what their values mean. Run tracking (lxn.tracking) writes
them; promotion and the scan read them; only this module names them.

A version's no-logo threshold: training chooses, on the validation split, the lowest threshold
at which the scan's brand hits reach a target precision (`lxn.evidence.threshold_for_precision`)
and tags it; the scan uses it unless `--threshold` says otherwise, and records which it used.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["CHALLENGER", "CHAMPION", "PREVIOUS_CHAMPION", "TEST_TOP1", "TEST_F1_MACRO", "TEST_MAP50", "TEST_MAP", "DATASET", "RUN_NAME",
           "CLASSES_SHA", "PT2_SHA256", "THRESHOLD", "THRESHOLD_TARGET", "THRESHOLD_SOURCE", "DEFAULT_THRESHOLD",
           "EVAL_TOP1", "EVAL_F1_MACRO", "EVAL_SET", "EVAL_RUN", "threshold_tags", "scan_threshold",
           "evaluation_tags", "PROMOTED_AT", "PROMOTION_RUN", "DERIVED_FROM", "PROTOTYPE_BRANDS", "UNKNOWN_BELOW",
           "scan_unknown_below"]

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

DEFAULT_THRESHOLD = 0.5                # a version without a chosen threshold

# version tags of onboarded brands (jobs/brands.py; the prototypes are in the model's metadata)
DERIVED_FROM = "lxn.derived_from"      # the version whose weights a prototype version carries
PROTOTYPE_BRANDS = "lxn.prototype_brands"  # comma-separated, for reading in the MLflow UI
UNKNOWN_BELOW = "lxn.unknown_below"    # the scan's default open-set cut (cosine similarity); none: off


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
