"""Multi-scale tiling for small logos: the whole image plus overlapping N x N grids of tiles.

LogoXpertNet classifies a whole image squeezed to S x S pixels, so a logo covering 2% of a
1920 x 1080 frame is a few pixels wide by the time the model sees it; the paper names small logos
as its weakness and multi-scale inference as future work. Tiling trades throughput for recall:
with grids (2, 3) each image is classified 1 + 4 + 9 = 14 times, each tile at the full S x S.

Grid `g` covers each side with `g` tiles overlapping by half a tile, so a tile spans 2 / (g + 1)
of the side and its stride is half that: a logo on a tile border is whole in the neighbour.
Tiles are squeezed to S x S exactly as the whole image is (the eval preset's resize), so a tile
looks to the model like the images it was trained on.

The image's prediction (`brand`, `confidence`) is the most brand-like tile's: the tile whose
largest probability over the brand classes (every class but no-logo) is highest; the whole image
is tile 0 and wins ties. Boxes are `(x0, y0, x1, y1)` in the original image's displayed pixels
(EXIF orientation applied), x1/y1 exclusive.

Detections (`detections`) are every brand the tiles see: a tile is a candidate when its top-1
class is a brand at or above the threshold (the rule `brand` follows for the whole image).
Candidates are taken most confident first; one whose box overlaps an earlier detection's first
box of the same brand by at least half of the smaller box is that logo seen again (neighbours of
a grid overlap by exactly half, and a tile lies inside the coarser tiles around it). A detection
keeps its best confidence; its box is the common part of the tiles that saw it, where a logo
seen whole by all of them must be, or the box around them when they share none (a logo bigger
than a tile). Candidates of different brands never suppress each other (a shirt in front of a
banner). Two logos of one brand far apart stay two unless a coarser tile that holds both is more
confident than either (then they are one detection around both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["tile_count", "grid_boxes", "scale_boxes", "crop_tiles", "best_tile", "detect", "MERGE_OVERLAP"]

# Same-brand candidates overlapping by this share of the smaller box are one logo (see above).
MERGE_OVERLAP = 0.5


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


def detect(top: np.ndarray, confidence: np.ndarray, boxes: np.ndarray, *, is_brand: np.ndarray,
           threshold: float) -> list[tuple[int, float, tuple[int, int, int, int]]]:
    """One image's detections from its T tiles: `top` (T,) class of each tile, `confidence` (T,)
    its probability, `boxes` (T, 4), `is_brand` (K,) which classes are brands. Returns
    [(class, confidence, box)], most confident first (ties: the earlier tile, the whole image
    first)."""
    candidates = np.flatnonzero(is_brand[top] & (confidence >= threshold))
    order = candidates[np.argsort(-confidence[candidates], kind="stable")]
    kept: list[tuple[int, float, np.ndarray, list[np.ndarray]]] = []  # class, confidence, seed box, members
    for t in order:
        box = boxes[t].astype(np.int64)
        for cls, _, seed, members in kept:
            if cls == top[t] and _overlap(seed, box) >= MERGE_OVERLAP * min(_area(seed), _area(box)) > 0:
                members.append(box)
                break
        else:
            kept.append((int(top[t]), float(confidence[t]), box, [box]))
    return [(cls, p, _where(members)) for cls, p, _, members in kept]


def _where(members: list[np.ndarray]) -> tuple[int, int, int, int]:
    """Where the logo that every member tile sees is: their common part, or, when they have
    none (a logo bigger than a tile), the box around them all."""
    stacked = np.stack(members)
    inner = np.concatenate([stacked[:, :2].max(axis=0), stacked[:, 2:].min(axis=0)])
    if inner[2] <= inner[0] or inner[3] <= inner[1]:
        inner = np.concatenate([stacked[:, :2].min(axis=0), stacked[:, 2:].max(axis=0)])
    return tuple(int(v) for v in inner)


def _overlap(a: np.ndarray, b: np.ndarray) -> int:
    return int(max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1])))


def _area(box: np.ndarray) -> int:
    return int(max(0, box[2] - box[0]) * max(0, box[3] - box[1]))
