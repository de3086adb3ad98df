"""The drift flag on constructed nights that do and do not drift, from summaries alone and from
committed scans' summaries (finish_commit writes the verdict)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lxn.nightly import drift
from lxn import storage
from lxn.nightly.history import latest_date, nights_before, summaries_between
from lxn.scan.layout import Layout
from tests.staged_scans import Row, commit_rows


def night(date: str, rng: np.random.Generator, n: int = 2000, *, brands=("acme", "globex", "initech"),
          shares=(0.3, 0.2, 0.1), confidence=(0.55, 1.0)) -> dict:
    """A summary of `n` images: each brand's share of them, the rest no brand, and confidences drawn
    uniformly from `confidence`."""
    counts = rng.multinomial(n, [*shares, 1 - sum(shares)])
    return {"date": date, "scan_id": f"s-{date}", "report": {"uri": "x"},
            "counts": {"ok": n, "no_brand": int(counts[-1])},
            "images_by_brand": {b: int(c) for b, c in zip(brands, counts[:-1])},
            "confidence_histogram": drift.confidence_histogram(rng.uniform(*confidence, n))}


def trailing(rng, nights=7, **kwargs):
    return [night(f"2026-11-{d:02d}", rng, **kwargs) for d in range(1, nights + 1)]


def test_psi_is_the_textbook_sum():
    e, a = [50, 30, 20], [30, 30, 40]
    expected = sum((x / 100 - y / 100) * math.log((x / 100) / (y / 100)) for x, y in zip(a, e))
    assert drift.psi(e, a) == pytest.approx(expected)
    assert drift.psi(e, e) == 0.0
    with pytest.raises(ValueError):
        drift.psi([0, 0], [1, 2])


def test_nights_like_the_window_do_not_drift():
    rng = np.random.default_rng(0)
    for _ in range(20):
        verdict = drift.assess(night("2026-11-08", rng), trailing(rng))
        assert verdict["drifted"] is False, verdict
        assert verdict["brand_psi"] < 0.05 and verdict["confidence_psi"] < 0.05


def test_a_new_brand_mix_drifts():
    rng = np.random.default_rng(1)
    tonight = night("2026-11-08", rng, brands=("acme", "globex", "initech"), shares=(0.05, 0.05, 0.6))
    verdict = drift.assess(tonight, trailing(rng))
    assert verdict["drifted"] is True
    assert [r.split()[0] for r in verdict["reasons"]] == ["brand"]
    assert verdict["brand_psi"] > drift.PSI_CUT


def test_a_model_that_stopped_fitting_drifts_on_confidence():
    rng = np.random.default_rng(2)
    tonight = night("2026-11-08", rng, confidence=(0.3, 0.7))  # same brands, far less sure
    verdict = drift.assess(tonight, trailing(rng))
    assert verdict["drifted"] is True and verdict["reasons"][0].startswith("confidence")


def test_a_small_night_from_the_same_distribution_is_no_false_alarm():
    rng = np.random.default_rng(3)
    wide = (0.0, 1.0)  # every confidence bin in use: the most room for noise
    alarms = sum(drift.assess(night("2026-11-08", rng, n=60, confidence=wide),
                              trailing(rng, n=60, confidence=wide))["drifted"] for _ in range(100))
    assert alarms <= 5
    raw = [drift.psi(drift.confidence_histogram(rng.uniform(*wide, 420)),
                     drift.confidence_histogram(rng.uniform(*wide, 60))) for _ in range(100)]
    assert sum(p > drift.PSI_CUT for p in raw) >= 10  # the noise the cut allows for is real: 0.25 alone would alarm


@pytest.mark.parametrize("window, n, reason", [(2, 2000, "2 trailing nights, 3 needed"),
                                               (7, 20, "20 images tonight, 50 needed")])
def test_too_little_to_judge_says_why(window, n, reason):
    rng = np.random.default_rng(4)
    verdict = drift.assess(night("2026-11-08", rng, n=n), trailing(rng, nights=window))
    assert verdict["drifted"] is None and verdict["reason"] == reason


def _rows(date_seed: int, n: int, brand_of, confidence=(0.6, 1.0)) -> list[Row]:
    rng = np.random.default_rng(date_seed)
    return [Row(f"s3://bucket/{date_seed}/{i}.jpg", brand_of(i), confidence=float(rng.uniform(*confidence)))
            for i in range(n)] + [Row(f"s3://bucket/{date_seed}/bad-{i}.jpg", error_kind="corrupt") for i in range(9)]


def test_committed_scans_carry_the_verdict_against_the_nights_before(tmp_path):
    out = tmp_path / "reports"
    usual = lambda i: ("acme", "globex", None)[i % 3]  # noqa: E731
    for day in range(1, 5):
        manifest = commit_rows(out, f"scan-{day}", f"2026-11-0{day}", _rows(day, 300, usual))
    assert manifest["drift"]["drifted"] is False and manifest["drift"]["window_nights"] == 3
    assert sum(manifest["confidence_histogram"]) == 300 and len(manifest["confidence_histogram"]) == 10
    # the fifth night: a camera that now shows only globex, and a model far less sure of it
    changed = commit_rows(out, "scan-5", "2026-11-05", _rows(5, 300, lambda i: "globex", confidence=(0.3, 0.6)))
    assert changed["drift"]["drifted"] is True and len(changed["drift"]["reasons"]) == 2
    assert changed["drift"]["window"] == ["2026-11-01", "2026-11-04"]

    layout = Layout(str(out))
    assert latest_date(layout) == "2026-11-05"
    assert [s["scan_id"] for s in nights_before(layout, "2026-11-05", 2)] == ["scan-3", "scan-4"]
    assert [s["scan_id"] for s in summaries_between(layout, "2026-11-04", "2026-11-09")] == ["scan-4", "scan-5"]


def test_a_foreign_json_in_a_partition_is_skipped(tmp_path, caplog):
    out = tmp_path / "reports"
    commit_rows(out, "scan-1", "2026-11-01", _rows(1, 10, lambda i: "acme"))
    (out / "dt=2026-11-01" / "_scan-planted.json").write_text('{"date": "2026-11-02", "report": {}}')
    (out / "dt=2026-11-01" / "_scan-broken.json").write_text("{not json")
    (out / "dt=2026-11-01" / "_scan-scan-1.html").write_text("<!doctype html>")
    layout = Layout(str(out))
    assert [s["scan_id"] for s in summaries_between(layout, "2026-11-01", "2026-11-01")] == ["scan-1"]
    assert caplog.text.count("skipped") == 2
    # the page beside a summary, and the report, are not summaries
    assert sorted(storage.basename(u) for u in layout.summaries("2026-11-01")) == [
        "_scan-broken.json", "_scan-planted.json", "_scan-scan-1.json"]
    assert layout.summaries("2026-11-02") == []
