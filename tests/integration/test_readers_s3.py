"""Readers on a bucket of the S3 test endpoint give what they give on a local disk."""

from __future__ import annotations

from lxn import storage
from lxn.data import readers
from tests import dataset_layouts as layouts


def _view(samples, root):
    return [(storage.relpath(s.uri, root), s.label, s.official_split) for s in samples]


def test_imagefolder_from_s3_matches_local(s3_bucket, tmp_path):
    remote, local = f"s3://{s3_bucket}/datasets/logos", str(tmp_path / "logos")
    layouts.make_imagefolder(remote)
    layouts.make_imagefolder(local)
    samples = list(readers.iter_samples("imagefolder", remote))
    assert _view(samples, remote) == _view(readers.read_imagefolder(local), local)
    assert [s.label for s in samples] == ["cocacola", "cocacola", "pepsi"]
    assert all(s.uri.startswith(f"s3://{s3_bucket}/datasets/logos/") for s in samples)
    assert storage.read_bytes(samples[0].uri) == layouts.image_bytes()


def test_flickrlogos32_from_s3_matches_local(s3_bucket, tmp_path):
    remote, local = f"s3://{s3_bucket}/FlickrLogos-v2", str(tmp_path / "FlickrLogos-v2")
    layouts.make_flickrlogos32(remote)
    layouts.make_flickrlogos32(local)
    samples = list(readers.iter_samples("flickrlogos32", remote))
    assert _view(samples, remote) == _view(readers.read_flickrlogos32(local), local)
    hp = [s for s in samples if s.label == "hp"]
    assert [storage.relpath(s.uri, remote) for s in hp] == ["classes/jpg/HP/2001.jpg", "classes/jpg/HP/2002.jpg"]
    for s in samples:  # every image and mask the reader points to exists in the bucket
        assert storage.exists(s.uri)
        if "bboxes_uri" in s.extra:
            assert storage.exists(s.extra["bboxes_uri"])
