"""SVG images rasterised safely: the size an SVG declares is checked against the same pixel cap
as a raster header's before anything is drawn, references outside the file are refused, and
the drawing is made only as large as the caller needs (as a JPEG is decoded at reduced scale).

resvg (through resvg-py, a self-contained wheel) draws it: a renderer with no scripting and no
network access; its XML parser limits entity expansion.
"""

from __future__ import annotations

import io
import re

import numpy as np

__all__ = ["declared_size", "looks_like_svg", "rasterise"]

# CSS absolute units in px (usvg's table); a size in %, em or ex falls back to the viewBox.
_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4}
_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")
_ROOT = re.compile(r"<svg\b([^>]*)>", re.IGNORECASE | re.DOTALL)
# href / xlink:href values that leave the file (a local path, file:, http:): only "#id" and data: stay
_EXTERNAL = re.compile(r"""\bhref\s*=\s*["']\s*(?!#|data:)([^"']*)["']""", re.IGNORECASE)
_DEFAULT_SIZE = (100.0, 100.0)  # what an SVG without width, height or viewBox is drawn at


def looks_like_svg(text: str) -> bool:
    """Whether the start of a text file is an SVG document (its root element within the head)."""
    return _ROOT.search(text[:4096]) is not None


def _attribute(tag: str, name: str) -> str | None:
    found = re.search(rf"""(?<![\w:-]){name}\s*=\s*["']([^"']*)["']""", tag)
    return found.group(1) if found else None


def _length(text: str | None) -> float | None:
    match = _LENGTH.match(text or "")
    if not match or match.group(2) not in _UNITS:
        return None
    return float(match.group(1)) * _UNITS[match.group(2)]


def _view_size(view_box: str | None) -> tuple[float, float] | None:
    """(width, height) of a viewBox "min-x min-y width height"; None when absent or unusable."""
    try:
        box = [float(v) for v in re.split(r"[\s,]+", (view_box or "").strip()) if v]
    except ValueError:
        return None
    return (box[2], box[3]) if len(box) == 4 and box[2] > 0 and box[3] > 0 else None


def declared_size(text: str) -> tuple[float, float]:
    """(width, height) in px an SVG is drawn at: its root's width and height, else its viewBox's,
    else 100 x 100 (resvg's rules, for the units that do not depend on a viewer)."""
    root = _ROOT.search(text)
    if root is None:
        raise ValueError("no <svg> root element")
    tag = root.group(1)
    view = _view_size(_attribute(tag, "viewBox"))
    width, height = _length(_attribute(tag, "width")), _length(_attribute(tag, "height"))
    if width is None and height is None:
        return view or _DEFAULT_SIZE
    if width is None or height is None:  # one side given: the other follows the viewBox's aspect
        aspect = view[0] / view[1] if view else 1.0
        return (width, width / aspect) if height is None else (height * aspect, height)
    return width, height


def rasterise(text: str, *, max_pixels: int, target_size: tuple[int, int] | None):
    """An SVG document -> (RGBA pixels (H, W, 4) uint8, its declared (width, height) rounded).
    Raises ValueError with the reason (the caller names the error kind): `too_large` when the
    declared size exceeds `max_pixels`, `unsupported` for an external reference."""
    from PIL import Image
    import resvg_py

    external = _EXTERNAL.search(text)
    if external:
        raise PermissionError(f"it references a resource outside the file ({external.group(1)[:80]!r}), which "
                              "is never fetched")
    width, height = declared_size(text)
    if not (0 < width < 1e7 and 0 < height < 1e7) or width * height > max_pixels:
        raise OverflowError(f"the SVG declares {width:,.0f}x{height:,.0f} px, above the limit of {max_pixels:,} pixels")
    scale = 1.0
    if target_size is not None:  # the smallest drawing that still covers the target, never enlarged
        scale = min(1.0, max(target_size[0] / width, target_size[1] / height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # dpi 96: the CSS pixel (resvg-py's default of 0 makes every size in mm, pt or in invalid)
    png = resvg_py.svg_to_bytes(svg_string=text, width=size[0], height=size[1], dpi=96.0)
    with Image.open(io.BytesIO(bytes(png))) as drawn:
        return np.asarray(drawn.convert("RGBA")), (max(1, round(width)), max(1, round(height)))
