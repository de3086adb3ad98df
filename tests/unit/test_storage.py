"""lxn.storage without a network: URI validation, endpoint resolution, the local filesystem."""

from __future__ import annotations

import os
import string
import sys
from datetime import timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lxn import storage
from lxn.storage import InvalidURIError


# ---------------------------------------------------------------------------------------------
# URIs


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("s3://my-bucket/a/b.jpg", "s3://my-bucket/a/b.jpg"),
        ("S3://my-bucket/a/", "s3://my-bucket/a/"),  # scheme case-insensitive, trailing / kept
        ("s3://my.bucket.01", "s3://my.bucket.01"),
        ("s3://abc/a b/ü?#.jpg", "s3://abc/a b/ü?#.jpg"),  # ?, # and spaces are key characters
        ("file:///tmp/x%20y", "/tmp/x y"),
        ("file://localhost/tmp/x", "/tmp/x"),
        ("/tmp/a/../b", "/tmp/b"),
        # every legal S3 key is kept exactly: S3 resolves nothing, so neither does lxn
        ("s3://bucket/a/../b", "s3://bucket/a/../b"),
        ("s3://bucket/..", "s3://bucket/.."),
        ("s3://bucket/./a//b %41+~.jpg", "s3://bucket/./a//b %41+~.jpg"),
        ("s3://bucket/" + "k" * 1024, "s3://bucket/" + "k" * 1024),
        ("s3://bucket/" + "é" * 512, "s3://bucket/" + "é" * 512),  # 1,024 bytes of UTF-8
        ("data/s3_like:name.jpg", os.path.abspath("data/s3_like:name.jpg")),  # ':' later in a name is fine
    ],
)
def test_normalize_uri_accepts(uri, expected):
    assert storage.normalize_uri(uri) == expected


def test_normalize_relative_path_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.normalize_uri("data/x.jpg") == str(tmp_path / "data" / "x.jpg")
    assert storage.normalize_uri(tmp_path / "y") == str(tmp_path / "y")  # PathLike
    assert not storage.is_s3("data")


@pytest.mark.parametrize(
    "uri, fragment",
    [
        ("", "empty URI"),
        ("data/\x00x", "NUL"),
        ("http://example.com/x.jpg", "unsupported URI scheme 'http://'"),
        ("gs://bucket/x", "unsupported URI scheme 'gs://'"),
        ("s3a://bucket/x", "write s3://"),
        ("s3://", "bucket name is empty"),
        ("s3:///key", "bucket name is empty"),
        ("s3://ab/key", "3-63 characters"),
        ("s3://" + "a" * 64, "3-63 characters"),
        ("s3://My-Bucket/x", "3-63 characters"),
        ("s3://my_bucket/x", "3-63 characters"),
        ("s3://-bucket/x", "3-63 characters"),
        ("s3://bucket-/x", "3-63 characters"),
        ("s3://my..bucket/x", "two adjacent periods"),
        ("s3://192.168.1.1/x", "IP address"),
        ("s3://xn--bucket/x", "reserved"),
        ("s3://bucket-s3alias/x", "reserved"),
        ("s3://bucket/" + "k" * 1025, "1024 bytes"),
        ("s3:/reports/x", "write s3://reports/x"),        # a one-slash typo is not a local path
        ("s3:reports/x", "write s3://reports/x"),
        ("S3:/reports", "write s3://reports"),
        ("file:/tmp/x", "write file:///tmp/x"),
        ("file://server/share/x", "no host"),
    ],
)
def test_normalize_uri_rejects(uri, fragment):
    with pytest.raises(InvalidURIError) as info:
        storage.normalize_uri(uri)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


SCHEME_FOLDERS = ["s3", "S3", "s3a", "gs", "gcs", "az", "abfs", "hdfs", "http", "https", "file"]


@settings(max_examples=80, deadline=None)
@given(scheme=st.sampled_from(SCHEME_FOLDERS), slashes=st.sampled_from(["/", "//", "///"]),
       rest=st.lists(st.text(alphabet=string.ascii_lowercase + string.digits + "-_.", min_size=1, max_size=10),
                     min_size=1, max_size=3).map("/".join))
def test_a_relative_path_that_starts_with_a_scheme_name_is_a_typo(scheme, slashes, rest):
    typo = f"{scheme}{slashes}{rest}"  # s3//bucket/x: the colon forgotten
    with pytest.raises(InvalidURIError) as info:
        storage.normalize_uri(typo)
    message = str(info.value)
    assert f"{scheme.lower()}://{rest}" in message and f"./{typo}" in message  # what was meant, both ways
    assert storage.normalize_uri(f"./{typo}") == os.path.abspath(typo)  # the spelled-out local folder works
    assert storage.normalize_uri(f"data/{typo}") == os.path.abspath(f"data/{typo}")  # deeper down: a folder


def test_folders_that_only_look_like_schemes_are_paths():
    for path in ("s3x/a", "my-s3/a", "https-mirror/x", "files/a", "./http/a"):
        assert storage.normalize_uri(path) == os.path.abspath(path)


def test_non_string_uri_is_rejected():
    with pytest.raises(InvalidURIError, match="string or a path"):
        storage.normalize_uri(42)


def test_split_and_is_s3():
    assert storage.split_s3("s3://bucket/a/b") == ("bucket", "a/b")
    assert storage.split_s3("s3://bucket") == ("bucket", "")
    assert storage.is_s3("s3://bucket/x") and not storage.is_s3("/tmp/x")
    with pytest.raises(InvalidURIError, match="local path"):
        storage.split_s3("/tmp/x")


def test_join():
    assert storage.join("s3://bucket", "a", "b.jpg") == "s3://bucket/a/b.jpg"
    assert storage.join("s3://bucket/pre/", "a/b.jpg") == "s3://bucket/pre/a/b.jpg"
    assert storage.join("s3://bucket/pre", "x") == "s3://bucket/pre/x"
    assert storage.join("/data", "cls", "x.jpg") == "/data/cls/x.jpg"
    assert storage.join("s3://bucket/pre") == "s3://bucket/pre"
    # S3: the key is appended exactly (it cannot leave the bucket); local: '..' may not escape
    assert storage.join("s3://bucket/pre", "a/../x.jpg") == "s3://bucket/pre/a/../x.jpg"
    assert storage.join("s3://bucket/pre", "../x") == "s3://bucket/pre/../x"
    assert storage.join("s3://bucket/pre", "a//b") == "s3://bucket/pre/a//b"
    assert storage.join("/data", "a/../x.jpg") == "/data/x.jpg"
    assert storage.join("/data", "./x") == "/data/x"
    for bad in ["/etc/passwd", "s3://other/x", "s3:/other/x", "", "/"]:
        with pytest.raises(InvalidURIError):
            storage.join("s3://bucket/pre", bad)
        with pytest.raises(InvalidURIError):
            storage.join("/data", bad)
    for escape in ["../x", "a/../../x", "../data2/x"]:
        with pytest.raises(InvalidURIError, match="escapes"):
            storage.join("/data", escape)


@pytest.mark.parametrize("uri", ["s3://bucket/a/../b", "s3://bucket/./b", "s3://bucket/a//b", "s3://bucket/.."])
def test_a_location_has_no_dot_or_empty_segments(uri):
    with pytest.raises(InvalidURIError, match="cannot be an lxn location"):
        storage.location(uri)
    assert storage.location("s3://bucket/reports/") == "s3://bucket/reports/"
    assert storage.location("/data/../x") == "/x"


def test_check_writable(tmp_path):
    assert storage.check_writable(tmp_path / "out" / "deeper") == str(tmp_path / "out" / "deeper")
    assert list(tmp_path.iterdir()) == []  # nothing is created by checking
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot write the report to"):
        storage.check_writable(blocker / "out", "report")


def test_relpath_and_basename():
    assert storage.relpath("s3://b1c/root/cls/x.jpg", "s3://b1c/root") == "cls/x.jpg"
    assert storage.relpath("s3://b1c/cls/x.jpg", "s3://b1c") == "cls/x.jpg"
    assert storage.relpath("/data/root/cls/x.jpg", "/data/root/") == "cls/x.jpg"
    with pytest.raises(ValueError, match="not below"):
        storage.relpath("/data/rootx/y", "/data/root")
    assert storage.basename("s3://b1c/root/cls/") == "cls"
    assert storage.basename("/data/root/cls") == "cls"


# ---------------------------------------------------------------------------------------------
# Endpoint resolution (no client is contacted)


def test_resolve_endpoint_precedence(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert storage.resolve_endpoint() is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://global:9000")
    assert storage.resolve_endpoint() == "http://global:9000"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3-only:9000/")
    assert storage.resolve_endpoint() == "https://s3-only:9000"
    assert storage.resolve_endpoint("http://arg:1") == "http://arg:1"


@pytest.mark.parametrize("url", ["ftp://host", "not a url", "http://"])
def test_resolve_endpoint_rejects_bad_urls(url):
    with pytest.raises(ValueError, match="must be http"):
        storage.resolve_endpoint(url)


def test_endpoint_with_credentials_is_rejected_without_echoing_them():
    with pytest.raises(ValueError) as info:
        storage.resolve_endpoint("http://AKIDEXAMPLE:s3cr3t@minio:9000")
    assert "s3cr3t" not in str(info.value) and "AKIDEXAMPLE" not in str(info.value)
    assert "minio:9000" in str(info.value)


def test_client_cached_per_endpoint_and_built_with_retries(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    a = storage.s3_client("http://127.0.0.1:1")
    assert storage.s3_client("http://127.0.0.1:1") is a
    b = storage.s3_client("http://127.0.0.1:2")
    assert b is not a
    config = a.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": storage.MAX_ATTEMPTS}
    assert config.connect_timeout == storage.CONNECT_TIMEOUT_S
    assert config.s3 == {"addressing_style": "path"}
    assert a.meta.endpoint_url == "http://127.0.0.1:1"


def test_bad_retry_setting_is_reported(monkeypatch):
    storage.clear_client_cache()
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "many")
    with pytest.raises(ValueError, match="AWS_MAX_ATTEMPTS='many'"):
        storage.s3_client("http://127.0.0.1:3")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_builds_its_own_client():
    parent = storage.s3_client("http://127.0.0.1:4")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: a cached client from the parent must not be reused
        try:
            child = storage.s3_client("http://127.0.0.1:4")
            os.write(write, b"new" if child is not parent else b"same")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 8) == b"new"


def test_import_has_no_heavy_side_effects():
    # boto3/pyarrow are imported lazily: a fresh interpreter importing lxn.storage loads neither.
    import subprocess

    code = "import sys, lxn.storage; print('boto3' in sys.modules, 'pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------------------------------
# Local filesystem


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_local_listing_order_matches_s3_key_order(tmp_path):
    # "a.jpg" sorts before "a/..." in S3 because "." < "/"; a naive per-directory sort would not.
    for rel in ["b.png", "a/z.JPG", "a.jpg", "a/b/c.jpg", "a-b/x.jpg", "B/x.jpg", "a/b.txt"]:
        _touch(tmp_path / rel)
    rels = [storage.relpath(o.uri, tmp_path) for o in storage.iter_objects(tmp_path)]
    assert rels == ["B/x.jpg", "a-b/x.jpg", "a.jpg", "a/b.txt", "a/b/c.jpg", "a/z.JPG", "b.png"]
    assert rels == sorted(rels)


def test_local_listing_filters(tmp_path):
    _touch(tmp_path / "x.JPG", b"1" * 10)
    _touch(tmp_path / "y.jpeg", b"1" * 100)
    _touch(tmp_path / "z.xml", b"1" * 10)
    _touch(tmp_path / "empty.jpg", b"")

    def names(**kw):
        return [os.path.basename(o.uri) for o in storage.iter_objects(tmp_path, **kw)]

    assert names(extensions=["jpg", ".JPEG"]) == ["empty.jpg", "x.JPG", "y.jpeg"]
    assert names(extensions=".xml") == ["z.xml"]
    assert names(min_size=1) == ["x.JPG", "y.jpeg", "z.xml"]
    assert names(min_size=1, max_size=10) == ["x.JPG", "z.xml"]


def test_local_object_info(tmp_path):
    path = tmp_path / "f.bin"
    _touch(path, b"12345")
    (info,) = storage.iter_objects(tmp_path)
    st = path.stat()
    assert info.uri == str(path) and info.size == 5
    assert info.etag == f"{5:x}-{st.st_mtime_ns:x}"
    assert info.last_modified.tzinfo == timezone.utc
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    (again,) = storage.iter_objects(tmp_path)
    assert again.etag != info.etag  # a rewrite changes the etag


def test_local_listing_is_lazy(tmp_path):
    _touch(tmp_path / "a" / "1.jpg")
    _touch(tmp_path / "b" / "1.jpg")
    it = storage.iter_objects(tmp_path)
    first = next(it)
    assert first.uri.endswith("a/1.jpg")
    # b/ was not read yet: files created there now still show up
    _touch(tmp_path / "b" / "0.jpg")
    assert [storage.relpath(o.uri, tmp_path) for o in it] == ["b/0.jpg", "b/1.jpg"]


def test_local_listing_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        list(storage.iter_objects(tmp_path / "missing"))
    _touch(tmp_path / "f")
    with pytest.raises(NotADirectoryError):
        list(storage.iter_objects(tmp_path / "f"))


def test_local_listing_does_not_follow_directory_symlinks(tmp_path):
    _touch(tmp_path / "d" / "x.jpg")
    os.symlink(tmp_path, tmp_path / "d" / "loop")
    assert [o.uri for o in storage.iter_objects(tmp_path)] == [str(tmp_path / "d" / "x.jpg")]


def test_local_prefixes(tmp_path):
    for rel in ["b/1.jpg", "a/x/1.jpg", "top.jpg", ".hidden/1.jpg"]:
        _touch(tmp_path / rel)
    assert list(storage.iter_prefixes(tmp_path)) == [str(tmp_path / n) for n in [".hidden", "a", "b"]]


def test_local_round_trip(tmp_path):
    uri = str(tmp_path / "deep" / "er" / "note.txt")
    assert not storage.exists(uri)
    storage.write_text(uri, "héllo")
    assert storage.exists(uri)
    assert storage.read_bytes(uri) == "héllo".encode()
    assert storage.read_text("file://" + uri) == "héllo"
    storage.write_bytes(uri, b"second")  # overwrite
    assert storage.read_bytes(uri) == b"second"
    assert not storage.exists(tmp_path / "deep")  # a directory is not an object
    storage.delete(uri)
    storage.delete(uri)  # idempotent
    assert not storage.exists(uri)
    assert os.listdir(tmp_path / "deep" / "er") == []  # no temp files left behind


def test_local_write_gets_umask_mode(tmp_path):
    uri = tmp_path / "m.txt"
    storage.write_bytes(uri, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert (uri.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_read_text_strips_bom_and_reports_bad_utf8(tmp_path):
    _touch(tmp_path / "bom.txt", b"\xef\xbb\xbfadidas,1.jpg\n")
    assert storage.read_text(tmp_path / "bom.txt") == "adidas,1.jpg\n"
    _touch(tmp_path / "bad.txt", b"ok\xff")
    with pytest.raises(ValueError, match=r"bad\.txt is not valid UTF-8"):
        storage.read_text(tmp_path / "bad.txt")


def test_missing_local_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        storage.read_bytes(tmp_path / "nope.jpg")


def test_atomic_write_keeps_old_content_and_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "report.parquet"
    storage.write_bytes(target, b"old content")
    real_fsync = os.fsync

    def failing_fsync(fd):  # the data is written to the temp file, then the disk "fails"
        real_fsync(fd)
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk on fire"):
        storage.write_bytes(target, b"new content that must not appear")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["report.parquet"]


def test_local_delete_prefix(tmp_path):
    for rel in ["out/a/1", "out/a/2", "out/3", "keep/4"]:
        _touch(tmp_path / rel)
    assert storage.delete_prefix(tmp_path / "out") == 3
    assert not (tmp_path / "out").exists() and (tmp_path / "keep" / "4").exists()
    assert storage.delete_prefix(tmp_path / "out") == 0
    with pytest.raises(ValueError, match="filesystem root"):
        storage.delete_prefix("/")


def test_local_arrow_filesystem_parquet_round_trip(tmp_path):
    fs, path = storage.arrow_filesystem(tmp_path / "t.parquet")
    assert path == str(tmp_path / "t.parquet")
    table = pa.table({"uri": ["a", "b"], "label": [1, 2]})
    pq.write_table(table, path, filesystem=fs)
    assert pq.read_table(path, filesystem=fs).equals(table)
