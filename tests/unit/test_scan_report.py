"""The report: staged parts, the atomic commit, what readers see, and recovery after a crash."""

import datetime as dt
import json
import os

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from lxn import storage
from lxn.scan.report import (
    REPORT_SCHEMA,
    Layout,
    StagedResults,
    finish_commit,
    list_files,
    read_manifest,
    read_table,
    recover,
    staged_row_ids,
    table_bytes,
)
from lxn.scan.state import read_covered
from tests.staged_scans import OUTCOMES, prepare, staged

def reader_rows(out) -> int:
    return pads.dataset(str(out), format="parquet", partitioning="hive").count_rows()


def test_staged_results_checkpoint_by_rows_and_time(tmp_path):
    clock = iter([0.0, 1.0, 2.0, 100.0, 101.0, 102.0]).__next__
    parts = str(tmp_path / "parts")
    writer = StagedResults(parts, checkpoint_rows=5, checkpoint_seconds=50, clock=clock)
    layout, listing = prepare(tmp_path / "other", "s", n=7)
    rows = staged(listing, "s")
    writer.add(rows.slice(0, 3))  # t=1: 3 rows buffered
    assert list_files(parts) == []
    writer.add(rows.slice(3, 3))  # t=2: 6 rows >= 5: staged
    assert len(list_files(parts)) == 1 and writer.rows == 6
    writer.add(rows.slice(6, 1))  # t=100: 1 row, but 98 s since the last part
    assert len(list_files(parts)) == 2 and writer.rows == 7
    staged_ids = pa.concat_tables(read_table(uri) for uri in list_files(parts))["row_id"].to_pylist()
    assert staged_ids == list(range(7))  # part names sort in staging order


def test_commit_publishes_one_report_that_every_reader_sees(tmp_path):
    out = tmp_path / "reports"
    layout, listing = prepare(out, "2025-06-01-abc")
    assert reader_rows(out) == 0  # staged parts are invisible to readers
    assert staged_row_ids(layout, "2025-06-01-abc").tolist() == list(range(14))

    manifest = finish_commit(layout, "2025-06-01-abc")
    report = out / "dt=2025-06-01" / "scan-2025-06-01-abc.parquet"
    assert manifest["report"] == {"uri": str(report), "rows": 14, "bytes": report.stat().st_size}
    assert manifest["counts"] == {"listed": 14, "scanned": 14, "ok": 8, "error": 6, "with_brand": 6, "no_brand": 2,
                                  "unknown_mark": 0, "detections": 8}
    assert manifest["brands"] == {"acme": 4, "globex": 4}  # appearances: two pictures also show a globex
    assert manifest["images_by_brand"] == {"acme": 4, "globex": 2}
    assert manifest["errors_by_kind"] == {"missing": 2, "not_an_image": 2, "truncated": 2}
    assert read_manifest(layout, "2025-06-01-abc") == manifest
    assert json.loads((out / "dt=2025-06-01" / "_scan-2025-06-01-abc.json").read_text()) == manifest
    assert not os.path.exists(layout.staging("2025-06-01-abc"))

    table = pads.dataset(str(out), format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 14 and table.schema.names == [*REPORT_SCHEMA.names, "dt"]
    frame = pd.read_parquet(out)
    assert len(frame) == 14 and frame["dt"].astype(str).unique().tolist() == ["2025-06-01"]
    assert sorted(table["uri"].to_pylist()) == sorted(listing["uri"].to_pylist())
    glob = f"{out}/dt=*/*.parquet"
    counts = duckdb.sql(f"select dt, status, count(*) from read_parquet('{glob}', hive_partitioning=true) "
                        "group by all order by status").fetchall()
    assert counts == [(dt.date(2025, 6, 1), "error", 6), (dt.date(2025, 6, 1), "ok", 8)]

    # covered: ok rows and undecodable bytes, not failed fetches (those are tried again next time)
    covered = set(read_covered(layout.covered("2025-06-01-abc")).tolist())
    kinds = dict(zip(listing["key_hash"].to_pylist(), [OUTCOMES[i % 7] for i in range(14)]))
    assert covered == {h for h, o in kinds.items() if o[1] != "missing"}


def test_a_second_scan_the_same_day_adds_a_file_and_never_shows_halfway(tmp_path):
    out = tmp_path / "reports"
    finish_commit(*prepare(out, "first")[:1], "first")
    layout, _ = prepare(out, "second", n=5)
    assert reader_rows(out) == 14
    finish_commit(layout, "second")
    assert reader_rows(out) == 19
    files = sorted(p.name for p in (out / "dt=2025-06-01").iterdir())
    assert files == ["_scan-first.json", "_scan-second.json", "scan-first.parquet", "scan-second.parquet"]


def test_a_commit_killed_after_the_report_moved_is_finished_once(tmp_path, monkeypatch):
    out = tmp_path / "reports"
    layout, _ = prepare(out, "scan-a")
    real_write_text = storage.write_text

    def dies_at_success(uri, text):  # the process dies right before the commit point
        if uri.endswith("_SUCCESS"):
            raise KeyboardInterrupt("killed")
        real_write_text(uri, text)

    monkeypatch.setattr(storage, "write_text", dies_at_success)
    with pytest.raises(KeyboardInterrupt):
        finish_commit(layout, "scan-a")
    monkeypatch.setattr(storage, "write_text", real_write_text)
    assert reader_rows(out) == 14 and read_manifest(layout, "scan-a") is None  # report whole, not committed

    [manifest] = recover(layout)
    assert manifest["scan_id"] == "scan-a" and manifest["report"]["rows"] == 14
    assert reader_rows(out) == 14  # rewritten in place: no duplicates
    assert recover(layout) == []


def test_commit_refuses_duplicated_or_missing_rows(tmp_path):
    layout, listing = prepare(tmp_path / "dup", "s")
    writer = StagedResults(layout.results("s"), checkpoint_rows=100, checkpoint_seconds=3600)
    writer.add(staged(listing.slice(2, 1), "s"))
    writer.flush()
    with pytest.raises(RuntimeError, match="repeats rows"):
        finish_commit(layout, "s")
    assert reader_rows(tmp_path / "dup") == 0

    layout, listing = prepare(tmp_path / "lost", "s", n=14)
    first = list_files(layout.results("s"))[0]
    os.unlink(first)
    with pytest.raises(RuntimeError, match=r"\d+ listed rows have no result"):
        finish_commit(layout, "s")
    assert reader_rows(tmp_path / "lost") == 0

    # exactly one row missing is refused just the same
    layout, listing = prepare(tmp_path / "one", "s", n=14)
    part = list_files(layout.results("s"))[1]
    storage.write_bytes(part, table_bytes(read_table(part).slice(1)))  # drop one staged row
    with pytest.raises(RuntimeError, match="1 listed rows have no result"):
        finish_commit(layout, "s")
    assert reader_rows(tmp_path / "one") == 0


def test_parts_staged_before_detections_existed_still_commit(tmp_path):
    out = tmp_path / "reports"
    layout, _ = prepare(out, "2025-06-01-old")
    for uri in list_files(layout.results("2025-06-01-old")):  # as an older lxn staged them
        table = read_table(uri).drop_columns(["detections", "brand_source", "embedding"])
        storage.write_bytes(uri, table_bytes(table))
    manifest = finish_commit(layout, "2025-06-01-old")
    assert manifest["report"]["rows"] == 14 and manifest["images_by_brand"] == {"acme": 4, "globex": 2}
    assert manifest["brands"] == {} and manifest["counts"]["detections"] == 0


# ------------------------------------------------------------------ what is read back is checked


def test_the_layout_refuses_names_that_would_leave_the_root(tmp_path):
    layout = Layout(str(tmp_path / "reports"))
    for date in ("../../../victim", "2025-13-01", "2025-06-01/..", "", None):
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            layout.report(date, "scan-a")
    for scan_id in ("..", "../x", "a/b", ".hidden", "a..b", "", "x" * 101):
        with pytest.raises(ValueError, match="scan id"):
            layout.staging(scan_id)
    assert layout.report("2025-06-01", "2025-06-01-abc").endswith("/dt=2025-06-01/scan-2025-06-01-abc.parquet")


def test_a_planted_commit_is_quarantined_and_writes_nothing_outside_the_root(tmp_path):
    out = tmp_path / "root" / "reports"
    layout, _ = prepare(out, "evil", date="../../../victim")  # a whole staging folder, its intent planted
    prepare(out, "good")
    recovered = recover(layout)
    assert [m["scan_id"] for m in recovered] == ["good"]  # the good one is published all the same
    assert sorted(os.listdir(tmp_path)) == ["root"] and sorted(os.listdir(tmp_path / "root")) == ["reports"]
    [quarantined] = os.listdir(out / "_quarantine")
    assert quarantined.startswith("evil-") and (out / "_quarantine" / quarantined / "_COMMIT.json").exists()
    assert not (out / "_staging").exists() and recover(layout) == []  # it blocks nothing any more
    assert reader_rows(out) == 14


def test_a_staging_folder_that_repeats_rows_or_holds_foreign_files_is_quarantined(tmp_path, caplog):
    out = tmp_path / "reports"
    layout, listing = prepare(out, "dup")
    writer = StagedResults(layout.results("dup"), checkpoint_rows=100, checkpoint_seconds=3600)
    writer.add(staged(listing.slice(2, 1), "dup"))  # what two overlapping runs of one scan can leave
    writer.flush()
    prepare(out, "foreign")
    storage.write_text(storage.join(layout.results("foreign"), "notes.txt"), "hello")
    prepare(out, "other-id")
    intent = json.loads(storage.read_text(layout.intent("other-id")))
    storage.write_text(layout.intent("other-id"), json.dumps({**intent, "scan_id": "someone-else"}))
    with caplog.at_level("WARNING"):
        assert recover(layout) == []
    assert sorted(name.rsplit("-", 1)[0] for name in os.listdir(out / "_quarantine")) == ["dup", "foreign", "other-id"]
    assert "repeats rows" in caplog.text and "not a result part" in caplog.text and "someone-else" in caplog.text
    assert reader_rows(out) == 0 and not (out / "_staging").exists()


def test_an_unreadable_covered_set_means_scanning_again_not_failing(tmp_path, caplog):
    from lxn.scan.report import load_covered

    out = tmp_path / "reports"
    layout, _ = prepare(out, "a")
    finish_commit(layout, "a")
    storage.write_bytes(layout.covered("a"), b"not parquet")
    with caplog.at_level("WARNING"):
        assert len(load_covered(layout)) == 0
    assert "unreadable covered.parquet" in caplog.text
