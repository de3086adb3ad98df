"""Incremental state: (uri, etag) hashes and the vectorised membership test."""

import numpy as np

from lxn.scan.state import CoveredSet, key_hash, key_hashes, read_covered, write_covered


def test_key_hash_identifies_one_version_of_one_object():
    a = key_hash("s3://b/x.jpg", "etag1")
    assert a == key_hash("s3://b/x.jpg", "etag1")
    assert len({a, key_hash("s3://b/x.jpg", "etag2"), key_hash("s3://b/y.jpg", "etag1"),
                key_hash("s3://b/x.jpgetag1", "")}) == 4
    assert key_hashes(["s3://b/x.jpg"], ["etag1"]).tolist() == [a]
    assert key_hashes([], []).dtype == np.uint64


def test_membership_matches_a_python_set():
    rng = np.random.default_rng(0)
    members = rng.integers(0, 2**64 - 1, 5000, dtype=np.uint64, endpoint=True)
    members[:3] = [0, 2**64 - 1, 12345]  # the extremes
    covered = CoveredSet(np.concatenate([members, members[:100]]))  # repeats collapse
    assert len(covered) == len(set(members.tolist()))
    queries = np.concatenate([members[::7], rng.integers(0, 2**64 - 1, 5000, dtype=np.uint64, endpoint=True)])
    expected = np.array([q in set(members.tolist()) for q in queries.tolist()])
    assert (covered.contains(queries) == expected).all()
    assert not CoveredSet().contains(queries).any()
    assert CoveredSet.union([members[:10], members[5:20]]).hashes.tolist() == sorted(set(members[:20].tolist()))


def test_covered_file_round_trip(tmp_path):
    hashes = np.array([5, 3, 2**63 + 1, 3], dtype=np.uint64)
    write_covered(str(tmp_path / "covered.parquet"), hashes)
    assert read_covered(str(tmp_path / "covered.parquet")).tolist() == [3, 5, 2**63 + 1]
