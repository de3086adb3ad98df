"""What a scan looks at: sources and manifests, filters, the incremental skip, staged chunks."""

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lxn import storage
from lxn.scan.listing import (
    Entry,
    check_sources,
    iter_manifest,
    outside,
    iter_sources,
    read_listing_stats,
    write_listing,
    write_pending,
)
from lxn.scan.report import list_files, read_table
from lxn.scan.state import CoveredSet, key_hash


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "bucket"
    files = {"a/1.jpg": b"x" * 10, "a/2.PNG": b"x" * 20, "a/notes.txt": b"hello", "b/3.jpeg": b"", "b/4.jpg": b"x" * 99}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_nested_or_repeated_sources_are_refused(tmp_path):
    assert check_sources([str(tmp_path / "a"), str(tmp_path / "ab")]) == [str(tmp_path / "a"), str(tmp_path / "ab")]
    with pytest.raises(ValueError, match="inside"):
        check_sources([str(tmp_path / "a"), str(tmp_path / "a" / "b")])
    with pytest.raises(ValueError, match="inside"):
        check_sources(["s3://bucket/x", "s3://bucket/x/"])


def test_a_report_root_inside_a_source_is_not_scanned(tree):
    (tree / "reports" / "dt=2025-01-01").mkdir(parents=True)
    (tree / "reports" / "dt=2025-01-01" / "scan-x.parquet").write_bytes(b"PAR1")
    (tree / "reports-old.jpg").write_bytes(b"x")
    entries = outside(iter_sources([str(tree)], extensions=None), str(tree / "reports"))
    assert sorted(os.path.relpath(e.uri, tree) for e in entries) == [
        "a/1.jpg", "a/2.PNG", "a/notes.txt", "b/3.jpeg", "b/4.jpg", "reports-old.jpg"]
    assert check_sources([str(tree)], out=str(tree / "reports")) == [str(tree)]
    with pytest.raises(ValueError, match="inside --out"):
        check_sources([str(tree / "reports" / "dt=2025-01-01")], out=str(tree / "reports"))


def test_sources_are_filtered_by_extension_and_size(tree):
    names = lambda entries: sorted(os.path.relpath(e.uri, tree) for e in entries)  # noqa: E731
    assert names(iter_sources([str(tree)], extensions=None)) == ["a/1.jpg", "a/2.PNG", "a/notes.txt", "b/3.jpeg", "b/4.jpg"]
    assert names(iter_sources([str(tree)], extensions=["jpg", ".png"])) == ["a/1.jpg", "a/2.PNG", "b/4.jpg"]
    assert names(iter_sources([str(tree / "a"), str(tree / "b")], extensions=["jpg", "jpeg"], min_size=1,
                              max_size=50)) == ["a/1.jpg"]
    entry = next(iter_sources([str(tree / "a")], extensions=["jpg"]))
    assert entry.size == 10 and entry.etag and entry.last_modified.tzinfo is not None


def test_listing_is_staged_in_chunks_without_covered_objects(tree, tmp_path):
    entries = list(iter_sources([str(tree)], extensions=None))
    covered = CoveredSet(np.array([key_hash(entries[1].uri, entries[1].etag),
                                   key_hash(entries[3].uri, "another-etag")], dtype=np.uint64))
    directory = str(tmp_path / "listing")
    assert read_listing_stats(directory) is None
    stats = write_listing(entries, directory, covered=covered, chunk_rows=2)
    assert (stats.listed, stats.skipped_unchanged, stats.duplicates, stats.rows) == (5, 1, 0, 4)
    assert read_listing_stats(directory) == stats
    chunks = list_files(directory)
    assert len(chunks) == stats.chunks == 3
    table = pa.concat_tables(read_table(uri) for uri in chunks)
    assert table["row_id"].to_pylist() == [0, 1, 2, 3]
    assert table["uri"].to_pylist() == [e.uri for i, e in enumerate(entries) if i != 1]
    assert table["key_hash"].to_pylist() == [key_hash(e.uri, e.etag) for i, e in enumerate(entries) if i != 1]
    # a second listing into the same directory replaces the first
    stats = write_listing(entries[:1], directory, covered=None, chunk_rows=2)
    assert stats.rows == 1 and len(list_files(directory)) == 1


def test_an_object_whose_etag_is_unknown_is_never_taken_as_covered(tmp_path):
    """A manifest entry whose HEAD failed has no ETag; even if (uri, "") was settled once (the
    object appeared between a HEAD and a GET), it cannot be told unchanged, so it is scanned."""
    unknown = Entry(str(tmp_path / "x.jpg"), "", -1, None)
    known = Entry(str(tmp_path / "y.jpg"), "e1", 5, None)
    covered = CoveredSet(np.array([key_hash(unknown.uri, ""), key_hash(known.uri, "e1")], dtype=np.uint64))
    stats = write_listing([unknown, known], str(tmp_path / "l"), covered=covered, chunk_rows=5)
    assert (stats.skipped_unchanged, stats.rows) == (1, 1)
    assert read_table(list_files(str(tmp_path / "l"))[0])["uri"].to_pylist() == [unknown.uri]


def test_pending_rows_are_those_not_staged_yet(tree, tmp_path):
    listing, pending = str(tmp_path / "listing"), str(tmp_path / "pending")
    write_listing(iter_sources([str(tree)], extensions=None), listing, covered=None, chunk_rows=2)
    assert write_pending(listing, pending, np.array([0, 1, 3], dtype=np.int64)) == 2
    remaining = pa.concat_tables(read_table(uri) for uri in list_files(pending))
    assert remaining["row_id"].to_pylist() == [2, 4]
    assert len(list_files(pending)) == 2  # the finished chunk 0 is not rewritten
    assert write_pending(listing, pending, np.zeros(0, dtype=np.int64)) == 5


def test_text_manifest_of_keys(tree, tmp_path):
    manifest = tmp_path / "keys.txt"
    manifest.write_text("\ufeff# nightly keys\na/1.jpg\n\n  b/4.jpg  \na/1.jpg\n" + f"{tree}/a/2.PNG\nb/gone.jpg\n")
    entries = list(iter_manifest(str(manifest), root=str(tree), extensions=["jpg", "png"]))
    assert [os.path.relpath(e.uri, tree) for e in entries] == ["a/1.jpg", "b/4.jpg", "a/1.jpg", "a/2.PNG", "b/gone.jpg"]
    # HEAD filled in what a bare key lacks; an object that is gone keeps "unknown" for the fetch to report
    assert entries[0] == next(iter_sources([str(tree / "a")], extensions=["jpg"]))
    assert (entries[-1].etag, entries[-1].size) == ("", -1)
    stats = write_listing(entries, str(tmp_path / "listing"), covered=None, chunk_rows=2)
    assert (stats.listed, stats.duplicates, stats.rows) == (5, 1, 4)
    table = pa.concat_tables(read_table(uri) for uri in list_files(str(tmp_path / "listing")))
    assert [os.path.relpath(u, tree) for u in table["uri"].to_pylist()] == ["a/1.jpg", "b/4.jpg", "a/2.PNG", "b/gone.jpg"]
    # size filters apply once the size is known
    assert len(list(iter_manifest(str(manifest), root=str(tree), extensions=None, min_size=15))) == 3


def test_manifest_errors_name_the_line(tree, tmp_path):
    manifest = tmp_path / "keys.txt"
    manifest.write_text("a/1.jpg\nftp://host/x.jpg\n")
    with pytest.raises(ValueError, match=r"keys.txt line 2: unsupported URI scheme"):
        list(iter_manifest(str(manifest), root=str(tree), extensions=None))
    manifest.write_text("a/1.jpg\n")
    with pytest.raises(ValueError, match=r"line 1: .*relative key: give exactly one --source"):
        list(iter_manifest(str(manifest), root=None, extensions=None))
    manifest.write_text("a/../b/4.jpg\n../escape.jpg\n")  # '..' may stay inside a local root, never leave it
    with pytest.raises(ValueError, match=r"line 2: .*escapes"):
        list(iter_manifest(str(manifest), root=str(tree), extensions=None))
    manifest.write_text("a/../b/4.jpg\n")
    assert [e.uri for e in iter_manifest(str(manifest), root=str(tree), extensions=None)] == [str(tree / "b" / "4.jpg")]
    manifest.write_text("s3:/bucket/x.jpg\n")
    with pytest.raises(ValueError, match=r"line 1: .*write s3://bucket/x.jpg"):
        list(iter_manifest(str(manifest), root=str(tree), extensions=None))


def test_parquet_manifest_with_etags_needs_no_requests(tree, tmp_path):
    manifest = str(tmp_path / "inventory.parquet")
    pq.write_table(pa.table({"key": ["a/1.jpg", "not/there.jpg"], "e_tag": ['"abc"', "def"], "size": [10, 7]}), manifest)
    entries = list(iter_manifest(manifest, root=str(tree), extensions=None))
    # the ETag is taken as given (quotes stripped), even for a file that does not exist: no HEAD was sent
    assert [(os.path.relpath(e.uri, tree), e.etag, e.size) for e in entries] == [("a/1.jpg", "abc", 10),
                                                                                ("not/there.jpg", "def", 7)]
    pq.write_table(pa.table({"name": ["x"]}), manifest)
    with pytest.raises(ValueError, match="needs a `uri` or `key` column"):
        list(iter_manifest(manifest, root=str(tree), extensions=None))


def test_entries_keep_unknowns_as_sentinels(tmp_path):
    stats = write_listing([Entry(str(tmp_path / "x.jpg"), "", -1, None)], str(tmp_path / "l"), covered=None, chunk_rows=5)
    table = read_table(list_files(str(tmp_path / "l"))[0])
    assert stats.rows == 1 and table["etag"].to_pylist() == [""] and table["size"].to_pylist() == [-1]
    assert storage.exists(str(tmp_path / "l" / "_DONE.json"))
