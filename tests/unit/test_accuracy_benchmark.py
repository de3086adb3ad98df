"""The accuracy benchmark's bookkeeping: run specs, per-image correctness from scan rows, the
paired test against the first run and the table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lxn.benchmarks.accuracy import (AccuracyBenchConfig, _correct, _score, log_row, logged_row, paired_test, parse_run,
                                     run, settings_digest)

CLASSES = ["acme", "globex", "no-logo"]


def _row(label, top, p=0.9):
    others = [c for c in CLASSES if c != top]
    return {"uri": f"/test/{label}/{label}-{id(object())}-{top}.jpg", "status": "ok",
            "brand": None if top == "no-logo" or p < 0.5 else top,
            "top_brands": [top, *others], "top_probs": [p, (1 - p) / 2, (1 - p) / 2]}


def test_a_run_spec_becomes_train_settings_and_a_slug():
    assert parse_run("logoxpertnet:lxn:spectrum=dct:lr=0.001") == (
        "logoxpertnet-lxn-spectrum-dct-lr-0.001",
        {"model": "logoxpertnet", "recipe": "lxn", "spectrum": "dct", "lr": 0.001})


def test_correctness_agrees_with_top1_and_the_paired_test_counts_discordant_images():
    rows_a = [_row("acme", "acme"), _row("globex", "acme"), _row("no-logo", "no-logo"), _row("acme", "globex")]
    rows_b = [dict(r) for r in rows_a]
    rows_b[1] = {**rows_a[1], "top_brands": ["globex", "acme", "no-logo"], "brand": "globex"}  # b fixes one
    a, b = _correct(rows_a, CLASSES), _correct(rows_b, CLASSES)
    assert sum(a.values()) / len(a) == _score(rows_a, CLASSES, 0.5)["top1"] == 0.5
    paired = paired_test(a, b)
    assert (paired["images"], paired["only_this_right"], paired["only_first_right"]) == (4, 1, 0)
    assert paired["p_value"] == 1.0  # one discordant image is no evidence


def _logged(tracking, digest, run, seed, top1, correct):
    scores = {"top1": top1, "f1_macro": top1 - 0.1, "no_logo_unbranded": None, "brand_precision": 0.5,
              "brand_recall": 0.4, "val_top1_in_domain": 0.6, "train_s": 10.0, "scan_s": 2.0}
    log_row(tracking, digest, run, seed, scores, correct)


def test_the_tables_are_built_from_the_logged_runs(tmp_path):
    """Rows logged to a real MLflow store are read back (a stopped grid resumes from them): each
    run summarised over its seeds, each model's best run found and tested against the others'."""
    config = AccuracyBenchConfig(out=tmp_path / "out", runs=["m:lxn", "m:plain", "n:plain", "n:plain:lr=0.1"], seeds=[0, 1],
                                 table_only=True)
    tracking = f"sqlite:///{tmp_path}/out/accuracy/mlflow.db"
    (tmp_path / "out" / "accuracy").mkdir(parents=True)
    digest = settings_digest(config)
    images = [f"/t/{i}.jpg" for i in range(20)]
    right = lambda k: {u: i < k for i, u in enumerate(images)}  # noqa: E731 - the first k images right
    _logged(tracking, digest, "m:lxn", 0, 0.5, right(10))
    _logged(tracking, digest, "m:lxn", 1, 0.7, right(14))
    _logged(tracking, digest, "m:plain", 0, 0.2, right(4))
    _logged(tracking, digest, "n:plain", 0, 0.1, right(2))
    _logged(tracking, digest, "n:plain", 1, 0.1, right(2))
    _logged(tracking, digest, "n:plain:lr=0.1", 0, 0.15, right(3))
    _logged(tracking, "other-settings", "n:plain", 0, 0.9, right(18))  # another budget: not this table's
    assert logged_row(tracking, digest, "m:plain", 1) is None
    assert logged_row(tracking, digest, "m:lxn", 1)["correct"] == right(14)

    result = run(config)
    rows = {r["run"]: r for r in result["rows"]}
    assert rows["m:lxn"]["seeds"] == [0, 1] and rows["m:plain"]["seeds"] == [0]
    assert rows["m:lxn"]["top1"] == pytest.approx(0.6) and rows["m:lxn"]["top1_std"] == pytest.approx(0.1414, abs=1e-3)
    assert rows["m:plain"]["top1_std"] is None
    # against the first run, pairs only where both have the seed: seed 0, 6 images only m:lxn right
    assert rows["m:plain"]["vs_first"]["only_first_right"] == 6 and rows["m:plain"]["vs_first"]["seeds"] == [0]
    # a variant is compared with the run it varies: 1 image only it gets right, none only n:plain
    assert rows["n:plain:lr=0.1"]["vs"] == "n:plain" and rows["n:plain:lr=0.1"]["vs_first"]["only_this_right"] == 1
    assert result["best"] == {"m": "m:lxn", "n": "n:plain:lr=0.1"}
    (pair,) = result["best_pairs"]
    assert (pair["a"], pair["b"], pair["seeds"]) == ("m:lxn", "n:plain:lr=0.1", [0])
    assert (pair["only_first_right"], pair["only_this_right"]) == (7, 0)
    assert pair["p_value"] == pytest.approx(2 / 2**7)
    table = (tmp_path / "out" / "accuracy.md").read_text()
    assert "| m:lxn | 0,1 | 60.0% ± 14.1 |" in table and "| (reference) |" in table and "n/a" in table
    assert "| m:lxn | n:plain:lr=0.1 | 7 / 0 |" in table and "p = 1 (vs n:plain) |" in table
    assert json.loads((tmp_path / "out" / "accuracy.json").read_text())["settings_digest"] == digest


def test_the_settings_digest_ignores_what_does_not_change_a_row():
    base = AccuracyBenchConfig()
    assert settings_digest(dataclasses.replace(base, runs=["x:lxn"], seeds=[3], out=Path("/elsewhere"))) == settings_digest(base)
    assert settings_digest(dataclasses.replace(base, epochs=base.epochs + 1)) != settings_digest(base)
