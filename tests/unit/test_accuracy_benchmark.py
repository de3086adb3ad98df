"""The accuracy benchmark's bookkeeping: run specs, per-image correctness from scan rows, the
paired test against the first run and the table."""

from __future__ import annotations

from lxn.benchmarks.accuracy import _correct, _score, markdown_table, paired_test, parse_run

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
    table = markdown_table({"results": [
        {"run": "x:lxn", "top1": 0.5, "f1_macro": 0.4, "no_logo_unbranded": 1.0, "brand_precision": 0.5,
         "brand_recall": 0.33, "val_top1_in_domain": 0.6, "train_s": 10, "scan_s": 2, "vs_first": None},
        {"run": "y:lxn", "top1": 0.75, "f1_macro": 0.7, "no_logo_unbranded": None, "brand_precision": 0.5,
         "brand_recall": 0.5, "val_top1_in_domain": 0.6, "train_s": 10, "scan_s": 2, "vs_first": paired}]})
    assert "| (first) |" in table and "| 1 / 0, p = 1 |" in table and "n/a" in table
