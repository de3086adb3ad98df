"""A deterministic, labelled logo dataset generator: procedural brand marks in cluttered scenes.

No logo dataset can be downloaded where lxn is developed and tested, so the demo, the tests and
the benchmarks run on this one. It imitates what makes WebLogo-2M and FlickrLogos-32 hard:

* **Brands.** Each brand has a procedural mark: an emblem shape (circle, polygon, star, shield,
  rounded square, pill), a layout (badge, ring, split bands, wordmark), an inner element (its
  initial or first letters drawn as strokes, so no font file is needed, or a symbol such as
  chevrons or bars) and a three-colour scheme. Brand names are readable syllables ("zentro").
  Unrelated brands differ in at least two of shape, colour and inner element.
* **Confusable pairs**, like the paper's Coca-Cola/Pepsi confusions: brand B copies brand A and
  changes exactly one thing: the primary colour, the glyph (E -> F, P -> R, one more chevron) or
  the shape (hexagon -> heptagon). `dataset_metadata(...)["confusable_pairs"]` says which.
* **Scenes.** Backgrounds (gradients, fractal "photo" textures, horizons, brick walls, bokeh),
  clutter (boxes, poles, blank signs, stroke text, emblem-like distractor shapes), the mark placed
  with scale, rotation, shear and perspective, often on a plate (a sign, a shirt), partial
  occlusion, then the camera: uneven light, colour cast, brightness/contrast, blur, sensor noise
  and JPEG artefacts at a random quality. `no-logo` scenes have the same clutter and no mark of
  the dataset's brands; half of them show a decoy instead, the mark of a brand outside the
  dataset (two traits away from every brand in it), as real photos show logos nobody asked about.

Determinism: every image draws all of its randomness from its own generator, seeded with
(seed, stream, brand index, image index). The same config and seed give byte-identical JPEGs
whatever the order, process or machine chunk that generates them, so a dataset can be made in
parallel (e.g. one Ray task per shard, `iter_dataset(config, shard=k, num_shards=n)`). Bytes
are identical for a given Pillow/libjpeg build; another JPEG library may encode differently.

Brands come from `brand_seed`, scenes from `seed`: a second dataset with another `seed` shows the
same brands in new scenes (a held-out set, a "nightly bucket"). Brand i depends only on brands
0..i, so the first 10 brands of a 50-brand dataset are the brands of a 10-brand dataset.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import io
import json
import math
import os
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence, TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from lxn.config import setting, to_dict

__all__ = [
    "NO_LOGO",
    "resolve_class",
    "SyntheticConfig",
    "Brand",
    "make_brands",
    "brands",
    "class_names",
    "class_counts",
    "render_mark",
    "generate_image",
    "generate_image_with_box",
    "iter_dataset",
    "dataset_metadata",
    "write_imagefolder",
    "write_local_atomic",
]

NO_LOGO = "no-logo"
Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), pixels, x1/y1 exclusive, as PIL's getbbox
BoxF = tuple[float, float, float, float]
RGB = tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty of a synthetic logo dataset. The defaults make a 12-brand set that a
    small CNN learns well above chance in minutes on a CPU at 96-128 px, but not perfectly."""

    num_brands: int = setting(12, "number of brand classes (plus the no-logo class)")
    images_per_brand: int = setting(150, "scenes per brand")
    no_logo_images: int = setting(300, "scenes without a mark (class 'no-logo'); 0 drops the class")
    confusable_fraction: float = setting(
        0.5, "fraction of brands in confusable pairs (two brands that differ only in colour, glyph or shape)")
    image_size: int = setting(256, "scene side in pixels (scenes are square unless size_jitter > 0)")
    size_jitter: float = setting(
        0.0, "width and height each drawn from image_size * [1 - j, 1 + j]: varied sizes and aspect ratios")
    min_logo_scale: float = setting(0.25, "smallest mark, as a fraction of the scene's shorter side")
    max_logo_scale: float = setting(0.6, "largest mark, as a fraction of the scene's shorter side")
    max_rotation: float = setting(25.0, "marks rotate by up to this many degrees either way")
    max_shear: float = setting(0.2, "horizontal shear of the mark, up to this factor either way")
    max_perspective: float = setting(0.2, "perspective tilt: a mark's far edge shrinks by up to this fraction")
    decoy_prob: float = setting(0.5, "probability that a no-logo scene shows the mark of a brand outside the dataset")
    plate_prob: float = setting(
        0.4, "probability that a mark sits on a plate (sign, label, shirt); no-logo scenes get plates as often")
    occlusion_prob: float = setting(0.3, "probability that an object covers part of the mark")
    max_occlusion: float = setting(0.4, "an occluder covers at most this fraction of the mark's width or height")
    clutter: int = setting(10, "mean number of clutter objects per scene")
    max_blur: float = setting(1.5, "defocus (box blur) radius up to this many pixels at 256 px, in 70% of scenes")
    max_noise: float = setting(10.0, "sensor noise standard deviation drawn from [0, max_noise], in 0-255 units")
    brightness_jitter: float = setting(0.25, "brightness offset drawn from [-j, j] of the full range")
    contrast_jitter: float = setting(0.3, "contrast factor drawn from [1 - j, 1 + j]")
    color_cast: float = setting(0.08, "per-channel gain drawn from [1 - c, 1 + c] (white balance)")
    uneven_light: float = setting(0.3, "light falls off across the scene by up to this fraction either way")
    jpeg_quality_min: int = setting(40, "lowest JPEG quality")
    jpeg_quality_max: int = setting(95, "highest JPEG quality")
    seed: int = setting(0, "scene seed: the same seed gives byte-identical images")
    brand_seed: int = setting(
        0, "brand seed: names, marks and confusable pairs (keep it, change seed: new scenes of the same brands)")

    @property
    def confusable_pairs(self) -> int:
        return int(self.confusable_fraction * self.num_brands) // 2

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.num_brands <= 5000:
            problems.append(f"num_brands must be within 1..5000, got {self.num_brands}")
        if self.images_per_brand < 0 or self.no_logo_images < 0:
            problems.append("images_per_brand and no_logo_images must be >= 0")
        if not 0 <= self.confusable_fraction <= 1:
            problems.append(f"confusable_fraction must be within [0, 1], got {self.confusable_fraction}")
        if not 32 <= self.image_size <= 8192:
            problems.append(f"image_size must be within 32..8192, got {self.image_size}")
        if not 0 <= self.size_jitter < 1:
            problems.append(f"size_jitter must be within [0, 1), got {self.size_jitter}")
        if not 0 < self.min_logo_scale <= self.max_logo_scale <= 0.9:
            problems.append("need 0 < min_logo_scale <= max_logo_scale <= 0.9, "
                            f"got {self.min_logo_scale}, {self.max_logo_scale}")
        for name in ("plate_prob", "occlusion_prob", "decoy_prob"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.max_occlusion <= 0.9:
            problems.append(f"max_occlusion must be within [0, 0.9], got {self.max_occlusion}")
        if not 0 <= self.max_perspective <= 0.6 or not 0 <= self.max_shear <= 1 or not 0 <= self.max_rotation <= 180:
            problems.append("need 0 <= max_perspective <= 0.6, 0 <= max_shear <= 1, 0 <= max_rotation <= 180")
        for name in ("clutter", "max_blur", "max_noise", "brightness_jitter", "color_cast", "uneven_light"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.contrast_jitter < 1:
            problems.append(f"contrast_jitter must be within [0, 1), got {self.contrast_jitter}")
        if not 1 <= self.jpeg_quality_min <= self.jpeg_quality_max <= 100:
            problems.append("need 1 <= jpeg_quality_min <= jpeg_quality_max <= 100, "
                            f"got {self.jpeg_quality_min}, {self.jpeg_quality_max}")
        if self.seed < 0 or self.brand_seed < 0:
            problems.append("seed and brand_seed must be >= 0 (they seed numpy's SeedSequence)")
        if problems:
            raise ValueError("invalid SyntheticConfig: " + "; ".join(problems))


# ------------------------------------------------------------------------------------------------
# Stroke glyphs: capital letters as polylines in a unit box (x right, y down), drawn with round
# joints and caps. Curves are polygons; at logo sizes that reads as a geometric typeface.

_GLYPHS: dict[str, tuple[tuple[tuple[float, float], ...], ...]] = {
    "A": (((0, 1), (0.5, 0), (1, 1)), ((0.22, 0.62), (0.78, 0.62))),
    "B": (((0, 0.5), (0, 0), (0.7, 0), (0.92, 0.12), (0.92, 0.38), (0.7, 0.5), (0, 0.5), (0, 1), (0.75, 1),
           (1, 0.86), (1, 0.64), (0.75, 0.5)),),
    "C": (((1, 0.15), (0.8, 0), (0.25, 0), (0, 0.25), (0, 0.75), (0.25, 1), (0.8, 1), (1, 0.85)),),
    "D": (((0, 0), (0, 1), (0.6, 1), (1, 0.7), (1, 0.3), (0.6, 0), (0, 0)),),
    "E": (((1, 0), (0, 0), (0, 1), (1, 1)), ((0, 0.5), (0.75, 0.5))),
    "F": (((1, 0), (0, 0), (0, 1)), ((0, 0.5), (0.75, 0.5))),
    "G": (((1, 0.15), (0.8, 0), (0.25, 0), (0, 0.25), (0, 0.75), (0.25, 1), (0.8, 1), (1, 0.8), (1, 0.55), (0.55, 0.55)),),
    "H": (((0, 0), (0, 1)), ((1, 0), (1, 1)), ((0, 0.5), (1, 0.5))),
    "I": (((0.5, 0), (0.5, 1)), ((0.2, 0), (0.8, 0)), ((0.2, 1), (0.8, 1))),
    "J": (((0.3, 0), (1, 0)), ((0.75, 0), (0.75, 0.8), (0.55, 1), (0.2, 1), (0, 0.8))),
    "K": (((0, 0), (0, 1)), ((1, 0), (0, 0.62)), ((0.32, 0.42), (1, 1))),
    "L": (((0, 0), (0, 1), (1, 1)),),
    "M": (((0, 1), (0, 0), (0.5, 0.6), (1, 0), (1, 1)),),
    "N": (((0, 1), (0, 0), (1, 1), (1, 0)),),
    "O": (((0.3, 0), (0.7, 0), (1, 0.3), (1, 0.7), (0.7, 1), (0.3, 1), (0, 0.7), (0, 0.3), (0.3, 0)),),
    "P": (((0, 1), (0, 0), (0.75, 0), (1, 0.2), (1, 0.38), (0.75, 0.55), (0, 0.55)),),
    "Q": (((0.3, 0), (0.7, 0), (1, 0.3), (1, 0.7), (0.7, 1), (0.3, 1), (0, 0.7), (0, 0.3), (0.3, 0)), ((0.6, 0.7), (1, 1))),
    "R": (((0, 1), (0, 0), (0.75, 0), (1, 0.2), (1, 0.38), (0.75, 0.55), (0, 0.55)), ((0.45, 0.55), (1, 1))),
    "S": (((1, 0.12), (0.8, 0), (0.2, 0), (0, 0.15), (0, 0.36), (0.2, 0.5), (0.8, 0.5), (1, 0.64), (1, 0.85),
           (0.8, 1), (0.2, 1), (0, 0.88)),),
    "T": (((0, 0), (1, 0)), ((0.5, 0), (0.5, 1))),
    "U": (((0, 0), (0, 0.75), (0.25, 1), (0.75, 1), (1, 0.75), (1, 0)),),
    "V": (((0, 0), (0.5, 1), (1, 0)),),
    "W": (((0, 0), (0.25, 1), (0.5, 0.4), (0.75, 1), (1, 0)),),
    "X": (((0, 0), (1, 1)), ((1, 0), (0, 1))),
    "Y": (((0, 0), (0.5, 0.5), (1, 0)), ((0.5, 0.5), (0.5, 1))),
    "Z": (((0, 0), (1, 0), (0, 1), (1, 1)),),
}
# A look-alike for every letter: the glyph a "glyph" confusable variant switches to.
_SIMILAR_GLYPH = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "HDGBFECATUXINMQROPZIVYMKVS"))
_VOWELS = "aeiou"
_ONSETS = ("b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "x",
           "br", "tr", "kr", "st", "pl", "gr")
_CODAS = ("n", "r", "s", "x", "l", "m")

_SHAPES = ("circle", "polygon", "star", "shield", "rounded", "square")
# The shape a "shape" confusable variant switches to: a near neighbour, never a different family.
_SIMILAR_SHAPE = {"circle": ("polygon", 8), "square": ("rounded", 0), "rounded": ("square", 0), "shield": ("polygon", 5)}
_LAYOUTS = ("badge", "ring", "split", "wordmark")
_SYMBOLS = ("chevrons", "bars", "star", "dots", "wave")
_SYMBOL_PARAM = {"chevrons": (1, 3), "bars": (2, 4), "star": (4, 7), "dots": (2, 4), "wave": (1, 3)}


@dataclasses.dataclass(frozen=True)
class Brand:
    """A brand's mark, fully specified (hashable, so renders are cached per brand and size)."""

    index: int
    name: str
    layout: str  # badge | ring | split | wordmark
    shape: str  # circle | polygon | star | shield | rounded | square | pill (wordmarks)
    shape_param: int  # sides of a polygon, points of a star
    colors: tuple[RGB, RGB, RGB]  # primary, secondary, accent
    glyph: str  # letters drawn inside ("" when the mark carries a symbol)
    symbol: str  # chevrons | bars | star | dots | wave, or "" when it carries letters
    symbol_param: int
    bands: int  # colour bands of a "split" mark
    band_angle: int  # degrees
    outline: bool  # badge with an accent rim
    variant_of: str = ""  # the brand this one imitates ("" for an original)
    differs_in: str = ""  # colour | glyph | shape

    @property
    def aspect(self) -> float:
        """Width over height of the mark."""
        return 2.4 if self.layout == "wordmark" else 1.0


# ------------------------------------------------------------------------------------------------
# Brands


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def _hue(rgb: RGB) -> tuple[float, float, float]:
    return colorsys.rgb_to_hsv(*(c / 255 for c in rgb))


def _make_name(rng: np.random.Generator, prefix: str, taken: set[str]) -> str:
    """A readable lower-case name starting with `prefix`, not in `taken`: 'zentro', 'kalimo'."""
    for attempt in range(10_000):
        target = int(rng.integers(4, 9)) + attempt // 1000  # longer names once short ones run out
        name = prefix
        while len(name) < target:
            if not name and rng.random() < 0.2:
                name += _VOWELS[int(rng.integers(5))]
            elif not name or name[-1] in _VOWELS:
                name += _ONSETS[int(rng.integers(len(_ONSETS)))]
            else:
                name += _VOWELS[int(rng.integers(5))]
        if name[-1] not in _VOWELS and (name[-1] not in _CODAS or name[-2] not in _VOWELS):  # no "...kr", "...b"
            name += _VOWELS[int(rng.integers(5))]
        elif name[-1] in _VOWELS and rng.random() < 0.3:
            name += _CODAS[int(rng.integers(len(_CODAS)))]
        if name not in taken:
            return name
    raise RuntimeError(f"could not find a new brand name starting with {prefix!r}")


def _palette(rng: np.random.Generator) -> tuple[RGB, RGB, RGB]:
    h, s, v = rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.55, 0.95)
    primary = _hsv(h, s, v)
    if rng.random() < 0.5:  # white or near-black on colour, the commonest logo scheme
        secondary = (245, 245, 240) if v < 0.8 or rng.random() < 0.6 else (25, 25, 30)
    else:
        secondary = _hsv(h + rng.uniform(0.3, 0.7), rng.uniform(0.5, 1.0), rng.uniform(0.75, 1.0))
    accents = ((250, 250, 250), (20, 20, 20), (235, 190, 40), _hsv(h + rng.uniform(0.15, 0.85), 0.9, 0.9))
    accent = accents[int(rng.integers(4))]
    return primary, secondary, accent


def _random_brand(rng: np.random.Generator, index: int, taken: set[str]) -> Brand:
    name = _make_name(rng, "", taken)
    layout = _LAYOUTS[int(rng.choice(4, p=[0.35, 0.25, 0.2, 0.2]))]
    if layout == "wordmark":
        shape, param = ("pill", "rounded", "square")[int(rng.integers(3))], 0
    else:
        shape = _SHAPES[int(rng.integers(len(_SHAPES)))]
        param = {"polygon": int(rng.integers(3, 8)), "star": int(rng.integers(5, 8))}.get(shape, 0)
    use_symbol = layout != "wordmark" and rng.random() < 0.3
    symbol = _SYMBOLS[int(rng.integers(len(_SYMBOLS)))] if use_symbol else ""
    lo, hi = _SYMBOL_PARAM.get(symbol, (0, 0))
    glyph = "" if use_symbol else name[: (int(rng.integers(2, 4)) if layout == "wordmark" else 1)].upper()
    return Brand(
        index=index, name=name, layout=layout, shape=shape, shape_param=param, colors=_palette(rng),
        glyph=glyph, symbol=symbol, symbol_param=int(rng.integers(lo, hi)) if symbol else 0,
        bands=int(rng.integers(2, 4)), band_angle=int(rng.choice([0, 45, 90, 135])), outline=bool(rng.random() < 0.4),
    )


def _variant(base: Brand, rng: np.random.Generator, index: int, kind: str, taken: set[str]) -> Brand:
    """`base` with exactly one thing changed: its primary colour, its glyph or its shape."""
    changes: dict = {}
    if kind == "colour":
        h, s, v = _hue(base.colors[0])
        # a neighbouring hue (red -> orange, blue -> violet), turned just far enough to move the
        # primary by 80 RGB units: hue steps differ in visible size around the colour wheel
        sign = 1 if rng.random() < 0.5 else -1
        s, v = max(s, 0.6), max(v, 0.55)
        shift = next((d for d in np.arange(0.04, 0.3, 0.01)
                      if np.linalg.norm(np.subtract(_hsv(h + sign * d, s, v), base.colors[0])) >= 80), 0.3)
        changes["colors"] = (_hsv(h + sign * shift, s, v), *base.colors[1:])
    elif kind == "glyph":
        if base.glyph:
            changes["glyph"] = _SIMILAR_GLYPH[base.glyph[0]] + base.glyph[1:]
        else:
            lo, hi = _SYMBOL_PARAM[base.symbol]
            changes["symbol_param"] = base.symbol_param + 1 if base.symbol_param + 1 < hi else base.symbol_param - 1
    elif kind == "shape":
        if base.shape in _SIMILAR_SHAPE:
            changes["shape"], changes["shape_param"] = _SIMILAR_SHAPE[base.shape]
        elif base.shape == "pill":
            changes["shape"] = "rounded"
        else:  # polygon or star: one more (or one fewer) corner
            top = 8 if base.shape == "polygon" else 7
            changes["shape_param"] = base.shape_param + 1 if base.shape_param < top else base.shape_param - 1
    else:
        raise ValueError(f"unknown variant kind {kind!r}")
    glyph = changes.get("glyph", base.glyph)
    name = _make_name(rng, glyph.lower(), taken)  # its letters still spell the start of its name
    return dataclasses.replace(base, index=index, name=name, variant_of=base.name, differs_in=kind, **changes)


class _Traits:
    """The shape, colour scheme and inner element of the brands so far, as arrays, to count in
    how many of those three a new brand differs from each earlier one (vectorised: the check
    runs for every draw of every brand, thousands of brands included)."""

    def __init__(self) -> None:
        self.codes: dict[object, int] = {}
        self.rows: list[tuple[int, float, float, int, int]] = []

    def _code(self, key: object) -> int:
        return self.codes.setdefault(key, len(self.codes))

    def _row(self, brand: Brand) -> tuple[int, float, float, int, int]:
        h, _, v = _hue(brand.colors[0])
        return (self._code((brand.layout, brand.shape, brand.shape_param)), h, v, self._code(brand.colors[1]),
                self._code((brand.glyph[:1], brand.symbol)))

    def min_differences(self, brand: Brand, table: np.ndarray) -> int:
        """Over the brands in `table` (a snapshot of `table()`): the fewest traits `brand` differs in."""
        if not len(table):
            return 3
        shape, h, v, second, inner = self._row(brand)
        gap = np.abs(table[:, 1] - h)
        same_colour = (np.minimum(gap, 1 - gap) < 0.12) & (np.abs(table[:, 2] - v) < 0.3) & (table[:, 3] == second)
        diffs = (table[:, 0] != shape).astype(int) + ~same_colour + (table[:, 4] != inner)
        return int(diffs.min())

    def add(self, brand: Brand) -> None:
        self.rows.append(self._row(brand))

    def table(self) -> np.ndarray:
        return np.asarray(self.rows, np.float64).reshape(-1, 5)


_VARIANT_KINDS = ("colour", "glyph", "shape")


@functools.lru_cache(maxsize=64)
def make_brands(num_brands: int, confusable_pairs: int = 0, brand_seed: int = 0) -> tuple[Brand, ...]:
    """The brands of a dataset. For pair p < confusable_pairs, brand 2p+1 imitates brand 2p and
    differs in colour, glyph and shape in turn; every other brand differs from all earlier
    ones in at least two of those. Brand i depends only on brands 0..i (prefix-stable)."""
    if not 0 <= confusable_pairs <= num_brands // 2:
        raise ValueError(f"confusable_pairs must be within 0..{num_brands // 2}, got {confusable_pairs}")
    brands: list[Brand] = []
    traits = _Traits()
    taken: set[str] = {NO_LOGO}
    for i in range(num_brands):
        rng = np.random.default_rng([brand_seed, 0, i])
        if i % 2 == 1 and i // 2 < confusable_pairs:
            brand = _variant(brands[i - 1], rng, i, _VARIANT_KINDS[(i // 2) % 3], taken)
        else:
            # Differ from every earlier brand in two traits; past a few hundred brands that space
            # runs out, so the demand drops to one trait, then to a new name only.
            table = traits.table()
            for attempt in range(60):
                brand = _random_brand(rng, i, taken)
                if traits.min_differences(brand, table) >= (2 if attempt < 30 else 1):
                    break
        brands.append(brand)
        traits.add(brand)
        taken.add(brand.name)
    return tuple(brands)


def brands(config: SyntheticConfig) -> tuple[Brand, ...]:
    """The brands of `config`, in brand-index order (`make_brands` with its settings)."""
    return make_brands(config.num_brands, config.confusable_pairs, config.brand_seed)


def class_names(config: SyntheticConfig) -> list[str]:
    """Class names in sorted order, as an ImageFolder reader lists the written folders."""
    names = [b.name for b in brands(config)]
    return sorted(names + ([NO_LOGO] if config.no_logo_images else []))


def class_counts(config: SyntheticConfig) -> dict[str, int]:
    return {c: config.no_logo_images if c == NO_LOGO else config.images_per_brand for c in class_names(config)}


# ------------------------------------------------------------------------------------------------
# Drawing


def _regular(n: int, cx: float, cy: float, rx: float, ry: float, start: float = -90.0) -> list[tuple[float, float]]:
    return [(cx + rx * math.cos(math.radians(start + k * 360 / n)), cy + ry * math.sin(math.radians(start + k * 360 / n)))
            for k in range(n)]


def _star(n: int, cx: float, cy: float, rx: float, ry: float, inner: float = 0.48) -> list[tuple[float, float]]:
    pts = []
    for k in range(2 * n):
        r = 1.0 if k % 2 == 0 else inner
        a = math.radians(-90 + k * 180 / n)
        pts.append((cx + rx * r * math.cos(a), cy + ry * r * math.sin(a)))
    return pts


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, param: int, box: BoxF, fill) -> None:
    x0, y0, x1, y1 = box
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "polygon":
        # odd polygons stand on a flat base; even ones are turned to sit on a side too
        draw.polygon(_regular(param, cx, cy, rx, ry, -90.0 if param % 2 else -90.0 + 180 / param), fill=fill)
    elif shape == "star":
        draw.polygon(_star(param, cx, cy, rx, ry), fill=fill)
    elif shape == "shield":
        pts = [(x0, y0), (x1, y0), (x1, y0 + 0.5 * (y1 - y0))]
        pts += [(cx + rx * math.cos(t), y0 + 0.5 * (y1 - y0) + 0.5 * (y1 - y0) * math.sin(t))
                for t in np.linspace(0.15, math.pi - 0.15, 9)]
        pts += [(x0, y0 + 0.5 * (y1 - y0))]
        draw.polygon(pts, fill=fill)
    elif shape == "rounded":
        draw.rounded_rectangle(box, radius=0.25 * min(x1 - x0, y1 - y0), fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "pill":
        draw.rounded_rectangle(box, radius=0.5 * min(x1 - x0, y1 - y0), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _inset(box: BoxF, f: float) -> BoxF:
    x0, y0, x1, y1 = box
    dx, dy = f * (x1 - x0), f * (y1 - y0)
    return (x0 + dx, y0 + dy, x1 - dx, y1 - dy)


def _polyline(draw: ImageDraw.ImageDraw, pts: list[tuple[float, float]], fill, width: float) -> None:
    w = max(1, round(width))
    draw.line(pts, fill=fill, width=w, joint="curve")
    for x, y in (pts[0], pts[-1]):  # round caps
        draw.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=fill)


def _draw_letters(draw: ImageDraw.ImageDraw, letters: str, box: BoxF, fill, width: float) -> None:
    """Stroke letters side by side, centred in `box` (letter cells are 0.72 wide per unit high)."""
    x0, y0, x1, y1 = box
    h = y1 - y0
    cell = min(0.72 * h, (x1 - x0) / max(1, len(letters)) / 1.3)
    h = min(h, cell / 0.72)
    gap = 0.3 * cell
    total = len(letters) * cell + (len(letters) - 1) * gap
    left, top = (x0 + x1 - total) / 2, (y0 + y1 - h) / 2
    for k, letter in enumerate(letters):
        lx = left + k * (cell + gap)
        for stroke in _GLYPHS[letter]:
            _polyline(draw, [(lx + px * cell, top + py * h) for px, py in stroke], fill, width)


def _draw_symbol(draw: ImageDraw.ImageDraw, symbol: str, param: int, box: BoxF, fill, width: float) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if symbol == "chevrons":
        step = h / (param + 1.5)
        for k in range(param):
            y = y0 + step * (k + 1.2)
            pts = [(x0 + 0.1 * w, y + 0.5 * step), (cx, y - 0.3 * step), (x1 - 0.1 * w, y + 0.5 * step)]
            _polyline(draw, pts, fill, width)
    elif symbol == "bars":
        bw = w / (2 * param - 1)
        for k in range(param):
            top = y0 + h * (0.55 - 0.45 * (k + 1) / param)
            draw.rectangle((x0 + 2 * k * bw, top, x0 + (2 * k + 1) * bw, y1), fill=fill)
    elif symbol == "star":
        draw.polygon(_star(param, cx, cy, w / 2, h / 2, inner=0.42), fill=fill)
    elif symbol == "dots":
        r = min(w / (2.6 * param), h / 3)
        for k in range(param):
            x = x0 + w * (k + 0.5) / param
            y = cy + (0.25 * h if k % 2 else -0.05 * h)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif symbol == "wave":
        t = np.linspace(0, 1, 8 * param + 1)
        _polyline(draw, [(x0 + w * u, cy + 0.3 * h * math.sin(2 * math.pi * param * u)) for u in t], fill, width)
    else:
        raise ValueError(f"unknown symbol {symbol!r}")


def _paint_mark(brand: Brand, width: int, height: int) -> Image.Image:
    """The mark at `width` x `height`, aliased (callers supersample)."""
    primary, secondary, accent = brand.colors
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    s = min(width, height)
    box = (0.03 * width, 0.03 * height, 0.97 * width, 0.97 * height)
    stroke = 0.085 * s
    inner_colour = secondary
    if brand.layout == "badge":
        if brand.outline:
            _draw_shape(draw, brand.shape, brand.shape_param, box, accent)
            _draw_shape(draw, brand.shape, brand.shape_param, _inset(box, 0.07), primary)
        else:
            _draw_shape(draw, brand.shape, brand.shape_param, box, primary)
    elif brand.layout == "ring":
        _draw_shape(draw, brand.shape, brand.shape_param, box, primary)
        _draw_shape(draw, brand.shape, brand.shape_param, _inset(box, 0.14), secondary)
        inner_colour = primary
    elif brand.layout == "split":
        mask = Image.new("L", (width, height), 0)
        _draw_shape(ImageDraw.Draw(mask), brand.shape, brand.shape_param, box, 255)
        bands = Image.new("RGB", (2 * width, 2 * height), primary)
        bd = ImageDraw.Draw(bands)
        step = 2 * height / brand.bands
        for k in range(1, brand.bands, 2):
            bd.rectangle((0, k * step, 2 * width, (k + 1) * step), fill=secondary)
        bands = bands.rotate(brand.band_angle, resample=Image.Resampling.NEAREST)
        img.paste(bands.crop((width // 2, height // 2, width // 2 + width, height // 2 + height)), (0, 0), mask)
        inner_colour = accent
    elif brand.layout == "wordmark":
        _draw_shape(draw, brand.shape, 0, box, primary)
        if brand.outline:
            bar_y = 0.8 * height
            draw.rectangle((0.2 * width, bar_y, 0.8 * width, bar_y + 0.06 * height), fill=accent)
    else:
        raise ValueError(f"unknown layout {brand.layout!r}")

    if brand.layout == "wordmark":
        inner = (0.12 * width, 0.2 * height, 0.88 * width, 0.72 * height if brand.outline else 0.8 * height)
        _draw_letters(draw, brand.glyph, inner, inner_colour, 0.11 * height)
    else:
        # polygons and stars leave less room inside than discs and squares
        f = {"star": 0.33, "polygon": 0.28 if brand.shape_param < 5 else 0.26, "shield": 0.26}.get(brand.shape, 0.25)
        inner = _inset(box, f)
        if brand.shape in ("polygon", "star") and brand.shape_param == 3:
            inner = (inner[0], inner[1] + 0.12 * height, inner[2], inner[3] + 0.08 * height)
        elif brand.shape == "shield":
            inner = (inner[0], inner[1] - 0.05 * height, inner[2], inner[3] - 0.05 * height)
        if brand.glyph:
            _draw_letters(draw, brand.glyph, inner, inner_colour, stroke)
        else:
            _draw_symbol(draw, brand.symbol, brand.symbol_param, inner, inner_colour, stroke)
    return img


def render_mark(brand: Brand, size: int) -> Image.Image:
    """The brand's mark as an antialiased RGBA image on transparency; `size` is its longer side
    (wordmarks are 2.4 times wider than tall). The mark fills the middle 94% of the image."""
    if size < 4:
        raise ValueError(f"a mark needs at least 4 pixels, got size={size}")
    return _render_cached(brand, size).copy()


@functools.lru_cache(maxsize=512)
def _render_cached(brand: Brand, size: int) -> Image.Image:
    width, height = size, max(2, round(size / brand.aspect))
    ss = 4 if size <= 256 else 2  # supersampling: PIL draws polygons and lines without antialiasing
    big = _paint_mark(brand, width * ss, height * ss)
    return big.resize((width, height), Image.Resampling.LANCZOS)


# ------------------------------------------------------------------------------------------------
# Scenes. Everything is drawn at 1x straight onto the scene (ImageDraw in "RGBA" mode blends
# translucent fills); only the mark is rendered antialiased. Scenes are downscaled for training
# and scanning anyway, which antialiases the rest, and this keeps a 256 px scene at a few ms.


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _colour(rng: np.random.Generator, sat: tuple[float, float] = (0.0, 0.8), val: tuple[float, float] = (0.1, 0.95)) -> RGB:
    return _hsv(rng.random(), _u(rng, *sat), _u(rng, *val))


def _ramp(t: np.ndarray, colours: list[RGB]) -> Image.Image:
    """An RGB image from t (uint8) through a piecewise-linear colour ramp (a palette lookup)."""
    stops = np.linspace(0, 255, len(colours))
    cols = np.asarray(colours, np.float32)
    lut = np.stack([np.interp(np.arange(256), stops, cols[:, c]) for c in range(3)], axis=-1)
    img = Image.fromarray(t, mode="P")
    img.putpalette(np.round(lut).astype(np.uint8).tobytes())
    return img.convert("RGB")


def _to_u8(t: np.ndarray) -> np.ndarray:
    lo, hi = float(t.min()), float(t.max())
    return ((t - lo) * (255.0 / max(hi - lo, 1e-6))).astype(np.uint8)


def _gradient(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A linear ramp in a random direction, float32 in [0, 1]."""
    angle = _u(rng, 0, 2 * math.pi)
    xs = np.arange(width, dtype=np.float32) * (math.cos(angle) / width)
    ys = np.arange(height, dtype=np.float32) * (math.sin(angle) / height)
    t = xs[None, :] + ys[:, None]
    lo, hi = float(t.min()), float(t.max())
    return (t - lo) / max(hi - lo, 1e-6)


def _fractal_noise(rng: np.random.Generator, width: int, height: int, base_cells: int, octaves: int) -> np.ndarray:
    """Value noise summed over octaves, uint8: clouds, foliage, stone, fabric. The octaves are
    summed on the finest grid and only the sum is resized to the scene."""
    fine = base_cells * 2 ** (octaves - 1)
    aspect = height / width
    gw, gh = fine + 1, max(2, round(fine * aspect) + 1)
    total = np.zeros((gh, gw), np.float32)
    amp, cells = 1.0, base_cells
    for _ in range(octaves):
        grid = rng.random((max(2, round(cells * aspect) + 1), cells + 1), dtype=np.float32)
        total += amp * np.asarray(Image.fromarray(grid, mode="F").resize((gw, gh), Image.Resampling.BICUBIC))
        amp *= 0.55
        cells *= 2
    big = Image.fromarray(total, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    return _to_u8(np.asarray(big))


BACKGROUND_KINDS = ("gradient", "texture", "horizon", "bricks", "bokeh")
_BACKGROUND_WEIGHTS = (0.2, 0.3, 0.2, 0.15, 0.15)


def _background(rng: np.random.Generator, width: int, height: int,
                kinds: tuple[str, ...] = BACKGROUND_KINDS) -> Image.Image:
    """A scene's backdrop, one of `kinds` (their usual weights, renormalised): a pool of kinds
    lets one dataset's backgrounds be disjoint from another's (lxn.data.realmarks)."""
    weights = np.array([w if k in kinds else 0.0 for k, w in zip(BACKGROUND_KINDS, _BACKGROUND_WEIGHTS)])
    kind = int(rng.choice(5, p=weights / weights.sum()))
    if kind == 0:  # gradient: studio wall, sky, painted surface
        return _ramp(_to_u8(_gradient(rng, width, height)), [_colour(rng), _colour(rng)])
    if kind == 1:  # photo-like texture
        t = _fractal_noise(rng, width, height, int(rng.integers(2, 6)), int(rng.integers(3, 6)))
        if rng.random() < 0.4:  # foliage, camouflage: posterised
            t = (np.round(t / 85.0) * 85).astype(np.uint8)
        return _ramp(t, [_colour(rng, val=(0.05, 0.6)), _colour(rng), _colour(rng, val=(0.5, 1.0))])
    if kind == 2:  # horizon: sky over textured ground
        sky = [_colour(rng, (0, 0.5), (0.6, 1.0)), _colour(rng, (0, 0.5), (0.5, 1.0))]
        img = _ramp(_to_u8(_gradient(rng, width, height)), sky)
        horizon = int(height * _u(rng, 0.3, 0.7))
        ground = _ramp(_fractal_noise(rng, width, height - horizon, int(rng.integers(4, 10)), 3),
                       [_colour(rng, val=(0.1, 0.5)), _colour(rng, val=(0.3, 0.8))])
        img.paste(ground, (0, horizon))
        return img
    if kind == 3:  # bricks, tiles, planks
        img = Image.new("RGB", (width, height), _colour(rng, val=(0.2, 0.8)))
        draw = ImageDraw.Draw(img)
        bw = int(rng.integers(12, 64)) * width // 256 + 4
        bh = int(rng.integers(6, 32)) * height // 256 + 3
        base = _colour(rng, (0.2, 0.7), (0.3, 0.9))
        shades = rng.uniform(0.75, 1.2, (height // bh + 1, width // bw + 2))
        for row in range(height // bh + 1):
            shift = (row % 2) * bw // 2
            for col in range(-1, width // bw + 1):
                c = tuple(min(255, int(v * shades[row, col + 1])) for v in base)
                x = col * bw + shift
                draw.rectangle((x + 1, row * bh + 1, x + bw - 2, row * bh + bh - 2), fill=c)
        return img
    # bokeh: out-of-focus lights over a dark gradient, drawn small and enlarged (soft for free)
    sw, sh = max(8, width // 4), max(8, height // 4)
    small = _ramp(_to_u8(_gradient(rng, sw, sh)), [_colour(rng, val=(0.0, 0.4)), _colour(rng, val=(0.1, 0.6))])
    draw = ImageDraw.Draw(small, "RGBA")
    for _ in range(int(rng.integers(8, 30))):
        r = _u(rng, 0.02, 0.1) * sw
        x, y = _u(rng, 0, sw), _u(rng, 0, sh)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(*_colour(rng, (0.2, 0.9), (0.7, 1.0)), int(rng.integers(60, 180))))
    return small.resize((width, height), Image.Resampling.BICUBIC)


def _random_letters(rng: np.random.Generator, n: int) -> str:
    return "".join(chr(ord("A") + int(k)) for k in rng.integers(0, 26, n))


def _clutter(rng: np.random.Generator, scene: Image.Image, count: int) -> None:
    """Objects in front of the background: boxes, round things, poles, polygons, emblem-like
    distractors (brand shapes, never with a brand's inner element), stroke text, striped cloth."""
    width, height = scene.size
    draw = ImageDraw.Draw(scene, "RGBA")
    s = min(width, height)
    for _ in range(count):
        kind = int(rng.choice(7, p=[0.22, 0.14, 0.14, 0.12, 0.14, 0.14, 0.10]))
        alpha = 255 if rng.random() < 0.7 else int(rng.integers(90, 220))
        fill = (*_colour(rng), alpha)
        x, y = _u(rng, -0.1, 1.0) * width, _u(rng, -0.1, 1.0) * height
        w, h = _u(rng, 0.05, 0.45) * s, _u(rng, 0.05, 0.45) * s
        if kind == 0:  # boxes: furniture, windows, buildings; some with a shaded side
            draw.rectangle((x, y, x + w, y + h), fill=fill)
            if rng.random() < 0.5:
                d = _u(rng, 0.1, 0.3) * w
                shade = tuple(int(c * 0.6) for c in fill[:3])
                side_face = [(x + w, y), (x + w + d, y - 0.5 * d), (x + w + d, y + h - 0.5 * d), (x + w, y + h)]
                draw.polygon(side_face, fill=(*shade, alpha))
        elif kind == 1:  # round things
            draw.ellipse((x, y, x + w, y + h), fill=fill)
        elif kind == 2:  # poles, cables, edges
            end = (x + _u(rng, -0.6, 0.6) * s, y + _u(rng, -0.6, 0.6) * s)
            draw.line((x, y, *end), fill=fill, width=max(1, int(_u(rng, 0.004, 0.04) * s)))
        elif kind == 3:  # irregular polygons
            n = int(rng.integers(3, 7))
            draw.polygon([(x + _u(rng, 0, w), y + _u(rng, 0, h)) for _ in range(n)], fill=fill)
        elif kind == 4:  # emblem-like distractors
            shape = _SHAPES[int(rng.integers(len(_SHAPES)))]
            param = int(rng.integers(3, 8))
            side = min(w, h)
            _draw_shape(draw, shape, param, (x, y, x + side, y + side), fill)
            if rng.random() < 0.5:
                _draw_shape(draw, shape, param, _inset((x, y, x + side, y + side), 0.15), (*_colour(rng), alpha))
        elif kind == 5:  # stroke text: signage, captions, headlines
            n = int(rng.integers(2, 8))
            th = _u(rng, 0.03, 0.12) * s
            _draw_letters(draw, _random_letters(rng, n), (x, y, x + n * th, y + th), fill, max(1.0, 0.12 * th))
        else:  # striped cloth, awnings
            step = max(2.0, _u(rng, 0.02, 0.08) * s)
            other = (*_colour(rng), alpha)
            draw.rectangle((x, y, x + w, y + h), fill=fill)
            for k in range(int(w // (2 * step)) + 1):
                x0 = x + 2 * k * step
                draw.rectangle((x0, y, min(x + w, x0 + step), y + h), fill=other)


def _homography(rng: np.random.Generator, config: SyntheticConfig, w: float, h: float) -> np.ndarray:
    """Mark coordinates (a w x h box) -> scene coordinates around the origin: perspective tilt,
    shear, rotation, in that order, about the mark's centre."""
    centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]], np.float64)
    tx, ty = (_u(rng, -config.max_perspective, config.max_perspective) for _ in range(2))
    persp = np.array([[1, 0, 0], [0, 1, 0], [tx / (w / 2), 0.5 * ty / (h / 2), 1]], np.float64)
    shear = np.array([[1, _u(rng, -config.max_shear, config.max_shear), 0], [0, 1, 0], [0, 0, 1]], np.float64)
    a = math.radians(_u(rng, -config.max_rotation, config.max_rotation))
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]], np.float64)
    return rot @ shear @ persp @ centre


def _project(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ H.T
    return p[:, :2] / p[:, 2:3]


def _translate(dx: float, dy: float) -> np.ndarray:
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64)


def _rounded_rect(x0: float, y0: float, x1: float, y1: float, r: float) -> np.ndarray:
    """Outline points of a rounded rectangle (corner arcs of 4 segments), for projection."""
    pts = []
    for cx, cy, start in ((x1 - r, y0 + r, -90), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90), (x0 + r, y0 + r, 180)):
        for k in range(5):
            a = math.radians(start + 22.5 * k)
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return np.asarray(pts, np.float64)


def _place(rng: np.random.Generator, config: SyntheticConfig, scene: Image.Image,
           render: Callable[[float], Image.Image] | None, aspect: float) -> Box:
    """Paste a mark at a random scale and pose, sometimes on a plate (sign, label, shirt) with a
    soft shadow. `render(side)` gives the mark (RGBA, `aspect` wide over high, any size from side
    to 2 x side: it is resampled); with `render=None` only the plate goes in, if any, with some
    text on it half the time. Returns the box of the mark as pasted (or where it would be)."""
    width, height = scene.size
    side = min(width, height) * _u(rng, config.min_logo_scale, config.max_logo_scale)
    mw, mh = side, side / aspect
    H = _homography(rng, config, mw, mh)
    plate = None
    if rng.random() < config.plate_prob:
        mx, my = mw * _u(rng, 0.08, 0.35), mh * _u(rng, 0.08, 0.35)
        if rng.random() < 0.3:  # wider: a banner or a shop sign
            mx += mw * _u(rng, 0.2, 0.6)
        plate = _rounded_rect(-mx, -my, mw + mx, mh + my, _u(rng, 0.0, 0.2) * min(mw, mh))
    box_pts = np.array([[0, 0], [mw, 0], [mw, mh], [0, mh]], np.float64)
    outer = plate if plate is not None else box_pts
    corners = _project(H, outer)
    span = corners.max(0) - corners.min(0)
    fit = min(1.0, 0.98 * width / span[0], 0.98 * height / span[1])
    if fit < 1.0:  # a big plate or a steep tilt: shrink the whole thing until it fits
        H = np.diag([fit, fit, 1.0]) @ H
        corners = _project(H, outer)
    lo, hi = corners.min(0), corners.max(0)
    cx = _u(rng, -lo[0], width - hi[0]) if width - hi[0] > -lo[0] else (width - hi[0] - lo[0]) / 2
    cy = _u(rng, -lo[1], height - hi[1]) if height - hi[1] > -lo[1] else (height - hi[1] - lo[1]) / 2
    H = _translate(cx, cy) @ H

    draw = ImageDraw.Draw(scene, "RGBA")
    if plate is not None:
        pts = [tuple(p) for p in _project(H, plate)]
        off = 0.03 * side
        draw.polygon([(x + off, y + off) for x, y in pts], fill=(0, 0, 0, int(rng.integers(40, 110))))  # shadow
        colour = _colour(rng, (0.0, 0.3), (0.7, 1.0)) if rng.random() < 0.6 else _colour(rng)
        draw.polygon(pts, fill=colour)
        if rng.random() < 0.4:
            draw.line(pts + pts[:1], fill=_colour(rng), width=max(1, round(0.03 * side)), joint="curve")
        if render is None and rng.random() < 0.5:  # an empty sign still carries some text
            letters = _random_letters(rng, int(rng.integers(2, 6)))
            cell, ink = mw / (1.3 * len(letters)), _colour(rng)
            for k, letter in enumerate(letters):
                for stroke in _GLYPHS[letter]:
                    unit = np.asarray(stroke, np.float64) * (0.72 * cell, 0.4 * mh) + (k * 1.3 * cell, 0.3 * mh)
                    draw.line([tuple(p) for p in _project(H, unit)], fill=ink, width=max(1, round(0.05 * mh)),
                              joint="curve")
    corners = _project(H, box_pts)
    ox, oy = (max(0, int(math.floor(v))) for v in corners.min(0))
    ex, ey = (int(math.ceil(v)) + 1 for v in corners.max(0))
    ex, ey = min(width, ex), min(height, ey)
    if render is None:
        return (ox, oy, ex, ey)
    mark = render(side)
    to_mark = np.diag([mw / mark.width, mh / mark.height, 1.0])  # mark pixels -> the mw x mh box
    inv = np.linalg.inv(_translate(-ox, -oy) @ H @ to_mark)
    inv /= inv[2, 2]
    warped = mark.transform((max(1, ex - ox), max(1, ey - oy)), Image.Transform.PERSPECTIVE, tuple(inv.ravel()[:8]),
                            Image.Resampling.BICUBIC)
    scene.paste(warped, (ox, oy), warped)
    bbox = warped.getchannel("A").point(lambda v: 255 if v >= 64 else 0).getbbox()
    if bbox is None:  # nothing opaque enough: a mark of a pixel or two
        return (ox, oy, min(width, ox + 1), min(height, oy + 1))
    return (ox + bbox[0], oy + bbox[1], ox + bbox[2], oy + bbox[3])


def _base_size(side: float) -> int:
    """A cached render size for a mark shown at `side` pixels: the next rung up (resampling
    by at most 2x keeps bicubic warping free of aliasing)."""
    return next((b for b in (64, 128, 256, 512, 1024, 2048) if b >= side), math.ceil(side))


@functools.lru_cache(maxsize=64)
def _brand_table(num_brands: int, confusable_pairs: int, brand_seed: int) -> tuple[_Traits, np.ndarray]:
    traits = _Traits()
    for brand in make_brands(num_brands, confusable_pairs, brand_seed):
        traits.add(brand)
    return traits, traits.table()


def _decoy(rng: np.random.Generator, config: SyntheticConfig) -> Brand | None:
    """A brand outside the dataset (two traits away from every brand in it): no-logo photos show
    logos nobody asked about. None if no such design turns up (datasets of thousands of brands)."""
    traits, table = _brand_table(config.num_brands, config.confusable_pairs, config.brand_seed)
    for _ in range(20):
        decoy = _random_brand(rng, -1, set())
        if traits.min_differences(decoy, table) >= 2:
            return decoy
    return None


def _render_once(brand: Brand, side: float) -> Image.Image:
    """A mark rendered for one use (2x supersampled, not cached): decoys are all different."""
    width = max(4, math.ceil(side))
    height = max(2, round(width / brand.aspect))
    return _paint_mark(brand, 2 * width, 2 * height).resize((width, height), Image.Resampling.BOX)


def _occlude(rng: np.random.Generator, config: SyntheticConfig, scene: Image.Image, backdrop: Image.Image,
             box: Box) -> None:
    """Cover up to `max_occlusion` of the box's width or height from one side: a hand, a pole,
    a passer-by; flat colour or a piece of `backdrop` (the scene before the mark went in, so an
    occluder never carries a copy of the mark)."""
    if config.max_occlusion <= 0:
        return
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    f = _u(rng, min(0.1, config.max_occlusion), config.max_occlusion)
    reach = 0.6 * max(w, h)
    side = int(rng.integers(4))
    rect = [(x0 - reach, y0 - reach, x0 + f * w, y1 + reach), (x1 - f * w, y0 - reach, x1 + reach, y1 + reach),
            (x0 - reach, y0 - reach, x1 + reach, y0 + f * h), (x0 - reach, y1 - f * h, x1 + reach, y1 + reach)][side]
    rect = tuple(int(round(v)) for v in rect)
    mask = Image.new("L", (rect[2] - rect[0], rect[3] - rect[1]), 0)
    mdraw = ImageDraw.Draw(mask)
    (mdraw.ellipse if rng.random() < 0.5 else mdraw.rectangle)((0, 0, mask.width - 1, mask.height - 1), fill=255)
    if rng.random() < 0.5:
        cover = Image.new("RGB", mask.size, _colour(rng))
    else:  # a piece of elsewhere, mirrored: textured like the scene
        sx = int(rng.integers(0, max(1, scene.width - mask.width)))
        sy = int(rng.integers(0, max(1, scene.height - mask.height)))
        cover = backdrop.crop((sx, sy, sx + mask.width, sy + mask.height)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    scene.paste(cover, rect[:2], mask)


def _camera(rng: np.random.Generator, config: SyntheticConfig, scene: Image.Image) -> bytes:
    """Lens and sensor: defocus blur; colour cast, contrast and brightness (one lookup table per
    channel); uneven light; luma noise; then JPEG at a random quality."""
    width, height = scene.size
    if config.max_blur > 0 and rng.random() < 0.7:
        scene = scene.filter(ImageFilter.BoxBlur(_u(rng, 0.2, config.max_blur) * min(width, height) / 256))
    gain = [_u(rng, 1 - config.color_cast, 1 + config.color_cast) for _ in range(3)]
    contrast = _u(rng, 1 - config.contrast_jitter, 1 + config.contrast_jitter)
    brightness = 255 * _u(rng, -config.brightness_jitter, config.brightness_jitter)
    levels = np.arange(256, dtype=np.float64)
    lut = np.concatenate([(levels * g - 128) * contrast + 128 + brightness for g in gain])
    scene = scene.point(np.clip(np.round(lut), 0, 255).astype(np.uint8).tolist())
    x = np.asarray(scene, np.float32)
    light = 1.0 + _u(rng, -config.uneven_light, config.uneven_light) * (_gradient(rng, width, height) - 0.5) * 2
    x = x * light[..., None]
    sigma = _u(rng, 0, config.max_noise)
    if sigma > 0:
        x += rng.standard_normal((height, width, 1), dtype=np.float32) * sigma
    x += 0.5
    out = Image.fromarray(np.clip(x, 0, 255, out=x).astype(np.uint8))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=int(rng.integers(config.jpeg_quality_min, config.jpeg_quality_max + 1)))
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# Public API

_STREAM_BRAND, _STREAM_NO_LOGO = 1, 2
T = TypeVar("T")


def resolve_class(names: Sequence[str], cls: str | int, items: Mapping[str, T]) -> T | None:
    """A generator's class given by name or by index into `names` -> its item in `items` (a
    brand, a mark); None for the no-logo class. An unknown name or an index out of range raises,
    listing the classes. The synthetic and the real-marks generators both resolve through this."""
    if isinstance(cls, (int, np.integer)) and not isinstance(cls, bool):
        if not 0 <= cls < len(names):
            raise IndexError(f"class index {cls} out of range 0..{len(names) - 1}")
        cls = names[int(cls)]
    if cls == NO_LOGO:
        return None
    if cls in items:
        return items[cls]
    listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    raise KeyError(f"unknown class {cls!r}; this config has {len(names)} classes: {listed}")


def _resolve(config: SyntheticConfig, cls: str | int) -> Brand | None:
    return resolve_class(class_names(config), cls, {brand.name: brand for brand in brands(config)})


def generate_image_with_box(config: SyntheticConfig, cls: str | int, index: int) -> tuple[bytes, Box | None]:
    """JPEG bytes of scene `index` of class `cls` (a name, or an index into `class_names`), and
    the mark's box (x0, y0, x1, y1) in pixels, before occlusion; None for a no-logo scene.

    Any index >= 0 works, beyond the configured count too, and the result depends only on
    (config, cls, index)."""
    if index < 0:
        raise ValueError(f"image index must be >= 0, got {index}")
    brand = _resolve(config, cls)
    stream = (_STREAM_NO_LOGO, 0) if brand is None else (_STREAM_BRAND, brand.index)
    rng = np.random.default_rng([config.seed, *stream, index])
    j = config.size_jitter
    width = max(32, round(config.image_size * _u(rng, 1 - j, 1 + j))) if j else config.image_size
    height = max(32, round(config.image_size * _u(rng, 1 - j, 1 + j))) if j else config.image_size
    scene = _background(rng, width, height)
    lo, hi = config.clutter // 2, config.clutter + (config.clutter + 1) // 2
    _clutter(rng, scene, int(rng.integers(lo, hi + 1)))
    backdrop = scene.copy()
    if brand is not None:
        box = _place(rng, config, scene, lambda side: _render_cached(brand, _base_size(side)), brand.aspect)
    else:
        decoy = _decoy(rng, config) if rng.random() < config.decoy_prob else None
        if decoy is not None:
            _place(rng, config, scene, functools.partial(_render_once, decoy), decoy.aspect)
        else:
            _place(rng, config, scene, None, 2.4 if rng.random() < 0.2 else 1.0)
        box = None
    if box is not None and rng.random() < config.occlusion_prob:
        _occlude(rng, config, scene, backdrop, box)
    return _camera(rng, config, scene), box


def generate_image(config: SyntheticConfig, cls: str | int, index: int) -> bytes:
    """JPEG bytes of scene `index` of class `cls` (see `generate_image_with_box`)."""
    return generate_image_with_box(config, cls, index)[0]


def _filename(cls: str, index: int) -> str:
    return f"{cls}_{index:06d}.jpg"


def _items(config: SyntheticConfig, shard: int, num_shards: int) -> Iterator[tuple[str, int]]:
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"need 0 <= shard < num_shards, got shard={shard}, num_shards={num_shards}")
    k = 0
    for cls, count in class_counts(config).items():
        for i in range(count):
            if k % num_shards == shard:
                yield cls, i
            k += 1


def iter_dataset(config: SyntheticConfig, shard: int = 0, num_shards: int = 1) -> Iterator[tuple[str, str, bytes]]:
    """(class_name, filename, jpeg_bytes) for every image, classes in sorted order; with
    `num_shards` > 1, only every num_shards-th image starting at `shard` (shards are disjoint and
    together make the whole dataset, byte for byte)."""
    for cls, i in _items(config, shard, num_shards):
        yield cls, _filename(cls, i), generate_image(config, cls, i)


def dataset_metadata(config: SyntheticConfig) -> dict:
    """What a generated dataset holds: classes, counts, confusable pairs, seeds, the config and
    each brand's design. Cheap: no image is generated."""
    marks = brands(config)
    return {
        "generator": "lxn.data.synthetic",
        "classes": class_names(config),
        "counts": class_counts(config),
        "confusable_pairs": [{"a": b.variant_of, "b": b.name, "differs_in": b.differs_in}
                             for b in marks if b.variant_of],
        "seed": config.seed,
        "brand_seed": config.brand_seed,
        "config": to_dict(config),
        "brands": [dataclasses.asdict(b) for b in marks],
    }


def write_local_atomic(path: str, data: bytes) -> None:
    """Write `data` to a local `path` (parents created) via a temporary file and a rename, so a
    reader never sees a half-written image."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _check_local_target(root: Path, config: SyntheticConfig) -> None:
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a directory")
    if not root.exists() or not any(root.iterdir()):
        return
    try:
        previous = json.loads((root / "synthetic.json").read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous != to_dict(config):
        raise ValueError(f"{root} is not empty and does not hold this synthetic dataset (same config); "
                         "choose an empty directory, or delete this one to regenerate it")


def write_imagefolder(config: SyntheticConfig, out: str | os.PathLike,
                      write: Callable[[str, bytes], None] | None = None) -> dict:
    """Write the dataset as `out/<class>/<class>_<index>.jpg`, then `out/boxes.csv` (class,
    filename, width, height, x0, y0, x1, y1; empty box for no-logo) and, last, `out/synthetic.json`
    (`dataset_metadata`), so its presence means the dataset is complete. `write(path, data)`
    defaults to a local atomic write; pass e.g. `lxn.storage.write_bytes` for `s3://` URIs.
    Locally, `out` must be empty or hold this very dataset (same config): files of another one
    would stay behind and mix in. Returns the metadata's summary (classes, counts, confusable
    pairs, seeds, images)."""
    root = os.fspath(out).rstrip("/")
    if not root:
        raise ValueError("out must name a directory or a URI prefix, got an empty string")
    if write is None:
        if "://" in root:
            raise ValueError(f"{root!r} is a URI: pass write= (e.g. lxn.storage.write_bytes) to write outside "
                             "the local disk")
        _check_local_target(Path(root), config)
        write = write_local_atomic
    rows = ["class,filename,width,height,x0,y0,x1,y1"]
    for cls, i in _items(config, 0, 1):
        data, box = generate_image_with_box(config, cls, i)
        name = _filename(cls, i)
        write(f"{root}/{cls}/{name}", data)
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
        rows.append(f"{cls},{name},{w},{h}," + (",".join(map(str, box)) if box else ",,,"))
    meta = dataset_metadata(config)
    write(f"{root}/boxes.csv", ("\n".join(rows) + "\n").encode())
    write(f"{root}/synthetic.json", (json.dumps(meta, indent=2) + "\n").encode())
    summary = {k: meta[k] for k in ("classes", "counts", "confusable_pairs", "seed", "brand_seed")}
    summary["images"] = sum(meta["counts"].values())
    summary["root"] = root
    return summary
