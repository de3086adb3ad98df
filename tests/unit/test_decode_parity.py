"""Training sees what the scan sees: the same original goes through prepare + training (stored
copy -> model pixels) and through the scan (original -> model pixels), and the two inputs must
be near-identical, for square, 4:1, 1:4, 8:1 and tiny originals.

Bound: PSNR >= 34 dB between the two 224 x 224 inputs, on originals with fine detail at their own
resolution (thin lines, small print). The copy prepare stored before (longer side at 320) gives
28.6-32.8 dB on every non-square one: a 2400 x 300 banner was stored 320 x 40 and trained
upsampled from 40 rows, while the scan shrinks its 300.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lxn.data.prepare import PrepareConfig, listing_table, load_batch
from lxn.data.prepared import DatasetError, Manifest
from lxn.presets import STORE_MAX_ASPECT, Preset, store_copy
from lxn.scan.fetch import fetch_and_decode
from lxn.train.trainer import decode_batch

PSNR_BOUND_DB = 34.0
SIZES = [(600, 600), (1600, 400), (400, 1600), (2400, 300), (40, 30), (120, 12)]


def detailed_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """An original with detail at its own resolution: thin lines and small strokes of colour."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), (200, 200, 190))
    draw = ImageDraw.Draw(image)
    for _ in range(max(20, width * height // 800)):
        x, y, s = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(1, 6))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle((x, y, x + 3 * s, y + s), fill=colour)
        else:
            draw.line((x, y, x + int(rng.integers(-20, 20)), y + int(rng.integers(-20, 20))), fill=colour, width=1)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def scan_pixels(path: str, preset: Preset) -> np.ndarray:
    batch = {k: np.array(v, dtype=object if k in ("uri", "etag") else None) for k, v in
             {"row_id": [0], "uri": [path], "etag": ["e"], "size": [1], "key_hash": [0]}.items()}
    out = fetch_and_decode(batch, preset=preset.to_dict(), max_bytes=2**26, max_pixels=2**26)
    assert out["status"][0] == "ok", out["error"][0]
    return out["pixels"][0, 0]


def training_pixels(path: str, preset: Preset, config: PrepareConfig) -> np.ndarray:
    listing = listing_table(0, [(path, "acme", None, None, None)])
    loaded = load_batch(listing, config)
    assert loaded["status"][0].as_py() == "ok", loaded["error"][0].as_py()
    stored = loaded["image"][0].as_py()
    return decode_batch({"image": np.array([stored], dtype=object), "label": np.zeros(1, np.int64)}, preset)["image"][0]


@pytest.mark.parametrize("width, height", SIZES, ids=lambda v: str(v))
def test_training_and_the_scan_feed_the_model_near_identical_pixels(width, height, tmp_path):
    path = tmp_path / f"{width}x{height}.jpg"
    path.write_bytes(detailed_jpeg(width, height))
    preset = Preset(image_size=224)
    config = PrepareConfig(source=[str(tmp_path)], out=str(tmp_path / "out"))
    scan, train = scan_pixels(str(path), preset), training_pixels(str(path), preset, config)
    assert scan.shape == train.shape == (224, 224, 3)
    assert psnr(scan, train) >= PSNR_BOUND_DB, f"{width}x{height}: {psnr(scan, train):.1f} dB"


def test_the_old_longer_side_storage_misses_the_bound(tmp_path):
    """The bound tells the storages apart: keeping the longer side at 320 fails it."""
    from lxn.images import decode_image, encode_jpeg

    data = detailed_jpeg(2400, 300)
    path = tmp_path / "banner.jpg"
    path.write_bytes(data)
    preset = Preset(image_size=224)
    old = encode_jpeg(decode_image(data, target_size=320).pixels, max_side=320, quality=95)
    trained = decode_batch({"image": np.array([old], dtype=object), "label": np.zeros(1, np.int64)}, preset)["image"][0]
    assert psnr(scan_pixels(str(path), preset), trained) < PSNR_BOUND_DB - 4


def test_the_stored_copy_keeps_the_shorter_side_and_bounds_the_longer():
    def stored_size(width, height, side=256):
        with Image.open(io.BytesIO(store_copy(np.zeros((height, width, 3), np.uint8), side))) as image:
            return image.size

    assert stored_size(2400, 300) == (2048, 256)
    assert stored_size(300, 2400) == (256, 2048)
    assert stored_size(1000, 750) == (341, 256)
    assert stored_size(100, 60) == (100, 60)  # never enlarged
    assert stored_size(6000, 200) == (256 * STORE_MAX_ASPECT, 68)  # a strip: the longer side is bounded


def test_training_refuses_a_size_the_stored_images_cannot_serve():
    manifest = Manifest(classes=["a", "b"], counts={}, mean=[0.5] * 3, std=[0.2] * 3, store_side=256)
    manifest.check_image_size(224)
    manifest.check_image_size(256)
    with pytest.raises(DatasetError, match="--image-size 256 or less, or prepare again with --store-side 320"):
        manifest.check_image_size(320)


def test_prepare_and_the_scan_give_every_bad_object_the_same_error_kind(tmp_path, monkeypatch):
    """One fetch-and-decode path: an object is `missing`, `forbidden`, `unreadable`, `empty`,
    `truncated`... alike in a training set and in a nightly bucket."""
    from lxn import storage

    good = detailed_jpeg(64, 48)
    objects = {"empty.jpg": b"", "text.jpg": b"not an image at all", "truncated.jpg": good[: len(good) // 2],
               "good.jpg": good, "denied.jpg": good}
    for name, data in objects.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.jpg").mkdir()
    uris = [str(tmp_path / name) for name in [*objects, "folder.jpg", "gone.jpg"]]
    read_bytes = storage.read_bytes

    def denied(uri):  # the tests run as root, for whom no local file is unreadable
        if str(uri).endswith("denied.jpg"):
            raise PermissionError(f"access denied to {uri}")
        return read_bytes(uri)

    monkeypatch.setattr(storage, "read_bytes", denied)
    batch = {"row_id": np.arange(len(uris)), "uri": np.array(uris, dtype=object),
             "etag": np.array(["e"] * len(uris), dtype=object), "size": np.ones(len(uris), np.int64),
             "key_hash": np.zeros(len(uris), np.int64)}
    scanned = fetch_and_decode(batch, preset=Preset(image_size=64).to_dict(), max_bytes=2**26, max_pixels=2**26)
    prepared = load_batch(listing_table(0, [(uri, "acme", None, None, None) for uri in uris]),
                          PrepareConfig(source=[str(tmp_path)], out=str(tmp_path / "out")))
    kinds = dict(zip(uris, prepared["error_kind"].to_pylist()))
    assert kinds == dict(zip(uris, list(scanned["error_kind"])))
    assert [kinds[str(tmp_path / n)] for n in ("empty.jpg", "good.jpg", "denied.jpg", "folder.jpg", "gone.jpg")] == \
        ["empty", None, "forbidden", "unreadable", "missing"]
