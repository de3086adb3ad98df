"""Multi-scale tiling for small logos: the whole image plus overlapping N x N grids of tiles.

LogoXpertNet classifies a whole image squeezed to S x S pixels, so a logo covering 2% of a
1920 x 1080 frame is a few pixels wide by the time the model sees it; the paper names small logos
as its weakness and multi-scale inference as future work. Tiling trades throughput for recall:
with grids (2, 3) each image is classified 1 + 4 + 9 = 14 times, each tile at the full S x S.

Grid `g` covers each side with `g` tiles overlapping by half a tile, so a tile spans 2 / (g + 1)
of the side and its stride is half that: a logo on a tile border is whole in the neighbour.
Tiles are squeezed to S x S exactly as the whole image is (the eval preset's resize), so a tile
looks to the model like the images it was trained on.

The reported prediction is the most brand-like tile's: the tile whose largest probability over
the brand classes (every class but no-logo) is highest; the whole image is tile 0 and wins ties.
Boxes are `(x0, y0, x1, y1)` in the original image's displayed pixels (EXIF orientation
applied), x1/y1 exclusive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["tile_count", "grid_boxes", "scale_boxes", "crop_tiles", "best_tile"]


def tile_count(grids: Sequence[int]) -> int:
    """Tiles per image: the whole image plus g * g per grid."""
    return 1 + sum(g * g for g in grids)


def _spans(length: int, g: int) -> list[tuple[int, int]]:
    tile = length * 2 / (g + 1)
    spans = []
    for i in range(g):
        start = min(length - 1, int(round(i * tile / 2)))
        end = length if i == g - 1 else int(round(i * tile / 2 + tile))
        spans.append((start, max(start + 1, min(length, end))))
    return spans


def grid_boxes(width: int, height: int, grids: Sequence[int]) -> np.ndarray:
    """(T, 4) int32 boxes `(x0, y0, x1, y1)` in a `width` x `height` image: the whole image
    first, then each grid's tiles row by row."""
    if width < 1 or height < 1:
        raise ValueError(f"an image needs a positive size, got {width}x{height}")
    boxes = [(0, 0, width, height)]
    for g in grids:
        for y0, y1 in _spans(height, g):
            for x0, x1 in _spans(width, g):
                boxes.append((x0, y0, x1, y1))
    return np.asarray(boxes, dtype=np.int32)


def scale_boxes(boxes: np.ndarray, source: tuple[int, int], target: tuple[int, int]) -> np.ndarray:
    """Boxes in a `source` (w, h) image mapped to a `target` (w, h) one, e.g. from a JPEG decoded
    at reduced scale back to the original's pixels; edges round outwards, within the image."""
    sx, sy = target[0] / source[0], target[1] / source[1]
    scaled = boxes.astype(np.float64) * np.array([sx, sy, sx, sy])
    out = np.concatenate([np.floor(scaled[:, :2] + 1e-9), np.ceil(scaled[:, 2:] - 1e-9)], axis=1)
    return np.clip(out, 0, np.array([target[0], target[1], target[0], target[1]])).astype(np.int32)


def crop_tiles(pixels: np.ndarray, boxes: np.ndarray, resize: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """(T, S, S, 3) uint8: each box of the (H, W, 3) `pixels` through `resize` (the preset's)."""
    return np.stack([resize(np.ascontiguousarray(pixels[y0:y1, x0:x1])) for x0, y0, x1, y1 in boxes])


def best_tile(probs: np.ndarray, no_logo: int | None) -> np.ndarray:
    """Index of the most brand-like tile of each image: probs (N, T, K) -> (N,) int64."""
    if probs.ndim != 3:
        raise ValueError(f"expected probabilities of shape (N, T, K), got {probs.shape}")
    brand = probs
    if no_logo is not None and probs.shape[2] > 1:
        brand = np.delete(probs, no_logo, axis=2)
    return np.argmax(brand.max(axis=2), axis=1)  # argmax returns the first maximum: tile 0 wins ties
