"""A small labelled set with known answers for the spotters of tests/known_models.py.

acme: a red rectangle covering a quarter of the frame (RedSpotter: acme), or a tiny one (a
sixtieth: RedSpotter says no-logo); globex: a blue rectangle; no-logo: a plain picture. One
corrupt JPEG under acme/ (an error, left out of the figures).
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image, ImageDraw

COUNTS = {"acme": 8, "globex": 8, "no-logo": 8}
TINY_ACME = 2  # of the acme images, this many have a red spot too small for RedSpotter


def picture(brand: str, i: int) -> bytes:
    rng = np.random.default_rng(zlib.crc32(f"{brand}/{i}".encode()))
    w, h = int(rng.integers(80, 160)), int(rng.integers(80, 160))
    background = tuple(int(v) for v in rng.integers(110, 150, 3))  # grey-ish: neither red nor blue
    image = Image.new("RGB", (w, h), background)
    draw = ImageDraw.Draw(image)
    if brand != "no-logo":
        tiny = brand == "acme" and i < TINY_ACME
        side = 0.13 if tiny else 0.5
        x, y = int(rng.integers(0, int(w * (1 - side)))), int(rng.integers(0, int(h * (1 - side))))
        colour = (230, 10, 10) if brand == "acme" else (10, 10, 230)
        draw.rectangle([x, y, x + int(w * side), y + int(h * side)], fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG" if i % 3 == 0 else "JPEG", quality=95)
    return buffer.getvalue()


def labelled_objects() -> dict[str, bytes]:
    """{"<brand>/<i>.<ext>": bytes}, plus one corrupt "acme/corrupt.jpg"."""
    objects = {}
    for brand, count in COUNTS.items():
        for i in range(count):
            data = picture(brand, i)
            objects[f"{brand}/{i:02d}.{'png' if i % 3 == 0 else 'jpg'}"] = data
    objects["acme/corrupt.jpg"] = picture("acme", 99)[:300]
    return objects


def expected_correct(model: str, brand: str, i: int) -> bool:
    """Whether a spotter gets image i of `brand` right (by construction)."""
    sees_acme = model in ("RedSpotter", "TwoSpotter", "SlowTwoSpotter")
    sees_globex = model in ("BlueSpotter", "TwoSpotter", "SlowTwoSpotter")
    if brand == "no-logo":
        return True
    if brand == "acme":
        return sees_acme and i >= TINY_ACME
    return sees_globex
