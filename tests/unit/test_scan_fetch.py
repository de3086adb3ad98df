"""The fetch stage: one row per object, every bad kind an error row, pixels at the preset size."""

import numpy as np
import pytest

from lxn.presets import Preset
from lxn.scan.fetch import fetch_and_decode
from tests.image_samples import QUADRANT_COLOURS, image_kinds

PRESET = Preset(image_size=32)


def batch_of(paths, sizes=None):
    n = len(paths)
    return {
        "row_id": np.arange(n, dtype=np.int64),
        "uri": np.array(paths, dtype=object),
        "etag": np.array(["e"] * n, dtype=object),
        "size": np.array(sizes if sizes is not None else [1] * n, dtype=np.int64),
        "last_modified": np.array(["2025-01-01T00:00:00"] * n, dtype="datetime64[us]"),
        "key_hash": np.arange(n, dtype=np.uint64),
    }


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    paths = {}
    for name, sample in image_kinds().items():
        path = root / name / sample.filename  # one folder per sample: some file names repeat
        path.parent.mkdir(parents=True)
        path.write_bytes(sample.data)
        paths[name] = str(path)
    return paths


def test_every_kind_becomes_the_documented_row(samples):
    kinds = image_kinds()
    names = list(samples)
    out = fetch_and_decode(batch_of([samples[n] for n in names]), preset=PRESET.to_dict(), max_bytes=2**26,
                           max_pixels=64_000_000, threads=4)
    assert out["pixels"].shape == (len(names), 1, 32, 32, 3) and out["pixels"].dtype == np.uint8
    assert out["uri"].tolist() == [samples[n] for n in names] and out["row_id"].tolist() == list(range(len(names)))
    for i, name in enumerate(names):
        sample = kinds[name]
        if sample.expected_kind is None:
            assert out["status"][i] == "ok" and out["error_kind"][i] is None, (name, out["error"][i])
            assert (out["width"][i], out["height"][i]) == sample.expected_size, name
        else:
            assert (out["status"][i], out["error_kind"][i]) == ("error", sample.expected_kind), name
            assert out["error"][i] and not out["pixels"][i].any(), name
    # the EXIF-rotated photo arrives upright: its stored top-left quadrant is displayed top-right
    upright = out["pixels"][names.index("exif_rotated_jpeg"), 0]
    assert np.abs(upright[2, 29].astype(int) - QUADRANT_COLOURS["tl"]).max() < 40


def test_fetch_failures_and_oversized_objects_are_rows(samples, tmp_path):
    paths = [samples["rgb_png"], str(tmp_path / "gone.jpg"), samples["rgb_jpeg"]]
    out = fetch_and_decode(batch_of(paths, sizes=[1, 1, 10**9]), preset=PRESET.to_dict(), max_bytes=10**6,
                           max_pixels=10**6)
    assert out["status"].tolist() == ["ok", "error", "error"]
    assert out["error_kind"].tolist() == [None, "missing", "too_large"]
    assert "not fetched" in out["error"][2]


def test_tiles_carry_boxes_in_original_pixels(samples):
    out = fetch_and_decode(batch_of([samples["large_png"], samples["exif_rotated_jpeg"]]), preset=PRESET.to_dict(),
                           grids=(2, 3), max_bytes=2**26, max_pixels=64_000_000)
    assert out["pixels"].shape == (2, 14, 32, 32, 3) and out["boxes"].shape == (2, 14, 4)
    assert out["boxes"][0, 0].tolist() == [0, 0, 4000, 3000]
    assert out["boxes"][1, 0].tolist() == [0, 0, 48, 64]  # displayed size of the rotated photo
    assert out["boxes"][0, 1:5].tolist() == [[0, 0, 2667, 2000], [1333, 0, 4000, 2000],
                                           [0, 1000, 2667, 3000], [1333, 1000, 4000, 3000]]
