"""The fetch stage: listing rows -> bytes -> decoded, preset-sized pixels (or an error per row).

Runs as Ray Data map tasks on the CPU. Each object is fetched and decoded on its own, so one bad
object is one error row: `lxn.images.safe_decode` names what is wrong with the bytes (empty,
not an image, truncated, corrupt, unsupported, too large) and converts the odd-but-good ones
(CMYK, palette, alpha, 16-bit, grey, EXIF-rotated, animated) to RGB; a failed fetch is
`missing`, `forbidden` or `unreadable` after `lxn.storage`'s retries (`storage.fetch`, as prepare). Objects over `max_bytes`
are not fetched at all.

Only (T, S, S, 3) uint8 arrays leave this stage (T = 1 without tiling): the bytes go through
the one decode path (`lxn.presets.decode`: at reduced scale where the format allows) and are
squeezed to S x S by the model's own eval preset (`Preset.resize`), so the predictors get
exactly the preprocessing training used and nothing bigger than they need.

Fetches of one batch run in a small thread pool: S3 latency is hidden, and Pillow releases the
GIL while decoding and resizing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from lxn import storage
from lxn.presets import Preset, decode
from lxn.scan import tiling

__all__ = ["fetch_and_decode"]


def _fetch_one(uri: str, size: int, max_bytes: int) -> tuple[bytes | None, str | None, str | None]:
    if size > max_bytes:
        return None, "too_large", f"{size:,} bytes, above the limit of {max_bytes:,} bytes (not fetched)"
    return storage.fetch(uri)


def fetch_and_decode(batch: dict[str, np.ndarray], *, preset: dict[str, Any], grids: tuple[int, ...] = (),
                     max_bytes: int, max_pixels: int, threads: int = 8) -> dict[str, np.ndarray]:
    """A listing batch (row_id, uri, etag, size, last_modified, key_hash, and any other columns,
    which pass through; `data`, when present, holds the bytes and replaces the fetch) -> the same
    columns plus status, error_kind, error, width, height, pixels (N, T, S, S, 3) and, when tiling,
    boxes (N, T, 4) in original pixels. Error rows carry zero pixels."""
    recipe = Preset.from_dict(preset)
    s = recipe.image_size
    n = len(batch["uri"])
    t = tiling.tile_count(grids)
    pixels = np.zeros((n, t, s, s, 3), dtype=np.uint8)
    boxes = np.zeros((n, t, 4), dtype=np.int32)
    status = np.full(n, "ok", dtype=object)
    kind = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    width = np.zeros(n, dtype=np.int32)
    height = np.zeros(n, dtype=np.int32)

    carried = batch.get("data")  # bytes already read (a prepared dataset's stored copies): no fetch

    def one(i: int) -> None:
        if carried is not None:
            data, error_kind, error = carried[i], None, None
        else:
            data, error_kind, error = _fetch_one(str(batch["uri"][i]), int(batch["size"][i]), max_bytes)
        image = None
        if error_kind is None:
            image, error_kind, error = decode(data, s, grids=grids, max_pixels=max_pixels, max_bytes=max_bytes)
        if image is None:
            status[i], kind[i], reason[i] = "error", error_kind, error
            return
        width[i], height[i] = image.width, image.height
        if not grids:
            pixels[i, 0] = recipe.resize(image.pixels)
            boxes[i, 0] = (0, 0, image.width, image.height)
            return
        h, w = image.pixels.shape[:2]
        local = tiling.grid_boxes(w, h, grids)
        pixels[i] = tiling.crop_tiles(image.pixels, local, recipe.resize)
        boxes[i] = tiling.scale_boxes(local, (w, h), (image.width, image.height))

    if n:
        with ThreadPoolExecutor(max_workers=max(1, min(threads, n)), thread_name_prefix="lxn-fetch") as pool:
            for _ in pool.map(one, range(n)):  # consumed so that an unexpected exception surfaces
                pass
    out = dict(batch)
    out.update(status=status, error_kind=kind, error=reason, width=width, height=height, pixels=pixels)
    if grids:
        out["boxes"] = boxes
    return out
