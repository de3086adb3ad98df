"""Scan settings: flags, validation, the scan date and the deterministic scan id."""

import datetime as dt

import pytest

from lxn.scan.config import ScanConfig, derive_scan_id, parse_scan_config, scan_date


def test_repeated_source_flags_accumulate():
    config = parse_scan_config(["--source", "s3://b/a", "--source", "s3://b/c", "s3://b/d", "--tiles", "2", "3",
                                "--extensions", "--full"])
    assert config.source == ["s3://b/a", "s3://b/c", "s3://b/d"]
    assert config.grids == (2, 3) and config.full
    assert config.extension_filter is None  # bare --extensions: every key
    assert parse_scan_config([]).extension_filter[:2] == ["jpg", "jpeg"]


@pytest.mark.parametrize("flags, fragment", [
    (["--threshold", "1.5"], "--threshold"),
    (["--top-k", "0"], "--top-k"),
    (["--tiles", "1"], "--tiles"),
    (["--date", "2025-13-01"], "--date"),
    (["--date", "20250101"], "--date"),
    (["--scan-id", "../x"], "--scan-id"),
    (["--min-size", "10", "--max-size", "5"], "--min-size"),
])
def test_bad_settings_are_named(flags, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_scan_config(flags)


def test_scan_date_defaults_to_today_utc():
    late = dt.datetime(2025, 3, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))  # 04:30 UTC next day
    assert scan_date(ScanConfig(), now=late.astimezone(dt.timezone.utc)) == "2025-03-02"
    assert scan_date(ScanConfig(date="2024-02-29")) == "2024-02-29"


def test_scan_id_changes_with_what_shapes_rows_only():
    def scan_id(out="s3://b/reports", **changes):
        config = ScanConfig(**{"source": ["s3://b/a"], **changes})
        return derive_scan_id(config, date="2025-01-02", out=out, sources=["s3://b/a"], manifest=None,
                              model_uri="models:/m/3")

    base = scan_id()
    assert base.startswith("2025-01-02-") and base == scan_id()
    assert scan_id(batch_size=8, actors=3, fetch_threads=2, checkpoint_rows=10) == base  # speed only
    for change in ({"threshold": 0.7}, {"top_k": 3}, {"tiles": [2]}, {"full": True}, {"extensions": ["png"]}):
        assert scan_id(**change) != base, change
    other_model = derive_scan_id(ScanConfig(), date="2025-01-02", out="s3://b/reports", sources=["s3://b/a"],
                                 manifest=None, model_uri="models:/m/4")
    assert other_model != base
    assert scan_id(out="s3://b/reports-eu") != base  # two report roots never share a scan or its run
    assert scan_id(scan_id="nightly-2") == "nightly-2"
