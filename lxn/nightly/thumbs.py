"""Small JPEG thumbnails of picked images with their marks outlined, as `data:` URIs a page
embeds: the page then opens from a bucket or a laptop with no server and no access to the images.

An image that cannot be fetched or decoded any more (deleted since the scan, no access from
here) gets the reason instead of a picture; a page is never lost to one image.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageDraw

from lxn import storage
from lxn.images import encode_jpeg, safe_decode

__all__ = ["Thumb", "THUMB_SIDE", "thumbnail", "thumbnails", "HIT_COLOUR", "OTHER_COLOUR"]

THUMB_SIDE = 192   # the longer side, in pixels
_QUALITY = 70      # measured: 5-9 KB for a 192 px photo; the page stays under a megabyte or two
_THREADS = 8
HIT_COLOUR = (255, 45, 85)     # the box of the brand the thumbnail is shown for
OTHER_COLOUR = (255, 214, 10)  # every other mark in the picture


@dataclasses.dataclass(frozen=True)
class Thumb:
    src: str | None         # data:image/jpeg;base64,... or None
    error: str | None = None  # why there is no picture: "missing: ...", "corrupt: ..."


def thumbnail(data: bytes | None, marks: Iterable[dict], width: int, height: int, *, brand: str | None,
              side: int = THUMB_SIDE) -> Thumb:
    """The thumbnail of an image's bytes with `marks` (boxes in the original's `width` x `height`
    pixels) outlined, the ones of `brand` in HIT_COLOUR."""
    image, kind, reason = safe_decode(data, target_size=side)
    if image is None:
        return Thumb(None, f"{kind}: {reason}")
    pixels = image.pixels
    h, w = pixels.shape[:2]
    scale = min(1.0, side / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    picture = Image.fromarray(np.ascontiguousarray(pixels)).resize(size, Image.Resampling.BILINEAR) \
        if size != (w, h) else Image.fromarray(np.ascontiguousarray(pixels))
    # Boxes are in the original's displayed pixels; the thumbnail is that image, scaled.
    sx, sy = size[0] / max(1, width or w), size[1] / max(1, height or h)
    draw = ImageDraw.Draw(picture)
    ordered = sorted(marks, key=lambda m: m.get("brand") == brand)  # the hit's own box drawn last, on top
    for mark in ordered:
        box = [mark["x0"] * sx, mark["y0"] * sy, mark["x1"] * sx - 1, mark["y1"] * sy - 1]
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        draw.rectangle(box, outline=HIT_COLOUR if mark.get("brand") == brand else OTHER_COLOUR, width=2)
    jpeg = encode_jpeg(np.asarray(picture), quality=_QUALITY)
    return Thumb("data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii"))


def thumbnails(hits: Iterable, *, side: int = THUMB_SIDE, threads: int = _THREADS) -> dict[tuple[str, str | None], Thumb]:
    """Thumbnails of `hits` (lxn.nightly.picks.Hit), keyed by (uri, brand): an image picked for
    two brands is fetched once and outlined for each. Each image's bytes are dropped as soon as
    its thumbnails are made (at most `threads` originals in memory)."""
    by_uri: dict[str, dict[str | None, object]] = {}
    for hit in hits:
        by_uri.setdefault(hit.uri, {}).setdefault(hit.brand, hit)

    def make(uri: str) -> dict[tuple[str, str | None], Thumb]:
        data, kind, reason = storage.fetch(uri)
        if data is None:
            return {(uri, brand): Thumb(None, f"{kind}: {reason}") for brand in by_uri[uri]}
        return {(uri, brand): thumbnail(data, hit.marks, hit.width, hit.height, brand=brand, side=side)
                for brand, hit in by_uri[uri].items()}

    thumbs: dict[tuple[str, str | None], Thumb] = {}
    if by_uri:
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(by_uri)))) as pool:
            for made in pool.map(make, sorted(by_uri)):
                thumbs.update(made)
    return thumbs
