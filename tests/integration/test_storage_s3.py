"""lxn.storage against a real S3 endpoint (moto server over HTTP on 127.0.0.1)."""

from __future__ import annotations

import os
import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lxn import storage


@pytest.fixture
def client(s3_endpoint):
    return storage.s3_client()


def _put(client, bucket, key, body=b"x"):
    client.put_object(Bucket=bucket, Key=key, Body=body)


class _Counter:
    """Counts one kind of API call on a client through botocore's event hooks."""

    def __init__(self, client, operation):
        self.client, self.event, self.calls = client, f"before-call.s3.{operation}", 0

    def __call__(self, **kwargs):
        self.calls += 1

    def __enter__(self):
        self.client.meta.events.register(self.event, self)
        return self

    def __exit__(self, *exc):
        self.client.meta.events.unregister(self.event, self)


def test_client_uses_the_environment_endpoint(s3_endpoint, client):
    assert client.meta.endpoint_url == s3_endpoint


def test_listing_pages_lazily_in_key_order(client, s3_bucket):
    keys = [f"data/{i:03d}.jpg" for i in range(120)]
    for key in reversed(keys):
        _put(client, s3_bucket, key)
    _put(client, s3_bucket, "data2/not-below.jpg")  # a sibling prefix, not inside data/
    with _Counter(client, "ListObjectsV2") as pages:
        it = storage.iter_objects(f"s3://{s3_bucket}/data", page_size=50)
        first = next(it)
        assert first.uri == f"s3://{s3_bucket}/data/000.jpg"
        assert pages.calls == 1  # one page fetched, two still to come
        rest = list(it)
        assert pages.calls == 3
    assert [o.uri for o in [first, *rest]] == [f"s3://{s3_bucket}/{k}" for k in keys]


def test_listing_filters_and_object_info(client, s3_bucket):
    _put(client, s3_bucket, "ds/a.JPG", b"1" * 10)
    _put(client, s3_bucket, "ds/b.png", b"1" * 100)
    _put(client, s3_bucket, "ds/c.xml", b"1" * 10)
    _put(client, s3_bucket, "ds/sub/d.jpeg", b"")
    _put(client, s3_bucket, "ds/../dots.jpg", b"1")  # a legal key of its own: S3 resolves nothing

    def names(**kw):
        root = f"s3://{s3_bucket}/ds"
        return [storage.relpath(o.uri, root) for o in storage.iter_objects(root + "/", **kw)]

    assert names() == ["../dots.jpg", "a.JPG", "b.png", "c.xml", "sub/d.jpeg"]
    assert names(extensions=["jpg", "jpeg"]) == ["../dots.jpg", "a.JPG", "sub/d.jpeg"]
    assert names(min_size=2, max_size=10) == ["a.JPG", "c.xml"]
    assert storage.read_bytes(f"s3://{s3_bucket}/ds/../dots.jpg") == b"1"
    info = next(storage.iter_objects(f"s3://{s3_bucket}/ds", extensions=[".png"]))
    head = client.head_object(Bucket=s3_bucket, Key="ds/b.png")
    assert info.size == 100 and info.etag == head["ETag"].strip('"') and '"' not in info.etag
    assert info.last_modified.tzinfo is not None
    whole = [o.uri for o in storage.iter_objects(f"s3://{s3_bucket}")]
    assert f"s3://{s3_bucket}/ds/a.JPG" in whole and f"s3://{s3_bucket}/ds/../dots.jpg" in whole


def test_prefixes(client, s3_bucket):
    for key in ["root/b/1.jpg", "root/a/x/1.jpg", "root/a/2.jpg", "root/top.jpg", "root/c/3.jpg"]:
        _put(client, s3_bucket, key)
    got = list(storage.iter_prefixes(f"s3://{s3_bucket}/root", page_size=2))
    assert got == [f"s3://{s3_bucket}/root/{n}/" for n in ["a", "b", "c"]]
    assert [storage.basename(u) for u in got] == ["a", "b", "c"]


def test_round_trip_exists_delete(s3_bucket, s3_endpoint):
    uri = f"s3://{s3_bucket}/out/notes.txt"
    assert not storage.exists(uri)
    storage.write_text(uri, "héllo")
    assert storage.exists(uri)
    assert storage.read_text(uri) == "héllo"
    storage.write_bytes(uri, b"\xef\xbb\xbfbom")
    assert storage.read_text(uri) == "bom"
    assert not storage.exists(f"s3://{s3_bucket}/out")  # a prefix is not an object
    storage.delete(uri)
    storage.delete(uri)  # idempotent
    assert not storage.exists(uri)
    with pytest.raises(storage.InvalidURIError, match="prefix, not an object"):
        storage.write_bytes(f"s3://{s3_bucket}/out/", b"x")


def test_missing_object_and_bucket_raise_file_not_found(s3_bucket, s3_endpoint):
    uri = f"s3://{s3_bucket}/no/such.jpg"
    with pytest.raises(FileNotFoundError, match=f"no such object: {uri}"):
        storage.read_bytes(uri)
    with pytest.raises(FileNotFoundError, match="no such bucket"):
        storage.read_bytes("s3://lxn-bucket-that-does-not-exist/x")
    with pytest.raises(FileNotFoundError, match="no such bucket"):
        list(storage.iter_objects("s3://lxn-bucket-that-does-not-exist/x"))


def test_delete_prefix(client, s3_bucket):
    for i in range(7):
        _put(client, s3_bucket, f"run/{i}/part.parquet")
    _put(client, s3_bucket, "runs-other/keep")
    assert storage.delete_prefix(f"s3://{s3_bucket}/run") == 7
    assert [o.uri for o in storage.iter_objects(f"s3://{s3_bucket}")] == [f"s3://{s3_bucket}/runs-other/keep"]
    with pytest.raises(ValueError, match="whole bucket"):
        storage.delete_prefix(f"s3://{s3_bucket}/")


def test_every_storage_call_survives_faults_on_the_wire(s3_bucket, s3_endpoint, monkeypatch):
    """503 SlowDown, 500 InternalError and bodies cut mid-stream (tests/faulty_s3.py) on the first
    and every third request of each kind of call, through boto3 and pyarrow alike."""
    from tests.faulty_s3 import FaultyS3

    with FaultyS3(s3_endpoint, every=3) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        storage.clear_client_cache()
        try:
            root = f"s3://{s3_bucket}/faults"
            blobs = {f"{root}/{i}.bin": os.urandom(1000 * (i + 1)) for i in range(6)}
            for uri, data in blobs.items():
                storage.write_bytes(uri, data)
            for uri, data in blobs.items():
                assert storage.read_bytes(uri) == data  # a cut body is fetched again, whole
                assert storage.object_info(uri).size == len(data) and storage.exists(uri)
            assert sorted(o.uri for o in storage.iter_objects(root)) == sorted(blobs)
            fs, path = storage.arrow_filesystem(f"{root}/t.parquet")
            table = pa.table({"a": list(range(2000))})
            for i in range(3):
                pq.write_table(table, f"{path}.{i}", filesystem=fs)
                assert pq.read_table(f"{path}.{i}", filesystem=fs).equals(table)
            fs.move(f"{path}.0", f"{path}.moved")
            objects = {o.uri for o in storage.iter_objects(root)} - {root + "/"}  # pyarrow's move leaves a marker
            assert objects == {*blobs, f"s3://{path}.1", f"s3://{path}.2", f"s3://{path}.moved"}
            storage.delete_prefix(root)
            assert list(storage.iter_objects(root)) == []
        finally:
            storage.clear_client_cache()
    assert {"PutObject", "GetObject", "HeadObject", "ListObjects", "CopyObject", "DeleteObjects",
            "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"} <= proxy.faulted_kinds()
    assert ("GetObject", "cut") in proxy.faults


def test_a_body_that_keeps_breaking_is_an_oserror_naming_the_uri(s3_bucket, s3_endpoint, monkeypatch):
    from tests.faulty_s3 import FaultyS3

    storage.write_bytes(f"s3://{s3_bucket}/k.bin", b"x" * 4000)
    with FaultyS3(s3_endpoint, every=1) as proxy:  # every request faulted: the retries run out
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
        monkeypatch.setattr(storage, "STREAM_BACKOFF_S", 0.01)
        storage.clear_client_cache()
        try:
            with pytest.raises(OSError, match=f"s3://{s3_bucket}/k.bin"):
                storage.read_bytes(f"s3://{s3_bucket}/k.bin")
        finally:
            storage.clear_client_cache()


def test_arrow_filesystem_parquet_round_trip(s3_bucket, s3_endpoint):
    uri = f"s3://{s3_bucket}/reports/dt=2024-01-01/part-0.parquet"
    fs, path = storage.arrow_filesystem(uri)
    assert path == f"{s3_bucket}/reports/dt=2024-01-01/part-0.parquet"
    table = pa.table({"uri": ["s3://x/a.jpg", "s3://x/b.jpg"], "score": [0.5, 0.25]})
    pq.write_table(table, path, filesystem=fs)
    # Written by pyarrow, seen by boto3 through lxn.storage, and read back by pyarrow.
    assert [o.uri for o in storage.iter_objects(f"s3://{s3_bucket}/reports")] == [uri]
    assert pq.read_table(pa.BufferReader(storage.read_bytes(uri))).equals(table)
    assert pq.read_table(path, filesystem=fs).equals(table)
    # Ray ships filesystems to workers by pickle: the pickle must work and carry no secret.
    blob = pickle.dumps(fs)
    assert os.environ["AWS_SECRET_ACCESS_KEY"].encode() not in blob
    assert os.environ["AWS_ACCESS_KEY_ID"].encode() not in blob
    assert pq.read_table(path, filesystem=pickle.loads(blob)).equals(table)


def test_unreachable_endpoint_is_an_oserror_naming_the_uri(monkeypatch):
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    storage.clear_client_cache()
    try:
        with pytest.raises(OSError, match=r"cannot reach S3 for s3://lxn-nowhere/key"):
            storage.read_bytes("s3://lxn-nowhere/key")
        with pytest.raises(OSError, match=r"cannot reach S3 for s3://lxn-nowhere/"):
            next(storage.iter_objects("s3://lxn-nowhere/"))
    finally:
        storage.clear_client_cache()
